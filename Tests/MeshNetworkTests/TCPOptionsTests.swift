import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import MeshSockets
import Synchronization
import Testing

/// Records what a raw connection's delegate hears. Written on the loop, read by the test.
final class RawEvents: TCPConnectionDelegate, @unchecked Sendable {
    // Safety: every field is behind `state`.
    struct State {
        var opened = 0
        var closed: [CloseReason] = []
        var read: [UInt8] = []
    }
    let state = Mutex(State())

    func connectionDidOpen(_ connection: TCPConnection) { self.state.withLock { $0.opened += 1 } }
    func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) { self.state.withLock { $0.read += bytes } }
    func connectionDidDrain(_ connection: TCPConnection) {}
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) { self.state.withLock { $0.closed.append(reason) } }
}

@Suite("TCP options", .serialized)
struct TCPOptionsTests {
    /// A socket's options that every connection must have, and its ACK mode.
    struct Options: Equatable, Sendable {
        var noDelay: Int32?
        var userTimeout: Int32?
        var quickAck: Int32?

        init(noDelay: Int32?, userTimeout: Int32?, quickAck: Int32? = nil) {
            self.noDelay = noDelay
            self.userTimeout = userTimeout
            self.quickAck = quickAck
        }

        init(_ option: (Int32) -> Int32?, withAckMode: Bool) {
            self.init(noDelay: option(TCP_NODELAY), userTimeout: option(TCP_USER_TIMEOUT), quickAck: withAckMode ? option(TCP_QUICKACK) : nil)
        }
    }

    // The ACK mode is checked on the listener, where no traffic changes it: on a connection
    // the kernel leaves and re-enters it as segments come and go (a held-back ACK's timer, an
    // answer), so reading it there would race the network.
    @Test("accepted connections inherit the listener's options (no system call per accept); the listener holds ACKs back only where asked",
          arguments: [false, true])
    func inheritedOptions(acknowledgeWithReply: Bool) async throws {
        let loop = try EventLoop(name: "test.options")
        defer { loop.shutdown() }
        let sockets = LoopBox<(listener: TCPListener?, inbound: TCPConnection?, outbound: TCPConnection?)>((nil, nil, nil))
        let seen = Mutex<(listener: Options?, server: Options?, client: Options?)>((nil, nil, nil))
        let serverEvents = RawEvents()
        let clientEvents = RawEvents()
        try await loop.submit {
            let l = try TCPListener(loop: loop, address: SocketAddress("127.0.0.1:0")!, tracker: ConnectionTracker(),
                                    acknowledgeWithReply: acknowledgeWithReply) { c in
                c.delegate = serverEvents
                sockets.value.inbound = c
                let o = Options(c.tcpOption, withAckMode: false)
                seen.withLock { $0.server = o }
            }
            sockets.value.listener = l
            let lo = Options(l.tcpOption, withAckMode: true)
            seen.withLock { $0.listener = lo }
            let c = try TCPConnection.connect(loop: loop, to: l.localAddress, delegate: clientEvents, acknowledgeWithReply: acknowledgeWithReply)
            sockets.value.outbound = c
            let o = Options(c.tcpOption, withAckMode: false)
            seen.withLock { $0.client = o }
            // The dialler speaks first (with held-back ACKs the listener sees the connection
            // when these bytes arrive).
            c.write(Array("hello".utf8))
        }
        #expect(await waitUntil { serverEvents.state.withLock { $0.read.count } == 5 })
        #expect(clientEvents.state.withLock { $0.opened } == 1)
        let (listener, server, client) = seen.withLock { ($0.listener, $0.server, $0.client) }
        #expect(listener == Options(noDelay: 1, userTimeout: 30_000, quickAck: acknowledgeWithReply ? 0 : 1))
        #expect(server == Options(noDelay: 1, userTimeout: 30_000))
        #expect(client == Options(noDelay: 1, userTimeout: 30_000))
        try await loop.submit {
            sockets.value.outbound?.close()
            sockets.value.inbound?.close()
            sockets.value.listener?.close()
        }
    }

    @Test("a refused connect closes with the connect error, and never opens")
    func refusedConnect() async throws {
        let loop = try EventLoop(name: "test.refused")
        defer { loop.shutdown() }
        let events = RawEvents()
        try await loop.submit {
            // A port nobody listens on: bound and closed again.
            let l = try TCPListener(loop: loop, address: SocketAddress("127.0.0.1:0")!, tracker: ConnectionTracker()) { _ in }
            let address = l.localAddress
            l.close()
            _ = try TCPConnection.connect(loop: loop, to: address, delegate: events)
        }
        #expect(await waitUntil { !events.state.withLock { $0.closed.isEmpty } })
        let (opened, closed) = events.state.withLock { ($0.opened, $0.closed) }
        #expect(opened == 0)
        #expect(closed.count == 1)
        guard case .error(let e)? = closed.first else {
            Issue.record("closed with \(closed), expected a connect error")
            return
        }
        #expect(e.call.hasPrefix("connect") && e.errno == ECONNREFUSED, "\(e)")
    }
}
