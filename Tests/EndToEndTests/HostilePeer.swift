import Foundation
import MeshChain
import MeshChannel
import MeshClient
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import MeshTestSupport
import Synchronization

/// A peer that speaks the real protocol — Noise XX handshake, hello, framed streams — against
/// a node, miner or validator process, and then does what an attacker would: lie in its
/// hello, flood control frames, send hostile requests. It runs its own event loop; every
/// call blocks until the loop did the work.
final class HostilePeer: SecurePeerDelegate, @unchecked Sendable {
    // Safety: `host` and `peer` are set and used on `loop` only; results live in `state`.
    struct State {
        var ready = false
        var closed: String?
        var remoteHello: Hello?
        var responses: [StreamID: [[UInt8]]] = [:]
        var ended: Set<StreamID> = []
        var received = 0
    }

    let loop: EventLoop
    let state = Mutex(State())
    var host: SecureHost?
    var peer: SecurePeer?
    let identity: NodeIdentity

    private init(loop: EventLoop, key: Ed25519.PrivateKey) {
        self.loop = loop
        self.identity = NodeIdentity(signingKey: key, noiseStatic: X25519.PrivateKey())
    }

    /// Connects to `host:port` with `hello` and waits for the peer's hello.
    static func connect(host: String = "127.0.0.1", port: UInt16, hello: Hello, key: Ed25519.PrivateKey = Ed25519.PrivateKey(),
                        config: ChannelConfig = ChannelConfig(), timeout: Double = 10) throws -> HostilePeer {
        let loop = try EventLoop(name: "hostile")
        let s = HostilePeer(loop: loop, key: key)
        let failure = Mutex<String?>(nil)
        let address = SocketAddress(numericHost: host, port: port)!
        s.onLoop { s in
            let h = SecureHost(loop: loop, identity: s.identity, config: config) { hello }
            h.delegate = s
            s.host = h
            do { s.peer = try h.dial(address) } catch { failure.withLock { $0 = "\(error)" } }
        }
        if let f = failure.withLock({ $0 }) { throw ProcessFailure("cannot dial \(host):\(port): \(f)") }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let (ready, closed) = s.state.withLock { ($0.ready, $0.closed) }
            if ready { return s }
            if let closed { throw ProcessFailure("handshake with \(host):\(port) failed: \(closed)") }
            usleep(2000)
        }
        throw ProcessFailure("no hello from \(host):\(port) within \(timeout) s")
    }

    /// An honest-looking hello for `genesis` (claims to be a full node at genesis).
    static func hello(genesis: Hash32, best: UInt64 = 0, bestHash: [UInt8] = [UInt8](repeating: 7, count: 32),
                      listenPort: UInt16 = 0, agent: String = "hostile/0.1") -> Hello {
        Hello(genesisHash: genesis.bytes, best: BlockRef(number: best, hash: bestHash), finalized: BlockRef(number: 0, hash: genesis.bytes),
              roles: .full, listenPort: listenPort, agent: agent)
    }

    /// Runs `body` on the loop with this peer and waits for it.
    func onLoop(_ body: @escaping @Sendable (HostilePeer) -> Void) {
        let done = DispatchSemaphore(value: 0)
        self.loop.execute {
            body(self)
            done.signal()
        }
        done.wait()
    }

    /// Whether the victim closed the connection (and why).
    var closedReason: String? { self.state.withLock { $0.closed } }
    var isOpen: Bool { self.state.withLock { $0.closed == nil } }

    /// Opens a stream for `protocolName` and sends `messages` on it.
    @discardableResult
    func send(_ protocolName: String, _ messages: [[UInt8]], finish: Bool = true) -> StreamID? {
        let sid = Mutex<StreamID?>(nil)
        self.onLoop { s in
            guard let p = s.peer, let id = try? p.openStream(protocolName) else { return }
            for (i, m) in messages.enumerated() { try? p.send(m, on: id, finish: finish && i == messages.count - 1) }
            sid.withLock { $0 = id }
        }
        return sid.withLock { $0 }
    }

    /// Sends `messages` on this peer's one long-lived stream for `protocolName` (opened on
    /// first use), as an honest node sends gossip.
    func stream(_ protocolName: String, _ messages: [[UInt8]]) {
        self.onLoop { s in
            guard let p = s.peer else { return }
            if s.longLived[protocolName] == nil { s.longLived[protocolName] = try? p.openStream(protocolName) }
            guard let id = s.longLived[protocolName] else { return }
            for m in messages { try? p.send(m, on: id) }
        }
    }
    var longLived: [String: StreamID] = [:]

    /// Sends on a stream opened earlier.
    func send(_ message: [UInt8], on stream: StreamID, finish: Bool = false) {
        self.onLoop { s in try? s.peer?.send(message, on: stream, finish: finish) }
    }

    /// Sends a request and waits for the first answer message (nil on timeout or reset).
    func request(_ protocolName: String, _ body: [UInt8], timeout: Double = 5) -> [UInt8]? {
        guard let id = self.send(protocolName, [body]) else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let (r, ended, closed) = self.state.withLock { ($0.responses[id]?.first, $0.ended.contains(id), $0.closed) }
            if let r { return r }
            if ended || closed != nil { return nil }
            usleep(2000)
        }
        return nil
    }

    /// Queues `count` PING frames (3 bytes each with an empty payload) in one go.
    func pingFlood(_ count: Int, payload: [UInt8] = []) {
        self.onLoop { s in
            guard let p = s.peer else { return }
            for _ in 0..<count { p.channel.ping(payload) }
            p.flush()
        }
    }

    /// Bytes waiting to be written to the victim (the attacker keeps the victim busy only if
    /// this drains).
    var queued: Int {
        let n = Mutex(0)
        self.onLoop { s in n.withLock { $0 = s.peer?.queuedBytes ?? 0 } }
        return n.withLock { $0 }
    }

    func close() {
        self.onLoop { s in s.host?.shutdown(reason: "attack over") }
        self.loop.shutdown()
    }

    // MARK: SecurePeerDelegate

    func peerReady(_ peer: SecurePeer) {
        self.state.withLock {
            $0.ready = true
            $0.remoteHello = peer.remoteHello
        }
    }
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {}
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        self.state.withLock {
            $0.responses[stream, default: []].append(message)
            $0.received += 1
        }
    }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        self.state.withLock { _ = $0.ended.insert(stream) }
    }
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        self.state.withLock { $0.closed = error.map { "\($0)" } ?? socket.map { "\($0)" } ?? "closed" }
    }
}

/// Watches a victim process while it is attacked: block production, JSON-RPC latency and
/// resident memory, against the same measures taken before the attack.
struct VictimWatch {
    let process: BackgroundProcess
    let client: ChainClient

    /// Resident memory in KiB (from /proc).
    var rssKiB: Int { Self.residentKiB(pid: self.process.process.processIdentifier) }

    /// Resident memory of any process in KiB (0 if it is gone).
    static func residentKiB(pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    struct Window: CustomStringConvertible {
        var blocks: UInt64
        var seconds: Double
        var maxRPCMillis: Double
        var failedCalls: Int
        var rssStartKiB: Int
        var rssPeakKiB: Int

        var blocksPerSecond: Double { Double(self.blocks) / self.seconds }
        var description: String {
            String(format: "%llu blocks in %.1f s, RPC max %.0f ms, %d failed calls, RSS %d -> peak %d KiB",
                   self.blocks, self.seconds, self.maxRPCMillis, self.failedCalls, self.rssStartKiB, self.rssPeakKiB)
        }
    }

    /// Polls the victim for `seconds` (every 200 ms) while `attack` runs on another thread.
    func measure(seconds: Double, attack: (@Sendable (_ until: Date) -> Void)? = nil) -> Window {
        let until = Date().addingTimeInterval(seconds)
        let attacker = Thread { attack?(until) }
        let start = Date()
        let rss0 = self.rssKiB
        let head0 = (try? self.client.head()) ?? 0
        if attack != nil { attacker.start() }
        var maxMs = 0.0
        var failed = 0
        var peak = rss0
        var head = head0
        while Date() < until {
            let t = Date()
            if let h = try? self.client.head() { head = h } else { failed += 1 }
            maxMs = max(maxMs, Date().timeIntervalSince(t) * 1000)
            peak = max(peak, self.rssKiB)
            usleep(200_000)
        }
        return Window(blocks: head &- head0, seconds: Date().timeIntervalSince(start), maxRPCMillis: maxMs, failedCalls: failed,
                      rssStartKiB: rss0, rssPeakKiB: peak)
    }
}
