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
    /// Streams of one channel that may wait for their header at once; more are reset and
    /// charged as junk. The default equals the axon's default streams per channel: a busy
    /// honest sender (a relay, a fan-out) has many streams opened whose header is still in
    /// flight, because stream OPENs travel ahead of data. Lower it only with that in mind;
    /// silent streams are otherwise ended by ``headerTimeoutMs``.
    public var maxPendingHeaders: Int = 128
    /// A stream whose header has not arrived after this long is refused with 408 (and charged).
    /// Once admitted, a request is bounded by its own deadline.
    public var headerTimeoutMs: UInt64 = 10_000
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
    /// Callers remembered (nonces and rate limit), and nonces remembered in all; past either,
    /// the least recently seen callers are forgotten.
    public var maxCallers: Int = 4096
    public var maxNonces: Int = 1 << 20

    public init() {}
}

/// What the axon remembers per caller: the nonces whose deadlines have not passed (a replay
/// inside the horizon is caught here, one after it is refused as expired) and the caller's
/// rate-limit bucket. Bounded: at most `maxCallers` callers and `maxNonces` nonces in all;
/// past either, the least recently seen callers are forgotten (in batches, so the cost is
/// amortised). Pruning pops expired nonces from a per-caller deadline heap, so it costs what
/// expired, not the table's size.
struct NonceCache {
    struct Entry {
        var nonces: [UInt64: UInt64] = [:]  // nonce → deadline
        var byDeadline = DeadlineHeap()
        var bucket: TokenBucket?
        var lastSeen: UInt64 = 0

        /// Drops the nonces whose deadline is before `now`; returns how many.
        mutating func prune(now: UInt64) -> Int {
            var removed = 0
            while let top = self.byDeadline.min, top.deadline < now {
                self.byDeadline.popMin()
                // A nonce forgotten and seen again has a newer entry: leave that one.
                if self.nonces[top.nonce] == top.deadline {
                    self.nonces[top.nonce] = nil
                    removed += 1
                }
            }
            return removed
        }
    }

    var byCaller: [Ed25519.PublicKey: Entry] = [:]
    var lastPruneMs: UInt64 = 0
    /// Nonces held across all callers.
    private(set) var total = 0
    var maxCallers = 4096
    var maxNonces = 1 << 20

    /// Whether `nonce` from `caller` is remembered (seen, and its deadline not passed).
    mutating func contains(caller: Ed25519.PublicKey, nonce: UInt64, now: UInt64) -> Bool {
        guard self.byCaller[caller] != nil else { return false }
        self.total -= self.byCaller[caller]!.prune(now: now)
        return self.byCaller[caller]!.nonces[nonce] != nil
    }

    /// Takes one token from the caller's bucket (creating the caller's entry if needed).
    mutating func take(caller: Ed25519.PublicKey, now: UInt64, rate: Double, burst: Double) -> Bool {
        self.maintain(now: now, adding: caller)
        var bucket = self.byCaller[caller]!.bucket ?? TokenBucket(tokens: burst, updatedAt: now)
        let ok = bucket.take(now: now, rate: rate, burst: burst, ticksPerSecond: 1000)
        self.byCaller[caller]!.bucket = bucket
        self.byCaller[caller]!.lastSeen = max(self.byCaller[caller]!.lastSeen, now)
        return ok
    }

    /// Records the nonce; false if it was seen (or the caller's table is full).
    mutating func insert(caller: Ed25519.PublicKey, nonce: UInt64, deadline: UInt64, now: UInt64, limit: Int) -> Bool {
        self.maintain(now: now, adding: caller)
        self.total -= self.byCaller[caller]!.prune(now: now)
        self.byCaller[caller]!.lastSeen = max(self.byCaller[caller]!.lastSeen, now)
        // In place: `self.byCaller[caller]!.…` mutates the stored table without copying it.
        guard self.byCaller[caller]!.nonces[nonce] == nil, self.byCaller[caller]!.nonces.count < limit else { return false }
        self.byCaller[caller]!.nonces[nonce] = deadline
        self.byCaller[caller]!.byDeadline.push(deadline: deadline, nonce: nonce)
        self.total += 1
        if self.total > self.maxNonces { self.evict(now: now, keeping: caller) }
        return true
    }

    /// Prunes every caller about once a second, and makes room for a new caller.
    mutating func maintain(now: UInt64, adding caller: Ed25519.PublicKey) {
        if now &- self.lastPruneMs > 1000 { self.prune(now: now) }
        if self.byCaller[caller] == nil {
            if self.byCaller.count >= self.maxCallers { self.evict(now: now, keeping: caller) }
            self.byCaller[caller] = Entry(lastSeen: now)
        }
    }

    mutating func prune(now: UInt64) {
        self.lastPruneMs = now
        for caller in Array(self.byCaller.keys) {
            self.total -= self.byCaller[caller]!.prune(now: now)
            // A caller with no live nonce, quiet for ten minutes, has a full bucket again.
            if self.byCaller[caller]!.nonces.isEmpty && now &- self.byCaller[caller]!.lastSeen > 600_000 { self.byCaller[caller] = nil }
        }
    }

    /// Forgets the least recently seen eighth of the callers (at least one), never `keeping`.
    /// Their rate limits restart, and their live nonces are forgotten (a replay of those
    /// would pass): the price of a bounded table, paid only when it overflows.
    mutating func evict(now: UInt64, keeping: Ed25519.PublicKey) {
        self.prune(now: now)
        guard self.byCaller.count >= self.maxCallers || self.total > self.maxNonces else { return }
        let n = max(1, self.byCaller.count / 8)
        let victims = self.byCaller.lazy.filter { $0.key != keeping }.map { ($0.key, $0.value.lastSeen) }.sorted { $0.1 < $1.1 }.prefix(n)
        for (k, _) in victims { self.total -= self.byCaller.removeValue(forKey: k)?.nonces.count ?? 0 }
    }
}

/// A binary min-heap of (deadline, nonce).
struct DeadlineHeap {
    private var items: [(deadline: UInt64, nonce: UInt64)] = []

    var min: (deadline: UInt64, nonce: UInt64)? { self.items.first }
    var count: Int { self.items.count }

    mutating func push(deadline: UInt64, nonce: UInt64) {
        self.items.append((deadline, nonce))
        var i = self.items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard self.items[i].deadline < self.items[parent].deadline else { break }
            self.items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func popMin() {
        guard !self.items.isEmpty else { return }
        self.items.swapAt(0, self.items.count - 1)
        self.items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < self.items.count && self.items[l].deadline < self.items[m].deadline { m = l }
            if r < self.items.count && self.items[r].deadline < self.items[m].deadline { m = r }
            if m == i { return }
            self.items.swapAt(i, m)
            i = m
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
        /// Refused; `verified` says whether the refusal may be signed (the request was verified
        /// and the refusal is not one a caller can provoke in bulk). Screening signs none.
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
        // Replay (looked up, not yet recorded), then the rate limit, then record: refused
        // requests do not fill the nonce table. Both refusals are unsigned, so flooding them
        // does not make the miner sign (the axon charges them as junk).
        self.nonces.maxCallers = self.limits.maxCallers
        self.nonces.maxNonces = self.limits.maxNonces
        if self.nonces.contains(caller: h.caller, nonce: h.nonce, now: now) {
            return .refuse(.unauthorized, "nonce \(h.nonce) already used", verified: false)
        }
        guard self.nonces.take(caller: h.caller, now: now, rate: self.limits.ratePerSecond, burst: self.limits.burst) else {
            return .refuse(.tooManyRequests, "rate limit of \(self.limits.ratePerSecond)/s exceeded", verified: false)
        }
        guard self.nonces.insert(caller: h.caller, nonce: h.nonce, deadline: h.deadline.addingSaturated(skew), now: now,
                                 limit: self.limits.maxNoncesPerCaller) else {
            return .refuse(.tooManyRequests, "too many requests from this caller within the deadline horizon", verified: false)
        }
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
