#if canImport(Glibc)
import Glibc
#endif
internal import CSystemShims

/// The outcome of a non-blocking call: bytes processed, or "would block" (not an error).
enum IOResult: Equatable {
    case processed(Int)
    case wouldBlock
}

/// Thin wrappers over the socket system calls. `errno` is read immediately after the call;
/// EINTR is retried here, once, for all callers.
enum Posix {
    @inline(never)
    static func check(_ call: String, _ body: () -> Int) throws(SocketError) -> IOResult {
        while true {
            let rc = body()
            if rc >= 0 { return .processed(rc) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SocketError(call, errno: e)
        }
    }

    static func socket(ipv6: Bool, udp: Bool) throws(SocketError) -> Int32 {
        let type = udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let fd = csys_socket(ipv6 ? AF_INET6 : AF_INET, type)
        if fd < 0 { throw SocketError("socket", errno: Glibc.errno) }
        return fd
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets an `IPPROTO_TCP` option.
    static func setTCPOption(_ fd: Int32, _ name: Int32, _ value: Int32) {
        self.setOption(fd, Int32(IPPROTO_TCP), name, value)
    }

    /// An `IPPROTO_TCP` option's value, or nil when the kernel refuses to tell.
    static func tcpOption(_ fd: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), name, &value, &len) == 0 else { return nil }
        return value
    }

    static func bind(_ fd: Int32, _ address: SocketAddress) throws(SocketError) {
        let rc = address.withSockAddr { sa, len in Glibc.bind(fd, sa, len) }
        if rc != 0 { throw SocketError("bind(\(address))", errno: Glibc.errno) }
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) } }
    }

    static func socketError(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len)
        return value
    }

    static func close(_ fd: Int32) {
        // EINTR from close means closed on Linux; never retry.
        _ = Glibc.close(fd)
    }
}
