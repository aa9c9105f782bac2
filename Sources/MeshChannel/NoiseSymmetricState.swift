import MeshCrypto

/// A Noise SymmetricState with SHA-256 (Noise spec section 5.2).
///
/// The handshake path allocates little: the chaining key lives in one zeroed-on-release
/// buffer updated in place (copied only when a copy of the state is written, so the state
/// keeps value semantics), the handshake hash is rewritten in place, and HMAC/HKDF run on
/// stack buffers with one reused SHA-256 context.
public struct NoiseSymmetricState {
    /// The chaining key `ck`, copied out (for tests and diagnostics).
    public var chainingKey: [UInt8] { self.ck.withUnsafeBytes { Array($0) } }
    /// The handshake hash `h`.
    public private(set) var handshakeHash: [UInt8]
    public var cipher = NoiseCipherState()
    private var ck: ChainingKey
    /// Reused by every hash and HMAC of this state; it holds no data between calls (each
    /// digest resets it), so copies of the state may share it.
    private let hasher = SHA256.Hasher()

    /// InitializeSymmetric(protocol_name).
    public init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= 32 {
            self.handshakeHash = name + [UInt8](repeating: 0, count: 32 - name.count)
        } else {
            self.handshakeHash = SHA256.hash(name)
        }
        self.ck = self.handshakeHash.withUnsafeBytes { ChainingKey(copying: $0) }
    }

    /// HKDF as Noise defines it (RFC 5869 with empty info): `outputs` (2 or 3) 32-byte
    /// outputs written into `out`, from the chaining key and `ikm`. The temporary key is zeroed.
    func hkdf(ikm: UnsafeRawBufferPointer, outputs: Int, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= 32 * outputs)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        withUnsafeTemporaryAllocation(byteCount: 33, alignment: 16) { tmp in
            let temp = UnsafeMutableRawBufferPointer(rebasing: tmp[0..<32])
            self.ck.withUnsafeBytes { key in
                HMACSHA256.authenticate(key: key, first: ikm, second: none, into: temp, hasher: self.hasher)
            }
            for i in 0..<outputs {
                tmp[32] = UInt8(i + 1)
                let previous = i == 0 ? none : UnsafeRawBufferPointer(rebasing: out[(32 * i - 32)..<(32 * i)])
                HMACSHA256.authenticate(key: UnsafeRawBufferPointer(temp), first: previous,
                                        second: UnsafeRawBufferPointer(rebasing: tmp[32..<33]),
                                        into: UnsafeMutableRawBufferPointer(rebasing: out[(32 * i)..<(32 * i + 32)]), hasher: self.hasher)
            }
            Memory.zero(tmp)
        }
    }

    /// MixKey(input_key_material).
    public mutating func mixKey(_ ikm: some ContiguousBytesView) {
        let key: SecureBytes = withUnsafeTemporaryAllocation(byteCount: 64, alignment: 16) { out in
            ikm.withBytes { self.hkdf(ikm: $0, outputs: 2, into: out) }
            self.setChainingKey(UnsafeRawBufferPointer(rebasing: out[0..<32]))
            defer { Memory.zero(out) }
            return SecureBytes(count: 32) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: out[32..<64])) }
        }
        self.cipher.initializeKey(key)
    }

    /// MixHash(data): h = SHA-256(h ‖ data), written in place.
    public mutating func mixHash(_ data: some ContiguousBytesView) {
        let hasher = self.hasher
        self.handshakeHash.withUnsafeMutableBytes { h in
            hasher.update(UnsafeRawBufferPointer(h))
            hasher.update(data)
            hasher.finalize(into: h)
        }
    }

    /// MixKeyAndHash(input_key_material).
    public mutating func mixKeyAndHash(_ ikm: some ContiguousBytesView) {
        let key: SecureBytes = withUnsafeTemporaryAllocation(byteCount: 96, alignment: 16) { out in
            ikm.withBytes { self.hkdf(ikm: $0, outputs: 3, into: out) }
            self.setChainingKey(UnsafeRawBufferPointer(rebasing: out[0..<32]))
            self.mixHash(UnsafeRawBufferPointer(rebasing: out[32..<64]))
            defer { Memory.zero(out) }
            return SecureBytes(count: 32) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: out[64..<96])) }
        }
        self.cipher.initializeKey(key)
    }

    public mutating func encryptAndHash(_ plaintext: [UInt8]) throws(ChannelError) -> [UInt8] {
        let c = try self.cipher.encrypt(ad: self.handshakeHash, plaintext: plaintext)
        self.mixHash(c)
        return c
    }

    public mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(ChannelError) -> [UInt8] {
        let p = try self.cipher.decrypt(ad: self.handshakeHash, ciphertext: ciphertext)
        self.mixHash(ciphertext)
        return p
    }

    /// Split: the two transport CipherStates (initiator-to-responder first). The chaining
    /// key is zeroed.
    public mutating func split() -> (NoiseCipherState, NoiseCipherState) {
        var c1 = NoiseCipherState()
        var c2 = NoiseCipherState()
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 16) { out in
            self.hkdf(ikm: UnsafeRawBufferPointer(start: nil, count: 0), outputs: 2, into: out)
            c1.initializeKey(SecureBytes(count: 32) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: out[0..<32])) })
            c2.initializeKey(SecureBytes(count: 32) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: out[32..<64])) })
            Memory.zero(out)
        }
        let zeros = [UInt8](repeating: 0, count: 32)
        zeros.withUnsafeBytes { self.setChainingKey($0) }
        return (c1, c2)
    }

    /// Overwrites the chaining key in place; a buffer shared with a copy of this state is
    /// left to that copy and a new one made (each buffer is zeroed when released).
    private mutating func setChainingKey(_ bytes: UnsafeRawBufferPointer) {
        if isKnownUniquelyReferenced(&self.ck) {
            self.ck.overwrite(with: bytes)
        } else {
            self.ck = ChainingKey(copying: bytes)
        }
    }
}

/// The 32-byte chaining key on the heap, zeroed when released.
final class ChainingKey {
    private let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)

    init(copying bytes: UnsafeRawBufferPointer) { self.overwrite(with: bytes) }

    func overwrite(with bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == 32)
        self.storage.copyMemory(from: bytes)
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(self.storage))
    }

    deinit {
        Memory.zero(self.storage)
        self.storage.deallocate()
    }
}
