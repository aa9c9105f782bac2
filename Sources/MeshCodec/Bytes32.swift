/// Thirty-two bytes held inline as four big-endian words: the storage of hashes and public
/// keys.
///
/// Hashes and keys are dictionary keys on every block, vote, frame and peer lookup. In an
/// array each costs an allocation when made and a retain/release whenever it is copied; here a
/// copy is four words, equality four compares, and the word order keeps `<` the bytes'
/// lexicographic order. Equality and hashing (synthesized) take all four words: hashes and keys
/// can be chosen by a peer (of blocks that do not exist, by grinding keys), so a prefix would
/// let it crowd one bucket.
public struct Bytes32: Hashable, Comparable, Sendable {
    public let w0: UInt64
    public let w1: UInt64
    public let w2: UInt64
    public let w3: UInt64

    /// The 32 bytes of `bytes`, which must hold exactly 32 (callers check the length first).
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "Bytes32 needs 32 bytes")
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for j in 0..<8 { v = v << 8 | UInt64(bytes[i * 8 + j]) }
            return v
        }
        self.w0 = word(0)
        self.w1 = word(1)
        self.w2 = word(2)
        self.w3 = word(3)
    }

    /// The 32 bytes at `raw` (which must hold exactly 32).
    public init(raw: UnsafeRawBufferPointer) {
        precondition(raw.count == 32, "Bytes32 needs 32 bytes")
        self.w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        self.w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        self.w2 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        self.w3 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Reads 32 bytes.
    public init(from r: inout ByteReader) throws(CodecError) {
        self.w0 = try r.u64()
        self.w1 = try r.u64()
        self.w2 = try r.u64()
        self.w3 = try r.u64()
    }

    /// Writes the 32 bytes.
    public func encode(to w: inout ByteWriter) {
        w.u64(self.w0)
        w.u64(self.w1)
        w.u64(self.w2)
        w.u64(self.w3)
    }

    /// The 32 bytes as a fresh array (hot paths compare and hash the value itself).
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { buf, count in
            func put(_ w: UInt64, at i: Int) {
                for j in 0..<8 { buf[i * 8 + j] = UInt8(truncatingIfNeeded: w >> (56 - 8 * UInt64(j))) }
            }
            put(self.w0, at: 0)
            put(self.w1, at: 1)
            put(self.w2, at: 2)
            put(self.w3, at: 3)
            count = 32
        }
    }

    public static func < (a: Bytes32, b: Bytes32) -> Bool { (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3) }
}
