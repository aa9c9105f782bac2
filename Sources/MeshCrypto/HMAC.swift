/// HMAC-SHA256 (RFC 2104) over OpenSSL's SHA-256.
public enum HMACSHA256 {
    private static let blockSize = 64

    /// The 32-byte MAC of the concatenation of `parts` under `key`.
    public static func authenticate(key: some ContiguousBytesView, parts: [[UInt8]]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        key.withBytes { k in
            if k.count > blockSize {
                let digest = SHA256.hash(k)
                block.replaceSubrange(0..<32, with: digest)
            } else {
                for i in 0..<k.count { block[i] = k[i] }
            }
        }
        var inner = block.map { $0 ^ 0x36 }
        var outer = block.map { $0 ^ 0x5c }
        defer {
            Memory.zero(&block)
            Memory.zero(&inner)
            Memory.zero(&outer)
        }
        let h = SHA256.Hasher()
        h.update(inner)
        for p in parts { h.update(p) }
        var innerDigest = h.finalize()
        defer { Memory.zero(&innerDigest) }
        h.update(outer)
        h.update(innerDigest)
        return h.finalize()
    }

    /// The MAC of `first` ‖ `second` under `key` (at most 64 bytes), written into `out`
    /// (32 bytes, which may overlap neither input), computed with `hasher` (reset on return).
    /// No heap allocation: the padded key and the inner digest live on the stack and are
    /// zeroed before returning. For hot paths such as the Noise HKDF.
    public static func authenticate(
        key: UnsafeRawBufferPointer, first: UnsafeRawBufferPointer, second: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawBufferPointer, hasher h: SHA256.Hasher
    ) {
        precondition(key.count <= blockSize, "HMAC key longer than a block")
        withUnsafeTemporaryAllocation(byteCount: blockSize + 32, alignment: 16) { tmp in
            let pad = UnsafeMutableRawBufferPointer(rebasing: tmp[0..<blockSize])
            let inner = UnsafeMutableRawBufferPointer(rebasing: tmp[blockSize...])
            for i in 0..<blockSize { pad[i] = 0x36 }
            for i in 0..<key.count { pad[i] = key[i] ^ 0x36 }
            h.update(UnsafeRawBufferPointer(pad))
            h.update(first)
            h.update(second)
            h.finalize(into: inner)
            for i in 0..<blockSize { pad[i] ^= 0x36 ^ 0x5c }
            h.update(UnsafeRawBufferPointer(pad))
            h.update(UnsafeRawBufferPointer(inner))
            h.finalize(into: out)
            Memory.zero(tmp)
        }
    }

    /// The MAC of one message.
    public static func authenticate(key: some ContiguousBytesView, message: [UInt8]) -> [UInt8] {
        authenticate(key: key, parts: [message])
    }
}

/// HKDF with HMAC-SHA256 (RFC 5869).
public enum HKDF {
    /// HKDF-Extract: the pseudorandom key from `salt` and input keying material.
    public static func extract(salt: [UInt8], ikm: some ContiguousBytesView) -> [UInt8] {
        let ikmBytes = ikm.withBytes { Array($0) }
        var copy = ikmBytes
        defer { Memory.zero(&copy) }
        return HMACSHA256.authenticate(key: salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt, message: copy)
    }

    /// HKDF-Expand: `length` bytes (at most 255 * 32) of output keying material.
    public static func expand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        precondition(length >= 0 && length <= 255 * 32, "HKDF output too long")
        var out: [UInt8] = []
        out.reserveCapacity(length)
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while out.count < length {
            previous = HMACSHA256.authenticate(key: prk, parts: [previous, info, [counter]])
            out.append(contentsOf: previous.prefix(length - out.count))
            counter &+= 1
        }
        Memory.zero(&previous)
        return out
    }

    /// Extract then expand.
    public static func deriveKey(salt: [UInt8], ikm: some ContiguousBytesView, info: [UInt8], length: Int) -> [UInt8] {
        var prk = extract(salt: salt, ikm: ikm)
        defer { Memory.zero(&prk) }
        return expand(prk: prk, info: info, length: length)
    }
}
