@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

/// The root network (netuid 0): TAO stake counts toward a validator's stake weight on every
/// subnet through tao_weight, and root stakers are paid their part of a subnet's validator
/// emission (sold for TAO into the hotkey's root stake) when the root sell flag is on.
@Suite("Root network")
struct RootNetworkTests {
    /// Two started subnets; `v` validates subnet 1 with 50 TAO of alpha stake and `rooter`
    /// stakes 400 TAO on v's hotkey on the root subnet; `m` mines. `fastPrices` moves each
    /// subnet's price average to min(price, 1) at once, so the moving prices add up to 2 and
    /// root stakers are paid (subtensor's root sell flag); otherwise the average stays near 0
    /// and their alpha is recycled.
    func network(fastPrices: Bool, taoWeight: UInt64 = UInt64.max / 5) throws -> (DevChain, v: Ed25519.PrivateKey, rooter: Ed25519.PrivateKey, m: Ed25519.PrivateKey) {
        let a = try DevChain(tempo: 5, seed: 3) { spec in
            spec.params.taoWeight = taoWeight
            if fastPrices {
                spec.params.movingAlphaPpb = 1_000_000_000
                spec.params.emaPriceHalvingBlocks = 1
            }
            var sp = spec.subnets[0].params
            _ = sp.set(.tempo, 7)
            spec.subnets.append(ChainSpec.SubnetSpec(netuid: 2, name: "two", owner: spec.subnets[0].owner, ownerHotkey: spec.subnets[0].ownerHotkey,
                                                     params: sp, poolTao: 1000 * Token.tao))
        }
        let v = a.accounts[0], m = a.accounts[1], rooter = a.accounts[6]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao)),
                       a.tx(m, .register(netuid: 1, hotkey: m.publicKey, maxBurn: 100 * Token.tao))])
        try a.produce([a.tx(v, .addStake(hotkey: v.publicKey, netuid: 1, amount: 50 * Token.tao)),
                       a.tx(rooter, .addStake(hotkey: v.publicKey, netuid: 0, amount: 400 * Token.tao))])
        for _ in 0..<6 { try a.produce() }
        let mu = UInt16(a.state.subnets[1]!.uid(of: m.publicKey)!)
        try a.produce([a.tx(v, .setWeights(netuid: 1, uids: [mu], values: [1], versionKey: 0))])
        return (a, v, rooter, m)
    }

    @Test("stake weight on a subnet = alpha stake + tao_weight × root stake; the metagraph shows both columns and the sum")
    func stakeWeight() throws {
        let (a, v, rooter, _) = try self.network(fastPrices: false)
        let alpha = a.state.totalStake(hotkey: v.publicKey, netuid: 1)
        let root = a.state.totalStake(hotkey: v.publicKey, netuid: 0)
        #expect(root == 400 * Token.tao && a.state.stake(coldkey: rooter.publicKey, hotkey: v.publicKey, netuid: 0) == 400 * Token.tao,
                "root stake is TAO one for one")
        let expected = Double(alpha) + Double(root) * Double(UInt64.max / 5) / Double(UInt64.max)
        let w = a.state.stakeWeight(hotkey: v.publicKey, netuid: 1)
        // tao_weight is a U96F32 fraction (as subtensor's `get_tao_weight`): exact to 2^-32.
        #expect(abs(Double(w) - expected) <= Double(root >> 32) + 2, "weight \(w), expected ≈ \(expected)")
        let uid = a.state.subnets[1]!.uid(of: v.publicKey)!
        let row = a.state.stakeWeights(netuid: 1)[uid]
        #expect(row.alpha == alpha && row.tao == root && row.weight == w)
        // With tao_weight 0 the root stake does not count.
        let (b, v0, _, _) = try self.network(fastPrices: false, taoWeight: 0)
        #expect(b.state.stakeWeight(hotkey: v0.publicKey, netuid: 1) == b.state.totalStake(hotkey: v0.publicKey, netuid: 1))
    }

    @Test("root stakers earn TAO from a subnet's validator emission when the root sell flag is on; otherwise it is recycled")
    func rootDividends() throws {
        for fast in [true, false] {
            let (a, v, rooter, _) = try self.network(fastPrices: fast)
            let before = a.state.stake(coldkey: rooter.publicKey, hotkey: v.publicKey, netuid: 0)
            let rootPool = a.state.subnets[0]!.pool.taoIn
            let epochs = a.state.subnets[1]!.epochCount
            var pendingSeen: UInt64 = 0
            while a.state.subnets[1]!.epochCount < epochs + 3 {
                try a.produce()
                pendingSeen = max(pendingSeen, a.state.subnets[1]!.pool.pendingRoot)
                #expect(a.conserved(), "fast \(fast)")
                let rootStakes = a.state.hotkeyPools.filter { $0.key.netuid == 0 }.reduce(UInt64(0)) { $0 + $1.value.value }
                #expect(rootStakes == a.state.subnets[0]!.pool.taoIn, "root stake is the root pool's TAO")
            }
            let after = a.state.stake(coldkey: rooter.publicKey, hotkey: v.publicKey, netuid: 0)
            if fast {
                #expect(a.state.rootSellFlag(a.state.subnetsToEmitTo()), "moving prices add up to more than 1")
                #expect(pendingSeen > 0, "root alpha pends between epochs")
                #expect(after > before, "the root staker on another coldkey earned TAO")
                #expect(a.state.subnets[0]!.pool.taoIn > rootPool, "the root pool grew by the TAO the alpha sold for")
            } else {
                #expect(!a.state.rootSellFlag(a.state.subnetsToEmitTo()))
                #expect(pendingSeen == 0 && after == before, "no root sell: root stakers get nothing, the alpha is recycled")
            }
        }
    }
}
