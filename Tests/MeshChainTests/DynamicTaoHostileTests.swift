@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

/// Stake-moving calls with hostile amounts and limits (zero, one rao, dust under the minimum,
/// 2^64 − 1, limits of 0 and 2^64 − 1): each is refused with a typed error or runs, never traps,
/// never issues TAO, and the books stay exact (issuance − burned = balances + pool reserves;
/// each subnet's outstanding alpha = stakes + pending + protocol + burned).
@Suite("Dynamic TAO under hostile amounts")
struct DynamicTaoHostileTests {
    @Test("zero, dust, 2^64 − 1 and extreme limits on every stake-moving call: refused or run, never a trap, never value from nothing")
    func hostileAmounts() throws {
        let a = try DevChain(tempo: 4, seed: 7) { spec in
            var sp = spec.subnets[0].params
            _ = sp.set(.tempo, 5)
            spec.subnets.append(ChainSpec.SubnetSpec(netuid: 2, name: "two", owner: spec.subnets[0].owner, ownerHotkey: spec.subnets[0].ownerHotkey,
                                                     params: sp, poolTao: 10 * Token.tao))
        }
        let v = a.accounts[0], w = a.accounts[1]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao)),
                       a.tx(w, .register(netuid: 2, hotkey: w.publicKey, maxBurn: 100 * Token.tao))])
        try a.produce([a.tx(v, .addStake(hotkey: v.publicKey, netuid: 1, amount: 5 * Token.tao)),
                       a.tx(w, .addStake(hotkey: w.publicKey, netuid: 2, amount: 5 * Token.tao))])
        #expect(a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) > 0)
        let amounts: [UInt64] = [0, 1, a.state.params.minStake - 1, a.state.params.minStake, 999 * Token.tao, 1 << 63, .max]
        let limits: [UInt64] = [0, 1, PriceLimit.minRao, Token.tao, PriceLimit.maxRao, .max]
        var calls: [Call] = []
        for x in amounts {
            for hot in [v.publicKey, w.publicKey, a.accounts[5].publicKey] {
                for netuid: UInt16 in [0, 1, 2, 9] {
                    calls.append(.addStake(hotkey: hot, netuid: netuid, amount: x))
                    calls.append(.removeStake(hotkey: hot, netuid: netuid, amount: x))
                    for l in limits {
                        calls.append(.addStakeLimit(hotkey: hot, netuid: netuid, amount: x, limitPrice: l, allowPartial: l % 2 == 0))
                        calls.append(.removeStakeLimit(hotkey: hot, netuid: netuid, amount: x, limitPrice: l, allowPartial: l % 2 == 1))
                    }
                }
            }
            calls.append(.moveStake(originHotkey: v.publicKey, destinationHotkey: w.publicKey, originNetuid: 1, destinationNetuid: 1, amount: x))
            calls.append(.moveStake(originHotkey: v.publicKey, destinationHotkey: w.publicKey, originNetuid: 1, destinationNetuid: 2, amount: x))
            calls.append(.moveStake(originHotkey: v.publicKey, destinationHotkey: v.publicKey, originNetuid: 1, destinationNetuid: 0, amount: x))
            for l in [nil] + limits.map(Optional.some) {
                calls.append(.swapStake(hotkey: v.publicKey, originNetuid: 1, destinationNetuid: 2, amount: x, limitPrice: l, allowPartial: true))
                calls.append(.swapStake(hotkey: v.publicKey, originNetuid: 1, destinationNetuid: 2, amount: x, limitPrice: l, allowPartial: false))
                calls.append(.swapStake(hotkey: v.publicKey, originNetuid: 0, destinationNetuid: 1, amount: x, limitPrice: l, allowPartial: false))
            }
        }
        for p: UInt64 in [0, 1, .max] {
            calls.append(.setChildren(hotkey: v.publicKey, netuid: 1, children: [ChildLink(proportion: p, hotkey: w.publicKey)]))
            calls.append(.setChildren(hotkey: v.publicKey, netuid: 1, children: [ChildLink(proportion: p, hotkey: w.publicKey), ChildLink(proportion: p, hotkey: a.accounts[2].publicKey)]))
        }
        calls.append(.setChildkeyTake(hotkey: v.publicKey, netuid: 1, take: .max))
        calls.append(.updateSymbol(netuid: 1, symbol: String(repeating: "β", count: 8)))
        calls.append(.startCall(netuid: .max))

        let author = a.validators[0].publicKey
        var applied = 0, refused = 0
        for signer in [v, w] {
            var st = a.state
            let issuance = st.totalIssuance
            for call in calls {
                let before = st
                let tx = Transaction(signer: signer, nonce: st.nonce(signer.publicKey), validUntil: st.number + 10, fee: 1000, call: call, genesis: a.context.genesis)
                let r = try st.apply(tx, at: st.number + 1, producer: author, context: a.context)
                if r.error == nil { applied += 1 } else { refused += 1 }
                #expect(st.totalIssuance == issuance, "\(call.name) issued TAO")
                #expect(st.totalIssuance - st.totalBurned == st.accountedSupply, "\(call.name): TAO books off")
                for id in st.subnets.keys { #expect(st.accountedAlpha(id) == st.subnets[id]!.pool.alphaOut, "\(call.name): alpha books off on \(id)") }
                // The signer never ends up with more value (balance + stake at the current prices) than before, beyond one rao per pool of rounding.
                #expect(Self.value(of: signer.publicKey, in: st) <= Self.value(of: signer.publicKey, in: before) + 2,
                        "\(call.name) created value for the signer")
            }
        }
        #expect(applied > 0 && refused > 0)
        // Blocks of emission and epochs after all that keep the books too.
        for _ in 0..<12 { try a.produce() }
        #expect(a.conserved())
    }

    /// Balance plus the coldkey's alpha on each subnet valued at what selling all of it at once
    /// would pay now (fee-free). Under a constant product this liquidation value is unchanged by
    /// the holder's own buys and sells, so a call can only lower it (fees, floors).
    static func value(of coldkey: AccountID, in st: ChainState) -> UInt64 {
        var total = st.balance(coldkey)
        var alpha: [UInt16: UInt64] = [:]
        for e in st.stakeEntries(involving: coldkey) where e.key.coldkey == coldkey { alpha[e.key.netuid, default: 0] += e.amount }
        for (netuid, x) in alpha {
            guard let pool = st.subnets[netuid]?.pool else { continue }
            total = total.addingSaturated(pool.isStable ? x : pool.taoOut(forAlpha: x))
        }
        return total
    }
}
