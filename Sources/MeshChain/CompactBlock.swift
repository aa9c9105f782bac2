import MeshCodec
import MeshCrypto

/// A block as gossip relays it: the header and a 6-byte short id per transaction
/// (docs/gossip.md, "Compact blocks"). A receiver rebuilds the body from the transactions it
/// already holds and fetches only the missing ones from the peer that sent the announcement;
/// the header's transactions root proves the rebuilt body.
///
/// Short ids are keyed by the block hash (the first 6 bytes of SHA-256(block hash ‖ tx hash)),
/// so nobody can prepare colliding transactions before the block exists.
public struct CompactBlock: Equatable, Sendable, BinaryCodable {
    public var header: BlockHeader
    public var shortIDs: [UInt64]

    public static let shortIDSize = 6

    public init(header: BlockHeader, shortIDs: [UInt64]) {
        self.header = header
        self.shortIDs = shortIDs
    }

    /// The compact form of a whole block.
    public init(_ block: Block) {
        let hash = block.hash
        self.header = block.header
        self.shortIDs = block.transactions.map { CompactBlock.shortID($0.hash, block: hash) }
    }

    public var hash: Hash32 { self.header.hash }

    public static func shortID(_ tx: Hash32, block: Hash32) -> UInt64 {
        let h = SHA256.hash(parts: [block.bytes, tx.bytes])
        var v: UInt64 = 0
        for i in 0..<CompactBlock.shortIDSize { v = v << 8 | UInt64(h[i]) }
        return v
    }

    public func encode(to w: inout ByteWriter) {
        self.header.encode(to: &w)
        w.list(self.shortIDs) { w, id in
            for i in (0..<CompactBlock.shortIDSize).reversed() { w.u8(UInt8(truncatingIfNeeded: id >> (8 * UInt64(i)))) }
        }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.header = try BlockHeader(from: &r)
        self.shortIDs = try r.list(field: "short ids", limit: Block.maxTransactions, minElementSize: CompactBlock.shortIDSize) { (r: inout ByteReader) throws(CodecError) in
            let b = try r.raw(CompactBlock.shortIDSize)
            return b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// The outcome of a reconstruction attempt.
    public enum Reconstruction: Equatable, Sendable {
        /// Every transaction was found and the transactions root matches.
        case complete(Block)
        /// These positions are still missing; the partial body is kept by the caller.
        case missing([Int])
        /// All positions are filled but the root does not match (a short-id collision, or a
        /// lying sender): fetch the full block instead.
        case rootMismatch
    }

    /// Fills the body from `candidates` (typically the mempool) and returns what is still missing.
    /// Two candidates with the same short id leave that position missing rather than guessing.
    public func reconstruct(from candidates: some Sequence<Transaction>) -> (body: [Transaction?], result: Reconstruction) {
        self.reconstruct(fromHashed: candidates.lazy.map { (hash: $0.hash, tx: $0) })
    }

    /// The same, from transactions whose hashes the caller holds already (the pool's entries).
    public func reconstruct(fromHashed candidates: some Sequence<(hash: Hash32, tx: Transaction)>) -> (body: [Transaction?], result: Reconstruction) {
        let hash = self.hash
        var wanted: [UInt64: Int] = [:]
        wanted.reserveCapacity(self.shortIDs.count)
        for (i, id) in self.shortIDs.enumerated() where wanted[id] == nil { wanted[id] = i }
        var byID: [UInt64: Transaction] = [:]
        var ambiguous: Set<UInt64> = []
        var byIDHash: [UInt64: Hash32] = [:]
        for (txHash, tx) in candidates {
            let id = CompactBlock.shortID(txHash, block: hash)
            guard wanted[id] != nil else { continue }
            if let other = byIDHash[id], other != txHash {
                ambiguous.insert(id)
            } else {
                byID[id] = tx
                byIDHash[id] = txHash
            }
        }
        let body: [Transaction?] = self.shortIDs.map { ambiguous.contains($0) ? nil : byID[$0] }
        return (body, self.complete(body))
    }

    /// Places fetched transactions at `indexes` and checks the result. A fetched transaction
    /// must match the short id of its position.
    public func fill(_ body: [Transaction?], indexes: [Int], with txs: [Transaction]) -> (body: [Transaction?], result: Reconstruction) {
        var body = body
        guard indexes.count == txs.count else { return (body, self.complete(body)) }
        let hash = self.hash
        for (i, tx) in zip(indexes, txs) where i >= 0 && i < body.count {
            if CompactBlock.shortID(tx.hash, block: hash) == self.shortIDs[i] { body[i] = tx }
        }
        return (body, self.complete(body))
    }

    func complete(_ body: [Transaction?]) -> Reconstruction {
        let missing = body.indices.filter { body[$0] == nil }
        if !missing.isEmpty { return .missing(missing) }
        let txs = body.map { $0! }
        guard Block.transactionsRoot(txs) == self.header.transactionsRoot else { return .rootMismatch }
        return .complete(Block(header: self.header, transactions: txs))
    }
}

/// A request for some transactions of a block, by position (`/tm/blocktxs/1`).
public struct BlockTransactionsRequest: Equatable, Sendable, BinaryCodable {
    public var block: Hash32
    public var indexes: [UInt32]

    public init(block: Hash32, indexes: [UInt32]) {
        self.block = block
        self.indexes = indexes
    }

    public func encode(to w: inout ByteWriter) {
        self.block.encode(to: &w)
        w.list(self.indexes) { w, i in w.u32(i) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.block = try Hash32(from: &r)
        self.indexes = try r.list(field: "indexes", limit: Block.maxTransactions, minElementSize: 4) { (r: inout ByteReader) throws(CodecError) in try r.u32() }
        // Strictly increasing: each transaction is asked for once, so an answer is never
        // larger than the block (one index repeated 10,000 times would be).
        for k in self.indexes.indices.dropFirst() where self.indexes[k] <= self.indexes[k - 1] {
            throw .invalidValue(field: "indexes", reason: "not strictly increasing")
        }
    }
}

/// The answer: the transactions at the requested positions, in request order.
public struct BlockTransactionsResponse: Equatable, Sendable, BinaryCodable {
    public var block: Hash32
    public var transactions: [Transaction]

    public init(block: Hash32, transactions: [Transaction]) {
        self.block = block
        self.transactions = transactions
    }

    public func encode(to w: inout ByteWriter) {
        self.block.encode(to: &w)
        w.list(self.transactions)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.block = try Hash32(from: &r)
        self.transactions = try r.list(of: Transaction.self, field: "transactions", limit: Block.maxTransactions, minElementSize: Transaction.minEncodedSize)
    }
}
