import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshStore

extension MeshBench {
    /// Sync between two node processes on loopback.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a chain of N small blocks into one node's store, start it and a fresh node pointed at it, and time the fresh node's sync end to end.")

        @Option(help: "Blocks in the chain.")
        var blocks: Int = 20_000
        @Option(help: "First p2p port.")
        var basePort: Int = 42000
        @Option(help: "Seconds to wait for the sync.")
        var timeout: Double = 300
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let dir = NSTemporaryDirectory() + "meshbench-sync-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir + "/a", withIntermediateDirectories: true)
            // MESHBENCH_KEEP=1 keeps the stores and the nodes' logs (printed at the end).
            let keep = ProcessInfo.processInfo.environment["MESHBENCH_KEEP"] != nil
            defer { if keep { StandardError.write("sync: kept \(dir)\n") } else { try? FileManager.default.removeItem(atPath: dir) } }
            let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            let tm = bin + "/tensormesh"
            guard FileManager.default.fileExists(atPath: tm) else { throw CommandFailure("build tensormesh first (swift build -c release --product tensormesh)") }
            let env = ["TM_BENCH_PW": "bench"]
            // A genesis far enough in the past that every block's slot has passed.
            let slotMs: UInt64 = 100
            let start = UInt64(Date().timeIntervalSince1970 * 1000) - UInt64(self.blocks + 50) * slotMs
            let g = try Relay.run(tm, ["genesis", "new", "--validators", "1", "--out", dir + "/spec", "--password-env", "TM_BENCH_PW",
                                       "--slot-ms", String(slotMs), "--timestamp", String(start), "--base-port", String(self.basePort)], env: env)
            guard g.0 == 0 else { throw CommandFailure("genesis failed: \(g.2)") }
            let spec = try ChainSpec.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/spec/chain-spec.json"))))
            let key = try KeyFile.open(try AtomicFile.read(dir + "/spec/validator-0.key", limit: KeyFile.maximumFileSize),
                                       password: SecureBytes(copying: Array("bench".utf8)))
            do {
                let store = try SQLiteStore(path: dir + "/a/chain.db")
                let chain = try ChainCore(spec: spec, store: store)
                var slot = start / slotMs
                for _ in 0..<self.blocks {
                    slot += 1
                    guard try chain.produce(slot: slot, timestamp: slot * slotMs, key: key, candidates: []) != nil else {
                        throw CommandFailure("could not produce at slot \(slot)")
                    }
                }
                try chain.finalize(chain.best.hash, justification: nil)
                store.close()
            }
            StandardError.write("sync: wrote \(self.blocks) blocks; starting two nodes…\n")
            var processes: [Process] = []
            defer {
                for p in processes where p.isRunning { p.terminate() }
                for p in processes { p.waitUntilExit() }
            }
            func launch(_ name: String, _ args: [String]) throws {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: tm)
                p.arguments = args
                let log = dir + "/\(name).log"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                p.standardOutput = FileHandle(forWritingAtPath: log)
                p.standardError = p.standardOutput
                try p.run()
                processes.append(p)
            }
            let rpcA = self.basePort + 1000, rpcB = self.basePort + 1001
            try launch("a", ["run", "--chain", dir + "/spec/chain-spec.json", "--base-path", dir + "/a", "--port", String(self.basePort),
                        "--listen-addr", "127.0.0.1", "--rpc-port", String(rpcA), "--prometheus-port", "0", "--log", "warn"])
            let a = try ChainClient(url: "http://127.0.0.1:\(rpcA)")
            guard try a.waitUntil(timeout: 120, interval: 0.2, { ((try? a.head()) ?? 0) >= UInt64(self.blocks) }) else {
                let log = (try? String(contentsOfFile: dir + "/a.log", encoding: .utf8)) ?? ""
                throw CommandFailure("the serving node did not load its chain: \(log.suffix(1500))")
            }
            let id = try a.rpc.call("system_nodeId").string ?? ""
            let t0 = Date()
            try launch("b", ["run", "--chain", dir + "/spec/chain-spec.json", "--base-path", dir + "/b", "--port", String(self.basePort + 1),
                        "--listen-addr", "127.0.0.1", "--rpc-port", String(rpcB), "--prometheus-port", "0", "--log", ProcessInfo.processInfo.environment["TM_BENCH_LOG"] ?? "warn",
                        "--bootnodes", "\(id)@127.0.0.1:\(self.basePort)"])
            let b = try ChainClient(url: "http://127.0.0.1:\(rpcB)")
            var connectedAt: Date?
            let done = try b.waitUntil(timeout: self.timeout, interval: 0.05) {
                if connectedAt == nil, ((try? b.rpc.call("system_health"))?["peers"]?.uint64 ?? 0) >= 1 { connectedAt = Date() }
                return ((try? b.head()) ?? 0) >= UInt64(self.blocks)
            }
            guard done else {
                let log = (try? String(contentsOfFile: dir + "/b.log", encoding: .utf8)) ?? ""
                throw CommandFailure("the fresh node did not sync within \(Int(self.timeout)) s (at #\((try? b.head()) ?? 0)): \(log.suffix(1500))")
            }
            let total = Date().timeIntervalSince(t0)
            let fromConnect = Date().timeIntervalSince(connectedAt ?? t0)
            let rate = Double(self.blocks) / fromConnect
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("blocks", .int(self.blocks)), ("secondsFromStart", .double(total)), ("secondsFromConnect", .double(fromConnect)),
                    ("blocksPerSecond", .double(rate)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("sync of \(self.blocks) empty blocks between two node processes on loopback")
                StandardOutput.line("from connection: \(fmt(fromConnect, 2)) s = \(fmt(rate, 0)) blocks/s   target ≥ 5,000 blocks/s")
                StandardOutput.line("from process start: \(fmt(total, 2)) s")
            }
        }
    }
}
