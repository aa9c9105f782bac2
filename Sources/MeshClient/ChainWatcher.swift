import Dispatch
import Foundation
import MeshCodec
import Synchronization

/// Follows a node's chain for a long-running client (a subnet validator or miner, the apps
/// gateway): new best heads and subnet events (an epoch ran, a metagraph changed) through the
/// node's WebSocket subscriptions (`chain_subscribeNewHeads`, `subnet_subscribeEvents`), so a
/// metagraph is read again when it changes rather than on a timer.
///
/// - With an `http://` or `ws://` URL it subscribes over ``RPCWebSocket``. When the connection
///   drops (the node restarts) it reconnects with a back-off of 0.5 s doubling up to
///   `pollSeconds`, and reports a ``Update/resync`` after each attempt, so what changed in
///   between is read again.
/// - With an `https://` URL (the WebSocket client speaks plain `ws://` only) it polls: a
///   ``Update/resync`` every `pollSeconds`.
///
/// Updates are coalesced: a consumer that falls behind gets one update with the newest head and
/// every subnet that changed meanwhile, never a growing queue. The blocking WebSocket runs on
/// its own thread, off the cooperative pool.
public final class ChainWatcher: Sendable {
    /// What changed since the previous update.
    public struct Update: Sendable, Equatable {
        /// The newest best block number reported (nil: none since the previous update).
        public var head: UInt64?
        /// Subnets whose metagraph changed (neurons, stake, axons, weights, the epoch's results).
        public var metagraphChanged: Set<UInt16> = []
        /// Subnets whose epoch ran.
        public var epochRun: Set<UInt16> = []
        /// Anything may have changed: the first update, each (re)connection or failed attempt,
        /// and every poll. Read everything again.
        public var resync = false

        public init(head: UInt64? = nil, metagraphChanged: Set<UInt16> = [], epochRun: Set<UInt16> = [], resync: Bool = false) {
            self.head = head
            self.metagraphChanged = metagraphChanged
            self.epochRun = epochRun
            self.resync = resync
        }

        public var isEmpty: Bool { self.head == nil && self.metagraphChanged.isEmpty && self.epochRun.isEmpty && !self.resync }

        /// Whether `netuid`'s metagraph should be read again.
        public func touches(_ netuid: UInt16) -> Bool { self.resync || self.metagraphChanged.contains(netuid) || self.epochRun.contains(netuid) }

        /// Folds a later update into this one.
        public mutating func merge(_ o: Update) {
            if let h = o.head { self.head = max(self.head ?? 0, h) }
            self.metagraphChanged.formUnion(o.metagraphChanged)
            self.epochRun.formUnion(o.epochRun)
            self.resync = self.resync || o.resync
        }
    }

    /// How the watcher follows the chain.
    public enum Mode: String, Sendable {
        case subscriptions
        case polling
    }

    /// Counters for logs, metrics and tests.
    public struct Stats: Sendable, Equatable {
        /// Whether a WebSocket with every subscription is open now.
        public var subscribed = false
        /// Successful (re)connections, failed attempts, notifications received, polls.
        public var connections: UInt64 = 0
        public var failures: UInt64 = 0
        public var notifications: UInt64 = 0
        public var polls: UInt64 = 0
    }

    public let url: String
    public let netuids: [UInt16]
    public let pollSeconds: Double
    public let mode: Mode
    let logLine: @Sendable (String) -> Void
    private let state = Mutex(State())
    private let stopSignal = DispatchSemaphore(value: 0)
    private let wake: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    struct State {
        var pending = Update()
        var stats = Stats()
        var started = false
        var stopped = false
    }

    /// Most subnets followed by their own subscription; past it, one subscription to every
    /// subnet's events, filtered here.
    public static let maxSubnetSubscriptions = 16

    /// - Parameters:
    ///   - url: the node's RPC URL.
    ///   - netuids: the subnets whose events are wanted (empty: heads only).
    ///   - pollSeconds: the poll interval with an `https://` URL, and the longest wait between
    ///     reconnection attempts (bounded to 0.1 s ... 1 hour).
    public init(url: String, netuids: [UInt16], pollSeconds: Double, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.url = url
        self.netuids = Array(Set(netuids)).sorted()
        self.pollSeconds = pollSeconds.isFinite ? min(max(pollSeconds, 0.1), 3600) : 6
        let scheme = url.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        self.mode = (scheme == "https" || scheme == "wss") ? .polling : .subscriptions
        self.logLine = log
        (self.wake, self.wakeContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public var stats: Stats { self.state.withLock { $0.stats } }

    /// Follows the chain until the calling task is cancelled; `handle` gets each coalesced
    /// update in turn (the first is a ``Update/resync``). Runs once per watcher.
    public func run(_ handle: @Sendable (Update) async -> Void) async {
        let first = self.state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "ChainWatcher.run is called once per watcher")
        let thread = Thread { [self] in self.follow() }
        thread.name = "tensormesh.chain-watcher"
        thread.start()
        defer { self.stop() }
        for await _ in self.wake {
            let u = self.state.withLock { s -> Update in
                defer { s.pending = Update() }
                return s.pending
            }
            if !u.isEmpty { await handle(u) }
        }
    }

    /// Stops following (the thread ends within a second).
    func stop() {
        self.state.withLock { $0.stopped = true }
        self.stopSignal.signal()
        self.wakeContinuation.finish()
    }

    var stopped: Bool { self.state.withLock { $0.stopped } }

    func post(_ u: Update, _ count: (inout Stats) -> Void = { _ in }) {
        self.state.withLock {
            $0.pending.merge(u)
            count(&$0.stats)
        }
        self.wakeContinuation.yield()
    }

    /// Sleeps up to `seconds`; false when stopped meanwhile.
    func pause(_ seconds: Double) -> Bool {
        _ = self.stopSignal.wait(timeout: .now() + seconds)
        return !self.stopped
    }

    /// The watcher thread.
    func follow() {
        guard self.mode == .subscriptions else {
            self.logLine("following the chain by polling \(self.url) every \(self.pollSeconds) s (the WebSocket client speaks ws:// only)")
            repeat { self.post(Update(resync: true)) { $0.polls += 1 } } while self.pause(self.pollSeconds)
            return
        }
        var backoff = 0.5
        var announcedOutage = false
        while !self.stopped {
            do {
                try self.subscribeAndListen {
                    backoff = 0.5
                    announcedOutage = false
                }
            } catch {
                self.state.withLock { $0.stats.subscribed = false }
                if !announcedOutage {
                    self.logLine("chain subscriptions at \(self.url) unavailable (\(error)); reading the chain again every attempt, retrying")
                    announcedOutage = true
                }
                // A read while the subscriptions are down: nothing that changed meanwhile is missed.
                self.post(Update(resync: true)) { $0.failures += 1 }
                guard self.pause(backoff) else { return }
                backoff = min(backoff * 2, self.pollSeconds)
            }
        }
    }

    /// One connection: subscribes, reports a resync, then forwards notifications until the
    /// connection fails (throws) or the watcher stops (returns).
    func subscribeAndListen(connected: () -> Void) throws {
        let ws = try RPCWebSocket(url: self.url, timeout: 5)
        defer { ws.close() }
        let heads = try ws.subscribe("chain_subscribeNewHeads")
        var subnets = Set<String>()
        if self.netuids.count > Self.maxSubnetSubscriptions {
            subnets.insert(try ws.subscribe("subnet_subscribeEvents"))
        } else {
            for n in self.netuids { subnets.insert(try ws.subscribe("subnet_subscribeEvents", .array([.int(n)]))) }
        }
        connected()
        self.logLine("following the chain through the node's subscriptions at \(self.url) (new heads\(self.netuids.isEmpty ? "" : ", events of subnet \(self.netuids.map(String.init).joined(separator: ", "))"))")
        self.post(Update(resync: true)) {
            $0.connections += 1
            $0.subscribed = true
        }
        let wanted = Set(self.netuids)
        while !self.stopped {
            guard let n = try ws.next(timeout: 1) else { continue }
            var u = Update()
            if n.subscription == heads {
                guard let text = n.result["number"]?.string, text.hasPrefix("0x"), text.utf8.count <= 18,
                      let number = UInt64(text.dropFirst(2), radix: 16) else { continue }
                u.head = number
            } else if subnets.contains(n.subscription) {
                guard let raw = n.result["netuid"]?.uint64, let netuid = UInt16(exactly: raw), wanted.contains(netuid) else { continue }
                switch n.result["type"]?.string {
                case "metagraphChanged": u.metagraphChanged = [netuid]
                case "epochRun": u.epochRun = [netuid]
                default: continue
                }
            } else {
                continue
            }
            self.post(u) { $0.notifications += 1 }
        }
    }
}
