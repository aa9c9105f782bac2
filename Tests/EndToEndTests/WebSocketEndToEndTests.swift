import Foundation
import MeshClient
import MeshTestSupport
import Testing

/// A client no one here wrote (Python's `websockets`) against node processes.
@Suite("WebSocket JSON-RPC end to end (processes)", .serialized)
struct WebSocketEndToEndTests {
    @Test("python websockets subscribes to new and finalized heads of a two-validator network: each block once, in order")
    func pythonHeads() throws {
        let net = try LocalNet(nodes: 2, validators: 2, slotMs: 500)
        let a = try net.start(0, validator: true)
        let b = try net.start(1, validator: true, bootnodes: [net.address(0)])
        defer { a.stop(); b.stop() }
        let client = try net.client(1)
        #expect(try client.waitUntil(timeout: 60) { try client.head() >= 1 }, "no blocks: \(b.output.suffix(1500))")
        let result = try ProcessRunner.run("/usr/bin/env", [
            TestPaths.python, TestPaths.repositoryRoot + "/Tests/Interop/ws_heads.py", "ws://127.0.0.1:\(net.rpc[1])", "8", "60",
        ], timeout: 90)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)\n\(b.output.suffix(1500))")
        let summary = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(summary["ok"] as? Bool == true && (summary["finalized"] as? Int ?? 0) >= 8, "\(result.stdout)")
        print("python websockets: \(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}
