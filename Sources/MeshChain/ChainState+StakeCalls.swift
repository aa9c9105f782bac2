import MeshCodec
import MeshCrypto
import MeshIncentive

// The stake-moving calls with their checks, in the order subtensor's `do_add_stake_limit`,
// `do_remove_stake_limit` and `transition_stake_internal` make them. A refusal for slippage
// says the price the call would have reached and how much fits under the limit.

extension ChainState {
    /// The most TAO (fee included) `add_stake` may spend on `netuid` before the price passes
    /// `limit` (subtensor's `get_max_amount_add`).
    public func maxAddAmount(netuid: UInt16, limit: U64F64) throws(DispatchError) -> UInt64 {
        guard let pool = self.subnets[netuid]?.pool else { throw Self.noSubnet(netuid) }
        if pool.isStable { return limit >= .one ? .max : 0 }
        let cap = pool.taoIn.multipliedSaturated(by: SubnetPool.maxInputMultiplier)
        do {
            let q = try pool.quoteBuy(tao: cap, limit: limit, dropFees: false, minimumReserve: self.params.minimumPoolReserve)
            return q.paidIn.addingSaturated(q.fee)
        } catch { throw error.dispatchError }
    }

    /// The most alpha (fee included) `remove_stake` may sell on `netuid` before the price falls
    /// below `limit` (`get_max_amount_remove`).
    public func maxRemoveAmount(netuid: UInt16, limit: U64F64) throws(DispatchError) -> UInt64 {
        guard let pool = self.subnets[netuid]?.pool else { throw Self.noSubnet(netuid) }
        if pool.isStable { return limit <= .one ? .max : 0 }
        let cap = pool.alphaIn.multipliedSaturated(by: SubnetPool.maxInputMultiplier)
        do {
            let q = try pool.quoteSell(alpha: cap, limit: limit, dropFees: false, minimumReserve: self.params.minimumPoolReserve)
            return q.paidIn.addingSaturated(q.fee)
        } catch { throw error.dispatchError }
    }

    /// The price `add_stake` of `tao` would leave on `netuid` without a limit.
    func priceAfterAdding(_ tao: UInt64, netuid: UInt16) -> U64F64 {
        guard let pool = self.subnets[netuid]?.pool else { return .zero }
        return pool.priceAfterBuy(tao - pool.feeFor(tao, dropFees: false))
    }

    func priceAfterRemoving(_ alpha: UInt64, netuid: UInt16) -> U64F64 {
        guard let pool = self.subnets[netuid]?.pool else { return .zero }
        return pool.priceAfterSell(alpha - pool.feeFor(alpha, dropFees: false))
    }

    static func slippage(_ what: String, netuid: UInt16, from: U64F64, to: U64F64, limit: U64F64, fits: String) -> DispatchError {
        DispatchError("SlippageTooHigh", "\(what) would move the price of subnet \(netuid) from \(from.decimalString()) to \(to.decimalString()) τ/α, "
                      + "past your limit \(limit.decimalString()); \(fits) fits under the limit (allow partial to fill that much)")
    }

    /// `add_stake` / `add_stake_limit`: buys alpha on `netuid` with `amount` TAO and stakes it
    /// on `hotkey`. Without `limitRao` the price may move anywhere.
    mutating func addStakeCall(signer: AccountID, hotkey: AccountID, netuid: UInt16, amount: UInt64, limitRao: UInt64?,
                               allowPartial: Bool) throws(DispatchError) {
        guard let subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        if netuid == 0 {
            // Staking on the root subnet registers an unowned hotkey to the staker.
            if self.hotkeyOwners[hotkey] == nil { self.hotkeyOwners[hotkey] = signer }
        } else {
            guard subnet.pool.firstEmissionBlock != 0 else {
                throw DispatchError("SubtokenDisabled", "subnet \(netuid) has not been started by its owner")
            }
            guard self.hotkeyOwners[hotkey] != nil else {
                throw DispatchError("HotKeyAccountNotExists", "hotkey \(hotkey.hex.prefix(16)) is not registered on any subnet")
            }
            let cap = subnet.pool.taoIn.multipliedSaturated(by: SubnetPool.maxInputMultiplier)
            guard amount <= cap else { throw DispatchError("InsufficientLiquidity", "at most \(Token.format(cap)) may be staked into subnet \(netuid) at once") }
        }
        let limit = PriceLimit.price(rao: limitRao ?? PriceLimit.maxRao)
        let maxAmount = try self.maxAddAmount(netuid: netuid, limit: limit)
        let minAmount = self.params.minStake.addingSaturated(subnet.pool.feeFor(self.params.minStake, dropFees: false))
        guard amount >= minAmount else { throw DispatchError("AmountTooLow", "stake at least \(Token.format(minAmount))") }
        if !allowPartial && amount > maxAmount {
            throw Self.slippage("staking \(Token.format(amount))", netuid: netuid, from: subnet.pool.price,
                                to: self.priceAfterAdding(amount, netuid: netuid), limit: limit, fits: Token.format(maxAmount))
        }
        let possible = min(amount, maxAmount)
        guard self.balance(signer) >= possible else {
            throw DispatchError("NotEnoughBalanceToStake", "balance \(Token.format(self.balance(signer))) is below \(Token.format(possible))")
        }
        let q: SwapQuote
        do { q = try subnet.pool.quoteBuy(tao: possible, limit: limit, dropFees: false, minimumReserve: self.params.minimumPoolReserve) } catch {
            throw error.dispatchError
        }
        guard q.paidIn >= self.params.minStake else {
            throw DispatchError("AmountTooLow", "only \(Token.format(q.paidIn)) fits under the limit; the minimum stake is \(Token.format(self.params.minStake))")
        }
        guard q.out > 0 else { throw DispatchError("InsufficientLiquidity", "the pool would pay no alpha") }
        try self.stakeIntoSubnet(coldkey: signer, hotkey: hotkey, netuid: netuid, tao: possible, limit: limit, dropFees: false)
    }

    /// `remove_stake` / `remove_stake_limit`: sells `amount` alpha of the signer's stake on
    /// `hotkey` in `netuid` for TAO.
    mutating func removeStakeCall(signer: AccountID, hotkey: AccountID, netuid: UInt16, amount: UInt64, limitRao: UInt64?,
                                  allowPartial: Bool) throws(DispatchError) {
        guard let subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        guard amount > 0 else { throw DispatchError("AmountTooLow", "amount must be positive") }
        if !subnet.pool.isStable {
            let cap = subnet.pool.alphaIn.multipliedSaturated(by: SubnetPool.maxInputMultiplier)
            guard amount <= cap else { throw DispatchError("InsufficientLiquidity", "at most \(cap) alpha may be unstaked from subnet \(netuid) at once") }
        }
        let limit = PriceLimit.price(rao: limitRao ?? PriceLimit.minRao)
        let maxAmount = try self.maxRemoveAmount(netuid: netuid, limit: limit)
        let have = self.stake(coldkey: signer, hotkey: hotkey, netuid: netuid)
        guard have >= amount else {
            throw DispatchError("NotEnoughStakeToWithdraw", "staked \(have) on this hotkey in subnet \(netuid), asked \(amount)")
        }
        // What is left must stay above the minimum (in TAO), unless everything leaves.
        do {
            let sim = try subnet.pool.quoteSell(alpha: amount, limit: PriceLimit.price(rao: PriceLimit.minRao), dropFees: false,
                                                minimumReserve: self.params.minimumPoolReserve)
            if have > amount && sim.out < self.params.minStake {
                throw DispatchError("AmountTooLow", "unstake at least \(Token.format(self.params.minStake)) worth, or everything")
            }
        } catch let e as SwapError { throw e.dispatchError } catch let e as DispatchError { throw e } catch {
            throw DispatchError("InsufficientLiquidity", "\(error)")
        }
        if !allowPartial && amount > maxAmount {
            throw Self.slippage("unstaking \(amount) alpha", netuid: netuid, from: subnet.pool.price,
                                to: self.priceAfterRemoving(amount, netuid: netuid), limit: limit, fits: "\(maxAmount) alpha")
        }
        let possible = min(amount, maxAmount)
        guard possible > 0 else { throw Self.slippage("unstaking", netuid: netuid, from: subnet.pool.price, to: subnet.pool.price, limit: limit, fits: "nothing") }
        try self.unstakeFromSubnet(coldkey: signer, hotkey: hotkey, netuid: netuid, alpha: possible, limit: limit, dropFees: false)
    }

    /// `move_stake` and `swap_stake(_limit)`: moves `amount` alpha of the signer's stake from
    /// (originHotkey, originNetuid) to (destinationHotkey, destinationNetuid). Within one subnet
    /// the shares move as they are (no swap, no fee); across subnets the alpha is sold on the
    /// origin and the TAO staked on the destination, paying one swap fee. `limitRao` bounds the
    /// ratio origin price / destination price.
    mutating func moveStakeCall(signer: AccountID, originHotkey: AccountID, destinationHotkey: AccountID, originNetuid: UInt16,
                                destinationNetuid: UInt16, amount: UInt64, limitRao: UInt64?, allowPartial: Bool) throws(DispatchError) {
        if originHotkey == destinationHotkey {
            guard originNetuid != destinationNetuid else { throw DispatchError("SameNetuid", "origin and destination are the same") }
        }
        guard let origin = self.subnets[originNetuid] else { throw Self.noSubnet(originNetuid) }
        guard let destination = self.subnets[destinationNetuid] else { throw Self.noSubnet(destinationNetuid) }
        for (id, s) in [(originNetuid, origin), (destinationNetuid, destination)] where id != 0 && s.pool.firstEmissionBlock == 0 {
            throw DispatchError("SubtokenDisabled", "subnet \(id) has not been started by its owner")
        }
        for h in [originHotkey, destinationHotkey] where self.hotkeyOwners[h] == nil {
            throw DispatchError("HotKeyAccountNotExists", "hotkey \(h.hex.prefix(16)) is not registered")
        }
        let available = self.stake(coldkey: signer, hotkey: originHotkey, netuid: originNetuid)
        guard amount > 0, amount <= available else {
            throw DispatchError("NotEnoughStakeToWithdraw", "staked \(available) on the origin, asked \(amount)")
        }
        if originNetuid == destinationNetuid {
            let tao = (origin.pool.price * U64F64(amount)).floorU64
            guard tao >= self.params.minStake else { throw DispatchError("AmountTooLow", "move at least \(Token.format(self.params.minStake)) worth") }
            let deposit = try self.decreaseStake(coldkey: signer, hotkey: originHotkey, netuid: originNetuid, amount: amount)
            try self.increaseStake(coldkey: signer, hotkey: destinationHotkey, netuid: destinationNetuid, amount: amount, deposit: deposit)
            return
        }
        let limit = limitRao.map { PriceLimit.price(rao: $0) }
        var maxAmount = amount
        if let limit { maxAmount = try self.maxMoveAmount(origin: originNetuid, destination: destinationNetuid, limit: limit) }
        do {
            let sim = try origin.pool.quoteSell(alpha: amount, limit: PriceLimit.price(rao: PriceLimit.minRao), dropFees: originNetuid == 0,
                                                minimumReserve: self.params.minimumPoolReserve)
            guard sim.out > self.params.minStake else { throw DispatchError("AmountTooLow", "move more than \(Token.format(self.params.minStake)) worth") }
        } catch let e as SwapError { throw e.dispatchError } catch let e as DispatchError { throw e } catch {
            throw DispatchError("InsufficientLiquidity", "\(error)")
        }
        if let limit, !allowPartial && amount > maxAmount {
            throw DispatchError("SlippageTooHigh", "moving \(amount) alpha would push the price ratio of subnets \(originNetuid)/\(destinationNetuid) "
                                + "below your limit \(limit.decimalString()); \(maxAmount) alpha fits (allow partial to move that much)")
        }
        let move = min(amount, maxAmount)
        guard move > 0 else { throw DispatchError("SlippageTooHigh", "nothing fits under the limit") }
        let dropOrigin = originNetuid == 0
        let (tao, _, _) = try self.unstakeFromSubnet(coldkey: signer, hotkey: originHotkey, netuid: originNetuid, alpha: move,
                                                     limit: PriceLimit.price(rao: PriceLimit.minRao), dropFees: dropOrigin)
        // Too little TAO came out to restake: it stays in the balance (as on subtensor).
        if tao >= self.params.minStake {
            try self.stakeIntoSubnet(coldkey: signer, hotkey: destinationHotkey, netuid: destinationNetuid, tao: tao,
                                     limit: PriceLimit.price(rao: PriceLimit.maxRao), dropFees: !dropOrigin)
        }
    }

    /// The most alpha a move from `origin` to `destination` may take before the ratio of their
    /// prices falls below `limit` (by bisection on the real swap path, fees included).
    public func maxMoveAmount(origin: UInt16, destination: UInt16, limit: U64F64) throws(DispatchError) -> UInt64 {
        guard let po = self.subnets[origin]?.pool else { throw Self.noSubnet(origin) }
        guard let pd = self.subnets[destination]?.pool else { throw Self.noSubnet(destination) }
        if po.isStable && pd.isStable { return limit > .one ? 0 : .max }
        if po.isStable {
            // The ratio is 1 / destination price: the same as adding stake with limit 1/ratio.
            if limit.isZero { return .max }
            return try self.maxAddAmount(netuid: destination, limit: U64F64.one.safeDiv(limit))
        }
        if pd.isStable { return try self.maxRemoveAmount(netuid: origin, limit: limit) }
        guard po.taoIn > 0, pd.taoIn > 0, po.alphaIn > 0, pd.alphaIn > 0 else { return 0 }
        if po.price.safeDiv(pd.price) < limit { return 0 }
        if limit.isZero { return .max }
        let dropOrigin = origin == 0
        func ratio(after alpha: UInt64) -> U64F64? {
            var o = po, d = pd
            guard let s = try? o.quoteSell(alpha: alpha, limit: .zero, dropFees: dropOrigin, minimumReserve: 0) else { return nil }
            o.applySell(s)
            guard let b = try? d.quoteBuy(tao: s.out, limit: .max, dropFees: !dropOrigin, minimumReserve: 0) else { return nil }
            d.applyBuy(b)
            return o.price.safeDiv(d.price)
        }
        let cap = po.alphaIn.multipliedSaturated(by: SubnetPool.maxInputMultiplier)
        if let r = ratio(after: cap), r >= limit { return cap }
        var lo: UInt64 = 0, hi = cap
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if let r = ratio(after: mid), r >= limit { lo = mid } else { hi = mid }
        }
        return lo
    }
}
