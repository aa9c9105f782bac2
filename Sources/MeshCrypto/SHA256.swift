internal import COpenSSL
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// SHA-256 (FIPS 180-4) through OpenSSL's EVP interface, which uses the CPU's SHA
/// extensions (about 6x libsodium's speed on these machines, FACTS.md).
public enum SHA256 {
    /// The digest length in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `data`. The corresponding C function is `EVP_Digest`.
    public static func hash(_ data: some ContiguousBytesView) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withBytes { input in
            out.withUnsafeMutableBytes { o in
                var len: UInt32 = 0
                let rc = EVP_Digest(
                    input.baseAddress, input.count,
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self), &len,
                    OpenSSL.sha256.pointer, nil)
                precondition(rc == 1 && len == 32, "EVP_Digest(SHA256) failed")
            }
        }
        return out
    }

    /// Writes the digest of `input` into `out` (32 bytes): no allocation of our own, for hot
    /// paths that hash into buffers they own. For public data only (ids, block hashes): the
    /// thread's reused context keeps the last input's hash state until the next call or the
    /// thread's end; hash secrets with `hash(_:)`, whose context is freed at once.
    public static func hash(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == 32, "SHA-256 digest buffer must be 32 bytes")
        // The calling thread's context, reused: `EVP_Digest` allocates and frees one per call
        // (a malloc for every gossip frame's message id and every vote's id).
        let ctx = ThreadContext.current()
        var len: UInt32 = 0
        let ok = EVP_DigestInit_ex(ctx, OpenSSL.sha256.pointer, nil) == 1
            && EVP_DigestUpdate(ctx, input.baseAddress, input.count) == 1
            && EVP_DigestFinal_ex(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &len) == 1
        precondition(ok && len == 32, "SHA-256 digest failed")
    }

    /// One `EVP_MD_CTX` per thread for the one-shot digest, freed when the thread exits.
    enum ThreadContext {
        static let key: pthread_key_t = {
            var key = pthread_key_t()
            let rc = pthread_key_create(&key) { ctx in EVP_MD_CTX_free(OpaquePointer(ctx)) }
            precondition(rc == 0, "pthread_key_create failed")
            return key
        }()

        static func current() -> OpaquePointer {
            if let ctx = pthread_getspecific(key) { return OpaquePointer(ctx) }
            guard let ctx = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new failed") }
            precondition(pthread_setspecific(key, UnsafeRawPointer(ctx)) == 0, "pthread_setspecific failed")
            return ctx
        }
    }

    /// The digest of several byte strings concatenated.
    public static func hash(parts: [[UInt8]]) -> [UInt8] {
        let h = Hasher()
        for p in parts { h.update(p) }
        return h.finalize()
    }

    /// An incremental SHA-256 computation owning one `EVP_MD_CTX`.
    public final class Hasher {
        private let ctx: OpaquePointer

        /// Starts a new digest.
        public init() {
            guard let ctx = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new failed") }
            self.ctx = ctx
            precondition(EVP_DigestInit_ex(ctx, OpenSSL.sha256.pointer, nil) == 1, "EVP_DigestInit_ex failed")
        }

        deinit { EVP_MD_CTX_free(self.ctx) }

        /// Absorbs `data`. The corresponding C function is `EVP_DigestUpdate`.
        public func update(_ data: some ContiguousBytesView) {
            data.withBytes { input in
                if input.count > 0 {
                    precondition(EVP_DigestUpdate(self.ctx, input.baseAddress, input.count) == 1)
                }
            }
        }

        /// Writes the digest into `out` (32 bytes) and resets the hasher for reuse: no
        /// allocation, for hot paths that hash into buffers they own.
        public func finalize(into out: UnsafeMutableRawBufferPointer) {
            precondition(out.count == 32, "SHA-256 digest buffer must be 32 bytes")
            var len: UInt32 = 0
            precondition(EVP_DigestFinal_ex(self.ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &len) == 1)
            precondition(EVP_DigestInit_ex(self.ctx, OpenSSL.sha256.pointer, nil) == 1)
        }

        /// Returns the digest and resets the hasher for reuse.
        public func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32)
            out.withUnsafeMutableBytes { o in
                var len: UInt32 = 0
                precondition(EVP_DigestFinal_ex(self.ctx, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &len) == 1)
            }
            precondition(EVP_DigestInit_ex(self.ctx, OpenSSL.sha256.pointer, nil) == 1)
            return out
        }
    }
}
