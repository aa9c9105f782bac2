import MeshCrypto

/// A Noise SymmetricState with SHA-256 (Noise spec section 5.2).
public struct NoiseSymmetricState {
    public private(set) var chainingKey: [UInt8]
    public private(set) var handshakeHash: [UInt8]
    public var cipher = NoiseCipherState()

    /// InitializeSymmetric(protocol_name).
    public init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= 32 {
            self.handshakeHash = name + [UInt8](repeating: 0, count: 32 - name.count)
        } else {
            self.handshakeHash = SHA256.hash(name)
        }
        self.chainingKey = self.handshakeHash
    }

    /// HKDF as Noise defines it (RFC 5869 with empty info, 2 or 3 outputs).
    static func hkdf(chainingKey: [UInt8], ikm: [UInt8], outputs: Int) -> [[UInt8]] {
        var temp = HMACSHA256.authenticate(key: chainingKey, message: ikm)
        defer { Memory.zero(&temp) }
        var results: [[UInt8]] = []
        var previous: [UInt8] = []
        for i in 1...outputs {
            previous = HMACSHA256.authenticate(key: temp, parts: [previous, [UInt8(i)]])
            results.append(previous)
        }
        return results
    }

    public mutating func mixKey(_ ikm: [UInt8]) {
        var out = Self.hkdf(chainingKey: self.chainingKey, ikm: ikm, outputs: 2)
        Memory.zero(&self.chainingKey)
        self.chainingKey = out[0]
        self.cipher.initializeKey(SecureBytes(consuming: &out[1]))
    }

    public mutating func mixHash(_ data: [UInt8]) {
        self.handshakeHash = SHA256.hash(parts: [self.handshakeHash, data])
    }

    public mutating func mixKeyAndHash(_ ikm: [UInt8]) {
        var out = Self.hkdf(chainingKey: self.chainingKey, ikm: ikm, outputs: 3)
        Memory.zero(&self.chainingKey)
        self.chainingKey = out[0]
        self.mixHash(out[1])
        self.cipher.initializeKey(SecureBytes(consuming: &out[2]))
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

    /// Split: the two transport CipherStates (initiator-to-responder first).
    public mutating func split() -> (NoiseCipherState, NoiseCipherState) {
        var out = Self.hkdf(chainingKey: self.chainingKey, ikm: [], outputs: 2)
        var c1 = NoiseCipherState()
        var c2 = NoiseCipherState()
        c1.initializeKey(SecureBytes(consuming: &out[0]))
        c2.initializeKey(SecureBytes(consuming: &out[1]))
        Memory.zero(&self.chainingKey)
        return (c1, c2)
    }
}
