import Foundation
import MeshTestSupport
import Testing

/// Out-of-range options are usage errors (exit code 2) with a message naming the option,
/// never a trap; hostile node answers are errors or saturated sums, never a trap.
@Suite("CLI ranges", .serialized)
struct UsageRangeTests {
    func usage(_ tool: String, _ args: [String], mentions option: String) throws {
        let r = try ProcessRunner.run(tool, args)
        #expect(r.status == 2, "\(tool) \(args.joined(separator: " ")): exit \(r.status)\n\(r.stderr)")
        #expect(r.stderr.contains(option), "\(tool) \(args.joined(separator: " ")): \(r.stderr)")
    }

    @Test("tmsubnet validators: --timeout, --step-seconds, --sample and --history out of range are usage errors")
    func validatorOptions() throws {
        for t in ["inf", "nan", "1e11", "0", "-1"] {
            try self.usage("tmsubnet", ["minimal", "validator", "--timeout", t], mentions: "--timeout")
        }
        for t in ["inf", "nan", "-1"] { try self.usage("tmsubnet", ["predict", "validator", "--step-seconds", t], mentions: "--step-seconds") }
        try self.usage("tmsubnet", ["storage", "validator", "--sample", "-1"], mentions: "--sample")
        try self.usage("tmsubnet", ["predict", "validator", "--history", "-1"], mentions: "--history")
        try self.usage("tmsubnet", ["predict", "validator", "--history", "100000"], mentions: "--history")
        try self.usage("tmsubnet", ["storage", "miner", "--budget-mib", "-5"], mentions: "--budget-mib")
        try self.usage("tmsubnet", ["minimal", "validator", "--stake", "lots"], mentions: "--stake")
    }

    @Test("gateway, forwarding miner and predict evaluation: bad options are usage errors; a bad keys file is a runtime error")
    func gatewayAndMinerOptions() throws {
        let keys = TestPaths.temporaryDirectory() + "/keys.json"
        try Data(#"{"keys": [{"name": "a", "key": "short"}]}"#.utf8).write(to: URL(fileURLWithPath: keys))
        try self.usage("tensormesh", ["gateway", "--api-keys", keys], mentions: "--netuid")
        try self.usage("tensormesh", ["gateway", "--api-keys", keys, "--netuid", "1", "--listen", "nowhere"], mentions: "--listen")
        try self.usage("tensormesh", ["gateway", "--api-keys", keys, "--netuid", "1", "--top-k", "0"], mentions: "--top-k")
        try self.usage("tensormesh", ["gateway", "--api-keys", keys, "--netuid", "1", "--organic-sample", "2"], mentions: "--organic-sample")
        let bad = try ProcessRunner.run("tensormesh", ["gateway", "--api-keys", keys, "--netuid", "1"])
        #expect(bad.status == 1 && bad.stderr.contains("16 to 256"), "\(bad.status) \(bad.stderr)")
        try self.usage("tmsubnet", ["miner", "--forward-url", "https://x:1/", "--synapse", "s"], mentions: "http://")
        try self.usage("tmsubnet", ["miner", "--forward-url", "http://127.0.0.1:8000/f"], mentions: "--synapse")
        try self.usage("tmsubnet", ["miner", "--forward-url", "http://127.0.0.1:8000/f", "--synapse", "s", "--example", "{"], mentions: "--example")
        try self.usage("tmsubnet", ["miner", "--forward-url", "http://127.0.0.1:8000/f", "--synapse", "tm.synapses"], mentions: "--synapse")
        try self.usage("tmsubnet", ["predict", "miner", "--external-address", "not-an-ip"], mentions: "--external-address")
        try self.usage("tmsubnet", ["predict", "evaluate", "--epochs", "0"], mentions: "--epochs")
        try self.usage("tmsubnet", ["predict", "evaluate", "--alpha", "nan"], mentions: "--alpha")
        let eval = try ProcessRunner.run("tmsubnet", ["predict", "evaluate", "--epochs", "10", "--seeds", "2", "--json"])
        #expect(eval.status == 0 && eval.stdout.contains("\"share\"") && eval.stdout.contains("\"orderedEpochs\""), "\(eval.stderr)")
    }

    @Test("tensormesh: --base-port past 65535 for the last validator and --wait inf/nan/1e20 are usage errors")
    func tensormeshOptions() throws {
        let dir = TestPaths.temporaryDirectory()
        try self.usage("tensormesh", ["genesis", "new", "--base-port", "65500", "--validators", "64", "--out", dir, "--password-env", "TM_PW"],
                       mentions: "--base-port")
        let dest = String(repeating: "ab", count: 32)
        for w in ["inf", "nan", "1e20", "-1"] {
            try self.usage("tensormesh", ["transfer", "--dest", dest, "--amount", "1", "--wait", w], mentions: "--wait")
        }
        // A config file's typo is an error naming the key, not silently ignored.
        let cfg = TestPaths.temporaryDirectory() + "/node.json"
        try Data(#"{"outPeers": 4, "rpcExternall": true}"#.utf8).write(to: URL(fileURLWithPath: cfg))
        try self.usage("tensormesh", ["run", "--dev", "--base-path", TestPaths.temporaryDirectory(), "--config", cfg], mentions: "rpcExternall")
        #expect(try ProcessRunner.run("tensormesh", ["run", "--help"]).stdout.contains("--no-validator"))
        // A listen address is an address: a name is refused, never silently 0.0.0.0.
        try self.usage("tensormesh", ["run", "--dev", "--base-path", TestPaths.temporaryDirectory(), "--listen-addr", "example.org"],
                       mentions: "--listen-addr")
        // The last port that fits still works.
        let ok = try ProcessRunner.run("tensormesh", ["genesis", "new", "--base-port", "65532", "--validators", "4", "--out", dir,
                                                      "--password-env", "TM_PW", "--json"], environment: ["TM_PW": "pw"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains(":65535"))
    }

    @Test("tensormesh wallet balance and stake list against a hostile node: saturated sums and a clear error, no trap")
    func hostileNode() throws {
        let dir = TestPaths.temporaryDirectory()
        let env = ["TM_PW": "pw", "TENSORMESH_WALLETS": dir]
        let created = try ProcessRunner.run("tensormesh", ["wallet", "create", "--wallet", "w", "--password-env", "TM_PW", "--json"], environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any]
        let cold = try #require(info?["coldkey"] as? String)
        let max = "18446744073709551615"
        let stake = #"{"hotkey":"\#(String(repeating: "cd", count: 32))","netuid":1,"amount":\#(max),"coldkey":"\#(cold)"}"#
        let rich = try HostileHTTPServer(rpc: { method, _ in
            method == "state_getAccount" ? #"{"balance":\#(max),"nonce":0,"stakes":[\#(stake),\#(stake)]}"# : nil
        })
        defer { rich.stop() }
        let balance = try ProcessRunner.run("tensormesh", ["wallet", "balance", "--wallet", "w", "--rpc-url", rich.url, "--json"], environment: env)
        #expect(balance.status == 0, "\(balance.stderr)")
        let b = try JSONSerialization.jsonObject(with: Data(balance.stdout.utf8)) as? [String: Any]
        #expect((b?["total"] as? NSNumber)?.uint64Value == UInt64.max, "\(balance.stdout)")
        #expect((b?["staked"] as? NSNumber)?.uint64Value == UInt64.max, "\(balance.stdout)")

        let badNetuid = stake.replacingOccurrences(of: #""netuid":1"#, with: #""netuid":70000"#)
        let odd = try HostileHTTPServer(rpc: { method, _ in
            switch method {
            case "state_getAccount": return #"{"balance":1,"nonce":0,"stakes":[\#(badNetuid)]}"#
            case "subnet_getStake": return "[" + badNetuid.replacingOccurrences(of: #""amount""#, with: #""alpha""#) + "]"
            default: return nil
            }
        })
        defer { odd.stop() }
        let list = try ProcessRunner.run("tensormesh", ["stake", "list", "--wallet", "w", "--rpc-url", odd.url], environment: env)
        #expect(list.status == 1, "\(list.stderr)")
        #expect(list.stderr.contains("netuid 70000 is out of range"), "\(list.stderr)")
    }
}
