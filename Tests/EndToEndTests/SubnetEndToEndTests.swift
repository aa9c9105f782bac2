import Foundation
import MeshChain
@testable import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshQuery
import MeshSockets
import MeshTestSupport
import Testing
import Synchronization

/// A one-validator chain with a fast tempo, the minimal subnet's validator, an honest and a
/// lazy miner, all as separate processes as a user runs them; the btcli-like commands drive
/// and inspect it.
@Suite("Subnet end to end (processes)", .serialized)
struct SubnetEndToEndTests {
    let dir = TestPaths.temporaryDirectory()
    var env: [String: String] { ["TM_PW": "pw", "TENSORMESH_WALLETS": self.dir + "/wallets"] }

    func tm(_ args: [String]) throws -> ProcessResult {
        try ProcessRunner.run("tensormesh", args + (args.contains("--password-env") || !args.contains("--wallet") ? [] : ["--password-env", "TM_PW"]),
                              environment: self.env)
    }

    func json(_ r: ProcessResult) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
    }

    @Test("honest miners out-earn a lazy one; wallet, subnets, stake and transfer commands work against a live node")
    func market() async throws {
        var coldkeys: [String: String] = [:]
        var hotkeys: [String: String] = [:]
        for w in ["val", "honest", "lazy", "spare"] {
            let r = try self.tm(["wallet", "create", "--wallet", w, "--hotkey", "default", "--password-env", "TM_PW", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            coldkeys[w] = self.json(r)["coldkey"] as? String
            hotkeys[w] = self.json(r)["hotkeyPublic"] as? String
        }
        let p2p = freePort(), rpcPort = freePort(), relayPort = freePort()
        var genesisArgs = ["genesis", "new", "--validators", "1", "--out", self.dir + "/spec", "--password-env", "TM_PW", "--slot-ms", "500",
                           "--subnets", "1", "--tempo", "8", "--weights-rate-limit", "2", "--base-port", String(p2p), "--json"]
        for w in ["val", "honest", "lazy"] { genesisArgs += ["--endow", "\(coldkeys[w]!):100"] }
        let g = try self.tm(genesisArgs)
        #expect(g.status == 0, "\(g.stderr)")
        let node = try BackgroundProcess("tensormesh", ["run", "--chain", self.dir + "/spec/chain-spec.json", "--key", self.dir + "/spec/validator-0.key",
                                                        "--password-env", "TM_PW", "--validator", "--base-path", self.dir + "/node", "--port", String(p2p),
                                                        "--listen-addr", "127.0.0.1", "--rpc-port", String(rpcPort), "--prometheus-port", "0",
                                                        "--query-relay-port", String(relayPort)],
                                         environment: self.env, log: self.dir + "/node.log")
        defer { node.stop() }
        let url = "http://127.0.0.1:\(rpcPort)"
        let chain = try ChainClient(url: url)
        #expect(try chain.waitUntil(timeout: 60) { try chain.head() >= 2 }, "node did not start: \(node.output.suffix(2000))")

        let common = ["--rpc-url", url, "--netuid", "1", "--hotkey", "default", "--password-env", "TM_PW"]
        // The lazy miner accepts no connections: it is reached through the node's query relay.
        let nodeId = try #require(try chain.rpc.call("system_nodeId").string)
        let relayAddress = "\(nodeId)@127.0.0.1:\(relayPort)"
        var processes: [BackgroundProcess] = []
        defer { processes.forEach { $0.stop() } }
        processes.append(try BackgroundProcess("tmsubnet", ["minimal", "miner", "--wallet", "honest", "--port", "0"] + common,
                                               environment: self.env, log: self.dir + "/honest.log"))
        processes.append(try BackgroundProcess("tmsubnet", ["minimal", "miner", "--wallet", "lazy", "--relay", relayAddress, "--lazy"] + common,
                                               environment: self.env, log: self.dir + "/lazy.log"))
        processes.append(try BackgroundProcess("tmsubnet", ["minimal", "validator", "--wallet", "val", "--stake", "20", "--step-seconds", "1"] + common,
                                               environment: self.env, log: self.dir + "/validator.log"))

        // Wait until both miners have earned something and the honest one more.
        var incentive: [String: Double] = [:]
        let earned = try chain.waitUntil(timeout: 150, interval: 1) {
            let mg = try chain.metagraphInfo(netuid: 1)
            incentive = [:]
            for n in mg.neurons {
                if n.hotkey.hex == hotkeys["honest"] { incentive["honest"] = n.incentive }
                if n.hotkey.hex == hotkeys["lazy"] { incentive["lazy"] = n.incentive }
            }
            return (incentive["honest"] ?? 0) > 0.5 && incentive["lazy"] != nil
        }
        #expect(earned, """
            incentive \(incentive)
            validator: \(processes[2].output.suffix(1500))
            honest: \(processes[0].output.suffix(800))
            """)
        #expect((incentive["honest"] ?? 0) > (incentive["lazy"] ?? 1))

        // A registered validator sends x = Int.max: the handler refuses it with 400 instead of
        // trapping on x * 2 (which killed the miner process), and the miner keeps answering.
        let valKey = try Wallet(name: "val", root: self.dir + "/wallets").hotkey("default", password: SecureBytes(copying: Array("pw".utf8)))
        let honestNeuron = try chain.metagraphInfo(netuid: 1).neurons.first { $0.hotkey.hex == hotkeys["honest"] }
        let axon = try #require(honestNeuron?.axon)
        let loop = try EventLoop(name: "test.hostile-validator")
        defer { loop.shutdown() }
        let dendrite = Dendrite(hotkey: valKey, genesisHash: try chain.genesis().bytes, loop: loop)
        defer { dendrite.close() }
        let endpoint = AxonEndpoint(hotkey: honestNeuron!.hotkey, nodeId: try #require(axon.nodeId),
                                    address: try #require(SocketAddress(numericHost: axon.host, port: axon.port)))
        let hostile = await dendrite.call(endpoint, netuid: 1, synapse: "double", body: Array(#"{"x":9223372036854775807}"#.utf8), timeout: 10)
        #expect(hostile.status == .badRequest, "\(String(describing: hostile.failure))")
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(processes[0].isRunning, "the honest miner died: \(processes[0].output.suffix(800))")
        let fine = await dendrite.call(endpoint, netuid: 1, synapse: "double", body: Array(#"{"x":21}"#.utf8), timeout: 10)
        #expect(fine.isSuccess && fine.body == Array(#"{"y":42}"#.utf8), "\(String(describing: fine.failure))")

        // Through the real wire: a query header whose deadline is near 2^64 trapped a miner's
        // axon before any signature or blacklist check, also through the relay. Sent by the
        // registered validator (signed) and by a stranger, straight to the honest miner and
        // through the node's relay to the lazy one: refused with 400, unsigned, and both
        // miners and the relay keep serving.
        let genesisHash = try chain.genesis()
        let lazyNeuron = try #require(try chain.metagraphInfo(netuid: 1).neurons.first { $0.hotkey.hex == hotkeys["lazy"] })
        let routes: [(String, UInt16, Ed25519.PublicKey)] = [(axon.host, axon.port, honestNeuron!.hotkey), ("127.0.0.1", relayPort, lazyNeuron.hotkey)]
        for (host, port, target) in routes {
            for caller in [valKey, Ed25519.PrivateKey()] {
                let raw = try HostilePeer.connect(host: host, port: port, hello: HostilePeer.hello(genesis: genesisHash), key: caller)
                defer { raw.close() }
                for (i, deadline) in [UInt64.max, UInt64.max - 1, UInt64.max / 2].enumerated() {
                    let h = QueryRequestHeader(netuid: 1, synapse: "double", caller: caller, target: target, nonce: UInt64(7_000 + i), deadline: deadline, body: [])
                    let answer = raw.request(QueryProtocol.query, h.encoded).flatMap { try? QueryResponseFrame.decode($0) }
                    guard case .trailer(let t)? = answer else {
                        Issue.record("no refusal from \(host):\(port) for a deadline of \(deadline): \(String(describing: answer)) (\(raw.closedReason ?? "open"))")
                        continue
                    }
                    #expect(t.status == .badRequest && t.signature == nil, "deadline \(deadline) at \(host):\(port): \(t.status) \(t.message)")
                }
            }
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(processes[0].isRunning && processes[1].isRunning && node.isRunning, "a process died: \(processes[1].output.suffix(800)) \(node.output.suffix(800))")
        let after = await dendrite.call(endpoint, netuid: 1, synapse: "double", body: Array(#"{"x":4}"#.utf8), timeout: 10)
        #expect(after.isSuccess && after.body == Array(#"{"y":8}"#.utf8), "\(String(describing: after.failure))")
        let lazyEndpoint = try #require(lazyNeuron.axon.flatMap { a in
            a.nodeId.flatMap { id in SocketAddress(numericHost: a.host, port: a.port).map { AxonEndpoint(hotkey: lazyNeuron.hotkey, nodeId: id, address: $0) } }
        })
        let viaRelay = await dendrite.call(lazyEndpoint, netuid: 1, synapse: "double", body: Array(#"{"x":4}"#.utf8), timeout: 10)
        #expect(viaRelay.isSuccess, "the lazy miner behind the relay stopped answering: \(String(describing: viaRelay.failure))")

        // A miner under a flood: for 5 s a stranger keeps reconnecting (a new identity each
        // time) and sends PING floods and query headers it may not send (unregistered, some
        // with forged signatures, hostile lengths). The miner must keep answering the
        // validator's queries, each within a second, and stay within 64 MiB of its resident
        // memory before the flood.
        let minerPid = processes[0].process.processIdentifier
        let rss0 = VictimWatch.residentKiB(pid: minerPid)
        let floodUntil = Date().addingTimeInterval(5)
        let floodHost = axon.host, floodPort = axon.port, floodTarget = honestNeuron!.hotkey
        final class Rounds: Sendable { let connected = Mutex(0) }
        let rounds = Rounds()
        let flooder = Thread {
            var round: UInt64 = 0
            while Date() < floodUntil {
                round += 1
                let stranger = Ed25519.PrivateKey()
                guard let p = try? HostilePeer.connect(host: floodHost, port: floodPort, hello: HostilePeer.hello(genesis: genesisHash), key: stranger) else { continue }
                rounds.connected.withLock { $0 += 1 }
                p.pingFlood(5_000)
                let now = UInt64(Date().timeIntervalSince1970 * 1000)
                for i in 0..<64 {
                    var h = QueryRequestHeader(netuid: 1, synapse: "double", caller: stranger, target: floodTarget,
                                               nonce: round << 16 | UInt64(i), deadline: now + 5_000, body: [])
                    if i % 3 == 1 { h.nonce &+= 1 }                  // forged: signed over another nonce
                    if i % 3 == 2 { h.bodyLength = UInt32.max }     // a body it will never send
                    _ = p.send(QueryProtocol.query, [h.encoded], finish: false)
                }
                usleep(50_000)
                p.close()
            }
        }
        flooder.start()
        var slowest = 0.0, served = 0, refusedHonest: [String] = []
        var rssPeak = rss0
        var x = 0
        while Date() < floodUntil {
            x += 1
            let t = Date()
            let r = await dendrite.call(endpoint, netuid: 1, synapse: "double", body: Array("{\"x\":\(x)}".utf8), timeout: 2)
            slowest = max(slowest, Date().timeIntervalSince(t))
            if r.isSuccess && r.body == Array("{\"y\":\(2 * x)}".utf8) { served += 1 } else { refusedHonest.append(String(describing: r.failure)) }
            rssPeak = max(rssPeak, VictimWatch.residentKiB(pid: minerPid))
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        while !flooder.isFinished { try await Task.sleep(nanoseconds: 50_000_000) }
        let connected = rounds.connected.withLock { $0 }
        #expect(connected >= 3, "the flooder got through only \(connected) handshakes")
        print("miner flood: \(connected) connections from new identities, \(served) honest queries served, slowest \(Int(slowest * 1000)) ms, RSS \(rss0) -> \(rssPeak) KiB")
        #expect(processes[0].isRunning, "the miner died under the flood: \(processes[0].output.suffix(1500))")
        #expect(refusedHonest.isEmpty && served > 10, "the validator's queries failed under the flood (\(served) served): \(refusedHonest.prefix(3))")
        #expect(slowest < 1, "a query took \(slowest) s under the flood")
        #expect(rssPeak - rss0 < 64 * 1024, "the miner's memory grew from \(rss0) to \(rssPeak) KiB under the flood")

        // The btcli-like commands against the live node.
        let list = try self.tm(["subnets", "list", "--rpc-url", url, "--json"])
        #expect(list.status == 0)
        #expect(list.stdout.contains("\"netuid\": 1"))
        let mg = try self.tm(["subnets", "metagraph", "--netuid", "1", "--rpc-url", url])
        #expect(mg.status == 0 && mg.stdout.contains(String(hotkeys["honest"]!.prefix(12))), "\(mg.stdout)\(mg.stderr)")
        let stakes = try self.tm(["stake", "list", "--wallet", "val", "--rpc-url", url, "--json"])
        #expect(stakes.stdout.contains(hotkeys["val"]!), "\(stakes.stdout)\(stakes.stderr)")
        let t = try self.tm(["transfer", "--dest", coldkeys["spare"]!, "--amount", "1.5", "--wallet", "val", "--rpc-url", url, "--yes", "--json"])
        #expect(t.status == 0, "\(t.stdout)\(t.stderr)")
        let bal = try self.tm(["wallet", "balance", "--wallet", "spare", "--rpc-url", url, "--json"])
        #expect(self.json(bal)["free"] as? Int == 1_500_000_000, "\(bal.stdout)")
        // A refused call says why, with exit code 1: unstaking more than is staked.
        let over = try self.tm(["stake", "remove", "--netuid", "1", "--amount", "5000", "--wallet", "val", "--rpc-url", url, "--yes"])
        #expect(over.status == 1)
        #expect(over.stderr.contains("NotEnoughStakeToWithdraw"), "\(over.stderr)")
        // Bad amounts are usage errors.
        let bad = try self.tm(["transfer", "--dest", coldkeys["spare"]!, "--amount", "lots", "--wallet", "val", "--rpc-url", url])
        #expect(bad.status == 2)
        // The RPC server refuses an out-of-range netuid (it answered for subnet 65535), and a
        // batch of full metagraphs past its cost budget.
        var refusal: Int?
        do { _ = try chain.rpc.call("subnet_getMetagraph", .object([("netuid", .int(70_000))])) } catch {
            if case .rpc(let code, _, _) = error { refusal = code }
        }
        #expect(refusal == -32602)
        let full = #"{"jsonrpc":"2.0","id":1,"method":"subnet_getMetagraph","params":{"netuid":1,"full":true}}"#
        let batch = try JSONValue.parse(try chain.rpc.post(Array("[\(full),\(full)]".utf8)))
        #expect(batch[0]?["result"]?["n"] != nil, "\(batch)")
        #expect(batch[1]?["error"]?["code"]?.int64 == -32005, "\(batch)")
        // JSON-RPC 2.0: notifications (no id) get no reply, alone or in a batch; a batch of
        // only notifications gets none at all; ids that are not strings, numbers or null are
        // refused, not echoed.
        let note = #"{"jsonrpc":"2.0","method":"chain_getHead"}"#
        #expect(try chain.rpc.post(Array(note.utf8)).isEmpty)
        #expect(try chain.rpc.post(Array("[\(note),\(note)]".utf8)).isEmpty)
        let mixed = try JSONValue.parse(try chain.rpc.post(Array("[\(note),{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"chain_getHead\"}]".utf8)))
        #expect(mixed.array?.count == 1 && mixed[0]?["id"]?.string == "a", "\(mixed)")
        let badId = try JSONValue.parse(try chain.rpc.post(Array(#"{"jsonrpc":"2.0","id":{"x":1},"method":"chain_getHead"}"#.utf8)))
        #expect(badId["error"]?["code"]?.int64 == -32600 && badId["id"]?.isNull == true, "\(badId)")
        // chain_getBlock by position takes a hash as well as a number.
        let one = try chain.rpc.call("chain_getBlock", .array([.int(1)]))
        let byHash = try chain.rpc.call("chain_getBlock", .array([one["hash"] ?? .null]))
        #expect(byHash["number"]?.uint64 == 1 && byHash["hash"] == one["hash"], "\(byHash)")
        // Substrate's names and shapes beside ours.
        #expect(try chain.rpc.call("chain_getBlockHash", .array([.int(1)])) == one["hash"])
        let header = try chain.rpc.call("chain_getHeader", .array([one["hash"] ?? .null]))
        #expect(header["number"]?.string == "0x1" && header["parentHash"] == one["parentHash"] && header["extrinsicsRoot"]?.string != nil, "\(header)")
        let sync = try chain.rpc.call("system_syncState")
        #expect((sync["currentBlock"]?.uint64 ?? 0) >= 1 && (sync["highestBlock"]?.uint64 ?? 0) >= (sync["currentBlock"]?.uint64 ?? 1), "\(sync)")
        #expect(try chain.rpc.call("system_properties")["ss58Format"]?.int64 == 42)
        #expect(try chain.rpc.call("system_chain").string != nil)
        #expect(try chain.rpc.call("system_chainInfo")["genesis"]?.string == (try chain.genesis()).hex)
        let listed = try chain.rpc.call("rpc_methods")
        #expect(listed["version"]?.int64 == 1)
        let methods = listed["methods"]?.array?.compactMap(\.string) ?? []
        #expect(["chain_getBlockHash", "chain_getHeader", "system_syncState", "system_properties"].allSatisfy(methods.contains), "\(methods)")
        // CORS: a page on localhost may call the node (preflight answered), another origin not.
        let port = UInt16(url.split(separator: ":").last ?? "") ?? 0
        let preflight = try httpExchange(port: port, "OPTIONS / HTTP/1.0\r\nHost: 127.0.0.1\r\nOrigin: http://localhost:3000\r\n"
                                          + "Access-Control-Request-Method: POST\r\n\r\n")
        #expect(preflight.head.hasPrefix("HTTP/1.1 204") && preflight.head.lowercased().contains("access-control-allow-origin: http://localhost:3000"),
                "\(preflight.head)")
        let call = #"{"jsonrpc":"2.0","id":1,"method":"chain_getHead"}"#
        let evil = try httpExchange(port: port, "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
                                     + "Content-Type: application/json\r\nContent-Length: \(call.utf8.count)\r\n\r\n\(call)")
        #expect(evil.head.hasPrefix("HTTP/1.1 403"), "\(evil.head)")
        #expect(node.isRunning)
    }
}
