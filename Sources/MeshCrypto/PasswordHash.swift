internal import CSodium

/// Argon2id password hashing (libsodium's `crypto_pwhash`), for the keystore.
public enum PasswordHash {
    /// Salt length in bytes.
    public static let saltByteCount = 16

    /// Cost parameters.
    public struct Cost: Equatable, Sendable {
        /// Passes over memory.
        public var opsLimit: UInt64
        /// Memory in bytes.
        public var memLimit: Int

        public init(opsLimit: UInt64, memLimit: Int) {
            self.opsLimit = opsLimit
            self.memLimit = memLimit
        }

        /// libsodium's "moderate" preset (3 passes, 256 MiB) is too slow for devnets of
        /// many keys; this is its "interactive" preset: 2 passes over 64 MiB.
        public static let interactive = Cost(opsLimit: 2, memLimit: 64 << 20)

        /// Bounds accepted from a key file, so a crafted file cannot ask for gigabytes.
        public static let maximumMemLimit = 1 << 30
        public static let maximumOpsLimit: UInt64 = 16
        public static let minimumMemLimit = 8 << 10
    }

    /// Derives `length` bytes from `password` and `salt`. The corresponding C function is
    /// `crypto_pwhash` with `crypto_pwhash_ALG_ARGON2ID13`.
    public static func argon2id(
        password: SecureBytes, salt: [UInt8], cost: Cost, length: Int = 32
    ) throws(CryptoError) -> SecureBytes {
        guard salt.count == saltByteCount else { throw .invalidLength(what: "salt", expected: saltByteCount, actual: salt.count) }
        guard cost.memLimit >= Cost.minimumMemLimit, cost.memLimit <= Cost.maximumMemLimit,
              cost.opsLimit >= 1, cost.opsLimit <= Cost.maximumOpsLimit else { throw .passwordHashFailed }
        Sodium.ensure()
        var rc: Int32 = -1
        let key = SecureBytes(count: length) { out in
            password.withUnsafeBytes { pw in
                salt.withUnsafeBytes { s in
                    // SecureBytes always owns at least one byte, so even an empty password
                    // has a base address (the C API requires a non-null pointer).
                    rc = crypto_pwhash(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(length),
                        pw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64(pw.count),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        cost.opsLimit, cost.memLimit, crypto_pwhash_alg_argon2id13())
                }
            }
        }
        guard rc == 0 else { throw .passwordHashFailed }
        return key
    }
}
