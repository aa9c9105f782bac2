import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import Synchronization

/// Where a miner is reached: its hotkey (who signs the answers), the node id of the channel
/// endpoint (the miner itself, or a relay), and that endpoint's address.
public struct AxonEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var hotkey: Ed25519.PublicKey
    public var nodeId: Ed25519.PublicKey
    public var address: SocketAddress

    public init(hotkey: Ed25519.PublicKey, nodeId: Ed25519.PublicKey, address: SocketAddress) {
        self.hotkey = hotkey
        self.nodeId = nodeId
        self.address = address
    }

    public var description: String { "\(self.hotkey.hex.prefix(12))…@\(self.address)" }
}

/// Why a query produced no verified answer.
public enum QueryFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// No channel could be opened (refused, wrong identity, handshake failure).
    case unreachable(String)
    /// The deadline passed before the answer was complete.
    case timeout
    /// The channel closed while the request was in flight.
    case connectionLost(String)
    /// The miner answered with a non-200 status.
    case refused(QueryStatus, String)
    /// The answer's signature, request hash or body hash does not check out.
    case badResponse(String)
    /// The answer is larger than the caller accepts.
    case responseTooLarge
    /// The caller cancelled.
    case cancelled

    public var description: String {
        switch self {
        case .unreachable(let s): return "unreachable: \(s)"
        case .timeout: return "timed out"
        case .connectionLost(let s): return "connection lost: \(s)"
        case .refused(let st, let m): return "\(st): \(m)"
        case .badResponse(let s): return "bad response: \(s)"
        case .responseTooLarge: return "response too large"
        case .cancelled: return "cancelled"
        }
    }
}

/// The outcome of one query: a status always (Bittensor's dendrite convention: 408 for a
/// timeout, 503 when the miner cannot be reached), the body when it succeeded.
public struct QueryResult: Sendable {
    public var target: Ed25519.PublicKey
    public var status: QueryStatus
    public var body: [UInt8]
    public var failure: QueryFailure?
    /// Wall time from the call to the answer.
    public var latencyMs: Double
    /// The handler time the miner reported.
    public var processingMicros: UInt64
    /// The miner's trailer (signed for verified requests): a receipt a caller can show to
    /// others, who check it with ``QueryResponseTrailer/isSigned(by:)``.
    public var receipt: QueryResponseTrailer?

    public init(target: Ed25519.PublicKey, status: QueryStatus, body: [UInt8], failure: QueryFailure?, latencyMs: Double,
                processingMicros: UInt64, receipt: QueryResponseTrailer? = nil) {
        self.target = target
        self.status = status
        self.body = body
        self.failure = failure
        self.latencyMs = latencyMs
        self.processingMicros = processingMicros
        self.receipt = receipt
    }

    public var isSuccess: Bool { self.failure == nil && self.status == .ok }
}

extension QueryStatus {
    /// Client side: the answer failed verification.
    public static let badResponse = QueryStatus(rawValue: 502)
}

/// The validator's client: opens (and reuses) secure channels to axons, sends signed requests
/// and gathers verified answers. Every failure is folded into a ``QueryResult``. Callable from
/// any thread or task; the work runs on the event loop.
public final class Dendrite: SecurePeerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    public let hotkey: Ed25519.PrivateKey
    let host: SecureHost
    let nonce: Atomic<UInt64>
    let nextCall = Atomic<UInt64>(1)
    /// Largest response body accepted.
    public let maxResponseBytes: Int

    var connections: [Ed25519.PublicKey: Connection] = [:]
    var calls: [UInt64: Call] = [:]
    /// Calls by channel and stream, so a closing channel costs its own calls only.
    var byStream: [ObjectIdentifier: [StreamID: UInt64]] = [:]

    final class Connection {
        let nodeId: Ed25519.PublicKey
        var peer: SecurePeer?
        var waiting: [UInt64] = []
        init(nodeId: Ed25519.PublicKey) { self.nodeId = nodeId }
    }

    final class Call: @unchecked Sendable {
        let id: UInt64
        let endpoint: AxonEndpoint
        let header: QueryRequestHeader
        let requestHash: [UInt8]
        let body: [UInt8]
        let startedNs: UInt64
        let onChunk: (@Sendable ([UInt8]) -> Void)?
        var continuation: CheckedContinuation<QueryResult, Never>?
        var peer: SecurePeer?
        var stream: StreamID?
        var timer: TimerID?
        var received: [UInt8] = []
        var receivedCount = 0
        var hasher = SHA256.Hasher()
        /// Loop-side: whether `start` ran, and whether the caller cancelled before it did.
        var started = false
        var cancelledBeforeStart = false

        init(id: UInt64, endpoint: AxonEndpoint, header: QueryRequestHeader, body: [UInt8], onChunk: (@Sendable ([UInt8]) -> Void)?) {
            self.id = id
            self.endpoint = endpoint
            self.header = header
            self.requestHash = header.requestHash
            self.body = body
            self.startedNs = EventLoop.now()
            self.onChunk = onChunk
        }
    }

    public init(hotkey: Ed25519.PrivateKey, genesisHash: [UInt8], loop: EventLoop, maxResponseBytes: Int = 8 << 20,
                channel: ChannelConfig? = nil) {
        self.loop = loop
        self.hotkey = hotkey
        self.maxResponseBytes = maxResponseBytes
        var config = channel ?? ChannelConfig()
        if channel == nil { config.maxStreams = 4096 }
        // Outbound only: the dendrite never listens, so no peer can fill its slots; many
        // miners may share one host, so the per-host cap is generous.
        var limits = ConnectionLimits()
        limits.maxOutbound = 4096
        limits.maxInbound = 0
        limits.maxTotal = 4096
        limits.maxPerIP = 256
        self.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: hotkey, noiseStatic: X25519.PrivateKey()), config: config, limits: limits) {
            Hello(genesisHash: genesisHash, roles: .subnetValidator, agent: "tensormesh-dendrite/0.1.0")
        }
        self.nonce = Atomic(UInt64(Date().timeIntervalSince1970 * 1_000_000))
        self.host.delegate = self
    }

    // MARK: API

    /// Queries one miner. `timeout` is in seconds; the deadline travels in the request.
    public func call(_ endpoint: AxonEndpoint, netuid: UInt16, synapse: String, body: [UInt8], timeout: Double,
                     onChunk: (@Sendable ([UInt8]) -> Void)? = nil) async -> QueryResult {
        let id = self.nextCall.wrappingAdd(1, ordering: .relaxed).oldValue
        let seconds = Self.clampedTimeout(timeout)
        let deadline = UInt64(Date().timeIntervalSince1970 * 1000) + UInt64(seconds * 1000)
        let nonce = self.nonce.wrappingAdd(1, ordering: .relaxed).oldValue
        let header = QueryRequestHeader(netuid: netuid, synapse: synapse, caller: self.hotkey, target: endpoint.hotkey,
                                        nonce: nonce, deadline: deadline, body: body)
        let call = Call(id: id, endpoint: endpoint, header: header, body: body, onChunk: onChunk)
        let timeoutNs = UInt64(seconds * 1e9)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<QueryResult, Never>) in
                call.continuation = cont
                self.loop.execute { self.start(call, timeoutNs: timeoutNs) }
            }
        } onCancel: {
            self.loop.execute {
                // Before `start` ran, mark the call; after, complete it if it is still open
                // (nothing is remembered for calls that already completed).
                if call.started { self.complete(id, status: .timeout, failure: .cancelled) } else { call.cancelledBeforeStart = true }
            }
        }
    }

    /// Longest per-query timeout, in seconds (an axon accepts deadlines up to about 2 minutes ahead).
    public static let maxTimeout: Double = 3600

    /// `timeout` within [0, ``maxTimeout``]: NaN and negatives are 0, infinity is the maximum
    /// (converting them to integers would trap).
    static func clampedTimeout(_ timeout: Double) -> Double {
        guard !timeout.isNaN else { return 0 }
        return min(max(0, timeout), Self.maxTimeout)
    }

    /// Queries many miners at once with one deadline; the results come in input order.
    public func query(_ endpoints: [AxonEndpoint], netuid: UInt16, synapse: String, body: [UInt8], timeout: Double) async -> [QueryResult] {
        await withTaskGroup(of: (Int, QueryResult).self) { group in
            for (i, e) in endpoints.enumerated() {
                group.addTask { (i, await self.call(e, netuid: netuid, synapse: synapse, body: body, timeout: timeout)) }
            }
            var out = [QueryResult?](repeating: nil, count: endpoints.count)
            for await (i, r) in group { out[i] = r }
            return out.map { $0! }
        }
    }

    /// Closes every channel.
    public func close() {
        self.loop.execute {
            for id in Array(self.calls.keys) { self.complete(id, status: .unavailable, failure: .connectionLost("dendrite closed")) }
            self.host.shutdown(reason: "dendrite closing")
        }
    }

    /// Open channels (for tests of connection reuse).
    public func connectionCount() async -> Int {
        (try? await self.loop.submit { self.host.readyPeers.count }) ?? 0
    }

    // MARK: Loop side

    func start(_ call: Call, timeoutNs: UInt64) {
        guard call.continuation != nil else { return }
        call.started = true
        self.calls[call.id] = call
        if call.cancelledBeforeStart {
            self.complete(call.id, status: .timeout, failure: .cancelled)
            return
        }
        call.timer = self.loop.schedule(after: timeoutNs) { [weak self] in
            self?.complete(call.id, status: .timeout, failure: .timeout)
        }
        let nodeId = call.endpoint.nodeId
        let conn = self.connections[nodeId] ?? {
            let c = Connection(nodeId: nodeId)
            self.connections[nodeId] = c
            return c
        }()
        if let p = conn.peer, p.isReady {
            self.send(call, on: p)
            return
        }
        conn.waiting.append(call.id)
        if conn.peer == nil {
            do {
                guard let p = try self.host.dial(call.endpoint.address) else {
                    self.failConnection(conn, .unreachable("connection limit reached"))
                    return
                }
                p.userInfo["expect"] = nodeId.hex
                conn.peer = p
            } catch {
                self.failConnection(conn, .unreachable("\(call.endpoint.address): \(error)"))
            }
        }
    }

    func send(_ call: Call, on peer: SecurePeer) {
        do {
            let s = try peer.openStream(QueryProtocol.query)
            call.peer = peer
            call.stream = s
            self.byStream[ObjectIdentifier(peer), default: [:]][s] = call.id
            try peer.send(call.header.encoded, on: s, finish: call.body.isEmpty)
            if !call.body.isEmpty { try peer.send(call.body, on: s, finish: true) }
        } catch {
            self.complete(call.id, status: .unavailable, failure: .unreachable("cannot send: \(error)"))
        }
    }

    func failConnection(_ conn: Connection, _ failure: QueryFailure) {
        self.connections[conn.nodeId] = nil
        for id in conn.waiting { self.complete(id, status: .unavailable, failure: failure) }
        conn.waiting.removeAll()
    }

    func complete(_ id: UInt64, status: QueryStatus, failure: QueryFailure?, body: [UInt8] = [], processing: UInt64 = 0,
                  receipt: QueryResponseTrailer? = nil) {
        guard let call = self.calls.removeValue(forKey: id) else {
            return
        }
        if let t = call.timer { self.loop.cancel(t) }
        if let p = call.peer, let s = call.stream {
            let oid = ObjectIdentifier(p)
            self.byStream[oid]?[s] = nil
            if self.byStream[oid]?.isEmpty == true { self.byStream[oid] = nil }
            if failure != nil || status != .ok { p.reset(s) }
        }
        let latency = Double(EventLoop.now() - call.startedNs) / 1e6
        call.continuation?.resume(returning: QueryResult(target: call.endpoint.hotkey, status: status, body: body, failure: failure,
                                                         latencyMs: latency, processingMicros: processing, receipt: receipt))
        call.continuation = nil
    }

    // MARK: SecurePeerDelegate

    public func peerReady(_ peer: SecurePeer) {
        guard let id = peer.remoteNodeId, let conn = self.connections[id], conn.peer === peer else {
            // Not who we dialled at that address.
            peer.close(code: ChannelCode.refused, reason: "unexpected identity")
            if let expected = peer.userInfo["expect"], let k = Ed25519.PublicKey(hex: expected), let conn = self.connections[k], conn.peer === peer {
                conn.peer = nil
                self.failConnection(conn, .unreachable("the endpoint's node id is \(peer.remoteNodeId?.hex.prefix(16) ?? "?")…, not \(expected.prefix(16))…"))
            }
            return
        }
        let waiting = conn.waiting
        conn.waiting.removeAll()
        for cid in waiting { if let c = self.calls[cid] { self.send(c, on: peer) } }
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        peer.reset(stream, code: ChannelCode.refused)  // miners do not open streams to us
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        guard let id = self.byStream[ObjectIdentifier(peer)]?[stream], let call = self.calls[id] else { return }
        let frame: QueryResponseFrame
        do { frame = try QueryResponseFrame.decode(message) } catch {
            self.complete(id, status: .badResponse, failure: .badResponse("undecodable frame: \(error)"))
            return
        }
        switch frame {
        case .chunk(let b):
            call.receivedCount += b.count
            guard call.receivedCount <= self.maxResponseBytes else {
                self.complete(id, status: .badResponse, failure: .responseTooLarge)
                return
            }
            call.hasher.update(b)
            if let f = call.onChunk { f(b) } else { call.received.append(contentsOf: b) }
        case .trailer(let t):
            guard t.requestHash == call.requestHash || t.signature == nil else {
                self.complete(id, status: .badResponse, failure: .badResponse("answer is for another request"))
                return
            }
            if t.status == .ok {
                // On a direct channel the handshake proved the miner's hotkey and the AEAD
                // protects the trailer; through a relay the signature is what proves it.
                let direct = peer.remoteNodeId == call.endpoint.hotkey && t.responder == call.endpoint.hotkey && t.signature != nil
                guard direct || t.isSigned(by: call.endpoint.hotkey) else {
                    self.complete(id, status: .badResponse, failure: .badResponse("answer not signed by \(call.endpoint.hotkey.hex.prefix(16))…"))
                    return
                }
                guard t.requestHash == call.requestHash, t.bodyLength == UInt64(call.receivedCount),
                      ConstantTime.equals(t.bodyHash, call.hasher.finalize()) else {
                    self.complete(id, status: .badResponse, failure: .badResponse("body does not match the signed trailer"))
                    return
                }
                self.complete(id, status: .ok, failure: nil, body: call.received, processing: t.processingMicros, receipt: t)
            } else {
                self.complete(id, status: t.status, failure: .refused(t.status, t.message), processing: t.processingMicros,
                              receipt: t.signature != nil && t.responder == call.endpoint.hotkey ? t : nil)
            }
        }
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        guard reset != nil, let id = self.byStream[ObjectIdentifier(peer)]?[stream] else { return }
        self.complete(id, status: .unavailable, failure: .connectionLost("stream reset by the miner (code \(reset!))"))
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        let reason = error.map { "\($0)" } ?? socket.map { "\($0)" } ?? "closed"
        // The connection this peer was dialled for, by the node id we expected (O(1), no scan).
        if let expected = peer.userInfo["expect"], let nodeId = Ed25519.PublicKey(hex: expected),
           let conn = self.connections[nodeId], conn.peer === peer {
            self.connections[nodeId] = nil
            conn.peer = nil
            for id in conn.waiting { self.complete(id, status: .unavailable, failure: .unreachable(reason)) }
        }
        if let streams = self.byStream.removeValue(forKey: ObjectIdentifier(peer)) {
            for id in streams.values { self.complete(id, status: .unavailable, failure: .connectionLost(reason)) }
        }
    }
}
