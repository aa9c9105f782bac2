import Foundation
import MeshCrypto
import MeshDiscovery
import MeshNetwork
import MeshSockets
import Synchronization
import Testing

@Suite("Discovery over real UDP", .serialized)
struct DiscoveryLoopbackTests {
    @Test("20 nodes on loopback find each other through one bootnode within 30 s (10 s on an idle machine)")
    func twentyNodes() async throws {
        let loops = try (0..<2).map { try EventLoop(name: "test.disc.\($0)") }
        defer { loops.forEach { $0.shutdown() } }
        final class Box: @unchecked Sendable {
            // Safety: each service is touched on its own loop only.
            var services: [DiscoveryService] = []
            var endpoints: [Endpoint] = []
        }
        let box = Box()
        for i in 0..<20 {
            let loop = loops[i % 2]
            let key = Ed25519.PrivateKey()
            let (svc, ep): (DiscoveryService, Endpoint) = try await loop.submit {
                var config = DiscoveryConfig(genesis: testGenesis)
                config.refreshInterval = .seconds(2)
                let record0 = NodeRecord(key: key, seq: 1, ip: [127, 0, 0, 1], tcpPort: 0, udpPort: 0, roles: 2, genesis: testGenesis)
                let core = DiscoveryCore(key: key, record: record0, config: config, random: { SecureRandom.bytes($0) })
                let s = DiscoveryService(loop: loop, core: core)
                let bound = try s.start(on: SocketAddress("127.0.0.1:0")!)
                // Now that the port is known, publish it.
                core.updateRecord { seq in NodeRecord(key: key, seq: seq, ip: [127, 0, 0, 1], tcpPort: bound.port, udpPort: bound.port, roles: 2, genesis: testGenesis) }
                return (s, Endpoint(bound))
            }
            box.services.append(svc)
            box.endpoints.append(ep)
        }
        let started = Date()
        let boot = box.services[0].core.id
        for i in 1..<20 {
            let s = box.services[i]
            let e = box.endpoints[0]
            try await s.loop.submit {
                s.addBootnode(id: boot, endpoint: e)
                s.lookup(target: s.core.id)
            }
        }
        func tableSizes() async -> [Int] {
            var out: [Int] = []
            for s in box.services { out.append((try? await s.loop.submit { s.core.table.count }) ?? 0) }
            return out
        }
        var sizes: [Int] = []
        while Date().timeIntervalSince(started) < 30 {
            sizes = await tableSizes()
            if sizes.allSatisfy({ $0 >= 19 }) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(sizes.allSatisfy { $0 >= 19 }, "table sizes after \(Date().timeIntervalSince(started)) s: \(sizes)")
        for s in box.services { try await s.loop.submit { s.stop() } }
    }
}
