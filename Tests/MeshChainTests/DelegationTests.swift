import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

@Suite("Delegation and take")
struct DelegationTests {
    /// A subnet with one validator (own stake 300) and two miners; `nominator` stakes 100 on
    /// the validator's hotkey from another coldkey.
    func network(take: UInt16? = nil) throws -> (DevChain, validator: Ed25519.PrivateKey, nominator: Ed25519.PrivateKey, miners: [Ed25519.PrivateKey]) {
        let a = try DevChain(tempo: 5)
        let v = a.accounts[0], nominator = a.accounts[5]
        let miners = [a.accounts[1], a.accounts[2]]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao))])
        for m in miners { try a.produce([a.tx(m, .register(netuid: 1, hotkey: m.publicKey, maxBurn: 100 * Token.tao))]) }
        var txs = [a.tx(v, .addStake(hotkey: v.publicKey, netuid: 1, amount: 300 * Token.tao)),
                   a.tx(nominator, .addStake(hotkey: v.publicKey, netuid: 1, amount: 100 * Token.tao))]
        if let take { txs.append(a.tx(v, .decreaseTake(hotkey: v.publicKey, take: take), nonce: a.state.nonce(v.publicKey) + 1)) }
        try a.produce(txs)
        for _ in 0..<6 { try a.produce() }
        let uids = miners.map { UInt16(a.state.subnets[1]!.uid(of: $0.publicKey)!) }
        try a.produce([a.tx(v, .setWeights(netuid: 1, uids: uids, values: [30, 70], versionKey: 0))])
        return (a, v, nominator, miners)
    }

    @Test("a nominator on another coldkey earns the validator's dividends in proportion to its stake, minus the take")
    func nominatorEarns() throws {
        let (a, v, nominator, miners) = try self.network()
        let before = (own: a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1),
                      nominated: a.state.stake(coldkey: nominator.publicKey, hotkey: v.publicKey, netuid: 1))
        #expect(before.nominated > 0 && before.own > before.nominated)
        let epochsBefore = a.state.subnets[1]!.epochCount
        while a.state.subnets[1]!.epochCount < epochsBefore + 2 {
            try a.produce()
            #expect(a.conserved())
        }
        let after = (own: a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1),
                     nominated: a.state.stake(coldkey: nominator.publicKey, hotkey: v.publicKey, netuid: 1))
        let nominatorGain = after.nominated - before.nominated
        let ownerGain = after.own - before.own
        #expect(nominatorGain > 0, "the nominator earns")
        // Dividends d split: take t·d to the owner, (1 − t)·d over the stakes (in alpha).
        let t = Double(a.state.delegateTake(of: v.publicKey)) / 65535
        let d = Double(nominatorGain + ownerGain)
        let expectedNominator = d * (1 - t) * Double(before.nominated) / Double(before.nominated + before.own)
        #expect(abs(Double(nominatorGain) - expectedNominator) <= max(2, expectedNominator * 0.01),
                "nominator gained \(nominatorGain), expected ≈ \(expectedNominator) of \(d)")
        #expect(Double(ownerGain) / Double(before.own) > Double(nominatorGain) / Double(before.nominated), "the owner earns its stake share plus the take")
        // Miner incentive goes to the miner's owner (its coldkey), as stake on the miner's hotkey.
        #expect(a.state.stake(coldkey: miners[1].publicKey, hotkey: miners[1].publicKey, netuid: 1) > 0)
        // The nominator can take out everything it has, and no more.
        let all = after.nominated
        var st = a.state
        let over = try st.apply(a.tx(nominator, .removeStake(hotkey: v.publicKey, netuid: 1, amount: all + 1)), at: st.number + 1,
                                producer: a.validators[0].publicKey, context: a.context)
        #expect(over.error?.code == "NotEnoughStakeToWithdraw")
        let balance = a.state.balance(nominator.publicKey)
        let price = a.state.subnets[1]!.pool.price
        try a.produce([a.tx(nominator, .removeStake(hotkey: v.publicKey, netuid: 1, amount: all))])
        let received = a.state.balance(nominator.publicKey) + 1000 - balance
        #expect(received > 0 && received <= (price * U64F64(all)).floorU64, "sold at or below the spot price")
        #expect(a.state.stake(coldkey: nominator.publicKey, hotkey: v.publicKey, netuid: 1) == 0)
        #expect(a.conserved())
    }

    @Test("with a zero take the nominator's gain per staked rao equals the owner's")
    func zeroTake() throws {
        let (a, v, nominator, _) = try self.network(take: 0)
        #expect(a.state.delegateTake(of: v.publicKey) == 0)
        let n0 = a.state.stake(coldkey: nominator.publicKey, hotkey: v.publicKey, netuid: 1)
        let o0 = a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        let epochs = a.state.subnets[1]!.epochCount
        while a.state.subnets[1]!.epochCount < epochs + 2 { try a.produce() }
        let n1 = a.state.stake(coldkey: nominator.publicKey, hotkey: v.publicKey, netuid: 1)
        let o1 = a.state.stake(coldkey: v.publicKey, hotkey: v.publicKey, netuid: 1)
        #expect(n1 > n0)
        // Same return on stake (the owner's stake is 3× the nominator's), up to rounding.
        let rn = Double(n1 - n0) / Double(n0), ro = Double(o1 - o0) / Double(o0)
        #expect(abs(rn - ro) < 1e-6, "returns \(rn) vs \(ro)")
    }

    @Test("takes: lowering is immediate, raising is rate-limited and capped; only the owner may change it")
    func takeRules() throws {
        let a = try DevChain(tempo: 50) { spec in spec.params.delegateTakeRateLimit = 20 }
        let v = a.accounts[0]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao))])
        #expect(a.state.delegateTake(of: v.publicKey) == 11_796)
        func refusal(_ call: Call, _ signer: Ed25519.PrivateKey) throws -> DispatchError? {
            var st = a.state
            return try st.apply(a.tx(signer, call), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context).error
        }
        #expect(try refusal(.increaseTake(hotkey: v.publicKey, take: 12_000), v)?.code == "DelegateTakeTooHigh")
        #expect(try refusal(.increaseTake(hotkey: v.publicKey, take: 11_796), v)?.code == "DelegateTakeTooLow")
        #expect(try refusal(.decreaseTake(hotkey: v.publicKey, take: 100), a.accounts[3])?.code == "NonAssociatedColdKey")
        #expect(try refusal(.decreaseTake(hotkey: a.accounts[4].publicKey, take: 100), a.accounts[4])?.code == "HotKeyAccountNotExists")
        try a.produce([a.tx(v, .decreaseTake(hotkey: v.publicKey, take: 1000))])
        let changedAt = a.state.number
        #expect(a.state.delegateTake(of: v.publicKey) == 1000)
        let early = try refusal(.increaseTake(hotkey: v.publicKey, take: 2000), v)
        #expect(early?.code == "DelegateTxRateLimitExceeded")
        #expect(early?.allowedAtBlock == changedAt + 21)
        // Lowering again is never rate-limited.
        try a.produce([a.tx(v, .decreaseTake(hotkey: v.publicKey, take: 900))])
        #expect(a.state.delegateTake(of: v.publicKey) == 900)
        while a.state.number < a.state.takeChangedAt[v.publicKey]! + 21 { try a.produce() }
        try a.produce([a.tx(v, .increaseTake(hotkey: v.publicKey, take: 2000))])
        #expect(a.state.delegateTake(of: v.publicKey) == 2000)
    }

    @Test("share pools: random stakes, unstakes and payouts never let stakers take out more than the pool holds")
    func sharePoolProperty() throws {
        var rng = SeededRNG(seed: 15)
        for round in 0..<200 {
            var pool = HotkeyPool()
            var holders = [UInt128](repeating: 0, count: 4)
            var paidIn: UInt64 = 0, paidOut: UInt64 = 0
            for _ in 0..<60 {
                let who = Int.random(in: 0..<4, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    let amount = UInt64.random(in: 1...(UInt64.random(in: 0...1, using: &rng) == 0 ? 1000 : 1 << 50), using: &rng)
                    guard let minted = pool.sharesToMint(for: amount) else { continue }
                    holders[who] += minted
                    pool.shares += minted
                    pool.value += amount
                    paidIn += amount
                case 1:
                    let have = pool.value(of: holders[who])
                    guard have > 0 else { continue }
                    let amount = UInt64.random(in: 1...have, using: &rng)
                    let burn = pool.sharesToBurn(for: amount, holder: holders[who])
                    holders[who] -= burn
                    pool.shares -= burn
                    pool.value -= amount
                    paidOut += amount
                default:
                    let d = UInt64.random(in: 0...100_000, using: &rng)
                    pool.value += d
                    paidIn += d
                }
                #expect(holders.reduce(0, +) == pool.shares, "round \(round)")
                let claims = holders.reduce(UInt64(0)) { $0 + pool.value(of: $1) }
                #expect(claims <= pool.value, "round \(round): claims \(claims) above the pool's \(pool.value)")
                #expect(paidIn - paidOut == pool.value)
                // shares/value never rises above 2^64 (the bound that keeps counts in range).
                #expect(pool.value == 0 || pool.shares / UInt128(pool.value) <= UInt128(1) << 64)
            }
        }
    }
}
