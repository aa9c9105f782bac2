#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file replacement: write a temporary file, fsync it, rename it over the
/// target (or, when the target must not exist, hard-link it there, which fails if anything
/// appeared in between) and fsync the directory. Readers see either the old or the new
/// file, never a torn one.
public enum AtomicFile {
    /// Writes `bytes` to `path` with `mode` (default 0600).
    ///
    /// - Parameter overwrite: when false, an existing file is an error.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600, overwrite: Bool = false) throws(KeystoreError) {
        if !overwrite && access(path, F_OK) == 0 { throw .alreadyExists(path: path) }
        let dir = directory(of: path)
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io(path: tmp, reason: errnoText()) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // Enforce the mode even under a permissive umask.
        _ = fchmod(fd, mode)
        var written = 0
        let total = bytes.count
        let writeError: String? = bytes.withUnsafeBytes { buf -> String? in
            while written < total {
                let n = Glibc.write(fd, buf.baseAddress! + written, total - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errnoText()
                }
                written += n
            }
            return nil
        }
        if let writeError {
            close(fd)
            throw .io(path: tmp, reason: writeError)
        }
        if fsync(fd) != 0 {
            let reason = errnoText()
            close(fd)
            throw .io(path: tmp, reason: "fsync: \(reason)")
        }
        close(fd)
        if overwrite {
            guard rename(tmp, path) == 0 else { throw .io(path: path, reason: "rename: \(errnoText())") }
        } else {
            // link() never replaces: a file created after the access() check above (another
            // process writing the same key) is kept, and we report it, instead of rename()
            // silently replacing it.
            if link(tmp, path) == 0 {
                unlink(tmp)
            } else if errno == EEXIST {
                throw .alreadyExists(path: path)
            } else if [EPERM, EOPNOTSUPP, ENOSYS].contains(errno) {
                // A file system without hard links: the checked rename, as before.
                guard access(path, F_OK) != 0 else { throw .alreadyExists(path: path) }
                guard rename(tmp, path) == 0 else { throw .io(path: path, reason: "rename: \(errnoText())") }
            } else {
                throw .io(path: path, reason: "link: \(errnoText())")
            }
        }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Reads a whole file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(KeystoreError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw .fileNotFound(path: path) }
            throw .io(path: path, reason: errnoText())
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: errnoText())
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw .malformed(reason: "file is larger than \(limit) bytes") }
        }
        return out
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[path.startIndex..<slash])
        return d.isEmpty ? "/" : d
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
