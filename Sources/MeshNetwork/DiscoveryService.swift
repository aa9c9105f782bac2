import MeshCodec
import MeshDiscovery
import MeshCrypto
import MeshSockets

extension Endpoint {
    public init(_ a: SocketAddress) { self.init(ip: a.ip, port: a.port) }
    public var socketAddress: SocketAddress { SocketAddress(ip: self.ip, port: self.port) }
}

/// Runs a ``DiscoveryCore`` on a UDP socket of an event loop: datagrams in, a 100 ms tick,
/// packets out, events to `onEvent`. Loop thread only, except ``start(on:)``.
public final class DiscoveryService: @unchecked Sendable {
    // Safety: everything but `loop` is touched on the loop thread only.
    public let loop: EventLoop
    public let core: DiscoveryCore
    public private(set) var socket: UDPSocket?
    /// Receives every event, on the loop thread.
    public var onEvent: (DiscoveryEvent) -> Void = { _ in }
    var timer: TimerID?
    /// The clock the core is given (the loop's monotonic clock unless a test injects one).
    let clock: @Sendable () -> Instant

    public init(loop: EventLoop, core: DiscoveryCore, clock: @escaping @Sendable () -> Instant = { EventLoop.instant() }) {
        self.loop = loop
        self.core = core
        self.clock = clock
    }

    /// Binds the UDP socket (loop thread) and starts the timers; returns the bound address.
    @discardableResult
    public func start(on address: SocketAddress) throws(SocketError) -> SocketAddress {
        let s = try UDPSocket(loop: self.loop, address: address)
        s.onDatagram = { [unowned self] bytes, from in
            self.core.receive(bytes, from: Endpoint(from), now: self.clock())
            self.flush()
        }
        self.socket = s
        self.scheduleTick()
        return s.localAddress
    }

    public func stop() {
        if let t = self.timer { self.loop.cancel(t) }
        self.timer = nil
        self.socket?.close()
        self.socket = nil
    }

    func scheduleTick() {
        self.timer = self.loop.schedule(after: 100_000_000) { [weak self] in
            guard let self, self.socket != nil else { return }
            self.core.tick(now: self.clock())
            self.flush()
            self.scheduleTick()
        }
    }

    /// Sends what the core queued and delivers its events. Call after any command.
    public func flush() {
        let (packets, events) = self.core.drain()
        for p in packets { _ = self.socket?.send(p.bytes, to: p.to.socketAddress) }
        for e in events { self.onEvent(e) }
    }

    // MARK: Commands (loop thread)

    public func addBootnode(id: Ed25519.PublicKey, endpoint: Endpoint) {
        self.core.addBootnode(id: id, endpoint: endpoint, now: self.clock())
        self.flush()
    }

    @discardableResult
    public func ping(id: Ed25519.PublicKey, endpoint: Endpoint) -> UInt64 {
        defer { self.flush() }
        return self.core.ping(id: id, endpoint: endpoint, now: self.clock())
    }

    @discardableResult
    public func findNode(id: Ed25519.PublicKey, endpoint: Endpoint, distances: [UInt16]) -> UInt64 {
        defer { self.flush() }
        return self.core.findNode(id: id, endpoint: endpoint, distances: distances, now: self.clock())
    }

    @discardableResult
    public func lookup(target: Ed25519.PublicKey) -> UInt64 {
        defer { self.flush() }
        return self.core.lookup(target: target, now: self.clock())
    }
}
