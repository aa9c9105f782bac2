import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// What sync remembers between events (sans-IO): blocks being fetched by hash and when they
/// may be asked for again, and when sync last made progress. The decisions on what to ask
/// whom are `NodeCore+Sync`'s; this keeps their bounded state and the "are we syncing" rule.
struct SyncState {
    /// How far above our best a block may be fetched by hash (forks near the tip).
    static let maxFetchAhead: UInt64 = 256
    /// Blocks fetched by hash at once, at most.
    static let maxFetches = 1024
    /// A fetch by hash may be repeated after this long.
    static let fetchRetry: Duration = .seconds(5)
    /// Range answers held, across all peers, while ranges below them are in flight; an
    /// answer past it is dropped with its range (and asked again later).
    static let maxHeldAnswers = 4
    /// Bytes of those answers (as received), across all peers. One answer may be as large
    /// as a channel message (16 MiB) and its decoded blocks take several times that, so the
    /// count alone let four peers hold well over the 64 MiB an attack may cost; an honest
    /// answer stops after 8 MiB and one block.
    static let maxHeldBytes = 16 << 20

    /// Blocks being fetched by hash, and when the fetch may be retried.
    private(set) var fetches: [Hash32: Instant] = [:]
    /// When sync last imported a block.
    private(set) var lastProgress: Instant?

    /// Whether a fetch of `hash` may start now (not asked recently, room in the table);
    /// records it when so.
    mutating func beginFetch(_ hash: Hash32, now: Instant) -> Bool {
        if let t = self.fetches[hash], now < t { return false }
        if self.fetches.count >= Self.maxFetches {
            self.fetches = self.fetches.filter { $0.value > now }
            if self.fetches.count >= Self.maxFetches { return false }  // enough in flight; sync covers the rest
        }
        self.fetches[hash] = now + Self.fetchRetry
        return true
    }

    /// Forgets a fetch (its block arrived, or it must be asked again at once).
    mutating func forgetFetch(_ hash: Hash32) { self.fetches[hash] = nil }

    mutating func noteProgress(_ now: Instant) { self.lastProgress = now }

    /// Whether the node is catching up: a peer claims to be ahead by more than two blocks
    /// *and* sync imported blocks within the last two seconds (or two slots). A peer's claimed
    /// best is only a hint — one that claims 2^64 − 1 and delivers nothing never stops block
    /// production.
    func isSyncing(now: Instant, ourBest: UInt64, peerBests: [UInt64], slotMillis: UInt64) -> Bool {
        guard let last = self.lastProgress else { return false }
        let window = max(Duration.seconds(2), .milliseconds(Int64(clamping: slotMillis.multipliedSaturated(by: 2))))
        guard now.since(last) < window else { return false }
        return peerBests.contains { $0 > ourBest.addingSaturated(2) }
    }
}

/// One range-sync request of a peer's pipeline: blocks `from ..< end` asked for, and the
/// answer when it came before the answers of the ranges below it (kept, as received, until
/// they are applied: blocks are imported in order of their numbers, never out of it).
struct SyncRange: Sendable {
    let rid: RequestID
    let from: UInt64
    let count: UInt64
    /// The answer's bytes (checked to decode when it came), held while a range below it is
    /// still in flight: its size is what it costs, not the several times more of its blocks.
    var answer: [UInt8]?

    /// Just past the last block asked for (`from + count` does not overflow: requests are
    /// clamped so that it cannot).
    var end: UInt64 { self.from + self.count }
}

/// When this validator may produce: slot boundaries on the wall clock (sans-IO).
struct SlotSchedule {
    let slotMillis: UInt64
    /// The wall-clock time (ms) of the next slot check: just after the next boundary.
    private(set) var nextAt: UInt64 = .max
    /// The last slot we produced in.
    private(set) var lastProduced: UInt64 = 0

    init(slotMillis: UInt64) { self.slotMillis = max(1, slotMillis) }

    /// Schedules the next check just after the slot boundary following `wallMillis`.
    mutating func arm(wallMillis: UInt64) {
        self.nextAt = (wallMillis / self.slotMillis).addingSaturated(1).multipliedSaturated(by: self.slotMillis).addingSaturated(1)
    }

    /// The slot to produce in at `wallMillis`, if any: a slot we did not produce in yet, and
    /// not one we are late for by half its length or more (skipped, not produced late).
    func due(wallMillis: UInt64) -> UInt64? {
        let slot = wallMillis / self.slotMillis
        guard slot > self.lastProduced, wallMillis - slot * self.slotMillis < self.slotMillis / 2 else { return nil }
        return slot
    }

    mutating func produced(_ slot: UInt64) { self.lastProduced = max(self.lastProduced, slot) }
}
