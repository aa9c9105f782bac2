import MeshCodec
import MeshCrypto
import MeshIncentive

/// A child hotkey and the proportion (of 2^64 − 1) of its parent's stake weight it receives.
public struct ChildLink: Equatable, Sendable, BinaryCodable {
    public var proportion: UInt64
    public var hotkey: AccountID

    /// Most children per parent and subnet (subtensor: 5).
    public static let maxChildren = 5

    public init(proportion: UInt64, hotkey: AccountID) {
        self.proportion = proportion
        self.hotkey = hotkey
    }

    public func encode(to w: inout ByteWriter) { w.u64(self.proportion); self.hotkey.encode(to: &w) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.proportion = try r.u64()
        self.hotkey = try AccountID(from: &r)
    }

    /// The proportion as a fraction (U96F32, truncated as subtensor's `proportion / u64::MAX`).
    var fraction: U96F32 { U96F32.ratio(UInt128(self.proportion), UInt128(UInt64.max)) }
}

/// Children scheduled by `set_children`, taking effect at the subnet's first epoch after
/// `coolDownBlock`.
public struct PendingChildren: Equatable, Sendable, BinaryCodable {
    public var children: [ChildLink]
    public var coolDownBlock: UInt64

    public func encode(to w: inout ByteWriter) { w.list(self.children); w.u64(self.coolDownBlock) }
    public init(children: [ChildLink], coolDownBlock: UInt64) {
        self.children = children
        self.coolDownBlock = coolDownBlock
    }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.children = try r.list(of: ChildLink.self, field: "children", limit: ChildLink.maxChildren, minElementSize: 40)
        self.coolDownBlock = try r.u64()
    }
}

extension ChainState {
    /// `hotkey`'s children on `netuid`.
    public func children(of hotkey: AccountID, netuid: UInt16) -> [ChildLink] {
        self.childKeys[HotkeyNet(hotkey: hotkey, netuid: netuid)] ?? []
    }

    /// `hotkey`'s parents on `netuid`, each with the proportion it lends.
    public func parents(of hotkey: AccountID, netuid: UInt16) -> [ChildLink] {
        self.parentMap(netuid: netuid)[hotkey] ?? []
    }

    /// Every child's parents on `netuid` (one pass over the child table), parents in key order.
    func parentMap(netuid: UInt16) -> [AccountID: [ChildLink]] {
        var out: [AccountID: [ChildLink]] = [:]
        for k in self.childKeys.keys.sorted() where k.netuid == netuid {
            for c in self.childKeys[k]! { out[c.hotkey, default: []].append(ChildLink(proportion: c.proportion, hotkey: k.hotkey)) }
        }
        return out
    }

    /// A hotkey's child take on `netuid` (at least the minimum).
    public func childkeyTake(of hotkey: AccountID, netuid: UInt16) -> UInt16 {
        max(self.childkeyTakes[HotkeyNet(hotkey: hotkey, netuid: netuid)] ?? 0, self.params.minChildkeyTake)
    }

    /// The checks subtensor's `PCRelations` makes on a new child list: no self, at most five,
    /// proportions summing to at most 2^64 − 1, and no child that is also a parent of `hotkey`.
    func checkChildren(_ children: [ChildLink], of hotkey: AccountID, netuid: UInt16) throws(DispatchError) {
        guard !children.contains(where: { $0.hotkey == hotkey }) else { throw DispatchError("InvalidChild", "a hotkey cannot be its own child") }
        guard children.count <= ChildLink.maxChildren else {
            throw DispatchError("TooManyChildren", "at most \(ChildLink.maxChildren) children per hotkey and subnet")
        }
        let total = children.reduce(UInt128(0)) { $0 + UInt128($1.proportion) }
        guard total <= UInt128(UInt64.max) else { throw DispatchError("ProportionOverflow", "the proportions add up to more than the whole") }
        let parents = Set(self.parents(of: hotkey, netuid: netuid).map { $0.hotkey })
        guard !children.contains(where: { parents.contains($0.hotkey) }) else {
            throw DispatchError("ChildParentInconsistency", "a parent of this hotkey cannot also be its child")
        }
    }

    /// Schedules `hotkey`'s children on `netuid` (subtensor's `do_schedule_children`): signed by
    /// the hotkey's owner, once per `setChildrenRateLimit` blocks, applied after the cooldown
    /// (at once on a subnet not yet started).
    mutating func scheduleChildren(signer: AccountID, hotkey: AccountID, netuid: UInt16, children: [ChildLink], number: UInt64) throws(DispatchError) {
        let key = HotkeyNet(hotkey: hotkey, netuid: netuid)
        let limit = self.params.setChildrenRateLimit
        if let last = self.childrenSetAt[key], last != 0, number.subtractingSaturated(last) < limit {
            throw DispatchError("TxRateLimitExceeded", "children of this hotkey changed at block \(last); wait \(limit) blocks",
                                allowedAt: last.addingSaturated(limit))
        }
        guard netuid != 0 else { throw DispatchError("RegistrationNotPermittedOnRootSubnet", "child hotkeys are not valid on the root subnet") }
        guard let subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        try self.requireOwner(hotkey, signer)
        guard Set(children.map { $0.hotkey }).count == children.count else { throw DispatchError("DuplicateChild", "a child appears twice") }
        try self.checkChildren(children, of: hotkey, netuid: netuid)
        if !children.isEmpty && hotkey != subnet.ownerHotkey {
            let weight = self.stakeWeight(hotkey: hotkey, netuid: netuid)
            guard weight >= subnet.params.stakeThreshold else {
                throw DispatchError("NotEnoughStakeToSetChildkeys", "stake weight \(weight) is below the subnet's threshold \(subnet.params.stakeThreshold)")
            }
        }
        self.childrenSetAt[key] = number
        if subnet.pool.firstEmissionBlock == 0 {
            self.childKeys[key] = children.isEmpty ? nil : children
            self.pendingChildKeys[key] = nil
        } else {
            self.pendingChildKeys[key] = PendingChildren(children: children, coolDownBlock: number.addingSaturated(self.params.pendingChildKeyCooldown))
        }
    }

    /// Applies the pending children of `netuid` whose cooldown passed; a list that no longer
    /// passes the checks is dropped (subtensor's `do_set_pending_children`).
    mutating func applyPendingChildren(netuid: UInt16) {
        let started = self.subnets[netuid]?.pool.firstEmissionBlock ?? 0 != 0
        for key in self.pendingChildKeys.keys.sorted() where key.netuid == netuid {
            let p = self.pendingChildKeys[key]!
            guard p.coolDownBlock < self.number || !started else { continue }
            self.pendingChildKeys[key] = nil
            if (try? self.checkChildren(p.children, of: key.hotkey, netuid: netuid)) != nil {
                self.childKeys[key] = p.children.isEmpty ? nil : p.children
            }
        }
    }

    /// Sets a hotkey's child take on `netuid` (subtensor's `do_set_childkey_take`): within
    /// [min, max]; a raise at most once per `childkeyTakeRateLimit` blocks.
    mutating func setChildkeyTake(signer: AccountID, hotkey: AccountID, netuid: UInt16, take: UInt16, number: UInt64) throws(DispatchError) {
        try self.requireOwner(hotkey, signer)
        guard self.subnets[netuid] != nil else { throw Self.noSubnet(netuid) }
        guard take >= self.params.minChildkeyTake && take <= self.params.maxChildkeyTake else {
            throw DispatchError("InvalidChildkeyTake", "the child take must be within \(self.params.minChildkeyTake)...\(self.params.maxChildkeyTake)")
        }
        let key = HotkeyNet(hotkey: hotkey, netuid: netuid)
        if take > self.childkeyTake(of: hotkey, netuid: netuid), let last = self.childkeyTakeSetAt[key], last != 0,
           number.subtractingSaturated(last) < self.params.childkeyTakeRateLimit {
            throw DispatchError("TxChildkeyTakeRateLimitExceeded", "the child take changed at block \(last)",
                                allowedAt: last.addingSaturated(self.params.childkeyTakeRateLimit))
        }
        self.childkeyTakeSetAt[key] = number
        self.childkeyTakes[key] = take
    }

    // MARK: Stake weight

    /// A hotkey's stake inherited on `netuid`: its own minus what its children take plus what
    /// its parents lend, for its alpha on `netuid` and its TAO on the root subnet
    /// (`get_inherited_for_hotkey_on_subnet`, `get_tao_inherited_for_hotkey_on_subnet`).
    func inheritedStake(hotkey: AccountID, netuid: UInt16, parents: [ChildLink]) -> (alpha: U96F32, tao: U96F32) {
        let ownAlpha = U96F32(self.totalStake(hotkey: hotkey, netuid: netuid))
        let ownTao = U96F32(self.totalStake(hotkey: hotkey, netuid: 0))
        if netuid == 0 { return (ownAlpha, ownTao) }
        var alphaToChildren = U96F32.zero, taoToChildren = U96F32.zero
        for c in self.children(of: hotkey, netuid: netuid) {
            alphaToChildren = alphaToChildren + ownAlpha * c.fraction
            taoToChildren = taoToChildren + ownTao * c.fraction
        }
        var alphaFromParents = U96F32.zero, taoFromParents = U96F32.zero
        for p in parents {
            alphaFromParents = alphaFromParents + U96F32(self.totalStake(hotkey: p.hotkey, netuid: netuid)) * p.fraction
            taoFromParents = taoFromParents + U96F32(self.totalStake(hotkey: p.hotkey, netuid: 0)) * p.fraction
        }
        return (U96F32(((ownAlpha - alphaToChildren) + alphaFromParents).floorU64), U96F32(((ownTao - taoToChildren) + taoFromParents).floorU64))
    }

    /// Stake weight of a hotkey on a subnet: inherited alpha + tao_weight × inherited root TAO
    /// (floored to an integer for the epoch).
    public func stakeWeight(hotkey: AccountID, netuid: UInt16) -> UInt64 {
        let (alpha, tao) = self.inheritedStake(hotkey: hotkey, netuid: netuid, parents: self.parents(of: hotkey, netuid: netuid))
        return (alpha + tao * self.taoWeight).floorU64
    }

    /// Stake weights of a subnet's uids (one pass over the child table).
    public func stakeWeights(netuid: UInt16) -> [(weight: UInt64, alpha: UInt64, tao: UInt64)] {
        guard let s = self.subnets[netuid] else { return [] }
        let parents = self.parentMap(netuid: netuid)
        let w = self.taoWeight
        return s.neurons.map { n in
            let (alpha, tao) = self.inheritedStake(hotkey: n.hotkey, netuid: netuid, parents: parents[n.hotkey] ?? [])
            return ((alpha + tao * w).floorU64, alpha.floorU64, tao.floorU64)
        }
    }

    /// How a hotkey's dividends `amount` are shared with its parents (subtensor's
    /// `get_parent_child_dividends_distribution`): each parent by its contribution to the
    /// child's stake, less the child take when the parent has another owner; the child keeps
    /// the rest and the takes. Returns (hotkey, dividend) with the child last.
    func parentChildSplit(hotkey: AccountID, netuid: UInt16, amount: U96F32, parents: [ChildLink]) -> [(AccountID, U96F32)] {
        guard !parents.isEmpty else { return [(hotkey, amount)] }
        let w = self.taoWeight
        let childTake = U96F32.ratio(UInt128(self.childkeyTake(of: hotkey, netuid: netuid)), UInt128(UInt16.max))
        let childOwner = self.owner(of: hotkey)
        // Self contribution: own stake not lent to children.
        var remainingProportion = U96F32.one
        for c in self.children(of: hotkey, netuid: netuid) { remainingProportion = remainingProportion - c.fraction }
        let ownAlpha = U96F32(self.totalStake(hotkey: hotkey, netuid: netuid))
        let ownRoot = U96F32(self.totalStake(hotkey: hotkey, netuid: 0))
        let selfContribution = U96F32((ownAlpha * remainingProportion + ownRoot * remainingProportion * w).floorU64)
        var total = selfContribution
        var contributions: [(AccountID, U96F32)] = []
        for p in parents {
            let c = U96F32(self.totalStake(hotkey: p.hotkey, netuid: netuid)) * p.fraction
                + U96F32(self.totalStake(hotkey: p.hotkey, netuid: 0)) * p.fraction * w
            total = total + c
            contributions.append((p.hotkey, c))
        }
        var remaining = amount
        var takes = U96F32.zero
        var out: [(AccountID, U96F32)] = []
        for (parent, c) in contributions {
            let factor = total.isZero ? U96F32.zero : c.safeDiv(total)
            var e = amount * factor
            remaining = remaining - e
            if self.owner(of: parent) != childOwner {
                let t = childTake * e
                e = e - t
                takes = takes + t
            }
            out.append((parent, U96F32(e.floorU64)))
        }
        out.append((hotkey, U96F32((remaining + takes).floorU64)))
        return out
    }
}
