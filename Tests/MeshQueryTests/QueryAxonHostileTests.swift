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

/// The axon against callers that open streams and stay silent, withhold bodies, flood past
/// their rate limit, or let requests expire in the queue.
@Suite("Axon under hostile callers", .serialized)
struct QueryAxonHostileTests {
    func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    func header(_ rig: Rig, nonce: UInt64, synapse: String = "echo", deadlineIn ms: UInt64 = 5000, body: [UInt8] = []) -> QueryRequestHeader {
        QueryRequestHeader(netuid: 1, synapse: synapse, caller: rig.validatorKey, target: rig.minerKey.publicKey,
                           nonce: nonce, deadline: self.now() + ms, body: body)
    }

    @Test("a stream without a header gets 408 after the header timeout, and is charged as junk")
    func silentStream() async throws {
        var limits = AxonLimits()
        limits.headerTimeoutMs = 200
        limits.junkBurst = 2
        limits.junkPerSecond = 0.001
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        try await raw.send([], finishLast: false)
        #expect(await waitFor(5) { raw.trailers.count == 1 })
        #expect(raw.trailers.first?.status == .timeout && raw.trailers.first?.signature == nil)
        #expect(await rig.axon.statistics().inFlight == 0)
        // Junk budget of 2: two more silent streams and the channel is closed.
        try await raw.send([], finishLast: false)
        try await raw.send([], finishLast: false)
        #expect(await waitFor(5) { raw.closed.withLock { $0 } })
    }

    @Test("an admitted request whose body never comes ends at its deadline with 408, unsigned and charged")
    func missingBody() async throws {
        var limits = AxonLimits()
        limits.clockSkewMs = 100
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        let started = Date()
        try await raw.send([self.header(rig, nonce: 1, deadlineIn: 300, body: [1, 2, 3]).encoded], finishLast: false)
        #expect(await waitFor(15) { raw.trailers.count == 1 })
        _ = started
        // Ended by the request's deadline (not by the 10 s header timer, which says otherwise).
        #expect(raw.trailers.first?.message.contains("body did not arrive before the deadline") == true, "\(String(describing: raw.trailers.first))")
        #expect(raw.trailers.first?.status == .timeout && raw.trailers.first?.signature == nil)
        #expect(await rig.axon.statistics().inFlight == 0)
    }

    @Test("stream caps: header-phase streams per channel, and 128 streams per channel by default")
    func streamCaps() async throws {
        var limits = AxonLimits()
        limits.maxPendingHeaders = 4
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        for _ in 0..<6 { try await raw.send([], finishLast: false) }
        #expect(await waitFor { raw.resets.withLock { $0 } == 2 })
        #expect(await rig.axon.statistics().inFlight == 4)

        let open = try await Rig()
        defer { open.shutdown() }
        let many = try await RawClient.connect(open.clientLoop, to: open.endpoint.address, key: open.validatorKey)
        for _ in 0..<(Axon.defaultMaxStreams + 1) { try await many.send([], finishLast: false) }
        #expect(await waitFor { many.resets.withLock { $0 } == 1 })
        #expect(await open.axon.statistics().inFlight == Axon.defaultMaxStreams)
    }

    @Test("over the rate limit: 429s are unsigned and charged, so a flood closes the channel instead of costing signatures")
    func rateFlood() async throws {
        var limits = AxonLimits()
        limits.burst = 2
        limits.ratePerSecond = 0.001
        limits.junkBurst = 5
        limits.junkPerSecond = 0.001
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        // The burst first, answered (signed) before the flood: closing the channel drops
        // answers still in flight, and under load the flood's close could beat them.
        for n in 0..<2 { try await raw.send([self.header(rig, nonce: UInt64(n)).encoded]) }
        #expect(await waitFor { raw.trailers.count == 2 })
        // One over the limit, answered 429 before the flood (for the same reason).
        try await raw.send([self.header(rig, nonce: 2).encoded])
        #expect(await waitFor { raw.trailers.count == 3 })
        for n in 3..<20 { try? await raw.send([self.header(rig, nonce: UInt64(n)).encoded]) }
        #expect(await waitFor { raw.closed.withLock { $0 } })
        let trailers = raw.trailers
        #expect(trailers.filter { $0.status == .ok }.count == 2)
        let limited = trailers.filter { $0.status == .tooManyRequests }
        #expect(!limited.isEmpty && limited.count <= 6)
        #expect(limited.allSatisfy { $0.signature == nil })
        // Refused requests did not fill the nonce table.
        let held = try await rig.axonLoop.submit { rig.axon.policy.nonces.total }
        #expect(held == 2)
    }

    @Test("a request that waited in the queue past its deadline is answered 408 without starting its handler")
    func expiredInQueue() async throws {
        var limits = AxonLimits()
        limits.maxConcurrent = 1
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let started = Atomic(0)
        rig.axon.attach(synapse: "count") { _ in
            started.add(1, ordering: .relaxed)
            return .body([])
        }
        _ = await rig.axon.statistics()  // the handler is attached
        let raw = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: rig.validatorKey)
        // The slot is busy for 600 ms; the queued request's deadline is 200 ms.
        try await raw.send([self.header(rig, nonce: 1, synapse: "slow", deadlineIn: 5000, body: [250]).encoded, [250]])
        try await Task.sleep(nanoseconds: 50_000_000)
        try await raw.send([self.header(rig, nonce: 2, synapse: "slow", deadlineIn: 5000, body: [250]).encoded, [250]])
        try await Task.sleep(nanoseconds: 50_000_000)
        try await raw.send([self.header(rig, nonce: 3, synapse: "count", deadlineIn: 200).encoded])
        #expect(await waitFor { raw.trailers.count == 3 })
        let late = raw.trailers.first { $0.status == .timeout }
        #expect(late != nil, "\(raw.trailers.map(\.status))")
        #expect(started.load(ordering: .relaxed) == 0)
    }

    @Test("closing one channel drops its requests only; an operator's unlimited ban time does not trap")
    func closeOneChannel() async throws {
        var limits = AxonLimits()
        limits.junkBanSeconds = .max
        limits.junkBurst = 1
        limits.junkPerSecond = 0.001
        let rig = try await Rig(limits: limits)
        defer { rig.shutdown() }
        let noisy = try await RawClient.connect(rig.clientLoop, to: rig.endpoint.address, key: Ed25519.PrivateKey())
        for _ in 0..<20 { try await noisy.send([], finishLast: false) }
        #expect(await waitFor { await rig.axon.statistics().inFlight == 20 })
        let call = Task { await rig.dendrite.call(rig.endpoint, netuid: 1, synapse: "slow", body: [200], timeout: 10) }
        try await Task.sleep(nanoseconds: 50_000_000)
        // Two malformed headers: over the junk budget, the noisy channel is closed and banned.
        try await noisy.send([[1]])
        try await noisy.send([[2]])
        #expect(await waitFor { noisy.closed.withLock { $0 } })
        let r = await call.value
        #expect(r.isSuccess)
        #expect(await waitFor { await rig.axon.statistics().inFlight == 0 })
        #expect(await rig.axon.statistics().junkDisconnects == 1)
    }
}

@Suite("Axon caller table (sans-IO)")
struct CallerTableTests {
    let miner = Ed25519.PrivateKey()
    let now: UInt64 = 1_800_000_000_000

    func policy() -> AxonPolicy {
        AxonPolicy(served: [self.miner.publicKey], netuid: 1, synapses: ["echo"], blacklist: { _, _ in nil })  // permissive
    }

    func header(_ key: Ed25519.PrivateKey, nonce: UInt64, deadline: UInt64? = nil) -> QueryRequestHeader {
        QueryRequestHeader(netuid: 1, synapse: "echo", caller: key, target: self.miner.publicKey, nonce: nonce,
                           deadline: deadline ?? self.now + 5000, body: [])
    }

    @Test("callers are bounded: past maxCallers the least recently seen are forgotten, never the newest")
    func boundedCallers() {
        var p = self.policy()
        p.limits.maxCallers = 8
        var last = Ed25519.PrivateKey()
        for i in 0..<100 {
            last = Ed25519.PrivateKey()
            #expect(p.screen(self.header(last, nonce: 1), now: self.now + UInt64(i), channel: .direct(last.publicKey)) == .admit(priority: 0))
            #expect(p.nonces.byCaller.count <= 8)
        }
        #expect(p.nonces.byCaller[last.publicKey] != nil)
        // The newest caller's nonce is remembered.
        if case .refuse(let s, _, _) = p.screen(self.header(last, nonce: 1), now: self.now + 100, channel: .direct(last.publicKey)) {
            #expect(s == .unauthorized)
        } else { Issue.record("replay admitted") }
    }

    @Test("nonces in all are bounded too, and one caller's table is updated in place (linear time)")
    func boundedNonces() {
        var c = NonceCache()
        c.maxNonces = 1000
        let keys = (0..<4).map { _ in Ed25519.PrivateKey().publicKey }
        for n in 0..<2000 { _ = c.insert(caller: keys[n % 4], nonce: UInt64(n), deadline: .max, now: UInt64(n), limit: 10_000) }
        #expect(c.total <= 1000)
        #expect(c.total == c.byCaller.values.reduce(0) { $0 + $1.nonces.count })
        // 40 000 inserts for one caller: quadratic copying took many seconds here.
        var one = NonceCache()
        let k = keys[0]
        let started = Date()
        for n in 0..<40_000 { _ = one.insert(caller: k, nonce: UInt64(n), deadline: .max, now: 0, limit: 65_536) }
        #expect(one.total == 40_000)
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test("unlimited or NaN rates from an operator do not trap")
    func oddRates() {
        for rate in [Double.infinity, .nan, 0] {
            var p = self.policy()
            p.limits.ratePerSecond = rate
            p.limits.burst = rate.isNaN ? .nan : 1
            let k = Ed25519.PrivateKey()
            for n in 0..<3 { _ = p.screen(self.header(k, nonce: UInt64(n)), now: self.now, channel: .direct(k.publicKey)) }
        }
    }
}
