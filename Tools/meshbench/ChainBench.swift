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
        @Option(help: "Seconds of the one-core verification rate.")
        var anchorSeconds: Double = 2
        @Option(help: "Anchor sampled after each batch of the verified import for this fraction of the batch's time.")
        var anchorShare: Double = 1
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
            /// The anchor, sampled between the batches of one import (`between`).
            struct Anchor {
                var signatures = 0.0
                var seconds = 0.0
                var slowest = Double.infinity
                var fastest = 0.0
                var rate: Double { self.signatures / max(self.seconds, 1e-9) }
            }
            /// Imports every block in sync-answer-sized batches; the seconds spent importing
            /// (`between` runs after each batch, outside the timing), the process's CPU
            /// seconds in them, and the store's size.
            func importAll(checkSignatures: Bool, pool: SignatureWorkerPool?, name: String,
                           between: ((Double) -> Void)? = nil) throws -> (seconds: Double, cpu: Double, bytes: Int) {
                let store = try SQLiteStore(path: dir + "/\(name).db")
                let chain = try ChainCore(spec: spec, store: store, checkSignatures: checkSignatures)
                chain.signatureVerifier = pool
                var seconds = 0.0
                var cpu = 0.0
                var i = 0
                while i < blocks.count {
                    let batch = Array(blocks[i..<min(blocks.count, i + self.batch)])
                    let start = DispatchTime.now().uptimeNanoseconds
                    let c0 = processCPUNanos()
                    chain.verifyAhead(batch)
                    // As the node imports a sync answer: `importBatch`, then what was handed
                    // ahead and not imported is dropped.
                    let r = chain.importBatch(batch, now: nil)
                    if let e = r.error { throw CommandFailure("block #\(batch[r.outcomes.count].number) failed: \(e)") }
                    chain.cancelVerifyAhead()
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    cpu += Double(processCPUNanos() - c0) / 1e9
                    seconds += elapsed
                    between?(elapsed)
                    i += batch.count
                }
                guard chain.best.number == UInt64(self.blocks) else { throw CommandFailure("import stopped at #\(chain.best.number)") }
                try store.checkpoint()
                let size = try store.sizeBytes()
                store.close()
                return (seconds, cpu, size)
            }
            // The anchor: Ed25519 verification (with the payload hash, as import does it) of these
            // transactions on every core by plain threads, with nothing else to do. On a shared
            // machine the cores' speed drifts within seconds, so it is sampled between the
            // verified import's batches, each sample as long as the batch before it: import
            // and anchor see the same conditions in equal measure. (The pool's threads sleep
            // while it runs.)
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let sample = blocks.prefix(64).flatMap(\.transactions)
            let pool = SignatureWorkerPool(workers: self.workers ?? SignatureWorkerPool.defaultWorkers)
            defer { pool.shutdown() }
            var anchor = Anchor()
            var anchorCPU = 0.0
            let verified = try importAll(checkSignatures: true, pool: pool, name: "verified") { elapsed in
                let seconds = max(0.05, elapsed * self.anchorShare)
                let ac0 = processCPUNanos()
                let (n, took) = Self.verify(sample, genesis: genesis, threads: cores, seconds: seconds)
                anchorCPU += Double(processCPUNanos() - ac0) / 1e9
                let rate = Double(n) / took
                anchor.signatures += Double(n)
                anchor.seconds += took
                anchor.slowest = min(anchor.slowest, rate)
                anchor.fastest = max(anchor.fastest, rate)
            }
            let stats = pool.statistics
            let (oneCoreCount, oneCoreSeconds) = Self.verify(sample, genesis: genesis, threads: 1, seconds: self.anchorSeconds)
            let oneCore = Double(oneCoreCount) / oneCoreSeconds
            let serialSeconds = try importAll(checkSignatures: true, pool: nil, name: "serial").seconds
            let trusted = try importAll(checkSignatures: false, pool: nil, name: "trusted")
            let (verifiedSeconds, trustedSeconds, importedBytes) = (verified.seconds, trusted.seconds, trusted.bytes)
            let anchorRate = anchor.rate
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
                    ("signaturesPerSecondAllCores", .double(anchorRate)), ("signaturesPerSecondAllCoresSlowestSample", .double(anchor.slowest)),
                    ("signaturesPerSecondAllCoresFastestSample", .double(anchor.fastest)), ("signaturesPerSecondOneCore", .double(oneCore)),
                    ("fractionOfAllCores", .double(importSignatures / anchorRate)),
                    ("verifiedImportCoresBusy", .double(verified.cpu / verified.seconds)), ("anchorCoresBusy", .double(anchorCPU / anchor.seconds)),
                    ("checksByWorkers", .int(stats.byWorkers)), ("checksByImporter", .int(stats.byWaiters)), ("checksOverflowed", .int(stats.overflowed)),
                    ("storeBytesPerBlock", .double(perBlock)), ("storeBytesPerTransaction", .double(perTx)), ("sourceStoreBytes", .int(sourceBytes)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("\(self.blocks) blocks × \(self.transactions) transfers, release build, \(cores) cores, \(pool.workers) signature workers, batches of \(self.batch)")
                StandardOutput.line("produce (execution + SQLite, signing excluded): \(fmt(Double(self.blocks) / produceSeconds, 0)) blocks/s")
                StandardOutput.line("anchor: Ed25519 verify on all \(cores) cores \(fmt(anchorRate, 0))/s (sampled between the batches: \(fmt(anchor.slowest, 0))–\(fmt(anchor.fastest, 0))/s); one core \(fmt(oneCore, 0))/s")
                StandardOutput.line("import, signatures verified on the pool:  \(fmt(verifiedRate, 0)) blocks/s = \(fmt(importSignatures, 0)) signatures/s = \(fmt(100 * importSignatures / anchorRate, 1)) % of all cores   target ≥ 85 %")
                StandardOutput.line("import, signatures verified on the importing thread only: \(fmt(serialRate, 0)) blocks/s")
                StandardOutput.line("import, trusted (own store): \(fmt(trustedRate, 0)) blocks/s")
                StandardOutput.line("cores busy (process CPU / wall): verified import \(fmt(verified.cpu / verified.seconds, 2)), anchor \(fmt(anchorCPU / anchor.seconds, 2))")
                StandardOutput.line("checks by workers \(stats.byWorkers), by the importer while waiting \(stats.byWaiters), not queued \(stats.overflowed)")
                StandardOutput.line("store: \(fmt(perBlock, 0)) bytes per block, \(fmt(perTx, 1)) bytes per transaction (after WAL checkpoint)")
            }
        }

        /// Signatures verified by `threads` plain threads over `sample` in about `seconds`, and
        /// the seconds it took.
        static func verify(_ sample: [Transaction], genesis: Hash32, threads: Int, seconds: Double) -> (Int, Double) {
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
            return (done.withLock { $0 }, elapsed)
        }
    }
}
