internal import COpenSSL

/// SHA-1 (FIPS 180-4), for the one place a protocol demands it: the WebSocket opening
/// handshake (RFC 6455 §4.2.2, `Sec-WebSocket-Accept`). Never use it for anything that needs
/// collision resistance.
public enum SHA1 {
    /// The SHA-1 digest (20 bytes) of `data`. The corresponding C function is `EVP_Digest`.
    public static func hash(_ data: some ContiguousBytesView) -> [UInt8] {
        OpenSSLDigest.hash(data, OpenSSL.sha1, length: 20)
    }
}

/// SHA-512 (FIPS 180-4), and PBKDF2 with HMAC-SHA-512 (RFC 8018), as BIP-39 derives seeds.
public enum SHA512 {
    /// The SHA-512 digest (64 bytes) of `data`. The corresponding C function is `EVP_Digest`.
    public static func hash(_ data: some ContiguousBytesView) -> [UInt8] {
        OpenSSLDigest.hash(data, OpenSSL.sha512, length: 64)
    }

    /// PBKDF2-HMAC-SHA-512 of `password` and `salt` with `iterations` rounds, `length` bytes.
    /// The result is a secret when the password is. The corresponding C function is
    /// `PKCS5_PBKDF2_HMAC`.
    public static func pbkdf2(password: some ContiguousBytesView, salt: some ContiguousBytesView, iterations: Int, length: Int) -> SecureBytes {
        precondition(iterations >= 1 && length >= 1 && length <= 1 << 16, "PBKDF2 parameters out of range")
        return SecureBytes(count: length) { o in
            password.withBytes { p in
                salt.withBytes { s in
                    let rc = PKCS5_PBKDF2_HMAC(
                        p.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(p.count),
                        s.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(s.count), Int32(iterations),
                        OpenSSL.sha512.pointer, Int32(length), o.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    precondition(rc == 1, "PKCS5_PBKDF2_HMAC failed")
                }
            }
        }
    }
}

enum OpenSSLDigest {
    static func hash(_ data: some ContiguousBytesView, _ md: OpenSSL.Handle, length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        data.withBytes { input in
            out.withUnsafeMutableBytes { o in
                var len: UInt32 = 0
                let rc = EVP_Digest(input.baseAddress, input.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &len, md.pointer, nil)
                precondition(rc == 1 && Int(len) == length, "EVP_Digest failed")
            }
        }
        return out
    }
}
