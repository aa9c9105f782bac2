import MeshCodec
import MeshCrypto

/// A discrete-event simulator with virtual time (nanoseconds) and one seeded PRNG.
///
/// Events run in (time, sequence) order, so two runs with the same seed execute the same
/// events in the same order. Every event folds a fingerprint into the trace hash, which
/// therefore identifies the whole run.
public final class Simulator {
    public private(set) var now: UInt64 = 0
    public var rng: SimRandom
    public let seed: UInt64
    private var queue = EventHeap()
    private var sequence: UInt64 = 0
    private var traceBuffer: [UInt8] = []
    private let traceHasher = SHA256.Hasher()
    public private(set) var eventCount: UInt64 = 0

    public init(seed: UInt64) {
        self.seed = seed
        self.rng = SimRandom(seed: seed)
    }

    /// Schedules `action` at `time` (clamped to now).
    public func schedule(at time: UInt64, _ action: @escaping () -> Void) {
        self.sequence += 1
        self.queue.push(SimEvent(time: max(time, self.now), seq: self.sequence, action: action))
    }

    public func schedule(after delay: UInt64, _ action: @escaping () -> Void) {
        self.schedule(at: self.now &+ delay, action)
    }

    /// Adds an event fingerprint to the trace.
    public func trace(_ kind: UInt8, _ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) {
        var w = ByteWriter(capacity: 33)
        w.u64(self.now); w.u8(kind); w.u64(a); w.u64(b); w.u64(c)
        self.traceBuffer.append(contentsOf: w.bytes)
        if self.traceBuffer.count >= 1 << 16 {
            self.traceHasher.update(self.traceBuffer)
            self.traceBuffer.removeAll(keepingCapacity: true)
        }
    }

    /// The hash of every traced event so far.
    public func traceHash() -> String {
        self.traceHasher.update(self.traceBuffer)
        self.traceBuffer.removeAll()
        let h = self.traceHasher.finalize()
        // Keep the running hash chained for later calls.
        self.traceHasher.update(h)
        return Hex.encode(h)
    }

    /// Runs events until the queue is empty or virtual time passes `end`.
    public func run(until end: UInt64) {
        while let next = self.queue.peek(), next.time <= end {
            self.queue.pop()
            self.now = next.time
            self.eventCount += 1
            next.action()
        }
        self.now = max(self.now, end)
    }
}

struct SimEvent {
    let time: UInt64
    let seq: UInt64
    let action: () -> Void
}

struct EventHeap {
    private var items: [SimEvent] = []

    func peek() -> SimEvent? { self.items.first }

    private func less(_ a: SimEvent, _ b: SimEvent) -> Bool { a.time != b.time ? a.time < b.time : a.seq < b.seq }

    mutating func push(_ e: SimEvent) {
        self.items.append(e)
        var i = self.items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !self.less(self.items[i], self.items[p]) { break }
            self.items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() {
        let last = self.items.count - 1
        self.items.swapAt(0, last)
        self.items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < self.items.count && self.less(self.items[l], self.items[m]) { m = l }
            if r < self.items.count && self.less(self.items[r], self.items[m]) { m = r }
            if m == i { break }
            self.items.swapAt(i, m)
            i = m
        }
    }

    var count: Int { self.items.count }
}
