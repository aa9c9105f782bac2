import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets

/// The stream protocols of query routing.
public enum QueryProtocol {
    /// One request per stream: header, body, then the response frames (docs/query-routing.md).
    public static let query = "/tm/query/1"
    /// A miner behind a relay announces itself on this stream.
    public static let relay = "/tm/relay/1"
}

/// A request as a handler sees it.
public struct QueryRequest: Sendable {
    public var header: QueryRequestHeader
    public var body: [UInt8]
    /// The caller's metagraph entry, when registered.
    public var caller: CallerInfo?
}

/// A handler's answer: a whole body, or a stream of chunks.
public enum QueryReply: Sendable {
    case body([UInt8])
    case stream(AsyncThrowingStream<[UInt8], any Error>)
}

/// Thrown by a handler to answer with a specific status (e.g. 400 for a body it cannot parse).
public struct QueryError: Error, Sendable, CustomStringConvertible {
    public var status: QueryStatus
    public var message: String
    public init(_ status: QueryStatus, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { "\(self.status): \(self.message)" }
}

public typealias QueryHandler = @Sendable (QueryRequest) async throws -> QueryReply

/// Counters an axon keeps (for logs, metrics and tests).
public struct AxonStats: Sendable, Equatable {
    /// Answers by status code.
    public var byStatus: [UInt16: Int] = [:]
    /// Requests refused on their header alone (their body was never buffered).
    public var refusedBeforeBody = 0
    /// Requests admitted and handed to a handler.
    public var handled = 0
    public var inFlight = 0
    public var maxInFlight = 0
    public var queued = 0
    public var relayConnected = false
    /// Time spent refusing requests on their header (decode, checks, answer), in total.
    public var refusalNanos: UInt64 = 0
    /// Connections closed for sending too much junk.
    public var junkDisconnects = 0
}

/// The miner's server: accepts secure channels (its node identity is its hotkey), screens
/// each request header (blacklist → verify → priority), reads the body only of admitted
/// requests, runs the handler under the request's deadline, and answers with a signed
/// trailer. All state lives on the event loop; the public methods may be called from any thread.
///
/// Against hostile callers: at most `maxPerIP` channels per host and 128 streams per channel,
/// at most ``AxonLimits/maxPendingHeaders`` of them waiting for their header; a header must
/// arrive within ``AxonLimits/headerTimeoutMs`` and a body before the request's deadline
/// (408, charged as junk); requests are indexed by channel, so a close costs that channel's
/// requests only.
public final class Axon: SecurePeerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    public let hotkey: Ed25519.PrivateKey
    let host: SecureHost
    var policy: AxonPolicy
    var handlers: [String: QueryHandler] = [:]
    /// Per channel: its requests by stream, its header-phase count and its junk budget.
    var conns: [ObjectIdentifier: Conn] = [:]
    var inboundCount = 0
    var queue: PriorityQueue<StreamKey>
    var running = 0
    var stats = AxonStats()
    var relayAddress: (SocketAddress, Ed25519.PublicKey)?
    var relayPeer: SecurePeer?
    var relayRetry: TimerID?
    var stopped = false
    /// Node ids refused until a time (Unix ms).
    var banned: [Ed25519.PublicKey: UInt64] = [:]

    /// Streams one channel may have open when the axon picks the channel settings.
    public static let defaultMaxStreams = 128
    /// Channels one host (IPv4 address or IPv6 /64) may have open.
    public static let defaultMaxPerIP = 32

    struct StreamKey: Hashable {
        let peer: ObjectIdentifier
        let stream: StreamID
    }

    enum Phase { case header, body, queued, running }

    final class Conn {
        var streams: [StreamID: Inbound] = [:]
        /// Streams still waiting for their header.
        var pendingHeaders = 0
        var junk: TokenBucket?
    }

    final class Inbound {
        let peer: SecurePeer
        let stream: StreamID
        let conn: Conn
        var phase = Phase.header
        var header: QueryRequestHeader?
        var body: [UInt8] = []
        var caller: CallerInfo?
        var task: Task<Void, Never>?
        var timer: TimerID?
        var startedNs: UInt64 = 0
        var priority = 0.0
        var sentBytes = 0
        var hasher = SHA256.Hasher()
        var dropped = false

        init(peer: SecurePeer, stream: StreamID, conn: Conn) {
            self.peer = peer
            self.stream = stream
            self.conn = conn
        }

        var key: StreamKey { StreamKey(peer: ObjectIdentifier(self.peer), stream: self.stream) }
    }

    /// - Parameters:
    ///   - hotkey: the miner's hotkey; it is also the channel identity, so validators can dial
    ///     the axon by the hotkey the metagraph lists.
    ///   - genesisHash: the chain's genesis (channels to other chains are refused).
    ///   - channel: channel settings; by default ``defaultMaxStreams`` streams per channel and
    ///     messages just large enough for the body limit.
    ///   - connections: connection limits; by default 4096 inbound, ``defaultMaxPerIP`` per host.
    public init(hotkey: Ed25519.PrivateKey, netuid: UInt16, genesisHash: [UInt8], loop: EventLoop,
                limits: AxonLimits = AxonLimits(), channel: ChannelConfig? = nil, connections: ConnectionLimits? = nil) {
        self.loop = loop
        self.hotkey = hotkey
        var config = channel ?? ChannelConfig()
        if channel == nil {
            config.maxStreams = Self.defaultMaxStreams
            config.maxMessageSize = max(limits.maxBodyBytes, 64 << 10) + 4096
        }
        var connLimits = ConnectionLimits()
        connLimits.maxInbound = 4096
        connLimits.maxTotal = 4200
        connLimits.maxPerIP = Self.defaultMaxPerIP
        self.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: hotkey, noiseStatic: X25519.PrivateKey()), config: config, limits: connections ?? connLimits) {
            Hello(genesisHash: genesisHash, roles: .miner, agent: "tensormesh-axon/0.1.0")
        }
        self.policy = AxonPolicy(served: [hotkey.publicKey], netuid: netuid, synapses: [], limits: limits)
        self.queue = PriorityQueue(capacity: limits.maxQueued)
        self.host.delegate = self
    }

    // MARK: Configuration (any thread)

    /// Registers the handler of a synapse.
    public func attach(synapse: String, handler: @escaping QueryHandler) {
        self.onLoop {
            self.handlers[synapse] = handler
            self.policy.synapses.insert(synapse)
        }
    }

    /// Replaces the blacklist hook (return a reason to refuse with 403).
    public func setBlacklist(_ f: @escaping AxonPolicy.Blacklist) { self.onLoop { self.policy.blacklist = f } }
    /// Replaces the priority hook (higher runs first when handlers are busy).
    public func setPriority(_ f: @escaping AxonPolicy.Priority) { self.onLoop { self.policy.priority = f } }
    /// Replaces what the axon knows of the subnet's registered hotkeys.
    public func updateDirectory(_ d: [Ed25519.PublicKey: CallerInfo]) { self.onLoop { self.policy.directory = d } }

    /// Starts listening; returns the bound address (port 0 picks one).
    public func start(listen address: SocketAddress) async throws -> SocketAddress {
        try await self.loop.submit { try self.host.listen(on: address) }
    }

    /// Keeps a channel open to a relay and serves requests the relay forwards (for miners
    /// that cannot accept inbound connections). Reconnects with a delay when it drops.
    public func useRelay(_ address: SocketAddress, nodeId: Ed25519.PublicKey) {
        self.onLoop {
            self.relayAddress = (address, nodeId)
            self.dialRelay()
        }
    }

    /// The counters.
    public func statistics() async -> AxonStats {
        (try? await self.loop.submit { () -> AxonStats in
            var s = self.stats
            s.inFlight = self.inboundCount
            s.queued = self.queue.count
            s.relayConnected = self.relayPeer?.isReady ?? false
            return s
        }) ?? AxonStats()
    }

    /// Closes every channel and the listener; running handlers are cancelled.
    public func stop() {
        self.onLoop {
            self.stopped = true
            for c in self.conns.values {
                for q in c.streams.values {
                    q.task?.cancel()
                    if let t = q.timer { self.loop.cancel(t) }
                }
            }
            self.conns.removeAll()
            self.inboundCount = 0
            self.host.shutdown(reason: "axon stopping")
        }
    }

    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if self.loop.inLoop { body() } else { self.loop.execute(body) }
    }

    static func wallMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// A timer delay for `ms` milliseconds from a deadline a peer chose (or an operator's
    /// "unlimited"): saturating, and at most a day (the loop's timer clock wraps).
    static func delayNanos(ms: UInt64) -> UInt64 { min(ms, 86_400_000).multipliedSaturated(by: 1_000_000) }

    func lookup(_ key: StreamKey) -> Inbound? { self.conns[key.peer]?.streams[key.stream] }

    // MARK: Relay

    func dialRelay() {
        guard !self.stopped, let (address, _) = self.relayAddress, self.relayPeer == nil else { return }
        do {
            self.relayPeer = try self.host.dial(address)
            self.relayPeer?.userInfo["relay"] = "1"
        } catch {
            self.scheduleRelayRetry()
        }
    }

    func scheduleRelayRetry() {
        guard !self.stopped, self.relayRetry == nil else { return }
        self.relayRetry = self.loop.schedule(after: 2_000_000_000) { [weak self] in
            self?.relayRetry = nil
            self?.dialRelay()
        }
    }

    // MARK: SecurePeerDelegate

    public func peerReady(_ peer: SecurePeer) {
        if let id = peer.remoteNodeId, let until = self.banned[id] {
            if until > Self.wallMillis() {
                peer.close(code: ChannelCode.banned, reason: "too much junk; retry later")
                return
            }
            self.banned[id] = nil
        }
        guard peer.userInfo["relay"] != nil, let (_, expected) = self.relayAddress else { return }
        guard peer.remoteNodeId == expected else {
            peer.close(code: ChannelCode.refused, reason: "unexpected relay identity")
            return
        }
        // Announce which subnet we serve; the relay learns our hotkey from the handshake.
        if let s = try? peer.openStream(QueryProtocol.relay) {
            var w = ByteWriter()
            w.u16(self.policy.netuid)
            try? peer.send(w.bytes, on: s)
        }
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        guard protocolName == QueryProtocol.query, !self.stopped else {
            peer.reset(stream, code: ChannelCode.refused)
            return
        }
        let id = ObjectIdentifier(peer)
        let c = self.conns[id] ?? {
            let c = Conn()
            self.conns[id] = c
            return c
        }()
        guard c.pendingHeaders < self.policy.limits.maxPendingHeaders else {
            // Streams that say nothing hold memory; a channel gets only a few at once.
            peer.reset(stream, code: ChannelCode.refused)
            self.chargeJunk(peer)
            return
        }
        let q = Inbound(peer: peer, stream: stream, conn: c)
        c.streams[stream] = q
        c.pendingHeaders += 1
        self.inboundCount += 1
        let waitMs = self.policy.limits.headerTimeoutMs
        let key = q.key
        q.timer = self.loop.schedule(after: Self.delayNanos(ms: waitMs)) { [weak self] in
            guard let self, let q = self.lookup(key), q.phase == .header else { return }
            q.timer = nil
            self.refuse(key, q, .timeout, "no request header within \(waitMs) ms", signed: false)
            self.chargeJunk(peer)
        }
    }

    /// Moves a request on from `from`, keeping the channel's header-phase count.
    func advance(_ q: Inbound, to phase: Phase) {
        if q.phase == .header && phase != .header { q.conn.pendingHeaders -= 1 }
        q.phase = phase
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        let key = StreamKey(peer: ObjectIdentifier(peer), stream: stream)
        guard let q = self.lookup(key) else { return }  // answered already: drop the rest
        switch q.phase {
        case .header:
            let started = EventLoop.now()
            defer { if q.dropped { self.stats.refusalNanos &+= EventLoop.now() - started } }
            guard message.count <= QueryRequestHeader.maxEncodedSize, let h = try? QueryRequestHeader.decode(message) else {
                self.refuse(key, q, .badRequest, "malformed request header", signed: false)
                self.chargeJunk(peer)
                return
            }
            q.header = h
            let now = Self.wallMillis()
            switch self.policy.screen(h, now: now, channel: peer === self.relayPeer ? .relayed : .direct(peer.remoteNodeId)) {
            case .refuse(let status, let reason, let verified):
                self.refuse(key, q, status, reason, signed: verified)
                if [400, 401, 403, 404, 413, 429].contains(status.rawValue) { self.chargeJunk(peer) }
            case .admit(let priority):
                q.caller = self.policy.directory[h.caller]
                // From now on the request's own deadline bounds it: a missing body, or a wait
                // in the queue, ends there.
                if let t = q.timer { self.loop.cancel(t) }
                let endsIn = h.deadline.addingSaturated(self.policy.limits.clockSkewMs).subtractingSaturated(now)
                q.timer = self.loop.schedule(after: Self.delayNanos(ms: endsIn)) { [weak self] in self?.deadlinePassed(key) }
                if h.bodyLength == 0 {
                    self.enqueue(key, q, priority: priority)
                } else {
                    self.advance(q, to: .body)
                    q.priority = priority
                }
            }
        case .body:
            let h = q.header!
            // A lying body is the caller's doing: unsigned, and charged like any junk.
            guard message.count == Int(h.bodyLength) else {
                self.refuse(key, q, .badRequest, "body of \(message.count) bytes, header says \(h.bodyLength)", signed: false)
                self.chargeJunk(peer)
                return
            }
            guard ConstantTime.equals(SHA256.hash(message), h.bodyHash) else {
                self.refuse(key, q, .badRequest, "body does not match its hash", signed: false)
                self.chargeJunk(peer)
                return
            }
            q.body = message
            self.enqueue(key, q, priority: q.priority)
        case .queued, .running:
            break  // extra messages after the body are ignored
        }
    }

    /// An admitted request reached its deadline before its handler started.
    func deadlinePassed(_ key: StreamKey) {
        guard let q = self.lookup(key) else { return }
        q.timer = nil
        switch q.phase {
        case .body:
            self.refuse(key, q, .timeout, "the body did not arrive before the deadline", signed: false)
            self.chargeJunk(q.peer)
        case .queued:
            self.answer(key, q, .timeout, "the deadline passed while the request waited for a handler")
        case .header, .running:
            break  // the header timer and the handler timer handle those
        }
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        let key = StreamKey(peer: ObjectIdentifier(peer), stream: stream)
        guard let q = self.lookup(key) else { return }
        if reset != nil {
            self.drop(key, q)  // the caller gave up
        } else if q.phase == .header || q.phase == .body {
            self.refuse(key, q, .badRequest, "stream ended before the request was complete", signed: false)
        }
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        // Only this channel's requests: O(its streams), not a scan of every request.
        if let c = self.conns.removeValue(forKey: ObjectIdentifier(peer)) {
            let streams = c.streams
            c.streams = [:]
            for q in streams.values { self.drop(q.key, q) }
        }
        if peer === self.relayPeer {
            self.relayPeer = nil
            self.scheduleRelayRetry()
        }
    }

    /// Counts a refused junk request against its connection; over budget, the connection is
    /// closed and its node id refused for a while (a new identity costs a new handshake).
    func chargeJunk(_ peer: SecurePeer) {
        guard let c = self.conns[ObjectIdentifier(peer)] else { return }  // closed already
        let l = self.policy.limits
        let now = Self.wallMillis()
        var bucket = c.junk ?? TokenBucket(tokens: l.junkBurst, updatedAt: now)
        let ok = bucket.take(now: now, rate: l.junkPerSecond, burst: l.junkBurst, ticksPerSecond: 1000)
        c.junk = bucket
        guard !ok, peer !== self.relayPeer else { return }
        self.stats.junkDisconnects += 1
        if let node = peer.remoteNodeId {
            if self.banned.count > 100_000 { self.banned = self.banned.filter { $0.value > now } }
            self.banned[node] = now.addingSaturated(l.junkBanSeconds.multipliedSaturated(by: 1000))
        }
        peer.close(code: ChannelCode.banned, reason: "too many refused requests")
    }

    // MARK: Scheduling

    func enqueue(_ key: StreamKey, _ q: Inbound, priority: Double) {
        self.advance(q, to: .queued)
        self.stats.handled += 1
        if self.running < self.policy.limits.maxConcurrent {
            self.run(key, q)
            return
        }
        if let evicted = self.queue.push(key, priority: priority), let e = self.lookup(evicted) {
            self.refuse(evicted, e, .unavailable, "axon overloaded; lower-priority requests are shed", signed: true)
        }
    }

    func pump() {
        while self.running < self.policy.limits.maxConcurrent, let key = self.queue.pop() {
            guard let q = self.lookup(key), q.phase == .queued else { continue }
            self.run(key, q)
        }
    }

    func run(_ key: StreamKey, _ q: Inbound) {
        guard let h = q.header, let handler = self.handlers[h.synapse] else {
            self.refuse(key, q, .notFound, "no handler", signed: true)
            return
        }
        let now = Self.wallMillis()
        // A request that waited past its deadline is not started (its handler would be
        // cancelled at once by the timer below).
        guard h.deadline > now else {
            self.answer(key, q, .timeout, "the deadline passed while the request waited for a handler")
            return
        }
        if let t = q.timer { self.loop.cancel(t) }
        self.advance(q, to: .running)
        q.startedNs = EventLoop.now()
        self.running += 1
        self.stats.maxInFlight = max(self.stats.maxInFlight, self.running)
        let remaining = h.deadline.subtractingSaturated(now)
        q.timer = self.loop.schedule(after: Self.delayNanos(ms: remaining)) { [weak self] in
            guard let self, let q = self.lookup(key) else { return }
            q.timer = nil
            q.task?.cancel()
            self.answer(key, q, .timeout, "deadline passed after \(remaining) ms")
        }
        let request = QueryRequest(header: h, body: q.body, caller: q.caller)
        q.body = []
        let maxBytes = self.policy.limits.maxResponseBytes
        q.task = Task { [self] in
            do {
                switch try await handler(request) {
                case .body(let b):
                    guard b.count <= maxBytes else { throw QueryError(.internalError, "response of \(b.count) bytes exceeds the limit") }
                    self.loop.execute { self.chunk(key, b, last: true) }
                case .stream(let s):
                    var total = 0
                    for try await c in s {
                        total += c.count
                        guard total <= maxBytes else { throw QueryError(.internalError, "streamed response exceeds \(maxBytes) bytes") }
                        self.loop.execute { self.chunk(key, c, last: false) }
                    }
                    self.loop.execute { self.answer(key, nil, .ok, "") }
                }
            } catch let e as QueryError {
                self.loop.execute { self.answer(key, nil, e.status, e.message) }
            } catch is CancellationError {
                self.loop.execute { self.answer(key, nil, .timeout, "cancelled") }
            } catch {
                self.loop.execute { self.answer(key, nil, .internalError, "handler failed: \(error)") }
            }
        }
    }

    // MARK: Answers

    /// Sends one body chunk (and, when `last`, the 200 trailer).
    func chunk(_ key: StreamKey, _ bytes: [UInt8], last: Bool) {
        guard let q = self.lookup(key), q.phase == .running else { return }
        if !bytes.isEmpty || last {
            q.hasher.update(bytes)
            q.sentBytes += bytes.count
            do { try q.peer.send(QueryResponseFrame.chunk(bytes).encoded, on: q.stream) } catch {
                self.drop(key, q)
                return
            }
        }
        if last { self.answer(key, q, .ok, "") }
    }

    /// Ends a request that reached a handler (or passed verification): a signed trailer.
    func answer(_ key: StreamKey, _ known: Inbound?, _ status: QueryStatus, _ message: String) {
        guard let q = known ?? self.lookup(key), !q.dropped, let h = q.header else { return }
        let micros = q.startedNs > 0 && q.phase == .running ? (EventLoop.now() - q.startedNs) / 1000 : 0
        var t = QueryResponseTrailer(status: status, message: message, responder: self.hotkey.publicKey, requestHash: h.requestHash,
                                     bodyLength: UInt64(q.sentBytes), bodyHash: q.hasher.finalize(), processingMicros: micros)
        t.sign(with: self.hotkey)
        self.finish(key, q, t)
    }

    /// Refuses a request; signed only when its signature was verified.
    func refuse(_ key: StreamKey, _ q: Inbound, _ status: QueryStatus, _ message: String, signed: Bool) {
        guard !q.dropped else { return }
        if q.phase == .header { self.stats.refusedBeforeBody += 1 }
        let requestHash = q.header?.requestHash ?? [UInt8](repeating: 0, count: 32)
        var t = QueryResponseTrailer(status: status, message: message, responder: self.hotkey.publicKey, requestHash: requestHash)
        if signed { t.sign(with: self.hotkey) }
        self.finish(key, q, t)
    }

    func finish(_ key: StreamKey, _ q: Inbound, _ t: QueryResponseTrailer) {
        self.stats.byStatus[t.status.rawValue, default: 0] += 1
        try? q.peer.send(QueryResponseFrame.trailer(t).encoded, on: q.stream, finish: true)
        self.drop(key, q)
    }

    /// Forgets a request (answered, or its caller gone) and frees its handler slot.
    func drop(_ key: StreamKey, _ q: Inbound) {
        guard !q.dropped else { return }
        q.dropped = true
        q.conn.streams.removeValue(forKey: q.stream)
        self.inboundCount -= 1
        if let t = q.timer { self.loop.cancel(t) }
        q.timer = nil
        switch q.phase {
        case .running:
            q.task?.cancel()
            self.running -= 1
            self.pump()
        case .queued:
            self.queue.remove { $0 == key }
        case .header:
            q.conn.pendingHeaders -= 1
        case .body:
            break
        }
    }
}
