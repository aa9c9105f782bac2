internal import COpenSSL

/// Shared OpenSSL handles, fetched once.
///
/// OpenSSL 3 looks algorithms up in a provider on every implicit use (`EVP_sha256()`);
/// fetching them once removes that cost from the hot path. Fetched `EVP_MD`/`EVP_CIPHER`
/// objects are immutable and may be shared between threads (OpenSSL's threading docs).
enum OpenSSL {
    struct Handle: @unchecked Sendable {
        // Safety: points to an immutable, reference-counted OpenSSL algorithm object that
        // is never freed (process lifetime) and is documented as thread-safe to share.
        let pointer: OpaquePointer
    }

    static let sha256: Handle = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else {
            preconditionFailure("OpenSSL has no SHA256 implementation")
        }
        return Handle(pointer: md)
    }()

    static let sha1: Handle = {
        guard let md = EVP_MD_fetch(nil, "SHA1", nil) else {
            preconditionFailure("OpenSSL has no SHA1 implementation")
        }
        return Handle(pointer: md)
    }()

    static let sha512: Handle = {
        guard let md = EVP_MD_fetch(nil, "SHA512", nil) else {
            preconditionFailure("OpenSSL has no SHA512 implementation")
        }
        return Handle(pointer: md)
    }()

    static let chacha20Poly1305: Handle = {
        guard let cipher = EVP_CIPHER_fetch(nil, "ChaCha20-Poly1305", nil) else {
            preconditionFailure("OpenSSL has no ChaCha20-Poly1305 implementation")
        }
        return Handle(pointer: cipher)
    }()

    static var versionString: String {
        let v = COpenSSL_version_number()
        return "\(v >> 28).\((v >> 20) & 0xff).\((v >> 4) & 0xff)"
    }

    /// The oldest error on the thread's queue (and clears the queue).
    static func lastError() -> UInt {
        let code = ERR_get_error()
        ERR_clear_error()
        return UInt(code)
    }
}
