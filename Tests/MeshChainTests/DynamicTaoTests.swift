@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

@Suite("Dynamic TAO")
struct DynamicTaoTests {
    /// Two started subnets (pools of 1000 and 500 TAO); accounts 0-2 registered on subnet 1,
    /// 3-4 on subnet 2.
    func network(tempo: UInt64 = 7, seed: UInt64 = 1) throws -> DevChain {
        let a = try DevChain(tempo: tempo, seed: seed) { spec in
            var sp = spec.subnets[0].params
            _ = sp.set(.tempo, tempo + 2)
            spec.subnets.append(ChainSpec.SubnetSpec(netuid: 2, name: "two", owner: spec.subnets[0].owner, ownerHotkey: spec.subnets[0].ownerHotkey,
                                                     params: sp, poolTao: 500 * Token.tao))
        }
        for i in 0..<5 {
            let k = a.accounts[i]
            try a.produce([a.tx(k, .register(netuid: i < 3 ? 1 : 2, hotkey: k.publicKey, maxBurn: 100 * Token.tao))])
        }
        return a
    }

    func refusal(_ a: DevChain, _ signer: Ed25519.PrivateKey, _ call: Call) throws -> (DispatchError?, ChainState) {
        var st = a.state
        let r = try st.apply(a.tx(signer, call), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        return (r.error, st)
    }

    @Test("staking buys alpha and raises the price; unstaking sells it and lowers the price; fees go to the block's author")
    func stakeIsASwap() throws {
        let a = try self.network()
        let v = a.accounts[0]
        let p0 = a.state.subnets[1]!.pool
        let balance0 = a.state.balance(v.publicKey)
        let author = a.validators[0].publicKey
        var st = a.state
        let authorBefore = st.balance(author)
        let r = try st.apply(a.tx(v, .addStake(hotkey: v.publicKey, netuid: 1, amount: 100 * Token.tao)), at: st.number + 1, producer: author, context: a.context)
        #expect(r.error == nil)
        let p1 = st.subnets[1]!.pool
        let alpha = st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        #expect(p1.price > p0.price)
        #expect(p1.taoIn > p0.taoIn && p1.alphaIn < p0.alphaIn)
        #expect(alpha == p0.alphaIn - p1.alphaIn, "the stake is the alpha the pool paid out")
        #expect(UInt128(alpha) < UInt128(100 * Token.tao) * UInt128(p0.alphaIn) / UInt128(p0.taoIn), "slippage: less alpha than at the spot price")
        let fee = p0.feeFor(100 * Token.tao, dropFees: false)
        #expect(fee == 50_354_772, "33/65535 of 100 TAO, floored")
        #expect(st.balance(author) == authorBefore + 1000 + fee, "the transaction fee and the swap fee")
        #expect(st.balance(v.publicKey) == balance0 - 1000 - 100 * Token.tao)
        // Unstake it all: the price falls back, and the round trip loses (fees, never a profit).
        let r2 = try st.apply(Transaction(signer: v, nonce: st.nonce(v.publicKey), validUntil: st.number + 10, fee: 1000,
                                          call: .removeStake(hotkey: v.publicKey, netuid: 1, amount: alpha), genesis: a.context.genesis),
                              at: st.number + 1, producer: author, context: a.context)
        #expect(r2.error == nil)
        #expect(st.subnets[1]!.pool.price < p1.price)
        #expect(st.balance(v.publicKey) < balance0 - 2000, "no profitable round trip")
        #expect(st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) == 0)
        #expect(st.totalIssuance - st.totalBurned == st.accountedSupply && st.accountedAlpha(1) == st.subnets[1]!.pool.alphaOut)
    }

    @Test("a limit price refuses a stake past it, says the price it would reach, and changes nothing but the fee; allow-partial fills up to it")
    func limitAndPartial() throws {
        let a = try self.network()
        let v = a.accounts[0]
        let pool = a.state.subnets[1]!.pool
        let limit = (pool.price * U64F64.ratio(1001, 1000) * U64F64(Token.tao)).floorU64  // +0.1 %
        let call = Call.addStakeLimit(hotkey: v.publicKey, netuid: 1, amount: 100 * Token.tao, limitPrice: limit, allowPartial: false)
        let (err, st) = try self.refusal(a, v, call)
        #expect(err?.code == "SlippageTooHigh")
        let reach = a.state.priceAfterAdding(100 * Token.tao, netuid: 1)
        #expect(err?.message.contains(reach.decimalString()) == true, "\(err?.message ?? "")")
        #expect(st.subnets[1]!.pool == pool, "the pool did not move")
        #expect(st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) == 0)
        #expect(st.balance(v.publicKey) == a.state.balance(v.publicKey) - 1000, "only the transaction fee")
        // Partial: fills what fits; the price ends at or below the limit.
        let partial = Call.addStakeLimit(hotkey: v.publicKey, netuid: 1, amount: 100 * Token.tao, limitPrice: limit, allowPartial: true)
        let (err2, st2) = try self.refusal(a, v, partial)
        #expect(err2 == nil)
        let spent = a.state.balance(v.publicKey) - 1000 - st2.balance(v.publicKey)
        #expect(spent > 0 && spent < 100 * Token.tao)
        #expect(st2.subnets[1]!.pool.price <= PriceLimit.price(rao: limit))
        #expect(spent == (try a.state.maxAddAmount(netuid: 1, limit: PriceLimit.price(rao: limit))))
        // Unstaking with a limit above the price is refused as subtensor does (the price is already past it).
        let (err3, _) = try self.refusal(a, a.owner, .removeStakeLimit(hotkey: a.ownerHotkey.publicKey, netuid: 1, amount: 1, limitPrice: .max, allowPartial: true))
        #expect(err3?.code == "PriceLimitExceeded")
    }

    @Test("moves: within a subnet the stake moves as it is; across subnets through both pools, never for a profit")
    func moves() throws {
        let a = try self.network()
        let v = a.accounts[0], other = a.accounts[1]
        try a.produce([a.tx(v, .addStake(hotkey: v.publicKey, netuid: 1, amount: 50 * Token.tao))])
        let alpha = a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        let pool = a.state.subnets[1]!.pool
        var st = a.state
        func apply(_ call: Call) throws {
            let r = try st.apply(Transaction(signer: v, nonce: st.nonce(v.publicKey), validUntil: st.number + 10, fee: 1000, call: call, genesis: a.context.genesis),
                                 at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
            #expect(r.error == nil, "\(r.error?.description ?? "")")
        }
        try apply(.moveStake(originHotkey: v.publicKey, destinationHotkey: other.publicKey, originNetuid: 1, destinationNetuid: 1, amount: alpha / 2))
        #expect(st.stake(coldkey: v.publicKey, hotkey: other.publicKey, netuid: 1) == alpha / 2)
        #expect(st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) == alpha - alpha / 2)
        #expect(st.subnets[1]!.pool == pool, "no swap within a subnet")
        // Across subnets: sell on 1, buy on 2; and back again: less alpha than before.
        let rest = st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        try apply(.swapStake(hotkey: v.publicKey, originNetuid: 1, destinationNetuid: 2, amount: rest, limitPrice: nil, allowPartial: false))
        let on2 = st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 2)
        #expect(on2 > 0 && st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) == 0)
        #expect(st.subnets[1]!.pool.price < pool.price && st.subnets[2]!.pool.price > a.state.subnets[2]!.pool.price)
        try apply(.swapStake(hotkey: v.publicKey, originNetuid: 2, destinationNetuid: 1, amount: on2, limitPrice: nil, allowPartial: false))
        #expect(st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1) < rest, "a round trip through two pools loses")
        // A ratio limit refuses a swap that moves the prices too far.
        let ratio = st.subnets[1]!.pool.price.safeDiv(st.subnets[2]!.pool.price)
        let tight = (ratio * U64F64.ratio(999, 1000) * U64F64(Token.tao)).floorU64
        let back = st.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        let r = try st.apply(Transaction(signer: v, nonce: st.nonce(v.publicKey), validUntil: st.number + 10, fee: 1000,
                                         call: .swapStake(hotkey: v.publicKey, originNetuid: 1, destinationNetuid: 2, amount: back, limitPrice: tight, allowPartial: false),
                                         genesis: a.context.genesis), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(r.error?.code == "SlippageTooHigh")
        #expect(st.totalIssuance - st.totalBurned == st.accountedSupply && st.accountedAlpha(1) == st.subnets[1]!.pool.alphaOut
                && st.accountedAlpha(2) == st.subnets[2]!.pool.alphaOut)
    }

    @Test("property: random stakes, unstakes, moves, swaps and epochs keep TAO and alpha conserved; calls never issue TAO; issuance grows by at most the block emission")
    func conservationProperty() throws {
        var succeeded: [String: Int] = [:]
        for seed in UInt64(1)...3 {
            var rng = SeededRNG(seed: seed)
            let a = try self.network(tempo: 5, seed: seed)
            let registered: [(Int, UInt16)] = [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2)]
            for _ in 0..<40 {
                var txs: [Transaction] = []
                var nonces: [Int: UInt64] = [:]
                for _ in 0..<Int.random(in: 0...3, using: &rng) {
                    let who = Int.random(in: 0..<8, using: &rng)
                    let signer = a.accounts[who]
                    let (h, netuid) = registered.randomElement(using: &rng)!
                    let hot = a.accounts[h].publicKey
                    let have = a.state.stake(coldkey: signer.publicKey, hotkey: hot, netuid: netuid)
                    let call: Call
                    switch Int.random(in: 0..<6, using: &rng) {
                    case 0, 1:
                        let amount = UInt64.random(in: Token.tao / 100...(20 * Token.tao), using: &rng)
                        let limit = (a.state.subnets[netuid]!.pool.price * U64F64.ratio(UInt128.random(in: 1000...1100, using: &rng), 1000) * U64F64(Token.tao)).floorU64
                        call = Bool.random(using: &rng) ? .addStake(hotkey: hot, netuid: netuid, amount: amount)
                            : .addStakeLimit(hotkey: hot, netuid: netuid, amount: amount, limitPrice: limit, allowPartial: Bool.random(using: &rng))
                    case 2:
                        call = .removeStake(hotkey: hot, netuid: netuid, amount: max(1, have / UInt64.random(in: 1...3, using: &rng)))
                    case 3:
                        let (h2, n2) = registered.filter { $0.1 == netuid }.randomElement(using: &rng)!
                        call = .moveStake(originHotkey: hot, destinationHotkey: a.accounts[h2].publicKey, originNetuid: netuid, destinationNetuid: n2, amount: max(1, have / 2))
                    case 4:
                        call = .swapStake(hotkey: hot, originNetuid: netuid, destinationNetuid: netuid == 1 ? 2 : 1, amount: max(1, have), limitPrice: nil, allowPartial: false)
                    default:
                        call = .transfer(to: a.accounts[(who + 1) % 8].publicKey, amount: Token.tao)
                    }
                    let n = nonces[who] ?? a.state.nonce(signer.publicKey)
                    nonces[who] = n + 1
                    txs.append(a.tx(signer, call, nonce: n))
                }
                // Calls alone never change issuance and keep the books.
                var st = a.state
                let issuance = st.totalIssuance
                for t in txs {
                    let before = st.subnets.mapValues { $0.pool.price }
                    let r = try st.apply(t, at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
                    if r.error == nil { succeeded[t.call.name, default: 0] += 1 }
                    if r.error == nil, case .addStake(_, let netuid, _) = t.call, netuid != 0 {
                        #expect(st.subnets[netuid]!.pool.price >= before[netuid]!, "a stake never lowers the price (seed \(seed))")
                    }
                    if r.error == nil, case .removeStake(_, let netuid, _) = t.call, netuid != 0 {
                        #expect(st.subnets[netuid]!.pool.price <= before[netuid]!, "an unstake never raises the price (seed \(seed))")
                    }
                }
                #expect(st.totalIssuance == issuance, "seed \(seed): calls issued TAO")
                #expect(st.totalIssuance - st.totalBurned == st.accountedSupply, "seed \(seed)")
                let emission = a.state.params.emission.blockEmission(totalIssuance: a.state.totalIssuance)
                try a.produce(txs)
                #expect(a.state.totalIssuance >= issuance && a.state.totalIssuance - issuance <= emission, "seed \(seed): issuance beyond the block emission")
                #expect(a.conserved(), "seed \(seed): issuance \(a.state.totalIssuance) burned \(a.state.totalBurned) accounted \(a.state.accountedSupply)")
                // Root stake is all TAO in the root pool.
                let rootStakes = a.state.hotkeyPools.filter { $0.key.netuid == 0 }.reduce(UInt64(0)) { $0 + $1.value.value }
                #expect(rootStakes == a.state.subnets[0]!.pool.taoIn)
            }
            #expect(a.state.subnets[1]!.epochCount > 2)
        }
        for kind in ["add_stake", "add_stake_limit", "remove_stake", "move_stake", "swap_stake"] {
            #expect((succeeded[kind] ?? 0) > 0, "no \(kind) succeeded: \(succeeded)")
        }
    }

    @Test("pool property: no sequence of buys and sells returns more TAO than it put in", arguments: [UInt64(11), 12, 13])
    func noProfitableRoundTrip(seed: UInt64) throws {
        var rng = SeededRNG(seed: seed)
        for _ in 0..<300 {
            var p = SubnetPool(mechanism: 1, taoIn: UInt64.random(in: 1_000_000...(1 << 50), using: &rng),
                               alphaIn: UInt64.random(in: 1_000_000...(1 << 50), using: &rng), symbol: "α")
            p.alphaOut = 1 << 60
            var taoIn: UInt64 = 0, taoOut: UInt64 = 0, alpha: UInt64 = 0
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                if alpha == 0 || Bool.random(using: &rng) {
                    let t = UInt64.random(in: 1_000...max(1_000, p.taoIn / 3), using: &rng)
                    guard let q = try? p.quoteBuy(tao: t, limit: .max, dropFees: Bool.random(using: &rng), minimumReserve: 1) else { continue }
                    let before = p.price
                    p.applyBuy(q)
                    #expect(p.price >= before)
                    taoIn += q.paidIn + q.fee
                    alpha += q.out
                } else {
                    let x = UInt64.random(in: 1...alpha, using: &rng)
                    guard let q = try? p.quoteSell(alpha: x, limit: .zero, dropFees: Bool.random(using: &rng), minimumReserve: 1) else { continue }
                    let before = p.price
                    p.applySell(q)
                    #expect(p.price <= before)
                    taoOut += q.out
                    alpha -= q.paidIn + q.fee
                }
            }
            // Sell what is left: everything out never exceeds everything in.
            if alpha > 0, let q = try? p.quoteSell(alpha: alpha, limit: .zero, dropFees: true, minimumReserve: 1) {
                p.applySell(q)
                taoOut += q.out
            }
            #expect(taoOut <= taoIn, "seed \(seed): \(taoIn) in, \(taoOut) out")
        }
    }
}
