import MeshCodec
import MeshCrypto

/// What the axon knows about a caller, from the subnet's metagraph.
public struct CallerInfo: Sendable, Equatable {
    public var uid: UInt16
    public var stake: UInt64
    public var validatorPermit: Bool

    public init(uid: UInt16, stake: UInt64, validatorPermit: Bool) {
        self.uid = uid
        self.stake = stake
        self.validatorPermit = validatorPermit
    }
}

/// Limits of an axon. Defaults suit a miner on a public subnet.
public struct AxonLimits: Sendable {
    /// Largest request body accepted; larger declared bodies get 413 before the body is read.
    public var maxBodyBytes: Int = 1 << 20
    /// Largest response body a handler may produce.
    public var maxResponseBytes: Int = 8 << 20
    /// How far ahead of now a deadline may be.
    public var maxDeadlineAheadMs: UInt64 = 120_000
    /// Tolerated clock difference between caller and miner.
    public var clockSkewMs: UInt64 = 2_000
    /// Per-caller token bucket: sustained requests per second and burst.
    public var ratePerSecond: Double = 200
    public var burst: Double = 400
    /// Handlers running at once; more wait in the priority queue.
    public var maxConcurrent: Int = 1024
    /// Requests waiting for a handler; when full, the lowest priority is refused with 503.
    public var maxQueued: Int = 4096
    /// Nonces remembered per caller (replay protection within the deadline horizon).
    public var maxNoncesPerCaller: Int = 65_536
    /// Junk (malformed, forged, blacklisted, unroutable) a connection may send: sustained per
    /// second and burst. Beyond it the connection is closed and its node id refused for
    /// ``junkBanSeconds``.
    public var junkPerSecond: Double = 20
    public var junkBurst: Double = 100
    public var junkBanSeconds: UInt64 = 60
    /// Signature checks of relayed headers, all callers together: sustained per second and
    /// burst. Beyond it relayed requests get an unsigned 429 without a check, so a relay
    /// forwarding forged headers cannot keep the miner verifying Ed25519 at line rate.
    public var relayedVerifyPerSecond: Double = 1000
    public var relayedVerifyBurst: Double = 2000

    public init() {}
}

/// Nonces seen from each caller whose deadlines have not passed: a replay inside the
/// horizon is caught here, a replay after it is refused as expired.
struct NonceCache {
    var byCaller: [Ed25519.PublicKey: [UInt64: UInt64]] = [:]  // nonce → deadline
    var lastPruneMs: UInt64 = 0

    /// Records the nonce; false if it was seen (or the caller's table is full).
    mutating func insert(caller: Ed25519.PublicKey, nonce: UInt64, deadline: UInt64, now: UInt64, limit: Int) -> Bool {
        if now &- self.lastPruneMs > 1000 { self.prune(now: now) }
        var table = self.byCaller[caller, default: [:]]
        if table[nonce] != nil { return false }
        if table.count >= limit {
            table = table.filter { $0.value >= now }
            if table.count >= limit { return false }
        }
        table[nonce] = deadline
        self.byCaller[caller] = table
        return true
    }

    mutating func prune(now: UInt64) {
        self.lastPruneMs = now
        for (caller, table) in self.byCaller {
            let kept = table.filter { $0.value >= now }
            self.byCaller[caller] = kept.isEmpty ? nil : kept
        }
    }
}

/// The admission decision of an axon for a request header, before any of its body is read:
/// Bittensor's hook order, blacklist → verify → priority, with the cheap refusals first so
/// junk costs little. Sans-IO: time, the directory and the hooks are inputs.
public struct AxonPolicy {
    public typealias Blacklist = @Sendable (QueryRequestHeader, CallerInfo?) -> String?
    public typealias Priority = @Sendable (QueryRequestHeader, CallerInfo?) -> Double

    /// Hotkeys this axon answers for.
    public var served: Set<Ed25519.PublicKey>
    public var limits: AxonLimits
    /// Synapse names with a handler.
    public var synapses: Set<String>
    /// The subnet's registered hotkeys (refreshed from the metagraph).
    public var directory: [Ed25519.PublicKey: CallerInfo] = [:]
    /// The subnet served (requests for another netuid are refused).
    public var netuid: UInt16
    public var blacklist: Blacklist
    public var priority: Priority
    var buckets: [Ed25519.PublicKey: TokenBucket] = [:]
    var nonces = NonceCache()
    var relayedVerify: TokenBucket?

    /// Refuses callers that are not registered or hold no validator permit.
    public static let defaultBlacklist: Blacklist = { header, info in
        guard let info else { return "hotkey \(header.caller.hex.prefix(16))… is not registered on subnet \(header.netuid)" }
        guard info.validatorPermit else { return "hotkey \(header.caller.hex.prefix(16))… (uid \(info.uid)) has no validator permit" }
        return nil
    }

    /// Priority by the caller's stake.
    public static let defaultPriority: Priority = { _, info in Double(info?.stake ?? 0) }

    public init(served: Set<Ed25519.PublicKey>, netuid: UInt16, synapses: Set<String>, limits: AxonLimits = AxonLimits(),
                blacklist: @escaping Blacklist = AxonPolicy.defaultBlacklist, priority: @escaping Priority = AxonPolicy.defaultPriority) {
        self.served = served
        self.netuid = netuid
        self.synapses = synapses
        self.limits = limits
        self.blacklist = blacklist
        self.priority = priority
    }

    /// The outcome of screening a header.
    public enum Decision: Equatable {
        /// Admitted with this priority; the body may be read.
        case admit(priority: Double)
        /// Refused; `verified` says whether the signature was checked (signed refusals only then).
        case refuse(QueryStatus, String, verified: Bool)
    }

    /// How a request reached the axon.
    public enum Channel: Equatable, Sendable {
        /// On a secure channel whose handshake proved this identity.
        case direct(Ed25519.PublicKey?)
        /// Through the relay the miner is connected to: only the signature proves the caller.
        case relayed
    }

    /// Screens a header at wall-clock time `now` (Unix ms). On a direct channel the caller must
    /// be the channel's own identity: the handshake bound the channel to the caller's key and
    /// the AEAD protects every byte, so the header's signature (kept for the record) is not
    /// verified again, and a header naming anyone else is refused without a signature check.
    /// Relayed requests are verified by their signature.
    public mutating func screen(_ h: QueryRequestHeader, now: UInt64, channel: Channel = .relayed) -> Decision {
        // Structural checks: cheapest first.
        guard self.served.contains(h.target) else { return .refuse(.notFound, "hotkey \(h.target.hex.prefix(16))… is not served here", verified: false) }
        guard h.netuid == self.netuid else { return .refuse(.notFound, "this axon serves subnet \(self.netuid), not \(h.netuid)", verified: false) }
        guard self.synapses.contains(h.synapse) else { return .refuse(.notFound, "no handler for synapse \(h.synapse)", verified: false) }
        guard Int(h.bodyLength) <= self.limits.maxBodyBytes else {
            return .refuse(.payloadTooLarge, "body of \(h.bodyLength) bytes exceeds the limit of \(self.limits.maxBodyBytes)", verified: false)
        }
        // The deadline is the caller's number: saturate, never trap (2^64 - 1 is a valid field value).
        let skew = self.limits.clockSkewMs
        guard h.deadline.addingSaturated(skew) > now else { return .refuse(.timeout, "deadline already passed", verified: false) }
        guard h.deadline <= now.addingSaturated(self.limits.maxDeadlineAheadMs).addingSaturated(skew) else {
            return .refuse(.badRequest, "deadline more than \(self.limits.maxDeadlineAheadMs / 1000) s ahead", verified: false)
        }
        // Blacklist, before paying for a signature check.
        let info = self.directory[h.caller]
        if let reason = self.blacklist(h, info) { return .refuse(.forbidden, reason, verified: false) }
        // Verify.
        switch channel {
        case .direct(let peer):
            guard h.caller == peer else { return .refuse(.unauthorized, "the caller is not this channel's identity", verified: false) }
        case .relayed:
            let l = self.limits
            var budget = self.relayedVerify ?? TokenBucket(tokens: l.relayedVerifyBurst, updatedAt: now)
            let affordable = budget.take(now: now, rate: l.relayedVerifyPerSecond, burst: l.relayedVerifyBurst, ticksPerSecond: 1000)
            self.relayedVerify = budget
            guard affordable else { return .refuse(.tooManyRequests, "too many relayed requests to verify; retry later", verified: false) }
            guard h.hasValidSignature else { return .refuse(.unauthorized, "bad signature", verified: false) }
        }
        guard self.nonces.insert(caller: h.caller, nonce: h.nonce, deadline: h.deadline.addingSaturated(skew), now: now,
                                 limit: self.limits.maxNoncesPerCaller) else {
            return .refuse(.unauthorized, "nonce \(h.nonce) already used", verified: true)
        }
        // Rate limit.
        var bucket = self.buckets[h.caller] ?? TokenBucket(tokens: self.limits.burst, updatedAt: now)
        let allowed = bucket.take(now: now, rate: self.limits.ratePerSecond, burst: self.limits.burst, ticksPerSecond: 1000)
        if self.buckets.count >= 65_536 && self.buckets[h.caller] == nil { self.buckets.removeAll(keepingCapacity: true) }
        self.buckets[h.caller] = bucket
        guard allowed else { return .refuse(.tooManyRequests, "rate limit of \(Int(self.limits.ratePerSecond))/s exceeded", verified: true) }
        return .admit(priority: self.priority(h, info))
    }
}

/// Admitted requests waiting for a handler slot, highest priority first (ties: first come).
/// Bounded: when full, the lowest-priority entry is pushed out.
struct PriorityQueue<Item> {
    private var items: [(priority: Double, seq: UInt64, item: Item)] = []  // ascending
    private var seq: UInt64 = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { self.items.count }
    var isEmpty: Bool { self.items.isEmpty }

    /// Inserts; returns the item pushed out when over capacity (possibly the new one).
    mutating func push(_ item: Item, priority: Double) -> Item? {
        self.seq &+= 1
        // Later arrivals sort below earlier ones of equal priority.
        let key = (priority, UInt64.max - self.seq)
        var lo = 0
        var hi = self.items.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let m = self.items[mid]
            if (m.priority, m.seq) < key { lo = mid + 1 } else { hi = mid }
        }
        self.items.insert((priority, key.1, item), at: lo)
        if self.items.count > self.capacity { return self.items.removeFirst().item }
        return nil
    }

    /// The highest-priority item.
    mutating func pop() -> Item? { self.items.popLast()?.item }

    /// Removes items matching `predicate`.
    mutating func remove(where predicate: (Item) -> Bool) { self.items.removeAll { predicate($0.item) } }
}
