import MeshCodec
import MeshCrypto
import MeshIncentive

/// Who is paid what at one subnet epoch, before anything is credited (subtensor's
/// `calculate_dividend_and_incentive_distribution`). Pure: computed from the state and the
/// epoch's output, then applied by ``ChainState/pay(_:netuid:ownerCut:)``.
public struct EpochPayoutPlan: Equatable, Sendable {
    /// Mining incentive per uid (alpha).
    public var incentive: [UInt64]
    /// Validators' alpha dividends per hotkey (parents included), before the take.
    public var alphaDividends: [(hotkey: AccountID, amount: UInt64)]
    /// Root stakers' dividends per hotkey, in alpha, before the take.
    public var rootDividends: [(hotkey: AccountID, amount: UInt64)]
    /// What nobody may take (recycled).
    public var left: UInt64

    public static func == (a: EpochPayoutPlan, b: EpochPayoutPlan) -> Bool {
        a.incentive == b.incentive && a.left == b.left
            && a.alphaDividends.map { $0.hotkey } == b.alphaDividends.map { $0.hotkey } && a.alphaDividends.map { $0.amount } == b.alphaDividends.map { $0.amount }
            && a.rootDividends.map { $0.hotkey } == b.rootDividends.map { $0.hotkey } && a.rootDividends.map { $0.amount } == b.rootDividends.map { $0.amount }
    }

    /// Miners receive `incentive_i × server` (when no miner earned anything, validators get the
    /// server half too). The epoch's per-uid validator emission is shared with parents, then
    /// split per hotkey by its alpha stake against tao_weight × its root stake, and scaled to
    /// the pending validator and root alpha. Every amount is floored, so the parts never exceed
    /// their pools; the remainder is `left`.
    public static func make<S: YumaScalar>(_ state: ChainState, netuid: UInt16, output: EpochOutput<S>, server: UInt64, validator: UInt64,
                                           root: UInt64) -> EpochPayoutPlan {
        guard let subnet = state.subnets[netuid] else {
            return EpochPayoutPlan(incentive: [], alphaDividends: [], rootDividends: [], left: server + validator + root)
        }
        let n = subnet.neurons.count
        let anyIncentive = output.incentive.contains { $0 != .zero }
        let serverPool = anyIncentive ? server : 0
        let validatorPool = anyIncentive ? validator : validator.addingSaturated(server)
        var incentive = [UInt64](repeating: 0, count: n)
        var paid: UInt64 = 0
        if serverPool > 0 {
            for i in 0..<n {
                incentive[i] = output.incentive[i].amount(of: serverPool)
                paid += incentive[i]
            }
        }
        // Dividends per hotkey after the parent/child split, in first-seen order.
        let parents = state.parentMap(netuid: netuid)
        var order: [AccountID] = []
        var dividends: [AccountID: U96F32] = [:]
        for i in 0..<n where output.validatorEmission[i] > 0 {
            let hotkey = subnet.neurons[i].hotkey
            for (h, d) in state.parentChildSplit(hotkey: hotkey, netuid: netuid, amount: U96F32(output.validatorEmission[i]),
                                                 parents: parents[hotkey] ?? []) {
                if dividends[h] == nil { order.append(h) }
                dividends[h] = (dividends[h] ?? .zero) + d
            }
        }
        // Alpha and root parts by the hotkey's own stakes.
        let w = state.taoWeight
        var alphaParts: [(AccountID, U96F32)] = [], rootParts: [(AccountID, U96F32)] = []
        var totalAlpha = U96F32.zero, totalRoot = U96F32.zero
        for h in order {
            let d = dividends[h]!
            let alphaStake = U96F32(state.totalStake(hotkey: h, netuid: netuid))
            let rootAlpha = U96F32(state.totalStake(hotkey: h, netuid: 0)) * w
            let total = alphaStake + rootAlpha
            let rootDivs = total.isZero ? U96F32.zero : d * rootAlpha.safeDiv(total)
            let alphaDivs = d - rootDivs
            alphaParts.append((h, alphaDivs))
            rootParts.append((h, rootDivs))
            totalAlpha = totalAlpha + alphaDivs
            totalRoot = totalRoot + rootDivs
        }
        var alphaDividends: [(hotkey: AccountID, amount: UInt64)] = []
        var rootDividends: [(hotkey: AccountID, amount: UInt64)] = []
        if !totalAlpha.isZero {
            for (h, a) in alphaParts {
                let amount = (U96F32(validatorPool) * a.safeDiv(totalAlpha)).floorU64
                if amount > 0 { alphaDividends.append((h, amount)); paid += amount }
            }
        }
        if !totalRoot.isZero {
            for (h, r) in rootParts {
                let amount = (U96F32(root) * r.safeDiv(totalRoot)).floorU64
                if amount > 0 { rootDividends.append((h, amount)); paid += amount }
            }
        }
        let total = server.addingSaturated(validator).addingSaturated(root)
        // Floors keep each sum within its pool; should that ever fail, pay nothing rather than
        // create alpha.
        guard paid <= total else { return EpochPayoutPlan(incentive: [UInt64](repeating: 0, count: n), alphaDividends: [], rootDividends: [], left: total) }
        return EpochPayoutPlan(incentive: incentive, alphaDividends: alphaDividends, rootDividends: rootDividends, left: total - paid)
    }
}

extension ChainState {
    /// The hotkeys whose mining incentive is burned: the subnet owner's hotkey and every other
    /// hotkey of the owner's coldkey registered on the subnet (`get_owner_hotkeys`).
    func ownerHotkeys(netuid: UInt16) -> Set<AccountID> {
        guard let s = self.subnets[netuid] else { return [] }
        var out: Set<AccountID> = [s.ownerHotkey]
        for n in s.neurons where self.hotkeyOwners[n.hotkey] == s.owner { out.insert(n.hotkey) }
        return out
    }

    /// Applies an epoch's payout plan (subtensor's `distribute_dividends_and_incentives`).
    mutating func pay(_ plan: EpochPayoutPlan, netuid: UInt16, ownerCut: UInt64) {
        guard let subnet = self.subnets[netuid] else { return }
        var burned: UInt64 = 0
        var recycled = plan.left
        var emission: [AccountID: UInt64] = [:]
        /// Stakes `amount` for `coldkey`, or counts it burned when the pool cannot take it.
        func stake(_ coldkey: AccountID?, _ hotkey: AccountID, _ amount: UInt64) {
            guard amount > 0 else { return }
            if let coldkey, (try? self.increaseStake(coldkey: coldkey, hotkey: hotkey, netuid: netuid, amount: amount)) != nil { return }
            burned += amount
        }
        // The owner's cut, staked to the owner's hotkey.
        stake(subnet.owner, subnet.ownerHotkey, ownerCut)
        // Mining incentive, to each miner's owner; burned on the owner's own hotkeys.
        let ownerHotkeys = self.ownerHotkeys(netuid: netuid)
        for (i, amount) in plan.incentive.enumerated() where amount > 0 {
            let hotkey = subnet.neurons[i].hotkey
            emission[hotkey, default: 0] += amount
            if ownerHotkeys.contains(hotkey) { burned += amount } else { stake(self.hotkeyOwners[hotkey] ?? subnet.neurons[i].coldkey, hotkey, amount) }
        }
        // Alpha dividends: the take to the owner, the rest to every staker on the hotkey.
        for (hotkey, amount) in plan.alphaDividends {
            emission[hotkey, default: 0] += amount
            let take = self.takeAmount(hotkey: hotkey, of: amount)
            stake(self.hotkeyOwners[hotkey], hotkey, take)
            self.increaseStakeForAll(hotkey: hotkey, netuid: netuid, amount: amount - take)
        }
        // Root dividends: the take in alpha to the owner; the rest sold for TAO (fee-free) and
        // added to the hotkey's root stake, so every root staker on it gains.
        for (hotkey, amount) in plan.rootDividends {
            emission[hotkey, default: 0] += amount
            let take = self.takeAmount(hotkey: hotkey, of: amount)
            stake(self.hotkeyOwners[hotkey], hotkey, take)
            let rest = amount - take
            guard rest > 0 else { continue }
            var pool = self.subnets[netuid]!.pool
            if (self.hotkeyPools[HotkeyNet(hotkey: hotkey, netuid: 0)]?.shares ?? 0) > 0,
               let q = try? pool.quoteSell(alpha: rest, limit: .zero, dropFees: true, minimumReserve: self.params.minimumPoolReserve),
               q.paidIn == rest {
                pool.applySell(q)
                self.subnets[netuid]!.pool = pool
                self.subnets[0]!.pool.taoIn += q.out
                self.subnets[0]!.pool.alphaOut += q.out
                self.increaseStakeForAll(hotkey: hotkey, netuid: 0, amount: q.out)
            } else {
                recycled += rest
            }
        }
        var s = self.subnets[netuid]!
        s.pool.burnedAlpha += burned
        // What nobody may take leaves the outstanding alpha (subtensor leaves it minted but
        // unowned; recycling keeps the books exact).
        s.pool.alphaOut -= min(s.pool.alphaOut, recycled)
        for i in s.neurons.indices { s.neurons[i].emission = emission[s.neurons[i].hotkey] ?? 0 }
        self.subnets[netuid] = s
    }

    /// The owner's take of `amount` of `hotkey`'s dividends (floored, as `take × divs`).
    func takeAmount(hotkey: AccountID, of amount: UInt64) -> UInt64 {
        let share = U96F32.ratio(UInt128(self.delegateTake(of: hotkey)), UInt128(UInt16.max))
        return min(amount, (share * U96F32(amount)).floorU64)
    }
}
