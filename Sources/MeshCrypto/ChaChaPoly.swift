internal import COpenSSL

/// ChaCha20-Poly1305 AEAD (RFC 8439) through OpenSSL's EVP interface.
///
/// One instance owns one `EVP_CIPHER_CTX` with its key set once; each call only sets the
/// nonce, so sealing and opening allocate nothing and work in place on the caller's
/// buffer. An instance is not thread-safe: a secure channel owns one per direction.
public final class ChaChaPoly {
    /// Key length in bytes.
    public static let keyByteCount = 32
    /// Nonce length in bytes.
    public static let nonceByteCount = 12
    /// Tag length in bytes.
    public static let tagByteCount = 16

    private let ctx: OpaquePointer

    /// Prepares a context for `key` (32 bytes).
    public init(key: SecureBytes) throws(CryptoError) {
        guard key.count == 32 else { throw .invalidLength(what: "ChaCha20-Poly1305 key", expected: 32, actual: key.count) }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .openSSL(step: "EVP_CIPHER_CTX_new", code: OpenSSL.lastError()) }
        self.ctx = ctx
        let ok = key.withUnsafeBytes { k in
            EVP_CipherInit_ex(ctx, OpenSSL.chacha20Poly1305.pointer, nil,
                              k.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, 1)
        }
        guard ok == 1 else { throw .openSSL(step: "EVP_CipherInit_ex", code: OpenSSL.lastError()) }
    }

    /// Convenience for keys held in an array (test vectors).
    public convenience init(keyBytes: [UInt8]) throws(CryptoError) {
        try self.init(key: SecureBytes(copying: keyBytes))
    }

    deinit { EVP_CIPHER_CTX_free(self.ctx) }

    /// Starts sealing one message under `nonce` (12 bytes), without associated data. The
    /// plaintext then goes through ``sealUpdate(_:into:)`` in order, in pieces of any length,
    /// and ``finishSeal(tag:)`` writes the tag: so a message gathered from several buffers is
    /// encrypted straight into the send buffer, with no copy of its plaintext first.
    public func beginSeal(nonce: UnsafeRawBufferPointer) throws(CryptoError) {
        guard nonce.count == 12 else { throw .invalidLength(what: "nonce", expected: 12, actual: nonce.count) }
        guard EVP_CipherInit_ex(self.ctx, nil, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), 1) == 1 else {
            throw .openSSL(step: "EVP_CipherInit_ex(nonce)", code: OpenSSL.lastError())
        }
    }

    /// Encrypts the next `input.count` bytes of the message into `output` (which may be
    /// `input` itself: in place).
    public func sealUpdate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer) throws(CryptoError) {
        guard input.count > 0 else { return }
        guard input.count <= Int(Int32.max) else { throw .invalidLength(what: "AEAD piece", expected: Int(Int32.max), actual: input.count) }
        var outl: Int32 = 0
        guard EVP_CipherUpdate(self.ctx, output.assumingMemoryBound(to: UInt8.self), &outl,
                               input.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(input.count)) == 1 else {
            throw .openSSL(step: "EVP_CipherUpdate", code: OpenSSL.lastError())
        }
    }

    /// Ends the message begun by ``beginSeal(nonce:)`` and writes its 16-byte tag.
    public func finishSeal(tag: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard tag.count == 16 else { throw .invalidLength(what: "tag", expected: 16, actual: tag.count) }
        var finl: Int32 = 0
        var dummy: UInt8 = 0
        guard EVP_CipherFinal_ex(self.ctx, &dummy, &finl) == 1 else {
            throw .openSSL(step: "EVP_CipherFinal_ex", code: OpenSSL.lastError())
        }
        guard COpenSSL_aead_get_tag(self.ctx, tag.baseAddress!, 16) == 1 else {
            throw .openSSL(step: "get tag", code: OpenSSL.lastError())
        }
    }

    /// Encrypts `buffer` in place and writes the 16-byte tag into `tag`.
    /// The corresponding C functions are `EVP_CipherInit_ex`, `EVP_CipherUpdate` and
    /// `EVP_CipherFinal_ex`.
    public func seal(
        nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer,
        buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        guard nonce.count == 12 else { throw .invalidLength(what: "nonce", expected: 12, actual: nonce.count) }
        guard tag.count == 16 else { throw .invalidLength(what: "tag", expected: 16, actual: tag.count) }
        var outl: Int32 = 0
        guard EVP_CipherInit_ex(self.ctx, nil, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), 1) == 1 else {
            throw .openSSL(step: "EVP_CipherInit_ex(nonce)", code: OpenSSL.lastError())
        }
        if ad.count > 0 {
            guard EVP_CipherUpdate(self.ctx, nil, &outl, ad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(ad.count)) == 1 else {
                throw .openSSL(step: "EVP_CipherUpdate(ad)", code: OpenSSL.lastError())
            }
        }
        if buffer.count > 0 {
            let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard EVP_CipherUpdate(self.ctx, p, &outl, p, Int32(buffer.count)) == 1 else {
                throw .openSSL(step: "EVP_CipherUpdate", code: OpenSSL.lastError())
            }
        }
        var finl: Int32 = 0
        var dummy: UInt8 = 0
        guard EVP_CipherFinal_ex(self.ctx, &dummy, &finl) == 1 else {
            throw .openSSL(step: "EVP_CipherFinal_ex", code: OpenSSL.lastError())
        }
        guard COpenSSL_aead_get_tag(self.ctx, tag.baseAddress!, 16) == 1 else {
            throw .openSSL(step: "get tag", code: OpenSSL.lastError())
        }
    }

    /// Decrypts `buffer` in place if `tag` authenticates it with `ad`; otherwise throws
    /// ``CryptoError/authenticationFailed`` (the buffer then holds garbage and must be dropped).
    public func open(
        nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer,
        buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer
    ) throws(CryptoError) {
        guard nonce.count == 12 else { throw .invalidLength(what: "nonce", expected: 12, actual: nonce.count) }
        guard tag.count == 16 else { throw .invalidLength(what: "tag", expected: 16, actual: tag.count) }
        var outl: Int32 = 0
        guard EVP_CipherInit_ex(self.ctx, nil, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), 0) == 1 else {
            throw .openSSL(step: "EVP_CipherInit_ex(nonce)", code: OpenSSL.lastError())
        }
        if ad.count > 0 {
            guard EVP_CipherUpdate(self.ctx, nil, &outl, ad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(ad.count)) == 1 else {
                throw .openSSL(step: "EVP_CipherUpdate(ad)", code: OpenSSL.lastError())
            }
        }
        if buffer.count > 0 {
            let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            guard EVP_CipherUpdate(self.ctx, p, &outl, p, Int32(buffer.count)) == 1 else {
                throw .openSSL(step: "EVP_CipherUpdate", code: OpenSSL.lastError())
            }
        }
        guard COpenSSL_aead_set_tag(self.ctx, UnsafeMutableRawPointer(mutating: tag.baseAddress!), 16) == 1 else {
            throw .openSSL(step: "set tag", code: OpenSSL.lastError())
        }
        var finl: Int32 = 0
        var dummy: UInt8 = 0
        guard EVP_CipherFinal_ex(self.ctx, &dummy, &finl) == 1 else {
            ERR_clear_error()
            throw .authenticationFailed
        }
    }

    /// Seals `plaintext` and returns ciphertext followed by the tag.
    public func seal(nonce: [UInt8], ad: [UInt8], plaintext: [UInt8]) throws(CryptoError) -> [UInt8] {
        var out = plaintext + [UInt8](repeating: 0, count: 16)
        let n = plaintext.count
        try out.withMutableBytes { (buf: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            try nonce.withBytes { (nb: UnsafeRawBufferPointer) throws(CryptoError) in
                try ad.withBytes { (ab: UnsafeRawBufferPointer) throws(CryptoError) in
                    try self.seal(nonce: nb, ad: ab,
                                  buffer: UnsafeMutableRawBufferPointer(rebasing: buf[0..<n]),
                                  tag: UnsafeMutableRawBufferPointer(rebasing: buf[n...]))
                }
            }
        }
        return out
    }

    /// Opens ciphertext-and-tag; returns the plaintext.
    public func open(nonce: [UInt8], ad: [UInt8], ciphertext: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard ciphertext.count >= 16 else { throw .authenticationFailed }
        var buf = Array(ciphertext)
        let n = ciphertext.count - 16
        try buf.withMutableBytes { (b: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            try nonce.withBytes { (nb: UnsafeRawBufferPointer) throws(CryptoError) in
                try ad.withBytes { (ab: UnsafeRawBufferPointer) throws(CryptoError) in
                    try self.open(nonce: nb, ad: ab,
                                  buffer: UnsafeMutableRawBufferPointer(rebasing: b[0..<n]),
                                  tag: UnsafeRawBufferPointer(rebasing: b[n...]))
                }
            }
        }
        buf.removeLast(16)
        return buf
    }
}
