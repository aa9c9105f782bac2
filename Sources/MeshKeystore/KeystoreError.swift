/// Why a key file could not be written or opened.
public enum KeystoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file does not exist.
    case fileNotFound(path: String)
    /// The file exists but could not be read or written (`errno` text).
    case io(path: String, reason: String)
    /// Refused to replace an existing file.
    case alreadyExists(path: String)
    /// The file is not a Tensormesh key file, or is truncated or corrupt.
    case malformed(reason: String)
    /// The file uses a format version this build does not know.
    case unsupportedFormat(String)
    /// The password does not open this key file.
    case wrongPassword
    /// The password is right but the file's contents were altered.
    case tampered(reason: String)
    /// No password could be obtained.
    case noPassword(reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "key file not found: \(path)"
        case .io(let path, let reason): return "\(path): \(reason)"
        case .alreadyExists(let path): return "\(path) already exists (refusing to overwrite a key)"
        case .malformed(let reason): return "not a valid key file: \(reason)"
        case .unsupportedFormat(let f): return "unsupported key file format \"\(f)\""
        case .wrongPassword: return "wrong password for this key file"
        case .tampered(let reason): return "key file has been tampered with: \(reason)"
        case .noPassword(let reason): return "no password: \(reason)"
        }
    }
}
