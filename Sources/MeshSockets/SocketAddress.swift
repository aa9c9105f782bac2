#if canImport(Glibc)
import Glibc
#endif
internal import CSystemShims

/// An IPv4 or IPv6 address with a port.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address bytes (4 or 16).
    public let ip: [UInt8]
    public let port: UInt16

    /// Whether this is an IPv6 address.
    public var isIPv6: Bool { self.ip.count == 16 }

    public init(ip: [UInt8], port: UInt16) {
        precondition(ip.count == 4 || ip.count == 16, "IP address of \(ip.count) bytes")
        self.ip = ip
        self.port = port
    }

    /// Parses a numeric address ("127.0.0.1", "::1").
    public init?(numericHost host: String, port: UInt16) {
        var h = host
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, h, &v4) == 1 {
            self.ip = withUnsafeBytes(of: &v4) { Array($0) }
            self.port = port
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, h, &v6) == 1 {
            self.ip = withUnsafeBytes(of: &v6) { Array($0) }
            self.port = port
            return
        }
        return nil
    }

    /// Parses "HOST:PORT" or "[V6]:PORT" with a numeric host.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = String(text[text.startIndex..<colon])
        guard let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        self.init(numericHost: host, port: port)
    }

    /// Resolves a host name (blocking; call it off the event loop). Numeric hosts return at once.
    public static func resolve(host: String, port: UInt16) throws -> [SocketAddress] {
        if let a = SocketAddress(numericHost: host, port: port) { return [a] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        guard rc == 0, let first = result else { throw SocketError("getaddrinfo(\(host))", errno: EHOSTUNREACH) }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr, let a = SocketAddress(sockaddr: sa, port: port) { out.append(a) }
            cursor = ai.pointee.ai_next
        }
        if out.isEmpty { throw SocketError("getaddrinfo(\(host))", errno: EHOSTUNREACH) }
        return Array(Set(out))
    }

    init?(sockaddr sa: UnsafePointer<sockaddr>, port overridePort: UInt16? = nil) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let sin = UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in.self).pointee
            var addr = sin.sin_addr
            self.ip = withUnsafeBytes(of: &addr) { Array($0) }
            self.port = overridePort ?? UInt16(bigEndian: sin.sin_port)
        case AF_INET6:
            let sin6 = UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in6.self).pointee
            var addr = sin6.sin6_addr
            self.ip = withUnsafeBytes(of: &addr) { Array($0) }
            self.port = overridePort ?? UInt16(bigEndian: sin6.sin6_port)
        default:
            return nil
        }
    }

    /// Calls `body` with the C socket address.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if self.isIPv6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = self.port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: self.ip) }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = self.port.bigEndian
        withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: self.ip) }
        return withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// The host part as text ("127.0.0.1", "::1").
    public var host: String {
        var buf = [CChar](repeating: 0, count: 64)
        let family = self.isIPv6 ? AF_INET6 : AF_INET
        _ = self.ip.withUnsafeBytes { p in inet_ntop(family, p.baseAddress, &buf, 64) }
        let len = buf.firstIndex(of: 0) ?? buf.count
        return String(decoding: buf[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "host:port", with brackets around IPv6 hosts.
    public var description: String { self.isIPv6 ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }

    /// The /24 (IPv4) or /48 (IPv6) prefix, for diversity limits.
    public var subnetKey: [UInt8] { self.isIPv6 ? Array(self.ip.prefix(6)) : Array(self.ip.prefix(3)) }

    /// Whether this is a loopback address.
    public var isLoopback: Bool { self.isIPv6 ? self.ip == [UInt8](repeating: 0, count: 15) + [1] : self.ip[0] == 127 }

    /// The unspecified address of the same family ("0.0.0.0" / "::").
    public var isUnspecified: Bool { self.ip.allSatisfy { $0 == 0 } }
}
