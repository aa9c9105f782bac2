import MeshChain
import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

@Suite("Subnet gossip messages")
struct SubnetGossipTests {
    @Test("only a recent message signed by a hotkey registered on the topic's subnet passes; each refusal is typed")
    func checks() throws {
        let a = try DevChain()
        let g = a.context.genesis
        let now: UInt64 = 5_000_000
        let owner = SubnetGossipMessage(netuid: 1, key: a.ownerHotkey, timestamp: now, payload: Array("scores".utf8), genesis: g)
        #expect(try SubnetGossipMessage.decode(owner.encoded) == owner)
        #expect(owner.check(state: a.state, genesis: g, topic: 1, nowMs: now + 1000) == nil)
        #expect(owner.check(state: a.state, genesis: g, topic: 2, nowMs: now) == .wrongTopic)
        let elsewhere = SubnetGossipMessage(netuid: 9, key: a.ownerHotkey, timestamp: now, payload: [], genesis: g)
        #expect(elsewhere.check(state: a.state, genesis: g, topic: 9, nowMs: now) == .unknownSubnet)
        let stranger = SubnetGossipMessage(netuid: 1, key: Ed25519.PrivateKey(), timestamp: now, payload: [1], genesis: g)
        #expect(stranger.check(state: a.state, genesis: g, topic: 1, nowMs: now) == .notRegistered)
        #expect(owner.check(state: a.state, genesis: g, topic: 1, nowMs: now + 61_000) == .stale(ageMs: 61_000))
        var forged = owner
        forged.payload = Array("other scores".utf8)
        #expect(forged.check(state: a.state, genesis: g, topic: 1, nowMs: now) == .badSignature)
        // Signed for another chain: the genesis is part of what is signed.
        let otherChain = SubnetGossipMessage(netuid: 1, key: a.ownerHotkey, timestamp: now, payload: [1], genesis: Hash32.of([1]))
        #expect(otherChain.check(state: a.state, genesis: g, topic: 1, nowMs: now) == .badSignature)
        // Malformed bytes: typed errors; an oversized payload is refused before allocation.
        var rng = SeededRNG(seed: 3)
        let bytes = owner.encoded
        for i in 0..<1000 {
            var m = bytes
            if i % 2 == 0 { m = Array(m.prefix(Int(rng.next() % UInt64(m.count)))) } else { m[Int(rng.next() % UInt64(m.count))] ^= 0x5A }
            _ = try? SubnetGossipMessage.decode(m)
        }
        var w = ByteWriter()
        w.u16(1); owner.hotkey.encode(to: &w); w.u64(now); w.varint(UInt64(SubnetGossipMessage.maxPayload + 1))
        #expect(throws: CodecError.self) { try SubnetGossipMessage.decode(w.bytes) }
    }
}
