import MeshCodec
import MeshCrypto
@testable import MeshDiscovery
import Foundation
import MeshTestSupport
import Testing

let testGenesis = [UInt8](repeating: 5, count: 32)

/// Discovery cores wired by an in-memory network, time advanced by hand.
final class MemNet {
    var nodes: [Endpoint: DiscoveryCore] = [:]
    /// Insertion order, so that every run delivers packets in the same order.
    var order: [Endpoint] = []
    var wire: [(from: Endpoint, to: Endpoint, bytes: [UInt8])] = []
    var events: [Endpoint: [DiscoveryEvent]] = [:]
    var rng: SeededRNG
    var now = Instant(nanoseconds: 1_000_000_000)
    var drop: (Endpoint, Endpoint) -> Bool = { _, _ in false }

    init(seed: UInt64) { self.rng = SeededRNG(seed: seed) }

    func key() -> Ed25519.PrivateKey { try! Ed25519.PrivateKey(seedBytes: self.rng.bytes(32)) }

    @discardableResult
    func add(_ i: Int, key k: Ed25519.PrivateKey? = nil, ip: [UInt8]? = nil, port: UInt16 = 30333) -> DiscoveryCore {
        let key = k ?? self.key()
        let e = Endpoint(ip: ip ?? [10, 0, UInt8(i >> 8), UInt8(i & 255)], port: port)
        let rec = NodeRecord(key: key, seq: 1, ip: e.ip, tcpPort: port, udpPort: port, roles: 2, genesis: testGenesis)
        var r = SeededRNG(seed: UInt64(i) &* 7919 &+ 1)
        let core = DiscoveryCore(key: key, record: rec, config: DiscoveryConfig(genesis: testGenesis), random: { n in r.bytes(n) })
        if self.nodes[e] == nil { self.order.append(e) }
        self.nodes[e] = core
        return core
    }

    func endpoint(of c: DiscoveryCore) -> Endpoint { self.nodes.first { $0.value === c }!.key }

    /// Delivers packets until none are left (each hop costs 1 ms of virtual time).
    func pump(maxRounds: Int = 1000) {
        for _ in 0..<maxRounds {
            var batch: [(Endpoint, OutgoingPacket)] = []
            for e in self.order {
                let (p, ev) = self.nodes[e]!.drain()
                self.events[e, default: []] += ev
                batch += p.map { (e, $0) }
            }
            if batch.isEmpty { return }
            self.now = self.now + .milliseconds(1)
            for (from, p) in batch {
                self.wire.append((from, p.to, p.bytes))
                if self.drop(from, p.to) { continue }
                self.nodes[p.to]?.receive(p.bytes, from: from, now: self.now)
            }
        }
    }

    func tick(_ seconds: Double) {
        let end = self.now + .nanoseconds(Int64(seconds * 1e9))
        while self.now < end {
            self.now = self.now + .milliseconds(100)
            for e in self.order { self.nodes[e]!.tick(now: self.now) }
            self.pump()
        }
    }
}

@Suite("Discovery core (sans-IO)")
struct DiscoveryCoreTests {
    @Test("records: round trip, signature, size and field limits")
    func records() throws {
        let k = Ed25519.PrivateKey()
        let r = NodeRecord(key: k, seq: 3, ip: [1, 2, 3, 4], tcpPort: 1, udpPort: 2, roles: 5, netuids: [1, 2], genesis: testGenesis)
        let d = try NodeRecord.decode(r.encoded)
        #expect(d == r && d.hasValidSignature)
        #expect(r.encoded.count <= NodeRecord.maxSize)
        var forged = d
        forged.seq = 4
        #expect(!forged.hasValidSignature)
        var tooMany = ByteWriter()
        tooMany.u64(1); k.publicKey.encode(to: &tooMany); tooMany.bytes([1, 2, 3, 4]); tooMany.u16(1); tooMany.u16(1); tooMany.u8(0)
        tooMany.list([UInt16](repeating: 1, count: 40)) { w, x in w.u16(x) }
        tooMany.raw(testGenesis); tooMany.raw([UInt8](repeating: 0, count: 64))
        #expect(throws: CodecError.self) { try NodeRecord.decode(tooMany.bytes) }
        var rng = SeededRNG(seed: 3)
        for _ in 0..<2000 { _ = try? NodeRecord.decode(rng.bytes(Int.random(in: 0...320, using: &rng))) }
        #expect(Distance.log2(k.publicKey, k.publicKey) == 0)
    }

    @Test("first contact: challenge, handshake, ping/pong, records exchanged, both tables updated")
    func handshake() throws {
        let net = MemNet(seed: 1)
        let a = net.add(1), b = net.add(2)
        a.ping(id: b.id, endpoint: net.endpoint(of: b), now: net.now)
        net.pump()
        let pongs = net.events[net.endpoint(of: a), default: []].compactMap { e -> Endpoint? in
            if case .pong(_, _, _, let observed, _) = e { return observed } else { return nil }
        }
        #expect(pongs == [net.endpoint(of: a)])
        #expect(a.table.entry(b.id) != nil, "A fetched B's record and verified B")
        #expect(b.table.entry(a.id) != nil, "B verified A through the handshake")
        #expect(a.counters.handshakes == 1 && b.counters.handshakes == 1)
        // A second ping reuses the session: no new handshake.
        a.ping(id: b.id, endpoint: net.endpoint(of: b), now: net.now)
        net.pump()
        #expect(a.counters.handshakes == 1)
    }

    @Test("no node id or record crosses the wire in clear")
    func capture() throws {
        let net = MemNet(seed: 2)
        var cores: [DiscoveryCore] = []
        for i in 0..<12 { cores.append(net.add(i)) }
        for c in cores.dropFirst() { c.addBootnode(id: cores[0].id, endpoint: net.endpoint(of: cores[0]), now: net.now) }
        net.pump()
        for c in cores { c.lookup(target: c.id, now: net.now) }
        net.pump()
        #expect(net.wire.count > 100)
        let secrets = cores.map(\.id.bytes) + cores.map { Array($0.record.encoded.prefix(40)) } + [Array("tmdisc".utf8)]
        for p in net.wire {
            for s in secrets {
                #expect(!p.bytes.contains(subsequence: s), "a packet from \(p.from) shows \(Hex.encode(s.prefix(8)))… in clear")
            }
        }
    }

    @Test("lookups in a 64-node network find the true 16 closest")
    func lookups() throws {
        let net = MemNet(seed: 3)
        var cores: [DiscoveryCore] = []
        for i in 0..<64 { cores.append(net.add(i)) }
        for c in cores.dropFirst() { c.addBootnode(id: cores[0].id, endpoint: net.endpoint(of: cores[0]), now: net.now) }
        net.pump()
        for c in cores { c.lookup(target: c.id, now: net.now) }
        net.pump()
        net.tick(2)
        var rng = SeededRNG(seed: 33)
        var exact = 0
        var ids: [UInt64] = []
        for i in 0..<40 {
            let target = try Ed25519.PublicKey(bytes: rng.bytes(32))
            ids.append(cores[i].lookup(target: target, now: net.now))
        }
        net.tick(3)
        for (i, lid) in ids.enumerated() {
            let e = net.endpoint(of: cores[i])
            guard let result = net.events[e, default: []].compactMap({ ev -> LookupResult? in
                if case .lookupFinished(let r) = ev, r.id == lid { return r } else { return nil }
            }).first else {
                Issue.record("lookup \(i) did not finish")
                continue
            }
            let truth = cores.map(\.id).filter { $0 != cores[i].id }.sorted { Distance.closer($0, $1, to: result.target) }.prefix(16)
            if Set(result.closest.map(\.nodeId)) == Set(truth) { exact += 1 } else {
                let missing = Set(truth).subtracting(result.closest.map(\.nodeId))
                print("lookup \(i) (seed 3) missed \(missing.count) of the 16 closest after \(result.rounds) rounds")
            }
        }
        #expect(exact >= 38, "\(exact)/40 lookups found the exact 16 closest")
        #expect(cores.allSatisfy { $0.table.count >= 16 })
    }

    @Test("junk, replays, spoofed sources, unsolicited answers and floods are dropped; amplification stays at most 1")
    func badInput() throws {
        let net = MemNet(seed: 4)
        let a = net.add(1), b = net.add(2)
        var rng = SeededRNG(seed: 44)
        // Junk of every size.
        for _ in 0..<500 { b.receive(rng.bytes(Int.random(in: 0...1400, using: &rng)), from: Endpoint(ip: [9, 9, 9, 9], port: 1), now: net.now) }
        #expect((b.counters.dropped["malformed"] ?? 0) >= 450)
        _ = b.drain()
        // A real exchange, then replay every packet A sent.
        a.ping(id: b.id, endpoint: net.endpoint(of: b), now: net.now)
        net.pump()
        let fromA = net.wire.filter { $0.from == net.endpoint(of: a) }
        let handshakesBefore = b.counters.handshakes
        let droppedBefore = b.counters.dropped.values.reduce(0, +)
        for p in fromA { b.receive(p.bytes, from: p.from, now: net.now) }
        let (replayOut, _) = b.drain()
        #expect(b.counters.handshakes == handshakesBefore)
        // Every replay but the first-contact packet (which only earns a fresh challenge) is dropped.
        #expect(b.counters.dropped.values.reduce(0, +) - droppedBefore >= fromA.count - 1, "\(b.counters.dropped)")
        #expect(replayOut.allSatisfy { $0.bytes.count < 100 }, "replays got at most a challenge")
        // A's packets from a spoofed address: B only challenges the spoofed address, no session follows.
        let spoofed = Endpoint(ip: [6, 6, 6, 6], port: 9)
        for p in fromA { b.receive(p.bytes, from: spoofed, now: net.now) }
        let (toSpoofed, _) = b.drain()
        #expect(toSpoofed.allSatisfy { $0.to == spoofed && $0.bytes.count <= 62 })
        #expect(b.sessions.keys.allSatisfy { $0.endpoint != spoofed })
        // Unsolicited NODES and PONG over a valid session are dropped.
        let peerB = DiscoveryCore.PeerKey(id: b.id, endpoint: net.endpoint(of: b))
        a.send(.nodes(requestId: 999_999, total: 1, records: [a.record]), to: peerB, now: net.now.nanoseconds)
        a.send(.pong(requestId: 424_242, recordSeq: 1, observed: spoofed), to: peerB, now: net.now.nanoseconds)
        net.pump()
        #expect(b.counters.dropped["unsolicited nodes"] == 1 && b.counters.dropped["unsolicited pong"] == 1)
        // A FINDNODE flood is rate-limited; B keeps answering someone else.
        for i in 0..<500 { a.send(.findNode(requestId: UInt64(10_000 + i), distances: [256]), to: peerB, now: net.now.nanoseconds) }
        net.pump()
        #expect((b.counters.dropped["request rate"] ?? 0) >= 400)
        let c = net.add(3)
        c.ping(id: b.id, endpoint: net.endpoint(of: b), now: net.now)
        net.pump()
        #expect(net.events[net.endpoint(of: c), default: []].contains { if case .pong = $0 { return true } else { return false } })
        // Amplification: an attacker that never completes a handshake gets back at most what it sent.
        let attacker = Endpoint(ip: [7, 7, 7, 7], port: 7)
        let before = b.counters.unverifiedBytesOut
        var sent = 0
        for i in 0..<300 {
            // Well-formed first-contact packets (random body), as a spoofing amplifier would send.
            let header = PacketHeader(flag: .message, nonce: rng.bytes(12), authdata: net.key().publicKey.bytes)
            let iv = rng.bytes(16)
            let p = PacketCodec.build(iv: iv, header: header, recipient: b.id, seal: { _ in rng.bytes(44 + i % 100) })
            sent += p.count
            b.receive(p, from: attacker, now: net.now + .milliseconds(Int64(i)))
        }
        _ = b.drain()
        #expect(b.counters.unverifiedBytesOut - before <= sent, "sent \(b.counters.unverifiedBytesOut - before) bytes for \(sent) received")
    }

    @Test("a restarted peer is hand-shaken again transparently; dead table entries are revalidated away")
    func restartAndRevalidation() throws {
        let net = MemNet(seed: 5)
        let a = net.add(1)
        let bKey = net.key()
        let b = net.add(2, key: bKey)
        a.ping(id: b.id, endpoint: net.endpoint(of: b), now: net.now)
        net.pump()
        // B restarts: same key and address, no sessions.
        let eB = net.endpoint(of: b)
        let b2 = net.add(2, key: bKey)
        #expect(net.nodes[eB] === b2)
        net.events[net.endpoint(of: a)] = []
        a.ping(id: bKey.publicKey, endpoint: eB, now: net.now)
        net.pump()
        #expect(net.events[net.endpoint(of: a), default: []].contains { if case .pong = $0 { return true } else { return false } })
        // B disappears: A's revalidation removes it after two missed answers.
        net.drop = { _, to in to == eB }
        net.tick(30)
        #expect(a.table.entry(bKey.publicKey) == nil)
        #expect(net.events[net.endpoint(of: a), default: []].contains(.nodeRemoved(bKey.publicKey)))
    }

    @Test("routing table: k per bucket, replacements, /24 limits, no self")
    func table() throws {
        var t = RoutingTable(localId: Ed25519.PrivateKey().publicKey, k: 16)
        var rng = SeededRNG(seed: 6)
        var added = 0
        for i in 0..<200 {
            let k = try Ed25519.PrivateKey(seedBytes: rng.bytes(32))
            let ip: [UInt8] = [44, UInt8(i % 3), 0, UInt8(i)]  // three /24s
            let r = NodeRecord(key: k, seq: 1, ip: ip, tcpPort: 1, udpPort: 1, roles: 2, genesis: testGenesis)
            if t.add(r, endpoint: Endpoint(ip: ip, port: 1), now: .zero) == .added { added += 1 }
        }
        #expect(added <= 30 && t.count == added, "\(added) entries from three /24s")
        #expect(t.buckets.allSatisfy { $0.count <= 16 })
        let me = Ed25519.PrivateKey()
        var own = RoutingTable(localId: me.publicKey)
        #expect(own.add(NodeRecord(key: me, seq: 1, ip: [1, 1, 1, 1], tcpPort: 1, udpPort: 1, roles: 0, genesis: testGenesis),
                        endpoint: Endpoint(ip: [1, 1, 1, 1], port: 1), now: .zero) == .rejected("self"))
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence s: [UInt8]) -> Bool {
        guard s.count <= self.count, let first = s.first else { return false }
        var i = 0
        while i <= self.count - s.count {
            if self[i] == first && Array(self[i..<(i + s.count)]) == s { return true }
            i += 1
        }
        return false
    }
}
