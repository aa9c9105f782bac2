import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore

extension MeshBench {
    /// Block propagation across many node processes on loopback.
    struct Relay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start N node processes on loopback (one validator, N-1 full nodes found through discovery); measure how fast blocks reach all of them and the bytes per node.")

        @Option(help: "Node processes.")
        var nodes: Int = 32
        @Option(help: "Blocks to measure.")
        var blocks: Int = 20
        @Option(help: "Transfers submitted per block (0: empty blocks).")
        var transactions: Int = 100
        @Option(help: "Slot length in ms.")
        var slotMs: Int = 1000
        @Option(help: "First p2p port.")
        var basePort: Int = 41000
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let dir = NSTemporaryDirectory() + "meshbench-relay-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            let tm = bin + "/tensormesh"
            guard FileManager.default.fileExists(atPath: tm) else { throw CommandFailure("build tensormesh first (swift build -c release --product tensormesh)") }
            let env = ["TM_BENCH_PW": "bench"]
            let g = try Self.run(tm, ["genesis", "new", "--validators", "1", "--out", dir + "/spec", "--password-env", "TM_BENCH_PW",
                                      "--slot-ms", String(self.slotMs), "--base-port", String(self.basePort), "--json"], env: env)
            guard g.0 == 0 else { throw CommandFailure("genesis failed: \(g.2)") }
            var processes: [Process] = []
            defer {
                for p in processes where p.isRunning { p.terminate() }
                for p in processes { p.waitUntilExit() }
            }
            var rpcPorts: [Int] = []
            for i in 0..<self.nodes {
                let rpc = self.basePort + 1000 + i
                rpcPorts.append(rpc)
                var args = ["run", "--chain", dir + "/spec/chain-spec.json", "--base-path", dir + "/n\(i)", "--port", String(self.basePort + i),
                            "--listen-addr", "127.0.0.1", "--rpc-port", String(rpc), "--prometheus-port", "0", "--log", "warn",
                            "--out-peers", "8"]
                if i == 0 { args += ["--key", dir + "/spec/validator-0.key", "--password-env", "TM_BENCH_PW", "--validator"] }
                let p = Process()
                p.executableURL = URL(fileURLWithPath: tm)
                p.arguments = args
                var e = ProcessInfo.processInfo.environment
                for (k, v) in env { e[k] = v }
                p.environment = e
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try p.run()
                processes.append(p)
            }
            let clients = try rpcPorts.map { try ChainClient(url: "http://127.0.0.1:\($0)") }
            StandardError.write("relay: \(self.nodes) nodes starting…\n")
            let connected = try clients[0].waitUntil(timeout: 120, interval: 1) {
                clients.allSatisfy { ((try? $0.rpc.call("system_health"))?["peers"]?.uint64 ?? 0) >= 2 }
            }
            guard connected else { throw CommandFailure("the nodes did not connect within 120 s") }
            // Transactions from the sudo account make the blocks carry data.
            let pw = SecureBytes(copying: Array("bench".utf8))
            let sudo = try KeyFile.open(try AtomicFile.read(dir + "/spec/sudo.key", limit: KeyFile.maximumFileSize), password: pw)
            let genesis = try clients[0].genesis()
            let fee = try clients[0].baseFee()
            // One account cannot carry many transactions per block (the mempool bounds the
            // nonce gap per account), so the load is spread over funded sender accounts.
            let senderCount = max(1, min(64, (self.transactions + 4) / 5))
            let senders = (0..<senderCount).map { _ in Ed25519.PrivateKey() }
            if self.transactions > 0 {
                var sudoNonce = try clients[0].account(sudo.publicKey).nonce
                let head = try clients[0].head()
                for s in senders {
                    let tx = Transaction(signer: sudo, nonce: sudoNonce, validUntil: head + 64, fee: fee,
                                         call: .transfer(to: s.publicKey, amount: 1000 * Token.tao), genesis: genesis)
                    sudoNonce += 1
                    _ = try clients[0].rpc.call("author_submitTransaction", .array([.string(Hex.encode(tx.encoded))]))
                }
                let funded = try clients[0].waitUntil(timeout: 60, interval: 0.5) {
                    try senders.allSatisfy { try clients[0].account($0.publicKey).balance > 0 }
                }
                guard funded else { throw CommandFailure("the sender accounts were not funded within 60 s") }
            }
            var nonces = [UInt64](repeating: 0, count: senderCount)
            let net0 = try clients.map { try $0.rpc.call("system_networkState") }
            let started = Date()
            let first = try clients[0].head() + 2
            let last = first + UInt64(self.blocks) - 1
            var sizes: [Int] = []
            var submitted = 0
            while try clients[0].head() < last {
                if self.transactions > 0 {
                    let head = try clients[0].head()
                    for i in 0..<self.transactions {
                        let s = i % senderCount
                        let to = Ed25519.PrivateKey().publicKey
                        let tx = Transaction(signer: senders[s], nonce: nonces[s], validUntil: head + 64, fee: fee,
                                             call: .transfer(to: to, amount: Token.tao), genesis: genesis)
                        nonces[s] += 1
                        // Spread submissions over all nodes: transactions travel by gossip.
                        if (try? clients[(submitted + 1) % clients.count].rpc.call("author_submitTransaction", .array([.string(Hex.encode(tx.encoded))]))) != nil {
                            submitted += 1
                        }
                    }
                }
                try await Task.sleep(nanoseconds: UInt64(Double(self.slotMs) * 0.8e6))
            }
            try await Task.sleep(nanoseconds: 3_000_000_000)
            let elapsed = Date().timeIntervalSince(started)
            var delays: [Double] = []
            var complete = 0
            for n in first...last {
                guard let b = try? clients[0].rpc.call("chain_getBlock", .object([("number", .int(n))])), let hash = b["hash"]?.string,
                      let t0 = b["importedAtMs"]?.uint64 else { continue }
                sizes.append((b["transactions"]?.array?.count ?? 0))
                var reached = 0
                for c in clients.dropFirst() {
                    if let r = try? c.rpc.call("chain_getBlock", .object([("hash", .string(hash))])), let t = r["importedAtMs"]?.uint64 {
                        delays.append(Double(Int64(t) - Int64(t0)))
                        reached += 1
                    }
                }
                if reached == clients.count - 1 { complete += 1 }
            }
            let net1 = try clients.map { try $0.rpc.call("system_networkState") }
            var perNode: [Double] = []
            for (a, b) in zip(net0, net1) {
                let bytes = (b["bytesIn"]?.uint64 ?? 0) + (b["bytesOut"]?.uint64 ?? 0) - (a["bytesIn"]?.uint64 ?? 0) - (a["bytesOut"]?.uint64 ?? 0)
                perNode.append(Double(bytes) / elapsed)
            }
            delays.sort()
            let p50 = delays.isEmpty ? 0 : delays[delays.count / 2]
            let p99 = delays.isEmpty ? 0 : delays[min(delays.count - 1, delays.count * 99 / 100)]
            let meanTx = sizes.isEmpty ? 0 : Double(sizes.reduce(0, +)) / Double(sizes.count)
            let bytesMean = perNode.reduce(0, +) / Double(max(1, perNode.count))
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("nodes", .int(self.nodes)), ("blocks", .int(last - first + 1)), ("blocksReachingAll", .int(complete)),
                    ("meanTransactionsPerBlock", .double(meanTx)), ("delayP50Ms", .double(p50)), ("delayP99Ms", .double(p99)),
                    ("bytesPerNodePerSecond", .double(bytesMean)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("\(self.nodes) node processes, \(last - first + 1) blocks (\(fmt(meanTx, 1)) transactions each, \(submitted) submitted over all nodes): \(complete) reached every node")
                StandardOutput.line("import delay after the producer: p50 \(fmt(p50, 1)) ms, p99 \(fmt(p99, 1)) ms")
                StandardOutput.line("traffic per node: \(fmt(bytesMean / 1024, 1)) KiB/s in+out")
            }
        }

        static func run(_ exe: String, _ args: [String], env: [String: String]) throws -> (Int32, String, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
            var e = ProcessInfo.processInfo.environment
            for (k, v) in env { e[k] = v }
            p.environment = e
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let r = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: r, as: UTF8.self))
        }
    }
}
