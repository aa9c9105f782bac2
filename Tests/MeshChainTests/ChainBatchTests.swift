import MeshChain
import MeshCodec
import MeshCrypto
import MeshStore
import MeshTestSupport
import Testing

/// A SQLite store whose `putBlock` fails once a countdown reaches zero (a full disk, an I/O
/// error), so that a failure in the middle of a batch's transaction goes through the real
/// rollback.
final class FailingStore: BlockStore {
    let inner: SQLiteStore
    /// Successful `putBlock` calls left before one throws; nil: never.
    var putsBeforeFailure: Int?
    /// Store transactions begun.
    var transactions = 0

    struct Injected: Error {}

    init(_ inner: SQLiteStore) { self.inner = inner }

    func putBlock(_ block: Block) throws {
        if let n = self.putsBeforeFailure {
            if n == 0 { throw Injected() }
            self.putsBeforeFailure = n - 1
        }
        try self.inner.putBlock(block)
    }
    func block(_ hash: Hash32) throws -> Block? { try self.inner.block(hash) }
    func hasBlock(_ hash: Hash32) throws -> Bool { try self.inner.hasBlock(hash) }
    func header(_ hash: Hash32) throws -> BlockHeader? { try self.inner.header(hash) }
    func canonicalHash(_ number: UInt64) throws -> Hash32? { try self.inner.canonicalHash(number) }
    func setCanonical(fromNumber: UInt64, hashes: [Hash32], tip: UInt64) throws {
        try self.inner.setCanonical(fromNumber: fromNumber, hashes: hashes, tip: tip)
    }
    func setFinalized(_ ref: ChainPointer, justification: [UInt8]?) throws { try self.inner.setFinalized(ref, justification: justification) }
    func finalized() throws -> ChainPointer? { try self.inner.finalized() }
    func justification(_ number: UInt64) throws -> [UInt8]? { try self.inner.justification(number) }
    func justifiedNumbers(from: UInt64, limit: Int) throws -> [UInt64] { try self.inner.justifiedNumbers(from: from, limit: limit) }
    func putState(_ ref: ChainPointer, state: [UInt8]) throws { try self.inner.putState(ref, state: state) }
    func latestState() throws -> (ChainPointer, [UInt8])? { try self.inner.latestState() }
    func putMeta(_ key: String, _ value: [UInt8], durable: Bool) throws { try self.inner.putMeta(key, value, durable: durable) }
    func meta(_ key: String) throws -> [UInt8]? { try self.inner.meta(key) }
    func transaction<T>(_ body: () throws -> T) throws -> T {
        self.transactions += 1
        return try self.inner.transaction(body)
    }
}

/// An honest verifier that checks a block's signatures when its ticket is waited for, on the
/// waiting thread: enough for `ChainCore` to hold tickets of blocks handed ahead.
final class CheckingVerifier: BlockSignatureVerifier, @unchecked Sendable {
    final class Ticket: SignatureTicket, @unchecked Sendable {
        let block: Block
        let genesis: Hash32
        init(_ block: Block, _ genesis: Hash32) {
            self.block = block
            self.genesis = genesis
        }
        func wait() -> VerifiedSignatures {
            VerifiedSignatures(header: self.block.header.hasValidSignature,
                               transactions: Set(self.block.transactions.filter { $0.verifySignature(genesis: self.genesis) }.map(\.hash)))
        }
        func cancel() {}
    }

    func submit(_ blocks: [Block], genesis: Hash32, skipping: Set<Hash32>) -> [any SignatureTicket] {
        blocks.map { Ticket($0, genesis) }
    }
}

@Suite("Chain batch import")
struct ChainBatchTests {
    /// `n` blocks with a transfer each, produced on a fresh dev chain.
    static func produced(_ n: Int, seed: UInt64 = 1) throws -> [Block] {
        let a = try DevChain(seed: seed)
        return try (0..<n).map { i in try a.produce([a.tx(a.accounts[i % 8], .transfer(to: a.accounts[(i + 1) % 8].publicKey, amount: 5))]) }
    }

    @Test("a batch imports as one-by-one import does: same outcomes, best, stored chain and state")
    func sameAsOneByOne() throws {
        let blocks = try Self.produced(24)
        let one = try DevChain()
        let oneOutcomes = try blocks.map { try one.core.importBlock($0, now: nil) }
        let store = try SQLiteStore(path: TestPaths.temporaryDirectory("chain-batch") + "/chain.db")
        let batched = try DevChain(store: store)
        let r = batched.core.importBatch(blocks, now: nil)
        #expect(r.error == nil)
        #expect(r.outcomes == oneOutcomes)
        #expect(batched.core.best == one.core.best)
        #expect(batched.core.importedCount == 24)
        for b in blocks { #expect(try store.canonicalHash(b.number) == b.hash && store.hasBlock(b.hash)) }
        var s1 = one.core.bestState
        var s2 = batched.core.bestState
        #expect(s1.stateRoot() == s2.stateRoot())
        // Known blocks are known again, without error.
        let again = batched.core.importBatch(Array(blocks.prefix(3)), now: nil)
        #expect(again.error == nil && again.outcomes == [.alreadyKnown, .alreadyKnown, .alreadyKnown])
        // Reopened, the store gives the same chain.
        store.close()
        let reopened = try DevChain(store: try SQLiteStore(path: store.path))
        #expect(reopened.core.best == one.core.best)
    }

    @Test("a batch stops at the first invalid block: the blocks before it are stored and in the tree, none after")
    func stopsAtInvalid() throws {
        var blocks = try Self.produced(12)
        blocks[7].header.timestamp += 1  // breaks the slot/timestamp rule (and the signature)
        let store = try SQLiteStore(path: TestPaths.temporaryDirectory("chain-batch") + "/chain.db")
        let c = try DevChain(store: store)
        let r = c.core.importBatch(blocks, now: nil)
        #expect(r.outcomes.count == 7)
        #expect(r.error != nil && r.error?.isLocal == false)
        #expect(c.core.best == ChainPointer(number: 7, hash: blocks[6].hash))
        #expect(try store.canonicalHash(7) == blocks[6].hash)
        #expect(try store.canonicalHash(8) == nil)
        #expect(!c.core.contains(blocks[7].hash) && !c.core.contains(blocks[8].hash))
        // A block whose parent is unknown stops the batch the same way.
        let orphan = c.core.importBatch(Array(blocks[9...]), now: nil)
        #expect(orphan.outcomes.isEmpty && orphan.error == .unknownParent(blocks[8].hash))
    }

    @Test("a store failure in the middle of a batch leaves store and tree without any of it; a retry imports it all")
    func storeFailureMidBatch() throws {
        let blocks = try Self.produced(16)
        let path = TestPaths.temporaryDirectory("chain-batch") + "/chain.db"
        let store = FailingStore(try SQLiteStore(path: path))
        let c = try DevChain(store: store)
        // The first four blocks land.
        #expect(c.core.importBatch(Array(blocks.prefix(4)), now: nil).outcomes.count == 4)
        let before = c.core.best
        // The next run fails at its sixth block write: the transaction is rolled back whole.
        store.putsBeforeFailure = 5
        let r = c.core.importBatch(Array(blocks[4...]), now: nil)
        #expect(r.outcomes.isEmpty)
        #expect(r.error?.isLocal == true)
        #expect(c.core.best == before)
        #expect(c.core.importedCount == 4)
        for b in blocks[4...] {
            #expect(!c.core.contains(b.hash))
            #expect(c.core.state(at: b.hash) == nil)
        }
        #expect(try store.canonicalHash(5) == nil)
        // A restart on the same database finds the chain as it stood.
        let restarted = try DevChain(store: try SQLiteStore(path: path))
        #expect(restarted.core.best == before)
        // Once the store works again, the same batch imports whole.
        store.putsBeforeFailure = nil
        let retry = c.core.importBatch(Array(blocks[4...]), now: nil)
        #expect(retry.error == nil && retry.outcomes.count == 12)
        #expect(c.core.best == ChainPointer(number: 16, hash: blocks[15].hash))
        #expect(try store.canonicalHash(16) == blocks[15].hash)
    }

    @Test("with signatures handed ahead, a long batch is stored in runs while later blocks are checked; the result is the same")
    func runsWhileVerifyingAhead() throws {
        let n = 2 * ChainCore.overlappedRunBlocks + 5
        let blocks = try Self.produced(n)
        let one = try DevChain()
        let oneOutcomes = try blocks.map { try one.core.importBlock($0, now: nil) }
        let path = TestPaths.temporaryDirectory("chain-batch") + "/chain.db"
        let store = FailingStore(try SQLiteStore(path: path))
        let c = try DevChain(store: store)
        c.core.signatureVerifier = CheckingVerifier()
        let opened = store.transactions  // genesis
        c.core.verifyAhead(blocks)
        let r = c.core.importBatch(blocks, now: nil)
        c.core.cancelVerifyAhead()
        #expect(r.error == nil)
        #expect(r.outcomes == oneOutcomes)
        #expect(c.core.best == one.core.best)
        var s1 = one.core.bestState
        var s2 = c.core.bestState
        #expect(s1.stateRoot() == s2.stateRoot())
        // Three runs: two full ones while later blocks were handed ahead, then the rest.
        #expect(store.transactions - opened == 3)
        for b in blocks { #expect(try store.canonicalHash(b.number) == b.hash) }
        // Without blocks handed ahead, one transaction for the batch, as before.
        let plainStore = FailingStore(try SQLiteStore(path: TestPaths.temporaryDirectory("chain-batch") + "/plain.db"))
        let plain = try DevChain(store: plainStore)
        plain.core.signatureVerifier = CheckingVerifier()
        let plainOpened = plainStore.transactions
        #expect(plain.core.importBatch(blocks, now: nil).outcomes == oneOutcomes)
        #expect(plainStore.transactions - plainOpened == 1)
    }

    @Test("a store failure in a later run keeps the runs stored before it and nothing of its own")
    func storeFailureInLaterRun() throws {
        let run = ChainCore.overlappedRunBlocks
        let blocks = try Self.produced(2 * run + 4)
        let path = TestPaths.temporaryDirectory("chain-batch") + "/chain.db"
        let store = FailingStore(try SQLiteStore(path: path))
        let c = try DevChain(store: store)
        c.core.signatureVerifier = CheckingVerifier()
        // The second run's third block write fails.
        store.putsBeforeFailure = run + 2
        c.core.verifyAhead(blocks)
        let r = c.core.importBatch(blocks, now: nil)
        c.core.cancelVerifyAhead()
        #expect(r.outcomes.count == run)
        #expect(r.error?.isLocal == true)
        #expect(c.core.best == ChainPointer(number: UInt64(run), hash: blocks[run - 1].hash))
        #expect(try store.canonicalHash(UInt64(run)) == blocks[run - 1].hash)
        #expect(try store.canonicalHash(UInt64(run + 1)) == nil)
        for b in blocks[run...] { #expect(!c.core.contains(b.hash)) }
        let restarted = try DevChain(store: try SQLiteStore(path: path))
        #expect(restarted.core.best == c.core.best)
        store.putsBeforeFailure = nil
        let retry = c.core.importBatch(Array(blocks[run...]), now: nil)
        #expect(retry.error == nil && retry.outcomes.count == run + 4)
    }

    @Test("a batch on a fork reports the reorganisation as one-by-one import does, and rewrites the canonical index")
    func forkReorg() throws {
        let x = try DevChain()
        let shared = try (0..<2).map { _ in try x.produce() }
        let ours = try (0..<3).map { _ in try x.produce() }
        // Another chain from the same two blocks, longer, its blocks carrying a transfer.
        let y = try DevChain()
        for b in shared { try y.core.importBlock(b, now: nil) }
        let theirs = try (0..<5).map { i in try y.produce([y.tx(y.accounts[i], .transfer(to: y.accounts[7].publicKey, amount: 1))]) }
        #expect(theirs[0].hash != ours[0].hash)

        let one = try DevChain()
        let batched = try DevChain(store: try SQLiteStore(path: TestPaths.temporaryDirectory("chain-batch") + "/chain.db"))
        for b in shared + ours {
            try one.core.importBlock(b, now: nil)
            try batched.core.importBlock(b, now: nil)
        }
        let oneOutcomes = try theirs.map { try one.core.importBlock($0, now: nil) }
        let r = batched.core.importBatch(theirs, now: nil)
        #expect(r.error == nil)
        #expect(r.outcomes == oneOutcomes)
        #expect(r.outcomes[3] == .imported(newBest: true, reorgDepth: 3))
        #expect(batched.core.best == ChainPointer(number: 7, hash: theirs[4].hash))
        for b in shared + theirs { #expect(batched.core.canonicalHash(b.number) == b.hash) }
    }
}
