internal import CSodium
import MeshCodec

/// Ed25519 signatures (RFC 8032) through libsodium.
///
/// Verification follows libsodium 1.0.18's rules (canonical S, no small-order keys or R);
/// every node must agree on them, which the edge-case vectors in the tests pin down.
public enum Ed25519 {
    /// A 32-byte Ed25519 public key.
    public struct PublicKey: Hashable, Sendable, Comparable, CustomStringConvertible, BinaryCodable {
        /// The encoded point, inline (keys are table keys on every peer and vote lookup).
        let raw: Bytes32

        /// The encoded point (a fresh array).
        public var bytes: [UInt8] { self.raw.bytes }

        /// Wraps 32 bytes. The point is checked when a signature is verified.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == 32 else { throw .invalidLength(what: "Ed25519 public key", expected: 32, actual: bytes.count) }
            self.raw = Bytes32(bytes)
        }

        /// Parses 64 hex digits.
        public init?(hex: String) {
            guard let raw = Hex.decode(hex, count: 32) else { return nil }
            self.raw = Bytes32(raw)
        }

        /// Lowercase hex, as node ids and hotkeys are written.
        public var hex: String { Hex.encode(self.bytes) }
        public var description: String { self.hex }

        public static func < (a: PublicKey, b: PublicKey) -> Bool { a.raw < b.raw }

        public func encode(to writer: inout ByteWriter) { self.raw.encode(to: &writer) }
        public init(from reader: inout ByteReader) throws(CodecError) { self.raw = try Bytes32(from: &reader) }

        /// Verifies `signature` over `message`. The corresponding C function is
        /// `crypto_sign_verify_detached`.
        public func isValidSignature(_ signature: Signature, for message: some ContiguousBytesView) -> Bool {
            Sodium.ensure()
            return message.withBytes { msg in
                signature.bytes.withUnsafeBytes { sig in
                    self.bytes.withUnsafeBytes { pk in
                        crypto_sign_verify_detached(
                            sig.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            msg.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(msg.count),
                            pk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                    }
                }
            }
        }

        /// Throws ``CryptoError/invalidSignature`` unless `signature` verifies.
        public func verify(_ signature: Signature, for message: some ContiguousBytesView) throws(CryptoError) {
            if !self.isValidSignature(signature, for: message) { throw .invalidSignature }
        }
    }

    /// A 64-byte Ed25519 signature.
    public struct Signature: Hashable, Sendable, BinaryCodable {
        /// The encoded (R, S) pair.
        public let bytes: [UInt8]

        /// Wraps 64 bytes.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == 64 else { throw .invalidLength(what: "Ed25519 signature", expected: 64, actual: bytes.count) }
            self.bytes = bytes
        }

        public func encode(to writer: inout ByteWriter) { writer.raw(self.bytes) }
        public init(from reader: inout ByteReader) throws(CodecError) { self.bytes = try reader.raw(64) }
    }

    /// An Ed25519 key pair. The secret is held in ``SecureBytes`` and wiped on release.
    public final class PrivateKey: Sendable {
        /// libsodium's 64-byte secret key (seed followed by public key).
        private let secret: SecureBytes
        /// The matching public key.
        public let publicKey: PublicKey

        /// A new random key pair. The corresponding C function is `crypto_sign_keypair`.
        public convenience init() {
            let seed = SecureBytes.random(count: 32)
            try! self.init(seed: seed)
        }

        /// The key pair derived from a 32-byte seed (RFC 8032's private key).
        /// The corresponding C function is `crypto_sign_seed_keypair`.
        public init(seed: SecureBytes) throws(CryptoError) {
            guard seed.count == 32 else { throw .invalidLength(what: "Ed25519 seed", expected: 32, actual: seed.count) }
            Sodium.ensure()
            var pk = [UInt8](repeating: 0, count: 32)
            self.secret = SecureBytes(count: 64) { sk in
                seed.withUnsafeBytes { s in
                    pk.withUnsafeMutableBytes { p in
                        _ = crypto_sign_seed_keypair(
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            self.publicKey = try! PublicKey(bytes: pk)
        }

        /// The key pair derived from seed bytes given as an array (test vectors, genesis).
        public convenience init(seedBytes: [UInt8]) throws(CryptoError) {
            try self.init(seed: SecureBytes(copying: seedBytes))
        }

        /// A copy of the 32-byte seed, for the keystore.
        public func seed() -> SecureBytes {
            self.secret.withUnsafeBytes { sk in SecureBytes(copying: sk[0..<32]) }
        }

        /// Signs `message`. The corresponding C function is `crypto_sign_detached`.
        public func sign(_ message: some ContiguousBytesView) -> Signature {
            var sig = [UInt8](repeating: 0, count: 64)
            message.withBytes { msg in
                self.secret.withUnsafeBytes { sk in
                    sig.withUnsafeMutableBytes { s in
                        _ = crypto_sign_detached(
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self), nil,
                            msg.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(msg.count),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            return try! Signature(bytes: sig)
        }

        /// The X25519 private key birationally equivalent to this key, for protocols that
        /// need Diffie-Hellman with the identity key. The corresponding C function is
        /// `crypto_sign_ed25519_sk_to_curve25519`.
        public func curve25519PrivateKey() -> X25519.PrivateKey {
            let raw = SecureBytes(count: 32) { out in
                self.secret.withUnsafeBytes { sk in
                    _ = crypto_sign_ed25519_sk_to_curve25519(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            return try! X25519.PrivateKey(secret: raw)
        }
    }
}

extension Ed25519.PublicKey {
    /// The X25519 public key birationally equivalent to this Ed25519 key.
    /// The corresponding C function is `crypto_sign_ed25519_pk_to_curve25519`.
    public func curve25519PublicKey() throws(CryptoError) -> X25519.PublicKey {
        Sodium.ensure()
        var out = [UInt8](repeating: 0, count: 32)
        let rc = out.withUnsafeMutableBytes { o in
            self.bytes.withUnsafeBytes { p in
                crypto_sign_ed25519_pk_to_curve25519(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    p.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw .invalidPublicKey }
        return try X25519.PublicKey(bytes: out)
    }
}
