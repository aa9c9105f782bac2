import MeshChannel
import MeshCodec
import MeshCrypto
import MeshSockets

/// What a ``SecurePeer`` reports. All calls arrive on the event loop.
public protocol SecurePeerDelegate: AnyObject {
    /// The handshake and the hello exchange are done: the peer is usable.
    func peerReady(_ peer: SecurePeer)
    /// The peer opened a stream.
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String)
    /// A message arrived on a stream.
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID)
    /// The peer finished or reset a stream.
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?)
    /// The peer is gone.
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?)
    /// A ping answer arrived.
    func peer(_ peer: SecurePeer, pong payload: [UInt8])
}

extension SecurePeerDelegate {
    public func peer(_ peer: SecurePeer, pong payload: [UInt8]) {}
}

/// A secure channel over a TCP connection: the socket layer below, the sans-IO
/// ``SecureConnection`` state machine in the middle, a delegate above. Loop thread only.
///
/// Outbound data is encrypted only as fast as the socket drains (``TCPConnection``'s
/// watermarks), so a slow peer makes senders wait instead of growing buffers.
public final class SecurePeer: TCPConnectionDirectReader, CustomStringConvertible {
    public let socket: TCPConnection
    public let channel: SecureConnection
    public weak var delegate: (any SecurePeerDelegate)?
    let loop: EventLoop
    private var handshakeTimer: TimerID?
    private var ready = false
    private var closedReported = false

    /// Milestones in monotonic nanoseconds, for diagnostics (`meshprobe handshake`).
    public private(set) var openedAt: Instant = .zero
    public private(set) var connectedAt: Instant?
    public private(set) var establishedAt: Instant?
    public private(set) var helloAt: Instant?

    /// Per-protocol byte counters (application payload, before encryption).
    public private(set) var bytesInByProtocol: [String: Int] = [:]
    public private(set) var bytesOutByProtocol: [String: Int] = [:]
    public private(set) var messagesInByProtocol: [String: Int] = [:]
    public private(set) var messagesOutByProtocol: [String: Int] = [:]
    private var streamProtocols: [StreamID: String] = [:]

    /// An arbitrary tag for the owner (e.g. the peer manager's bookkeeping).
    public var userInfo: [String: String] = [:]

    init(socket: TCPConnection, channel: SecureConnection, loop: EventLoop) {
        self.socket = socket
        self.channel = channel
        self.loop = loop
        self.openedAt = EventLoop.instant()
    }

    /// Dials `address` and runs the handshake as initiator.
    public static func connect(
        loop: EventLoop, to address: SocketAddress, identity: NodeIdentity, hello: Hello,
        config: ChannelConfig = ChannelConfig(), delegate: any SecurePeerDelegate, connectTimeout: UInt64 = 5_000_000_000
    ) throws(SocketError) -> SecurePeer {
        let channel = SecureConnection(role: .initiator, identity: identity, hello: hello, config: config,
                                       ephemeral: X25519.PrivateKey(), now: EventLoop.instant())
        let box = DelegateBox()
        // The initiator speaks first and each handshake message is answered at once: the ACKs
        // of the TCP handshake and of message 2 ride on messages 1 and 3 (three segments fewer
        // per connection with the responder's listener doing the same).
        let socket = try TCPConnection.connect(loop: loop, to: address, delegate: box, timeout: connectTimeout, acknowledgeWithReply: true)
        let peer = SecurePeer(socket: socket, channel: channel, loop: loop)
        peer.delegate = delegate
        socket.delegate = peer
        peer.armHandshakeTimer()
        return peer
    }

    /// Wraps an accepted socket; the handshake runs as responder.
    public static func accept(
        _ socket: TCPConnection, loop: EventLoop, identity: NodeIdentity, hello: Hello,
        config: ChannelConfig = ChannelConfig(), delegate: any SecurePeerDelegate
    ) -> SecurePeer {
        let channel = SecureConnection(role: .responder, identity: identity, hello: hello, config: config,
                                       ephemeral: X25519.PrivateKey(), now: EventLoop.instant())
        let peer = SecurePeer(socket: socket, channel: channel, loop: loop)
        peer.delegate = delegate
        socket.delegate = peer
        peer.armHandshakeTimer()
        return peer
    }

    private func armHandshakeTimer() {
        self.handshakeTimer = self.loop.schedule(after: self.channel.config.handshakeTimeout.nanoseconds) { [weak self] in
            guard let self, !self.ready else { return }
            do { try self.channel.tick(now: EventLoop.instant() + .nanoseconds(1)) } catch {}
            if !self.ready {
                self.channel.close(code: ChannelCode.protocolError, reason: "handshake timeout")
                self.finish(error: .handshakeTimeout, socket: nil)
            }
        }
    }

    public var description: String { "\(self.remoteNodeId.map { String($0.hex.prefix(12)) } ?? "?")@\(self.socket.remoteAddress)" }

    /// The peer's node id, once proved.
    public var remoteNodeId: Ed25519.PublicKey? { self.channel.remoteNodeId }
    /// The peer's hello.
    public var remoteHello: Hello? { self.channel.remoteHello }
    /// Whether the peer dialled us.
    public var isInbound: Bool { self.socket.isInbound }
    /// Whether the channel is usable.
    public var isReady: Bool { self.ready && !self.channel.isClosed }

    // MARK: Sending

    /// Opens a stream for `protocolName`.
    public func openStream(_ protocolName: String) throws(ChannelError) -> StreamID {
        let s = try self.channel.openStream(protocolName: protocolName)
        self.streamProtocols[s] = protocolName
        self.scheduleFlush()
        return s
    }

    /// Sends a message on a stream. A peer that lets our queue fill up (it stopped reading)
    /// is disconnected: the error is rethrown and the peer closed.
    public func send(_ message: [UInt8], on stream: StreamID, finish: Bool = false, compress: Bool? = nil) throws(ChannelError) {
        do throws(ChannelError) {
            if let admit = self.sendAdmission, !admit(self, message.count) { throw ChannelError.bufferLimit("node send budget spent") }
            try self.channel.send(message, on: stream, finish: finish, compress: compress)
        } catch {
            if case .bufferLimit = error {
                self.finish(error: error, socket: nil)
                self.close(code: ChannelCode.protocolError, reason: "not reading")
            }
            throw error
        }
        let p = Self.counterKey(self.streamProtocols[stream] ?? "?", in: self.bytesOutByProtocol)
        self.bytesOutByProtocol[p, default: 0] += message.count
        self.messagesOutByProtocol[p, default: 0] += 1
        self.scheduleFlush()
    }

    /// Resets a stream.
    public func reset(_ stream: StreamID, code: UInt16 = ChannelCode.cancelled) {
        self.channel.reset(stream: stream, code: code)
        self.streamProtocols[stream] = nil
        self.scheduleFlush()
    }

    /// Sends a ping.
    public func ping(_ payload: [UInt8]) {
        self.channel.ping(payload)
        self.scheduleFlush()
    }

    /// Bytes waiting in the socket's send queue.
    public var queuedBytes: Int { self.socket.queuedBytes }
    /// Bytes waiting to go to this peer: the channel's queue and the socket's.
    public var pendingSendBytes: Int { self.channel.queuedBytes + self.socket.queuedBytes }
    /// The host's check of a send against its budget for all peers (see
    /// `SecureHost.maxTotalQueuedBytes`); refused sends cut the peer off as a full queue does.
    var sendAdmission: ((SecurePeer, Int) -> Bool)?

    /// Closes with a reason the peer sees, after flushing it.
    public func close(code: UInt16 = ChannelCode.normal, reason: String = "") {
        guard !self.socket.isClosed else {
            self.finish(error: nil, socket: .local)
            return
        }
        self.channel.close(code: code, reason: reason)
        let bytes = self.channel.takeOutbound()
        // The CLOSE frame leaves with the FIN when nothing else waits for the socket.
        self.socket.closeAfterFlush(writingLast: self.socket.isOpen ? bytes : [])
        self.finish(error: nil, socket: .local)
    }

    private var flushScheduled = false

    /// Flushes once, after the loop's current batch of events: many sends made in one
    /// callback leave in one `writev` and in as few transport messages as possible.
    func scheduleFlush() {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        self.loop.deferUntilIdle { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            self.flush()
        }
    }

    /// Moves encrypted bytes to the socket while it has room. While data waits behind a
    /// full socket a stall timer runs; a peer that reads nothing for `stallTimeout` is dropped.
    public func flush() {
        guard self.socket.isOpen else { return }
        while self.channel.hasOutbound && self.socket.isWritable {
            let bytes = self.channel.takeOutbound(maxBytes: 256 * 1024)
            if bytes.isEmpty { break }
            self.socket.write(bytes)
        }
        if self.readingPaused && !self.closedReported && !self.owesTooMuch {
            self.readingPaused = false
            self.socket.resumeReading()
        }
        let stalled = !self.socket.isWritable
        if stalled && self.stallTimer == nil {
            let written = self.socket.bytesWritten
            self.stallTimer = self.loop.schedule(after: self.stallTimeout) { [weak self] in
                guard let self else { return }
                self.stallTimer = nil
                if self.socket.bytesWritten == written && !self.socket.isWritable {
                    self.finish(error: .bufferLimit("peer stopped reading"), socket: nil)
                    self.close(code: ChannelCode.protocolError, reason: "not reading")
                } else {
                    self.flush()
                }
            }
        } else if !stalled, let t = self.stallTimer {
            self.loop.cancel(t)
            self.stallTimer = nil
        }
    }

    /// How long a full send queue may make no progress before the peer is dropped.
    public var stallTimeout: UInt64 = 30_000_000_000
    private var stallTimer: TimerID?

    // MARK: TCPConnectionDelegate

    public func connectionDidOpen(_ connection: TCPConnection) {
        self.connectedAt = EventLoop.instant()
        if self.channel.role == .initiator {
            do { try self.channel.start() } catch {
                self.finish(error: error, socket: nil)
                return
            }
        }
        self.flush()
    }

    public func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) {
        var failure: ChannelError?
        let now = EventLoop.instant()
        self.lastReceivedAt = now
        do { try self.channel.receive(bytes, now: now) } catch { failure = error }
        self.afterReceive(failure: failure)
    }

    /// The socket reads straight into the channel's buffer, where messages are decrypted.
    public func connection(_ connection: TCPConnection, readWith read: (UnsafeMutableRawBufferPointer) -> Int) {
        var failure: ChannelError?
        let now = EventLoop.instant()
        do {
            guard try self.channel.receive(now: now, reading: read) > 0 else { return }
        } catch { failure = error }
        self.lastReceivedAt = now
        self.afterReceive(failure: failure)
    }

    private func afterReceive(failure: ChannelError?) {
        self.dispatchEvents(failure: failure)
        self.flush()
        if let failure {
            self.finish(error: failure, socket: nil)
        } else if self.owesTooMuch {
            // The peer makes us owe it more than it reads (PONGs, WINDOWs, answers): stop
            // reading until the socket drains; its sends then wait in its own kernel buffers.
            self.socket.pauseReading()
            self.readingPaused = true
        }
    }

    private var readingPaused = false
    private var lastReceivedAt: Instant = EventLoop.instant()
    private var lastPingAt: Instant = .zero
    private var maintenanceTimer: TimerID?

    /// Whether what we owe the peer (control frames, or queued answers past half the queue
    /// limit) is more than it reads.
    private var owesTooMuch: Bool {
        self.channel.controlBacklogBytes > self.channel.config.controlHighWatermark
            || self.channel.queuedBytes > self.channel.config.maxQueuedBytes / 2
    }

    /// Every few seconds: the channel's timeouts (idle and stalled streams, unfinished
    /// messages), a keep-alive PING when the peer has been quiet, and the idle timeout.
    private func scheduleMaintenance() {
        let config = self.channel.config
        let period = max(Duration.seconds(1), min(config.keepAliveInterval / 3, .seconds(10))).nanoseconds
        self.maintenanceTimer = self.loop.schedule(after: period) { [weak self] in
            guard let self, !self.closedReported else { return }
            let now = EventLoop.instant()
            do throws(ChannelError) { try self.channel.tick(now: now) } catch {
                self.dispatchEvents(failure: error)
                self.flush()
                self.finish(error: error, socket: nil)
                return
            }
            if now.since(self.lastReceivedAt) > config.idleTimeout {
                self.channel.close(code: ChannelCode.timeout, reason: "idle")
                self.dispatchEvents()
                self.flush()
                self.finish(error: .idleTimeout, socket: nil)
                return
            }
            if now.since(self.lastReceivedAt) > config.keepAliveInterval && now.since(self.lastPingAt) > config.keepAliveInterval {
                self.lastPingAt = now
                self.channel.ping([])
            }
            self.dispatchEvents()
            self.flush()
            self.scheduleMaintenance()
        }
    }

    public func connectionDidDrain(_ connection: TCPConnection) {
        self.flush()
    }

    public func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        self.finish(error: self.channel.closeReason, socket: reason)
    }

    /// Delivers the channel's events; a close caused by `failure` reports that failure.
    private func dispatchEvents(failure: ChannelError? = nil) {
        defer { self.pruneStreamProtocols() }
        for event in self.channel.takeEvents() {
            if self.closedReported { break }  // the owner was told the peer is gone
            switch event {
            case .established:
                self.establishedAt = EventLoop.instant()
            case .hello:
                self.helloAt = EventLoop.instant()
                self.ready = true
                if let t = self.handshakeTimer { self.loop.cancel(t) }
                self.scheduleMaintenance()
                self.delegate?.peerReady(self)
            case .streamOpened(let s, let name):
                self.streamProtocols[s] = name
                self.delegate?.peer(self, openedStream: s, protocolName: name)
            case .message(let s, let m):
                let p = Self.counterKey(self.streamProtocols[s] ?? "?", in: self.bytesInByProtocol)
                self.bytesInByProtocol[p, default: 0] += m.count
                self.messagesInByProtocol[p, default: 0] += 1
                self.delegate?.peer(self, received: m, on: s)
            case .streamFinished(let s):
                self.delegate?.peer(self, streamEnded: s, reset: nil)
            case .streamReset(let s, let code):
                self.streamProtocols[s] = nil
                self.delegate?.peer(self, streamEnded: s, reset: code)
            case .pong(let payload):
                self.delegate?.peer(self, pong: payload)
            case .closed(let error):
                self.flush()
                self.finish(error: error ?? failure, socket: nil)  // closes the socket after the flush
            }
        }
    }

    /// Distinct protocol names counted per connection; the peer chooses stream names, so
    /// past this many the rest count as "other".
    static let maxCountedProtocols = 32

    static func counterKey(_ name: String, in counters: [String: Int]) -> String {
        counters[name] != nil || counters.count < maxCountedProtocols ? name : "other"
    }

    /// Forgets protocol names of streams the channel no longer has (amortised: the table is
    /// swept only when it holds far more entries than the channel has streams).
    private func pruneStreamProtocols() {
        guard self.streamProtocols.count > self.channel.streamCount + 64 else { return }
        self.streamProtocols = self.streamProtocols.filter { self.channel.protocolName(of: $0.key) != nil }
    }

    private func finish(error: ChannelError?, socket: CloseReason?) {
        guard !self.closedReported else { return }
        self.closedReported = true
        if let t = self.handshakeTimer { self.loop.cancel(t) }
        if let t = self.stallTimer { self.loop.cancel(t) }
        if let t = self.maintenanceTimer { self.loop.cancel(t) }
        if !self.socket.isClosed && socket == nil { self.socket.closeAfterFlush() }
        self.delegate?.peerClosed(self, error: error, socket: socket)
    }
}

/// Placeholder delegate while a peer is being constructed.
final class DelegateBox: TCPConnectionDelegate {
    func connectionDidOpen(_ connection: TCPConnection) {}
    func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) {}
    func connectionDidDrain(_ connection: TCPConnection) {}
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}

extension EventLoop {
    /// The loop's monotonic clock (`EventLoop.now()`) as the protocol cores take it.
    public static func instant() -> Instant { Instant(nanoseconds: EventLoop.now()) }
}
