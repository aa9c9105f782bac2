import Foundation
import MeshChannel
import MeshCrypto
import MeshNetwork
import MeshSockets
import Synchronization

/// Waits (polling) until `condition` holds or `timeout` seconds pass.
func waitUntil(_ timeout: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    return condition()
}

/// Records what a host's peers do. Written on the loop, read by the test.
final class Recorder: SecurePeerDelegate, @unchecked Sendable {
    // Safety: every field is behind `state`.
    struct State {
        var ready: [String] = []
        var messages: [(StreamID, [UInt8])] = []
        var opened: [(StreamID, String)] = []
        var closed: [(ChannelError?, CloseReason?)] = []
        var ended: [(StreamID, UInt16?)] = []
    }
    let state = Mutex(State())
    var echo = false
    var replyOnOpen: [UInt8]?

    func peerReady(_ peer: SecurePeer) { self.state.withLock { $0.ready.append(peer.remoteNodeId!.hex) } }
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        self.state.withLock { $0.opened.append((stream, protocolName)) }
    }
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        self.state.withLock { $0.messages.append((stream, message)) }
        if self.echo { try? peer.send(message, on: stream) }
    }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        self.state.withLock { $0.ended.append((stream, reset)) }
    }
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        self.state.withLock { $0.closed.append((error, socket)) }
    }

    var readyCount: Int { self.state.withLock { $0.ready.count } }
    var messageCount: Int { self.state.withLock { $0.messages.count } }
    var closedCount: Int { self.state.withLock { $0.closed.count } }
}

/// Objects that live on the loop thread, reachable from the test through `submit`.
final class LoopBox<T>: @unchecked Sendable {
    // Safety: `value` is touched only on the event loop thread (inside `submit` closures).
    var value: T
    init(_ value: T) { self.value = value }
}

let testGenesis = [UInt8](repeating: 7, count: 32)

func makeHost(_ loop: EventLoop, recorder: Recorder, config: ChannelConfig = ChannelConfig(),
              limits: ConnectionLimits = ConnectionLimits(), genesis: [UInt8] = testGenesis) -> SecureHost {
    let host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey()), config: config, limits: limits) {
        Hello(genesisHash: genesis)
    }
    host.delegate = recorder
    return host
}
