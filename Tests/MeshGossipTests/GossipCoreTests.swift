import Foundation
import MeshCodec
import MeshCrypto
@testable import MeshGossip
import MeshSim
import MeshTestSupport
import Testing

/// Gossip cores wired directly (no latency): frames are delivered in order until quiet.
final class Hub {
    var cores: [GossipCore] = []
    var delivered: [[MessageID]] = []
    var sent: [(from: Int, to: Int, frame: GossipFrame)] = []
    var disconnected: [(Int, Int)] = []
    var now: UInt64 = 1_000_000_000
    var rng = SeededRNG(seed: 9)
    /// The application's verdict per node (nil: answer later, by hand).
    var verdict: [(GossipMessage) -> ValidationResult?] = []

    init(_ n: Int, config: GossipConfig = GossipConfig(), edges: [(Int, Int)]? = nil) {
        for _ in 0..<n {
            var r = self.rng.fork()
            let c = GossipCore(config: config, random: { b in r.next() % max(1, b) })
            self.cores.append(c)
            self.delivered.append([])
            self.verdict.append { m in m.data.first == 0xFF ? .reject : .accept }
        }
        let e = edges ?? (0..<n).flatMap { i in ((i + 1)..<n).map { (i, $0) } }
        for (a, b) in e {
            self.cores[a].addPeer(b, outbound: true)
            self.cores[b].addPeer(a, outbound: false)
        }
        for (i, c) in self.cores.enumerated() {
            c.subscribe("t", now: Instant(nanoseconds: self.now))
            _ = i
        }
        self.pump()
    }

    func pump() {
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            var any = false
            for i in self.cores.indices {
                for o in self.cores[i].drain() {
                    any = true
                    switch o {
                    case .send(let to, let f):
                        self.sent.append((i, to, f))
                        // Through the codec, as on the wire.
                        let decoded = try! GossipFrame.decode(f.encoded)
                        self.cores[to].receive(decoded, from: i, now: Instant(nanoseconds: self.now))
                    case .validate(let m, _):
                        if let v = self.verdict[i](m) { self.cores[i].validated(m.id, v, now: Instant(nanoseconds: self.now)) }
                    case .deliver(let m, _): self.delivered[i].append(m.id)
                    case .cancel: break
                    case .disconnect(let p, _):
                        self.disconnected.append((i, p))
                        self.cores[i].removePeer(p, now: Instant(nanoseconds: self.now))
                        self.cores[p].removePeer(i, now: Instant(nanoseconds: self.now))
                    }
                }
            }
            if !any { return }
        }
    }

    func heartbeat(_ times: Int = 1) {
        for _ in 0..<times {
            self.now += 1_000_000_000
            for c in self.cores { c.heartbeat(now: Instant(nanoseconds: self.now)) }
            self.pump()
        }
    }
}

extension SeededRNG {
    mutating func fork() -> SeededRNG { SeededRNG(seed: self.next()) }
}

@Suite("Gossip core (sans-IO)")
struct GossipCoreTests {
    @Test("frames round-trip through the codec; garbage never traps")
    func frames() throws {
        let id = MessageID(topic: "t", data: [1, 2])
        let frames: [GossipFrame] = [.subscribe(["a", "b"]), .unsubscribe(["a"]), .graft("t"), .prune("t", backoffSeconds: 60),
                                     .ihave("t", [id]), .iwant([id]), .idontwant([id]), .preamble("t", id, size: 5000),
                                     .message(GossipMessage(topic: "t", data: [9, 9])), .announce("t", id, size: 4096)]
        for f in frames { #expect(try GossipFrame.decode(f.encoded) == f) }
        var rng = SeededRNG(seed: 1)
        for _ in 0..<5000 {
            var b = frames[Int(rng.next() % UInt64(frames.count))].encoded
            if !b.isEmpty { b[Int(rng.next() % UInt64(b.count))] ^= UInt8(rng.next() & 0xff) }
            _ = try? GossipFrame.decode(b)
            _ = try? GossipFrame.decode(rng.bytes(Int(rng.next() % 100)))
        }
        #expect(GossipMessage(topic: "t", data: [1]).id == GossipMessage(topic: "t", data: [1]).id)
        #expect(GossipMessage(topic: "t", data: [1]).id != GossipMessage(topic: "u", data: [1]).id)
    }

    @Test("a message id is the first 20 bytes of SHA-256(topic ‖ 0x00 ‖ data), for any sizes")
    func messageIDDefinition() {
        // Pinned once (empty topic and data: SHA-256 of the single byte 0x00).
        #expect(Hex.encode(MessageID(topic: "", data: []).bytes) == "6e340b9cffb37a989ca544e6bb780a2c78901d3f")
        var rng = SeededRNG(seed: 7)
        for (t, d) in [(0, 1), (1, 0), (14, 200), (40, 5000), (3, 1 << 20)] {
            let topic = String(repeating: "é", count: t / 2) + String(repeating: "x", count: t % 2)
            let data = rng.bytes(d)
            let expected = Array(SHA256.hash(Array(topic.utf8) + [0] + data).prefix(20))
            #expect(MessageID(topic: topic, data: data).bytes == expected, "topic \(t) bytes, data \(d) bytes")
        }
    }

    @Test("meshes form within D_lo…D_hi; every node gets each message once; small messages are pushed, large ones announced and pulled")
    func delivery() {
        let hub = Hub(30)
        hub.heartbeat(3)
        for c in hub.cores {
            let m = c.meshPeers("t").count
            #expect(m >= c.config.dLow && m <= c.config.dHigh, "mesh of \(m)")
        }
        let small = hub.cores[0].publish(topic: "t", data: [1] + [UInt8](repeating: 7, count: 200), now: Instant(nanoseconds: hub.now))
        hub.pump()
        let large = hub.cores[5].publish(topic: "t", data: [2] + [UInt8](repeating: 7, count: 50_000), now: Instant(nanoseconds: hub.now))
        hub.pump()
        for i in hub.cores.indices where i != 0 { #expect(hub.delivered[i].filter { $0 == small }.count == 1) }
        for i in hub.cores.indices where i != 5 { #expect(hub.delivered[i].filter { $0 == large }.count == 1) }
        // Each node received the large body exactly once (announce → one IWANT → one body).
        let bodies = hub.sent.filter { if case .message(let m) = $0.frame { return m.id == large } else { return false } }
        #expect(bodies.count == 29, "\(bodies.count) bodies sent for 29 receivers")
        #expect(hub.cores.allSatisfy { $0.counters.invalid == 0 })
    }

    @Test("IHAVE/IWANT repairs a node outside every mesh, with one outstanding IWANT per message")
    func lazyRepair() {
        var config = GossipConfig()
        config.floodPublish = false
        config.lazyLargeMessages = false
        // 0-1-2 line plus 3 connected to 2 only; 3 is kept out of 2's mesh by pruning it.
        let hub = Hub(4, config: config, edges: [(0, 1), (1, 2), (2, 3)])
        hub.cores[2].receive(.prune("t", backoffSeconds: 60), from: 3, now: Instant(nanoseconds: hub.now))
        hub.cores[3].receive(.prune("t", backoffSeconds: 60), from: 2, now: Instant(nanoseconds: hub.now))
        hub.heartbeat()  // meshes form: 0-1, 1-2; 2-3 stays out (backoff)
        #expect(!hub.cores[2].meshPeers("t").contains(3) && hub.cores[2].meshPeers("t").contains(1))
        let id = hub.cores[0].publish(topic: "t", data: [3, 3, 3], now: Instant(nanoseconds: hub.now))
        hub.pump()
        #expect(!hub.delivered[3].contains(id))
        hub.heartbeat()
        #expect(hub.delivered[3].contains(id), "delivered by IHAVE/IWANT at the heartbeat")
        let iwants = hub.sent.filter { if case .iwant(let ids) = $0.frame { return $0.from == 3 && ids.contains(id) } else { return false } }
        #expect(iwants.count == 1)
    }

    @Test("a peer that asked for a large message but never sends it is penalised and the next announcer is asked")
    func brokenPromise() {
        let core = GossipCore(random: { _ in 0 })
        core.subscribe("t", now: .zero)
        core.addPeer(1, outbound: true)
        core.addPeer(2, outbound: true)
        for p in [1, 2] { core.receive(.subscribe(["t"]), from: p, now: .zero) }
        _ = core.drain()
        let m = GossipMessage(topic: "t", data: [UInt8](repeating: 4, count: 5000))
        core.receive(.announce("t", m.id, size: 5000), from: 1, now: .zero)
        core.receive(.announce("t", m.id, size: 5000), from: 2, now: .zero)
        let first = core.drain()
        #expect(first.count == 1, "one IWANT only")
        core.checkPromises(now: Instant(nanoseconds: 3_000_000_000))
        let next = core.drain().compactMap { o -> Int? in if case .send(let p, .iwant) = o { return p } else { return nil } }
        #expect(next == [2])
        #expect((core.score(of: 1) ?? 0) < 0)
        core.receive(.preamble("t", m.id, size: 5000), from: 2, now: Instant(nanoseconds: 3_000_000_001))
        core.receive(.message(m), from: 2, now: Instant(nanoseconds: 3_000_000_002))
        #expect(core.drain().contains { if case .validate(m, 2) = $0 { return true } else { return false } }, "the body goes to validation first")
        core.validated(m.id, .accept, now: Instant(nanoseconds: 3_000_000_003))
        #expect(core.counters.delivered == 1)
    }

    @Test("invalid messages: the sender is scored down, pruned from the mesh, then disconnected; honest traffic flows")
    func scoring() {
        let hub = Hub(10)
        hub.heartbeat(2)
        for k in 0..<20 {
            _ = hub.cores[9].publish(topic: "t", data: [0xFF, UInt8(k)], now: Instant(nanoseconds: hub.now))
            hub.pump()
        }
        #expect(hub.disconnected.contains { $0.1 == 9 }, "the junk publisher was disconnected")
        #expect(hub.cores[0..<9].allSatisfy { !$0.meshPeers("t").contains(9) })
        let id = hub.cores[0].publish(topic: "t", data: [1, 2, 3], now: Instant(nanoseconds: hub.now))
        hub.pump()
        for i in 1..<9 { #expect(hub.delivered[i].contains(id)) }
        #expect(hub.disconnected.allSatisfy { $0.0 == 9 || $0.1 == 9 }, "no honest peer was dropped")
    }

    @Test("IDONTWANT: a node receiving a pushed large message tells its mesh at once; they cancel their copies")
    func idontwant() {
        let core = GossipCore(random: { _ in 0 })
        core.subscribe("t", now: .zero)
        for p in 1...3 {
            core.addPeer(p, outbound: true)
            core.receive(.subscribe(["t"]), from: p, now: .zero)
            core.receive(.graft("t"), from: p, now: .zero)
        }
        _ = core.drain()
        let m = GossipMessage(topic: "t", data: [UInt8](repeating: 1, count: 4096))
        core.receive(.preamble("t", m.id, size: 4096), from: 1, now: Instant(nanoseconds: 1))
        let out = core.drain()
        let told = out.compactMap { o -> Int? in if case .send(let p, .idontwant([m.id])) = o { return p } else { return nil } }
        #expect(Set(told) == [2, 3])
        // A second pusher is told to stop; its IDONTWANT from us cancels what we queue for it.
        core.receive(.preamble("t", m.id, size: 4096), from: 2, now: Instant(nanoseconds: 2))
        #expect(core.drain().contains { if case .send(2, .idontwant) = $0 { return true } else { return false } })
        core.receive(.idontwant([m.id]), from: 3, now: Instant(nanoseconds: 3))
        #expect(core.drain().contains { if case .cancel(3, m.id) = $0 { return true } else { return false } })
    }

    @Test("IWANT and IDONTWANT ids have a per-heartbeat budget: a flood of them costs a bounded amount of work")
    func controlIDBudget() {
        let core = GossipCore(random: { _ in 0 })
        core.subscribe("t", now: .zero)
        core.addPeer(1, outbound: true)
        core.receive(.subscribe(["t"]), from: 1, now: .zero)
        _ = core.drain()
        func ids(_ frame: Int) -> [MessageID] {
            (0..<GossipFrame.maxIDs).map { i in MessageID(bytes: (0..<20).map { UInt8(truncatingIfNeeded: (frame * GossipFrame.maxIDs + i) >> ($0 % 4 * 8)) }) }
        }
        for f in 0..<100 { core.receive(.idontwant(ids(f)), from: 1, now: Instant(nanoseconds: 1)) }
        let cancels = core.drain().filter { if case .cancel = $0 { return true } else { return false } }.count
        #expect(cancels == core.config.maxControlIDsPerHeartbeat, "\(cancels) cancels for 100 frames of 512 ids")
        // The next heartbeat opens the budget again.
        core.heartbeat(now: Instant(nanoseconds: 1_000_000_000))
        _ = core.drain()
        core.receive(.idontwant(ids(200)), from: 1, now: Instant(nanoseconds: 1_000_000_001))
        #expect(core.drain().filter { if case .cancel = $0 { return true } else { return false } }.count == GossipFrame.maxIDs)
    }

    @Test("the gossip scenario: delivery to every honest node, one copy per node for 1 KiB+, junk publishers banned, exact replay")
    func simulation() {
        var c = GossipScenarioConfig()
        c.nodes = 40
        c.dials = 8
        c.largeMessages = 3
        c.largeSize = 256 * 1024
        c.smallMessages = 10
        c.byzantine = 3
        c.seconds = 15
        let s = GossipScenario(config: c, seed: 5).run(clock: { DispatchTime.now().uptimeNanoseconds })
        func v(_ k: String) -> Double { s.extra.first { $0.0 == k }?.1.double ?? -1 }
        #expect(s.delivered == 1.0, "seed 5")
        #expect(v("copiesPerNodeLarge") <= 1.5 && v("copiesPerNodeSmall") <= 1.5, "\(s.extra)")
        #expect(v("byzantineDisconnected") == 3 && v("honestDisconnected") == 0, "\(s.extra)")
        let again = GossipScenario(config: c, seed: 5).run(clock: { DispatchTime.now().uptimeNanoseconds })
        #expect(again.traceHash == s.traceHash)
    }

    @Test("deferred validation: nothing is forwarded until the verdict; accept forwards, reject scores down, silence expires")
    func deferred() throws {
        let hub = Hub(4, edges: [(0, 1), (1, 2), (1, 3)])
        hub.heartbeat(2)
        // Node 1 defers messages starting with 0xAA (a compact block missing transactions).
        hub.verdict[1] = { m in m.data.first == 0xAA ? nil : .accept }
        let id = hub.cores[0].publish(topic: "t", data: [0xAA, 1], now: Instant(nanoseconds: hub.now))
        hub.pump()
        #expect(hub.cores[1].pendingCount == 1)
        #expect(!hub.delivered[2].contains(id) && !hub.delivered[3].contains(id), "held until the verdict")
        // A second copy while pending is a duplicate, not a second validation.
        hub.cores[1].receive(.message(GossipMessage(topic: "t", data: [0xAA, 1])), from: 0, now: Instant(nanoseconds: hub.now))
        #expect(hub.cores[1].pendingCount == 1)
        #expect(hub.cores[1].validated(id, .accept, now: Instant(nanoseconds: hub.now)))
        hub.pump()
        #expect(hub.delivered[1].contains(id) && hub.delivered[2].contains(id) && hub.delivered[3].contains(id))
        #expect(!hub.cores[1].validated(id, .accept, now: Instant(nanoseconds: hub.now)), "a verdict counts once")
        // Reject: the sender is scored down and nothing travels on.
        let before = hub.cores[1].score(of: 0) ?? 0
        let bad = hub.cores[0].publish(topic: "t", data: [0xAA, 2], now: Instant(nanoseconds: hub.now))
        hub.pump()
        hub.cores[1].validated(bad, .reject, now: Instant(nanoseconds: hub.now))
        hub.pump()
        #expect((hub.cores[1].score(of: 0) ?? 0) < before)
        #expect(!hub.delivered[2].contains(bad))
        // No verdict: expires at a heartbeat after the timeout; the table stays bounded.
        for k in 0..<300 { _ = hub.cores[0].publish(topic: "t", data: [0xAA, 3, UInt8(k & 0xFF), UInt8(k >> 8)], now: Instant(nanoseconds: hub.now)) }
        hub.pump()
        #expect(hub.cores[1].pendingCount == GossipConfig().maxPending)
        hub.heartbeat(6)
        #expect(hub.cores[1].pendingCount == 0)
    }
}

@Suite("Gossip: duplicates recognised from their bytes")
struct GossipDuplicateFastPathTests {
    /// Everything observable of a core after a frame: counters, tables, scores, what it asked for.
    static func state(_ c: GossipCore, _ outputs: [GossipOutput]) -> String {
        let k = c.counters
        let topics = k.byTopic.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.messages)/\($0.value.duplicates)" }
        let scores = (1...3).map { c.score(of: $0).map { String($0) } ?? "-" }
        return "\(k.received) \(k.duplicates) \(k.delivered) \(k.invalid) \(k.forwarded) \(k.iwantSent) \(k.idontwantSent) \(k.unsubscribed) "
            + "\(topics) pending \(c.pendingCount) promises \(c.promises.count) incoming \(c.incoming.count) announcers \(c.announcers.count) "
            + "scores \(scores) outputs \(outputs.map { "\($0)" })"
    }

    @Test("a core taking duplicates through receiveDuplicate ends every step exactly where decode-and-receive leaves it", arguments: [1, 2, 3] as [UInt64])
    func sameAsDecoding(seed: UInt64) throws {
        var config = GossipConfig()
        config.maxMessageSize = ["t": 96]
        var r1 = SeededRNG(seed: seed), r2 = SeededRNG(seed: seed)
        let fast = GossipCore(config: config, random: { b in r1.next() % max(1, b) })
        let slow = GossipCore(config: config, random: { b in r2.next() % max(1, b) })
        var now: UInt64 = 1_000_000_000
        for c in [fast, slow] {
            for p in 1...3 { c.addPeer(p, outbound: p != 3) }
            c.subscribe("t", now: Instant(nanoseconds: now))
            c.subscribe("topic-two", now: Instant(nanoseconds: now))
            for p in 1...3 { c.receive(.subscribe(["t", "topic-two"]), from: p, now: Instant(nanoseconds: now)) }
        }
        _ = fast.drain()
        _ = slow.drain()
        var rng = SeededRNG(seed: seed &* 7919)
        let payloads = (0..<6).map { i in [UInt8](repeating: UInt8(i), count: i == 5 ? 200 : 20 + i) }  // the last is over "t"'s size
        let topics = ["t", "topic-two", "elsewhere"]
        var handledFast = 0
        for step in 0..<600 {
            now += 20_000_000
            let peer = Int(rng.next() % 3) + 1
            let topic = topics[Int(rng.next() % 3)]
            let data = payloads[Int(rng.next() % UInt64(payloads.count))]
            var bytes: [UInt8]
            switch rng.next() % 10 {
            case 0: bytes = GossipFrame.ihave(topic, payloads.map { MessageID(topic: topic, data: $0) }).encoded
            case 1: bytes = GossipFrame.message(GossipMessage(topic: topic, data: data)).encoded + [0]  // trailing byte
            case 2: bytes = Array(GossipFrame.message(GossipMessage(topic: topic, data: data)).encoded.dropLast())  // truncated
            case 3: bytes = GossipFrame.iwant([MessageID(topic: topic, data: data)]).encoded
            default: bytes = GossipFrame.message(GossipMessage(topic: topic, data: data)).encoded
            }
            if fast.receiveDuplicate(bytes, from: peer, now: Instant(nanoseconds: now)) {
                handledFast += 1
            } else if let f = try? GossipFrame.decode(bytes) {
                fast.receive(f, from: peer, now: Instant(nanoseconds: now))
            }
            if let f = try? GossipFrame.decode(bytes) { slow.receive(f, from: peer, now: Instant(nanoseconds: now)) }
            // Verdicts: accept all but one payload (rejected: its sender is scored down).
            var outs: [[GossipOutput]] = [[], []]
            for (i, c) in [fast, slow].enumerated() {
                let o = c.drain()
                outs[i] = o
                for case .validate(let m, _) in o { c.validated(m.id, m.data.first == 3 ? .reject : .accept, now: Instant(nanoseconds: now)) }
                outs[i] += c.drain()
                if step % 25 == 0 { c.heartbeat(now: Instant(nanoseconds: now)); outs[i] += c.drain() }
            }
            #expect(Self.state(fast, outs[0]) == Self.state(slow, outs[1]), "seed \(seed) step \(step)")
            if Self.state(fast, outs[0]) != Self.state(slow, outs[1]) { return }
        }
        #expect(handledFast > 100, "seed \(seed): the fast path took only \(handledFast) frames")
    }
}
