import MeshChain
import MeshCodec
import MeshCrypto
@testable import MeshNode
import Testing

/// Block import with the node's signature workers: the same blocks import, and the same bad
/// block fails with the same error at the same index, as on the importing thread alone.
@Suite("Signature worker pool")
struct SignatureWorkerPoolTests {
    /// A one-validator chain's spec, its key and its funded senders.
    struct Fixture {
        let spec: ChainSpec
        let validator: Ed25519.PrivateKey
        let senders: [Ed25519.PrivateKey]

        init(senders n: Int = 8) {
            self.validator = Ed25519.PrivateKey()
            self.senders = (0..<n).map { _ in Ed25519.PrivateKey() }
            var p = ChainParams()
            p.slotDurationMs = 1000
            p.baseFee = 1000
            var spec = ChainSpec(name: "Pool", id: "pool", params: p)
            spec.genesisTimestamp = 1_000_000
            spec.balances = self.senders.map { ($0.publicKey, 1_000 * Token.tao) }
            spec.validators = [ChainSpec.Validator(hotkey: self.validator.publicKey, coldkey: self.validator.publicKey, stake: 100 * Token.tao)]
            self.spec = spec
        }

        /// `count` blocks, each with one transfer from every sender.
        func blocks(_ count: Int) throws -> [Block] {
            let chain = try ChainCore(spec: self.spec, store: MemoryStore())
            let to = Ed25519.PrivateKey().publicKey
            return try (1...count).map { b in
                let txs = self.senders.map {
                    Transaction(signer: $0, nonce: UInt64(b - 1), validUntil: UInt64(b + 10), fee: 1000, call: .transfer(to: to, amount: 1),
                                genesis: chain.genesisHash)
                }
                let slot = UInt64(1000 + b)
                return try #require(try chain.produce(slot: slot, timestamp: slot * 1000, key: self.validator, candidates: txs))
            }
        }

        /// `block` with transaction `index`'s signature replaced by another message's
        /// (header re-signed, so only that signature is wrong).
        func forging(_ block: Block, transaction index: Int) -> Block {
            var b = block
            b.transactions[index].signature = self.senders[0].sign([7, 7, 7])
            b.header.transactionsRoot = Block.transactionsRoot(b.transactions)
            b.header.sign(with: self.validator)
            return b
        }

        /// Imports `blocks` in batches as the node's sync does; the error that stopped it, if any.
        func importAll(_ blocks: [Block], into chain: ChainCore, batch: Int = 3) -> BlockError? {
            var i = 0
            defer { chain.cancelVerifyAhead() }
            while i < blocks.count {
                let part = Array(blocks[i..<min(blocks.count, i + batch)])
                chain.verifyAhead(part)
                for b in part {
                    do { try chain.importBlock(b, now: nil) } catch { return error }
                }
                i += part.count
            }
            return nil
        }
    }

    /// A verifier that reports every signature valid without looking.
    final class Credulous: BlockSignatureVerifier, @unchecked Sendable {
        final class Ticket: SignatureTicket, @unchecked Sendable {
            let found: VerifiedSignatures
            init(_ found: VerifiedSignatures) { self.found = found }
            func wait() -> VerifiedSignatures { self.found }
            func cancel() {}
        }

        func submit(_ blocks: [Block], genesis: Hash32, skipping: Set<Hash32>) -> [any SignatureTicket] {
            blocks.map { Ticket(VerifiedSignatures(header: true, transactions: Set($0.transactions.map(\.hash)))) }
        }
    }

    /// A verifier that reports every transaction valid by index (as the pool does), for the
    /// body it was given, or for another body under the same header (`otherBody`).
    final class CredulousByIndex: BlockSignatureVerifier, @unchecked Sendable {
        let otherBody: ((Block) -> [Transaction])?
        init(otherBody: ((Block) -> [Transaction])? = nil) { self.otherBody = otherBody }

        func submit(_ blocks: [Block], genesis: Hash32, skipping: Set<Hash32>) -> [any SignatureTicket] {
            blocks.map { b in
                Credulous.Ticket(VerifiedSignatures(header: true, transactionsByIndex: Array(repeating: true, count: b.transactions.count),
                                                    indexedTransactions: self.otherBody?(b) ?? b.transactions))
            }
        }
    }

    @Test("verdicts by index count only for the body they were given: another body under the same header is verified in full")
    func indicesPinTheBody() throws {
        let f = Fixture()
        var blocks = try f.blocks(2)
        blocks[1] = f.forging(blocks[1], transaction: 2)
        // Verdicts for this very body are taken as they are (the forgery gets in: the checks
        // were skipped).
        let credulous = try ChainCore(spec: f.spec, store: MemoryStore())
        credulous.signatureVerifier = CredulousByIndex()
        #expect(f.importAll(blocks, into: credulous) == nil)
        // Verdicts about another body (here the forged transaction re-signed, as a peer could
        // send first) are not applied to the body imported.
        let otherBody = CredulousByIndex { b in
            var txs = b.transactions
            txs[min(2, txs.count - 1)].signature = f.senders[0].sign([1, 2, 3])
            return txs
        }
        let careful = try ChainCore(spec: f.spec, store: MemoryStore())
        careful.signatureVerifier = otherBody
        #expect(f.importAll(blocks, into: careful) == .invalidTransaction(index: 2, .badSignature))
        // The check itself: the same body (same storage or equal), or nothing.
        let body = blocks[1].transactions
        let found = VerifiedSignatures(transactionsByIndex: Array(repeating: true, count: body.count), indexedTransactions: body)
        #expect(found.indices(for: body) == Array(repeating: true, count: body.count))
        #expect(found.indices(for: body.map { $0 }) == Array(repeating: true, count: body.count))
        var changed = body
        changed[0].nonce &+= 1
        #expect(found.indices(for: changed).isEmpty)
        #expect(found.indices(for: Array(body.dropLast())).isEmpty)
    }

    @Test("a forged transaction signature fails the same block at the same index with and without the pool")
    func sameFailure() throws {
        let f = Fixture()
        let honest = try f.blocks(7)
        var blocks = honest
        blocks[4] = f.forging(blocks[4], transaction: 5)
        let pool = SignatureWorkerPool(workers: 2)
        defer { pool.shutdown() }
        let pooled = try ChainCore(spec: f.spec, store: MemoryStore())
        pooled.signatureVerifier = pool
        let serial = try ChainCore(spec: f.spec, store: MemoryStore())
        let pooledError = f.importAll(blocks, into: pooled)
        let serialError = f.importAll(blocks, into: serial)
        #expect(serialError == .invalidTransaction(index: 5, .badSignature))
        #expect(pooledError == serialError)
        #expect(pooled.best == serial.best)
        #expect(pooled.best.number == 4)
        let stats = pool.statistics
        #expect(stats.byWorkers + stats.byWaiters > 0)
        #expect(stats.overflowed == 0)
        // The honest block then imports on the pool too.
        #expect(f.importAll(Array(honest[4...]), into: pooled) == nil)
        #expect(pooled.best.number == 7)
    }

    @Test("a sync-sized batch on the pool: runs stored while later blocks are checked, the same outcomes and the same first failure as without it")
    func batchOnThePool() throws {
        let f = Fixture(senders: 4)
        let n = 2 * ChainCore.overlappedRunBlocks + 6
        let honest = try f.blocks(n)
        // A forged signature in the third run: the two runs before it are stored by then.
        let bad = 2 * ChainCore.overlappedRunBlocks + 2
        var blocks = honest
        blocks[bad] = f.forging(blocks[bad], transaction: 3)
        let pool = SignatureWorkerPool(workers: 2)
        defer { pool.shutdown() }
        let pooled = try ChainCore(spec: f.spec, store: MemoryStore())
        pooled.signatureVerifier = pool
        let serial = try ChainCore(spec: f.spec, store: MemoryStore())
        pooled.verifyAhead(blocks)
        let p = pooled.importBatch(blocks, now: nil)
        pooled.cancelVerifyAhead()
        let s = serial.importBatch(blocks, now: nil)
        #expect(s.error == .invalidTransaction(index: 3, .badSignature))
        #expect(p.error == s.error)
        #expect(p.outcomes == s.outcomes)
        #expect(p.outcomes.count == bad)
        #expect(pooled.best == serial.best)
        for b in blocks[..<bad] { #expect(try pooled.store.hasBlock(b.hash) && pooled.canonicalHash(b.number) == b.hash) }
        #expect(!pooled.contains(blocks[bad].hash))
        #expect(pool.statistics.byWorkers + pool.statistics.byWaiters > 0)
        // Nothing of the failed batch stays handed ahead; the honest blocks then import.
        pooled.verifyAhead(Array(honest[bad...]))
        let rest = pooled.importBatch(Array(honest[bad...]), now: nil)
        pooled.cancelVerifyAhead()
        #expect(rest.error == nil && rest.outcomes.count == n - bad)
        #expect(pooled.best.number == UInt64(n))
    }

    @Test("a forged producer signature is refused alike, alone or handed ahead")
    func forgedHeader() throws {
        let f = Fixture()
        var blocks = try f.blocks(3)
        blocks[1].header.signature = f.senders[1].sign(blocks[1].hash.bytes)
        let pool = SignatureWorkerPool(workers: 2)
        defer { pool.shutdown() }
        for batch in [1, 3] {
            let pooled = try ChainCore(spec: f.spec, store: MemoryStore())
            pooled.signatureVerifier = pool
            #expect(f.importAll(blocks, into: pooled, batch: batch) == .badProducerSignature)
            #expect(pooled.best.number == 1)
        }
    }

    @Test("what the verifier found valid is not verified again; the rest is")
    func skipsVerified() throws {
        let f = Fixture()
        var blocks = try f.blocks(2)
        blocks[1] = f.forging(blocks[1], transaction: 2)
        // A verifier's verdict is taken as it is: a (lying) one that calls everything valid
        // lets the forged block in, which shows the import skipped those checks.
        let credulous = try ChainCore(spec: f.spec, store: MemoryStore())
        credulous.signatureVerifier = Credulous()
        #expect(f.importAll(blocks, into: credulous) == nil)
        // A full queue leaves checks to the importer, which still finds the forgery.
        let pool = SignatureWorkerPool(workers: 1, maxQueued: 3)
        defer { pool.shutdown() }
        let bounded = try ChainCore(spec: f.spec, store: MemoryStore())
        bounded.signatureVerifier = pool
        #expect(f.importAll(blocks, into: bounded, batch: 2) == .invalidTransaction(index: 2, .badSignature))
        #expect(pool.statistics.overflowed > 0)
    }

    @Test("after shutdown the pool checks nothing and import verifies on its own thread")
    func shutdown() throws {
        let f = Fixture()
        var blocks = try f.blocks(3)
        blocks[2] = f.forging(blocks[2], transaction: 7)
        let pool = SignatureWorkerPool(workers: 2)
        pool.shutdown()
        let tickets = pool.submit(blocks, genesis: Hash32.of([1]), skipping: [])
        #expect(tickets.map { $0.wait() }.allSatisfy { !$0.header && $0.transactions.isEmpty && !$0.transactionsByIndex.contains(true) })
        let chain = try ChainCore(spec: f.spec, store: MemoryStore())
        chain.signatureVerifier = pool
        #expect(f.importAll(blocks, into: chain) == .invalidTransaction(index: 7, .badSignature))
        #expect(chain.best.number == 2)
        #expect(pool.statistics.byWorkers + pool.statistics.byWaiters == 0)
    }
}
