import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshStore

extension MeshBench {
    /// Block import from disk into a fresh SQLite store, and the store's size per block.
    struct ChainImport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chain",
            abstract: "Produce N blocks of T transfers into a SQLite store, then import them from that store into a fresh one: blocks/s with signatures verified, and trusted (as a node replays its own store); bytes per block and per transaction.")

        @Option(help: "Blocks.")
        var blocks: Int = 1000
        @Option(help: "Transfers per block (one per sender account).")
        var transactions: Int = 100
        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let dir = NSTemporaryDirectory() + "meshbench-chain-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let validator = Ed25519.PrivateKey()
            let senders = (0..<self.transactions).map { _ in Ed25519.PrivateKey() }
            let receiver = Ed25519.PrivateKey().publicKey
            var p = ChainParams()
            p.slotDurationMs = 1000
            p.baseFee = 1000
            var spec = ChainSpec(name: "Bench", id: "bench", params: p)
            spec.genesisTimestamp = 1_000_000
            spec.balances = senders.map { ($0.publicKey, 1_000_000 * Token.tao) }
            spec.validators = [ChainSpec.Validator(hotkey: validator.publicKey, coldkey: validator.publicKey, stake: 100 * Token.tao)]

            // 1. Produce.
            let sourceStore = try SQLiteStore(path: dir + "/source.db")
            let source = try ChainCore(spec: spec, store: sourceStore)
            let genesis = source.context.genesis
            var signNanos: UInt64 = 0
            let t0 = DispatchTime.now().uptimeNanoseconds
            for b in 1...self.blocks {
                let s0 = DispatchTime.now().uptimeNanoseconds
                let txs = senders.map { k in
                    Transaction(signer: k, nonce: UInt64(b - 1), validUntil: UInt64(b + 10), fee: 1000, call: .transfer(to: receiver, amount: 1), genesis: genesis)
                }
                signNanos += DispatchTime.now().uptimeNanoseconds - s0
                let slot = UInt64(1000 + b)
                guard let block = try source.produce(slot: slot, timestamp: slot * 1000, key: validator, candidates: txs),
                      block.transactions.count == self.transactions else {
                    throw CommandFailure("block \(b) was not produced with every transaction")
                }
            }
            let produceSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0 - signNanos) / 1e9
            try sourceStore.checkpoint()
            let sourceBytes = try sourceStore.sizeBytes()

            // 2. Import from disk, verifying every signature, then trusted.
            func importAll(checkSignatures: Bool, name: String) throws -> (Double, Int) {
                let store = try SQLiteStore(path: dir + "/\(name).db")
                let chain = try ChainCore(spec: spec, store: store, checkSignatures: checkSignatures)
                let start = DispatchTime.now().uptimeNanoseconds
                for n in 1...UInt64(self.blocks) {
                    guard let block = try sourceStore.canonicalHash(n).flatMap({ try sourceStore.block($0) }) else {
                        throw CommandFailure("block #\(n) missing from the source store")
                    }
                    try chain.importBlock(block, now: nil)
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                guard chain.best.number == UInt64(self.blocks) else { throw CommandFailure("import stopped at #\(chain.best.number)") }
                try store.checkpoint()
                let size = try store.sizeBytes()
                store.close()
                return (seconds, size)
            }
            let (verifiedSeconds, _) = try importAll(checkSignatures: true, name: "verified")
            let (trustedSeconds, importedBytes) = try importAll(checkSignatures: false, name: "trusted")
            let verifiedRate = Double(self.blocks) / verifiedSeconds
            let trustedRate = Double(self.blocks) / trustedSeconds
            let perBlock = Double(importedBytes) / Double(self.blocks)
            let perTx = Double(importedBytes) / Double(self.blocks * max(1, self.transactions))
            let verifyRate = Double(self.blocks * self.transactions) / verifiedSeconds
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("blocks", .int(self.blocks)), ("transactionsPerBlock", .int(self.transactions)),
                    ("produceBlocksPerSecond", .double(Double(self.blocks) / produceSeconds)),
                    ("importVerifiedBlocksPerSecond", .double(verifiedRate)), ("importTrustedBlocksPerSecond", .double(trustedRate)),
                    ("storeBytesPerBlock", .double(perBlock)), ("storeBytesPerTransaction", .double(perTx)), ("sourceStoreBytes", .int(sourceBytes)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("\(self.blocks) blocks × \(self.transactions) transfers (release build, one core)")
                StandardOutput.line("produce (execution + SQLite, signing excluded): \(fmt(Double(self.blocks) / produceSeconds, 0)) blocks/s")
                StandardOutput.line("import from disk, signatures verified:  \(fmt(verifiedRate, 0)) blocks/s (\(fmt(verifyRate, 0)) tx/s)   target ≥ 2,000 blocks/s")
                StandardOutput.line("import from disk, trusted (own store):   \(fmt(trustedRate, 0)) blocks/s")
                StandardOutput.line("store: \(fmt(perBlock, 0)) bytes per block, \(fmt(perTx, 1)) bytes per transaction (after WAL checkpoint)")
            }
        }
    }
}
