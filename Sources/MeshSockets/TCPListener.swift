#if canImport(Glibc)
import Glibc
#endif
internal import CSystemShims

/// A listening TCP socket. Accepted connections over the tracker's limits are closed at
/// once and counted. Loop thread only.
public final class TCPListener: Selectable, LoopShutdownAware {
    public let loop: EventLoop
    private var fd: Int32
    /// The bound address (with the real port when bound to port 0).
    public let localAddress: SocketAddress
    public let tracker: ConnectionTracker
    /// Called with each admitted connection; set its delegate here. The listener then
    /// calls the delegate's `connectionDidOpen`.
    public var onAccept: (TCPConnection) -> Void
    public private(set) var accepted = 0
    public private(set) var isClosed = false

    /// Starts listening on `address` (port 0 picks a free port).
    ///
    /// - Parameter acknowledgeWithReply: for protocols that answer each side's bytes at once
    ///   (the secure channel's handshake): every accepted connection holds back the ACK of
    ///   what it receives until it writes its answer, which then carries it, instead of
    ///   sending the ACK as a segment of its own (set on the listening socket, inherited by
    ///   the sockets it accepts). See ``TCPConnection/connect(loop:to:delegate:timeout:acknowledgeWithReply:)``.
    public init(loop: EventLoop, address: SocketAddress, tracker: ConnectionTracker, backlog: Int32 = 1024,
                acknowledgeWithReply: Bool = false, onAccept: @escaping (TCPConnection) -> Void) throws(SocketError) {
        loop.assertInLoop()
        let fd = try Posix.socket(ipv6: address.isIPv6, udp: false)
        Posix.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if address.isIPv6 { Posix.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        do {
            try Posix.bind(fd, address)
        } catch {
            Posix.close(fd)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = Glibc.errno
            Posix.close(fd)
            throw SocketError("listen", errno: e)
        }
        // Inherited by every accepted socket. After listen(), which resets the ACK state.
        TCPConnection.setConnectionOptions(fd)
        if acknowledgeWithReply { TCPConnection.acknowledgeWithReply(fd) }
        self.loop = loop
        self.fd = fd
        self.localAddress = Posix.localAddress(fd) ?? address
        self.tracker = tracker
        self.onAccept = onAccept
        do {
            try loop.register(fd: fd, handler: self, read: true, write: false)
        } catch {
            Posix.close(fd)
            throw error
        }
    }

    deinit { assert(self.isClosed, "leak of an open TCPListener") }

    /// A TCP option's value on the listening socket (for tests), or nil once closed.
    func tcpOption(_ name: Int32) -> Int32? { self.fd >= 0 ? Posix.tcpOption(self.fd, name) : nil }

    func handleEvents(readable: Bool, writable: Bool, hangup: Bool) {
        for _ in 0..<256 {
            guard !self.isClosed else { return }
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let cfd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { csys_accept(self.fd, $0, &len) }
            }
            if cfd < 0 {
                let e = Glibc.errno
                if e == EINTR || e == ECONNABORTED { continue }
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: the pending connection stays in the backlog and epoll
                    // would report it again at once (a busy loop). Look again in 100 ms.
                    self.backOff()
                }
                return  // EAGAIN: wait for the next event
            }
            guard let remote = withUnsafePointer(to: &storage, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) } }) else {
                Posix.close(cfd)
                continue
            }
            guard self.tracker.admit(remote, inbound: true) else {
                Posix.close(cfd)
                continue
            }
            let c = TCPConnection(loop: self.loop, fd: cfd, remote: remote, inbound: true, connecting: false)
            let tracker = self.tracker
            c.onClose = { conn in tracker.release(conn.remoteAddress, inbound: true) }
            do {
                try c.startAccepted()
            } catch {
                c.close(.error(error))
                continue
            }
            self.accepted += 1
            self.onAccept(c)
            if c.isOpen { c.delegate?.connectionDidOpen(c) }
        }
    }

    private var backingOff = false
    /// Connections refused because the process ran out of descriptors.
    public private(set) var descriptorExhaustion = 0

    private func backOff() {
        guard !self.backingOff else { return }
        self.backingOff = true
        self.descriptorExhaustion += 1
        self.loop.reregister(fd: self.fd, read: false, write: false)
        self.loop.schedule(after: 100_000_000) { [weak self] in
            guard let self, !self.isClosed else { return }
            self.backingOff = false
            self.loop.reregister(fd: self.fd, read: true, write: false)
        }
    }

    /// Stops listening. Idempotent.
    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.loop.deregister(fd: self.fd)
        Posix.close(self.fd)
        self.fd = -1
    }

    func loopDidShutdown() { self.close() }
}
