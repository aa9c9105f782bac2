internal import CSodium

/// The operating system's cryptographically secure random source (through libsodium).
///
/// Protocol cores never call this directly: they take randomness as an input so the
/// simulator can replay them. The node and the key tools use it.
public enum SecureRandom {
    /// Fills `buffer` with random bytes. The corresponding C function is `randombytes_buf`.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.ensure()
        if let base = buffer.baseAddress { randombytes_buf(base, buffer.count) }
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// A random 64-bit integer.
    public static func u64() -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { fill($0) }
        return v
    }
}

/// A `RandomNumberGenerator` backed by ``SecureRandom``.
public struct SystemSecureRNG: RandomNumberGenerator, Sendable {
    public init() {}
    public mutating func next() -> UInt64 { SecureRandom.u64() }
}
