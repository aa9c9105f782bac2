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

/// The relay screens what it forwards and charges its callers for junk; every pipe ends.
@Suite("Query relay under hostile callers", .serialized)
struct QueryRelayTests {
    func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    func header(_ rig: Rig, nonce: UInt64, synapse: String = "echo", target: Ed25519.PublicKey? = nil, deadlineIn ms: UInt64 = 5000,
                body: [UInt8] = []) -> QueryRequestHeader {
        QueryRequestHeader(netuid: 1, synapse: synapse, caller: rig.validatorKey, target: target ?? rig.minerKey.publicKey,
                           nonce: nonce, deadline: self.now() + ms, body: body)
    }

    @Test("forged signatures are refused by the relay itself: the miner never verifies them")
    func forgedAtRelay() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        let relay = try await RelayRig(rig)
        defer { relay.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: relay.address)
        for n in 0..<20 {
            var forged = self.header(rig, nonce: UInt64(n))
            forged.signature = Ed25519.PrivateKey().sign(forged.signingBytes)  // a registered caller, someone else's signature
            try await raw.send([forged.encoded])
        }
        #expect(await waitFor { raw.trailers.count == 20 })
        #expect(raw.trailers.allSatisfy { $0.status == .unauthorized && $0.signature == nil })
        let stats = await rig.axon.statistics()
        #expect(stats.byStatus.isEmpty, "the miner saw \(stats.byStatus)")
        // An honest request through the same relay still works.
        let r = await rig.dendrite.call(relay.endpoint, netuid: 1, synapse: "echo", body: [1, 2], timeout: 30)
        #expect(r.isSuccess)
        // The relay's metrics: 20 refused, one forwarded and answered (in the latency histogram).
        let m = await relay.relay.metrics()
        #expect(m.contains("tensormesh_query_relay_refused_total 20\n") && m.contains("tensormesh_query_relay_forwarded_total 1\n"), "\(m)")
        #expect(m.contains("# TYPE tensormesh_query_relay_answer_seconds histogram\n") && m.contains("tensormesh_query_relay_answer_seconds_count 1\n"), "\(m)")
        #expect(m.contains("tensormesh_query_relay_timed_out_total 0\n"), "\(m)")
    }

    @Test("junk through the relay is charged to the caller: past its budget the connection is closed and its node id banned")
    func junkBan() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        var limits = RelayLimits()
        limits.junkBurst = 5
        limits.junkPerSecond = 0.001
        let relay = try await RelayRig(rig, limits: limits)
        defer { relay.shutdown() }
        let key = Ed25519.PrivateKey()
        let raw = try await RawClient.connect(rig.clientLoop, to: relay.address, key: key)
        for _ in 0..<10 { try? await raw.send([[0xde, 0xad]]) }
        #expect(await waitFor { raw.closed.withLock { $0 } })
        let disconnects = try await relay.loop.submit { relay.relay.junkDisconnects }
        #expect(disconnects == 1)
        // The same identity is refused on a new channel.
        let again = try await RawClient.connect(rig.clientLoop, to: relay.address, key: key)
        #expect(await waitFor { again.closed.withLock { $0 } })
        // Others are still served; the miner saw none of the junk.
        let r = await rig.dendrite.call(relay.endpoint, netuid: 1, synapse: "echo", body: [1], timeout: 30)
        #expect(r.isSuccess)
        #expect((await rig.axon.statistics()).byStatus[400] == nil)
    }

    @Test("caps: pipes per caller connection, and a stream without a header is refused with 408 after the header timeout")
    func callerCaps() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        var limits = RelayLimits()
        limits.maxPipesPerCaller = 2
        limits.headerTimeoutMs = 300
        let relay = try await RelayRig(rig, limits: limits)
        defer { relay.shutdown() }
        let raw = try await RawClient.connect(rig.clientLoop, to: relay.address, key: rig.validatorKey)
        // Three slow requests at once: two pipes, the third stream is reset.
        for n in 0..<3 { try await raw.send([self.header(rig, nonce: UInt64(n), synapse: "slow", body: [200]).encoded, [200]]) }
        #expect(await waitFor { raw.trailers.count == 2 && raw.resets.withLock { $0 } == 1 })
        #expect(raw.trailers.allSatisfy { $0.status == .ok })
        // A silent stream: 408 from the relay once the header timeout passes.
        try await raw.send([], finishLast: false)
        #expect(await waitFor(5) { raw.trailers.count == 3 })
        #expect(raw.trailers.last?.status == .timeout)
        #expect(await relay.relay.openPipes() == 0)
    }

    @Test("a miner that never answers: the pipe ends at the deadline with 408, and a miner's pipes are capped")
    func silentMiner() async throws {
        let rig = try await Rig()
        defer { rig.shutdown() }
        var limits = RelayLimits()
        limits.clockSkewMs = 100
        limits.maxPipesPerMiner = 1
        let relay = try await RelayRig(rig, limits: limits)
        defer { relay.shutdown() }
        let silentKey = Ed25519.PrivateKey()
        let silent = try await RawClient.connect(rig.clientLoop, to: relay.address, key: silentKey, asMinerOf: 1)
        #expect(await waitFor { await relay.relay.connectedMiners().contains(silentKey.publicKey) })
        let raw = try await RawClient.connect(rig.clientLoop, to: relay.address, key: rig.validatorKey)
        try await raw.send([self.header(rig, nonce: 1, target: silentKey.publicKey, deadlineIn: 400).encoded])
        #expect(await waitFor { silent.opened.withLock { $0 } == 1 })
        // The miner's one pipe is taken: the next request is refused at once.
        try await raw.send([self.header(rig, nonce: 2, target: silentKey.publicKey, deadlineIn: 400).encoded])
        #expect(await waitFor { raw.trailers.count == 1 })
        #expect(raw.trailers.first?.status == .unavailable)
        // The first ends at its deadline (plus skew), and the miner's stream is reset.
        let started = Date()
        #expect(await waitFor(5) { raw.trailers.count == 2 })
        #expect(raw.trailers.last?.status == .timeout)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(await waitFor { silent.resets.withLock { $0 } == 1 })
        #expect(await relay.relay.openPipes() == 0)
        // Timed out, not answered: counted apart, out of the answer-time histogram.
        let m = await relay.relay.metrics()
        #expect(m.contains("tensormesh_query_relay_timed_out_total 1\n") && m.contains("tensormesh_query_relay_answer_seconds_count 0\n"), "\(m)")
        let miners = await relay.relay.connectedMiners().count
        #expect(miners >= 2 && m.contains("tensormesh_query_relay_miners \(miners)\n"), "\(m)")
    }
}
