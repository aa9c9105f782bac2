import Foundation
import MeshChain
import MeshClient
import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

/// Dynamic TAO and delegation through the real processes: a node, and the btcli-like
/// commands a user runs. A nominator on another coldkey stakes on a validator's hotkey and
/// earns after the epochs, in proportion to its stake, minus the validator's take; a stake with
/// too tight a tolerance is refused with the price it would reach, and nothing is submitted.
@Suite("Token economics end to end (processes)", .serialized)
struct EconomicsEndToEndTests {
    let dir = TestPaths.temporaryDirectory()
    var env: [String: String] { ["TM_PW": "pw", "TENSORMESH_WALLETS": self.dir + "/wallets"] }

    func tm(_ args: [String]) throws -> ProcessResult {
        try ProcessRunner.run("tensormesh", args + (args.contains("--wallet") ? ["--password-env", "TM_PW"] : []), environment: self.env)
    }

    func object(_ s: String) -> [String: Any] { (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] ?? [:] }

    @Test("a nominator earns its share of a validator's dividends minus the take; tolerance refusals submit nothing; pools, stakes and issuance over RPC")
    func nominatorEarns() async throws {
        var cold: [String: String] = [:], hot: [String: String] = [:]
        for w in ["val", "miner", "nominator"] {
            let r = try ProcessRunner.run("tensormesh", ["wallet", "create", "--wallet", w, "--hotkey", "default", "--password-env", "TM_PW", "--json"],
                                          environment: self.env)
            #expect(r.status == 0, "\(r.stderr)")
            cold[w] = self.object(r.stdout)["coldkey"] as? String
            hot[w] = self.object(r.stdout)["hotkeyPublic"] as? String
        }
        let p2p = freePort(), rpcPort = freePort()
        var g = ["genesis", "new", "--validators", "1", "--out", self.dir + "/spec", "--password-env", "TM_PW", "--slot-ms", "500",
                 "--subnets", "1", "--tempo", "6", "--weights-rate-limit", "1", "--base-port", String(p2p), "--json"]
        for (w, tao) in [("val", "1000"), ("miner", "100"), ("nominator", "1000")] { g += ["--endow", "\(cold[w]!):\(tao)"] }
        let gen = try ProcessRunner.run("tensormesh", g, environment: self.env)
        #expect(gen.status == 0, "\(gen.stderr)")
        let node = try BackgroundProcess("tensormesh", ["run", "--chain", self.dir + "/spec/chain-spec.json", "--key", self.dir + "/spec/validator-0.key",
                                                        "--password-env", "TM_PW", "--validator", "--base-path", self.dir + "/node", "--port", String(p2p),
                                                        "--listen-addr", "127.0.0.1", "--rpc-port", String(rpcPort), "--prometheus-port", "0"],
                                         environment: self.env, log: self.dir + "/node.log")
        defer { node.stop() }
        let url = "http://127.0.0.1:\(rpcPort)"
        let chain = try ChainClient(url: url)
        #expect(try chain.waitUntil(timeout: 60) { try chain.head() >= 2 }, "node did not start: \(node.output.suffix(2000))")
        let rpc = ["--rpc-url", url, "--yes"]

        for w in ["val", "miner"] {
            let r = try self.tm(["subnets", "register", "--netuid", "1", "--wallet", w, "--hotkey", "default", "--max-burn", "10"] + rpc)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let issuance0 = try chain.totalIssuance()
        let pool0 = try chain.pool(netuid: 1)
        #expect(pool0.symbol == "α" && pool0.taoIn >= 1000 * Token.tao && pool0.started)
        let raw = try chain.rpc.call("subnet_getPool", .array([.int(1)]))
        for field in ["netuid", "taoIn", "alphaIn", "alphaOut", "price", "taoFlowEma", "symbol"] { #expect(raw[field] != nil, "subnet_getPool lacks \(field)") }

        var r = try self.tm(["stake", "add", "--netuid", "1", "--amount", "300", "--tolerance", "0.8", "--wallet", "val", "--hotkey", "default", "--json"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")

        // Too tight a tolerance: refused before submission, with the price it would reach.
        let before = try chain.account(AccountID(hex: cold["nominator"]!)!)
        let pool1 = try chain.pool(netuid: 1)
        #expect(pool1.priceFloat > pool0.priceFloat, "staking raised the price")
        r = try self.tm(["stake", "add", "--netuid", "1", "--amount", "100", "--tolerance", "0.001", "--hotkey-address", hot["val"]!,
                         "--wallet", "nominator", "--hotkey", "default"] + rpc)
        #expect(r.status == 1)
        #expect(r.stderr.contains("would move the price") && r.stderr.contains("Nothing was submitted"), "\(r.stderr)")
        let quote = try chain.quote(netuid: 1, kind: "stake", amount: 100 * Token.tao)
        #expect(r.stderr.contains(try #require(quote["priceAfter"]?.string)), "the refusal names the price it would reach: \(r.stderr)")
        let after = try chain.account(AccountID(hex: cold["nominator"]!)!)
        #expect(after.nonce == before.nonce && after.balance == before.balance, "nothing changed")
        #expect(try chain.pool(netuid: 1) == pool1, "the pool did not move")

        // Within tolerance: staked on the validator's hotkey.
        r = try self.tm(["stake", "add", "--netuid", "1", "--amount", "100", "--tolerance", "0.5", "--hotkey-address", hot["val"]!,
                         "--wallet", "nominator", "--hotkey", "default"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try chain.pool(netuid: 1).priceFloat > pool1.priceFloat)

        // The validator gets a permit at the next epoch, then weights the miner.
        let mgHot = AccountID(hex: hot["val"]!)!
        #expect(try chain.waitUntil(timeout: 60) { try chain.metagraphInfo(netuid: 1).neurons.first { $0.hotkey == mgHot }?.validatorPermit == true })
        let minerUid = try #require(try chain.metagraphInfo(netuid: 1).neurons.first { $0.hotkey.hex == hot["miner"] }?.uid)
        r = try self.tm(["transfer", "--dest", hot["val"]!, "--amount", "1", "--wallet", "val"] + rpc)  // the hotkey pays its fees
        #expect(r.status == 0, "\(r.stderr)")
        r = try self.tm(["weights", "set", "--netuid", "1", "--uids", String(minerUid), "--weights", "1", "--wallet", "val", "--hotkey", "default"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")

        // Across two epochs with dividends: the nominator's gain is its share of the pool's gain
        // after the take.
        func stakes() throws -> (nominator: UInt64, own: UInt64, epochs: UInt64) {
            let all = try chain.stakes(hotkey: mgHot, netuid: 1)
            let epochs = try chain.subnet(netuid: 1)?.epochs ?? 0
            return (all.first { $0.coldkey == cold["nominator"] }?.alpha ?? 0, all.first { $0.coldkey == cold["val"] }?.alpha ?? 0, epochs)
        }
        var s0 = try stakes()
        _ = try chain.waitUntil(timeout: 60) { try stakes().epochs >= s0.epochs + 1 }
        s0 = try stakes()
        _ = try chain.waitUntil(timeout: 60) { try stakes().epochs >= s0.epochs + 2 }
        let s1 = try stakes()
        let gainN = Double(s1.nominator) - Double(s0.nominator), gainO = Double(s1.own) - Double(s0.own)
        #expect(gainN > 0, "the nominator earned nothing: \(s0) → \(s1)")
        let take = Double(try chain.rpc.call("delegate_getInfo", .array([.string(hot["val"]!)]))["take"]?.uint64 ?? 0) / 65535
        let expected = (gainN + gainO) * (1 - take) * Double(s0.nominator) / Double(s0.nominator + s0.own)
        #expect(abs(gainN - expected) <= expected * 0.02 + 2, "nominator gained \(gainN), expected ≈ \(expected) (take \(take))")
        let earned = try chain.stakes(coldkey: AccountID(hex: cold["nominator"]!)!, netuid: 1).first?.earned ?? 0
        #expect(earned > 0, "subnet_getStake reports the nominator's earnings")

        // stake list shows alpha, value and earnings; issuance grew by emission only.
        r = try self.tm(["stake", "list", "--wallet", "nominator", "--json", "--rpc-url", url])
        let list = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
        #expect(list.first?["earned"] as? Int ?? 0 > 0 && list.first?["taoValue"] as? Int ?? 0 > 0, "\(r.stdout) \(r.stderr)")
        let issuance1 = try chain.totalIssuance()
        #expect(issuance1 > issuance0)
        r = try self.tm(["subnets", "price", "--json", "--rpc-url", url])
        #expect(r.status == 0 && r.stdout.contains("\"price\""), "\(r.stderr)")
    }
}
