@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

/// A full network makes room for a new subnet by dissolving its weakest non-immune one: the
/// dissolved pool's TAO goes to its alpha stakers, what the protocol held is burned, and no TAO
/// is created.
@Suite("Subnet pruning")
struct SubnetPruningTests {
    @Test("at the subnet limit a creation dissolves the lowest-priced non-immune subnet; its stakers get its pool's TAO; the books stay exact")
    func pruneAndDissolve() throws {
        let a = try DevChain(tempo: 5, seed: 5) { spec in
            spec.params.subnetLimit = 2
            spec.params.networkImmunityPeriod = 0
            spec.params.movingAlphaPpb = 1_000_000_000
            spec.params.emaPriceHalvingBlocks = 1
            var sp = spec.subnets[0].params
            _ = sp.set(.tempo, 6)
            spec.subnets.append(ChainSpec.SubnetSpec(netuid: 2, name: "two", owner: spec.subnets[0].owner, ownerHotkey: spec.subnets[0].ownerHotkey,
                                                     params: sp, poolTao: 1000 * Token.tao))
        }
        let staker = a.accounts[0], other = a.accounts[1], creator = a.accounts[2]
        try a.produce([a.tx(staker, .register(netuid: 2, hotkey: staker.publicKey, maxBurn: 100 * Token.tao)),
                       a.tx(other, .register(netuid: 1, hotkey: other.publicKey, maxBurn: 100 * Token.tao))])
        try a.produce([a.tx(other, .addStake(hotkey: other.publicKey, netuid: 1, amount: 200 * Token.tao)),
                       a.tx(staker, .addStake(hotkey: staker.publicKey, netuid: 2, amount: 50 * Token.tao))])
        for _ in 0..<3 { try a.produce() }
        // Both prices are above 1, so both moving prices (capped at 1, as subtensor's) tie and the
        // earlier-registered subnet would go (the tie rule is replayed in SubtensorReplayTests);
        // here subnet 2's average is set below subnet 1's so that it is the weakest.
        var st = a.state
        st.subnets[2]!.pool.movingPrice = U64F64.ratio(1, 2)
        #expect(st.subnetToPrune(at: st.number + 1) == 2)
        let kept = st.stake(coldkey: staker.publicKey, hotkey: staker.publicKey, netuid: 2)
        let pool = st.subnets[2]!.pool
        let balance = st.balance(staker.publicKey)
        let subnet1 = st.subnets[1]!.pool
        let allStakes = st.hotkeyPools.filter { $0.key.netuid == 2 }.reduce(UInt64(0)) { $0 + $1.value.value }
        let issuance = st.totalIssuance, burned = st.totalBurned
        let r0 = try st.apply(a.tx(creator, .createSubnet(ownerHotkey: creator.publicKey, maxLockCost: 1000 * Token.tao)),
                              at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(r0.error == nil, "\(r0.error?.description ?? "")")
        #expect(st.subnets[2]?.owner == creator.publicKey, "the new subnet took netuid 2")
        #expect(st.stake(coldkey: staker.publicKey, hotkey: staker.publicKey, netuid: 2) == 0, "the old stakes are gone")
        // The staker's share of the old pool's TAO, by its alpha against the protocol's (reserve and bought).
        let got = st.balance(staker.publicKey) - balance
        let share = Double(kept) / Double(pool.alphaIn + pool.protocolAlpha + allStakes)
        #expect(got > 0 && abs(Double(got) - Double(pool.taoIn) * share) <= Double(pool.taoIn) * 0.01 + 2,
                "paid \(got) for \(kept) alpha of a \(pool.taoIn) rao pool (share \(share))")
        #expect(st.subnets[1]!.pool == subnet1, "the other subnet is untouched")
        #expect(st.subnets[2]!.pool.firstEmissionBlock == 0, "the new subnet waits for its start call")
        #expect(st.totalIssuance == issuance && st.totalBurned >= burned)
        #expect(st.totalIssuance - st.totalBurned == st.accountedSupply)
        for id in st.subnets.keys { #expect(st.accountedAlpha(id) == st.subnets[id]!.pool.alphaOut) }
        // With every subnet immune, a creation at the limit is refused.
        st.params.networkImmunityPeriod = 1 << 30
        let r = try st.apply(a.tx(a.accounts[3], .createSubnet(ownerHotkey: a.accounts[3].publicKey, maxLockCost: 1000 * Token.tao)),
                             at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(r.error?.code == "SubnetLimitReached")
    }
}
