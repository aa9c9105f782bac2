internal import CSodium

/// X25519 Diffie-Hellman (RFC 7748) through libsodium.
public enum X25519 {
    /// A 32-byte X25519 public key.
    public struct PublicKey: Hashable, Sendable {
        /// The u-coordinate.
        public let bytes: [UInt8]

        /// Wraps 32 bytes.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == 32 else { throw .invalidLength(what: "X25519 public key", expected: 32, actual: bytes.count) }
            self.bytes = bytes
        }
    }

    /// An X25519 private key, wiped on release.
    public final class PrivateKey: Sendable {
        private let secret: SecureBytes
        /// The matching public key.
        public let publicKey: PublicKey

        /// A new random key (its public key as ``init(secret:)`` derives it).
        public convenience init() {
            try! self.init(secret: SecureBytes.random(count: 32))
        }

        /// Wraps a 32-byte scalar (clamped by the library when used). The public key comes
        /// from the fixed-base Edwards multiplication mapped to the Montgomery curve (about
        /// half the time of the ladder; see `X25519+PublicKey.swift`).
        public init(secret: SecureBytes) throws(CryptoError) {
            guard secret.count == 32 else { throw .invalidLength(what: "X25519 private key", expected: 32, actual: secret.count) }
            Sodium.ensure()
            self.secret = secret
            let pk = [UInt8](unsafeUninitializedCapacity: 32) { p, count in
                secret.withUnsafeBytes { s in X25519.publicKey(of: s, into: UnsafeMutableRawBufferPointer(p)) }
                count = 32
            }
            self.publicKey = try! PublicKey(bytes: pk)
        }

        /// Wraps scalar bytes given as an array (test vectors).
        public convenience init(secretBytes: [UInt8]) throws(CryptoError) {
            try self.init(secret: SecureBytes(copying: secretBytes))
        }

        /// The shared secret with `peer`. Throws ``CryptoError/weakSharedSecret`` when the
        /// result is all zeros (a low-order peer key). The corresponding C function is
        /// `crypto_scalarmult`.
        public func sharedSecret(with peer: PublicKey) throws(CryptoError) -> SecureBytes {
            var rc: Int32 = 0
            let out = SecureBytes(count: 32) { o in
                self.secret.withUnsafeBytes { s in
                    peer.bytes.withUnsafeBytes { p in
                        rc = crypto_scalarmult(
                            o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            if rc != 0 { throw .weakSharedSecret }
            return out
        }

        /// The raw scalar, for tests that replay fixed vectors.
        public func withSecretBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try self.secret.withUnsafeBytes(body)
        }
    }
}
