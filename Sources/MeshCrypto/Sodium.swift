internal import CSodium

/// One-time initialisation of libsodium.
///
/// `sodium_init` is idempotent and thread-safe; a global `let` makes Swift run it once,
/// lazily, the first time any primitive needs it.
enum Sodium {
    private static let ready: Bool = sodium_init() >= 0

    /// Traps if libsodium cannot start: without it no key can be made or checked, which
    /// is an environment failure rather than bad input.
    @inline(__always)
    static func ensure() {
        precondition(ready, "libsodium failed to initialise")
    }

    /// The version string of the linked libsodium, e.g. "1.0.18".
    static var version: String {
        String(cString: sodium_version_string())
    }
}

/// Versions of the linked C libraries, for diagnostics and benchmark reports.
public enum NativeLibraries {
    /// libsodium's version string.
    public static var sodiumVersion: String { Sodium.version }
    /// OpenSSL's version number as `major.minor.patch`.
    public static var openSSLVersion: String { OpenSSL.versionString }
    /// LZ4's version string.
    public static var lz4Version: String { LZ4.versionString }
}
