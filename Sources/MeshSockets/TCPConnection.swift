#if canImport(Glibc)
import Glibc
#endif

/// What a ``TCPConnection`` tells its owner. All calls arrive on the loop thread.
public protocol TCPConnectionDelegate: AnyObject {
    /// The connection is open (outbound: connected; inbound: accepted).
    func connectionDidOpen(_ connection: TCPConnection)
    /// Bytes arrived.
    func connection(_ connection: TCPConnection, didRead bytes: [UInt8])
    /// The send queue fell below the low watermark after being above the high one.
    func connectionDidDrain(_ connection: TCPConnection)
    /// The connection closed; it will not call again.
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason)
}

/// A delegate that takes bytes from the socket into a buffer of its own, instead of receiving
/// each read as a new array copied out of the loop's shared read buffer (one copy and one
/// allocation less per read on a bulk transfer).
public protocol TCPConnectionDirectReader: TCPConnectionDelegate {
    /// Bytes are ready. Call `read` at most once with the free space to fill; it returns how
    /// many bytes it stored there (0 for none: end of stream, an error or nothing to read,
    /// which the connection handles itself after this returns).
    func connection(_ connection: TCPConnection, readWith read: (UnsafeMutableRawBufferPointer) -> Int)
}

/// A non-blocking TCP connection owned by one ``EventLoop``.
///
/// One owner, one close point: the descriptor is closed exactly once, in ``close(_:)``.
/// Outgoing bytes queue up and leave with `writev` (many chunks per system call). The queue
/// is bounded: ``write(_:)`` reports when it passes the high watermark so producers can slow
/// down, the delegate hears when it drains, and a peer that stops reading until the hard
/// limit is hit is disconnected (a slow reader never grows our memory without bound).
/// Loop thread only.
public final class TCPConnection: Selectable, LoopShutdownAware, CustomStringConvertible {
    public let loop: EventLoop
    private var fd: Int32
    /// The peer's address.
    public let remoteAddress: SocketAddress
    /// Our side's address (asked of the kernel when first read, not for every connection).
    public var localAddress: SocketAddress? {
        if let known = self.knownLocalAddress { return known }
        guard self.fd >= 0 else { return nil }
        let address = Posix.localAddress(self.fd)
        // While connecting the address may still change; keep it once connected.
        if self.state != .connecting { self.knownLocalAddress = address }
        return address
    }
    private var knownLocalAddress: SocketAddress?
    /// Whether the peer connected to us.
    public let isInbound: Bool
    public var delegate: (any TCPConnectionDelegate)? {
        // The dynamic cast is made once per delegate, not once per read.
        didSet { self.directReader = self.delegate as? any TCPConnectionDirectReader }
    }
    private var directReader: (any TCPConnectionDirectReader)?

    enum State { case connecting, open, closed }
    private var state: State
    private var sendQueue: [[UInt8]] = []
    private var sendQueueHead = 0
    private var headOffset = 0
    /// Bytes waiting to be written.
    public private(set) var queuedBytes = 0
    private var wantWrite = false
    private var readingPaused = false
    private var aboveHighWatermark = false
    private var closeWhenFlushed = false
    /// Half-closed: our side is done writing; we read and discard until the peer closes (or
    /// a short timeout), so that closing with unread input does not reset the connection and
    /// destroy the last bytes we sent (e.g. a close frame with its reason).
    private var lingering = false
    private var lingerTimer: TimerID?
    private var connectTimer: TimerID?
    /// Called when the connection closes, after the delegate (for limit bookkeeping).
    public var onClose: ((TCPConnection) -> Void)?

    /// Back-pressure thresholds in bytes.
    public var highWatermark = 4 << 20
    public var lowWatermark = 1 << 20
    /// A peer that lets this many bytes pile up is disconnected.
    public var hardLimit = 32 << 20
    /// Most bytes read per readiness event, for fairness between sockets.
    public var readBudget = 1 << 20

    /// Byte counters.
    public private(set) var bytesRead = 0
    public private(set) var bytesWritten = 0
    public private(set) var writeCalls = 0

    init(loop: EventLoop, fd: Int32, remote: SocketAddress, inbound: Bool, connecting: Bool) {
        self.loop = loop
        self.fd = fd
        self.remoteAddress = remote
        self.isInbound = inbound
        self.state = connecting ? .connecting : .open
    }

    /// The TCP options every connection has: small writes leave at once (no Nagle delay), and
    /// the kernel gives up on a peer that acknowledges nothing we sent for 30 s (a zero
    /// window held open, a host that vanished) instead of retrying for many minutes. Set on
    /// each dialled socket, and on a listening socket, whose accepted sockets inherit them
    /// (Linux copies a listener's TCP settings into each socket it accepts): no system call
    /// per accepted connection. The corresponding C options are `TCP_NODELAY` and
    /// `TCP_USER_TIMEOUT`.
    static func setConnectionOptions(_ fd: Int32) {
        Posix.setTCPOption(fd, TCP_NODELAY, 1)
        Posix.setTCPOption(fd, TCP_USER_TIMEOUT, 30_000)
    }

    /// A TCP option's value on this socket (for tests), or nil once closed.
    func tcpOption(_ name: Int32) -> Int32? { self.fd >= 0 ? Posix.tcpOption(self.fd, name) : nil }

    /// Holds back the kernel's ACKs of what arrives so they leave with the next bytes we
    /// write (the kernel's "pingpong" mode, entered at once instead of after the first
    /// answer). For protocols that answer at once: on a dialled socket, set before it
    /// connects, the ACK that completes the TCP handshake rides on our first bytes; the first
    /// data's ACK rides on the answer. The corresponding C option is `TCP_QUICKACK` set to 0.
    static func acknowledgeWithReply(_ fd: Int32) {
        Posix.setTCPOption(fd, TCP_QUICKACK, 0)
    }

    /// How long ``closeAfterFlush()`` waits for queued bytes to leave before closing anyway
    /// (a peer that stopped reading must not keep its slot). Nanoseconds.
    public var closeFlushTimeout: UInt64 = 5_000_000_000

    deinit {
        assert(self.state == .closed, "leak of an open TCPConnection")
    }

    public var description: String { "\(self.isInbound ? "in" : "out") \(self.remoteAddress)" }
    public var isOpen: Bool { self.state == .open }
    public var isClosed: Bool { self.state == .closed }

    /// Connects to `address`; the delegate hears `connectionDidOpen` or `connectionDidClose`.
    /// Loop thread only.
    ///
    /// - Parameter acknowledgeWithReply: for protocols in which the dialler speaks first and
    ///   each side answers the other at once (the secure channel's handshake). The kernel then
    ///   holds back the ACK that completes the TCP handshake until our first bytes, and the
    ///   ACK of the peer's answer until our next bytes, instead of sending each as a segment
    ///   of its own. Leave it false when the dialler waits for the peer to speak first: the
    ///   held-back ACK would only leave when its timer fires (up to 200 ms), and the peer
    ///   would not see the connection until then.
    public static func connect(
        loop: EventLoop, to address: SocketAddress, delegate: any TCPConnectionDelegate, timeout: UInt64 = 5_000_000_000,
        acknowledgeWithReply: Bool = false
    ) throws(SocketError) -> TCPConnection {
        loop.assertInLoop()
        let fd = try Posix.socket(ipv6: address.isIPv6, udp: false)
        Self.setConnectionOptions(fd)
        if acknowledgeWithReply { Self.acknowledgeWithReply(fd) }
        let rc = address.withSockAddr { sa, len in Glibc.connect(fd, sa, len) }
        var inProgress = false
        if rc != 0 {
            let e = Glibc.errno
            if e == EINPROGRESS { inProgress = true } else {
                Posix.close(fd)
                throw SocketError("connect(\(address))", errno: e)
            }
        }
        let c = TCPConnection(loop: loop, fd: fd, remote: address, inbound: false, connecting: inProgress)
        c.delegate = delegate
        do {
            try loop.register(fd: fd, handler: c, read: !inProgress, write: inProgress)
        } catch {
            c.state = .closed
            Posix.close(fd)
            throw error
        }
        c.wantWrite = inProgress
        if inProgress {
            c.connectTimer = loop.schedule(after: timeout) { [weak c] in
                guard let c, c.state == .connecting else { return }
                c.close(.connectTimeout)
            }
        } else {
            c.deferOpen()
        }
        return c
    }

    private func deferOpen() {
        self.loop.schedule(after: 0) { [weak self] in
            guard let self, self.state == .open else { return }
            self.delegate?.connectionDidOpen(self)
        }
    }

    /// Accepted connections start open; the listener tells the delegate.
    func startAccepted() throws(SocketError) {
        try self.loop.register(fd: self.fd, handler: self, read: true, write: false)
    }

    // MARK: Writing

    /// Queues bytes for the peer. Returns false when the queue is above the high watermark
    /// (the caller should stop producing until `connectionDidDrain`).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        self.loop.assertInLoop()
        guard self.state != .closed, !bytes.isEmpty else { return self.state != .closed }
        self.sendQueue.append(bytes)
        self.queuedBytes += bytes.count
        if self.state == .open && !self.wantWrite { self.flush() }
        if self.queuedBytes > self.hardLimit {
            self.close(.sendQueueOverflow)
            return false
        }
        if self.queuedBytes > self.highWatermark { self.aboveHighWatermark = true }
        return self.queuedBytes <= self.highWatermark
    }

    /// Whether the queue is below the high watermark.
    public var isWritable: Bool { self.queuedBytes <= self.highWatermark }

    private func flush() {
        while self.sendQueueHead < self.sendQueue.count {
            let result: IOResult
            do { result = try self.writeBatch() } catch {
                self.close(.error(error))
                return
            }
            switch result {
            case .wouldBlock:
                self.setWriteInterest(true)
                return
            case .processed(let n):
                self.consume(n)
            }
        }
        // Drained.
        self.sendQueue.removeAll(keepingCapacity: false)
        self.sendQueueHead = 0
        self.headOffset = 0
        self.setWriteInterest(false)
        if self.closeWhenFlushed {
            self.linger()
            return
        }
        if self.aboveHighWatermark && self.queuedBytes <= self.lowWatermark {
            self.aboveHighWatermark = false
            self.delegate?.connectionDidDrain(self)
        }
    }

    private func consume(_ n: Int) {
        var left = n
        self.bytesWritten += n
        self.queuedBytes -= n
        while left > 0 {
            let avail = self.sendQueue[self.sendQueueHead].count - self.headOffset
            if left >= avail {
                left -= avail
                self.sendQueue[self.sendQueueHead] = []
                self.sendQueueHead += 1
                self.headOffset = 0
            } else {
                self.headOffset += left
                left = 0
            }
        }
        if self.sendQueueHead > 64 {
            self.sendQueue.removeFirst(self.sendQueueHead)
            self.sendQueueHead = 0
        }
        if self.aboveHighWatermark && self.queuedBytes <= self.lowWatermark {
            self.aboveHighWatermark = false
            self.delegate?.connectionDidDrain(self)
        }
    }

    /// One `writev` over up to 16 queued chunks.
    private func writeBatch() throws(SocketError) -> IOResult {
        let end = min(self.sendQueue.count, self.sendQueueHead + 16)
        var iov: [iovec] = []
        iov.reserveCapacity(end - self.sendQueueHead)
        let fd = self.fd
        self.writeCalls += 1
        return try Self.withIovecs(self.sendQueue, self.sendQueueHead, end, self.headOffset, &iov) { (v: inout [iovec]) throws(SocketError) -> IOResult in
            try Posix.check("writev") { Int(Glibc.writev(fd, v, Int32(v.count))) }
        }
    }

    /// Pins each chunk's storage with nested `withUnsafeBytes` while `body` runs.
    private static func withIovecs<R>(
        _ chunks: [[UInt8]], _ index: Int, _ end: Int, _ firstOffset: Int, _ iov: inout [iovec],
        _ body: (inout [iovec]) throws(SocketError) -> R
    ) throws(SocketError) -> R {
        if index == end { return try body(&iov) }
        let result: Result<R, SocketError> = chunks[index].withUnsafeBytes { buf in
            let offset = firstOffset
            iov.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: buf.baseAddress! + offset), iov_len: buf.count - offset))
            return Result { () throws(SocketError) -> R in try withIovecs(chunks, index + 1, end, 0, &iov, body) }
        }
        return try result.get()
    }

    private func setWriteInterest(_ on: Bool) {
        guard self.wantWrite != on, self.state != .closed else { return }
        self.wantWrite = on
        self.loop.reregister(fd: self.fd, read: !self.readingPaused, write: on)
    }

    // MARK: Reading

    /// Stops reading (the peer's sends then block in its kernel buffers).
    public func pauseReading() {
        guard !self.readingPaused, self.state == .open else { return }
        self.readingPaused = true
        self.loop.reregister(fd: self.fd, read: false, write: self.wantWrite)
    }

    /// Resumes reading after ``pauseReading()``.
    public func resumeReading() {
        guard self.readingPaused, self.state == .open else { return }
        self.readingPaused = false
        self.loop.reregister(fd: self.fd, read: true, write: self.wantWrite)
    }

    func handleEvents(readable: Bool, writable: Bool, hangup: Bool) {
        if self.state == .connecting {
            guard writable || hangup else { return }
            // A connect that failed reports an error or a hang-up with its readiness: only
            // then is the error asked of the kernel (one system call fewer per connection).
            let err = hangup ? Posix.socketError(self.fd) : 0
            if err != 0 {
                self.close(.error(SocketError("connect(\(self.remoteAddress))", errno: err)))
                return
            }
            self.state = .open
            if let t = self.connectTimer { self.loop.cancel(t) }
            self.wantWrite = !self.sendQueue.isEmpty
            self.loop.reregister(fd: self.fd, read: true, write: self.wantWrite)
            self.delegate?.connectionDidOpen(self)
            if self.state == .open && !self.sendQueue.isEmpty { self.flush() }
            return
        }
        if writable && self.state == .open { self.flush() }
        if (readable || hangup) && self.state == .open && !self.readingPaused { self.readAvailable() }
    }

    private func readAvailable() {
        var total = 0
        while self.state == .open && !self.readingPaused && total < self.readBudget {
            let fd = self.fd
            if !self.lingering, let direct = self.directReader {
                var outcome: Result<IOResult, SocketError>?
                var offered = 0
                direct.connection(self) { buf in
                    offered = buf.count
                    let r = Result { () throws(SocketError) -> IOResult in try Posix.check("read") { Glibc.read(fd, buf.baseAddress!, buf.count) } }
                    outcome = r
                    if case .success(.processed(let n)) = r { return n }
                    return 0
                }
                guard self.state == .open, let outcome else { return }
                switch outcome {
                case .failure(let error):
                    self.close(error.errno == ECONNRESET ? .remote : .error(error))
                    return
                case .success(.wouldBlock):
                    return
                case .success(.processed(0)):
                    self.close(.remote)
                    return
                case .success(.processed(let n)):
                    total += n
                    self.bytesRead += n
                    if n < offered { return }
                }
                continue
            }
            let outcome: Result<IOResult, SocketError> = self.loop.readBuffer.withUnsafeMutableBytes { buf in
                Result { () throws(SocketError) -> IOResult in try Posix.check("read") { Glibc.read(fd, buf.baseAddress!, buf.count) } }
            }
            let result: IOResult
            switch outcome {
            case .success(let r): result = r
            case .failure(let error):
                self.close(error.errno == ECONNRESET ? .remote : .error(error))
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .processed(0):
                self.close(.remote)
                return
            case .processed(let n):
                total += n
                self.bytesRead += n
                if self.lingering { continue }  // discarded: we are closing
                let bytes = Array(self.loop.readBuffer[0..<n])
                self.delegate?.connection(self, didRead: bytes)
                if n < self.loop.readBuffer.count { return }
            }
        }
    }

    // MARK: Closing

    /// Writes `bytes` as the last ones and closes after they have been written (as
    /// ``write(_:)`` then ``closeAfterFlush()``). When nothing else is queued and the socket
    /// takes them at once, they are handed to the kernel held back (`MSG_MORE`) and leave in
    /// the same segment as the FIN the half-close sends: one packet, one wake-up of the peer,
    /// instead of two.
    public func closeAfterFlush(writingLast bytes: [UInt8]) {
        self.loop.assertInLoop()
        if self.state == .open && !bytes.isEmpty && self.sendQueueHead == self.sendQueue.count && !self.wantWrite && !self.closeWhenFlushed {
            let fd = self.fd
            self.writeCalls += 1
            let result = bytes.withUnsafeBytes { b in
                Result { () throws(SocketError) -> IOResult in
                    try Posix.check("send") { Glibc.send(fd, b.baseAddress!, b.count, Int32(MSG_MORE | MSG_NOSIGNAL)) }
                }
            }
            switch result {
            case .failure(let error):
                self.close(.error(error))
                return
            case .success(.processed(let n)) where n == bytes.count:
                self.bytesWritten += n
                self.closeAfterFlush()  // the half-close pushes them out with its FIN
                return
            case .success(.processed(let n)):
                self.bytesWritten += n
                self.write(Array(bytes[n...]))
            case .success(.wouldBlock):
                self.write(bytes)
            }
        } else if !bytes.isEmpty && self.state != .closed {
            self.write(bytes)
        }
        self.closeAfterFlush()
    }

    /// Closes after the queued bytes have been written (bounded by the hard limit).
    public func closeAfterFlush() {
        guard self.state != .closed else { return }
        if self.state == .connecting {
            self.close(.local)
        } else if self.queuedBytes == 0 {
            self.linger()
        } else {
            self.closeWhenFlushed = true
            self.pauseReading()
            if self.lingerTimer == nil {
                self.lingerTimer = self.loop.schedule(after: self.closeFlushTimeout) { [weak self] in self?.close(.local) }
            }
        }
    }

    private func linger() {
        guard self.state == .open, !self.lingering else { return }
        self.lingering = true
        _ = Glibc.shutdown(self.fd, Int32(SHUT_WR))
        if let t = self.lingerTimer { self.loop.cancel(t) }
        let d = self.delegate
        self.delegate = nil  // the owner is done with this connection
        d?.connectionDidClose(self, reason: .local)
        self.readingPaused = false
        self.setWriteInterest(false)
        self.lingerTimer = self.loop.schedule(after: 2_000_000_000) { [weak self] in self?.close(.local) }
    }

    /// Closes now; queued bytes are dropped. Idempotent.
    public func close(_ reason: CloseReason = .local) {
        guard self.state != .closed else { return }
        self.state = .closed
        if let t = self.connectTimer { self.loop.cancel(t) }
        if let t = self.lingerTimer { self.loop.cancel(t) }
        self.loop.deregister(fd: self.fd)
        Posix.close(self.fd)
        self.fd = -1
        self.sendQueue = []
        self.queuedBytes = 0
        let d = self.delegate
        self.delegate = nil
        d?.connectionDidClose(self, reason: reason)
        self.onClose?(self)
        self.onClose = nil
    }

    func loopDidShutdown() { self.close(.shutdown) }
}
