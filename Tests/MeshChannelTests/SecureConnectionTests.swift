@testable import MeshChannel
import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

/// Shuttles bytes between two in-memory connections.
final class Pair {
    let a: SecureConnection
    let b: SecureConnection
    var eventsA: [ChannelEvent] = []
    var eventsB: [ChannelEvent] = []
    var errorA: ChannelError?
    var errorB: ChannelError?
    var now = Instant.zero

    init(config: ChannelConfig = ChannelConfig(), genesisA: [UInt8] = [UInt8](repeating: 1, count: 32),
         genesisB: [UInt8] = [UInt8](repeating: 1, count: 32), identityA: NodeIdentity? = nil, identityB: NodeIdentity? = nil) {
        let ia = identityA ?? NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        let ib = identityB ?? NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        self.a = SecureConnection(role: .initiator, identity: ia, hello: Hello(genesisHash: genesisA), config: config, ephemeral: X25519.PrivateKey(), now: .zero)
        self.b = SecureConnection(role: .responder, identity: ib, hello: Hello(genesisHash: genesisB), config: config, ephemeral: X25519.PrivateKey(), now: .zero)
        try! self.a.start()
    }

    /// Moves bytes until neither side has anything to send.
    func pump(chunk: Int = 256 * 1024, maxRounds: Int = 100_000) {
        var rounds = 0
        while rounds < maxRounds {
            rounds += 1
            let fromA = self.a.takeOutbound(maxBytes: chunk)
            let fromB = self.b.takeOutbound(maxBytes: chunk)
            if fromA.isEmpty && fromB.isEmpty { break }
            if !fromA.isEmpty && self.errorB == nil {
                do { try self.b.receive(fromA, now: self.now) } catch { self.errorB = error }
            }
            if !fromB.isEmpty && self.errorA == nil {
                do { try self.a.receive(fromB, now: self.now) } catch { self.errorA = error }
            }
            self.eventsA += self.a.takeEvents()
            self.eventsB += self.b.takeEvents()
        }
        self.eventsA += self.a.takeEvents()
        self.eventsB += self.b.takeEvents()
    }

    static func messages(_ events: [ChannelEvent]) -> [(StreamID, [UInt8])] {
        events.compactMap { if case .message(let s, let m) = $0 { return (s, m) } else { return nil } }
    }
}

@Suite("Secure connection (in memory)")
struct SecureConnectionTests {
    @Test("handshake, identities and hellos")
    func handshake() {
        let ia = NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        let ib = NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        let p = Pair(identityA: ia, identityB: ib)
        p.pump()
        #expect(p.a.isEstablished && p.b.isEstablished)
        #expect(p.a.remoteNodeId == ib.nodeId)
        #expect(p.b.remoteNodeId == ia.nodeId)
        #expect(p.a.remoteHello?.genesisHash == [UInt8](repeating: 1, count: 32))
        #expect(p.b.remoteHello != nil)
        #expect(p.a.handshakeHash == p.b.handshakeHash)
        #expect(p.eventsA.contains { if case .hello = $0 { return true }; return false })
    }

    @Test("large and small messages interleaved: chunks sealed from the message into the send buffer, read in pieces of any size straight into the receive buffer")
    func gatheredSealAndDirectReads() throws {
        let p = Pair()
        p.pump()
        var rng = SeededRNG(seed: 77)
        let big = try p.a.openStream(protocolName: "/test/big")
        let small = try p.a.openStream(protocolName: "/test/small")
        var sent: [StreamID: [[UInt8]]] = [:]
        for i in 0..<30 {
            // Sizes around the gather threshold, past one transport message, and tiny.
            let size = [0, 1, SecureConnection.gatherThreshold - 1, SecureConnection.gatherThreshold, 70_000, 300_000][i % 6]
            let m = rng.bytes(size)
            try p.a.send(m, on: big, compress: false)
            sent[big, default: []].append(m)
            let s = rng.bytes(Int.random(in: 0...100, using: &rng))
            try p.a.send(s, on: small, compress: false)
            sent[small, default: []].append(s)
        }
        var received: [StreamID: [[UInt8]]] = [:]
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            // Odd budgets so transport messages straddle what each call returns.
            let wire = p.a.takeOutbound(maxBytes: Int.random(in: 1...200_000, using: &rng))
            let back = p.b.takeOutbound()
            if !back.isEmpty { try p.a.receive(back, now: .zero) }
            if wire.isEmpty && back.isEmpty { break }
            var offset = 0
            while offset < wire.count {
                // A socket that returns fewer bytes than the room it was lent, or all of it.
                try p.b.receive(now: .zero) { room in
                    let n = min(room.count, wire.count - offset, Int.random(in: 1...140_000, using: &rng))
                    wire.withUnsafeBytes { w in room.baseAddress!.copyMemory(from: w.baseAddress! + offset, byteCount: n) }
                    offset += n
                    return n
                }
            }
            for case .message(let s, let m) in p.b.takeEvents() { received[s, default: []].append(m) }
        }
        #expect(received[big] == sent[big])
        #expect(received[small] == sent[small])
        // Once idle, the receive buffer is let go.
        try p.b.tick(now: Instant(nanoseconds: 1))
        #expect(p.b.inbound.isEmpty)
    }

    @Test("many multiplexed streams in both directions")
    func streams() throws {
        let p = Pair()
        p.pump()
        var sent: [StreamID: [[UInt8]]] = [:]
        var rng = SeededRNG(seed: 5)
        for _ in 0..<40 {
            let s = try p.a.openStream(protocolName: "/test/1")
            var msgs: [[UInt8]] = []
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let m = rng.bytes(Int.random(in: 0...3000, using: &rng))
                try p.a.send(m, on: s)
                msgs.append(m)
            }
            sent[s] = msgs
        }
        p.pump(chunk: 4096)
        var got: [StreamID: [[UInt8]]] = [:]
        for (s, m) in Pair.messages(p.eventsB) { got[s, default: []].append(m) }
        #expect(got.count == 40)
        for (s, msgs) in sent { #expect(got[s] == msgs, "stream \(s)") }
        // Replies on the same streams.
        for s in sent.keys { try p.b.send([1, 2, 3], on: s, finish: true) }
        p.pump()
        #expect(Pair.messages(p.eventsA).count == 40)
        #expect(p.eventsA.filter { if case .streamFinished = $0 { return true }; return false }.count == 40)
    }

    @Test("large messages are split, reassembled and compressed when it pays", arguments: [false, true])
    func largeMessages(compressible: Bool) throws {
        let p = Pair()
        p.pump()
        var rng = SeededRNG(seed: 9)
        let big: [UInt8] = compressible ? (0..<(5 << 20)).map { UInt8(($0 / 7) % 251) } : rng.bytes(5 << 20)
        let s = try p.a.openStream(protocolName: "/bulk")
        let before = p.a.bytesSent
        try p.a.send(big, on: s)
        p.pump()
        let wire = p.a.bytesSent - before
        let msgs = Pair.messages(p.eventsB)
        #expect(msgs.count == 1 && msgs[0].1 == big)
        if compressible {
            #expect(wire < big.count / 2)
        } else {
            #expect(wire > big.count)
            #expect(p.a.messagesSent > 80, "split over many transport messages")
        }
    }

    @Test("compression can be forced off")
    func noCompression() throws {
        let p = Pair()
        p.pump()
        let s = try p.a.openStream(protocolName: "/x")
        let zeros = [UInt8](repeating: 0, count: 100_000)
        let before = p.a.bytesSent
        try p.a.send(zeros, on: s, compress: false)
        p.pump()
        #expect(p.a.bytesSent - before > 100_000)
        #expect(Pair.messages(p.eventsB).first?.1 == zeros)
    }

    @Test("rekeying at a fixed message count is transparent")
    func rekey() throws {
        var config = ChannelConfig()
        config.rekeyInterval = 7
        let p = Pair(config: config)
        p.pump()
        let s = try p.a.openStream(protocolName: "/r")
        for i in 0..<200 {
            try p.a.send([UInt8(i & 0xff)], on: s)
            p.pump()
            try p.b.send([UInt8(i & 0xff), 1], on: s)
            p.pump()
        }
        #expect(Pair.messages(p.eventsB).count == 200)
        #expect(Pair.messages(p.eventsA).count == 200)
        #expect(p.a.sendCipher!.nonce > 200)
        #expect(p.errorA == nil && p.errorB == nil)
    }

    @Test("a small message is not starved by a large transfer")
    func fairness() throws {
        let p = Pair()
        p.pump()
        let bulk = try p.a.openStream(protocolName: "/bulk")
        let small = try p.a.openStream(protocolName: "/small")
        try p.a.send([UInt8](repeating: 7, count: 8 << 20), on: bulk, compress: false)
        try p.a.send([42], on: small)
        // Deliver in 64 KiB slices and see which message completes first.
        p.pump(chunk: 65_536)
        let order = Pair.messages(p.eventsB).map(\.0)
        #expect(order == [small, bulk])
    }

    @Test("a peer on another genesis is dropped with a reason")
    func genesisMismatch() {
        let p = Pair(genesisA: [UInt8](repeating: 1, count: 32), genesisB: [UInt8](repeating: 2, count: 32))
        p.pump()
        #expect(p.a.isClosed && p.b.isClosed)
        let reasons = [p.errorA, p.errorB, p.a.closeReason, p.b.closeReason]
        // Each side sees the other's hello (sent before any close), so both know why.
        #expect(reasons.contains { if case .genesisMismatch = $0 { return true }; return false })
        #expect(p.a.remoteHello == nil && p.b.remoteHello == nil, "a hello from another chain is not accepted")
    }

    @Test("a peer with our own identity is dropped")
    func selfConnection() {
        let key = Ed25519.PrivateKey()
        let p = Pair(identityA: NodeIdentity(signingKey: key, noiseStatic: X25519.PrivateKey()), identityB: NodeIdentity(signingKey: key, noiseStatic: X25519.PrivateKey()))
        p.pump()
        #expect(p.errorA == .selfConnection || p.errorB == .selfConnection)
        #expect(!p.a.isEstablished || !p.b.isEstablished)
    }

    @Test("an identity whose signature does not bind the static key is refused")
    func forgedIdentity() {
        // B claims A's node id but signs with its own key.
        let victim = Ed25519.PrivateKey()
        let forger = NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        var payload = forger.payload
        payload.replaceSubrange(0..<32, with: victim.publicKey.bytes)
        let forged = ForgedIdentity.make(payload: payload, static: forger.noiseStatic, signingKey: forger.signingKey)
        let p = Pair(identityB: forged)
        p.pump()
        #expect(p.errorA == .invalidIdentity("signature over the static key does not verify"))
        #expect(!p.b.isEstablished)
    }

    @Test("garbage before and inside the handshake is an error, never a crash")
    func garbage() {
        var rng = SeededRNG(seed: 1)
        for round in 0..<300 {
            let c = SecureConnection(role: .responder, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey()),
                                     hello: Hello(genesisHash: [UInt8](repeating: 0, count: 32)), ephemeral: X25519.PrivateKey(), now: .zero)
            var junk = rng.bytes(Int.random(in: 0...600, using: &rng))
            if round % 2 == 0, junk.count >= 2 {
                // A plausible length prefix so the junk reaches the Noise layer.
                junk[0] = UInt8((junk.count - 2) >> 8)
                junk[1] = UInt8((junk.count - 2) & 0xff)
            }
            do { try c.receive(junk, now: .zero) } catch {}
            _ = c.takeOutbound()
        }
    }

    @Test("ciphertext that does not authenticate closes the channel")
    func badCiphertext() throws {
        let p = Pair()
        p.pump()
        let s = try p.a.openStream(protocolName: "/x")
        try p.a.send([1, 2, 3, 4, 5], on: s)
        var wire = p.a.takeOutbound()
        wire[wire.count - 3] ^= 0x40
        #expect(throws: ChannelError.decryptFailed) { try p.b.receive(wire, now: .zero) }
        #expect(p.b.isClosed)
        // It tells the peer why.
        let goodbye = p.b.takeOutbound()
        #expect(!goodbye.isEmpty)
    }

    @Test("oversized and malformed frames are violations")
    func frameLimits() throws {
        var config = ChannelConfig()
        config.maxMessageSize = 1000
        let p = Pair(config: config)
        p.pump()
        let s = try p.a.openStream(protocolName: "/x")
        #expect(throws: ChannelError.messageTooLarge(declared: 5000, limit: 1000)) { try p.a.send([UInt8](repeating: 1, count: 5000), on: s) }
        // A hand-made DATA frame that declares too large a message.
        var body = ByteWriter()
        body.u8(DataFlags([.first]).rawValue)
        body.varint(UInt64(1) << 40)
        p.a.queueControl(.data, stream: s, body: body.bytes)
        p.pump()
        if case .messageTooLarge = p.errorB {} else { Issue.record("expected messageTooLarge, got \(String(describing: p.errorB))") }
    }

    @Test("a silent or stalled handshake times out")
    func handshakeTimeout() throws {
        let c = SecureConnection(role: .responder, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey()),
                                 hello: Hello(genesisHash: [UInt8](repeating: 0, count: 32)), ephemeral: X25519.PrivateKey(), now: .zero)
        // Half of a handshake message, then nothing.
        try c.receive([0, 32, 1, 2, 3], now: Instant(nanoseconds: 1))
        try c.tick(now: .zero + .seconds(4))
        #expect(throws: ChannelError.handshakeTimeout) { try c.tick(now: .zero + .seconds(6)) }
        #expect(c.isClosed)
    }

    @Test("flow control stops a sender that ignores the window")
    func flowControl() throws {
        var config = ChannelConfig()
        config.streamWindow = 10_000
        let p = Pair(config: config)
        p.pump()
        let s = try p.a.openStream(protocolName: "/x")
        p.pump()
        // Honest: a 100 KB message crosses a 10 KB window through WINDOW updates.
        try p.a.send([UInt8](repeating: 3, count: 100_000), on: s, compress: false)
        p.pump(chunk: 4096)
        #expect(Pair.messages(p.eventsB).count == 1)
        // Dishonest: bytes beyond the window.
        var flood = ByteWriter()
        flood.u8(DataFlags([.first]).rawValue)
        flood.varint(20_000)
        flood.raw([UInt8](repeating: 0, count: 15_000))
        p.a.queueControl(.data, stream: s, body: flood.bytes)
        p.pump()
        #expect(p.errorB == .flowControlViolation(stream: s))
    }

    @Test("a peer's silent stream, a half-sent message and a stalled window each time out; an active stream does not")
    func streamTimeouts() throws {
        let config = ChannelConfig()
        func resets(_ events: [ChannelEvent]) -> [StreamID: UInt16] {
            var out: [StreamID: UInt16] = [:]
            for case .streamReset(let s, let code) in events { out[s] = code }
            return out
        }
        let p = Pair(config: config)
        p.pump()
        // A opens a stream and says nothing more; another it keeps busy.
        let silent = try p.a.openStream(protocolName: "/x")
        let busy = try p.a.openStream(protocolName: "/x")
        // A third carries the first 1,000 bytes of a message announced as 20,000.
        let partial = try p.a.openStream(protocolName: "/x")
        var w = ByteWriter()
        w.u8(DataFlags([.first]).rawValue)
        w.varint(20_000)
        w.raw([UInt8](repeating: 5, count: 1000))
        p.a.queueControl(.data, stream: partial, body: w.bytes)
        p.pump()
        // Just inside every limit: nothing is reset.
        try p.b.tick(now: .zero + config.partialTimeout)
        #expect(resets(p.b.takeEvents()).isEmpty)
        // Past the partial timeout: the half-sent message goes, the others stay.
        p.now = .zero + config.partialTimeout + .seconds(1)
        try p.a.send([1], on: busy)
        p.pump()
        try p.b.tick(now: p.now)
        #expect(resets(p.b.takeEvents()) == [partial: ChannelCode.timeout])
        // Past the idle timeout: the silent stream goes; the busy one spoke recently.
        p.now = .zero + config.streamIdleTimeout + .seconds(1)
        try p.a.send([2], on: busy)
        p.pump()
        try p.b.tick(now: p.now)
        #expect(resets(p.b.takeEvents()) == [silent: ChannelCode.timeout])
        #expect(Pair.messages(p.eventsB).filter { $0.0 == busy }.count == 2)

        // A window that never reopens: B sends more than the window and A never reads it.
        let q = Pair(config: config)
        q.pump()
        let out = try q.b.openStream(protocolName: "/y")
        try q.b.send([UInt8](repeating: 9, count: Int(config.streamWindow) * 2), on: out, compress: false)
        _ = q.b.takeOutbound(maxBytes: 64 << 20)  // lost: no WINDOW comes back
        try q.b.tick(now: .zero + config.windowStallTimeout)
        #expect(resets(q.b.takeEvents()).isEmpty)
        try q.b.tick(now: .zero + config.windowStallTimeout * 2 + .seconds(1))
        #expect(resets(q.b.takeEvents()) == [out: ChannelCode.timeout])
    }

    @Test("random frames after the handshake never crash the receiver")
    func fuzzFrames() throws {
        var rng = SeededRNG(seed: 3)
        for _ in 0..<300 {
            let p = Pair()
            p.pump()
            for _ in 0..<5 {
                let kind = FrameKind(rawValue: UInt8.random(in: 1...8, using: &rng))!
                p.a.queueControl(kind, stream: UInt64.random(in: 0...6, using: &rng), body: rng.bytes(Int.random(in: 0...40, using: &rng)))
            }
            p.pump()
        }
    }
}

/// A node identity with an arbitrary payload (for forgery tests).
enum ForgedIdentity {
    static func make(payload: [UInt8], static key: X25519.PrivateKey, signingKey: Ed25519.PrivateKey) -> NodeIdentity {
        NodeIdentity(signingKey: signingKey, noiseStatic: key, payloadOverride: payload)
    }
}
