import MeshChannel
import MeshCodec
import MeshCrypto
import MeshSockets

/// Counters a host keeps about its connections, for metrics and tests.
public struct HostCounters: Sendable, Equatable {
    public var accepted = 0
    public var dialled = 0
    public var established = 0
    public var handshakeFailures: [String: Int] = [:]
    public var closedByReason: [String: Int] = [:]
    public var refusedByLimits = 0
    public var refusedBanned = 0
    /// Peers cut off because the host's send budget was spent and they held more than their
    /// fair share of it (they were not reading).
    public var droppedOverSendBudget = 0

    /// The failure class of an error, for the `reason` label of a metric.
    public static func label(_ e: ChannelError?) -> String {
        guard let e else { return "none" }
        switch e {
        case .decryptFailed: return "decrypt"
        case .malformedHandshake: return "malformed_handshake"
        case .invalidIdentity: return "invalid_identity"
        case .selfConnection: return "self"
        case .genesisMismatch: return "genesis_mismatch"
        case .incompatibleVersion: return "version"
        case .frameTooLarge, .messageTooLarge: return "too_large"
        case .protocolViolation: return "protocol_violation"
        case .flowControlViolation: return "flow_control"
        case .handshakeTimeout: return "handshake_timeout"
        case .idleTimeout: return "idle_timeout"
        case .nonceExhausted: return "nonce"
        case .codec: return "codec"
        case .crypto: return "crypto"
        case .remoteClosed: return "remote_closed"
        case .bufferLimit: return "buffer_limit"
        }
    }
}

/// Listens for and dials secure peers with one identity and one set of limits; routes
/// every peer's events to one delegate (the node's peer manager, or a test). Loop thread only.
public final class SecureHost: SecurePeerDelegate {
    public let loop: EventLoop
    public let identity: NodeIdentity
    public var config: ChannelConfig
    public let tracker: ConnectionTracker
    /// The hello to send; read at each new connection so heads stay current.
    public var helloProvider: () -> Hello
    public weak var delegate: (any SecurePeerDelegate)?
    public private(set) var listener: TCPListener?
    public private(set) var peers: [ObjectIdentifier: SecurePeer] = [:]
    public private(set) var counters = HostCounters()
    /// Node ids refused until the time given (monotonic ns), inbound and outbound alike.
    public private(set) var bans: [Ed25519.PublicKey: UInt64] = [:]
    public static let maxBans = 4096
    /// Bytes all peers together may hold queued for sending (channel and socket queues). Each
    /// connection has its own limit (`ChannelConfig.maxQueuedBytes`, 64 MiB), but many
    /// connections that ask and never read would together hold the process's memory; past
    /// this budget, a send from a peer holding more than `queueFairShare` is refused and that
    /// peer cut off, while peers with small queues are still served.
    public var maxTotalQueuedBytes = 256 << 20
    /// What any one peer may queue whatever the others hold.
    public var queueFairShare = 4 << 20

    public init(loop: EventLoop, identity: NodeIdentity, config: ChannelConfig = ChannelConfig(),
                limits: ConnectionLimits = ConnectionLimits(), hello: @escaping () -> Hello) {
        self.loop = loop
        self.identity = identity
        self.config = config
        self.tracker = ConnectionTracker(limits: limits)
        self.helloProvider = hello
    }

    /// Starts listening on `address` (port 0 picks a free port).
    @discardableResult
    public func listen(on address: SocketAddress) throws(SocketError) -> SocketAddress {
        // The handshake answers each message at once: ACKs ride on the answers.
        let l = try TCPListener(loop: self.loop, address: address, tracker: self.tracker, acknowledgeWithReply: true) { [unowned self] socket in
            self.counters.accepted += 1
            let peer = SecurePeer.accept(socket, loop: self.loop, identity: self.identity, hello: self.helloProvider(),
                                         config: self.config, delegate: self)
            self.admit(peer)
        }
        self.listener = l
        return l.localAddress
    }

    /// Dials a peer. Returns nil when a limit refuses it.
    public func dial(_ address: SocketAddress) throws(SocketError) -> SecurePeer? {
        guard self.tracker.admit(address, inbound: false) else {
            self.counters.refusedByLimits += 1
            return nil
        }
        let peer: SecurePeer
        do {
            peer = try SecurePeer.connect(loop: self.loop, to: address, identity: self.identity, hello: self.helloProvider(),
                                          config: self.config, delegate: self)
        } catch {
            self.tracker.release(address, inbound: false)
            throw error
        }
        let tracker = self.tracker
        peer.socket.onCloseHook { c in tracker.release(c.remoteAddress, inbound: false) }
        self.counters.dialled += 1
        self.admit(peer)
        return peer
    }

    private func admit(_ peer: SecurePeer) {
        peer.sendAdmission = { [weak self] peer, bytes in self?.mayQueue(bytes, for: peer) ?? true }
        self.peers[ObjectIdentifier(peer)] = peer
    }

    /// Bytes queued for sending to all peers.
    public var totalQueuedBytes: Int { self.peers.values.reduce(0) { $0 + $1.pendingSendBytes } }

    /// Whether `peer` may queue `bytes` more under the host's send budget. Cheap for peers
    /// within their fair share (no sum is taken).
    func mayQueue(_ bytes: Int, for peer: SecurePeer) -> Bool {
        guard peer.pendingSendBytes + bytes > self.queueFairShare else { return true }
        guard self.totalQueuedBytes + bytes > self.maxTotalQueuedBytes else { return true }
        self.counters.droppedOverSendBudget += 1
        return false
    }

    /// Ready peers.
    public var readyPeers: [SecurePeer] { self.peers.values.filter { $0.isReady } }

    /// Closes the listener and every peer.
    public func shutdown(reason: String = "shutting down") {
        self.listener?.close()
        for p in self.peers.values { p.close(code: ChannelCode.shuttingDown, reason: reason) }
    }

    // MARK: SecurePeerDelegate (forwarding with bookkeeping)

    public func peerReady(_ peer: SecurePeer) {
        if let id = peer.remoteNodeId, self.isBanned(id) {
            self.counters.refusedBanned += 1
            peer.close(code: ChannelCode.banned, reason: "banned")
            return
        }
        self.counters.established += 1
        self.delegate?.peerReady(peer)
    }

    // MARK: Bans

    /// Refuses `id` until `until` (monotonic ns): its connections are closed after the
    /// handshake, whichever side dialled. The table is bounded: when full, the ban that ends
    /// soonest makes room.
    public func ban(_ id: Ed25519.PublicKey, until: UInt64) {
        let now = EventLoop.now()
        if self.bans.count >= Self.maxBans && self.bans[id] == nil {
            self.bans = self.bans.filter { $0.value > now }
            if self.bans.count >= Self.maxBans, let soonest = self.bans.min(by: { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
                self.bans[soonest.key] = nil
            }
        }
        self.bans[id] = max(self.bans[id] ?? 0, until)
    }

    /// Whether `id` is banned now.
    public func isBanned(_ id: Ed25519.PublicKey) -> Bool {
        guard let until = self.bans[id] else { return false }
        if until > EventLoop.now() { return true }
        self.bans[id] = nil
        return false
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        self.delegate?.peer(peer, openedStream: stream, protocolName: protocolName)
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        self.delegate?.peer(peer, received: message, on: stream)
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        self.delegate?.peer(peer, streamEnded: stream, reset: reset)
    }

    public func peer(_ peer: SecurePeer, pong payload: [UInt8]) {
        self.delegate?.peer(peer, pong: payload)
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        guard self.peers.removeValue(forKey: ObjectIdentifier(peer)) != nil else { return }
        if peer.establishedAt == nil || peer.helloAt == nil {
            let label = error.map { HostCounters.label($0) } ?? (socket.map { "socket_\($0 == .remote ? "eof" : "error")" } ?? "unknown")
            self.counters.handshakeFailures[label, default: 0] += 1
        }
        self.counters.closedByReason[HostCounters.label(error), default: 0] += 1
        self.delegate?.peerClosed(peer, error: error, socket: socket)
    }
}

extension TCPConnection {
    /// Adds a close hook (used for outbound limit bookkeeping).
    public func onCloseHook(_ hook: @escaping (TCPConnection) -> Void) {
        let previous = self.onClose
        self.onClose = { c in
            previous?(c)
            hook(c)
        }
    }
}
