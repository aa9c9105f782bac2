import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
@testable import MeshQuery
import MeshSockets
import MeshTestSupport
import Synchronization
import Testing

let genesis = [UInt8](repeating: 3, count: 32)

/// An axon with an `echo`, a `slow`, a `fail` and a `stream` synapse, and a dendrite whose
/// hotkey is registered with a permit.
final class Rig: @unchecked Sendable {
    let axonLoop: EventLoop
    let clientLoop: EventLoop
    let minerKey = Ed25519.PrivateKey()
    let validatorKey = Ed25519.PrivateKey()
    let axon: Axon
    let dendrite: Dendrite
    var endpoint: AxonEndpoint!

    init(limits: AxonLimits = AxonLimits(), channel: ChannelConfig? = nil) async throws {
        self.axonLoop = try EventLoop(name: "test.axon")
        self.clientLoop = try EventLoop(name: "test.dendrite")
        self.axon = Axon(hotkey: self.minerKey, netuid: 1, genesisHash: genesis, loop: self.axonLoop, limits: limits, channel: channel)
        self.axon.attach(synapse: "echo") { req in .body(req.body.reversed()) }
        self.axon.attach(synapse: "slow") { req in
            let ms = req.body.first.map(UInt64.init) ?? 100
            try await Task.sleep(nanoseconds: ms * 1_000_000)
            return .body([UInt8](repeating: 1, count: 10))
        }
        self.axon.attach(synapse: "fail") { _ in throw QueryError(.badRequest, "cannot parse that") }
        self.axon.attach(synapse: "crash") { _ in struct Boom: Error {}; throw Boom() }
        self.axon.attach(synapse: "stream") { req in
            let n = Int(req.body.first ?? 3)
            return .stream(AsyncThrowingStream { c in
                for i in 0..<n { c.yield([UInt8](repeating: UInt8(i), count: 1000)) }
                c.finish()
            })
        }
        self.axon.updateDirectory([self.validatorKey.publicKey: CallerInfo(uid: 1, stake: 500, validatorPermit: true)])
        let addr = try await self.axon.start(listen: SocketAddress("127.0.0.1:0")!)
        self.dendrite = Dendrite(hotkey: self.validatorKey, genesisHash: genesis, loop: self.clientLoop)
        self.endpoint = AxonEndpoint(hotkey: self.minerKey.publicKey, nodeId: self.minerKey.publicKey, address: addr)
    }

    func shutdown() {
        self.dendrite.close()
        self.axon.stop()
        self.clientLoop.shutdown()
        self.axonLoop.shutdown()
    }
}

/// Sends raw bytes on a query stream and collects the answer frames (for forged input).
final class RawClient: SecurePeerDelegate, @unchecked Sendable {
    let frames = Mutex<[QueryResponseFrame]>([])
    let ready = Mutex(false)
    let closed = Mutex(false)
    /// Streams the other side reset; streams it opened to us (a relay forwarding requests).
    let resets = Mutex(0)
    let opened = Mutex(0)
    /// When set, announce as a miner on the relay protocol (a miner that never answers).
    var announceNetuid: UInt16?
    var host: SecureHost!
    var peer: SecurePeer?

    func peerReady(_ peer: SecurePeer) {
        if let n = self.announceNetuid, let s = try? peer.openStream(QueryProtocol.relay) {
            var w = ByteWriter()
            w.u16(n)
            try? peer.send(w.bytes, on: s)
        }
        self.ready.withLock { $0 = true }
    }
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) { self.opened.withLock { $0 += 1 } }
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        if let f = try? QueryResponseFrame.decode(message) { self.frames.withLock { $0.append(f) } }
    }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) { if reset != nil { self.resets.withLock { $0 += 1 } } }
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) { self.closed.withLock { $0 = true } }

    var trailers: [QueryResponseTrailer] {
        self.frames.withLock { $0.compactMap { if case .trailer(let t) = $0 { return t } else { return nil } } }
    }

    static func connect(_ loop: EventLoop, to address: SocketAddress, key: Ed25519.PrivateKey = Ed25519.PrivateKey(),
                        asMinerOf netuid: UInt16? = nil) async throws -> RawClient {
        let c = RawClient()
        c.announceNetuid = netuid
        try await loop.submit {
            c.host = SecureHost(loop: loop, identity: NodeIdentity(signingKey: key, noiseStatic: X25519.PrivateKey())) {
                Hello(genesisHash: genesis, roles: netuid == nil ? .full : .miner)
            }
            c.host.delegate = c
            c.peer = try c.host.dial(address)
        }
        #expect(await waitFor { c.ready.withLock { $0 } })
        return c
    }

    func send(_ messages: [[UInt8]], finishLast: Bool = true) async throws {
        try await self.host.loop.submit {
            let s = try self.peer!.openStream(QueryProtocol.query)
            for (i, m) in messages.enumerated() { try self.peer!.send(m, on: s, finish: finishLast && i == messages.count - 1) }
        }
    }
}

func waitFor(_ timeout: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    return condition()
}

@Suite("Query routing over loopback", .serialized)
struct QueryLoopbackTests {
    @Test("a request is answered, verified, and the channel is reused")
    func echo() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        for i in 0..<20 {
            let body = Array("hello \(i)".utf8)
            let r = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: body, timeout: 30)
            #expect(r.isSuccess, "\(r.failure.map { "\($0)" } ?? "")")
            #expect(r.body == body.reversed())
        }
        #expect(await rig.dendrite.connectionCount() == 1)
        // A large body (compressed on the wire) and an empty one.
        let big = [UInt8](repeating: 5, count: 900_000)
        let rb = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: big, timeout: 30)
        #expect(rb.isSuccess && rb.body == big)
        let re = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: [], timeout: 30)
        #expect(re.isSuccess && re.body.isEmpty)
        let stats = await rig.axon.statistics()
        #expect(stats.byStatus[200] == 22)
    }

    @Test("statuses: 404, 413, 400 and 500 from handlers, 408 on a slow handler, 403 for strangers")
    func statuses() async throws {
        var limits = AxonLimits()
        limits.maxBodyBytes = 1000
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let d = rig.dendrite
        let e = rig.endpoint!
        #expect(await d.call(e, netuid: 1, synapse: "unknown", body: [1], timeout: 30).status == .notFound)
        #expect(await d.call(e, netuid: 1, synapse: "echo", body: [UInt8](repeating: 0, count: 1001), timeout: 30).status == .payloadTooLarge)
        let fail = await d.call(e, netuid: 1, synapse: "fail", body: [1], timeout: 30)
        #expect(fail.status == .badRequest)
        #expect(fail.failure == .refused(.badRequest, "cannot parse that"))
        #expect(await d.call(e, netuid: 1, synapse: "crash", body: [1], timeout: 30).status == .internalError)
        let slow = await d.call(e, netuid: 1, synapse: "slow", body: [250], timeout: 0.1)
        #expect(slow.status == .timeout)
        // The miner also gave up (its own deadline timer), so its slot is free again.
        #expect(await waitFor { await rig.axon.statistics().inFlight == 0 })
        let ok = await d.call(e, netuid: 1, synapse: "slow", body: [5], timeout: 30)
        #expect(ok.isSuccess)
        // A stranger's dendrite: refused before any body is read.
        let strangerLoop = try EventLoop(name: "test.stranger")
        defer { strangerLoop.shutdown() }
        let stranger = Dendrite(hotkey: Ed25519.PrivateKey(), genesisHash: genesis, loop: strangerLoop)
        defer { stranger.close() }
        let r = await stranger.call(e, netuid: 1, synapse: "echo", body: [UInt8](repeating: 1, count: 500), timeout: 30)
        #expect(r.status == .forbidden)
        let stats = await rig.axon.statistics()
        #expect(stats.refusedBeforeBody >= 3)  // 404, 413, 403
        // The slow call ended by the miner's 408 or by the caller's reset, whichever came first.
        #expect((stats.byStatus[408] ?? 0) <= 1)
    }

    @Test("streaming answers arrive chunk by chunk and verify as a whole")
    func streaming() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let chunks = Mutex<[Int]>([])
        let r = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "stream", body: [7], timeout: 30) { c in
            chunks.withLock { $0.append(c.count) }
        }
        #expect(r.isSuccess)
        #expect(chunks.withLock { $0 } == [Int](repeating: 1000, count: 7))
        let whole = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "stream", body: [4], timeout: 30)
        #expect(whole.body == (0..<4).flatMap { [UInt8](repeating: UInt8($0), count: 1000) })
    }

    @Test("fan-out: results in input order with one deadline; unreachable, slow and wrong-identity miners folded in")
    func fanOut() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let impostor = Ed25519.PrivateKey()
        let absent = Ed25519.PrivateKey()
        let targets = [
            rig.endpoint!,
            AxonEndpoint(hotkey: impostor.publicKey, nodeId: impostor.publicKey, address: rig.endpoint.address),  // wrong identity
            AxonEndpoint(hotkey: absent.publicKey, nodeId: absent.publicKey, address: SocketAddress("127.0.0.1:1")!),  // nothing listens
            rig.endpoint!,
        ]
        let started = Date()
        let results = await rig.dendrite.query(targets, netuid: 1, synapse: "echo", body: [1, 2, 3], timeout: 10)
        #expect(results.count == 4)
        #expect(results[0].isSuccess && results[0].body == [3, 2, 1])
        #expect(results[1].status == .unavailable)
        #expect(results[2].status == .unavailable)
        #expect(results[3].isSuccess)
        #expect(Date().timeIntervalSince(started) < 12)
        // Slow miners cut at the deadline, fast ones answered.
        let mixed = await withTaskGroup(of: [QueryResult].self) { g in
            g.addTask { await rig.dendrite.query([rig.endpoint, rig.endpoint], netuid: 1, synapse: "slow", body: [250], timeout: 0.1) }
            return await g.next()!
        }
        let allTimedOut = mixed.allSatisfy { $0.status == .timeout }
        #expect(allTimedOut)
    }

    @Test("cancelling the calling task ends the call at once")
    func cancellation() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let task = Task { await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "slow", body: [250], timeout: 10) }
        try await Task.sleep(nanoseconds: 50_000_000)
        let started = Date()
        task.cancel()
        let r = await task.value
        #expect(r.failure == .cancelled)
        #expect(Date().timeIntervalSince(started) < 1)
        // The reset reached the miner, which dropped the request and cancelled its handler.
        #expect(await waitFor { await rig.axon.statistics().inFlight == 0 })
    }

    @Test("forged, replayed, expired, malformed and lying requests are refused and the axon keeps serving")
    func badInput() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        let other = Ed25519.PrivateKey()
        rig.axon.updateDirectory([rig.validatorKey.publicKey: CallerInfo(uid: 1, stake: 500, validatorPermit: true),
                                  other.publicKey: CallerInfo(uid: 2, stake: 500, validatorPermit: true)])
        // The update is applied on the axon's loop; a round trip through that loop orders it before
        // the requests below (otherwise a busy machine may screen the impersonation with the old
        // directory and refuse it as unregistered, 403, instead of 401).
        _ = await rig.axon.statistics()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        func header(_ body: [UInt8], nonce: UInt64, deadline: UInt64? = nil) -> QueryRequestHeader {
            QueryRequestHeader(netuid: 1, synapse: "echo", caller: rig.validatorKey, target: rig.minerKey.publicKey,
                               nonce: nonce, deadline: deadline ?? now + 5000, body: body)
        }
        // 1 garbage header; 2 impersonation (another registered hotkey on our channel); 3 valid; 4 replay of 3;
        // 5 expired; 6 body not matching its hash; 7 body longer than declared; 8 stream ended before the body.
        let forged = QueryRequestHeader(netuid: 1, synapse: "echo", caller: other, target: rig.minerKey.publicKey, nonce: 2, deadline: now + 5000, body: [1])
        let valid = header([1, 2], nonce: 3)
        try await raw.send([[0xde, 0xad, 0xbe, 0xef]])
        try await raw.send([forged.encoded, [1]])
        try await raw.send([valid.encoded, [1, 2]])
        #expect(await waitFor { raw.trailers.count == 3 })
        try await raw.send([valid.encoded, [1, 2]])
        try await raw.send([header([1], nonce: 5, deadline: now - 60_000).encoded, [1]])
        try await raw.send([header([1, 2], nonce: 6).encoded, [9, 9]])
        try await raw.send([header([1, 2], nonce: 7).encoded, [1, 2, 3]])
        try await raw.send([header([1, 2], nonce: 8).encoded])
        #expect(await waitFor { raw.trailers.count == 8 })
        let statuses = raw.trailers.map(\.status.rawValue).sorted()
        #expect(statuses == [200, 400, 400, 400, 400, 401, 401, 408], "\(statuses)")
        // Unverified refusals are unsigned; the verified ones are signed by the miner.
        for t in raw.trailers {
            if t.status == .ok { #expect(t.isSigned(by: rig.minerKey.publicKey)) }
            if t.message.contains("malformed") || t.message.contains("channel's identity") { #expect(t.signature == nil) }
        }
        #expect(!raw.closed.withLock { $0 })
        // Still serving.
        let r = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: [4, 5], timeout: 30)
        #expect(r.isSuccess)
    }

    @Test("an answer signed by the wrong key is rejected as a bad response")
    func wrongSignature() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        // The axon also claims to serve another hotkey, but signs with its own key.
        let other = Ed25519.PrivateKey()
        try await rig.axonLoop.submit { _ = rig.axon.policy.served.insert(other.publicKey) }
        let e = AxonEndpoint(hotkey: other.publicKey, nodeId: rig.minerKey.publicKey, address: rig.endpoint.address)
        let r = await rig.dendrite.call(e, netuid: 1, synapse: "echo", body: [1], timeout: 30)
        #expect(r.status == .badResponse)
        if case .badResponse = r.failure {} else { Issue.record("expected a bad-response failure, got \(String(describing: r.failure))") }
    }

    @Test("hundreds of concurrent requests in flight on one axon; over capacity the lowest priority is shed with 503")
    func concurrency() async throws {
        var limits = AxonLimits()
        limits.maxConcurrent = 400
        limits.maxQueued = 50
        limits.burst = 10_000
        limits.maxPendingHeaders = 1024
        // One dendrite, one channel: this many streams at once needs more than the default 128.
        var channel = ChannelConfig()
        channel.maxStreams = 1024
        let rig = try await Rig(limits: limits, channel: channel)
        defer { rig.shutdown() }
        let targets = [AxonEndpoint](repeating: rig.endpoint, count: 400)
        let results = await rig.dendrite.query(targets, netuid: 1, synapse: "slow", body: [200], timeout: 10)
        #expect(results.allSatisfy { $0.isSuccess })
        let stats = await rig.axon.statistics()
        #expect(stats.maxInFlight >= 300, "max in flight \(stats.maxInFlight)")
        // 500 at once: 400 run, 50 wait, the rest are shed.
        let over = await rig.dendrite.query([AxonEndpoint](repeating: rig.endpoint, count: 500), netuid: 1, synapse: "slow", body: [200], timeout: 10)
        let shed = over.filter { $0.status == .unavailable }.count
        #expect(shed == 50, "shed \(shed)")
        #expect(over.filter(\.isSuccess).count == 450)
    }

    @Test("relay: a miner without inbound connectivity is reached through a relay, end-to-end signed")
    func relay() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let relayLoop = try EventLoop(name: "test.relay")
        defer { relayLoop.shutdown() }
        let relayKey = Ed25519.PrivateKey()
        let relay = QueryRelay(identity: relayKey, genesisHash: genesis, loop: relayLoop)
        defer { relay.stop() }
        let relayAddr = try await relay.start(listen: SocketAddress("127.0.0.1:0")!)
        rig.axon.useRelay(relayAddr, nodeId: relayKey.publicKey)
        #expect(await waitFor { await relay.connectedMinersSync() == [rig.minerKey.publicKey] })
        let viaRelay = AxonEndpoint(hotkey: rig.minerKey.publicKey, nodeId: relayKey.publicKey, address: relayAddr)
        for i in 0..<5 {
            let r = await rig.dendrite.call(viaRelay, netuid: 1, synapse: "echo", body: [UInt8(i), 1], timeout: 30)
            #expect(r.isSuccess && r.body == [1, UInt8(i)])
        }
        let big = await rig.dendrite.call(viaRelay, netuid: 1, synapse: "echo", body: [UInt8](repeating: 8, count: 200_000), timeout: 30)
        #expect(big.isSuccess && big.body.count == 200_000)
        // Unknown target at the relay: 404, unsigned.
        let nobody = Ed25519.PrivateKey()
        let r = await rig.dendrite.call(AxonEndpoint(hotkey: nobody.publicKey, nodeId: relayKey.publicKey, address: relayAddr),
                                        netuid: 1, synapse: "echo", body: [1], timeout: 30)
        #expect(r.status == .notFound)
        #expect((await rig.axon.statistics()).relayConnected)
        // Through the relay only the signature proves the caller: a forged one is refused by the miner.
        let raw = try await RawClient.connect(rig.clientLoop, to: relayAddr)
        var forged = QueryRequestHeader(netuid: 1, synapse: "echo", caller: rig.validatorKey, target: rig.minerKey.publicKey,
                                        nonce: 77, deadline: UInt64(Date().timeIntervalSince1970 * 1000) + 5000, body: [1])
        forged.signature = Ed25519.PrivateKey().sign(forged.signingBytes)
        try await raw.send([forged.encoded, [1]])
        #expect(await waitFor { raw.trailers.count == 1 })
        #expect(raw.trailers.first?.status == .unauthorized)
    }

    @Test("a deadline of 2^64 - 1 is refused directly and through the relay; the axon and the relay keep serving")
    func hugeDeadline() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let relay = try await RelayRig(rig)
        defer { relay.shutdown() }
        let h = QueryRequestHeader(netuid: 1, synapse: "echo", caller: rig.validatorKey, target: rig.minerKey.publicKey,
                                   nonce: 1, deadline: .max, body: [])
        let direct = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        try await direct.send([h.encoded])
        let relayed = try await RawClient.connect(rig.clientLoop, to: relay.address)
        try await relayed.send([h.encoded])
        #expect(await waitFor { direct.trailers.count == 1 && relayed.trailers.count == 1 })
        #expect(direct.trailers.first?.status == .badRequest)
        #expect(relayed.trailers.first?.status == .badRequest)
        #expect(direct.trailers.first?.signature == nil && relayed.trailers.first?.signature == nil)
        // Both still serve.
        let r1 = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: [1, 2], timeout: 30)
        let r2 = await rig.dendrite.call(relay.endpoint, netuid: 1, synapse: "echo", body: [3, 4], timeout: 30)
        #expect(r1.isSuccess && r2.isSuccess)
    }

    @Test("dendrite timeouts of infinity, 1e11 s, NaN and negative are clamped instead of trapping")
    func oddTimeouts() async throws {
        var limits = AxonLimits()
        limits.maxDeadlineAheadMs = 3_600_000  // so that the clamped maximum is accepted
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        for t in [Double.infinity, 1e11] {
            let r = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: [1], timeout: t)
            #expect(r.isSuccess, "timeout \(t): \(String(describing: r.failure))")
        }
        for t: Double in [.nan, -1, -Double.infinity] {
            let r = await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "echo", body: [1], timeout: t)
            #expect(r.status == .timeout, "timeout \(t): \(r.status)")
        }
    }

    @Test("dendrite: a call cancelled before it starts ends at once; an axon going away fails its calls; nothing is left behind")
    func dendriteBookkeeping() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let started = Date()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }  // cancelled before the call is made
            return await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "slow", body: [250], timeout: 10)
        }
        let r = await task.value
        #expect(r.failure == .cancelled)
        #expect(Date().timeIntervalSince(started) < 2)
        // Calls in flight when the axon stops fail with the channel.
        async let a = rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "slow", body: [250], timeout: 10)
        async let b = rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "slow", body: [250], timeout: 10)
        try await Task.sleep(nanoseconds: 100_000_000)
        rig.axon.stop()
        let (ra, rb) = await (a, b)
        #expect(!ra.isSuccess && !rb.isSuccess)
        let left = try await rig.clientLoop.submit { (rig.dendrite.calls.count, rig.dendrite.byStream.count) }
        #expect(left == (0, 0))
    }
}

/// A relay on its own loop, with the rig's axon connected to it.
final class RelayRig: @unchecked Sendable {
    let loop: EventLoop
    let key = Ed25519.PrivateKey()
    let relay: QueryRelay
    let address: SocketAddress
    let endpoint: AxonEndpoint

    init(_ rig: Rig, limits: RelayLimits = RelayLimits()) async throws {
        self.loop = try EventLoop(name: "test.relay")
        self.relay = QueryRelay(identity: self.key, genesisHash: genesis, loop: self.loop, limits: limits)
        self.address = try await self.relay.start(listen: SocketAddress("127.0.0.1:0")!)
        self.endpoint = AxonEndpoint(hotkey: rig.minerKey.publicKey, nodeId: self.key.publicKey, address: self.address)
        rig.axon.useRelay(self.address, nodeId: self.key.publicKey)
        let relay = self.relay
        #expect(await waitFor { await relay.connectedMiners() == [rig.minerKey.publicKey] })
    }

    func shutdown() {
        self.relay.stop()
        self.loop.shutdown()
    }
}

extension QueryRelay {
    func connectedMinersSync() async -> [Ed25519.PublicKey] { await self.connectedMiners() }
}

func waitFor(_ timeout: Double = 10, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    return await condition()
}
