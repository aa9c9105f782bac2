import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import MeshTestSupport
import Synchronization
import Testing

@Suite("Secure channel over loopback", .serialized)
struct LoopbackChannelTests {
    @Test("handshake, hello, streams under load, large messages, rekey crossing")
    func endToEnd() async throws {
        let loop = try EventLoop(name: "test.e2e")
        defer { loop.shutdown() }
        var c = ChannelConfig()
        c.rekeyInterval = 50
        let config = c
        let serverRec = Recorder()
        serverRec.echo = true
        let clientRec = Recorder()
        let hosts = LoopBox<(SecureHost?, SecureHost?, SecurePeer?)>((nil, nil, nil))
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec, config: config)
            let client = makeHost(loop, recorder: clientRec, config: config)
            let addr = try server.listen(on: SocketAddress("127.0.0.1:0")!)
            hosts.value = (server, client, nil)
            return addr
        }
        try await loop.submit {
            hosts.value.2 = try hosts.value.1!.dial(address)
        }
        #expect(await waitUntil { clientRec.readyCount == 1 && serverRec.readyCount == 1 })
        // 20 streams x 30 messages, echoed back.
        var rng = SeededRNG(seed: 42)
        let payloads = (0..<600).map { _ in rng.bytes(Int.random(in: 1...4000, using: &rng)) }
        let sent = LoopBox([[UInt8]]())
        try await loop.submit {
            let peer = hosts.value.2!
            var streams: [StreamID] = []
            for _ in 0..<20 { streams.append(try peer.openStream("/echo/1")) }
            for (i, p) in payloads.enumerated() { try peer.send(p, on: streams[i % 20]) }
            sent.value = payloads
        }
        #expect(await waitUntil(20) { clientRec.messageCount == 600 })
        let echoed = clientRec.state.withLock { $0.messages.map(\.1) }
        #expect(Set(echoed.map { Hex.encode(SHA256.hash($0)) }) == Set(payloads.map { Hex.encode(SHA256.hash($0)) }))
        // One 12 MiB message each way, compressible and not.
        let big = rng.bytes(6 << 20) + [UInt8](repeating: 9, count: 6 << 20)
        try await loop.submit {
            let peer = hosts.value.2!
            let s = try peer.openStream("/bulk/1")
            try peer.send(big, on: s)
        }
        #expect(await waitUntil(30) { clientRec.messageCount == 601 })
        #expect(clientRec.state.withLock { $0.messages.last?.1 == big })
        // Rekeying happened many times (interval 50 messages) without a failure.
        let noErrors = clientRec.state.withLock { $0.closed.isEmpty } && serverRec.state.withLock { $0.closed.isEmpty }
        #expect(noErrors)
        try await loop.submit { hosts.value.0!.shutdown(); hosts.value.1!.shutdown() }
        #expect(await waitUntil { clientRec.closedCount == 1 })
    }

    @Test("a peer on another genesis is dropped; honest peers still connect")
    func genesisMismatch() async throws {
        let loop = try EventLoop(name: "test.genesis")
        defer { loop.shutdown() }
        let serverRec = Recorder()
        let otherRec = Recorder()
        let box = LoopBox<[SecureHost]>([])
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec)
            let other = makeHost(loop, recorder: otherRec, genesis: [UInt8](repeating: 1, count: 32))
            box.value = [server, other]
            let a = try server.listen(on: SocketAddress("127.0.0.1:0")!)
            _ = try other.dial(a)
            return a
        }
        #expect(await waitUntil { otherRec.closedCount == 1 && serverRec.closedCount == 1 })
        let reason = otherRec.state.withLock { $0.closed.first?.0 }
        switch reason {
        case .some(.genesisMismatch), .some(.remoteClosed(ChannelCode.genesisMismatch, _)): break
        default: Issue.record("unexpected close reason \(String(describing: reason))")
        }
        let counters = try await loop.submit { box.value[0].counters }
        #expect(counters.handshakeFailures.values.reduce(0, +) >= 1)
        try await loop.submit { box.value.forEach { $0.shutdown() } }
        _ = address
    }

    @Test("garbage, truncated frames, abandoned connections and slow readers are dropped; honest peers are served")
    func badInput() async throws {
        let loop = try EventLoop(name: "test.bad")
        defer { loop.shutdown() }
        var c = ChannelConfig()
        c.handshakeTimeout = .milliseconds(300)
        let config = c
        let serverRec = Recorder()
        let box = LoopBox<SecureHost?>(nil)
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec, config: config)
            box.value = server
            return try server.listen(on: SocketAddress("127.0.0.1:0")!)
        }
        // 1. Garbage before the handshake (with a plausible length prefix), 2. a truncated
        // first message, 3. 200 connections opened and abandoned.
        var raw: [Int32] = []
        raw.append(try RawClient.connect(address, send: [0, 40] + [UInt8](repeating: 0xAB, count: 40)))
        raw.append(try RawClient.connect(address, send: [0, 32, 1, 2, 3]))
        raw.append(try RawClient.connect(address, send: [0xFF, 0xFF] + [UInt8](repeating: 1, count: 100)))
        for _ in 0..<200 { raw.append(try RawClient.connect(address, send: [])) }
        // An honest peer connects at the same time and is served.
        let honestRec = Recorder()
        let honestBox = LoopBox<SecureHost?>(nil)
        try await loop.submit {
            let honest = makeHost(loop, recorder: honestRec, config: config)
            honestBox.value = honest
            _ = try honest.dial(address)
        }
        #expect(await waitUntil { honestRec.readyCount == 1 })
        // Every bad connection is gone within the handshake timeout.
        #expect(await waitUntil(10) { serverRec.closedCount >= 203 })
        let counters = try await loop.submit { box.value!.counters }
        #expect(counters.handshakeFailures["handshake_timeout", default: 0] >= 200)
        #expect(counters.handshakeFailures.values.reduce(0, +) >= 203)
        let live = try await loop.submit { box.value!.peers.count }
        #expect(live == 1, "only the honest peer remains")
        for fd in raw { RawClient.close(fd) }
        try await loop.submit { box.value!.shutdown(); honestBox.value!.shutdown() }
    }

    @Test("a peer that stops reading is cut off at the hard limit")
    func slowReader() async throws {
        let loop = try EventLoop(name: "test.slow")
        defer { loop.shutdown() }
        let serverRec = Recorder()
        let slowRec = Recorder()
        let box = LoopBox<(SecureHost?, SecurePeer?, SecureHost?)>((nil, nil, nil))
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec)
            box.value.0 = server
            return try server.listen(on: SocketAddress("127.0.0.1:0")!)
        }
        try await loop.submit {
            let slow = makeHost(loop, recorder: slowRec)
            box.value.2 = slow
            let p = try slow.dial(address)
            box.value.1 = p
        }
        #expect(await waitUntil { serverRec.readyCount == 1 && slowRec.readyCount == 1 })
        // The slow side stops reading; the server keeps pushing 1 MiB messages.
        try await loop.submit { box.value.1!.socket.pauseReading() }
        let pushed = LoopBox(0)
        for _ in 0..<200 {
            let stillOpen: Bool = try await loop.submit {
                guard let peer = box.value.0!.readyPeers.first else { return false }
                peer.socket.hardLimit = 8 << 20
                let s = try peer.openStream("/flood")
                try? peer.send([UInt8](repeating: 1, count: 1 << 20), on: s, compress: false)
                peer.flush()
                pushed.value += 1
                return true
            }
            if !stillOpen { break }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        #expect(await waitUntil { serverRec.closedCount == 1 })
        let queued = try await loop.submit { box.value.0!.peers.count }
        #expect(queued == 0)
        try await loop.submit { box.value.0!.shutdown(); box.value.1!.close() }
    }

    @Test("peers that ask and never read cannot hold more than the host's send budget together; a reading peer is still served")
    func sendBudget() async throws {
        let loop = try EventLoop(name: "test.budget")
        defer { loop.shutdown() }
        let serverRec = Recorder()
        let recs = (0..<3).map { _ in Recorder() }
        let box = LoopBox<(SecureHost?, [SecureHost], [SecurePeer])>((nil, [], []))
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec)
            server.maxTotalQueuedBytes = 12 << 20
            server.queueFairShare = 1 << 20
            box.value.0 = server
            return try server.listen(on: SocketAddress("127.0.0.1:0")!)
        }
        for r in recs {
            try await loop.submit {
                let h = makeHost(loop, recorder: r)
                box.value.1.append(h)
                box.value.2.append(try h.dial(address)!)
            }
        }
        #expect(await waitUntil { serverRec.readyCount == 3 && recs.allSatisfy { $0.readyCount == 1 } })
        // Two clients stop reading; the server pushes 1 MiB messages at them in turn (each
        // within its own 64 MiB channel limit, together past the host's 12 MiB budget).
        let readingId = try await loop.submit { () -> String in
            box.value.2[0].socket.pauseReading()
            box.value.2[1].socket.pauseReading()
            return box.value.1[2].identity.signingKey.publicKey.hex
        }
        var peak = 0
        for _ in 0..<80 {
            let (open, queued): (Int, Int) = try await loop.submit {
                let server = box.value.0!
                for peer in server.readyPeers where peer.remoteNodeId?.hex != readingId {
                    guard let s = try? peer.openStream("/flood") else { continue }
                    try? peer.send([UInt8](repeating: 1, count: 1 << 20), on: s, compress: false)
                    peer.flush()
                }
                return (server.readyPeers.filter { $0.remoteNodeId?.hex != readingId }.count, server.totalQueuedBytes)
            }
            peak = max(peak, queued)
            if open == 0 { break }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        let dropped = try await loop.submit { box.value.0!.counters.droppedOverSendBudget }
        #expect(dropped >= 1, "no peer was cut off at the host's send budget")
        #expect(peak <= (12 << 20) + (1 << 20), "the host held \(peak) bytes for peers that do not read")
        // The reading peer is served throughout.
        let before = recs[2].messageCount
        try await loop.submit {
            let server = box.value.0!
            guard let peer = server.readyPeers.first(where: { $0.remoteNodeId?.hex == readingId }), let s = try? peer.openStream("/small") else { return }
            try? peer.send([1, 2, 3], on: s)
            peer.flush()
        }
        #expect(await waitUntil { recs[2].messageCount > before }, "the reading peer was not served")
        try await loop.submit {
            box.value.0!.shutdown()
            box.value.1.forEach { $0.shutdown() }
        }
    }

    @Test("closing with a reason: the peer reads the CLOSE frame (sent with the FIN) and its reason, from either side; sockets know both addresses")
    func closeWithReason() async throws {
        let loop = try EventLoop(name: "test.close")
        defer { loop.shutdown() }
        let serverRec = Recorder()
        let clientRec = Recorder()
        let box = LoopBox<(SecureHost?, SecureHost?, [SecurePeer])>((nil, nil, []))
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec)
            let client = makeHost(loop, recorder: clientRec)
            box.value = (server, client, [])
            return try server.listen(on: SocketAddress("127.0.0.1:0")!)
        }
        // Round 1 the client closes (as the handshake benchmark does), round 2 the server.
        for round in 1...2 {
            try await loop.submit { box.value.2 = [try box.value.1!.dial(address)!] }
            #expect(await waitUntil { clientRec.readyCount == round && serverRec.readyCount == round })
            let addresses = try await loop.submit { () -> (SocketAddress?, SocketAddress, SocketAddress?, SocketAddress) in
                let c = box.value.2[0]
                let s = box.value.0!.peers.values.first { $0.isInbound }!
                if round == 1 {
                    c.close(code: 4321, reason: "bye from the client")
                } else {
                    s.close(code: 4322, reason: "bye from the server")
                }
                return (c.socket.localAddress, c.socket.remoteAddress, s.socket.localAddress, s.socket.remoteAddress)
            }
            #expect(addresses.0 == addresses.3, "the client's local address is the server's remote one")
            #expect(addresses.2 == addresses.1, "the server's local address is the client's remote one")
            let closer = round == 1 ? clientRec : serverRec
            let other = round == 1 ? serverRec : clientRec
            #expect(await waitUntil { clientRec.closedCount == round && serverRec.closedCount == round })
            let seen = other.state.withLock { $0.closed.last?.0 }
            let expected: (UInt16, String) = round == 1 ? (4321, "bye from the client") : (4322, "bye from the server")
            if case .some(.remoteClosed(let code, let reason)) = seen {
                #expect(code == expected.0 && reason == expected.1)
            } else {
                Issue.record("round \(round): the peer saw \(String(describing: seen)), not the CLOSE frame")
            }
            #expect(closer.state.withLock { $0.closed.last?.0 } == nil, "the closing side reports an orderly close")
        }
        try await loop.submit { box.value.0!.shutdown(); box.value.1!.shutdown() }
    }

    @Test("connection limits refuse the excess and count it")
    func limits() async throws {
        let loop = try EventLoop(name: "test.limits")
        defer { loop.shutdown() }
        let serverRec = Recorder()
        let box = LoopBox<SecureHost?>(nil)
        let limits = ConnectionLimits(maxTotal: 100, maxInbound: 100, maxOutbound: 10, maxPerIP: 3, exemptLoopback: false)
        let address: SocketAddress = try await loop.submit {
            let server = makeHost(loop, recorder: serverRec, limits: limits)
            box.value = server
            return try server.listen(on: SocketAddress("127.0.0.1:0")!)
        }
        var fds: [Int32] = []
        for _ in 0..<6 { fds.append(try RawClient.connect(address, send: [])) }
        try await Task.sleep(nanoseconds: 200_000_000)
        let (accepted, refused) = try await loop.submit { (box.value!.counters.accepted, box.value!.tracker.refused) }
        #expect(accepted == 3)
        #expect(refused == 3)
        for fd in fds { RawClient.close(fd) }
        try await loop.submit { box.value!.shutdown() }
    }
}

/// A blocking raw TCP client for feeding bytes that no honest peer would send.
enum RawClient {
    static func connect(_ address: SocketAddress, send bytes: [UInt8]) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        sin.sin_addr.s_addr = inet_addr(address.host)
        let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw SocketError("connect", errno: errno) }
        if !bytes.isEmpty { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        return fd
    }

    static func close(_ fd: Int32) { _ = Foundation.close(fd) }
}
