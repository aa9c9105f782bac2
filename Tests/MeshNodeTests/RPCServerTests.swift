import Foundation
import MeshChain
import MeshChannel
import MeshClient
import MeshCodec
import MeshCrypto
import MeshHTTP
@testable import MeshNode
import MeshSockets
import MeshTestSupport
import Testing

/// A one-validator node in this process (fast slots, no discovery) with its RPC server.
final class LiveNode: @unchecked Sendable {
    // Safety: immutable after init; the node is used through its loop.
    let loop: EventLoop
    let node: Node
    let server: RPCServer
    let dir = TestPaths.temporaryDirectory("tm-rpc")
    var port: UInt16 { self.server.localAddress!.port }

    init(rpc: (inout RPCServerConfig) -> Void = { _ in }) async throws {
        let key = Ed25519.PrivateKey()
        var p = ChainParams()
        p.slotDurationMs = 200
        var spec = ChainSpec(name: "RPC test", id: "rpc-test", params: p)
        spec.genesisTimestamp = UInt64(Date().timeIntervalSince1970 * 1000) / 1000 * 1000
        spec.sudo = key.publicKey
        spec.balances = [(key.publicKey, 1_000 * Token.tao)]
        spec.validators = [ChainSpec.Validator(hotkey: key.publicKey, coldkey: key.publicKey, stake: 100 * Token.tao)]
        var config = NodeConfig(basePath: self.dir, spec: spec)
        config.listenHost = "127.0.0.1"
        config.port = 0
        config.validator = true
        config.discovery = false
        let loop = try EventLoop(name: "test.node")
        let finalConfig = config
        let node = try await loop.submit { try Node(config: finalConfig, key: key, loop: loop, log: Log(level: .error)) }
        try await loop.submit { try node.start() }
        var rc = RPCServerConfig()
        rc.port = 0
        rpc(&rc)
        self.server = try await RPCServer.start(node: node, config: rc)
        self.loop = loop
        self.node = node
    }

    func stop() async {
        self.server.stop()
        try? await self.loop.submit { self.node.stop() }
        self.loop.shutdown()
        try? FileManager.default.removeItem(atPath: self.dir)
    }
}

/// A blocking WebSocket client over a plain socket (frames from MeshHTTP), for tests.
final class TestWebSocket {
    let fd: Int32
    var reader = WebSocketFrameReader(maxMessageBytes: 1 << 24, requireMask: false)

    init(port: UInt16, headers: String = "") throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw WSFailure("connect") }
        try self.send(Array(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(headers)\r\n").utf8))
        var head: [UInt8] = []
        while !(head.count >= 4 && Array(head.suffix(4)) == [13, 10, 13, 10]) {
            var b: UInt8 = 0
            guard recv(self.fd, &b, 1, 0) == 1 else { throw WSFailure("handshake: \(String(decoding: head, as: UTF8.self))") }
            head.append(b)
        }
        let text = String(decoding: head, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 101"), text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") else { throw WSFailure("handshake answer: \(text)") }
    }

    deinit { close(self.fd) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw WSFailure("send") }
            sent += n
        }
    }

    func call(_ id: Int, _ method: String, _ params: JSONValue = .array([])) throws {
        let text = JSONValue.object([("jsonrpc", "2.0"), ("id", .int(id)), ("method", .string(method)), ("params", params)]).serialized()
        try self.send(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.text, Array(text.utf8), mask: [7, 7, 7, 7]))
    }

    /// The next text message as JSON; nil when the connection closed (or timed out).
    func next() throws -> JSONValue? {
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let e = try self.reader.next() {
                switch e {
                case .text(let t): return try JSONValue.parse(t)
                case .close: return nil
                default: continue
                }
            }
            let n = buf.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            self.reader.append(buf[0..<n])
        }
    }

    /// Messages until one with `id` arrives (the others returned too, in order).
    func answer(_ id: Int) throws -> (JSONValue, [JSONValue]) {
        var others: [JSONValue] = []
        while let m = try self.next() {
            if m["id"]?.int64 == Int64(id) { return (m, others) }
            others.append(m)
        }
        throw WSFailure("no answer to call \(id)")
    }
}

struct WSFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { self.description = d }
}

@Suite("RPC server (HTTP and WebSocket on one port)", .serialized)
struct RPCServerTests {
    @Test("new and finalized heads arrive once each, in order; unsubscribing stops them; a transaction is watched to finalization")
    func subscriptions() async throws {
        let live = try await LiveNode()
        defer { Task { await live.stop() } }
        let ws = try TestWebSocket(port: live.port)
        try ws.call(1, "chain_subscribeNewHeads")
        let (sub, _) = try ws.answer(1)
        let id = try #require(sub["result"]?.string)
        try ws.call(2, "chain_subscribeFinalizedHeads")
        let (fsub, early) = try ws.answer(2)
        let fid = try #require(fsub["result"]?.string)
        var heads: [(UInt64, String, String)] = []
        var finalized: [(UInt64, String, String)] = []
        func take(_ m: JSONValue) {
            guard let p = m["params"], let r = p["result"], let n = r["number"]?.string.flatMap({ UInt64($0.dropFirst(2), radix: 16) }),
                  let h = r["hash"]?.string, let parent = r["parentHash"]?.string else { return }
            if p["subscription"]?.string == id && m["method"]?.string == "chain_newHead" { heads.append((n, h, parent)) }
            if p["subscription"]?.string == fid && m["method"]?.string == "chain_finalizedHead" { finalized.append((n, h, parent)) }
        }
        early.forEach(take)
        while finalized.count < 6, let m = try ws.next() { take(m) }
        #expect(finalized.count >= 6)
        for (a, b) in zip(finalized, finalized.dropFirst()) { #expect(b.0 == a.0 + 1 && b.2 == a.1, "finalized #\(b.0) after #\(a.0)") }
        for (a, b) in zip(heads, heads.dropFirst()) { #expect(b.0 == a.0 + 1 && b.2 == a.1, "head #\(b.0) after #\(a.0)") }
        #expect(Set(heads.map(\.1)).count == heads.count)
        // Unsubscribe: true once, false for an unknown or foreign id; then silence.
        try ws.call(3, "chain_unsubscribeNewHeads", [.string(id)])
        try ws.call(4, "chain_unsubscribeFinalizedHeads", [.string(fid)])
        try ws.call(5, "chain_unsubscribeNewHeads", [.string(id)])
        let (u3, _) = try ws.answer(3)
        let (u4, _) = try ws.answer(4)
        let (u5, _) = try ws.answer(5)
        #expect(u3["result"] == .bool(true) && u4["result"] == .bool(true) && u5["result"] == .bool(false))
        // A transfer, watched: ready, in a block, finalized (which ends the subscription).
        let (genesis, nonce, key) = try await live.loop.submit { (live.node.chain.genesisHash, live.node.chain.bestState.nonce(live.node.nodeId), live.node.identity.signingKey) }
        let dest = Ed25519.PrivateKey().publicKey
        let tx = Transaction(signer: key, nonce: nonce, validUntil: 1_000_000, fee: 1_000_000, call: .transfer(to: dest, amount: Token.tao), genesis: genesis)
        try ws.call(6, "author_submitAndWatchTransaction", [.string(Hex.encode(tx.encoded))])
        let (w, _) = try ws.answer(6)
        let wid = try #require(w["result"]?.string, "\(w)")
        var statuses: [JSONValue] = []
        while let m = try ws.next() {
            guard m["params"]?["subscription"]?.string == wid else { continue }
            let r = m["params"]?["result"] ?? .null
            statuses.append(r)
            if r["finalized"] != nil || r.string == "dropped" { break }
        }
        #expect(statuses.first == .string("ready") && statuses.contains { $0["inBlock"] != nil } && statuses.last?["finalized"] != nil, "\(statuses)")
        // Over HTTP the subscription methods are refused (and say why).
        let over = try httpPost(port: live.port, #"{"jsonrpc":"2.0","id":1,"method":"chain_subscribeNewHeads"}"#)
        #expect(over.body.contains("WebSocket"), "\(over)")
    }

    @Test("the client library follows a transaction to finality and waits for heads over the WebSocket")
    func clientWaits() async throws {
        let live = try await LiveNode()
        defer { Task { await live.stop() } }
        let key = try await live.loop.submit { live.node.identity.signingKey }
        let port = live.port
        let (outcome, reached) = try await Task.detached { () throws -> (ChainClient.Outcome, Bool) in
            let client = try ChainClient(url: "http://127.0.0.1:\(port)")
            let o = try client.submitAndWait(.transfer(to: Ed25519.PrivateKey().publicKey, amount: Token.tao), key: key, timeout: 30, finalized: true)
            let head = try client.head()
            return (o, try client.waitForHead(head + 3, timeout: 10))
        }.value
        guard case .included(_, let finalized) = outcome else { Issue.record("outcome \(outcome)"); return }
        #expect(finalized && reached)
        let m = await live.server.metrics()
        #expect(m.contains("transport=\"websocket\"") && m.contains("tensormesh_rpc_connections_total"))
    }

    @Test("a subscriber that never reads is dropped once its send queue passes the bound")
    func slowSubscriber() async throws {
        let live = try await LiveNode { $0.maxSendQueue = 64 << 10; $0.maxSubscriptionsPerConnection = 2048 }
        defer { Task { await live.stop() } }
        let ws = try TestWebSocket(port: live.port)
        // 2,000 head subscriptions: each block is 2,000 notifications the client never reads.
        var batch: [JSONValue] = []
        for i in 0..<2000 { batch.append(.object([("jsonrpc", "2.0"), ("id", .int(i)), ("method", "chain_subscribeNewHeads")])) }
        for chunk in stride(from: 0, to: batch.count, by: 100) {
            let text = JSONValue.array(Array(batch[chunk..<(chunk + 100)])).serialized()
            try ws.send(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.text, Array(text.utf8), mask: [1, 2, 3, 4]))
        }
        var dropped = false
        for _ in 0..<100 {
            try await Task.sleep(nanoseconds: 200_000_000)
            let m = await live.server.metrics()
            if m.contains("tensormesh_rpc_slow_clients_dropped_total 1") { dropped = true; break }
        }
        #expect(dropped)
        let subs = try await live.loop.submit { live.server.hub.count }
        #expect(subs == 0, "the dropped client's subscriptions are forgotten")
    }

    @Test("--rpc-methods safe refuses the unsafe methods; subscriptions per connection are bounded; the rate limit answers 429")
    func limits() async throws {
        let live = try await LiveNode { $0.methods = .safe; $0.maxSubscriptionsPerConnection = 3; $0.rateLimit = 50 }
        defer { Task { await live.stop() } }
        let peers = try httpPost(port: live.port, #"{"jsonrpc":"2.0","id":1,"method":"system_peers"}"#)
        #expect(peers.body.contains("unsafe"), "\(peers)")
        let head = try httpPost(port: live.port, #"{"jsonrpc":"2.0","id":1,"method":"chain_getHead"}"#)
        #expect(head.head.hasPrefix("HTTP/1.1 200") && head.body.contains("\"hash\""))
        let ws = try TestWebSocket(port: live.port)
        for i in 1...4 { try ws.call(i, "chain_subscribeFinalizedHeads") }
        let (fourth, _) = try ws.answer(4)
        #expect(fourth["error"]?["code"]?.int64 == Int64(RPCError.limitExceeded), "\(fourth)")
        // 50 calls per second, burst 100: a burst of 150 is partly refused.
        var refused = 0
        for _ in 0..<150 {
            let r = try httpPost(port: live.port, #"{"jsonrpc":"2.0","id":1,"method":"system_health"}"#)
            if r.head.hasPrefix("HTTP/1.1 429") { refused += 1; #expect(r.head.contains("Retry-After")) }
        }
        #expect(refused >= 30, "\(refused) of 150 refused")
    }

    @Test("connections past --rpc-max-connections are closed at once")
    func maxConnections() async throws {
        let live = try await LiveNode { $0.maxConnections = 3 }
        defer { Task { await live.stop() } }
        let held = try (0..<3).map { _ in try TestWebSocket(port: live.port) }
        #expect(throws: (any Error).self) { _ = try TestWebSocket(port: live.port) }
        _ = held
    }
}
