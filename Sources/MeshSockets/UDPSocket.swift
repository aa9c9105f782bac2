#if canImport(Glibc)
import Glibc
#endif
internal import CSystemShims

/// A non-blocking UDP socket on an ``EventLoop``. Loop thread only.
public final class UDPSocket: Selectable, LoopShutdownAware {
    public let loop: EventLoop
    private var fd: Int32
    public let localAddress: SocketAddress
    /// Called for each datagram (at most 1,500 bytes are read; longer ones are truncated).
    public var onDatagram: ([UInt8], SocketAddress) -> Void = { _, _ in }
    public private(set) var isClosed = false
    public private(set) var datagramsIn = 0
    public private(set) var datagramsOut = 0
    public private(set) var bytesIn = 0
    public private(set) var bytesOut = 0
    /// Datagrams dropped because the kernel buffer was full.
    public private(set) var sendDrops = 0
    private var buffer = [UInt8](repeating: 0, count: 2048)

    public init(loop: EventLoop, address: SocketAddress) throws(SocketError) {
        loop.assertInLoop()
        let fd = try Posix.socket(ipv6: address.isIPv6, udp: true)
        if address.isIPv6 { Posix.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        Posix.setOption(fd, SOL_SOCKET, SO_RCVBUF, 1 << 20)
        do {
            try Posix.bind(fd, address)
        } catch {
            Posix.close(fd)
            throw error
        }
        self.loop = loop
        self.fd = fd
        self.localAddress = Posix.localAddress(fd) ?? address
        do {
            try loop.register(fd: fd, handler: self, read: true, write: false)
        } catch {
            Posix.close(fd)
            throw error
        }
    }

    deinit { assert(self.isClosed, "leak of an open UDPSocket") }

    /// Sends one datagram; returns false if it was dropped.
    @discardableResult
    public func send(_ bytes: [UInt8], to address: SocketAddress) -> Bool {
        guard !self.isClosed else { return false }
        let fd = self.fd
        let rc = bytes.withUnsafeBytes { buf in
            address.withSockAddr { sa, len in Glibc.sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), sa, len) }
        }
        if rc < 0 {
            self.sendDrops += 1
            return false
        }
        self.datagramsOut += 1
        self.bytesOut += bytes.count
        return true
    }

    func handleEvents(readable: Bool, writable: Bool, hangup: Bool) {
        for _ in 0..<512 {
            guard !self.isClosed else { return }
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = self.fd
            let n = self.buffer.withUnsafeMutableBytes { buf in
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.recvfrom(fd, buf.baseAddress, 1500, 0, $0, &len) }
                }
            }
            if n < 0 { return }
            guard let from = withUnsafePointer(to: &storage, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) } }) else { continue }
            self.datagramsIn += 1
            self.bytesIn += n
            self.onDatagram(Array(self.buffer[0..<n]), from)
        }
    }

    /// Closes the socket. Idempotent.
    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.loop.deregister(fd: self.fd)
        Posix.close(self.fd)
        self.fd = -1
    }

    func loopDidShutdown() { self.close() }
}
