internal import CSodium

/// The raw ChaCha20 stream cipher (IETF, 96-bit nonce) from libsodium. No authentication:
/// only for obfuscation such as masking discovery packet headers.
public enum ChaCha20 {
    /// XORs `data` with the keystream of (`key`, `nonce`): masks and unmasks alike.
    public static func xor(_ data: [UInt8], key: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(key.count == 32 && nonce.count == 12, "ChaCha20 needs a 32-byte key and a 12-byte nonce")
        Sodium.ensure()
        var out = [UInt8](repeating: 0, count: data.count)
        guard !data.isEmpty else { return out }
        _ = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in
                nonce.withUnsafeBufferPointer { n in
                    key.withUnsafeBufferPointer { k in
                        crypto_stream_chacha20_ietf_xor(o.baseAddress!, d.baseAddress!, UInt64(d.count), n.baseAddress!, k.baseAddress!)
                    }
                }
            }
        }
        return out
    }
}
