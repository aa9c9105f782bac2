import Foundation
import MeshChain
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshTestSupport
import Testing

/// Three node processes (a validator and two full nodes that know only the validator):
/// they find each other through discovery, and meshprobe sees and draws all of them.
@Suite("Nodes and meshprobe (processes)", .serialized)
struct ProbeEndToEndTests {
    @Test("discovery connects full nodes through one bootnode; meshprobe ping, handshake, head, peers and crawl")
    func probe() async throws {
        let dir = TestPaths.temporaryDirectory()
        let env = ["TM_PW": "pw"]
        let ports = (0..<3).map { _ in freePort() }
        let rpc = (0..<3).map { _ in freePort() }
        let g = try ProcessRunner.run("tensormesh", ["genesis", "new", "--validators", "1", "--out", dir + "/spec", "--password-env", "TM_PW",
                                                     "--slot-ms", "500", "--base-port", String(ports[0]), "--json"], environment: env)
        #expect(g.status == 0, "\(g.stderr)")
        let boot = ((try JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any])?["validators"] as? [String])?.first ?? ""
        var nodes: [BackgroundProcess] = []
        defer { nodes.forEach { $0.stop() } }
        for i in 0..<3 {
            var args = ["run", "--chain", dir + "/spec/chain-spec.json", "--base-path", dir + "/n\(i)", "--port", String(ports[i]),
                        "--listen-addr", "127.0.0.1", "--rpc-port", String(rpc[i]), "--prometheus-port", "0", "--name", "n\(i)"]
            if i == 0 { args += ["--key", dir + "/spec/validator-0.key", "--password-env", "TM_PW", "--validator"] }
            nodes.append(try BackgroundProcess("tensormesh", args, environment: env, log: dir + "/n\(i).log"))
        }
        // The two full nodes learn of each other only through discovery.
        let c1 = try ChainClient(url: "http://127.0.0.1:\(rpc[1])")
        let connected = try c1.waitUntil(timeout: 60) { (try c1.rpc.call("system_health")["peers"]?.uint64 ?? 0) >= 2 }
        #expect(connected, "full node 1 has fewer than 2 peers: \(nodes[1].output.suffix(1500))")
        let c0 = try ChainClient(url: "http://127.0.0.1:\(rpc[0])")
        #expect(try c0.waitUntil(timeout: 30) { try c0.finalized() >= 3 })

        let ping = try ProcessRunner.run("meshprobe", ["ping", boot, "--json"])
        #expect(ping.status == 0, "\(ping.stderr)")
        #expect(ping.stdout.contains("\"rttMs\"") && ping.stdout.contains(String(boot.prefix(64))), "\(ping.stdout)")
        let hs = try ProcessRunner.run("meshprobe", ["handshake", boot, "--json"])
        #expect(hs.status == 0 && hs.stdout.contains("noiseHandshakeMs") && hs.stdout.contains("genesis"), "\(hs.stdout)\(hs.stderr)")
        let head = try ProcessRunner.run("meshprobe", ["head", boot])
        #expect(head.status == 0 && head.stdout.contains("finalized"), "\(head.stdout)\(head.stderr)")
        let peers = try ProcessRunner.run("meshprobe", ["peers", boot, "--json"])
        #expect(peers.status == 0 && peers.stdout.contains("/tm/gossip/1"), "\(peers.stdout)\(peers.stderr)")
        let crawl = try ProcessRunner.run("meshprobe", ["crawl", "--bootnodes", boot, "--json", "--dot", dir + "/mesh.dot"])
        #expect(crawl.status == 0, "\(crawl.stderr)")
        let report = (try? JSONSerialization.jsonObject(with: Data(crawl.stdout.utf8))) as? [String: Any] ?? [:]
        let found = report["nodes"] as? [[String: Any]] ?? []
        #expect(found.count == 3 && found.allSatisfy { $0["reachable"] as? Bool == true }, "\(crawl.stdout) \(crawl.stderr)")
        // Through the secure channel: each node's agent and genesis, and the connections it holds
        // (the three are fully connected: three pairs), no dial errors.
        #expect(found.allSatisfy { ($0["agent"] as? String ?? "").hasPrefix("tensormesh/") && ($0["connections"] as? Int) == 2 }, "\(crawl.stdout)")
        #expect((report["connections"] as? [[String]])?.count == 3 && (report["dialErrors"] as? [String: Any])?.isEmpty == true, "\(crawl.stdout)")
        #expect((report["genesis"] as? [String: Int])?.values.first == 3 && (report["agents"] as? [String: Int])?.values.reduce(0, +) == 3, "\(crawl.stdout)")
        let dot = (try? String(contentsOfFile: dir + "/mesh.dot", encoding: .utf8)) ?? ""
        #expect(dot.contains("cluster_discovery") && dot.contains("cluster_connections") && dot.components(separatedBy: "[dir=none]").count - 1 == 3, "\(dot)")
        #expect(dot.components(separatedBy: "->").count - 1 >= 7, "\(dot)")
        // A node that does not answer is counted as a dial error, not a crash.
        let dead = try ProcessRunner.run("meshprobe", ["crawl", "--bootnodes", String(repeating: "cd", count: 32) + "@127.0.0.1:\(freePort())",
                                                       "--timeout", "0.5", "--json"])
        #expect(dead.status == 0 && dead.stdout.contains("\"reachable\": false"), "\(dead.stdout)\(dead.stderr)")
        // A wrong node id at the address is an error with exit code 1; a bad address a usage error.
        let wrong = try ProcessRunner.run("meshprobe", ["handshake", String(repeating: "ab", count: 32) + "@127.0.0.1:\(ports[0])"])
        #expect(wrong.status == 1 && wrong.stderr.contains("is node"), "\(wrong.stderr)")
        let bad = try ProcessRunner.run("meshprobe", ["ping", "nonsense"])
        #expect(bad.status == 2)
    }

    @Test("compact block relay: a full node rebuilds blocks from its pool, a blocks-only node fetches the transactions; all agree")
    func compactBlocks() async throws {
        let net = try LocalNet(nodes: 3, validators: 1, slotMs: 500)
        let nodes = try (0..<3).map { i in try net.start(i, validator: i == 0, extra: i == 2 ? ["--blocks-only"] : []) }
        defer { nodes.forEach { $0.stop() } }
        let clients = try (0..<3).map { try net.client($0) }
        for c in clients {
            let ok = try c.waitUntil(timeout: 60) { (try c.rpc.call("system_health")["peers"]?.uint64 ?? 0) >= 2 }
            #expect(ok, "a node has fewer than 2 peers")
        }
        // Transfers submitted to the full node travel by transaction gossip to the producer.
        let sudo = try net.sudoKey()
        let nonce = try clients[1].pendingNonce(sudo.publicKey)
        var hashes: [Hash32] = []
        for i in 0..<20 {
            hashes.append(try clients[1].submit(.transfer(to: Ed25519.PrivateKey().publicKey, amount: Token.tao), key: sudo, nonce: nonce + UInt64(i)))
        }
        let included = try clients[0].waitUntil(timeout: 30) {
            try hashes.allSatisfy { if case .included = try clients[0].status($0) { return true } else { return false } }
        }
        #expect(included, "transfers not included: \(nodes[0].output.suffix(1500))")
        // Every node reaches the same block at the producer's head.
        let head = try clients[0].head()
        let hash0 = try clients[0].rpc.call("chain_getBlock", .object([("number", .int(head))]))["hash"]?.string
        for c in clients.dropFirst() {
            let same = try c.waitUntil(timeout: 20) {
                try c.rpc.call("chain_getBlock", .object([("number", .int(head))]))["hash"]?.string == hash0
            }
            #expect(same, "a node did not import block #\(head)")
        }
        let full = try clients[1].rpc.call("system_networkState")["compactBlocks"]
        let lean = try clients[2].rpc.call("system_networkState")["compactBlocks"]
        #expect((full?["fromPool"]?.uint64 ?? 0) >= 1, "the full node rebuilt no block from its pool: \(String(describing: full))")
        #expect((full?["fallbacks"]?.uint64 ?? 1) == 0 && (lean?["fallbacks"]?.uint64 ?? 1) == 0)
        #expect((lean?["fetched"]?.uint64 ?? 0) >= 1 && (lean?["transactionsFetched"]?.uint64 ?? 0) >= 20,
                "the blocks-only node fetched too little: \(String(describing: lean))")
        let pending = try clients[2].rpc.call("author_pendingTransactions").array?.count ?? -1
        #expect(pending == 0, "a blocks-only node keeps no gossiped transactions")
    }

    @Test("the public network's chain spec in Bootstrap loads; its genesis is the one the README gives; bootnodes.txt matches it")
    func publicSpec() async throws {
        let root = TestPaths.repositoryRoot
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let spec = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/Bootstrap/chains/public.json"))) as? [String: Any]
        let specBoot = spec?["bootnodes"] as? [String] ?? []
        let listed = try String(contentsOfFile: root + "/Bootstrap/bootnodes.txt", encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        #expect(!specBoot.isEmpty && listed == specBoot, "Bootstrap/bootnodes.txt and the spec's bootnodes differ")
        let dir = TestPaths.temporaryDirectory()
        let rpc = freePort()
        let node = try BackgroundProcess("tensormesh", ["run", "--chain", root + "/Bootstrap/chains/public.json", "--base-path", dir,
                                                        "--port", String(freePort()), "--rpc-port", String(rpc), "--prometheus-port", "0"],
                                         log: dir + "/node.log")
        defer { node.stop() }
        let c = try ChainClient(url: "http://127.0.0.1:\(rpc)")
        var genesis = ""
        _ = try c.waitUntil(timeout: 20) {
            genesis = (try? c.rpc.call("chain_getGenesis"))?.string ?? ""
            return !genesis.isEmpty
        }
        #expect(genesis.count == 66 && readme.contains(genesis), "genesis \(genesis) is not the README's: \(node.output.suffix(800))")
    }

    @Test("subnet topics: a message signed by a registered hotkey reaches the nodes on subnet/1; an unregistered signer is refused")
    func subnetTopics() async throws {
        let net = try LocalNet(nodes: 3, validators: 1, slotMs: 500, genesisArgs: ["--subnets", "1"])
        let nodes = try (0..<3).map { i in try net.start(i, validator: i == 0, extra: i > 0 ? ["--subnet-topic", "1"] : []) }
        defer { nodes.forEach { $0.stop() } }
        let clients = try (0..<3).map { try net.client($0) }
        for c in clients.dropFirst() {
            #expect(try c.waitUntil(timeout: 60) { (try c.rpc.call("system_health")["peers"]?.uint64 ?? 0) >= 2 })
        }
        try await Task.sleep(nanoseconds: 1_500_000_000)  // a gossip heartbeat forms the topic's mesh
        // The genesis subnet's owner hotkey is the sudo key (uid 0).
        let sudo = try net.sudoKey()
        let genesis = try clients[1].genesis()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let m = SubnetGossipMessage(netuid: 1, key: sudo, timestamp: now, payload: Array("weights soon".utf8), genesis: genesis)
        _ = try clients[1].rpc.call("subnet_publishMessage", .array([.string(Hex.encode(m.encoded))]))
        let got = try clients[2].waitUntil(timeout: 10) {
            (try clients[2].rpc.call("subnet_getMessages", .object([("netuid", .int(1))])).array ?? []).contains {
                $0["payload"]?.string == Hex.encode(Array("weights soon".utf8)) && $0["hotkey"]?.string == sudo.publicKey.hex
            }
        }
        #expect(got, "node 2 did not receive the subnet message")
        #expect((try clients[0].rpc.call("subnet_getMessages", .object([("netuid", .int(1))])).array ?? []).isEmpty,
                "a node not on the topic keeps nothing")
        // Published from a node off the topic: it reaches the subscribers, and the publisher
        // keeps nothing of it.
        let aside = SubnetGossipMessage(netuid: 1, key: sudo, timestamp: now, payload: Array("from aside".utf8), genesis: genesis)
        let answer = try clients[0].rpc.call("subnet_publishMessage", .array([.string(Hex.encode(aside.encoded))]))
        #expect(answer["subscribed"]?.bool == false)
        let reached = try clients[2].waitUntil(timeout: 10) {
            (try clients[2].rpc.call("subnet_getMessages", .object([("netuid", .int(1))])).array ?? []).contains { $0["payload"]?.string == Hex.encode(Array("from aside".utf8)) }
        }
        #expect(reached, "a message published off the topic did not reach its subscribers")
        #expect((try clients[0].rpc.call("subnet_getMessages", .object([("netuid", .int(1))])).array ?? []).isEmpty,
                "the publisher off the topic kept its own message")
        let stranger = SubnetGossipMessage(netuid: 1, key: Ed25519.PrivateKey(), timestamp: now, payload: [1], genesis: genesis)
        #expect(throws: (any Error).self) { try clients[1].rpc.call("subnet_publishMessage", .array([.string(Hex.encode(stranger.encoded))])) }
    }
}
