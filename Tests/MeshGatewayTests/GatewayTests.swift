import ExampleSubnets
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MeshCodec
import MeshCrypto
@testable import MeshGateway
import MeshQuery
import MeshSockets
@testable import MeshSubnet
import MeshTestSupport
import Synchronization
import Testing

struct Twice: Synapse {
    static let name = "double"
    static let example: Twice? = Twice(x: 21)
    var x: Int
    struct Response: Codable, Sendable { var y: Int }
}

struct Count: StreamingSynapse {
    static let name = "count"
    static let example: Count? = Count(upTo: 3)
    var upTo: Int
    struct Response: Codable, Sendable { var i: Int }
}

/// Three miners on loopback axons and a fake node RPC that lists them in a metagraph, for a
/// gateway under test: the gateway's real HTTP server, dendrite and verification.
final class GatewayRig: @unchecked Sendable {
    // Safety: set up in init, then only read (stopping an axon is thread-safe).
    let gatewayKey = Ed25519.PrivateKey()
    let minerKeys = [Ed25519.PrivateKey(), Ed25519.PrivateKey(), Ed25519.PrivateKey()]
    let incentives = [0.5, 0.3, 0.2]
    var loops: [EventLoop] = []
    var axons: [Axon] = []
    var addresses: [MeshSockets.SocketAddress] = []
    var rpc: HostileHTTPServer!
    var task: Task<Void, any Error>?
    let port = UInt16.random(in: 40_000...49_000)
    let genesis = [UInt8](repeating: 3, count: 32)

    init() async throws {
        for (i, k) in self.minerKeys.enumerated() {
            let loop = try EventLoop(name: "test.gw.miner\(i)")
            let axon = Axon(hotkey: k, netuid: 1, genesisHash: self.genesis, loop: loop)
            let store = try Storage.ObjectStore(directory: TestPaths.temporaryDirectory("gw-miner\(i)"))
            let catalog = Catalog()
            catalog.add(Twice.self)
            catalog.add(Count.self)
            axon.attach(synapse: SynapseCatalog.synapseName) { _ in .body(try SynapseCoding.encodeJSON(catalog.snapshot())) }
            axon.attach(synapse: Twice.name, handler: Miner.handler(Twice.self) { r, _ in .init(y: r.x * 2) })
            axon.attach(synapse: Count.name, handler: Miner.streamHandler(Count.self) { r, _ in
                AsyncThrowingStream { c in
                    for i in 0..<min(r.upTo, 10) { c.yield(.init(i: i)) }
                    c.finish()
                }
            })
            axon.attach(synapse: Storage.Store.name, handler: Miner.handler(Storage.Store.self) { r, c in
                try Storage.answer(r, caller: c.hotkey.hex, store: store, cheat: false)
            })
            axon.attach(synapse: Storage.Retrieve.name, handler: Miner.handler(Storage.Retrieve.self) { r, c in
                try Storage.answer(r, caller: c.hotkey.hex, store: store)
            })
            axon.attach(synapse: Storage.Challenge.name, handler: Miner.handler(Storage.Challenge.self) { r, c in
                try Storage.answer(r, caller: c.hotkey.hex, store: store)
            })
            axon.updateDirectory([self.gatewayKey.publicKey: CallerInfo(uid: 0, stake: 1000, validatorPermit: true)])
            self.addresses.append(try await axon.start(listen: MeshSockets.SocketAddress("127.0.0.1:0")!))
            self.loops.append(loop)
            self.axons.append(axon)
        }
        let hotkeys = [self.gatewayKey.publicKey.hex] + self.minerKeys.map { $0.publicKey.hex }
        let axonsJSON = ["{}"] + self.minerKeys.indices.map { i in
            #"{"ip":"127.0.0.1","port":\#(self.addresses[i].port),"nodeId":"\#(self.minerKeys[i].publicKey.hex)"}"#
        }
        let incentive = ["0"] + self.incentives.map { String($0) }
        let list = { (xs: [String]) in "[" + xs.joined(separator: ",") + "]" }
        let metagraph = """
            {"netuid":1,"block":10,"n":4,"uids":[0,1,2,3],"hotkeys":\(list(hotkeys.map { "\"\($0)\"" })),"coldkeys":\(list(hotkeys.map { "\"\($0)\"" })),
            "S":[1000,0,0,0],"C":[0,0,0,0],"I":\(list(incentive)),"D":[0,0,0,0],"E":[0,0,0,0],"Tv":[0,0,0,0],"last_update":[0,0,0,0],
            "validator_permit":[true,false,false,false],"axons":\(list(axonsJSON))}
            """
        let genesisHex = Hex.encode(self.genesis)
        self.rpc = try HostileHTTPServer(rpc: { method, _ in
            switch method {
            case "chain_getHead": return #"{"number":10,"hash":"0x00"}"#
            case "chain_getGenesis": return "\"0x\(genesisHex)\""
            case "subnet_getMetagraph": return metagraph
            case "state_getAccount": return #"{"balance":1000000000000,"nonce":0,"stakes":[]}"#
            default: return nil
            }
        })
    }

    func start(keys: [APIKeys.Entry], stateDir: String) throws -> Gateway {
        var config = GatewayConfig(rpcURL: self.rpc.url, netuids: [1], storageNetuid: 1)
        config.listenPort = self.port
        config.topK = 2
        config.replication = 2
        config.timeoutSeconds = 5
        config.refreshSeconds = 0.5
        config.stateDirectory = stateDir
        config.organicSampleRate = 1
        config.repairSeconds = 0.3
        let g = try Gateway(config: config, keys: try APIKeys(keys), hotkey: self.gatewayKey, coldkey: Ed25519.PrivateKey(), log: { _ in })
        self.task = Task { try await g.run() }
        return g
    }

    func stop() {
        self.task?.cancel()
        for a in self.axons { a.stop() }
        for l in self.loops { l.shutdown() }
        self.rpc.stop()
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: self.body)) as? [String: Any] ?? [:] }
    }

    func http(_ method: String, _ path: String, key: String?, body: Data? = nil, accept: String? = nil) async throws -> Reply {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(self.port)\(path)")!)
        r.httpMethod = method
        r.httpBody = body
        r.timeoutInterval = 20
        if let key { r.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let accept { r.setValue(accept, forHTTPHeaderField: "Accept") }
        if body != nil { r.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: r)
        let h = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in h.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: h.statusCode, headers: headers, body: data)
    }
}

@Suite("Apps gateway (HTTP, keys, limits, routing, storage)", .serialized)
struct GatewayTests {
    @Test("keys, limits, routing to top miners with receipts, streaming, storage that survives a miner, metrics")
    func gateway() async throws {
        let rig = try await GatewayRig()
        defer { rig.stop() }
        let main = APIKeys.Entry(name: "app", key: "app-key-0123456789abcdef", ratePerSecond: 100, burst: 100)
        let tight = APIKeys.Entry(name: "tight", key: "tight-key-0123456789abcdef", ratePerSecond: 1, burst: 2)
        let validator = APIKeys.Entry(name: "val", key: "validator-key-0123456789", ratePerSecond: 100, burst: 100, organic: true)
        let stateDir = TestPaths.temporaryDirectory("gw-state")
        let g = try rig.start(keys: [main, tight, validator], stateDir: stateDir)
        // Wait until it serves and knows the metagraph.
        var ready = false
        for _ in 0..<100 {
            if let r = try? await rig.http("GET", "/v1/subnets", key: main.key), r.status == 200,
               let s = (r.json["subnets"] as? [[String: Any]])?.first, (s["topMiners"] as? [Any])?.count == 2 { ready = true; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(ready, "the gateway did not come up")

        // No key, a wrong key: 401 before any work.
        #expect(try await rig.http("POST", "/v1/subnets/1/double", key: nil, body: Data(#"{"x":1}"#.utf8)).status == 401)
        #expect(try await rig.http("POST", "/v1/subnets/1/double", key: "not-a-key-0123456789", body: Data(#"{"x":1}"#.utf8)).status == 401)

        // The listing: synapses with their example request, top miners by incentive.
        let list = try await rig.http("GET", "/v1/subnets", key: main.key)
        let subnet = try #require((list.json["subnets"] as? [[String: Any]])?.first)
        let synapses = try #require(subnet["synapses"] as? [[String: Any]])
        let double = try #require(synapses.first { $0["name"] as? String == "double" })
        #expect((double["example"] as? [String: Any])?["x"] as? Int == 21)
        #expect((subnet["topMiners"] as? [[String: Any]])?.first?["hotkey"] as? String == rig.minerKeys[0].publicKey.hex)

        // A query: answered, with the miners' hotkeys and verified receipts.
        let q = try await rig.http("POST", "/v1/subnets/1/double", key: main.key, body: Data(#"{"x":21}"#.utf8))
        #expect(q.status == 200, "\(String(decoding: q.body, as: UTF8.self))")
        #expect((q.json["answer"] as? [String: Any])?["y"] as? Int == 42)
        let miners = try #require(q.json["miners"] as? [[String: Any]])
        let answered = miners.filter { $0["status"] as? Int == 200 }
        #expect(!answered.isEmpty && answered.allSatisfy { ($0["receipt"] as? [String: Any])?["verified"] as? Bool == true }, "\(miners)")
        #expect(Set(miners.compactMap { $0["hotkey"] as? String }).isSubset(of: Set(rig.minerKeys.prefix(2).map { $0.publicKey.hex })))
        // Hostile input: not JSON, unknown synapse, internal synapse, other subnet, too large.
        #expect(try await rig.http("POST", "/v1/subnets/1/double", key: main.key, body: Data("{".utf8)).status == 400)
        #expect(try await rig.http("POST", "/v1/subnets/1/nope", key: main.key, body: Data("{}".utf8)).status == 404)
        #expect(try await rig.http("POST", "/v1/subnets/1/tm.synapses", key: main.key, body: Data("{}".utf8)).status == 404)
        #expect(try await rig.http("POST", "/v1/subnets/99999/double", key: main.key, body: Data("{}".utf8)).status == 404)
        #expect(try await rig.http("POST", "/v1/subnets/1/double", key: main.key, body: Data(count: (1 << 20) + 1)).status == 413)

        // Over the limit: 429 with Retry-After.
        var statuses: [Int] = []
        var retryAfter: String?
        for _ in 0..<4 {
            let r = try await rig.http("POST", "/v1/subnets/1/double", key: tight.key, body: Data(#"{"x":2}"#.utf8))
            statuses.append(r.status)
            if r.status == 429 { retryAfter = r.headers["retry-after"] }
        }
        #expect(statuses.prefix(2).allSatisfy { $0 == 200 } && statuses.last == 429, "\(statuses)")
        #expect(retryAfter.flatMap { Int($0) }.map { $0 >= 1 } == true)
        let usage = try await rig.http("GET", "/v1/usage", key: tight.key)
        #expect(usage.status == 429 || (usage.json["rateLimited"] as? Int ?? 0) >= 1)

        // A streaming synapse as server-sent events.
        let sse = try await rig.http("POST", "/v1/subnets/1/count", key: main.key, body: Data(#"{"upTo":3}"#.utf8), accept: "text/event-stream")
        let text = String(decoding: sse.body, as: UTF8.self)
        #expect(sse.status == 200 && sse.headers["content-type"]?.hasPrefix("text/event-stream") == true)
        #expect(text.contains(#"data: {"i":0}"#) && text.contains(#"data: {"i":2}"#) && text.contains("event: done"), "\(text)")

        // Storage: two replicas; the top holder dies; the object comes back intact.
        let object = Data((0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let put = try await rig.http("PUT", "/v1/storage/photo.jpg", key: main.key, body: object)
        #expect(put.status == 201 && put.json["replicas"] as? Int == 2, "\(String(decoding: put.body, as: UTF8.self))")
        #expect(put.json["root"] as? String == Storage.root(of: object))
        rig.axons[0].stop()
        let got = try await rig.http("GET", "/v1/storage/photo.jpg", key: main.key)
        #expect(got.status == 200 && got.body == object, "\(got.status) \(String(decoding: got.body.prefix(300), as: UTF8.self))")
        #expect(got.headers["x-tensormesh-miner"] == rig.minerKeys[1].publicKey.hex)
        // A streaming request whose top miner is gone falls back to the next one.
        let fallback = try await rig.http("POST", "/v1/subnets/1/count", key: main.key, body: Data(#"{"upTo":2}"#.utf8), accept: "text/event-stream")
        let fallbackText = String(decoding: fallback.body, as: UTF8.self)
        #expect(fallbackText.contains(#"data: {"i":1}"#) && fallbackText.contains(rig.minerKeys[1].publicKey.hex), "\(fallbackText)")
        #expect(fallbackText.contains(rig.minerKeys[0].publicKey.hex), "the done event lists the miner that failed: \(fallbackText)")
        // Repair: the dead holder fails its challenge and is dropped; the object is copied to the
        // next miner (proved by Merkle root), saved in the index; then the second holder dies too.
        let holders = { g.state.withLock { $0.objects.get(keyName: main.name, key: "photo.jpg")?.holders } ?? [] }
        // (The index file is written after the whole repair pass, a moment after the holders
        // change in memory: both are waited for.)
        let saved = { ObjectIndex.load(path: stateDir + "/objects.json").get(keyName: main.name, key: "photo.jpg")?.holders.contains(rig.minerKeys[2].publicKey.hex) == true }
        var repaired = false
        for _ in 0..<100 {
            if Set(holders()) == [rig.minerKeys[1].publicKey.hex, rig.minerKeys[2].publicKey.hex] && saved() { repaired = true; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(repaired, "holders \(holders()), saved \(saved())")
        rig.axons[1].stop()
        let again = try await rig.http("GET", "/v1/storage/photo.jpg", key: main.key)
        #expect(again.status == 200 && again.body == object && again.headers["x-tensormesh-miner"] == rig.minerKeys[2].publicKey.hex,
                "\(again.status) \(String(decoding: again.body.prefix(300), as: UTF8.self))")
        #expect(try await rig.http("GET", "/v1/storage/photo.jpg", key: validator.key).status == 404)  // another key's namespace
        #expect([400, 404].contains(try await rig.http("PUT", "/v1/storage/..%2Fetc", key: main.key, body: object).status))
        #expect(try await rig.http("PUT", "/v1/storage/a%20b", key: main.key, body: object).status == 400)

        // Organic queries for validators; metrics.
        #expect(try await rig.http("GET", "/v1/organic/1", key: main.key).status == 403)
        let feed = try OrganicFeed(gateway: "http://127.0.0.1:\(rig.port)", key: validator.key, netuid: 1)
        let sampled = try await feed.fetch()
        #expect(sampled.contains { $0.synapse == "double" && $0.answers.contains { $0.hotkey == rig.minerKeys[0].publicKey.hex || $0.hotkey == rig.minerKeys[1].publicKey.hex } },
                "\(sampled.map(\.synapse))")
        #expect(try await feed.fetch().isEmpty)  // drained on read
        let metrics = try await rig.http("GET", "/metrics", key: nil)
        let m = String(decoding: metrics.body, as: UTF8.self)
        #expect(m.contains("tensormesh_gateway_responses_total{route=\"subnets\",status=\"429\"}") && m.contains("key=\"tight\""), "\(m.prefix(2000))")
        #expect(m.contains("tensormesh_gateway_miner_query_seconds_bucket{le=\"+Inf\"}") && !m.contains("tensormesh_gateway_miner_query_seconds_count 0\n"), "\(m)")
        #expect(m.contains("tensormesh_gateway_storage_repairs_total{action=\"copied\"} 1\n"), "\(m)")
    }

    @Test("access control: bursts, refill, quotas with Retry-After; keys file checks")
    func access() throws {
        var a = AccessControl()
        let k = APIKeys.Entry(name: "k", key: "0123456789abcdef", ratePerSecond: 10, burst: 10, quota: 25, quotaWindowSeconds: 60)
        var t: UInt64 = 1_000_000
        for _ in 0..<10 { #expect(a.admit(k, now: t) == .admit) }
        guard case .limited(let after, _) = a.admit(k, now: t) else { Issue.record("11th request admitted"); return }
        #expect(after == 1)
        t += 1000
        for _ in 0..<10 { #expect(a.admit(k, now: t) == .admit) }
        t += 1000
        for _ in 0..<5 { #expect(a.admit(k, now: t) == .admit) }
        guard case .limited(let quotaAfter, let reason) = a.admit(k, now: t) else { Issue.record("quota not enforced"); return }
        #expect(reason.contains("quota") && quotaAfter == 58)
        #expect(a.admit(k, now: t + 60_000) == .admit)  // a new window
        #expect(throws: GatewayError.self) { try APIKeys([.init(name: "a", key: "short")]) }
        #expect(throws: GatewayError.self) { try APIKeys([.init(name: "a", key: "0123456789abcdef0"), .init(name: "a", key: "0123456789abcdef1")]) }
        #expect(throws: GatewayError.self) { try APIKeys([.init(name: "a", key: "0123456789abcdef0", ratePerSecond: .nan)]) }
        let keys = try APIKeys([k])
        #expect(keys.lookup("0123456789abcdef")?.name == "k" && keys.lookup("0123456789abcdeg") == nil)
        #expect(APIKeys.bearer("Bearer abc") == "abc" && APIKeys.bearer("bearer  abc ") == "abc" && APIKeys.bearer("Basic abc") == nil && APIKeys.bearer(nil) == nil)
    }

    @Test("answer policies: first, best by incentive, element-wise median or the most common answer")
    func combine() {
        let a = AnswerCombiner.Answer(uid: 1, incentive: 0.2, body: Array(#"{"prediction":[1,2]}"#.utf8), arrivedNs: 30)
        let b = AnswerCombiner.Answer(uid: 2, incentive: 0.5, body: Array(#"{"prediction":[3,4]}"#.utf8), arrivedNs: 20)
        let c = AnswerCombiner.Answer(uid: 3, incentive: 0.1, body: Array(#"{"prediction":[5,100]}"#.utf8), arrivedNs: 10)
        #expect(AnswerCombiner.combine([a, b, c], policy: .first)?.uids == [3])
        #expect(AnswerCombiner.combine([a, b, c], policy: .best)?.uids == [2])
        let agg = AnswerCombiner.combine([a, b, c], policy: .aggregate)
        #expect(agg.map { String(decoding: $0.body, as: UTF8.self) } == #"{"prediction":[3,4]}"#)
        let x = AnswerCombiner.Answer(uid: 4, incentive: 0.1, body: Array("yes".utf8), arrivedNs: 1)
        let y = AnswerCombiner.Answer(uid: 5, incentive: 0.1, body: Array("yes".utf8), arrivedNs: 2)
        let z = AnswerCombiner.Answer(uid: 6, incentive: 0.9, body: Array("no".utf8), arrivedNs: 3)
        #expect(AnswerCombiner.combine([x, y, z], policy: .aggregate)?.uids == [4, 5])
        #expect(AnswerCombiner.combine([], policy: .first) == nil)
    }
}
