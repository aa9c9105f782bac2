import MeshCodec
import MeshCrypto

/// A validator with its voting weight (stake) in the finality gadget.
public struct WeightedAuthority: Equatable, Hashable, Sendable, BinaryCodable {
    public var id: AccountID
    public var weight: UInt64

    public init(id: AccountID, weight: UInt64) {
        self.id = id
        self.weight = weight
    }

    public func encode(to w: inout ByteWriter) {
        self.id.encode(to: &w)
        w.u64(self.weight)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.id = try AccountID(from: &r)
        self.weight = try r.u64()
    }
}

/// Consensus signals a block carries in its header.
public enum DigestItem: Equatable, Sendable, BinaryCodable {
    /// A new validator set, enacted for finality once the block `delay` blocks after this one
    /// is final (a standard change).
    case scheduledChange(authorities: [WeightedAuthority], delay: UInt64)
    /// A root-forced change: enacted once `delay` blocks have been built on this block,
    /// without waiting for finality (recovery when more than a third is gone for good).
    case forcedChange(authorities: [WeightedAuthority], delay: UInt64)

    public func encode(to w: inout ByteWriter) {
        switch self {
        case .scheduledChange(let a, let d):
            w.u8(1); w.list(a); w.u64(d)
        case .forcedChange(let a, let d):
            w.u8(2); w.list(a); w.u64(d)
        }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let tag = try r.u8()
        let a = try r.list(of: WeightedAuthority.self, field: "authorities", limit: 1024, minElementSize: 40)
        let d = try r.u64()
        switch tag {
        case 1: self = .scheduledChange(authorities: a, delay: d)
        case 2: self = .forcedChange(authorities: a, delay: d)
        default: throw .invalidValue(field: "digest", reason: "unknown item \(tag)")
        }
    }
}

/// A block header. Its hash covers every field but the producer's signature, which signs that
/// hash.
public struct BlockHeader: Equatable, Sendable, BinaryCodable {
    public var parentHash: Hash32
    public var number: UInt64
    /// The Aura slot: timestamp / slot duration.
    public var slot: UInt64
    /// Milliseconds since the Unix epoch.
    public var timestamp: UInt64
    public var stateRoot: Hash32
    public var transactionsRoot: Hash32
    public var producer: AccountID
    public var digest: [DigestItem]
    public var signature: Ed25519.Signature

    public init(parentHash: Hash32, number: UInt64, slot: UInt64, timestamp: UInt64, stateRoot: Hash32,
                transactionsRoot: Hash32, producer: AccountID, digest: [DigestItem] = []) {
        self.parentHash = parentHash
        self.number = number
        self.slot = slot
        self.timestamp = timestamp
        self.stateRoot = stateRoot
        self.transactionsRoot = transactionsRoot
        self.producer = producer
        self.digest = digest
        self.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 0, count: 64))
    }

    func encodeUnsigned(to w: inout ByteWriter) {
        self.parentHash.encode(to: &w)
        w.u64(self.number)
        w.u64(self.slot)
        w.u64(self.timestamp)
        self.stateRoot.encode(to: &w)
        self.transactionsRoot.encode(to: &w)
        self.producer.encode(to: &w)
        w.list(self.digest)
    }

    public func encode(to w: inout ByteWriter) {
        self.encodeUnsigned(to: &w)
        self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.parentHash = try Hash32(from: &r)
        self.number = try r.u64()
        self.slot = try r.u64()
        self.timestamp = try r.u64()
        self.stateRoot = try Hash32(from: &r)
        self.transactionsRoot = try Hash32(from: &r)
        self.producer = try AccountID(from: &r)
        self.digest = try r.list(of: DigestItem.self, field: "digest", limit: 8, minElementSize: 10)
        self.signature = try Ed25519.Signature(from: &r)
    }

    /// The block hash.
    public var hash: Hash32 {
        var w = ByteWriter(capacity: 256)
        self.encodeUnsigned(to: &w)
        return Hash32.of(w.bytes)
    }

    /// Signs the header as `key` (the producer).
    public mutating func sign(with key: Ed25519.PrivateKey) {
        self.signature = key.sign(self.hash.bytes)
    }

    /// Whether the producer's signature is valid.
    public var hasValidSignature: Bool {
        self.producer.isValidSignature(self.signature, for: self.hash.bytes)
    }
}

/// A block: header and transactions.
public struct Block: Equatable, Sendable, BinaryCodable {
    /// Transactions per block at most.
    public static let maxTransactions = 10_000
    /// Largest encoded block accepted.
    public static let maxSize = 8 << 20

    public var header: BlockHeader
    public var transactions: [Transaction]

    public init(header: BlockHeader, transactions: [Transaction]) {
        self.header = header
        self.transactions = transactions
    }

    public func encode(to w: inout ByteWriter) {
        self.header.encode(to: &w)
        w.list(self.transactions)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.header = try BlockHeader(from: &r)
        self.transactions = try r.list(of: Transaction.self, field: "transactions", limit: Block.maxTransactions, minElementSize: Transaction.minEncodedSize)
    }

    public var hash: Hash32 { self.header.hash }
    public var number: UInt64 { self.header.number }

    /// The Merkle root of the transaction hashes.
    public static func transactionsRoot(_ txs: [Transaction]) -> Hash32 { MerkleRoot.of(txs.map { $0.hash }) }
}
