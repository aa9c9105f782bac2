import MeshChannel
import MeshCodec
import MeshCrypto
import MeshHTTP
import MeshNetwork
import MeshSockets

/// Limits of a relay. Defaults suit a public relay in front of miners with default axons.
public struct RelayLimits: Sendable {
    /// How far ahead of now a request's deadline may be, and the tolerated clock difference
    /// (the axon's defaults: the relay refuses what the miner would refuse anyway).
    public var maxDeadlineAheadMs: UInt64 = 120_000
    public var clockSkewMs: UInt64 = 2_000
    /// A caller's stream that carries no header for this long is refused with 408 (and charged).
    public var headerTimeoutMs: UInt64 = 10_000
    /// Requests one caller connection may have open through the relay at once.
    public var maxPipesPerCaller = 64
    /// Requests open to one miner at once (a default axon accepts 128 streams per connection).
    public var maxPipesPerMiner = 128
    /// Junk (malformed, expired, forged, unroutable, over the caps) a caller connection may
    /// send: sustained per second and burst. Beyond it the connection is closed and its node
    /// id refused for ``junkBanSeconds``.
    public var junkPerSecond: Double = 20
    public var junkBurst: Double = 100
    public var junkBanSeconds: UInt64 = 60

    public init() {}
}

/// Carries queries to miners that cannot accept inbound connections: such a miner keeps a
/// channel open to the relay and announces itself on `/tm/relay/1`; a validator dials the
/// relay (the miner advertises the relay's address and node id on chain) and sends its
/// request with the miner's hotkey as target; the relay pipes the stream to the miner and
/// the answer back. Requests and answers are signed end to end, so the relay can drop
/// traffic but not forge it.
///
/// The relay screens each header before it costs the miner anything: it must decode, its
/// deadline must be inside the window, and its signature must verify. What fails is charged
/// to the caller's connection (closed and banned past a budget), so junk is paid for by who
/// sends it, not amplified onto the miner. Every pipe ends at its deadline. Loop thread only,
/// except ``start(listen:)``, ``stop()`` and the async accessors.
public final class QueryRelay: SecurePeerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    let host: SecureHost
    let limits: RelayLimits
    /// Miners reachable through us, by hotkey (= their channel node id).
    var miners: [Ed25519.PublicKey: SecurePeer] = [:]
    /// Per connection: its pipe ends by stream, so closing a connection costs its own pipes.
    var conns: [ObjectIdentifier: Conn] = [:]
    var banned: [Ed25519.PublicKey: UInt64] = [:]
    public private(set) var forwarded = 0
    public private(set) var refused = 0
    /// Caller connections closed for sending too much junk.
    public private(set) var junkDisconnects = 0
    /// From a request forwarded to the miner to its signed trailer passing back, seconds.
    public private(set) var answerSeconds = Histogram.seconds()
    /// Forwarded requests the miner did not answer before the deadline.
    public private(set) var timedOut = 0

    final class Conn {
        /// Pipe ends on this connection: as the caller's stream or as the miner's.
        var pipes: [StreamID: Pipe] = [:]
        var asCaller = 0
        var asMiner = 0
        var junk: TokenBucket?
    }

    final class Pipe {
        let caller: SecurePeer
        let callerStream: StreamID
        var miner: SecurePeer?
        var minerStream: StreamID?
        var bodyPending = false
        var timer: TimerID?
        var closed = false
        /// When the request went to the miner (monotonic nanoseconds; 0: not yet).
        var forwardedNs: UInt64 = 0
        init(caller: SecurePeer, callerStream: StreamID) {
            self.caller = caller
            self.callerStream = callerStream
        }
    }

    public init(identity: Ed25519.PrivateKey, genesisHash: [UInt8], loop: EventLoop, limits: RelayLimits = RelayLimits()) {
        self.loop = loop
        self.limits = limits
        var config = ChannelConfig()
        config.maxStreams = max(256, limits.maxPipesPerCaller, limits.maxPipesPerMiner)
        self.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: identity, noiseStatic: X25519.PrivateKey()), config: config) {
            Hello(genesisHash: genesisHash, roles: .full, agent: "tensormesh-relay/0.1.0")
        }
        self.host.delegate = self
    }

    public func start(listen address: SocketAddress) async throws -> SocketAddress {
        try await self.loop.submit { try self.host.listen(on: address) }
    }

    public func stop() { self.loop.execute { self.host.shutdown(reason: "relay stopping") } }

    /// Hotkeys currently reachable through the relay.
    public func connectedMiners() async -> [Ed25519.PublicKey] {
        (try? await self.loop.submit { Array(self.miners.keys) }) ?? []
    }

    /// Requests in flight (for tests and metrics).
    public func openPipes() async -> Int {
        (try? await self.loop.submit { self.conns.values.reduce(0) { $0 + $1.asCaller } }) ?? 0
    }

    /// The relay's Prometheus text (all names prefixed `tensormesh_query_relay_`): requests
    /// forwarded, refused and timed out, connected miners, and the answer-time histogram.
    public func metrics() async -> String {
        (try? await self.loop.submit { () -> String in
            func counter(_ name: String, _ help: String, _ v: Int) -> String {
                "# HELP tensormesh_query_relay_\(name) \(help)\n# TYPE tensormesh_query_relay_\(name) counter\ntensormesh_query_relay_\(name) \(v)\n"
            }
            return counter("forwarded_total", "Requests forwarded to a miner.", self.forwarded)
                + counter("refused_total", "Requests refused by the relay (bad header or signature, no such miner, caps, deadlines).", self.refused)
                + counter("timed_out_total", "Forwarded requests the miner did not answer before their deadline.", self.timedOut)
                + counter("junk_disconnects_total", "Caller connections closed for sending too much junk.", self.junkDisconnects)
                + "# HELP tensormesh_query_relay_miners Miners reachable through the relay.\n# TYPE tensormesh_query_relay_miners gauge\n"
                + "tensormesh_query_relay_miners \(self.miners.count)\n"
                + self.answerSeconds.render("tensormesh_query_relay_answer_seconds",
                                            help: "Time from forwarding a request to a miner to its signed answer passing back.")
        }) ?? ""
    }

    static func wallMillis() -> UInt64 { Axon.wallMillis() }

    func conn(_ peer: SecurePeer) -> Conn {
        let id = ObjectIdentifier(peer)
        if let c = self.conns[id] { return c }
        let c = Conn()
        self.conns[id] = c
        return c
    }

    // MARK: SecurePeerDelegate

    public func peerReady(_ peer: SecurePeer) {
        guard let id = peer.remoteNodeId, let until = self.banned[id] else { return }
        if until > Self.wallMillis() {
            peer.close(code: ChannelCode.banned, reason: "too much junk; retry later")
        } else {
            self.banned[id] = nil
        }
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        switch protocolName {
        case QueryProtocol.relay:
            peer.userInfo["relayStream"] = "\(stream)"
        case QueryProtocol.query:
            let c = self.conn(peer)
            guard c.asCaller < self.limits.maxPipesPerCaller else {
                self.refused += 1
                peer.reset(stream, code: ChannelCode.refused)
                self.chargeJunk(peer)
                return
            }
            let pipe = Pipe(caller: peer, callerStream: stream)
            c.pipes[stream] = pipe
            c.asCaller += 1
            // No header in time: refused and charged, so silent streams cannot pile up.
            pipe.timer = self.loop.schedule(after: Axon.delayNanos(ms: self.limits.headerTimeoutMs)) { [weak self, weak pipe] in
                guard let self, let pipe, !pipe.closed, pipe.miner == nil else { return }
                pipe.timer = nil
                self.refuse(pipe, .timeout, "no request header within \(self.limits.headerTimeoutMs) ms")
                self.chargeJunk(pipe.caller)
            }
        default:
            peer.reset(stream, code: ChannelCode.refused)
        }
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        if peer.userInfo["relayStream"] == "\(stream)" {
            // The announcement: the miner's hotkey is its channel identity.
            if let id = peer.remoteNodeId, peer.remoteHello?.roles.contains(.miner) == true {
                if let old = self.miners[id], old !== peer { old.close(code: ChannelCode.normal, reason: "replaced by a newer channel") }
                self.miners[id] = peer
            }
            return
        }
        guard let pipe = self.conns[ObjectIdentifier(peer)]?.pipes[stream] else { return }
        if peer === pipe.caller && stream == pipe.callerStream {
            self.fromCaller(pipe, message)
        } else if let m = pipe.miner, let ms = pipe.minerStream {
            // An answer frame: pass it on; the trailer ends the caller's stream.
            let isTrailer = message.first == 2
            do { try pipe.caller.send(message, on: pipe.callerStream, finish: isTrailer) } catch { m.reset(ms) }
            if isTrailer {
                let now = EventLoop.now()
                if !pipe.closed, pipe.forwardedNs > 0, now >= pipe.forwardedNs { self.answerSeconds.observe(Double(now - pipe.forwardedNs) / 1e9) }
                self.close(pipe, resetMiner: false)
            }
        }
    }

    func fromCaller(_ pipe: Pipe, _ message: [UInt8]) {
        if let m = pipe.miner, let ms = pipe.minerStream {
            guard pipe.bodyPending else { return }
            pipe.bodyPending = false
            do { try m.send(message, on: ms, finish: true) } catch { self.close(pipe, resetMiner: true) }
            return
        }
        // Screen the header: cheap checks, then the signature; failures are the caller's junk.
        guard message.count <= QueryRequestHeader.maxEncodedSize, let h = try? QueryRequestHeader.decode(message) else {
            self.refuse(pipe, .badRequest, "malformed request header")
            self.chargeJunk(pipe.caller)
            return
        }
        let now = Self.wallMillis()
        let skew = self.limits.clockSkewMs
        guard h.deadline.addingSaturated(skew) > now else {
            self.refuse(pipe, .timeout, "deadline already passed")
            return
        }
        let latest = now.addingSaturated(self.limits.maxDeadlineAheadMs).addingSaturated(skew)
        guard h.deadline <= latest else {
            self.refuse(pipe, .badRequest, "deadline more than \(self.limits.maxDeadlineAheadMs / 1000) s ahead")
            self.chargeJunk(pipe.caller)
            return
        }
        guard let miner = self.miners[h.target], miner.isReady else {
            self.refuse(pipe, .notFound, "hotkey \(h.target.hex.prefix(16))… is not connected to this relay")
            self.chargeJunk(pipe.caller)
            return
        }
        guard h.hasValidSignature else {
            self.refuse(pipe, .unauthorized, "bad signature")
            self.chargeJunk(pipe.caller)
            return
        }
        let mc = self.conn(miner)
        guard mc.asMiner < self.limits.maxPipesPerMiner else {
            self.refuse(pipe, .unavailable, "too many requests in flight to this miner")
            return
        }
        do {
            let s = try miner.openStream(QueryProtocol.query)
            pipe.miner = miner
            pipe.minerStream = s
            pipe.bodyPending = h.bodyLength > 0
            mc.pipes[s] = pipe
            mc.asMiner += 1
            try miner.send(message, on: s, finish: h.bodyLength == 0)
            pipe.forwardedNs = EventLoop.now()
            self.forwarded += 1
        } catch {
            self.refuse(pipe, .unavailable, "cannot reach the miner: \(error)")
            return
        }
        // The pipe lives until the request's deadline (plus skew), answered or not.
        if let t = pipe.timer { self.loop.cancel(t) }
        let ends = min(h.deadline, now.addingSaturated(self.limits.maxDeadlineAheadMs)).addingSaturated(skew)
        pipe.timer = self.loop.schedule(after: Axon.delayNanos(ms: ends.subtractingSaturated(now))) { [weak self, weak pipe] in
            guard let self, let pipe, !pipe.closed else { return }
            pipe.timer = nil
            if pipe.forwardedNs > 0 { self.timedOut += 1 }
            self.refuse(pipe, .timeout, "the miner did not answer before the deadline")
        }
    }

    /// Counts junk against a caller's connection; over budget, it is closed and its node id
    /// refused for a while.
    func chargeJunk(_ peer: SecurePeer) {
        let l = self.limits
        let now = Self.wallMillis()
        let c = self.conn(peer)
        var bucket = c.junk ?? TokenBucket(tokens: l.junkBurst, updatedAt: now)
        let ok = bucket.take(now: now, rate: l.junkPerSecond, burst: l.junkBurst, ticksPerSecond: 1000)
        c.junk = bucket
        guard !ok else { return }
        self.junkDisconnects += 1
        if let node = peer.remoteNodeId {
            if self.banned.count > 100_000 { self.banned = self.banned.filter { $0.value > now } }
            self.banned[node] = now.addingSaturated(l.junkBanSeconds.multipliedSaturated(by: 1000))
        }
        peer.close(code: ChannelCode.banned, reason: "too many refused requests")
    }

    /// Answers the caller with an unsigned refusal and ends the pipe.
    func refuse(_ pipe: Pipe, _ status: QueryStatus, _ message: String) {
        guard !pipe.closed else { return }
        self.refused += 1
        let t = QueryResponseTrailer(status: status, message: message, responder: self.host.identity.nodeId,
                                     requestHash: [UInt8](repeating: 0, count: 32))
        try? pipe.caller.send(QueryResponseFrame.trailer(t).encoded, on: pipe.callerStream, finish: true)
        self.close(pipe, resetMiner: true)
    }

    func close(_ pipe: Pipe, resetMiner: Bool) {
        guard !pipe.closed else { return }
        pipe.closed = true
        if let t = pipe.timer { self.loop.cancel(t) }
        pipe.timer = nil
        if let c = self.conns[ObjectIdentifier(pipe.caller)], c.pipes.removeValue(forKey: pipe.callerStream) != nil { c.asCaller -= 1 }
        if let m = pipe.miner, let s = pipe.minerStream {
            if let c = self.conns[ObjectIdentifier(m)], c.pipes.removeValue(forKey: s) != nil { c.asMiner -= 1 }
            if resetMiner { m.reset(s) }
        }
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        guard reset != nil, let pipe = self.conns[ObjectIdentifier(peer)]?.pipes[stream] else { return }
        if peer === pipe.caller && stream == pipe.callerStream {
            self.close(pipe, resetMiner: true)
        } else {
            pipe.caller.reset(pipe.callerStream)
            self.close(pipe, resetMiner: false)
        }
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        if let id = peer.remoteNodeId, self.miners[id] === peer { self.miners[id] = nil }
        // Only this connection's pipes: O(its streams), not O(all pipes).
        guard let c = self.conns.removeValue(forKey: ObjectIdentifier(peer)) else { return }
        for (stream, pipe) in c.pipes {
            if pipe.caller === peer && stream == pipe.callerStream {
                self.close(pipe, resetMiner: true)
            } else {
                pipe.caller.reset(pipe.callerStream)
                self.close(pipe, resetMiner: false)
            }
        }
    }
}
