#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and the `errno` it reported.
public struct SocketError: Error, Equatable, Sendable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The `errno` text, e.g. "Connection refused".
    public var reason: String { String(cString: strerror(self.errno)) }

    public var description: String { "\(self.call): \(self.reason)" }

    /// Connect failures that mean "nobody is there" rather than a local fault.
    public var isRefusedOrUnreachable: Bool {
        [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, ECONNRESET].contains(self.errno)
    }
}

/// Why a connection ended, as the socket layer saw it.
public enum CloseReason: Sendable, Equatable, CustomStringConvertible {
    /// We closed it.
    case local
    /// The peer closed it (end of stream).
    case remote
    /// A socket error.
    case error(SocketError)
    /// Connecting took too long.
    case connectTimeout
    /// The peer stopped reading and our send queue hit its hard limit.
    case sendQueueOverflow
    /// The event loop shut down.
    case shutdown

    public var description: String {
        switch self {
        case .local: return "closed locally"
        case .remote: return "closed by peer"
        case .error(let e): return e.description
        case .connectTimeout: return "connect timed out"
        case .sendQueueOverflow: return "peer not reading (send queue full)"
        case .shutdown: return "shut down"
        }
    }
}
