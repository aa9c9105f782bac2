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
        for w in ["val", "miner", "nominator", "owner"] {
            let r = try ProcessRunner.run("tensormesh", ["wallet", "create", "--wallet", w, "--hotkey", "default", "--password-env", "TM_PW", "--json"],
                                          environment: self.env)
            #expect(r.status == 0, "\(r.stderr)")
            cold[w] = self.object(r.stdout)["coldkey"] as? String
            hot[w] = self.object(r.stdout)["hotkeyPublic"] as? String
        }
        let p2p = freePort(), rpcPort = freePort()
        var g = ["genesis", "new", "--validators", "1", "--out", self.dir + "/spec", "--password-env", "TM_PW", "--slot-ms", "500",
                 "--subnets", "1", "--tempo", "6", "--weights-rate-limit", "1", "--base-port", String(p2p), "--json"]
        for (w, tao) in [("val", "1000"), ("miner", "100"), ("nominator", "1000"), ("owner", "1000")] { g += ["--endow", "\(cold[w]!):\(tao)"] }
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
        let nominatorStakes = { try chain.stakes(coldkey: AccountID(hex: cold["nominator"]!)!, netuid: 1).map(\.alpha) }
        let stakesBefore = try nominatorStakes()
        let head1 = try chain.head()
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
        #expect(try nominatorStakes() == stakesBefore, "nothing was staked")
        // Emission moves the pool every block: compared only when no block came in between.
        let pool2 = try chain.pool(netuid: 1)
        if try chain.head() == head1 { #expect(pool2 == pool1, "the pool did not move") }

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

        // The metagraph's stake columns: stake weight = alpha stake + tao_weight × root stake
        // (the validator has no root stake here, so the two are equal), in the SDK and the CLI.
        let valNeuron = try #require(try chain.metagraphInfo(netuid: 1).neurons.first { $0.hotkey == mgHot })
        #expect(valNeuron.alphaStake > 0 && valNeuron.rootStake == 0 && valNeuron.stake == valNeuron.alphaStake, "\(valNeuron)")
        r = try self.tm(["subnets", "metagraph", "--netuid", "1", "--rpc-url", url])
        #expect(r.status == 0 && r.stdout.contains("ALPHA STAKE") && r.stdout.contains("ROOT STAKE"), "\(r.stdout) \(r.stderr)")

        // A new subnet: locked into its pool, no staking and no emission before the owner's
        // start call; then an identity and a symbol.
        r = try self.tm(["subnets", "create", "--wallet", "owner", "--hotkey", "default", "--max-lock", "500"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        let netuid = try #require(try chain.rpc.call("subnet_list").array?.compactMap { $0["netuid"]?.uint64 }.max())
        #expect(netuid == 2)
        let created = try chain.pool(netuid: 2)
        #expect(!created.started && created.taoIn > 0 && created.symbol == "β", "\(created)")
        r = try self.tm(["stake", "add", "--netuid", "2", "--amount", "1", "--hotkey-address", hot["owner"]!, "--wallet", "nominator"] + rpc)
        #expect(r.status == 1 && r.stderr.contains("not been started") && r.stderr.contains("Nothing was submitted"), "\(r.status) \(r.stderr)")
        // Without the client's check (no limit), the chain refuses it.
        r = try self.tm(["stake", "add", "--netuid", "2", "--amount", "1", "--unsafe", "--hotkey-address", hot["owner"]!, "--wallet", "nominator"] + rpc)
        #expect(r.status == 1 && r.stderr.contains("SubtokenDisabled"), "\(r.status) \(r.stderr)")
        r = try self.tm(["subnets", "start", "--netuid", "2", "--wallet", "owner"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        r = try self.tm(["subnets", "identity", "--netuid", "2", "--name", "market", "--symbol", "γ", "--wallet", "owner"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        let started = try chain.pool(netuid: 2)
        #expect(started.started && started.symbol == "γ", "\(started)")
        #expect(try chain.rpc.call("subnet_list").array?.first { $0["netuid"]?.uint64 == 2 }?["name"]?.string == "market")
        r = try self.tm(["subnets", "price", "--rpc-url", url])
        #expect(r.status == 0 && r.stdout.contains("γ"), "\(r.stdout)")

        // Swap: 1 alpha of the nominator's stake on the validator goes from subnet 1 to 2
        // through both pools; subnet 1's price falls, subnet 2's rises.
        let p1 = try chain.pool(netuid: 1), p2 = try chain.pool(netuid: 2)
        r = try self.tm(["stake", "swap", "--origin-netuid", "1", "--destination-netuid", "2", "--amount", "1", "--hotkey-address", hot["val"]!,
                         "--tolerance", "0.5", "--wallet", "nominator"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        let nominatorKey = AccountID(hex: cold["nominator"]!)!
        #expect((try chain.stakes(coldkey: nominatorKey, netuid: 2).first?.alpha ?? 0) > 0, "the swap staked on subnet 2")
        #expect(try chain.pool(netuid: 1).priceFloat < p1.priceFloat && chain.pool(netuid: 2).priceFloat > p2.priceFloat)

        // Move within a subnet: the alpha changes hotkey as it is.
        r = try self.tm(["stake", "move", "--origin-netuid", "1", "--origin-hotkey", hot["val"]!, "--destination-hotkey", hot["miner"]!,
                         "--amount", "5", "--wallet", "nominator"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        let onMiner = try chain.stakes(coldkey: nominatorKey, hotkey: AccountID(hex: hot["miner"]!)!, netuid: 1).first?.alpha ?? 0
        #expect(onMiner + 2 >= 5 * Token.tao && onMiner <= 5 * Token.tao, "moved \(onMiner)")

        // Unstaking with too tight a tolerance is refused before submission; within it, the
        // TAO comes back to the balance.
        let bal0 = try chain.account(nominatorKey)
        r = try self.tm(["stake", "remove", "--netuid", "1", "--amount", "40", "--tolerance", "0.0001", "--hotkey-address", hot["val"]!,
                         "--wallet", "nominator"] + rpc)
        #expect(r.status == 1 && r.stderr.contains("would move the price") && r.stderr.contains("Nothing was submitted"), "\(r.stderr)")
        #expect(try chain.account(nominatorKey).nonce == bal0.nonce)
        r = try self.tm(["stake", "remove", "--netuid", "1", "--all", "--hotkey-address", hot["miner"]!, "--tolerance", "0.5", "--wallet", "nominator"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try chain.account(nominatorKey).balance > bal0.balance)
        #expect(try chain.stakes(coldkey: nominatorKey, hotkey: AccountID(hex: hot["miner"]!)!, netuid: 1).isEmpty)

        // Child hotkeys: the validator lends a quarter of its weight on subnet 1 to the miner's
        // hotkey (pending until the cooldown); a second change is rate-limited.
        r = try self.tm(["stake", "children", "set", "--netuid", "1", "--children", "\(hot["miner"]!):0.25", "--wallet", "val"] + rpc)
        #expect(r.status == 0, "\(r.stderr)")
        r = try self.tm(["stake", "children", "get", "--netuid", "1", "--wallet", "val", "--json", "--rpc-url", url])
        let children = self.object(r.stdout)
        let pending = (children["pending"] as? [String: Any])?["children"] as? [[String: Any]] ?? []
        #expect(pending.first?["hotkey"] as? String == hot["miner"] && abs((pending.first?["fraction"] as? Double ?? 0) - 0.25) < 1e-9, "\(r.stdout) \(r.stderr)")
        r = try self.tm(["stake", "children", "revoke", "--netuid", "1", "--wallet", "val"] + rpc)
        #expect(r.status == 1 && r.stderr.contains("TxRateLimitExceeded"), "\(r.status) \(r.stderr)")
    }
}
