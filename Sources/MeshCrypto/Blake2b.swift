internal import CSodium

/// BLAKE2b (RFC 7693) through libsodium.
public enum Blake2b {
    /// The BLAKE2b digest of `data` with `outputLength` bytes (1...64) and an optional key
    /// (up to 64 bytes). The corresponding C function is `crypto_generichash`.
    public static func hash(_ data: some ContiguousBytesView, outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        precondition(outputLength >= 1 && outputLength <= 64, "BLAKE2b output length out of range")
        precondition(key.count <= 64, "BLAKE2b key too long")
        Sodium.ensure()
        var out = [UInt8](repeating: 0, count: outputLength)
        data.withBytes { input in
            key.withUnsafeBytes { k in
                out.withUnsafeMutableBytes { o in
                    _ = crypto_generichash(
                        o.baseAddress!.assumingMemoryBound(to: UInt8.self), outputLength,
                        input.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(input.count),
                        k.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count)
                }
            }
        }
        return out
    }
}
