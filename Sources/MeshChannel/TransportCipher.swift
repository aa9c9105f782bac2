import MeshCrypto

/// One direction of an established channel: ChaCha20-Poly1305 with a 64-bit counter nonce,
/// working in place on the caller's buffer, with a Noise Rekey every `rekeyInterval`
/// messages (both sides rekey at the same counts, so no signalling is needed).
///
/// Package access: `meshbench channel` times these exact calls (a bulk record sealed from
/// the message into the send buffer, opened in place) as the AEAD term of its CPU ceiling.
package final class TransportCipher {
    private var cipher: ChaChaPoly
    private var key: SecureBytes
    private(set) var nonce: UInt64
    let rekeyInterval: UInt64
    private var nonceBytes = [UInt8](repeating: 0, count: 12)

    package init(key: SecureBytes, nonce: UInt64 = 0, rekeyInterval: UInt64) {
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

    /// A piece of a message's plaintext that is not in the output buffer yet: `count` bytes
    /// of `source` from `sourceOffset`, to be encrypted straight into the output at `at`.
    package struct Gathered {
        var source: [UInt8]
        var sourceOffset: Int
        var count: Int
        var at: Int

        package init(source: [UInt8], sourceOffset: Int, count: Int, at: Int) {
            self.source = source
            self.sourceOffset = sourceOffset
            self.count = count
            self.at = at
        }
    }

    /// Seals `out[range]` as one message, tag written right after the range: bytes of the range
    /// covered by `pieces` (in order, not overlapping) are encrypted from their sources into
    /// place, the rest in place. The large chunks of a message thus go from the application's
    /// buffer to the send buffer in the cipher's one pass, with no plaintext copy.
    package func seal(_ out: UnsafeMutableRawBufferPointer, plaintext range: Range<Int>, gathering pieces: [Gathered]) throws(ChannelError) {
        precondition(range.upperBound + 16 <= out.count, "no room for the tag")
        try self.prepareNonce()
        let base = out.baseAddress!
        do throws(CryptoError) {
            try self.nonceBytes.withBytes { (nb: UnsafeRawBufferPointer) throws(CryptoError) in try self.cipher.beginSeal(nonce: nb) }
            var position = range.lowerBound
            for p in pieces {
                precondition(p.at >= position && p.at + p.count <= range.upperBound, "gathered pieces out of order")
                if p.at > position {
                    try self.cipher.sealUpdate(UnsafeRawBufferPointer(start: base + position, count: p.at - position), into: base + position)
                }
                try p.source.withBytes { (src: UnsafeRawBufferPointer) throws(CryptoError) in
                    precondition(p.sourceOffset >= 0 && p.sourceOffset + p.count <= src.count, "gathered piece outside its source")
                    try self.cipher.sealUpdate(UnsafeRawBufferPointer(rebasing: src[p.sourceOffset..<(p.sourceOffset + p.count)]), into: base + p.at)
                }
                position = p.at + p.count
            }
            if range.upperBound > position {
                try self.cipher.sealUpdate(UnsafeRawBufferPointer(start: base + position, count: range.upperBound - position), into: base + position)
            }
            try self.cipher.finishSeal(tag: UnsafeMutableRawBufferPointer(rebasing: out[range.upperBound..<(range.upperBound + 16)]))
        } catch { throw .crypto(error) }
        self.nonce += 1
    }

    /// Decrypts `buffer[range]` in place, where the last 16 bytes are the tag. On success the
    /// plaintext is `range.lowerBound ..< range.upperBound − 16`.
    package func open(_ buffer: inout [UInt8], ciphertext range: Range<Int>) throws(ChannelError) {
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
