import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import MeshTestSupport
import Testing

/// A live interop test: an independent Noise implementation (Python `noiseprotocol`)
/// connects over a real socket, proves its identity, exchanges hellos and gets an echo.
@Suite("Interop with an independent Noise implementation", .serialized)
struct InteropTests {
    @Test("python noiseprotocol client against our server")
    func pythonClient() async throws {
        let loop = try EventLoop(name: "test.interop")
        defer { loop.shutdown() }
        let rec = Recorder()
        rec.echo = true
        let box = LoopBox<SecureHost?>(nil)
        let (address, nodeId): (SocketAddress, String) = try await loop.submit {
            let server = makeHost(loop, recorder: rec)
            box.value = server
            return (try server.listen(on: SocketAddress("127.0.0.1:0")!), server.identity.nodeId.hex)
        }
        let result = try ProcessRunner.run("/usr/bin/env", [
            TestPaths.python, TestPaths.repositoryRoot + "/Tests/Interop/noise_peer.py",
            address.host, String(address.port), Hex.encode(testGenesis), nodeId,
        ], timeout: 60)
        #expect(result.status == 0, "python peer failed: \(result.stderr)")
        #expect(result.stdout.contains("ok \(nodeId)"))
        #expect(rec.messageCount == 1)
        try await loop.submit { box.value!.shutdown() }
    }
}
