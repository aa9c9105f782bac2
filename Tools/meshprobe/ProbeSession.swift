import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshNode
import MeshNodeCore
import MeshSockets
import Synchronization

/// One secure channel to a peer, opened with a throwaway identity, with the handshake's
/// milestones recorded. Blocking API for the command-line tool.
final class ProbeSession: SecurePeerDelegate, @unchecked Sendable {
    // Safety: the delegate methods run on `loop`; the results are behind `state`.
    struct Milestones: Sendable {
        var connectMs: Double = 0
        var handshakeMs: Double = 0
        var helloMs: Double = 0
    }

    struct State {
        var ready = false
        var closed: String?
        var hello: Hello?
        var nodeId: Ed25519.PublicKey?
        var milestones = Milestones()
        var responses: [StreamID: [UInt8]] = [:]
    }

    let loop: EventLoop
    let state = Mutex(State())
    var host: SecureHost!
    var peer: SecurePeer?

    /// The throwaway identity this session connects with.
    let key = Ed25519.PrivateKey()
    var identity: Ed25519.PublicKey { self.key.publicKey }

    init(loop: EventLoop) { self.loop = loop }

    /// Connects to `address` (NODEID@HOST:PORT). With no genesis, any is accepted (the peer
    /// will then drop us after its hello; enough to learn who it is).
    static func open(_ address: NodeAddress, genesis: [UInt8]?, loop: EventLoop, timeout: Double) throws -> ProbeSession {
        let s = ProbeSession(loop: loop)
        guard let addr = try SocketAddress.resolve(host: address.host, port: address.port).first else {
            throw ProbeError("cannot resolve \(address.host)")
        }
        var config = ChannelConfig()
        config.acceptAnyGenesis = genesis == nil
        config.handshakeTimeout = .nanoseconds(Int64(timeout * 1e9))
        let channelConfig = config
        let hello = Hello(genesisHash: genesis ?? [UInt8](repeating: 0, count: 32), roles: .light, agent: "meshprobe/0.1.0")
        let box = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            s.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: s.key, noiseStatic: X25519.PrivateKey()), config: channelConfig) { hello }
            s.host.delegate = s
            do { s.peer = try s.host.dial(addr) } catch { box.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let e = box.withLock({ $0 }) { throw ProbeError("cannot connect to \(addr): \(e)") }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let (ready, closed) = s.state.withLock { ($0.ready || $0.hello != nil, $0.closed) }
            if ready { break }
            if let closed { throw ProbeError("\(address): \(closed)") }
            usleep(2000)
        }
        let st = s.state.withLock { $0 }
        guard st.hello != nil else { throw ProbeError("\(address): no handshake within \(timeout) s") }
        guard st.nodeId == address.nodeId else {
            throw ProbeError("\(address.host):\(address.port) is node \(st.nodeId?.hex ?? "?"), not \(address.nodeId.hex)")
        }
        return s
    }

    /// Sends one request on a new stream and waits for the answer.
    func request(_ protocolName: String, _ body: [UInt8], timeout: Double) throws -> [UInt8] {
        let sid = Mutex<StreamID?>(nil)
        let done = DispatchSemaphore(value: 0)
        self.loop.execute {
            if let p = self.peer, let s = try? p.openStream(protocolName) {
                try? p.send(body, on: s, finish: true)
                sid.withLock { $0 = s }
            }
            done.signal()
        }
        done.wait()
        guard let s = sid.withLock({ $0 }) else { throw ProbeError("the channel is closed") }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = self.state.withLock({ $0.responses[s] }) { return r }
            if let c = self.state.withLock({ $0.closed }) { throw ProbeError("the peer closed the channel: \(c)") }
            usleep(2000)
        }
        throw ProbeError("no answer to \(protocolName) within \(timeout) s")
    }

    func close() {
        let done = DispatchSemaphore(value: 0)
        self.loop.execute {
            self.host?.shutdown(reason: "probe done")
            done.signal()
        }
        done.wait()
    }

    // MARK: SecurePeerDelegate

    func peerReady(_ peer: SecurePeer) {
        let ms = { (t: Instant?) in t.map { Double($0.since(peer.openedAt).nanoseconds) / 1e6 } ?? 0 }
        self.state.withLock {
            $0.ready = true
            $0.hello = peer.remoteHello
            $0.nodeId = peer.remoteNodeId
            $0.milestones = Milestones(connectMs: ms(peer.connectedAt), handshakeMs: ms(peer.establishedAt), helloMs: ms(peer.helloAt))
        }
    }

    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) { peer.reset(stream) }
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        self.state.withLock { $0.responses[stream] = message }
    }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {}
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        self.state.withLock { st in
            if st.hello == nil, let h = peer.remoteHello {
                st.hello = h
                st.nodeId = peer.remoteNodeId
            }
            st.closed = error.map { "\($0)" } ?? socket.map { "\($0)" } ?? "closed"
        }
    }
}

struct ProbeError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { self.description = d }
}
