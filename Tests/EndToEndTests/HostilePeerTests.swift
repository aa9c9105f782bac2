import Foundation
import MeshChain
import MeshChannel
import MeshClient
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshGossip
import MeshNetwork
import MeshNode
import MeshNodeCore
import MeshSockets
import MeshTestSupport
import Testing

/// Attacks through the real wire against a real validator process: one peer completes the
/// Noise handshake and the hello like an honest one, then attacks. While each attack runs,
/// the victim must keep producing blocks at its normal rate, answer JSON-RPC within one
/// second, and stay within 64 MiB of its resident memory before the attack (issue 14).
@Suite("Hostile peers against a validator (processes)", .serialized)
final class HostilePeerTests {
    static let slotMs = 250
    let net: LocalNet
    let victim: BackgroundProcess
    let watch: VictimWatch
    let genesis: Hash32
    let metricsPort: UInt16
    /// Blocks per second the victim makes undisturbed (measured once per suite instance).
    var baseline: Double = 0

    init() throws {
        self.net = try LocalNet(nodes: 1, validators: 1, slotMs: Self.slotMs)
        let m = freePort()
        self.metricsPort = m
        self.victim = try self.net.start(0, validator: true, extra: ["--prometheus-port", String(self.metricsPort), "--log", "info"])
        let c = try self.net.client(0)
        self.watch = VictimWatch(process: self.victim, client: c)
        guard try c.waitUntil(timeout: 60, { try c.head() >= 3 }) else { throw ProcessFailure("victim did not start: \(self.victim.output.suffix(2000))") }
        self.genesis = try c.genesis()
        self.baseline = self.watch.measure(seconds: 3).blocksPerSecond
    }

    deinit { self.victim.stop() }

    func connect(best: UInt64 = 0) throws -> HostilePeer {
        try HostilePeer.connect(port: self.net.ports[0], hello: HostilePeer.hello(genesis: self.genesis, best: best))
    }

    /// Runs `attack` for `seconds` and checks the victim's block rate, RPC latency and memory.
    func expectUnharmed(_ name: String, seconds: Double = 6, _ attack: @escaping @Sendable (_ until: Date) -> Void,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        let w = self.watch.measure(seconds: seconds, attack: attack)
        print(String(format: "attack %@: %@ (undisturbed %.2f blocks/s)", name, w.description, self.baseline))
        let expected = self.baseline * w.seconds
        #expect(self.victim.isRunning, "\(name): the victim died: \(self.victim.output.suffix(3000))", sourceLocation: sourceLocation)
        #expect(Double(w.blocks) >= expected * 0.7, "\(name): block rate fell: \(w) (undisturbed \(self.baseline) blocks/s)",
                sourceLocation: sourceLocation)
        #expect(w.maxRPCMillis < 1000 && w.failedCalls == 0, "\(name): RPC too slow: \(w)", sourceLocation: sourceLocation)
        #expect(w.rssPeakKiB - w.rssStartKiB < 64 * 1024, "\(name): memory grew: \(w)", sourceLocation: sourceLocation)
    }

    @Test("a sync request whose range ends past 2^64 is refused, and the node lives")
    func syncRangeOverflow() throws {
        let a = try self.connect()
        defer { a.close() }
        let genesis = self.genesis
        _ = genesis
        self.expectUnharmed("sync overflow") { until in
            while Date() < until {
                _ = a.send(ProtocolName.sync, [BlocksRequest(from: UInt64.max - 3, count: 128).encoded])
                _ = a.send(ProtocolName.sync, [BlocksRequest(from: UInt64.max, count: 1).encoded])
                usleep(20_000)
            }
        }
        // An honest request on another connection is still answered.
        let b = try self.connect()
        defer { b.close() }
        let answer = b.request(ProtocolName.sync, BlocksRequest(from: 1, count: 2).encoded)
        #expect(answer.flatMap { try? BlocksResponse.decode($0) }?.blocks.count == 2)
    }

    @Test("a hello claiming best = 2^64 - 1 does not stop block production")
    func lyingHello() throws {
        let a = try self.connect(best: UInt64.max)
        defer { a.close() }
        self.expectUnharmed("lying hello") { until in
            while Date() < until { usleep(100_000) }
        }
        let health = try self.watch.client.rpc.call("system_health")
        #expect(health["isSyncing"]?.bool == false, "a single peer's unproven claim made the node syncing: \(health)")
    }

    @Test("compact blocks with huge numbers and forged signatures do not stop production or make the node sync")
    func forgedCompactBlocks() throws {
        let a = try self.connect()
        defer { a.close() }
        let attackerKey = Ed25519.PrivateKey()
        let genesis = self.genesis
        self.expectUnharmed("forged compact blocks") { until in
            var n: UInt64 = 0
            while Date() < until {
                n += 1
                var header = BlockHeader(parentHash: Hash32((0..<32).map { _ in UInt8.random(in: 0...255) }), number: UInt64.max - n, slot: n,
                                         timestamp: n, stateRoot: genesis, transactionsRoot: genesis, producer: attackerKey.publicKey)
                header.sign(with: attackerKey)  // a valid signature, by a key that is no validator
                let compact = CompactBlock(header: header, shortIDs: (0..<64).map { _ in UInt64.random(in: 0..<(1 << 48)) })
                let frame = GossipFrame.message(GossipMessage(topic: GossipTopic.blocks, data: compact.encoded))
                a.stream(ProtocolName.gossip, [frame.encoded])
                usleep(5_000)
            }
        }
        let health = try self.watch.client.rpc.call("system_health")
        #expect(health["isSyncing"]?.bool == false, "forged headers made the node syncing: \(health)")
    }

    @Test("a flood of 3-byte PING frames does not slow block production (the flooder reconnects under new identities)")
    func pingFlood() throws {
        let port = self.net.ports[0]
        let hello = HostilePeer.hello(genesis: self.genesis)
        let connections = Mutex2(0)
        self.expectUnharmed("ping flood") { until in
            while Date() < until {
                guard let a = try? HostilePeer.connect(port: port, hello: hello) else { usleep(50_000); continue }
                connections.set(connections.get() + 1)
                while Date() < until && a.isOpen {
                    // Keep about 1 MiB of pings in flight: as fast as the victim reads.
                    if a.queued < 1 << 20 { a.pingFlood(20_000) } else { usleep(1_000) }
                }
                a.close()
            }
        }
        #expect(connections.get() >= 1)
    }

    @Test("a flood of gossip for unknown topics neither stalls RPC nor leaks topic names into /metrics")
    func unknownTopicFlood() throws {
        let a = try self.connect()
        defer { a.close() }
        self.expectUnharmed("unknown topics") { until in
            var i = 0
            while Date() < until {
                var frames: [[UInt8]] = []
                for _ in 0..<200 {
                    i += 1
                    let topic = "t\(i)\"} 1\n# evil"
                    frames.append(GossipFrame.message(GossipMessage(topic: topic, data: [UInt8(i & 0xff)])).encoded)
                }
                frames.append(GossipFrame.subscribe((0..<64).map { "s\(i)-\($0)" }).encoded)
                a.stream(ProtocolName.gossip, frames)
                if !a.isOpen { return }
                usleep(2_000)
            }
        }
        let metrics = try httpGet(port: self.metricsPort, path: "/metrics")
        #expect(!metrics.contains("evil"), "peer-chosen topic names reached /metrics: \(metrics.prefix(3000))")
        #expect(metrics.split(separator: "\n").count < 2000, "metrics grew with peer-chosen labels: \(metrics.split(separator: "\n").count) lines")
        let label = #/^[a-z_]+(\{([a-z_]+="([^"\\\n]|\\.)*",?)*\})? -?[0-9.e+-]+$/#
        for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: label) != nil, "malformed metrics line: \(line)")
        }
    }
}

extension HostilePeerTests {
    @Test("many requests on one request stream: served once, then the peer is banned, and the ban holds when it comes back")
    func requestStreamReuse() throws {
        let key = Ed25519.PrivateKey()
        let port = self.net.ports[0]
        let hello = HostilePeer.hello(genesis: self.genesis)
        let a = try HostilePeer.connect(port: port, hello: hello, key: key)
        let request = BlocksRequest(from: 1, count: 128).encoded
        self.expectUnharmed("request stream reuse") { until in
            while Date() < until && a.isOpen {
                // 2,000 requests on one stream, without FIN: each would read 128 blocks.
                a.send(ProtocolName.sync, Array(repeating: request, count: 2000), finish: false)
                usleep(10_000)
            }
        }
        #expect(!a.isOpen, "the victim kept a peer that reuses request streams")
        a.close()
        // The same identity is refused while banned, whichever side dials.
        let again = try? HostilePeer.connect(port: port, hello: hello, key: key, timeout: 5)
        if let again {
            let deadline = Date().addingTimeInterval(5)
            while again.isOpen && Date() < deadline { usleep(20_000) }
            #expect(!again.isOpen, "a banned identity was let back in")
            again.close()
        }
    }

    @Test("gossip control floods (IWANT ×512 of one id, IHAVE and ANNOUNCE of random ids, IDONTWANT, SUBSCRIBE, PREAMBLE, GRAFT/PRUNE) do no harm")
    func gossipControlFloods() throws {
        let port = self.net.ports[0]
        let hello = HostilePeer.hello(genesis: self.genesis)
        self.expectUnharmed("gossip control floods") { until in
            var n = 0
            while Date() < until {
                guard let a = try? HostilePeer.connect(port: port, hello: hello) else { usleep(50_000); continue }
                a.stream(ProtocolName.gossip, [GossipFrame.subscribe(GossipTopic.all).encoded])
                while Date() < until && a.isOpen {
                    n += 1
                    func ids(_ k: Int) -> [MessageID] { (0..<k).map { i in MessageID(bytes: (0..<20).map { j in UInt8(truncatingIfNeeded: n &* 31 &+ i &* 7 &+ j) }) } }
                    let one = ids(1)[0]
                    var frames: [[UInt8]] = [
                        GossipFrame.iwant(Array(repeating: one, count: 512)).encoded,
                        GossipFrame.ihave(GossipTopic.blocks, ids(512)).encoded,
                        GossipFrame.idontwant(ids(512)).encoded,
                        GossipFrame.subscribe((0..<64).map { "topic-\(n)-\($0)" }).encoded,
                        GossipFrame.graft(GossipTopic.blocks).encoded,
                        GossipFrame.prune("nobody-\(n)", backoffSeconds: .max).encoded,
                    ]
                    for id in ids(32) {
                        frames.append(GossipFrame.preamble(GossipTopic.blocks, id, size: 1 << 20).encoded)
                        frames.append(GossipFrame.announce(GossipTopic.blocks, id, size: .max).encoded)
                    }
                    a.stream(ProtocolName.gossip, frames)
                    usleep(5_000)
                }
                a.close()
            }
        }
    }

    @Test("forged finality messages (unsigned votes from the real validator, far rounds, other sets, commits for unknown blocks) do no harm")
    func forgedFinality() throws {
        let port = self.net.ports[0]
        let hello = HostilePeer.hello(genesis: self.genesis)
        let validator = try AccountID(bytes: hex(self.net.validatorIDs[0]))
        let forger = Ed25519.PrivateKey()
        self.expectUnharmed("forged finality") { until in
            var n: UInt64 = 0
            while Date() < until {
                guard let a = try? HostilePeer.connect(port: port, hello: hello) else { usleep(50_000); continue }
                while Date() < until && a.isOpen {
                    n += 1
                    let target = VoteTarget(hash: Hash32((0..<32).map { _ in UInt8.random(in: 0...255) }), number: n % 1000 + 1)
                    var v = SignedVote(phase: .precommit, target: target, round: UInt64.max - n, setId: n % 3, key: forger)
                    v.voter = validator  // claims to be the validator; the signature is the forger's
                    let commit = Commit(target: target, round: n, setId: 0, precommits: [v], ancestry: [])
                    let messages = [FinalityMessage.vote(v).encoded, FinalityMessage.commit(commit).encoded,
                                    FinalityMessage.catchUpRequest(round: UInt64.max, setId: 0).encoded,
                                    FinalityMessage.voteRequest(round: UInt64.max, setId: UInt64.max).encoded]
                    a.stream(ProtocolName.gossip, messages.prefix(2).map { GossipFrame.message(GossipMessage(topic: GossipTopic.finality, data: $0)).encoded })
                    a.stream(ProtocolName.finality, messages)
                    usleep(5_000)
                }
                a.close()
            }
        }
        #expect(try self.watch.client.finalized() > 0, "finality stopped")
    }

    @Test("stream floods: streams opened past the limit and left open, unknown protocols, requests over budget")
    func streamFloods() throws {
        let port = self.net.ports[0]
        let hello = HostilePeer.hello(genesis: self.genesis)
        self.expectUnharmed("stream floods") { until in
            while Date() < until {
                guard let a = try? HostilePeer.connect(port: port, hello: hello) else { usleep(50_000); continue }
                while Date() < until && a.isOpen {
                    a.onLoop { s in
                        guard let p = s.peer else { return }
                        for i in 0..<300 {
                            guard let id = try? p.openStream(i % 2 == 0 ? ProtocolName.ancestry : "/evil/\(i)") else { break }
                            // Streams left open, with a message on each that nobody asked for.
                            try? p.send([UInt8](repeating: 1, count: 1024), on: id)
                        }
                        p.flush()
                    }
                    for _ in 0..<50 { _ = a.send(ProtocolName.head, [[1]]) }
                    usleep(20_000)
                }
                a.close()
            }
        }
    }

    @Test("streams the node refuses are forgotten: a peer that stays within budget cannot pile up stream state")
    func refusedStreamsForgotten() throws {
        let a = try self.connect()
        defer { a.close() }
        func tracked() throws -> Int {
            let text = try httpGet(port: self.metricsPort, path: "/metrics")
            let line = text.split(separator: "\n").first { $0.hasPrefix("tensormesh_peer_inbound_streams ") }
            return Int(line?.split(separator: " ").last ?? "") ?? -1
        }
        // Within the unknown-protocol budget (5/s): no penalty, so the peer stays connected,
        // and every stream is refused by the node (reset from its side).
        for i in 0..<24 {
            a.onLoop { s in
                guard let p = s.peer, let id = try? p.openStream("/not-spoken-here/\(i)") else { return }
                try? p.send([1, 2, 3], on: id)
                p.flush()
            }
            usleep(250_000)
        }
        usleep(300_000)
        #expect(a.isOpen, "a peer within its budget was dropped: \(a.closedReason ?? "")")
        let n = try tracked()
        #expect(n >= 0 && n < 8, "the node still tracks \(n) streams it refused")
    }

    @Test("byte counters only go up: what a peer sent stays counted after it disconnects")
    func bytesCountersMonotonic() throws {
        func sum() throws -> Double {
            let text = try httpGet(port: self.metricsPort, path: "/metrics")
            return text.split(separator: "\n").filter { $0.hasPrefix("tensormesh_bytes_total{") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        let a = try self.connect()
        for _ in 0..<5 { _ = a.send(ProtocolName.sync, [BlocksRequest(from: 1, count: 16).encoded]); usleep(100_000) }
        usleep(300_000)
        let open = try sum()
        a.close()
        usleep(500_000)
        let closed = try sum()
        #expect(open > 0 && closed >= open, "tensormesh_bytes_total fell from \(open) to \(closed) when a peer left")
    }

    @Test("a peer that asks for blocks and never reads the answers is dropped; the victim's memory stays bounded")
    func slowReader() throws {
        let a = try self.connect()
        // Stop reading at the socket: the victim's answers pile up on its side.
        a.onLoop { s in s.peer?.socket.pauseReading() }
        self.expectUnharmed("slow reader", seconds: 8) { until in
            while Date() < until && a.isOpen {
                _ = a.send(ProtocolName.sync, [BlocksRequest(from: 1, count: 128).encoded])
                usleep(50_000)
            }
        }
        a.close()
    }
}

/// A tiny lock box for values shared with attack threads.
final class Mutex2<T>: @unchecked Sendable {
    // Safety: `value` is guarded by `lock`.
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { self.value = v }
    func set(_ v: T) { self.lock.withLock { self.value = v } }
    func get() -> T { self.lock.withLock { self.value } }
    func update(_ f: (inout T) -> Void) { self.lock.withLock { f(&self.value) } }
}
