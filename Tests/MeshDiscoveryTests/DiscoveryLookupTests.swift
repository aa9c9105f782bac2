import MeshCodec
import MeshCrypto
@testable import MeshDiscovery
import MeshTestSupport
import Testing

@Suite("Discovery lookups: buckets asked, answer sizes, budgets")
struct DiscoveryLookupTests {
    func id(_ rng: inout SeededRNG) throws -> Ed25519.PublicKey { try Ed25519.PublicKey(bytes: rng.bytes(32)) }

    @Test("the buckets asked hold every node inside the horizon, nearest region first")
    func bucketsToAsk() throws {
        let seed: UInt64 = 61
        var rng = SeededRNG(seed: seed)
        var inside = 0, missed = 0
        for trial in 0..<200 {
            let target = try self.id(&rng)
            let population = try (0..<2000).map { _ in try self.id(&rng) }.sorted { Distance.closer($0, $1, to: target) }
            // The peer asked: near the target half the time (the end of a lookup), anywhere otherwise.
            let peer = trial % 2 == 0 ? population[Int(rng.next() % 24)] : try self.id(&rng)
            let horizon = Distance.xor(population[15], target)
            let asked = Distance.bucketsToAsk(peer: peer, target: target, horizon: horizon, limit: 256)
            #expect(Set(asked).count == asked.count, "seed \(seed) trial \(trial): a bucket twice")
            let position = Dictionary(uniqueKeysWithValues: asked.enumerated().map { ($0.element, $0.offset) })
            for y in population where y != peer {
                let bucket = UInt16(Distance.log2(peer, y))
                let within = Distance.xor(y, target).lexicographicallyPrecedes(horizon)
                if within {
                    inside += 1
                    if position[bucket] == nil { missed += 1 }
                }
            }
            // Nearest region first: every node of an earlier bucket is closer than every node of a later one.
            let byBucket = Dictionary(grouping: population.filter { $0 != peer }) { UInt16(Distance.log2(peer, $0)) }
            for (a, b) in zip(asked, asked.dropFirst()) {
                guard let far = byBucket[a]?.max(by: { Distance.closer($0, $1, to: target) }),
                      let near = byBucket[b]?.min(by: { Distance.closer($0, $1, to: target) }) else { continue }
                #expect(Distance.closer(far, near, to: target), "seed \(seed) trial \(trial): bucket \(a) before \(b)")
            }
            // What is asked first lies inside the horizon, and the wire's limit is kept.
            #expect(Distance.bucketsToAsk(peer: peer, target: target, horizon: horizon, limit: 8).count <= 8)
        }
        // Only buckets too small to be worth a slot are skipped: almost nothing inside is missed.
        #expect(inside >= 200 * 14)
        #expect(Double(missed) <= 0.01 * Double(inside), "seed \(seed): \(missed) of \(inside) nodes inside the horizon in no bucket asked")
    }

    @Test("without a horizon the buckets closer than the peer come first")
    func bucketsWithoutHorizon() throws {
        var rng = SeededRNG(seed: 62)
        for _ in 0..<100 {
            let target = try self.id(&rng), peer = try self.id(&rng)
            let asked = Distance.bucketsToAsk(peer: peer, target: target, horizon: nil, limit: 8)
            // The bucket at the target's distance holds only nodes closer than the peer: first.
            #expect(asked.first == UInt16(Distance.log2(peer, target)))
            #expect(asked.count == 8)
        }
    }

    /// A network of `n` nodes that all pinged node 0, so node 0's table is full near the top.
    func star(_ n: Int, seed: UInt64) -> (MemNet, [DiscoveryCore]) {
        let net = MemNet(seed: seed)
        var cores: [DiscoveryCore] = []
        for i in 0..<n { cores.append(net.add(i)) }
        for c in cores.dropFirst() { c.ping(id: cores[0].id, endpoint: net.endpoint(of: cores[0]), now: net.now) }
        net.pump()
        return (net, cores)
    }

    @Test("a FINDNODE gets up to 16 records in three packets, whoever asks; a flood is held to the asker's budget")
    func answerSizeAndBudget() throws {
        let seed: UInt64 = 63
        let (net, cores) = self.star(60, seed: seed)
        let b = cores[0], eB = net.endpoint(of: b)
        let distances: [UInt16] = [256, 255, 254, 253, 252]
        let held = b.table.entries(atDistances: distances, limit: 100).count
        #expect(held > 16, "seed \(seed): the star filled only \(held) entries")
        // A newcomer B has never heard of asks.
        let a = net.add(100)
        let rid = a.findNode(id: b.id, endpoint: eB, distances: distances, now: net.now)
        net.pump()
        let answer = net.events[net.endpoint(of: a), default: []].compactMap { e -> [NodeRecord]? in
            if case .nodesAnswered(rid, _, let records, true) = e { return records } else { return nil }
        }
        #expect(answer.first?.count == 16, "seed \(seed): \(answer.map(\.count))")
        #expect(answer.first.map { $0.allSatisfy { distances.contains(UInt16(Distance.log2(b.id, $0.nodeId))) } } == true)
        // A flood of the same question in one instant: every packet past the first of an answer
        // costs a request, so B sends no more packets than the budget's burst allows.
        let peerB = DiscoveryCore.PeerKey(id: b.id, endpoint: eB)
        _ = b.drain()
        let before = b.counters.packetsOut
        for i in 0..<300 { a.send(.findNode(requestId: UInt64(50_000 + i), distances: distances), to: peerB, now: net.now.nanoseconds) }
        net.pump()
        let sent = b.counters.packetsOut - before
        #expect(sent <= Int(b.config.requestBurst) + 1, "seed \(seed): \(sent) packets for a burst of \(b.config.requestBurst)")
        #expect(sent >= Int(b.config.requestBurst) - 3, "seed \(seed): the budget still answers (\(sent) packets)")
    }

    @Test("a peer flooding past its own request budget does not spend the budget of the other nodes at its address")
    func floodSparesNeighbours() throws {
        let seed: UInt64 = 64
        let net = MemNet(seed: seed)
        let b = net.add(0), eB = net.endpoint(of: b)
        // Two nodes behind one address (a NAT, a host running two nodes): a flooder and an honest one.
        let flooder = net.add(1, ip: [10, 0, 9, 9], port: 30333)
        let honest = net.add(2, ip: [10, 0, 9, 9], port: 30334)
        _ = honest.ping(id: b.id, endpoint: eB, now: net.now)
        _ = flooder.ping(id: b.id, endpoint: eB, now: net.now)
        net.pump()
        let peerB = DiscoveryCore.PeerKey(id: b.id, endpoint: eB)
        for i in 0..<400 { flooder.send(.ping(requestId: UInt64(90_000 + i), recordSeq: 1), to: peerB, now: net.now.nanoseconds) }
        net.pump()
        #expect((b.counters.dropped["request rate"] ?? 0) >= 300, "seed \(seed): the flood is refused past its budget")
        let pongs = { net.events[net.endpoint(of: honest), default: []].filter { if case .pong = $0 { return true } else { return false } }.count }
        let before = pongs()
        _ = honest.ping(id: b.id, endpoint: eB, now: net.now)
        net.pump()
        #expect(pongs() == before + 1, "seed \(seed): the honest node at the flooder's address is still answered")
    }

    @Test("entries anyone adds to our table can only lower the density floor (more buckets asked), never raise it")
    func densityFloorUnderHostileEntries() throws {
        let seed: UInt64 = 65
        var rng = SeededRNG(seed: seed)
        let local = try self.id(&rng)
        var table = RoutingTable(localId: local)
        let key = try Ed25519.PrivateKey(seedBytes: rng.bytes(32))
        var added = 0
        // A node id in bucket j of ours: the XOR with our id has its top bit at j - 1.
        func add(bucket j: Int) throws {
            var x = rng.bytes(32)
            let bit = j - 1, byte = 31 - bit / 8
            for i in 0..<byte { x[i] = 0 }
            x[byte] = (x[byte] & UInt8((1 << (bit % 8)) - 1)) | UInt8(1 << (bit % 8))
            var r = NodeRecord(key: key, seq: 1, ip: [10, 1, UInt8(added >> 8), UInt8(added & 255)], tcpPort: 1, udpPort: 1, roles: 2, genesis: testGenesis)
            r.nodeId = try Ed25519.PublicKey(bytes: zip(x, local.bytes).map { $0 ^ $1 })
            added += 1
            _ = table.add(r, endpoint: Endpoint(ip: r.ip, port: 1), now: .zero)
            #expect(Distance.log2(local, r.nodeId) == j)
        }
        // An honest table in a network of about 1,000 nodes: buckets 256 ... 251 full, then 8, 4, 2, 1.
        for j in 251...256 { for _ in 0..<16 { try add(bucket: j) } }
        for (j, n) in [(250, 8), (249, 4), (248, 2), (247, 1)] { for _ in 0..<n { try add(bucket: j) } }
        let honest = try #require(table.densityFloor())
        #expect(honest <= 245, "seed \(seed): floor \(honest) for ~1,000 nodes")
        // An attacker fills the buckets below, one verified entry at a time (ids cost it 2^(256 - j)
        // tries): wherever it stops, the floor is no higher than the honest table's.
        var highest = honest
        for j in stride(from: 250, through: 245, by: -1) {
            while table.buckets[j].count < table.k {
                try add(bucket: j)
                highest = max(highest, table.densityFloor() ?? 0)
            }
        }
        #expect(highest <= honest, "seed \(seed): hostile entries raised the floor from \(honest) to \(highest)")
    }
}
