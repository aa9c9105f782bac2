import Foundation
import MeshTestSupport
import Testing

/// `tensormesh coinbase --scenario FILE`: the offline emission run through the real state
/// machine, printed as JSON.
@Suite("Coinbase command")
struct CoinbaseCommandTests {
    func object(_ s: String) -> [String: Any] { (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] ?? [:] }

    func write(_ text: String) throws -> String {
        let path = TestPaths.temporaryDirectory() + "/scenario.json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("the example scenario: deterministic JSON; emission follows the inflow; epochs pay the nominators; nothing refused")
    func exampleScenario() throws {
        let path = TestPaths.repositoryRoot + "/Bootstrap/scenarios/coinbase.json"
        let a = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", path])
        #expect(a.status == 0, "\(a.stderr)")
        let b = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", path, "--json"])
        #expect(a.stdout == b.stdout, "two runs of one scenario print the same JSON")
        let out = self.object(a.stdout)
        #expect((out["refused"] as? [Any])?.isEmpty == true, "\(out["refused"] ?? "")")
        let issued = out["issued"] as? Int ?? 0
        // 120 blocks of at most 1 TAO each.
        #expect(issued > 0 && issued <= 120 * 1_000_000_000, "issued \(issued)")
        let subnets = out["subnets"] as? [[String: Any]] ?? []
        #expect(subnets.count == 2)
        // The whale's net inflow on subnet 1 earns it the larger TAO reserve growth.
        let tao1 = subnets.first { $0["netuid"] as? Int == 1 }?["taoIn"] as? Int ?? 0
        let tao2 = subnets.first { $0["netuid"] as? Int == 2 }?["taoIn"] as? Int ?? 0
        #expect(tao1 > 1_000_000_000_000 + 200_000_000_000 - 50_000_000_000 && tao2 >= 500_000_000_000, "\(tao1) \(tao2)")
        // Each nominator earned on its validator.
        for s in subnets {
            let nominator = (s["stakes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "nominator" }
            #expect((nominator?["earned"] as? Int ?? 0) > 0, "nominator on subnet \(s["netuid"] ?? "?"): \(nominator ?? [:])")
        }
        #expect((out["epochs"] as? [Any])?.isEmpty == false)
    }

    @Test("per-block report: each block issues at most the block emission and shares add up to one")
    func perBlock() throws {
        let path = try self.write("""
            {"blocks": 12, "report": "blocks", "root": {"stake": 1000000000000},
             "subnets": [{"netuid": 1, "poolTao": 1000000000000, "tempo": 5, "neurons": [{"name": "v", "stake": 10000000000}]},
                         {"netuid": 3, "poolTao": 100000000000, "tempo": 5, "neurons": [{"name": "w", "stake": 30000000000}]}]}
            """)
        let r = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", path, "--pretty"])
        #expect(r.status == 0, "\(r.stderr)")
        let blocks = self.object(r.stdout)["perBlock"] as? [[String: Any]] ?? []
        #expect(blocks.count == 12)
        var sum = 0
        for b in blocks {
            let issued = b["issued"] as? Int ?? -1
            #expect(issued >= 0 && issued <= 1_000_000_000)
            sum += issued
            let subnets = b["subnets"] as? [[String: Any]] ?? []
            let shares = subnets.compactMap { Double($0["share"] as? String ?? "") }.reduce(0, +)
            if !subnets.isEmpty { #expect(shares == 0 || abs(shares - 1) < 1e-9, "shares \(shares)") }
        }
        #expect(sum == self.object(r.stdout)["issued"] as? Int)
    }

    @Test("malformed scenarios are usage errors naming the field")
    func malformed() throws {
        for (text, field) in [("{", "not JSON"), (#"{"blocks": 0, "subnets": [{"netuid": 1}]}"#, "blocks"),
                              (#"{"blocks": 5, "subnets": []}"#, "subnets"),
                              (#"{"blocks": 5, "subnets": [{"netuid": 0}]}"#, "netuid"),
                              (#"{"blocks": 5, "subnets": [{"netuid": 1, "tempo": 0}]}"#, "tempo"),
                              (#"{"blocks": 5, "params": {"flowNormExponent": 9}, "subnets": [{"netuid": 1}]}"#, "flowNormExponent"),
                              (#"{"blocks": 5, "subnets": [{"netuid": 1, "nominators": [{"name": "n", "on": "x", "stake": 1}]}]}"#, "on"),
                              (#"{"blocks": 5, "subnets": [{"netuid": 1}], "flows": [{"block": 1, "netuid": 1, "by": "a"}]}"#, "flows[0]")] {
            let r = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", try self.write(text)])
            #expect(r.status == 2 && r.stderr.contains(field), "\(text): exit \(r.status) \(r.stderr)")
        }
        let missing = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", "/nonexistent/scenario.json"])
        #expect(missing.status == 1 && missing.stderr.contains("cannot read"), "\(missing.stderr)")
    }

    @Test("hostile amounts: a pool or stake near 2^64 and huge flows are refused or saturated, never a trap")
    func hostileAmounts() throws {
        let path = try self.write("""
            {"blocks": 6, "root": {"stake": 18446744073709551615},
             "subnets": [{"netuid": 1, "poolTao": 18446744073709551615, "tempo": 2, "neurons": [{"name": "v", "stake": 18446744073709551615}],
                          "nominators": [{"name": "n", "on": "v", "stake": 0}]}],
             "flows": [{"block": 3, "netuid": 1, "by": "w", "stake": 18446744073709551615}, {"block": 4, "netuid": 1, "by": "w", "unstake": 18446744073709551615}]}
            """)
        let r = try ProcessRunner.run("tensormesh", ["coinbase", "--scenario", path])
        #expect(r.status == 0 || r.status == 1 || r.status == 2, "\(r.status)")
        #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
    }
}
