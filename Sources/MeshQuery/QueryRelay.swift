import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets

/// Carries queries to miners that cannot accept inbound connections: such a miner keeps a
/// channel open to the relay and announces itself on `/tm/relay/1`; a validator dials the
/// relay (the miner advertises the relay's address and node id on chain) and sends its
/// request with the miner's hotkey as target; the relay pipes the stream to the miner and
/// the answer back. Requests and answers are signed end to end, so the relay can drop
/// traffic but not forge it. Loop thread only, except ``start(listen:)`` and ``stop()``.
public final class QueryRelay: SecurePeerDelegate, @unchecked Sendable {
    public let loop: EventLoop
    let host: SecureHost
    /// Miners reachable through us, by hotkey (= their channel node id).
    var miners: [Ed25519.PublicKey: SecurePeer] = [:]
    var pipes: [End: Pipe] = [:]
    public private(set) var forwarded = 0
    public private(set) var refused = 0

    struct End: Hashable {
        let peer: ObjectIdentifier
        let stream: StreamID
    }

    final class Pipe {
        let caller: SecurePeer
        let callerStream: StreamID
        var miner: SecurePeer?
        var minerStream: StreamID?
        var bodyPending = false
        init(caller: SecurePeer, callerStream: StreamID) {
            self.caller = caller
            self.callerStream = callerStream
        }
    }

    public init(identity: Ed25519.PrivateKey, genesisHash: [UInt8], loop: EventLoop) {
        self.loop = loop
        var config = ChannelConfig()
        config.maxStreams = 2048
        self.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: identity), config: config) {
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

    // MARK: SecurePeerDelegate

    public func peerReady(_ peer: SecurePeer) {}

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        switch protocolName {
        case QueryProtocol.relay:
            peer.userInfo["relayStream"] = "\(stream)"
        case QueryProtocol.query:
            self.pipes[End(peer: ObjectIdentifier(peer), stream: stream)] = Pipe(caller: peer, callerStream: stream)
        default:
            peer.reset(stream, code: ChannelCode.refused)
        }
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        if peer.userInfo["relayStream"] == "\(stream)" {
            // The announcement: the miner's hotkey is its channel identity.
            if let id = peer.remoteNodeId, peer.remoteHello?.roles.contains(.miner) == true {
                self.miners[id]?.close(code: ChannelCode.normal, reason: "replaced by a newer channel")
                self.miners[id] = peer
            }
            return
        }
        let end = End(peer: ObjectIdentifier(peer), stream: stream)
        guard let pipe = self.pipes[end] else { return }
        if peer === pipe.caller && stream == pipe.callerStream {
            self.fromCaller(pipe, message)
        } else if let m = pipe.miner, let ms = pipe.minerStream {
            // An answer frame: pass it on; the trailer ends the caller's stream.
            let isTrailer = message.first == 2
            do { try pipe.caller.send(message, on: pipe.callerStream, finish: isTrailer) } catch { m.reset(ms) }
            if isTrailer { self.close(pipe, resetMiner: false) }
        }
    }

    func fromCaller(_ pipe: Pipe, _ message: [UInt8]) {
        if let m = pipe.miner, let ms = pipe.minerStream {
            guard pipe.bodyPending else { return }
            pipe.bodyPending = false
            do { try m.send(message, on: ms, finish: true) } catch { self.close(pipe, resetMiner: true) }
            return
        }
        guard message.count <= QueryRequestHeader.maxEncodedSize, let h = try? QueryRequestHeader.decode(message) else {
            self.refuse(pipe, .badRequest, "malformed request header")
            return
        }
        guard let miner = self.miners[h.target], miner.isReady else {
            self.refuse(pipe, .notFound, "hotkey \(h.target.hex.prefix(16))… is not connected to this relay")
            return
        }
        do {
            let s = try miner.openStream(QueryProtocol.query)
            pipe.miner = miner
            pipe.minerStream = s
            pipe.bodyPending = h.bodyLength > 0
            self.pipes[End(peer: ObjectIdentifier(miner), stream: s)] = pipe
            try miner.send(message, on: s, finish: h.bodyLength == 0)
            self.forwarded += 1
        } catch {
            self.refuse(pipe, .unavailable, "cannot reach the miner: \(error)")
        }
    }

    func refuse(_ pipe: Pipe, _ status: QueryStatus, _ message: String) {
        self.refused += 1
        let t = QueryResponseTrailer(status: status, message: message, responder: self.host.identity.nodeId,
                                     requestHash: [UInt8](repeating: 0, count: 32))
        try? pipe.caller.send(QueryResponseFrame.trailer(t).encoded, on: pipe.callerStream, finish: true)
        self.close(pipe, resetMiner: true)
    }

    func close(_ pipe: Pipe, resetMiner: Bool) {
        self.pipes[End(peer: ObjectIdentifier(pipe.caller), stream: pipe.callerStream)] = nil
        if let m = pipe.miner, let s = pipe.minerStream {
            self.pipes[End(peer: ObjectIdentifier(m), stream: s)] = nil
            if resetMiner { m.reset(s) }
        }
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        guard reset != nil, let pipe = self.pipes[End(peer: ObjectIdentifier(peer), stream: stream)] else { return }
        if peer === pipe.caller {
            self.close(pipe, resetMiner: true)
        } else {
            pipe.caller.reset(pipe.callerStream)
            self.close(pipe, resetMiner: false)
        }
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        if let id = peer.remoteNodeId, self.miners[id] === peer { self.miners[id] = nil }
        let oid = ObjectIdentifier(peer)
        for (end, pipe) in self.pipes where end.peer == oid {
            if pipe.caller === peer {
                self.close(pipe, resetMiner: true)
            } else {
                pipe.caller.reset(pipe.callerStream)
                self.close(pipe, resetMiner: false)
            }
        }
    }
}
