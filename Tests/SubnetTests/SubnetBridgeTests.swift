import Foundation
import MeshCrypto
import MeshQuery
import MeshSockets
@testable import MeshSubnet
import MeshTestSupport
import Synchronization
import Testing

/// An axon and a dendrite on loopback, for the SDK's handlers without a chain.
struct BridgeRig {
    let minerKey = Ed25519.PrivateKey()
    let validatorKey = Ed25519.PrivateKey()
    let axonLoop: EventLoop
    let clientLoop: EventLoop
    let axon: Axon
    let dendrite: Dendrite
    let endpoint: AxonEndpoint

    init(_ attach: (Axon) -> Void) async throws {
        let genesis = [UInt8](repeating: 7, count: 32)
        self.axonLoop = try EventLoop(name: "test.bridge.axon")
        self.clientLoop = try EventLoop(name: "test.bridge.dendrite")
        self.axon = Axon(hotkey: self.minerKey, netuid: 1, genesisHash: genesis, loop: self.axonLoop)
        attach(self.axon)
        self.axon.updateDirectory([self.validatorKey.publicKey: CallerInfo(uid: 1, stake: 500, validatorPermit: true)])
        let addr = try await self.axon.start(listen: SocketAddress("127.0.0.1:0")!)
        self.dendrite = Dendrite(hotkey: self.validatorKey, genesisHash: genesis, loop: self.clientLoop)
        self.endpoint = AxonEndpoint(hotkey: self.minerKey.publicKey, nodeId: self.minerKey.publicKey, address: addr)
    }

    func call(_ synapse: String, _ body: [UInt8], timeout: Double = 20, onChunk: (@Sendable ([UInt8]) -> Void)? = nil) async -> QueryResult {
        await self.dendrite.call(self.endpoint, netuid: 1, synapse: synapse, body: body, timeout: timeout, onChunk: onChunk)
    }

    func shutdown() {
        self.dendrite.close()
        self.axon.stop()
        self.clientLoop.shutdown()
        self.axonLoop.shutdown()
    }
}

struct Blob: Synapse, BinaryPayload {
    static let name = "blob"
    var key: String
    var payload: Data
    struct Response: Codable, Sendable, BinaryPayload {
        var sha: String
        var payload: Data
    }
}

struct Count: StreamingSynapse {
    static let name = "count"
    var upTo: Int
    struct Response: Codable, Sendable, Equatable { var i: Int }
}

/// A model server with nothing to install: Python's standard library only. Routes: /echo
/// (Content-Length), /chunked (three chunks), /sse (three events and [DONE]), /slow (sleeps
/// 5 s), /huge (claims 1 GiB), /bad (HTTP 400).
let stubServer = #"""
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/echo":
            out = json.dumps({"synapse": self.headers["X-Tensormesh-Synapse"], "caller": self.headers["X-Tensormesh-Caller"],
                              "got": json.loads(body)}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
        elif self.path == "/chunked":
            self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            for i in range(3):
                piece = json.dumps({"i": i}).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece)); self.wfile.flush(); time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/sse":
            self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.send_header("Connection", "close"); self.end_headers()
            for i in range(3):
                self.wfile.write(b"data: " + json.dumps({"i": i}).encode() + b"\n\n"); self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n"); self.wfile.flush()
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(5); self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
        elif self.path == "/huge":
            self.send_response(200); self.send_header("Content-Length", str(1 << 30)); self.end_headers(); self.wfile.write(b"x" * 1000)
        else:
            self.send_response(400); self.send_header("Content-Length", "4"); self.end_headers(); self.wfile.write(b"nope")
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""#

@Suite("Subnet SDK: binary payloads, streaming synapses, the model-server bridge, validator state")
struct SubnetBridgeTests {
    @Test("binary payloads travel as raw bytes after their JSON fields; hostile lengths are refused")
    func binary() throws {
        let payload = Data((0..<100_000).map { UInt8($0 % 256) })
        let bytes = try Blob(key: "k", payload: payload).encodeRequest()
        #expect(bytes.count < payload.count + 64, "\(bytes.count) bytes on the wire for \(payload.count) of payload")
        let back = try Blob.decodeRequest(bytes)
        #expect(back.key == "k" && back.payload == payload)
        let r = try Blob.decodeResponse(try Blob.encodeResponse(.init(sha: "x", payload: Data([1, 2, 3]))))
        #expect(r.payload == Data([1, 2, 3]) && r.sha == "x")
        for hostile: [UInt8] in [[], [0, 0, 0], [255, 255, 255, 255, 1], [0, 0, 0, 9, 123], [0, 0, 0, 2, 123, 125] + [0]] {
            #expect((try? Blob.decodeRequest(hostile)) == nil || hostile.count == 7)
        }
        // JSON synapses keep their JSON.
        #expect(try Count(upTo: 2).encodeRequest() == Array(#"{"upTo":2}"#.utf8))
        #expect(Count.streaming && !Blob.streaming && Blob.policy == .first)
        #expect(SynapseCatalog.Entry(Blob.self).encoding == "binary")
    }

    @Test("a streaming synapse sends each value as its own chunk; the signed trailer covers them all")
    func streaming() async throws {
        let rig = try await BridgeRig { axon in
            axon.attach(synapse: Count.name, handler: Miner.streamHandler(Count.self) { req, _ in
                guard (0...100).contains(req.upTo) else { throw QueryError(.badRequest, "upTo must be 0...100") }
                return AsyncThrowingStream { c in
                    for i in 0..<req.upTo { c.yield(.init(i: i)) }
                    c.finish()
                }
            })
        }
        defer { rig.shutdown() }
        let seen = Mutex<[Int]>([])
        let r = await rig.call(Count.name, try Count(upTo: 5).encodeRequest()) { chunk in
            if let v = try? Count.decodeResponse(chunk) { seen.withLock { $0.append(v.i) } }
        }
        #expect(r.isSuccess, "\(String(describing: r.failure))")
        #expect(seen.withLock { $0 } == [0, 1, 2, 3, 4])
        #expect(r.receipt?.isSigned(by: rig.minerKey.publicKey) == true)
        let refused = await rig.call(Count.name, try Count(upTo: 1000).encodeRequest())
        #expect(refused.status == .badRequest)
    }

    @Test("the forwarder bridges to a local model server: whole, chunked and event-stream answers, timeouts, limits")
    func forwarder() async throws {
        let script = TestPaths.temporaryDirectory() + "/stub.py"
        try stubServer.write(toFile: script, atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", script]
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        // SIGKILL: the test runner's children may inherit a mask that blocks SIGTERM.
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        var line = [UInt8]()
        while let b = try out.fileHandleForReading.read(upToCount: 1), let c = b.first, c != 10 { line.append(c) }
        let port = try #require(UInt16(String(decoding: line, as: UTF8.self)))
        var small = try HTTPForwarder(url: "http://127.0.0.1:\(port)/huge")
        small.maxResponseBytes = 10_000
        var quick = try HTTPForwarder(url: "http://127.0.0.1:\(port)/slow")
        quick.timeoutSeconds = 0.5
        let routes: [(String, HTTPForwarder)] = [
            ("echo", try HTTPForwarder(url: "http://localhost:\(port)/{synapse}")),
            ("chunked", try HTTPForwarder(url: "http://127.0.0.1:\(port)/chunked")),
            ("sse", try HTTPForwarder(url: "http://127.0.0.1:\(port)/sse")),
            ("slow", quick), ("huge", small),
            ("bad", try HTTPForwarder(url: "http://127.0.0.1:\(port)/bad")),
            ("down", try HTTPForwarder(url: "http://127.0.0.1:1/x")),
        ]
        let rig = try await BridgeRig { axon in
            for (name, f) in routes { axon.attach(synapse: name) { req in try await f.forward(req) } }
        }
        defer { rig.shutdown() }
        let echo = await rig.call("echo", Array(#"{"x":[1,2]}"#.utf8))
        #expect(echo.isSuccess, "\(String(describing: echo.failure))")
        let e = try JSONSerialization.jsonObject(with: Data(echo.body)) as? [String: Any]
        #expect(e?["synapse"] as? String == "echo" && e?["caller"] as? String == rig.validatorKey.publicKey.hex)
        #expect((e?["got"] as? [String: Any])?["x"] as? [Int] == [1, 2])
        for name in ["chunked", "sse"] {
            let chunks = Mutex<[String]>([])
            let r = await rig.call(name, Array("{}".utf8)) { c in chunks.withLock { $0.append(String(decoding: c, as: UTF8.self)) } }
            #expect(r.isSuccess, "\(name): \(String(describing: r.failure))")
            #expect(chunks.withLock { $0 } == [#"{"i": 0}"#, #"{"i": 1}"#, #"{"i": 2}"#], "\(name)")
        }
        let started = Date()
        let slow = await rig.call("slow", Array("{}".utf8))
        #expect(slow.status == .timeout && Date().timeIntervalSince(started) < 4.5, "\(slow.status) after \(Date().timeIntervalSince(started)) s")
        let huge = await rig.call("huge", Array("{}".utf8))
        #expect(huge.status == .internalError, "\(String(describing: huge.failure))")
        let bad = await rig.call("bad", Array("{}".utf8))
        #expect(bad.status == .badRequest)
        let down = await rig.call("down", Array("{}".utf8))
        #expect(down.status == .unavailable, "\(String(describing: down.failure))")
        var tightened = try HTTPForwarder(url: "http://127.0.0.1:\(port)/echo")
        tightened.maxRequestBytes = 4
        let tight = tightened
        let rig2 = try await BridgeRig { axon in axon.attach(synapse: "echo") { req in try await tight.forward(req) } }
        defer { rig2.shutdown() }
        #expect(await rig2.call("echo", Array(#"{"x":1}"#.utf8)).status == .payloadTooLarge)
        for url in ["https://127.0.0.1:1/", "http://example.com:80/", "http://127.0.0.1/", "http://127.0.0.1:0/", "http://1.2.3:8/"] {
            #expect(throws: SubnetError.self, "\(url)") { try HTTPForwarder(url: url) }
        }
    }

    @Test("validator state is saved atomically and restored only for its own subnet and hotkey")
    func validatorState() throws {
        let dir = TestPaths.temporaryDirectory()
        let path = dir + "/state/validator.json"
        var book = ScoreBook(alpha: 0.2)
        book.update(uid: 3, hotkey: [UInt8](repeating: 3, count: 32), score: 0.8)
        book.update(uid: 5, hotkey: [UInt8](repeating: 5, count: 32), score: 0.1)
        let me = String(repeating: "ab", count: 32)
        let state = ValidatorState(netuid: 2, hotkey: me, book: book,
                                   pendingReveal: .init(uids: [3, 5], values: [65535, 8000], salt: [1, 2, 3], epoch: 9), weightsSet: 4)
        try state.save(to: path)
        #expect(ValidatorState.load(from: path, netuid: 2, hotkey: me) == state)
        #expect(ValidatorState.load(from: path, netuid: 3, hotkey: me) == nil)
        #expect(ValidatorState.load(from: path, netuid: 2, hotkey: String(repeating: "cd", count: 32)) == nil)
        #expect(ValidatorState.load(from: dir + "/missing.json", netuid: 2, hotkey: me) == nil)
        // A tampered file (a moving-average weight out of range) is not trusted.
        let original = try String(contentsOfFile: path, encoding: .utf8)
        #expect(original.contains(#""alpha":0.2"#))
        let text = original.replacingOccurrences(of: #""alpha":0.2"#, with: #""alpha":5"#)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(ValidatorState.load(from: path, netuid: 2, hotkey: me) == nil)
        try "{".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(ValidatorState.load(from: path, netuid: 2, hotkey: me) == nil)
    }
}
