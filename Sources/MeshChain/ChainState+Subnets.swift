import MeshCodec
import MeshCrypto
import MeshIncentive

// Subnet lifecycle: creation locks TAO into the new subnet's pool (the lock cost doubles with
// each creation and decays back linearly), the owner starts emission with a start call, and a
// full network prunes its weakest non-immune subnet to make room.

extension ChainState {
    /// The current subnet lock cost (subtensor's `get_network_lock_cost`): the last lock
    /// doubled (not doubled before the first creation), less `last / interval` per block since,
    /// at least the minimum.
    public func lockCost(at number: UInt64) -> Rao {
        let last = self.lastLockCost
        let multiplier: UInt64 = self.lastLockBlock == 0 ? 1 : 2
        let elapsed = number.subtractingSaturated(self.lastLockBlock)
        let decay = (last / max(1, self.params.lockReductionInterval)).multipliedSaturated(by: elapsed)
        let cost = last.multipliedSaturated(by: multiplier).subtractingSaturated(decay)
        return max(self.params.minLockCost, cost)
    }

    /// The median current price of the dynamic subnets (1 when there are none), which a new
    /// subnet's pool starts at (`get_median_subnet_alpha_price`).
    public func medianSubnetPrice() -> U64F64 {
        let prices = self.subnets.values.filter { $0.netuid != 0 }.map { $0.pool.price }.filter { !$0.isZero }.sorted()
        guard !prices.isEmpty else { return .one }
        let n = prices.count
        if n % 2 == 1 { return prices[n / 2] }
        return (prices[n / 2 - 1] + prices[n / 2]).safeDiv(U64F64(2))
    }

    /// The subnet to prune when the network is full: the non-immune one with the lowest
    /// moving price, the earliest registered on a tie (`get_network_to_prune`).
    public func subnetToPrune(at number: UInt64) -> UInt16? {
        var best: (UInt16, U64F64, UInt64)?
        for id in self.subnets.keys.sorted() where id != 0 {
            let s = self.subnets[id]!
            if number < s.createdAt.addingSaturated(self.params.networkImmunityPeriod) { continue }
            let p = s.pool.movingPrice
            if best == nil || p < best!.1 || (p == best!.1 && s.createdAt < best!.2) { best = (id, p, s.createdAt) }
        }
        return best?.0
    }

    /// Creates a subnet owned by `owner` (subtensor's `do_register_network`): prunes the weakest
    /// subnet if the network is full, locks the lock cost into the new pool (alpha reserve at
    /// the median price), registers the owner's hotkey, picks the token symbol. Emission waits
    /// for the owner's start call.
    mutating func createSubnet(owner: AccountID, hotkey: AccountID, maxLock: Rao, number: UInt64) throws(DispatchError) {
        try self.claimHotkey(hotkey, by: owner)
        let existing = self.subnets.keys.filter { $0 != 0 }.count
        var reuse: UInt16?
        if UInt64(existing) >= self.params.subnetLimit {
            guard let victim = self.subnetToPrune(at: number) else {
                throw DispatchError("SubnetLimitReached", "the network holds its maximum of \(self.params.subnetLimit) subnets and all are immune")
            }
            reuse = victim
        }
        let cost = self.lockCost(at: number)
        guard cost <= maxLock else { throw DispatchError("LockCostTooHigh", "lock cost \(Token.format(cost)) exceeds your maximum \(Token.format(maxLock))") }
        guard self.balance(owner) >= cost else {
            throw DispatchError("CannotAffordLockCost", "balance \(Token.format(self.balance(owner))) is below the lock cost \(Token.format(cost))")
        }
        let median = self.medianSubnetPrice()
        if let victim = reuse { self.dissolveSubnet(victim) }
        var netuid: UInt16 = 1
        if let victim = reuse { netuid = victim } else { while self.subnets[netuid] != nil { netuid += 1 } }
        try self.debit(owner, cost)
        var subnet = Subnet(netuid: netuid, name: "subnet \(netuid)", owner: owner, ownerHotkey: hotkey, block: number, locked: cost, params: SubnetParams())
        subnet.neurons.append(Neuron(hotkey: hotkey, coldkey: owner, block: number))
        // The whole lock stays in the pool, the alpha reserve sized at the median price.
        subnet.pool.taoIn = cost
        subnet.pool.alphaIn = U64F64(cost).safeDiv(median).floorU64
        subnet.pool.symbol = self.nextSymbol(for: netuid)
        // Stagger first epochs across subnets (`init_new_network`).
        subnet.lastEpochBlock = number.subtractingSaturated(UInt64(netuid) % max(1, subnet.params.tempo))
        self.subnets[netuid] = subnet
        self.lastLockCost = cost
        self.lastLockBlock = number
    }

    /// The default symbol of `netuid`, or the first unused one.
    func nextSymbol(for netuid: UInt16) -> String {
        let used = Set(self.subnets.values.map { $0.pool.symbol })
        let preferred = TokenSymbols.symbol(for: netuid)
        if !used.contains(preferred) { return preferred }
        return TokenSymbols.all.dropFirst().first { !used.contains($0) } ?? preferred
    }

    /// Removes a subnet (subtensor's `destroy_alpha_in_out_stakes`): its pool's TAO goes to the
    /// alpha stakers in proportion to the value of their stake (largest remainder); the share
    /// of the protocol's alpha (reserve and bought) is burned, like everything else left.
    mutating func dissolveSubnet(_ netuid: UInt16) {
        guard netuid != 0, let s = self.subnets[netuid] else { return }
        let stakers = self.stakeShares.keys.filter { $0.netuid == netuid }.sorted()
        var values: [(StakeKey, UInt64)] = stakers.map { ($0, self.stake(coldkey: $0.coldkey, hotkey: $0.hotkey, netuid: netuid)) }
        values = values.filter { $0.1 > 0 }
        let protocolAlpha = s.pool.alphaIn.addingSaturated(s.pool.protocolAlpha)
        let weights = values.map { $0.1 } + [protocolAlpha]
        let pot = s.pool.taoIn
        var paid: UInt64 = 0
        if pot > 0 && weights.contains(where: { $0 > 0 }) {
            let parts = EmissionSplit.proportional(pot, weights: weights)
            for (i, (key, _)) in values.enumerated() where parts[i] > 0 {
                self.credit(key.coldkey, parts[i])
                paid += parts[i]
            }
        }
        self.totalBurned += pot - paid
        for k in self.stakeShares.keys where k.netuid == netuid { self.stakeShares[k] = nil }
        for k in self.stakeDeposits.keys where k.netuid == netuid { self.stakeDeposits[k] = nil }
        for k in self.hotkeyPools.keys where k.netuid == netuid { self.hotkeyPools[k] = nil }
        for k in self.childKeys.keys where k.netuid == netuid { self.childKeys[k] = nil }
        for k in self.pendingChildKeys.keys where k.netuid == netuid { self.pendingChildKeys[k] = nil }
        for k in self.childkeyTakes.keys where k.netuid == netuid { self.childkeyTakes[k] = nil }
        self.subnets[netuid] = nil
    }

    /// Puts a registration's burned TAO into the subnet's pool and burns the alpha it buys (as
    /// subtensor's burned registration); on a pool that cannot take it, the TAO is burned.
    mutating func burnIntoPool(netuid: UInt16, tao: UInt64) {
        guard tao > 0 else { return }
        guard var s = self.subnets[netuid], !s.pool.isStable,
              let q = try? s.pool.quoteBuy(tao: tao, limit: PriceLimit.price(rao: PriceLimit.maxRao), dropFees: true,
                                           minimumReserve: self.params.minimumPoolReserve), q.paidIn == tao else {
            self.totalBurned += tao
            return
        }
        s.pool.applyBuy(q)
        s.pool.burnedAlpha += q.out
        self.subnets[netuid] = s
    }
}
