import MeshCodec
import MeshCrypto
import MeshIncentive

/// Chain-wide parameters, fixed by genesis (changeable by root where noted).
public struct ChainParams: Equatable, Sendable, Codable, BinaryCodable {
    /// Milliseconds per Aura slot.
    public var slotDurationMs: UInt64 = 2000
    /// Minimum fee per transaction (rao); fees go to the block's producer.
    public var baseFee: Rao = 100_000
    /// Blocks between validator-set recomputations.
    public var authorityEpochLength: UInt64 = 100
    /// Largest validator set.
    public var maxAuthorities: UInt64 = 16
    /// Delay (blocks) of a scheduled validator-set change.
    public var authorityChangeDelay: UInt64 = 5
    public var emission = EmissionSchedule()
    /// Subnets at most.
    public var subnetLimit: UInt64 = 32
    /// Subnet lock cost floor and its decay interval.
    public var minLockCost: Rao = 100 * Token.tao
    public var lockReductionInterval: UInt64 = 14 * 7200
    /// Blocks for the registration burn to halve.
    public var burnHalfLife: UInt64 = 360
    /// Most registrations per subnet per block.
    public var maxRegistrationsPerBlock: UInt64 = 4
    /// Stake an account needs on the root subnet (netuid 0) to be a validator candidate.
    public var minValidatorStake: Rao = 1 * Token.tao
    /// A delegate's take when its owner never set one, and the highest take (u16 proportion,
    /// 11,796/65,535 ≈ 18 %, subtensor's `InitialDefaultDelegateTake`).
    public var maxDelegateTake: UInt16 = 11_796
    /// The lowest take an owner may set (subtensor: 0).
    public var minDelegateTake: UInt16 = 0
    /// Blocks between a take change and the next increase (subtensor: 216,000 ≈ 30 days).
    public var delegateTakeRateLimit: UInt64 = 216_000
    /// The smallest stake a call may move (rao; subtensor's `DefaultMinStake`, 0.002 TAO).
    public var minStake: Rao = 2_000_000
    /// Weight of root (TAO) stake in a validator's stake weight on a subnet, as a fraction of
    /// 2^64 − 1 (subtensor's runtime default 971,718,665,099,567,868 ≈ 0.0527).
    public var taoWeight: UInt64 = 971_718_665_099_567_868
    /// The subnet owner's cut of alpha emission (u16 proportion, ≈ 18 %).
    public var subnetOwnerCut: UInt16 = 11_796
    /// Smoothing of the net TAO flow moving average, as a fraction of 2^63 − 1 (subtensor's
    /// default 29,597,889,189,277: a half-life of about 216,000 blocks).
    public var flowEmaSmoothing: UInt64 = 29_597_889_189_277
    /// Whether the protocol's own flow (injections) is subtracted from the users' (subtensor's
    /// `NetTaoFlowEnabled`, default on).
    public var netFlowEnabled = true
    /// Floor of the flow offset (rao per block; subtensor's `TaoFlowCutoff`, 0).
    public var flowCutoff: Int64 = 0
    /// Exponent applied to offset flows before normalising (1...3; subtensor's default 1).
    public var flowNormExponent: UInt64 = 1
    /// The smallest reserve a pool must hold to pay out of it (subtensor's `MinimumReserve`).
    public var minimumPoolReserve: UInt64 = 1_000_000
    /// The price moving average's base rate, parts per billion (subtensor: 0.000003).
    public var movingAlphaPpb: UInt64 = 3000
    /// Blocks for the price moving average to halve its distance (subtensor: 201,600).
    public var emaPriceHalvingBlocks: UInt64 = 201_600
    /// Blocks after creation before an owner may start a subnet (subtensor: 0).
    public var startCallDelay: UInt64 = 0
    /// Blocks after creation during which a subnet cannot be pruned (subtensor: 1,296,000).
    public var networkImmunityPeriod: UInt64 = 1_296_000
    /// Blocks before scheduled child hotkeys take effect (subtensor: 7,200).
    public var pendingChildKeyCooldown: UInt64 = 7200
    /// Blocks between two `set_children` of one hotkey on one subnet (subtensor: 150).
    public var setChildrenRateLimit: UInt64 = 150
    /// Blocks between two raises of a child take (subtensor: 216,000).
    public var childkeyTakeRateLimit: UInt64 = 216_000
    /// Highest and lowest child take (u16 proportions; subtensor: 18 % and 0).
    public var maxChildkeyTake: UInt16 = 11_796
    public var minChildkeyTake: UInt16 = 0

    public init() {}

    /// Bounds that keep every derived value in range (block numbers plus delays, timers in
    /// nanoseconds, digests within their decoders' limits, sums of money below 2^64).
    public static let maxAuthorityChangeDelay: UInt64 = 1 << 32
    public static let maxSupply: UInt64 = 1 << 62

    /// The first parameter out of its range, as (field, reason); nil when all are fine.
    public func invalidField() -> (String, String)? {
        if !(100...3_600_000).contains(self.slotDurationMs) { return ("slotDurationMs", "100...3600000") }
        if !(1...(1 << 32)).contains(self.authorityEpochLength) { return ("authorityEpochLength", "1...2^32") }
        if !(1...1024).contains(self.maxAuthorities) { return ("maxAuthorities", "1...1024") }
        if self.authorityChangeDelay > Self.maxAuthorityChangeDelay { return ("authorityChangeDelay", "at most 2^32") }
        if self.emission.supplyCap > Self.maxSupply { return ("supplyCap", "at most 2^62 rao") }
        if self.emission.initialBlockEmission > self.emission.supplyCap { return ("initialBlockEmission", "at most the supply cap") }
        if self.baseFee > self.emission.supplyCap { return ("baseFee", "at most the supply cap") }
        if self.subnetLimit > 65_534 { return ("subnetLimit", "at most 65534") }
        if self.minLockCost > self.emission.supplyCap { return ("minLockCost", "at most the supply cap") }
        if !(1...(1 << 40)).contains(self.lockReductionInterval) { return ("lockReductionInterval", "1...2^40") }
        if !(1...(1 << 40)).contains(self.burnHalfLife) { return ("burnHalfLife", "1...2^40") }
        if self.maxRegistrationsPerBlock > 4096 { return ("maxRegistrationsPerBlock", "at most 4096") }
        if self.minValidatorStake > self.emission.supplyCap { return ("minValidatorStake", "at most the supply cap") }
        if self.minDelegateTake > self.maxDelegateTake { return ("minDelegateTake", "at most maxDelegateTake") }
        if self.delegateTakeRateLimit > (1 << 40) { return ("delegateTakeRateLimit", "at most 2^40") }
        if self.minStake > self.emission.supplyCap { return ("minStake", "at most the supply cap") }
        if !(1...3).contains(self.flowNormExponent) { return ("flowNormExponent", "1...3") }
        if self.minimumPoolReserve == 0 || self.minimumPoolReserve > self.emission.supplyCap { return ("minimumPoolReserve", "1...supply cap") }
        if self.movingAlphaPpb > 1_000_000_000 { return ("movingAlphaPpb", "at most 10^9") }
        if self.flowEmaSmoothing > UInt64(Int64.max) { return ("flowEmaSmoothing", "at most 2^63 - 1") }
        for (n, v) in [("emaPriceHalvingBlocks", self.emaPriceHalvingBlocks), ("startCallDelay", self.startCallDelay),
                       ("networkImmunityPeriod", self.networkImmunityPeriod), ("pendingChildKeyCooldown", self.pendingChildKeyCooldown),
                       ("setChildrenRateLimit", self.setChildrenRateLimit), ("childkeyTakeRateLimit", self.childkeyTakeRateLimit)] where v > (1 << 40) {
            return (n, "at most 2^40")
        }
        if self.minChildkeyTake > self.maxChildkeyTake { return ("minChildkeyTake", "at most maxChildkeyTake") }
        return nil
    }

    public func encode(to w: inout ByteWriter) {
        w.u64(self.slotDurationMs); w.u64(self.baseFee); w.u64(self.authorityEpochLength); w.u64(self.maxAuthorities)
        w.u64(self.authorityChangeDelay); w.u64(self.emission.initialBlockEmission); w.u64(self.emission.supplyCap)
        w.u64(self.subnetLimit); w.u64(self.minLockCost); w.u64(self.lockReductionInterval); w.u64(self.burnHalfLife)
        w.u64(self.maxRegistrationsPerBlock); w.u64(self.minValidatorStake)
        w.u16(self.maxDelegateTake); w.u16(self.minDelegateTake); w.u64(self.delegateTakeRateLimit); w.u64(self.minStake)
        w.u64(self.taoWeight); w.u16(self.subnetOwnerCut); w.u64(self.flowEmaSmoothing); w.bool(self.netFlowEnabled)
        w.i64(self.flowCutoff); w.u64(self.flowNormExponent); w.u64(self.minimumPoolReserve); w.u64(self.movingAlphaPpb)
        w.u64(self.emaPriceHalvingBlocks); w.u64(self.startCallDelay); w.u64(self.networkImmunityPeriod)
        w.u64(self.pendingChildKeyCooldown); w.u64(self.setChildrenRateLimit); w.u64(self.childkeyTakeRateLimit)
        w.u16(self.maxChildkeyTake); w.u16(self.minChildkeyTake)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.slotDurationMs = try r.u64(); self.baseFee = try r.u64(); self.authorityEpochLength = try r.u64()
        self.maxAuthorities = try r.u64(); self.authorityChangeDelay = try r.u64()
        self.emission = EmissionSchedule(initialBlockEmission: try r.u64(), supplyCap: try r.u64())
        self.subnetLimit = try r.u64(); self.minLockCost = try r.u64(); self.lockReductionInterval = try r.u64()
        self.burnHalfLife = try r.u64(); self.maxRegistrationsPerBlock = try r.u64(); self.minValidatorStake = try r.u64()
        self.maxDelegateTake = try r.u16(); self.minDelegateTake = try r.u16(); self.delegateTakeRateLimit = try r.u64(); self.minStake = try r.u64()
        self.taoWeight = try r.u64(); self.subnetOwnerCut = try r.u16(); self.flowEmaSmoothing = try r.u64()
        self.netFlowEnabled = try r.bool(field: "netFlowEnabled")
        self.flowCutoff = try r.i64(); self.flowNormExponent = try r.u64(); self.minimumPoolReserve = try r.u64(); self.movingAlphaPpb = try r.u64()
        self.emaPriceHalvingBlocks = try r.u64(); self.startCallDelay = try r.u64(); self.networkImmunityPeriod = try r.u64()
        self.pendingChildKeyCooldown = try r.u64(); self.setChildrenRateLimit = try r.u64(); self.childkeyTakeRateLimit = try r.u64()
        self.maxChildkeyTake = try r.u16(); self.minChildkeyTake = try r.u16()
        if let (field, reason) = self.invalidField() { throw .invalidValue(field: field, reason: reason) }
    }
}

/// Stake of a coldkey on a hotkey in a subnet.
public struct StakeKey: Hashable, Sendable, Comparable, BinaryCodable {
    public var coldkey: AccountID
    public var hotkey: AccountID
    public var netuid: UInt16

    public init(coldkey: AccountID, hotkey: AccountID, netuid: UInt16) {
        self.coldkey = coldkey
        self.hotkey = hotkey
        self.netuid = netuid
    }

    public static func < (a: StakeKey, b: StakeKey) -> Bool {
        if a.netuid != b.netuid { return a.netuid < b.netuid }
        if a.hotkey != b.hotkey { return a.hotkey < b.hotkey }
        return a.coldkey < b.coldkey
    }

    public func encode(to w: inout ByteWriter) { self.coldkey.encode(to: &w); self.hotkey.encode(to: &w); w.u16(self.netuid) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.coldkey = try AccountID(from: &r); self.hotkey = try AccountID(from: &r); self.netuid = try r.u16()
    }
}

/// A pending standard validator-set change.
public struct PendingAuthorityChange: Equatable, Sendable, BinaryCodable {
    public var authorities: [WeightedAuthority]
    public var enactAt: UInt64
    public var forced: Bool

    public func encode(to w: inout ByteWriter) { w.list(self.authorities); w.u64(self.enactAt); w.bool(self.forced) }
    public init(authorities: [WeightedAuthority], enactAt: UInt64, forced: Bool) {
        self.authorities = authorities
        self.enactAt = enactAt
        self.forced = forced
    }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.authorities = try r.list(of: WeightedAuthority.self, limit: 1024, minElementSize: 40)
        self.enactAt = try r.u64()
        self.forced = try r.bool()
    }
}

/// The whole ledger state. Value type: a fork is a copy (copy-on-write of the tables).
///
/// The state root commits to every part: SHA-256 over the hashes of four sections (global,
/// accounts, stake, each subnet), each hashed from its canonical (sorted) encoding. Section
/// hashes are cached and recomputed only when a section changed.
public struct ChainState: Sendable {
    public var params: ChainParams
    public var number: UInt64 = 0
    public var lastTimestamp: UInt64 = 0
    public var balances: [AccountID: Rao] = [:] { didSet { self.dirtyAccounts = true } }
    public var nonces: [AccountID: UInt64] = [:] { didSet { self.dirtyAccounts = true } }
    /// Each staker's shares in a hotkey's stake pool (see ``HotkeyPool``).
    public internal(set) var stakeShares: [StakeKey: UInt128] = [:] { didSet { self.dirtyStake = true } }
    /// Each hotkey's stake pool per subnet.
    public internal(set) var hotkeyPools: [HotkeyNet: HotkeyPool] = [:] { didSet { self.dirtyStake = true } }
    /// The coldkey that owns each hotkey (set when the hotkey first registers or is staked on
    /// the root subnet); it receives the hotkey's take and miner incentive.
    public internal(set) var hotkeyOwners: [AccountID: AccountID] = [:] { didSet { self.dirtyDelegation = true } }
    /// Takes set by hotkey owners (u16 proportions); a hotkey without an entry has the chain's
    /// default (`maxDelegateTake`).
    public internal(set) var delegateTakes: [AccountID: UInt16] = [:] { didSet { self.dirtyDelegation = true } }
    /// The block of each hotkey's last take change (for the rate limit on increases).
    public internal(set) var takeChangedAt: [AccountID: UInt64] = [:] { didSet { self.dirtyDelegation = true } }
    /// What each staker put in, net of what it took out (alpha on dynamic subnets): its stake
    /// beyond this is what it earned.
    public internal(set) var stakeDeposits: [StakeKey: UInt64] = [:] { didSet { self.dirtyStake = true } }
    /// Child hotkeys: a parent lends each child a proportion (of 2^64 − 1) of its stake weight
    /// on one subnet.
    public internal(set) var childKeys: [HotkeyNet: [ChildLink]] = [:] { didSet { self.dirtyDelegation = true } }
    /// Children scheduled by `set_children`, applied at the subnet's first epoch after the cooldown.
    public internal(set) var pendingChildKeys: [HotkeyNet: PendingChildren] = [:] { didSet { self.dirtyDelegation = true } }
    /// Child takes per (hotkey, subnet) (u16 proportions; absent: the minimum).
    public internal(set) var childkeyTakes: [HotkeyNet: UInt16] = [:] { didSet { self.dirtyDelegation = true } }
    /// Blocks of the last `set_children` and child-take change per (hotkey, subnet), for rate limits.
    public internal(set) var childrenSetAt: [HotkeyNet: UInt64] = [:] { didSet { self.dirtyDelegation = true } }
    public internal(set) var childkeyTakeSetAt: [HotkeyNet: UInt64] = [:] { didSet { self.dirtyDelegation = true } }
    /// The author of the block being executed (swap fees go to it; always nil between blocks).
    var blockAuthor: AccountID?
    public var subnets: [UInt16: Subnet] = [:] { didSet { self.dirtySubnets = true } }
    public var totalIssuance: Rao = 0
    /// Rao destroyed (registration burns, owner-hotkey incentive).
    public var totalBurned: Rao = 0
    public var sudo: AccountID?
    public var authorities: [WeightedAuthority] = []
    public var authoritySetId: UInt64 = 0
    public var pendingAuthorityChange: PendingAuthorityChange?
    public var lastLockCost: Rao = 0
    public var lastLockBlock: UInt64 = 0
    /// Evidence already included (hashes), so a report is accepted once.
    public var reportedEquivocations: Set<Hash32> = []
    /// A forced change made by a transaction in the block being built, to be signalled in its
    /// header (always nil between blocks).
    var forcedChangeSignal: PendingAuthorityChange?

    var dirtyAccounts = true
    var dirtyStake = true
    var dirtySubnets = true
    var dirtyDelegation = true
    var cachedAccounts = Hash32.zero
    var cachedStake = Hash32.zero
    var cachedSubnets = Hash32.zero
    var cachedDelegation = Hash32.zero

    public init(params: ChainParams) { self.params = params }

    // MARK: Reads

    public func balance(_ a: AccountID) -> Rao { self.balances[a] ?? 0 }
    public func nonce(_ a: AccountID) -> UInt64 { self.nonces[a] ?? 0 }
    /// A coldkey's stake on a hotkey in a subnet (its shares valued at the pool's rate, floored).
    public func stake(coldkey: AccountID, hotkey: AccountID, netuid: UInt16) -> Rao {
        guard let shares = self.stakeShares[StakeKey(coldkey: coldkey, hotkey: hotkey, netuid: netuid)],
              let pool = self.hotkeyPools[HotkeyNet(hotkey: hotkey, netuid: netuid)] else { return 0 }
        return pool.value(of: shares)
    }

    /// Total stake on a hotkey in a subnet.
    public func totalStake(hotkey: AccountID, netuid: UInt16) -> Rao {
        self.hotkeyPools[HotkeyNet(hotkey: hotkey, netuid: netuid)]?.value ?? 0
    }

    /// Stake per hotkey in a subnet (one pass).
    public func stakeByHotkey(netuid: UInt16) -> [AccountID: Rao] {
        var out: [AccountID: Rao] = [:]
        for (k, p) in self.hotkeyPools where k.netuid == netuid { out[k.hotkey] = p.value }
        return out
    }

    /// Every stake entry as (key, stake), sorted, optionally only those of one coldkey or hotkey.
    public func stakeEntries(involving account: AccountID? = nil) -> [(key: StakeKey, amount: Rao)] {
        self.stakeShares.keys.filter { account == nil || $0.coldkey == account || $0.hotkey == account }.sorted()
            .map { ($0, self.stake(coldkey: $0.coldkey, hotkey: $0.hotkey, netuid: $0.netuid)) }
    }

    /// The coldkey owning `hotkey`, if any.
    public func owner(of hotkey: AccountID) -> AccountID? { self.hotkeyOwners[hotkey] }

    /// A hotkey's take (u16 proportion): what its owner set, or the chain's default.
    public func delegateTake(of hotkey: AccountID) -> UInt16 { self.delegateTakes[hotkey] ?? self.params.maxDelegateTake }

    /// Every rao that exists: free balances and the pools' TAO reserves (the root subnet's is
    /// all root stake). Equals issuance − burned.
    public var accountedSupply: Rao {
        var t: Rao = 0
        for v in self.balances.values { t += v }
        for s in self.subnets.values { t += s.pool.taoIn }
        return t
    }

    /// Every unit of a subnet's alpha outside its reserve, by where it is: stakes, pending
    /// emission, the protocol's, burned. Equals the pool's `alphaOut` (root: all root stake).
    public func accountedAlpha(_ netuid: UInt16) -> UInt64 {
        guard let s = self.subnets[netuid] else { return 0 }
        var t: UInt64 = 0
        for (k, p) in self.hotkeyPools where k.netuid == netuid { t += p.value }
        if netuid == 0 { return t }
        return t + s.pendingServer + s.pendingValidator + s.pool.pendingRoot + s.pool.pendingOwnerCut + s.pool.protocolAlpha + s.pool.burnedAlpha
    }

    // MARK: State root

    public mutating func stateRoot() -> Hash32 {
        if self.dirtyAccounts {
            var w = ByteWriter(capacity: self.balances.count * 56)
            let keys = Set(self.balances.keys).union(self.nonces.keys).sorted()
            w.varint(keys.count)
            for k in keys {
                k.encode(to: &w)
                w.u64(self.balance(k))
                w.u64(self.nonce(k))
            }
            self.cachedAccounts = Hash32.of(w.bytes)
            self.dirtyAccounts = false
        }
        if self.dirtyStake {
            var w = ByteWriter(capacity: self.stakeShares.count * 88 + self.hotkeyPools.count * 58)
            self.encodeStake(to: &w)
            self.cachedStake = Hash32.of(w.bytes)
            self.dirtyStake = false
        }
        if self.dirtyDelegation {
            var w = ByteWriter(capacity: self.hotkeyOwners.count * 64)
            self.encodeDelegation(to: &w)
            self.cachedDelegation = Hash32.of(w.bytes)
            self.dirtyDelegation = false
        }
        if self.dirtySubnets {
            var w = ByteWriter()
            for id in self.subnets.keys.sorted() { self.subnets[id]!.encode(to: &w) }
            self.cachedSubnets = Hash32.of(w.bytes)
            self.dirtySubnets = false
        }
        var g = ByteWriter(capacity: 512)
        self.encodeGlobal(to: &g)
        return Hash32.of(Hash32.of(g.bytes).bytes + self.cachedAccounts.bytes + self.cachedStake.bytes + self.cachedSubnets.bytes
                         + self.cachedDelegation.bytes)
    }

    func encodeStake(to w: inout ByteWriter) {
        let pools = self.hotkeyPools.keys.sorted()
        w.varint(pools.count)
        for k in pools { k.encode(to: &w); self.hotkeyPools[k]!.encode(to: &w) }
        let keys = self.stakeShares.keys.sorted()
        w.varint(keys.count)
        for k in keys { k.encode(to: &w); StakeShares.write(self.stakeShares[k]!, to: &w) }
        let deposits = self.stakeDeposits.keys.sorted()
        w.varint(deposits.count)
        for k in deposits { k.encode(to: &w); w.u64(self.stakeDeposits[k]!) }
    }

    mutating func decodeStake(from r: inout ByteReader) throws(CodecError) {
        let np = try r.length(field: "hotkeyPools", limit: 10_000_000)
        for _ in 0..<np {
            let k = try HotkeyNet(from: &r)
            self.hotkeyPools[k] = try HotkeyPool(from: &r)
        }
        let ns = try r.length(field: "stakes", limit: 10_000_000)
        for _ in 0..<ns {
            let k = try StakeKey(from: &r)
            self.stakeShares[k] = StakeShares.read(try r.u64(), try r.u64())
        }
        let nd = try r.length(field: "stakeDeposits", limit: 10_000_000)
        for _ in 0..<nd {
            let k = try StakeKey(from: &r)
            self.stakeDeposits[k] = try r.u64()
        }
    }

    func encodeDelegation(to w: inout ByteWriter) {
        let owners = self.hotkeyOwners.keys.sorted()
        w.varint(owners.count)
        for k in owners { k.encode(to: &w); self.hotkeyOwners[k]!.encode(to: &w) }
        let takes = self.delegateTakes.keys.sorted()
        w.varint(takes.count)
        for k in takes { k.encode(to: &w); w.u16(self.delegateTakes[k]!) }
        let changed = self.takeChangedAt.keys.sorted()
        w.varint(changed.count)
        for k in changed { k.encode(to: &w); w.u64(self.takeChangedAt[k]!) }
        let parents = self.childKeys.keys.sorted()
        w.varint(parents.count)
        for k in parents { k.encode(to: &w); w.list(self.childKeys[k]!) }
        let pending = self.pendingChildKeys.keys.sorted()
        w.varint(pending.count)
        for k in pending { k.encode(to: &w); self.pendingChildKeys[k]!.encode(to: &w) }
        for table in [self.childkeyTakes.mapValues { UInt64($0) }, self.childrenSetAt, self.childkeyTakeSetAt] {
            let keys = table.keys.sorted()
            w.varint(keys.count)
            for k in keys { k.encode(to: &w); w.u64(table[k]!) }
        }
    }

    mutating func decodeDelegation(from r: inout ByteReader) throws(CodecError) {
        let no = try r.length(field: "hotkeyOwners", limit: 10_000_000)
        for _ in 0..<no {
            let k = try AccountID(from: &r)
            self.hotkeyOwners[k] = try AccountID(from: &r)
        }
        let nt = try r.length(field: "delegateTakes", limit: 10_000_000)
        for _ in 0..<nt {
            let k = try AccountID(from: &r)
            self.delegateTakes[k] = try r.u16()
        }
        let nc = try r.length(field: "takeChangedAt", limit: 10_000_000)
        for _ in 0..<nc {
            let k = try AccountID(from: &r)
            self.takeChangedAt[k] = try r.u64()
        }
        let np = try r.length(field: "childKeys", limit: 1_000_000)
        for _ in 0..<np {
            let k = try HotkeyNet(from: &r)
            self.childKeys[k] = try r.list(of: ChildLink.self, field: "children", limit: ChildLink.maxChildren, minElementSize: 40)
        }
        let nq = try r.length(field: "pendingChildKeys", limit: 1_000_000)
        for _ in 0..<nq {
            let k = try HotkeyNet(from: &r)
            self.pendingChildKeys[k] = try PendingChildren(from: &r)
        }
        var tables: [[HotkeyNet: UInt64]] = []
        for name in ["childkeyTakes", "childrenSetAt", "childkeyTakeSetAt"] {
            var t: [HotkeyNet: UInt64] = [:]
            let n = try r.length(field: name, limit: 1_000_000)
            for _ in 0..<n {
                let k = try HotkeyNet(from: &r)
                t[k] = try r.u64()
            }
            tables.append(t)
        }
        for (k, v) in tables[0] {
            guard let t = UInt16(exactly: v) else { throw .invalidValue(field: "childkeyTakes", reason: "\(v)") }
            self.childkeyTakes[k] = t
        }
        self.childrenSetAt = tables[1]
        self.childkeyTakeSetAt = tables[2]
    }

    func encodeGlobal(to w: inout ByteWriter) {
        self.params.encode(to: &w)
        w.u64(self.number); w.u64(self.lastTimestamp)
        w.u64(self.totalIssuance); w.u64(self.totalBurned)
        w.optional(self.sudo) { w, s in s.encode(to: &w) }
        w.list(self.authorities); w.u64(self.authoritySetId)
        w.optional(self.pendingAuthorityChange) { w, p in p.encode(to: &w) }
        w.u64(self.lastLockCost); w.u64(self.lastLockBlock)
        w.list(self.reportedEquivocations.sorted())
    }
}

extension ChainState: BinaryCodable {
    /// The full state (for snapshots in the store).
    public func encode(to w: inout ByteWriter) {
        self.encodeGlobal(to: &w)
        let keys = Set(self.balances.keys).union(self.nonces.keys).sorted()
        w.varint(keys.count)
        for k in keys { k.encode(to: &w); w.u64(self.balance(k)); w.u64(self.nonce(k)) }
        self.encodeStake(to: &w)
        self.encodeDelegation(to: &w)
        let ids = self.subnets.keys.sorted()
        w.varint(ids.count)
        for id in ids { self.subnets[id]!.encode(to: &w) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let params = try ChainParams(from: &r)
        self.init(params: params)
        self.number = try r.u64(); self.lastTimestamp = try r.u64()
        self.totalIssuance = try r.u64(); self.totalBurned = try r.u64()
        self.sudo = try r.optional { (r: inout ByteReader) throws(CodecError) in try AccountID(from: &r) }
        self.authorities = try r.list(of: WeightedAuthority.self, limit: 1024, minElementSize: 40)
        self.authoritySetId = try r.u64()
        self.pendingAuthorityChange = try r.optional { (r: inout ByteReader) throws(CodecError) in try PendingAuthorityChange(from: &r) }
        self.lastLockCost = try r.u64(); self.lastLockBlock = try r.u64()
        self.reportedEquivocations = Set(try r.list(of: Hash32.self, limit: 1 << 20, minElementSize: 32))
        let na = try r.length(field: "accounts", limit: 10_000_000)
        for _ in 0..<na {
            let k = try AccountID(from: &r)
            let b = try r.u64()
            let n = try r.u64()
            if b > 0 { self.balances[k] = b }
            if n > 0 { self.nonces[k] = n }
        }
        try self.decodeStake(from: &r)
        try self.decodeDelegation(from: &r)
        let nn = try r.length(field: "subnets", limit: 65536)
        for _ in 0..<nn {
            let s = try Subnet(from: &r)
            self.subnets[s.netuid] = s
        }
    }
}
