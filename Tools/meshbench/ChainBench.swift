import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshNode
import MeshStore
import Synchronization

extension MeshBench {
    /// Block import from disk into a fresh SQLite store, and the store's size per block.
    struct ChainImport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chain",
            abstract: "Produce N blocks of T transfers into a SQLite store, then import them into a fresh one: blocks/s with signatures verified on the node's worker pool, on the importing thread alone, and trusted (as a node replays its own store); beside the Ed25519 verification rate of all cores measured in the same run; bytes per block and per transaction.")

        @Option(help: "Blocks.")
        var blocks: Int = 1000
        @Option(help: "Transfers per block (one per sender account).")
        var transactions: Int = 100
        @Option(help: "Blocks handed to the signature workers at once (a sync answer).")
        var batch: Int = 128
        @Option(help: "Signature worker threads (default: one per core).")
        var workers: Int?
        @Option(help: "Seconds for each measurement of the verification anchor.")
        var anchorSeconds: Double = 2
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

            // 2. Import from disk: read in sync-answer-sized batches, signatures verified on the
            //    node's worker pool (as `tensormesh run` syncs), on the importing thread alone,
            //    then trusted (as a node replays its own store).
            var blocks: [Block] = []
            blocks.reserveCapacity(self.blocks)
            for n in 1...UInt64(self.blocks) {
                guard let block = try sourceStore.canonicalHash(n).flatMap({ try sourceStore.block($0) }) else {
                    throw CommandFailure("block #\(n) missing from the source store")
                }
                blocks.append(block)
            }
            func importAll(checkSignatures: Bool, pool: SignatureWorkerPool?, name: String) throws -> (Double, Int) {
                let store = try SQLiteStore(path: dir + "/\(name).db")
                let chain = try ChainCore(spec: spec, store: store, checkSignatures: checkSignatures)
                chain.signatureVerifier = pool
                let start = DispatchTime.now().uptimeNanoseconds
                var i = 0
                while i < blocks.count {
                    let batch = Array(blocks[i..<min(blocks.count, i + self.batch)])
                    chain.verifyAhead(batch)
                    // As the node imports a sync answer: one store transaction for the batch.
                    let r = chain.importBatch(batch, now: nil)
                    if let e = r.error { throw CommandFailure("block #\(batch[r.outcomes.count].number) failed: \(e)") }
                    chain.cancelVerifyAhead()
                    i += batch.count
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                guard chain.best.number == UInt64(self.blocks) else { throw CommandFailure("import stopped at #\(chain.best.number)") }
                try store.checkpoint()
                let size = try store.sizeBytes()
                store.close()
                return (seconds, size)
            }
            // The anchor: Ed25519 verification (with the payload hash, as import does it) of these
            // transactions on every core by plain threads, with nothing else to do; before and
            // after the imports, averaged.
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let sample = blocks.prefix(64).flatMap(\.transactions)
            // Measured right before and right after the verified import, so that a change of
            // load on a shared machine between the two measurements shows in both alike.
            let anchorBefore = Self.verifyRate(sample, genesis: genesis, threads: cores, seconds: self.anchorSeconds)
            let pool = SignatureWorkerPool(workers: self.workers ?? cores)
            defer { pool.shutdown() }
            let (verifiedSeconds, _) = try importAll(checkSignatures: true, pool: pool, name: "verified")
            let stats = pool.statistics
            let anchorAfter = Self.verifyRate(sample, genesis: genesis, threads: cores, seconds: self.anchorSeconds)
            let oneCore = Self.verifyRate(sample, genesis: genesis, threads: 1, seconds: self.anchorSeconds)
            let (serialSeconds, _) = try importAll(checkSignatures: true, pool: nil, name: "serial")
            let (trustedSeconds, importedBytes) = try importAll(checkSignatures: false, pool: nil, name: "trusted")
            let anchor = (anchorBefore + anchorAfter) / 2
            let verifiedRate = Double(self.blocks) / verifiedSeconds
            let serialRate = Double(self.blocks) / serialSeconds
            let trustedRate = Double(self.blocks) / trustedSeconds
            let perBlock = Double(importedBytes) / Double(self.blocks)
            let perTx = Double(importedBytes) / Double(self.blocks * max(1, self.transactions))
            // Signatures checked per block: every transaction's and the producer's.
            let signaturesPerBlock = Double(self.transactions + 1)
            let importSignatures = verifiedRate * signaturesPerBlock
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("blocks", .int(self.blocks)), ("transactionsPerBlock", .int(self.transactions)), ("cores", .int(cores)),
                    ("workers", .int(pool.workers)), ("batch", .int(self.batch)),
                    ("produceBlocksPerSecond", .double(Double(self.blocks) / produceSeconds)),
                    ("verifiedBlocksPerSecond", .double(verifiedRate)), ("serialVerifiedBlocksPerSecond", .double(serialRate)),
                    ("trustedBlocksPerSecond", .double(trustedRate)),
                    ("importSignaturesPerSecond", .double(importSignatures)),
                    ("signaturesPerSecondAllCores", .double(anchor)), ("signaturesPerSecondAllCoresBefore", .double(anchorBefore)),
                    ("signaturesPerSecondAllCoresAfter", .double(anchorAfter)), ("signaturesPerSecondOneCore", .double(oneCore)),
                    ("fractionOfAllCores", .double(importSignatures / anchor)),
                    ("checksByWorkers", .int(stats.byWorkers)), ("checksByImporter", .int(stats.byWaiters)), ("checksOverflowed", .int(stats.overflowed)),
                    ("storeBytesPerBlock", .double(perBlock)), ("storeBytesPerTransaction", .double(perTx)), ("sourceStoreBytes", .int(sourceBytes)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("\(self.blocks) blocks × \(self.transactions) transfers, release build, \(cores) cores, \(pool.workers) signature workers, batches of \(self.batch)")
                StandardOutput.line("produce (execution + SQLite, signing excluded): \(fmt(Double(self.blocks) / produceSeconds, 0)) blocks/s")
                StandardOutput.line("anchor: Ed25519 verify on all \(cores) cores \(fmt(anchor, 0))/s (before \(fmt(anchorBefore, 0)), after \(fmt(anchorAfter, 0))); one core \(fmt(oneCore, 0))/s")
                StandardOutput.line("import, signatures verified on the pool:  \(fmt(verifiedRate, 0)) blocks/s = \(fmt(importSignatures, 0)) signatures/s = \(fmt(100 * importSignatures / anchor, 1)) % of all cores   target ≥ 85 %")
                StandardOutput.line("import, signatures verified on the importing thread only: \(fmt(serialRate, 0)) blocks/s")
                StandardOutput.line("import, trusted (own store): \(fmt(trustedRate, 0)) blocks/s")
                StandardOutput.line("checks by workers \(stats.byWorkers), by the importer while waiting \(stats.byWaiters), not queued \(stats.overflowed)")
                StandardOutput.line("store: \(fmt(perBlock, 0)) bytes per block, \(fmt(perTx, 1)) bytes per transaction (after WAL checkpoint)")
            }
        }

        /// Signatures verified per second by `threads` plain threads over `sample`, for about
        /// `seconds`.
        static func verifyRate(_ sample: [Transaction], genesis: Hash32, threads: Int, seconds: Double) -> Double {
            let done = Mutex<Int>(0)
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
            let start = DispatchTime.now().uptimeNanoseconds
            let group = DispatchGroup()
            for t in 0..<threads {
                group.enter()
                let th = Thread {
                    var n = 0
                    var i = t
                    while DispatchTime.now().uptimeNanoseconds < deadline {
                        for _ in 0..<16 {
                            if !sample[i % sample.count].verifySignature(genesis: genesis) { fatalError("a produced signature does not verify") }
                            i += 1
                            n += 1
                        }
                    }
                    done.withLock { $0 += n }
                    group.leave()
                }
                th.start()
            }
            group.wait()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return Double(done.withLock { $0 }) / elapsed
        }
    }
}
