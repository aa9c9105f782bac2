import Dispatch
import MeshCodec
import MeshCrypto
import Synchronization

/// A conservative parallel discrete-event simulator for actors that touch one another only
/// through messages that take at least `lookahead` of virtual time — whole nodes joined by
/// links with a minimum latency.
///
/// Each actor is a *lane* with its own event queue, clock, trace and counters. Time advances
/// in windows `[t, t + lookahead)` where `t` is the earliest pending event: nothing sent in a
/// window can arrive before the window ends, so the lanes' events inside it are independent and
/// run on `workers` threads at once. What a lane sends to another goes to its outbox; at the
/// window's end (a barrier) the outboxes are handed to the receivers' inboxes in lane order,
/// and each lane moves its inbox into its queue on its own thread when it next runs.
/// *Global* events (a crash, a restart, a partition's start, a submitted transaction) run alone
/// between windows at their exact time and may touch every lane.
///
/// Determinism: a lane's events run in (time, sequence) order; sequence numbers come from the
/// lane's own counter, for its own schedules in the order it made them and for merged messages
/// in (sender lane, send order) — none depends on which thread ran what or when. The same seed
/// therefore gives the same run, and the same trace hash, for any number of workers; the
/// scenarios' tests check 1 against 2.
public final class LaneSimulator<Message>: @unchecked Sendable {
    // Safety: inside a window each lane is run by exactly one worker (claimed through `claim`)
    // and its events touch only that lane's state, plus state that is itself thread-safe
    // (`SignatureCache`); sends to other lanes go to the running lane's outbox. Everything else
    // — global events, outbox merges, window bookkeeping — runs on the calling thread while no
    // window is open; `concurrentPerform` returning is the barrier between the two.

    public let seed: UInt64
    /// The smallest delay of a message between lanes (ns).
    public let lookahead: UInt64
    public let workers: Int
    /// Global randomness: draws made by global events (and by setup).
    public var rng: SimRandom
    /// Called on the calling thread after every window and every batch of global events, when
    /// no lane is running (for checkers that compare lanes).
    public var onBarrier: () -> Void = {}
    /// Runs a typed message on the lane it was sent to (set before `run`). The common
    /// message of a scenario travels as data instead of a closure: no allocation of a closure
    /// context per message.
    public var deliver: (Message) -> Void = { _ in preconditionFailure("LaneSimulator.deliver is not set") }

    /// What a lane's queue holds.
    enum Event {
        case action(SimAction)
        case message(Message)
    }

    final class Lane {
        var queue = EventHeap<Event>()
        var now: UInt64 = 0
        var sequence: UInt64 = 0
        let outbox = Mailbox()
        /// Messages from other lanes, in (sender lane, send order), not in `queue` yet: each
        /// lane moves its own into its queue on its own thread before it runs (the barrier
        /// only moves them here).
        let inbox = Mailbox()
        var inboxEarliest = UInt64.max

        /// The earliest pending event, in the queue or the inbox.
        var nextTime: UInt64 { min(self.queue.nextTime ?? .max, self.inboxEarliest) }

        func takeInbox() {
            guard self.inbox.count > 0 else { return }
            self.inbox.drain { o in self.push(o.time, o.event) }
            self.inboxEarliest = .max
        }
        var events: UInt64 = 0
        let trace = SimTrace(chunk: 1 << 12)

        func push(_ time: UInt64, _ event: __owned Event) {
            self.sequence += 1
            self.queue.push(time: max(time, self.now), seq: self.sequence, event)
        }
    }

    struct Outgoing {
        let lane: Int
        let time: UInt64
        let event: Event
    }

    /// A growable buffer of messages between lanes that hands them on by moving them: an
    /// array copied each message out (a retain) and released it when emptied, twice per
    /// message (outbox to inbox at the barrier, inbox to queue), and the barrier's share runs
    /// on one thread while the others wait.
    final class Mailbox {
        private var base: UnsafeMutablePointer<Outgoing>
        private var capacity: Int
        private(set) var count = 0

        init(capacity: Int = 64) {
            precondition(capacity > 0, "a mailbox needs room for one message")
            self.base = .allocate(capacity: capacity)
            self.capacity = capacity
        }

        deinit {
            self.base.deinitialize(count: self.count)
            self.base.deallocate()
        }

        func append(_ o: __owned Outgoing) {
            assert(!self.draining, "a mailbox appended to while it drains")
            if self.count == self.capacity {
                let grown = UnsafeMutablePointer<Outgoing>.allocate(capacity: 2 * self.capacity)
                grown.moveInitialize(from: self.base, count: self.count)
                self.base.deallocate()
                self.base = grown
                self.capacity *= 2
            }
            (self.base + self.count).initialize(to: o)
            self.count += 1
        }

        /// Moves every message out to `body`, in order, and leaves the mailbox empty.
        func drain(_ body: (__owned Outgoing) -> Void) {
            let n = self.count
            self.count = 0  // (before the calls: `body` may append to another mailbox only)
            self.draining = true
            defer { self.draining = false }
            for i in 0..<n { body((self.base + i).move()) }
        }

        /// Set while `drain` runs: an append then would land where moved-out slots are read.
        private var draining = false
    }

    private let lanes: [Lane]
    private var global = EventHeap<SimAction>()
    private var globalSequence: UInt64 = 0
    private var globalTrace = Lane()
    /// The end of the window being run (lanes' sends must arrive at or after it).
    private var windowEnd: UInt64 = 0
    private var inWindow = false
    private let claim = Atomic<Int>(0)
    private var active: [Int] = []
    /// Virtual time of the last window's start or global event.
    public private(set) var now: UInt64 = 0
    public private(set) var windows: UInt64 = 0

    public init(seed: UInt64, lanes: Int, lookahead: UInt64, workers: Int) {
        precondition(lookahead > 0, "a lane simulator needs a positive lookahead")
        self.seed = seed
        self.rng = SimRandom(seed: seed)
        self.lookahead = lookahead
        self.workers = max(1, workers)
        self.lanes = (0..<lanes).map { _ in Lane() }
    }

    /// Lane `i`'s clock: the time of the event it is running (or of the global event running).
    @inline(__always)
    public func now(_ lane: Int) -> UInt64 { self.lanes[lane].now }

    /// Schedules an event on `lane` at `time` (clamped to the lane's now). Called from that
    /// lane's own events, or from global context.
    public func schedule(_ lane: Int, at time: UInt64, _ action: @escaping () -> Void) {
        self.lanes[lane].push(time, .action(SimAction(run: action)))
    }

    /// Sends an event from lane `from` to lane `to`, arriving at `time`, which must be at least
    /// the lookahead after the sender's now when a window is running.
    public func send(from: Int, to: Int, at time: UInt64, _ action: __owned @escaping () -> Void) {
        self.send(from: from, to: to, at: time, event: .action(SimAction(run: action)))
    }

    /// Sends `message` from lane `from` to lane `to`, where `deliver` runs it at `time`.
    public func send(from: Int, to: Int, at time: UInt64, message: __owned Message) {
        self.send(from: from, to: to, at: time, event: .message(message))
    }

    private func send(from: Int, to: Int, at time: UInt64, event: __owned Event) {
        if from == to || !self.inWindow {
            self.lanes[to].push(time, event)
            return
        }
        precondition(time >= self.windowEnd, "a message between lanes arrives before the lookahead (\(time) < \(self.windowEnd))")
        self.lanes[from].outbox.append(Outgoing(lane: to, time: time, event: event))
    }

    /// Schedules a global event: it runs alone, when every lane has run its earlier events.
    public func scheduleGlobal(at time: UInt64, _ action: @escaping () -> Void) {
        precondition(!self.inWindow, "global events are scheduled from setup or global events")
        self.globalSequence += 1
        self.global.push(time: max(time, self.now), seq: self.globalSequence, SimAction(run: action))
    }

    /// Adds an event fingerprint to lane `lane`'s trace (or the global trace for nil).
    public func trace(_ lane: Int?, _ kind: UInt8, _ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) {
        let l = lane.map { self.lanes[$0] } ?? self.globalTrace
        l.trace.record(at: l.now, kind, a, b, c)
    }

    /// The hash of every traced event: the global trace's digest, then each lane's in order.
    public func traceHash() -> String {
        let all = SHA256.Hasher()
        for l in [self.globalTrace] + self.lanes { all.update(l.trace.digest()) }
        return Hex.encode(all.finalize())
    }

    public var eventCount: UInt64 { self.lanes.reduce(self.globalTrace.events) { $0 + $1.events } }

    /// Runs until no event is left or virtual time passes `end`.
    public func run(until end: UInt64) {
        while true {
            var next = UInt64.max
            for l in self.lanes { next = min(next, l.nextTime) }
            let nextGlobal = self.global.nextTime ?? .max
            let start = min(next, nextGlobal)
            guard start != .max, start <= end else { break }
            if nextGlobal <= start {
                self.runGlobal(at: nextGlobal)
                continue
            }
            // end + 1: events at exactly `end` still run (as in `Simulator`).
            let (limit, overflow) = start.addingReportingOverflow(self.lookahead)
            let windowEnd = min(overflow ? .max : limit, nextGlobal, end &+ 1)
            self.runWindow(from: start, to: windowEnd)
        }
        self.now = max(self.now, end)
        for l in self.lanes { l.now = max(l.now, end) }
    }

    private func runGlobal(at time: UInt64) {
        self.now = time
        for l in self.lanes { l.now = max(l.now, time) }
        self.globalTrace.now = time
        while let t = self.global.nextTime, t == time {
            let action = self.global.pop()!
            self.globalTrace.events += 1
            action.run()
        }
        self.onBarrier()
    }

    private func runWindow(from start: UInt64, to windowEnd: UInt64) {
        self.now = start
        self.windowEnd = windowEnd
        self.windows += 1
        self.active.removeAll(keepingCapacity: true)
        for (i, l) in self.lanes.enumerated() where l.nextTime < windowEnd { self.active.append(i) }
        self.inWindow = true
        if self.workers == 1 || self.active.count == 1 {
            for i in self.active { self.runLane(self.lanes[i], until: windowEnd) }
        } else {
            self.claim.store(0, ordering: .relaxed)
            DispatchQueue.concurrentPerform(iterations: min(self.workers, self.active.count)) { _ in
                while true {
                    let k = self.claim.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard k < self.active.count else { break }
                    self.runLane(self.lanes[self.active[k]], until: windowEnd)
                }
            }
        }
        self.inWindow = false
        for l in self.lanes where l.outbox.count > 0 {
            l.outbox.drain { o in
                let to = self.lanes[o.lane]
                if o.time < to.inboxEarliest { to.inboxEarliest = o.time }
                to.inbox.append(o)
            }
        }
        self.onBarrier()
    }

    private func runLane(_ lane: Lane, until windowEnd: UInt64) {
        lane.takeInbox()
        while let time = lane.queue.nextTime, time < windowEnd {
            let event = lane.queue.pop()!
            lane.now = time
            lane.events += 1
            switch event {
            case .action(let action): action.run()
            case .message(let message): self.deliver(message)
            }
        }
    }
}
