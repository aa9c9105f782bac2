import Foundation
import MeshCodec
import MeshCrypto

/// The outcome of importing a block.
public enum ImportOutcome: Equatable, Sendable {
    /// Stored; `newBest` when the best chain moved to it (possibly by a reorg).
    case imported(newBest: Bool, reorgDepth: Int)
    case alreadyKnown
}

/// The chain as a node holds it: the finalized block, the tree of unfinalized blocks above
/// it (each with its state), fork choice, and the store. Not thread-safe: the node's event
/// loop owns it. Time enters as a value (`now` in ms) so the simulator can drive it.
///
/// Fork choice: among chains that contain the finalized block, the longest; on equal length
/// the one seen first stays best.
public final class ChainCore {
    public let spec: ChainSpec
    public let genesisHash: Hash32
    public var context: ExecutionContext
    public let store: any BlockStore

    /// Unfinalized blocks (and the finalized head) with their post-states.
    struct Entry {
        var header: BlockHeader
        var state: ChainState
        var children: [Hash32]
    }

    var entries: [Hash32: Entry] = [:]
    public private(set) var best: ChainPointer
    public private(set) var finalized: ChainPointer
    /// Blocks imported / rejected, for metrics.
    public private(set) var importedCount = 0
    public private(set) var rejectedCount = 0
    /// Outcomes of recently imported transactions (any fork), newest kept; for clients that
    /// wait for inclusion and want the dispatch error.
    public private(set) var receipts: [Hash32: IncludedReceipt] = [:]
    var receiptOrder: [Hash32] = []
    public static let receiptsKept = 20_000
    /// Snapshot the finalized state at most every this many blocks.
    public var snapshotInterval: UInt64 = 64
    var lastSnapshot: UInt64 = 0
    /// Verifies signatures on other threads ahead of import (the node's worker pool); nil:
    /// every signature is verified on the importing thread.
    public var signatureVerifier: (any BlockSignatureVerifier)?
    /// Tickets of blocks handed to the verifier by `verifyAhead`, by block hash; taken by
    /// `importBlock`, the rest dropped by `cancelVerifyAhead`.
    var ahead: [Hash32: any SignatureTicket] = [:]
    /// Producer signatures `verifyHeader` found valid, by header hash (which does not cover
    /// the signature, so the signature itself is kept and compared): the import of the block
    /// then does not verify it again. Bounded, oldest dropped first.
    var verifiedHeaders: [Hash32: Ed25519.Signature] = [:]
    var verifiedHeaderOrder: [Hash32] = []
    static let verifiedHeadersKept = 64
    /// Blocks handed ahead at most (one sync answer's worth).
    public static let maxVerifyAhead = 1024
    /// Blocks `importBatch` stores in one transaction at most while the verifier still checks
    /// later blocks of the batch (so the commit overlaps that work).
    public static let overlappedRunBlocks = 16

    /// Opens the chain: from the store's latest snapshot and blocks if present, else genesis.
    public init(spec: ChainSpec, store: any BlockStore, checkSignatures: Bool = true) throws {
        self.spec = spec
        self.store = store
        let (genesisBlock, genesisState) = spec.genesis()
        self.genesisHash = genesisBlock.hash
        self.context = ExecutionContext(genesis: genesisBlock.hash, checkSignatures: checkSignatures)
        let g = ChainPointer(number: 0, hash: genesisBlock.hash)
        self.best = g
        self.finalized = g
        if let stored = try store.canonicalHash(0), stored != genesisBlock.hash {
            throw ChainStoreError.genesisMismatch(stored: stored.hex, spec: genesisBlock.hash.hex)
        }
        // Start from the newest state snapshot, or genesis.
        var baseRef = g
        var baseState = genesisState
        var baseHeader = genesisBlock.header
        if let (ref, bytes) = try store.latestState(), let block = try store.block(ref.hash) {
            do {
                baseState = try ChainState.decode(bytes)
                baseRef = ref
                baseHeader = block.header
            } catch {
                throw ChainStoreError.corrupt("state snapshot at \(ref): \(error)")
            }
            // A snapshot must reproduce the state root its block committed to; a state that
            // does not survive its own encoding is a bug to report here, not at the next block.
            guard baseState.stateRoot() == block.header.stateRoot else {
                throw ChainStoreError.corrupt("state snapshot at \(ref) does not match the block's state root")
            }
        } else if try store.canonicalHash(0) == nil {
            try store.transaction {
                try store.putBlock(genesisBlock)
                try store.setCanonical(fromNumber: 0, hashes: [genesisBlock.hash], tip: 0)
            }
        }
        self.entries[baseRef.hash] = Entry(header: baseHeader, state: baseState, children: [])
        self.finalized = baseRef
        self.best = baseRef
        self.lastSnapshot = baseRef.number
        // Replay the stored canonical chain above the snapshot (re-executing each block).
        let storedFinal = try store.finalized() ?? baseRef
        var n = baseRef.number + 1
        var replayContext = self.context
        replayContext.checkSignatures = false  // these blocks were verified when first imported
        while let h = try store.canonicalHash(n), let block = try store.block(h) {
            let parent = self.entries[block.header.parentHash]!
            var state = parent.state
            do { _ = try state.applyBlock(block, parentSlot: parent.header.slot, now: nil, context: replayContext) } catch {
                throw ChainStoreError.corrupt("stored block #\(n) does not apply: \(error)")
            }
            self.entries[h] = Entry(header: block.header, state: state, children: [])
            self.entries[block.header.parentHash]!.children.append(h)
            self.best = ChainPointer(number: n, hash: h)
            n += 1
        }
        if storedFinal.number > self.finalized.number, self.entries[storedFinal.hash] != nil {
            try self.finalize(storedFinal.hash, justification: nil, persist: false)
        }
    }

    // MARK: Reads

    public var bestState: ChainState { self.entries[self.best.hash]!.state }
    public var finalizedState: ChainState { self.entries[self.finalized.hash]!.state }
    public var bestHeader: BlockHeader { self.entries[self.best.hash]!.header }

    /// The state after block `hash`, if it is the finalized head or above it.
    public func state(at hash: Hash32) -> ChainState? { self.entries[hash]?.state }
    public func header(_ hash: Hash32) -> BlockHeader? {
        if let e = self.entries[hash] { return e.header }
        return (try? self.store.header(hash)) ?? nil
    }
    /// Whether the block is known: in the unfinalized tree, or stored (checked without reading it).
    public func contains(_ hash: Hash32) -> Bool { self.entries[hash] != nil || ((try? self.store.hasBlock(hash)) ?? false) }
    /// Whether new blocks may still build on `hash`: the finalized block and the unfinalized
    /// blocks above it. A block we hold below finality is history, not a possible parent.
    public func canExtend(_ hash: Hash32) -> Bool { self.entries[hash] != nil }

    /// A block by hash.
    public func block(_ hash: Hash32) -> Block? { try? self.store.block(hash) }
    /// The best chain's block at `number`.
    public func block(number: UInt64) -> Block? {
        guard let h = try? self.store.canonicalHash(number) else { return nil }
        return try? self.store.block(h)
    }
    public func canonicalHash(_ number: UInt64) -> Hash32? { (try? self.store.canonicalHash(number)) ?? nil }

    /// Whether `descendant` is `ancestor` or built on it (within the unfinalized tree, or on
    /// the canonical chain for older blocks).
    public func isDescendant(_ descendant: Hash32, of ancestor: Hash32) -> Bool {
        if descendant == ancestor { return true }
        guard let a = self.header(ancestor) else { return false }
        var cursor = descendant
        while let h = self.header(cursor), h.number > a.number {
            cursor = h.parentHash
        }
        return cursor == ancestor
    }

    /// The hashes from `hash` back to (and excluding) the block at `stopNumber`.
    public func ancestry(of hash: Hash32, downTo stopNumber: UInt64) -> [Hash32] {
        var out: [Hash32] = []
        var cursor = hash
        while let h = self.header(cursor), h.number > stopNumber {
            out.append(cursor)
            cursor = h.parentHash
        }
        return out
    }

    /// Unfinalized leaves (chain heads).
    public var leaves: [ChainPointer] {
        self.entries.filter { $0.value.children.isEmpty }.map { ChainPointer(number: $0.value.header.number, hash: $0.key) }
    }

    // MARK: Import

    /// Checks and imports a block whose parent is known. `now` is wall-clock ms (nil skips the
    /// future-timestamp check, for re-imports).
    /// `preverified`: transactions whose signatures the caller checked already (the pool's).
    /// With a `signatureVerifier`, the block's signatures are checked on its threads (handed
    /// there earlier by `verifyAhead`, or now); whatever it did not find valid is checked
    /// here, in order, so the outcome and the error are the same as without it.
    @discardableResult
    public func importBlock(_ block: Block, now: UInt64?, preverified: Set<Hash32> = []) throws(BlockError) -> ImportOutcome {
        let hash = block.hash
        var ticket = self.ahead.removeValue(forKey: hash)
        defer { ticket?.cancel() }
        if try self.knownOutcome(block, hash: hash) { return .alreadyKnown }
        guard let parent = self.entries[block.header.parentHash] else {
            self.rejectedCount += 1
            throw .unknownParent(block.header.parentHash)
        }
        let executed = try self.execute(block, hash: hash, parentHeader: parent.header, parentState: parent.state,
                                        now: now, preverified: preverified, ticket: &ticket)
        return try self.commit([executed])[0]
    }

    /// What `importBatch` did: an outcome for each block from the first, in order, and the
    /// error of the block after them (`outcomes.count` is its index) when it stopped early.
    public struct BatchOutcome: Sendable {
        public var outcomes: [ImportOutcome]
        public var error: BlockError?
    }

    /// Imports `blocks` in order, as `importBlock` would one by one, stopping at the first that
    /// fails, but stores each run of blocks that extend one another in one store transaction
    /// (a sync answer: one commit instead of one per block). While the `signatureVerifier`
    /// still checks blocks handed ahead (`verifyAhead`), a run is stored every
    /// `overlappedRunBlocks` blocks, so that its commit overlaps that verification instead of
    /// leaving the workers idle behind one commit at the end. Durable first as in
    /// `importBlock`: a run enters the in-memory tree only once its transaction committed, so
    /// a store failure leaves neither the store nor the tree holding any of that run (and is
    /// reported as `.storeFailure` for the run's first block; the blocks before it stay).
    /// The blocks before a failing block are stored before its error is returned.
    public func importBatch(_ blocks: [Block], now: UInt64?) -> BatchOutcome {
        var outcomes: [ImportOutcome] = []
        outcomes.reserveCapacity(blocks.count)
        var run: [Executed] = []
        // Stores the pending run; false (with `failure` set) when the store refused it.
        var failure: BlockError?
        func flush() -> Bool {
            guard !run.isEmpty else { return true }
            defer { run.removeAll(keepingCapacity: true) }
            do throws(BlockError) {
                outcomes.append(contentsOf: try self.commit(run))
                return true
            } catch {
                failure = error
                return false
            }
        }
        for (i, block) in blocks.enumerated() {
            let hash = block.hash
            var ticket = self.ahead.removeValue(forKey: hash)
            defer { ticket?.cancel() }
            do throws(BlockError) {
                let parentHeader: BlockHeader
                let parentState: ChainState
                if let last = run.last, last.hash == block.header.parentHash {
                    parentHeader = last.block.header
                    parentState = last.state
                } else {
                    guard flush() else { break }
                    if try self.knownOutcome(block, hash: hash, storedIsKnown: true) {
                        outcomes.append(.alreadyKnown)
                        continue
                    }
                    guard let parent = self.entries[block.header.parentHash] else {
                        self.rejectedCount += 1
                        throw .unknownParent(block.header.parentHash)
                    }
                    parentHeader = parent.header
                    parentState = parent.state
                }
                run.append(try self.execute(block, hash: hash, parentHeader: parentHeader, parentState: parentState,
                                            now: now, preverified: [], ticket: &ticket))
                // While the verifier still checks the blocks after this one, a long run is
                // stored now, so that the store's work overlaps theirs instead of leaving the
                // workers idle behind one commit at the end.
                if run.count >= Self.overlappedRunBlocks, i + 1 < blocks.count, self.ahead[blocks[i + 1].hash] != nil {
                    guard flush() else { break }
                }
            } catch {
                guard flush() else { break }
                failure = error
                break
            }
        }
        _ = flush()
        return BatchOutcome(outcomes: outcomes, error: failure)
    }

    /// A block checked and executed on its parent's state, not yet stored.
    struct Executed {
        let block: Block
        let hash: Hash32
        let encoded: [UInt8]
        let state: ChainState
        let receipts: [Receipt]
    }

    /// Whether the block is known already (true), or throws when it lies at or below the
    /// finalized height beside the finalized chain. False: import it.
    /// `storedIsKnown`: a stored block beside the finalized chain (a pruned fork) counts as
    /// known rather than conflicting (a batch skips what the node holds, as sync always did).
    func knownOutcome(_ block: Block, hash: Hash32, storedIsKnown: Bool = false) throws(BlockError) -> Bool {
        if self.entries[hash] != nil { return true }
        if block.number <= self.finalized.number {
            if self.canonicalHash(block.number) == hash { return true }
            if storedIsKnown, (try? self.store.hasBlock(hash)) == true { return true }
            self.rejectedCount += 1
            throw .conflictsWithFinalized
        }
        return false
    }

    /// Checks the block's size and signatures and executes it on the parent's state.
    /// With a `signatureVerifier`, the signatures its ticket found valid are not checked again.
    func execute(_ block: Block, hash: Hash32, parentHeader: BlockHeader, parentState: ChainState, now: UInt64?,
                 preverified: Set<Hash32>, ticket: inout (any SignatureTicket)?) throws(BlockError) -> Executed {
        // Encoded once: for the size here and for the store at commit.
        let encoded = block.encoded
        guard encoded.count <= Block.maxSize else {
            self.rejectedCount += 1
            throw .tooLarge(encoded.count)
        }
        var state = parentState
        var context = self.context
        context.preverified = preverified
        // Checked by `verifyHeader` already (a compact block's header, before its body).
        if let signature = self.verifiedHeaders[hash], signature == block.header.signature { context.headerPreverified = true }
        if context.checkSignatures, let verifier = self.signatureVerifier {
            // A block alone (gossip, a fetch) is spread over the workers too when it carries
            // enough transactions to gain from it.
            if ticket == nil, block.transactions.count >= 4 {
                ticket = verifier.submit([block], genesis: context.genesis, skipping: preverified).first
            }
            if let found = ticket?.wait() {
                if context.preverified.isEmpty {
                    context.preverified = found.transactions
                } else {
                    context.preverified.formUnion(found.transactions)
                }
                context.preverifiedIndices = found.indices(for: block.transactions)
                context.headerPreverified = context.headerPreverified || found.header
            }
        }
        do {
            let applied = try state.applyBlock(block, parentSlot: parentHeader.slot, now: now, context: context)
            return Executed(block: block, hash: hash, encoded: encoded, state: state, receipts: applied)
        } catch {
            self.rejectedCount += 1
            throw error
        }
    }

    /// Stores executed blocks, each the parent of the next, in one transaction, then adds them
    /// to the tree. Durable first: the in-memory tree changes only once the blocks are on
    /// disk. A store failure is ours, never the peer's (`.storeFailure`).
    func commit(_ run: [Executed]) throws(BlockError) -> [ImportOutcome] {
        guard let last = run.last else { return [] }
        let tip = ChainPointer(number: last.block.number, hash: last.hash)
        let becomesBest = tip.number > self.best.number
        var depth = 0
        do {
            try self.store.transaction {
                for e in run { try self.store.putBlock(e.block, hash: e.hash, encoded: e.encoded) }
                if becomesBest {
                    let headers = run.count > 1 ? Dictionary(uniqueKeysWithValues: run.map { ($0.hash, $0.block.header) }) : [:]
                    depth = try self.writeCanonical(to: tip, pending: headers)
                }
            }
        } catch {
            throw .storeFailure("\(error)")
        }
        var outcomes: [ImportOutcome] = []
        outcomes.reserveCapacity(run.count)
        var best = self.best.number
        for e in run {
            for r in e.receipts {
                if self.receipts[r.hash] == nil { self.receiptOrder.append(r.hash) }
                self.receipts[r.hash] = IncludedReceipt(block: e.hash, number: e.block.number, error: r.error)
            }
            self.entries[e.hash] = Entry(header: e.block.header, state: e.state, children: [])
            self.entries[e.block.header.parentHash]!.children.append(e.hash)
            self.importedCount += 1
            // Each block of the run extends the one before: once one is best, the rest follow,
            // and only the first can have reorganised the chain.
            let newBest = e.block.number > best
            outcomes.append(.imported(newBest: newBest, reorgDepth: newBest && best == self.best.number ? depth : 0))
            if newBest { best = e.block.number }
        }
        if self.receiptOrder.count > Self.receiptsKept {
            for h in self.receiptOrder.prefix(self.receiptOrder.count - Self.receiptsKept) { self.receipts[h] = nil }
            self.receiptOrder.removeFirst(self.receiptOrder.count - Self.receiptsKept)
        }
        if becomesBest { self.best = tip }
        return outcomes
    }

    /// Hands `blocks`, about to be imported in this order, to the `signatureVerifier`, so that
    /// its threads check later blocks' signatures while earlier ones execute. Blocks known or
    /// handed already are left out; at most `maxVerifyAhead` are outstanding. Without a
    /// verifier (or with signatures unchecked) it does nothing.
    public func verifyAhead(_ blocks: [Block]) {
        guard self.context.checkSignatures, let verifier = self.signatureVerifier else { return }
        var fresh: [Block] = []
        var hashes: [Hash32] = []
        var seen = Set<Hash32>()
        for b in blocks where self.ahead.count + fresh.count < Self.maxVerifyAhead {
            let h = b.hash
            if self.entries[h] != nil || self.ahead[h] != nil || !seen.insert(h).inserted { continue }
            fresh.append(b)
            hashes.append(h)
        }
        guard !fresh.isEmpty else { return }
        for (h, t) in zip(hashes, verifier.submit(fresh, genesis: self.context.genesis, skipping: [])) { self.ahead[h] = t }
    }

    /// Drops the checks of blocks handed ahead and not imported (a batch stopped early).
    public func cancelVerifyAhead() {
        for t in self.ahead.values { t.cancel() }
        self.ahead.removeAll()
    }

    /// Checks a header whose parent we hold, before its body is fetched or rebuilt: the slot's
    /// author signed it, and number, slot and timestamp follow the parent.
    public func verifyHeader(_ header: BlockHeader, now: UInt64?) throws(BlockError) {
        guard let parent = self.entries[header.parentHash] else { throw .unknownParent(header.parentHash) }
        _ = try parent.state.checkHeader(header, parentSlot: parent.header.slot, now: now, checkSignature: true)
        let hash = header.hash
        guard self.verifiedHeaders.updateValue(header.signature, forKey: hash) == nil else { return }
        self.verifiedHeaderOrder.append(hash)
        if self.verifiedHeaderOrder.count > Self.verifiedHeadersKept {
            self.verifiedHeaders[self.verifiedHeaderOrder.removeFirst()] = nil
        }
    }

    /// Rewrites the canonical index to end at `tip` (inside the caller's store transaction);
    /// returns the reorg depth. The caller moves `best` once the transaction committed.
    /// `pending`: headers of blocks stored in this transaction and not yet in the tree.
    func writeCanonical(to tip: ChainPointer, pending: [Hash32: BlockHeader] = [:]) throws -> Int {
        let old = self.best
        // Walk back from the new tip until the canonical chain is met.
        var path: [Hash32] = []
        var cursor = tip.hash
        var number = tip.number
        while number > 0 {
            if number <= old.number, try self.store.canonicalHash(number) == cursor { break }
            path.append(cursor)
            var header = self.entries[cursor]?.header ?? pending[cursor]
            if header == nil { header = try self.store.block(cursor)?.header }
            guard let h = header else { break }
            cursor = h.parentHash
            number -= 1
        }
        let forkPoint = number
        path.reverse()
        try self.store.setCanonical(fromNumber: forkPoint + 1, hashes: path, tip: tip.number)
        return old.number > forkPoint ? Int(old.number - forkPoint) : 0
    }

    /// Marks `hash` final with its justification: prunes forks that do not contain it, and
    /// snapshots the state now and then. Finality never moves backwards or sideways.
    public func finalize(_ hash: Hash32, justification: [UInt8]?, persist: Bool = true) throws {
        guard let entry = self.entries[hash] else { throw ChainStoreError.unknownBlock(hash.hex) }
        let number = entry.header.number
        guard number > self.finalized.number else {
            if number == self.finalized.number && hash == self.finalized.hash {
                if persist, let j = justification { try self.store.setFinalized(self.finalized, justification: j) }
                return
            }
            throw ChainStoreError.finalityRegression(from: self.finalized.number, to: number)
        }
        guard self.isDescendant(hash, of: self.finalized.hash) else { throw ChainStoreError.finalityConflict(hash.hex) }
        let ref = ChainPointer(number: number, hash: hash)
        // If the finalized block is not on the best chain, the best chain follows it.
        let newTip: ChainPointer? = self.isDescendant(self.best.hash, of: hash) ? nil : self.longestLeaf(under: hash)
        let snapshot = persist && number >= self.lastSnapshot + self.snapshotInterval
        try self.store.transaction {
            if let tip = newTip { _ = try self.writeCanonical(to: tip) }
            if persist {
                try self.store.setFinalized(ref, justification: justification)
                if snapshot { try self.store.putState(ref, state: entry.state.encoded) }
            }
        }
        if let tip = newTip { self.best = tip }
        if snapshot { self.lastSnapshot = number }
        self.finalized = ref
        // Prune everything not descending from the new finalized block.
        var keep: Set<Hash32> = [hash]
        var frontier = [hash]
        while let h = frontier.popLast() {
            for c in self.entries[h]?.children ?? [] where keep.insert(c).inserted { frontier.append(c) }
        }
        self.entries = self.entries.filter { keep.contains($0.key) }
    }

    /// Writes a state snapshot of the finalized block now (on shutdown).
    public func snapshotFinalized() throws {
        try self.store.putState(self.finalized, state: self.finalizedState.encoded)
        self.lastSnapshot = self.finalized.number
    }

    func longestLeaf(under root: Hash32) -> ChainPointer {
        var bestRef = ChainPointer(number: self.entries[root]!.header.number, hash: root)
        var stack = [root]
        while let h = stack.popLast() {
            let e = self.entries[h]!
            if e.header.number > bestRef.number { bestRef = ChainPointer(number: e.header.number, hash: h) }
            stack.append(contentsOf: e.children)
        }
        return bestRef
    }

    // MARK: Production

    /// Builds and imports a block on the best chain for `slot`, if `key` owns that slot.
    public func produce(slot: UInt64, timestamp: UInt64, key: Ed25519.PrivateKey, candidates: [Transaction]) throws -> Block? {
        let parent = self.entries[self.best.hash]!
        guard slot > parent.header.slot else { return nil }
        var probe = parent.state
        probe.beginBlock(number: parent.header.number + 1, timestamp: timestamp)
        guard probe.slotAuthor(slot) == key.publicKey else { return nil }
        let (block, _, _) = parent.state.buildBlock(parentHash: self.best.hash, slot: slot, timestamp: timestamp,
                                                    candidates: candidates, producer: key, context: self.context)
        do { try self.importBlock(block, now: timestamp) } catch { throw ChainStoreError.corrupt("own block rejected: \(error)") }
        return block
    }
}

/// Store-level failures.
public enum ChainStoreError: Error, CustomStringConvertible {
    case genesisMismatch(stored: String, spec: String)
    case corrupt(String)
    case unknownBlock(String)
    case finalityRegression(from: UInt64, to: UInt64)
    case finalityConflict(String)

    public var description: String {
        switch self {
        case .genesisMismatch(let s, let c): return "the database holds another chain (genesis \(s)); the chain spec's genesis is \(c)"
        case .corrupt(let s): return "store corrupt: \(s)"
        case .unknownBlock(let h): return "unknown block \(h)"
        case .finalityRegression(let f, let t): return "finality cannot move back from #\(f) to #\(t)"
        case .finalityConflict(let h): return "\(h) conflicts with the finalized chain"
        }
    }
}

/// Where a transaction was included and whether its call succeeded.
public struct IncludedReceipt: Sendable, Equatable {
    public var block: Hash32
    public var number: UInt64
    public var error: DispatchError?
}
