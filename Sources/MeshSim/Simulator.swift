import MeshCodec
import MeshCrypto

/// A discrete-event simulator with virtual time (nanoseconds) and one seeded PRNG.
///
/// Events run in (time, sequence) order, so two runs with the same seed execute the same
/// events in the same order. Every event folds a fingerprint into the trace hash, which
/// therefore identifies the whole run.
public final class Simulator {
    public private(set) var now: UInt64 = 0
    /// `now` as the cores take it.
    public var instant: Instant { Instant(nanoseconds: self.now) }
    public var rng: SimRandom
    public let seed: UInt64
    private var queue = EventHeap<SimAction>()
    private var sequence: UInt64 = 0
    private let traceLog = SimTrace(chunk: 1 << 16)
    public private(set) var eventCount: UInt64 = 0

    public init(seed: UInt64) {
        self.seed = seed
        self.rng = SimRandom(seed: seed)
    }

    /// Schedules `action` at `time` (clamped to now).
    public func schedule(at time: UInt64, _ action: @escaping () -> Void) {
        self.sequence += 1
        self.queue.push(time: max(time, self.now), seq: self.sequence, SimAction(run: action))
    }

    public func schedule(after delay: UInt64, _ action: @escaping () -> Void) {
        self.schedule(at: self.now &+ delay, action)
    }

    /// Adds an event fingerprint to the trace.
    public func trace(_ kind: UInt8, _ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) {
        self.traceLog.record(at: self.now, kind, a, b, c)
    }

    /// The hash of every traced event so far.
    public func traceHash() -> String { Hex.encode(self.traceLog.digest()) }

    /// Runs events until the queue is empty or virtual time passes `end`.
    public func run(until end: UInt64) {
        while let time = self.queue.nextTime, time <= end {
            let action = self.queue.pop()!
            self.now = time
            self.eventCount += 1
            action.run()
        }
        self.now = max(self.now, end)
    }
}

/// A running SHA-256 over event fingerprints (time, kind, three values), buffered in chunks:
/// one writer for many events (a fingerprint per delivered message).
final class SimTrace {
    private var buffer: ByteWriter
    private let hasher = SHA256.Hasher()
    private let chunk: Int

    init(chunk: Int) {
        self.chunk = chunk
        self.buffer = ByteWriter(capacity: chunk + 64)
    }

    func record(at now: UInt64, _ kind: UInt8, _ a: UInt64, _ b: UInt64, _ c: UInt64) {
        self.buffer.u64(now)
        self.buffer.u8(kind)
        self.buffer.u64(a)
        self.buffer.u64(b)
        self.buffer.u64(c)
        if self.buffer.count >= self.chunk { self.flush() }
    }

    private func flush() {
        self.hasher.update(self.buffer.bytes)
        self.buffer = ByteWriter(capacity: self.chunk + 64)
    }

    /// The hash of everything recorded so far; the running hash stays chained for later calls.
    func digest() -> [UInt8] {
        self.flush()
        let h = self.hasher.finalize()
        self.hasher.update(h)
        return h
    }
}

/// An event's closure. A closure in a struct: an array of bare closures (or a generic
/// container holding them) stores them at the generic abstraction level, so every store and
/// load went through a reabstraction thunk, allocated each time (two allocations per event);
/// a struct's field keeps the closure's own representation.
struct SimAction {
    let run: () -> Void
}

/// A binary min-heap of events by (time, sequence) carrying a `Payload` each (an action, or a
/// typed message in the lane simulator). The heap orders plain keys (time, sequence, slot);
/// the payloads stay put in a slab, so sifting moves three integers and never retains or
/// releases one (it did, and that was a tenth of a node run).
struct EventHeap<Payload> {
    private struct Key {
        let time: UInt64
        let seq: UInt64
        let slot: Int32
        @inline(__always) static func < (a: Key, b: Key) -> Bool { a.time != b.time ? a.time < b.time : a.seq < b.seq }
    }

    private var keys: [Key] = []
    private var payloads: [Payload?] = []
    private var free: [Int32] = []

    /// The earliest event's time, if any.
    var nextTime: UInt64? { self.keys.first?.time }

    mutating func push(time: UInt64, seq: UInt64, _ payload: __owned Payload) {
        let slot: Int32
        if let f = self.free.popLast() {
            slot = f
            self.payloads[Int(f)] = payload
        } else {
            slot = Int32(self.payloads.count)
            self.payloads.append(payload)
        }
        self.keys.append(Key(time: time, seq: seq, slot: slot))
        var i = self.keys.count - 1
        let k = self.keys[i]
        while i > 0 {
            let p = (i - 1) / 2
            if !(k < self.keys[p]) { break }
            self.keys[i] = self.keys[p]
            i = p
        }
        self.keys[i] = k
    }

    /// Removes the earliest event and returns its payload.
    @discardableResult
    mutating func pop() -> Payload? {
        guard !self.keys.isEmpty else { return nil }
        let top = self.keys[0]
        let action = self.payloads[Int(top.slot)].take()
        self.free.append(top.slot)
        let last = self.keys.removeLast()
        let n = self.keys.count
        if n > 0 {
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var m = l
                if l + 1 < n && self.keys[l + 1] < self.keys[l] { m = l + 1 }
                if !(self.keys[m] < last) { break }
                self.keys[i] = self.keys[m]
                i = m
            }
            self.keys[i] = last
        }
        return action
    }

    var count: Int { self.keys.count }
}
