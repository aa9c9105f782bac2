/// Failures of the cryptographic and compression primitives.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libsodium could not be initialised.
    case sodiumUnavailable
    /// A key, nonce, tag or signature has the wrong length.
    case invalidLength(what: String, expected: Int, actual: Int)
    /// A public key is not a valid curve point (or is of small order).
    case invalidPublicKey
    /// An AEAD ciphertext or tag did not authenticate.
    case authenticationFailed
    /// A signature did not verify.
    case invalidSignature
    /// Diffie-Hellman produced the all-zero output (a low-order peer key).
    case weakSharedSecret
    /// An OpenSSL call failed; `step` names it, `code` is `ERR_get_error()`.
    case openSSL(step: String, code: UInt)
    /// Password hashing failed (usually: not enough memory for the chosen limit).
    case passwordHashFailed
    /// LZ4 compression failed.
    case compressionFailed
    /// LZ4 input is corrupt or does not produce the declared size.
    case decompressionFailed
    /// The declared decompressed size is larger than the caller's limit (a decompression bomb).
    case decompressedSizeExceedsLimit(declared: Int, limit: Int)

    public var description: String {
        switch self {
        case .sodiumUnavailable: return "libsodium could not be initialised"
        case .invalidLength(let what, let expected, let actual):
            return "\(what): expected \(expected) bytes, got \(actual)"
        case .invalidPublicKey: return "invalid public key"
        case .authenticationFailed: return "authentication failed"
        case .invalidSignature: return "invalid signature"
        case .weakSharedSecret: return "weak (all-zero) shared secret"
        case .openSSL(let step, let code): return "OpenSSL \(step) failed (error \(code))"
        case .passwordHashFailed: return "password hashing failed"
        case .compressionFailed: return "compression failed"
        case .decompressionFailed: return "corrupt compressed data"
        case .decompressedSizeExceedsLimit(let declared, let limit):
            return "decompressed size \(declared) exceeds the limit \(limit)"
        }
    }
}
