import MeshCrypto

/// One direction of an established channel: ChaCha20-Poly1305 with a 64-bit counter nonce,
/// working in place on the caller's buffer, with a Noise Rekey every `rekeyInterval`
/// messages (both sides rekey at the same counts, so no signalling is needed).
final class TransportCipher {
    private var cipher: ChaChaPoly
    private var key: SecureBytes
    private(set) var nonce: UInt64
    let rekeyInterval: UInt64
    private var nonceBytes = [UInt8](repeating: 0, count: 12)

    init(key: SecureBytes, nonce: UInt64 = 0, rekeyInterval: UInt64) {
        self.key = key
        self.cipher = try! ChaChaPoly(key: key)
        self.nonce = nonce
        self.rekeyInterval = rekeyInterval
    }

    private func prepareNonce() throws(ChannelError) {
        guard self.nonce != UInt64.max else { throw .nonceExhausted }
        if self.rekeyInterval > 0 && self.nonce > 0 && self.nonce % self.rekeyInterval == 0 {
            self.rekey()
        }
        var n = self.nonce
        for i in 4..<12 {
            self.nonceBytes[i] = UInt8(truncatingIfNeeded: n)
            n >>= 8
        }
    }

    /// Noise Rekey: the new key is the first 32 bytes of ENCRYPT(k, 2^64 − 1, "", zeros(32)).
    private func rekey() {
        var block = [UInt8](repeating: 0, count: 48)
        var maxNonce = [UInt8](repeating: 0xff, count: 12)
        maxNonce[0] = 0; maxNonce[1] = 0; maxNonce[2] = 0; maxNonce[3] = 0
        block.withUnsafeMutableBytes { b in
            maxNonce.withUnsafeBytes { nb in
                try! self.cipher.seal(nonce: nb, ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                      buffer: UnsafeMutableRawBufferPointer(rebasing: b[0..<32]),
                                      tag: UnsafeMutableRawBufferPointer(rebasing: b[32..<48]))
            }
        }
        self.key = SecureBytes(copying: block[0..<32])
        Memory.zero(&block)
        self.cipher = try! ChaChaPoly(key: self.key)
    }

    /// Encrypts `buffer[range]` in place; the 16-byte tag is written right after the range
    /// (the caller reserves it).
    func seal(_ buffer: inout [UInt8], plaintext range: Range<Int>) throws(ChannelError) {
        try self.prepareNonce()
        let lo = range.lowerBound
        let hi = range.upperBound
        do {
            try buffer.withMutableBytes { (b: UnsafeMutableRawBufferPointer) throws(CryptoError) in
                try self.nonceBytes.withBytes { (nb: UnsafeRawBufferPointer) throws(CryptoError) in
                    try self.cipher.seal(nonce: nb, ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                         buffer: UnsafeMutableRawBufferPointer(rebasing: b[lo..<hi]),
                                         tag: UnsafeMutableRawBufferPointer(rebasing: b[hi..<(hi + 16)]))
                }
            }
        } catch { throw .crypto(error) }
        self.nonce += 1
    }

    /// Decrypts `buffer[range]` in place, where the last 16 bytes are the tag. On success the
    /// plaintext is `range.lowerBound ..< range.upperBound − 16`.
    func open(_ buffer: inout [UInt8], ciphertext range: Range<Int>) throws(ChannelError) {
        guard range.count >= 16 else { throw .decryptFailed }
        try self.prepareNonce()
        let lo = range.lowerBound
        let tagStart = range.upperBound - 16
        let hi = range.upperBound
        do {
            try buffer.withMutableBytes { (b: UnsafeMutableRawBufferPointer) throws(CryptoError) in
                try self.nonceBytes.withBytes { (nb: UnsafeRawBufferPointer) throws(CryptoError) in
                    try self.cipher.open(nonce: nb, ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                         buffer: UnsafeMutableRawBufferPointer(rebasing: b[lo..<tagStart]),
                                         tag: UnsafeRawBufferPointer(rebasing: b[tagStart..<hi]))
                }
            }
        } catch { throw .decryptFailed }
        self.nonce += 1
    }
}
