import MeshCrypto

/// A Noise CipherState for ChaChaPoly (Noise spec revision 34, section 5.1): a key, or none,
/// and a 64-bit nonce counter. The nonce is 4 zero bytes then the counter little-endian.
public struct NoiseCipherState {
    private var cipher: ChaChaPoly?
    private var key: SecureBytes?
    /// The next nonce.
    public private(set) var nonce: UInt64 = 0

    public init() {}

    /// InitializeKey: sets the key and resets the nonce. The cipher context is made on first
    /// use: the two states `Split()` returns only hand their keys to the transport.
    public mutating func initializeKey(_ key: SecureBytes?) {
        self.key = key
        self.cipher = nil
        self.nonce = 0
    }

    /// Whether a key is set.
    public var hasKey: Bool { self.key != nil }

    /// The cipher for the current key, made when first needed.
    private mutating func keyedCipher() -> ChaChaPoly? {
        if self.cipher == nil, let key = self.key { self.cipher = try! ChaChaPoly(key: key) }
        return self.cipher
    }

    static func nonceBytes(_ n: UInt64) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { b[4 + i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
        return b
    }

    /// EncryptWithAd.
    public mutating func encrypt(ad: [UInt8], plaintext: [UInt8]) throws(ChannelError) -> [UInt8] {
        guard let cipher = self.keyedCipher() else { return plaintext }
        guard self.nonce != UInt64.max else { throw .nonceExhausted }
        let out: [UInt8]
        do { out = try cipher.seal(nonce: Self.nonceBytes(self.nonce), ad: ad, plaintext: plaintext) } catch { throw .crypto(error) }
        self.nonce += 1
        return out
    }

    /// DecryptWithAd. The nonce advances only on success.
    public mutating func decrypt(ad: [UInt8], ciphertext: [UInt8]) throws(ChannelError) -> [UInt8] {
        guard let cipher = self.keyedCipher() else { return ciphertext }
        guard self.nonce != UInt64.max else { throw .nonceExhausted }
        let out: [UInt8]
        do { out = try cipher.open(nonce: Self.nonceBytes(self.nonce), ad: ad, ciphertext: ciphertext) } catch { throw .decryptFailed }
        self.nonce += 1
        return out
    }

    /// Rekey: k = the first 32 bytes of ENCRYPT(k, 2^64 − 1, "", 32 zero bytes).
    public mutating func rekey() {
        guard let cipher = self.keyedCipher() else { return }
        var out = try! cipher.seal(nonce: Self.nonceBytes(UInt64.max), ad: [], plaintext: [UInt8](repeating: 0, count: 32))
        let newKey = SecureBytes(copying: out[0..<32])
        Memory.zero(&out)
        let n = self.nonce
        self.initializeKey(newKey)
        self.nonce = n
    }

    /// Moves the key out (for the transport layer's in-place cipher).
    func takeKey() -> SecureBytes? { self.key }
}
