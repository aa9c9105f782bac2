import MeshCodec

/// Durable storage behind the chain. The node uses SQLite (`MeshStore.SQLiteStore`); tests
/// and the simulator use ``MemoryStore``. All methods are called from one thread.
public protocol BlockStore: AnyObject {
    /// Stores a block (idempotent).
    func putBlock(_ block: Block) throws
    /// Stores a block whose hash and encoding the caller holds already (`block.hash`,
    /// `block.encoded`), so that they are not computed again. Default: `putBlock(block)`.
    func putBlock(_ block: Block, hash: Hash32, encoded: [UInt8]) throws
    func block(_ hash: Hash32) throws -> Block?
    /// Whether a block is stored (without reading it).
    func hasBlock(_ hash: Hash32) throws -> Bool
    /// A stored block's header (without decoding its transactions).
    func header(_ hash: Hash32) throws -> BlockHeader?
    /// The canonical (best-chain) hash at a height.
    func canonicalHash(_ number: UInt64) throws -> Hash32?
    /// Rewrites the canonical index from `fromNumber` with `hashes` (a reorg or extension),
    /// removing entries above the new tip.
    func setCanonical(fromNumber: UInt64, hashes: [Hash32], tip: UInt64) throws
    /// Records the finalized block (and optionally its justification).
    func setFinalized(_ ref: ChainPointer, justification: [UInt8]?) throws
    func finalized() throws -> ChainPointer?
    func justification(_ number: UInt64) throws -> [UInt8]?
    /// The highest block number with a stored justification at or below `number`.
    func justifiedNumbers(from: UInt64, limit: Int) throws -> [UInt64]
    /// A snapshot of the state after block `ref`.
    func putState(_ ref: ChainPointer, state: [UInt8]) throws
    func latestState() throws -> (ChainPointer, [UInt8])?
    /// Generic key/value entries (peer cache, own finality votes, metadata).
    func putMeta(_ key: String, _ value: [UInt8], durable: Bool) throws
    func meta(_ key: String) throws -> [UInt8]?
    /// Groups writes into one atomic commit.
    func transaction<T>(_ body: () throws -> T) throws -> T
}

/// A (number, hash) pair naming a block.
public struct ChainPointer: Equatable, Hashable, Sendable, BinaryCodable, CustomStringConvertible {
    public var number: UInt64
    public var hash: Hash32

    public init(number: UInt64, hash: Hash32) {
        self.number = number
        self.hash = hash
    }

    public func encode(to w: inout ByteWriter) { w.u64(self.number); self.hash.encode(to: &w) }
    public init(from r: inout ByteReader) throws(CodecError) { self.number = try r.u64(); self.hash = try Hash32(from: &r) }
    public var description: String { "#\(self.number) (\(self.hash))" }
}

extension BlockStore {
    public func putBlock(_ block: Block, hash: Hash32, encoded: [UInt8]) throws { try self.putBlock(block) }
}

/// An in-memory ``BlockStore`` (tests, the simulator).
public final class MemoryStore: BlockStore {
    var blocks: [Hash32: Block] = [:]
    var canonical: [UInt64: Hash32] = [:]
    var finalizedRef: ChainPointer?
    var justifications: [UInt64: [UInt8]] = [:]
    var stateSnapshot: (ChainPointer, [UInt8])?
    var metaTable: [String: [UInt8]] = [:]
    /// Durable writes (for tests that check ordering of fsync-before-send).
    public private(set) var durableWrites = 0

    public init() {}

    public func putBlock(_ block: Block) throws { self.blocks[block.hash] = block }
    public func block(_ hash: Hash32) throws -> Block? { self.blocks[hash] }
    public func hasBlock(_ hash: Hash32) throws -> Bool { self.blocks[hash] != nil }
    public func header(_ hash: Hash32) throws -> BlockHeader? { self.blocks[hash]?.header }
    public func canonicalHash(_ number: UInt64) throws -> Hash32? { self.canonical[number] }
    public func setCanonical(fromNumber: UInt64, hashes: [Hash32], tip: UInt64) throws {
        for (i, h) in hashes.enumerated() { self.canonical[fromNumber + UInt64(i)] = h }
        for k in self.canonical.keys where k > tip { self.canonical[k] = nil }
    }
    public func setFinalized(_ ref: ChainPointer, justification: [UInt8]?) throws {
        self.finalizedRef = ref
        if let j = justification { self.justifications[ref.number] = j }
    }
    public func finalized() throws -> ChainPointer? { self.finalizedRef }
    public func justification(_ number: UInt64) throws -> [UInt8]? { self.justifications[number] }
    public func justifiedNumbers(from: UInt64, limit: Int) throws -> [UInt64] {
        Array(self.justifications.keys.filter { $0 >= from }.sorted().prefix(limit))
    }
    public func putState(_ ref: ChainPointer, state: [UInt8]) throws { self.stateSnapshot = (ref, state) }
    public func latestState() throws -> (ChainPointer, [UInt8])? { self.stateSnapshot }
    public func putMeta(_ key: String, _ value: [UInt8], durable: Bool) throws {
        self.metaTable[key] = value
        if durable { self.durableWrites += 1 }
    }
    public func meta(_ key: String) throws -> [UInt8]? { self.metaTable[key] }
    public func transaction<T>(_ body: () throws -> T) throws -> T { try body() }
}
