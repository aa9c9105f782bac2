@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import Testing

/// Cases replayed from subtensor's own tests (opentensor/subtensor; the swap pallet's
/// `pallets/swap/src/pallet/tests.rs` at 14bc6f9, the coinbase and flow tests of
/// `pallets/subtensor/src/tests/{coinbase,subnet_emissions}.rs` at c3841130c^ — the last
/// version with emission by TAO flow —, `networks.rs` and `subnet.rs` at 14bc6f9). Each test
/// names the case it replays; the expected values are subtensor's, with its tolerances.
@Suite("Subtensor replays")
struct SubtensorReplayTests {
    // MARK: Swap (pallets/swap/src/pallet/tests.rs)

    func pool(tao: UInt64, alpha: UInt64) -> SubnetPool { SubnetPool(mechanism: 1, taoIn: tao, alphaIn: alpha, symbol: "α") }
    static let minPrice = PriceLimit.price(rao: PriceLimit.minRao)
    static let maxPrice = PriceLimit.price(rao: PriceLimit.maxRao)

    @Test("test_swap_basic: constant-product output within 1 rao, fee, reserve deltas and price direction",
          arguments: [(UInt64(1_000), true), (2_000, true), (123_456, true), (1_000, false), (2_000, false), (123_456, false),
                      (1_000_000_000, true), (10_000_000_000, true)])
    func swapBasic(amount: UInt64, buy: Bool) throws {
        // Price 0.25: 1 TAO against 4 alpha.
        var p = self.pool(tao: 1_000_000_000, alpha: 4_000_000_000)
        p.alphaOut = 1 << 40  // the alpha sold comes from stakes
        let before = p.price
        let fee = UInt64(Double(amount) * (33.0 / 65535.0))
        let x = Double(p.alphaIn), y = Double(p.taoIn)
        let expected = buy ? x * (1 - y / (y + Double(amount - fee))) : y * (1 - x / (x + Double(amount - fee)))
        let q = buy ? try p.quoteBuy(tao: amount, limit: PriceLimit.price(rao: 1000 * 1_000_000_000), dropFees: false, minimumReserve: 1)
            : try p.quoteSell(alpha: amount, limit: PriceLimit.price(rao: 100_000), dropFees: false, minimumReserve: 1)
        #expect(abs(Double(q.out) - expected.rounded(.down)) <= 1, "out \(q.out), expected \(expected)")
        #expect(abs(Int64(q.paidIn) - Int64(amount - fee)) <= 1)
        #expect(q.fee == fee)
        if buy { p.applyBuy(q) } else { p.applySell(q) }
        #expect((p.price >= before) == buy, "price moves up on a buy, down on a sale")
        // The pool's product never falls.
        #expect(UInt128(p.taoIn) * UInt128(p.alphaIn) >= UInt128(1_000_000_000) * 4_000_000_000)
    }

    @Test("test_swap_precision_edge_case: tiny reserves still pay out", arguments: [(UInt64(1_000), UInt64(1_000), UInt64(999_500)),
                                                                                      (1_000_000, 1_000_000, 999_500_000)])
    func swapPrecision(tao: UInt64, alpha: UInt64, amount: UInt64) throws {
        let q = try self.pool(tao: tao, alpha: alpha).quoteSell(alpha: amount, limit: Self.minPrice, dropFees: false, minimumReserve: 1)
        #expect(q.out > 0)
    }

    @Test("test_convert_deltas (quote weight 0.5 rows): buy and sell outputs within 2 of the formula",
          arguments: [(UInt64(1500), UInt64(1000)), (1, 1_000_000), (1_000_000, 1)], [UInt64(1), 10_000, 1_000_000, UInt64.max])
    func convertDeltas(reserves: (UInt64, UInt64), delta: UInt64) {
        let (tao, alpha) = reserves
        let p = self.pool(tao: tao, alpha: alpha)
        let y = Double(tao), x = Double(alpha), d = Double(delta)
        let sell = y * (1 - x / (x + d)), buy = x * (1 - y / (y + d))
        #expect(abs(Double(p.taoOut(forAlpha: delta)) - sell.rounded(.down)) <= 2)
        #expect(abs(Double(p.alphaOut(forTao: delta)) - buy.rounded(.down)) <= 2)
    }

    @Test("test_swap_rejects_input_over_1000x_input_reserve and test_swap_allows_input_at_1000x_input_reserve")
    func inputCap() throws {
        let p = self.pool(tao: 1_000, alpha: 1_000)
        #expect(throws: SwapError.self) { try p.quoteSell(alpha: 1_000_001, limit: Self.minPrice, dropFees: true, minimumReserve: 1) }
        #expect(throws: SwapError.self) { try p.quoteBuy(tao: 1_000_001, limit: Self.maxPrice, dropFees: true, minimumReserve: 1) }
        _ = try p.quoteSell(alpha: 1_000_000, limit: Self.minPrice, dropFees: true, minimumReserve: 1)
        _ = try p.quoteBuy(tao: 1_000_000, limit: Self.maxPrice, dropFees: true, minimumReserve: 1)
    }

    // MARK: Emission shares (subnet_emissions.rs, flow era)

    @Test("inplace_pow_normalize_all_zero_inputs_no_panic_and_unchanged")
    func powNormalizeZero() {
        var v: [(UInt16, U64F64)] = [(1, .zero), (2, .zero), (3, .zero)]
        ChainState.powNormalize(&v, exponent: 1)
        #expect(v.allSatisfy { $0.1 == .zero })
    }

    @Test("inplace_pow_normalize_tiny_values_no_panic (p = 2): shares 1/14, 4/14, 9/14")
    func powNormalizeTiny() {
        var v: [(UInt16, U64F64)] = [(10, U64F64.ratio(1, 1_000_000_000)), (11, U64F64.ratio(2, 1_000_000_000)), (12, U64F64.ratio(3, 1_000_000_000))]
        ChainState.powNormalize(&v, exponent: 2)
        for (i, e) in [1.0 / 14, 4.0 / 14, 9.0 / 14].enumerated() { #expect(abs(v[i].1.doubleValue - e) <= e / 100) }
    }

    @Test("inplace_pow_normalize_large_values_no_overflow_and_sum_to_one (p = 2)")
    func powNormalizeLarge() {
        var v: [(UInt16, U64F64)] = [(1, U64F64(1_000_000_000)), (2, U64F64(5_000_000_000)), (3, U64F64(10_000_000_000))]
        ChainState.powNormalize(&v, exponent: 2)
        #expect(abs(v.reduce(0.0) { $0 + $1.1.doubleValue } - 1) <= 1e-9)
        #expect(v.allSatisfy { $0.1.doubleValue >= 0 && $0.1.doubleValue <= 1 })
    }

    @Test("inplace_pow_normalize_regular_case_relative_proportions_preserved (p = 1), and the p = 1 and 2 rows of inplace_pow_normalize_fractional_exponent",
          arguments: [1, 2])
    func powNormalizeRegular(p: Int) {
        var v: [(UInt16, U64F64)] = [(7, U64F64(2)), (8, U64F64(3)), (9, U64F64(5))]
        ChainState.powNormalize(&v, exponent: p)
        let raw = [2.0, 3.0, 5.0].map { Foundation_pow($0, p) }
        let sum = raw.reduce(0, +)
        for i in 0..<3 { #expect(abs(v[i].1.doubleValue - raw[i] / sum) <= (p == 1 ? 0.001 : raw[i] / sum / 100)) }
        #expect(abs(v.reduce(0.0) { $0 + $1.1.doubleValue } - 1) <= 1e-12)
    }

    // MARK: Coinbase (coinbase.rs, flow era)

    /// A chain state with `count` started dynamic subnets, pools of `reserve` TAO and alpha.
    func state(subnets count: Int, reserve: UInt64 = 1_000_000) -> ChainState {
        var spec = ChainSpec(name: "replay", id: "replay")
        let k = Ed25519.PrivateKey().publicKey
        spec.validators = [ChainSpec.Validator(hotkey: k, coldkey: k, stake: 0)]
        spec.subnets = (1...count).map { ChainSpec.SubnetSpec(netuid: UInt16($0), name: "s\($0)", owner: k, ownerHotkey: k, params: SubnetParams(), poolTao: reserve) }
        var s = spec.genesisState()
        s.number = 2
        return s
    }

    @Test("test_coinbase_tao_issuance_base: one subnet with flow takes the whole emission into its TAO reserve")
    func coinbaseIssuanceBase() {
        var s = self.state(subnets: 1, reserve: 1_000_000_000)
        s.subnets[1]!.pool.taoFlow = 1_234_567
        let before = s.subnets[1]!.pool.taoIn, issued = s.totalIssuance
        let r = s.runCoinbase(blockEmission: 1_234_567)
        #expect(s.subnets[1]!.pool.taoIn == before + 1_234_567)
        #expect(s.totalIssuance == issued + 1_234_567 && r.issued == 1_234_567)
    }

    @Test("test_coinbase_tao_issuance_multiple: equal flows split the emission in thirds (within 1 rao)")
    func coinbaseIssuanceMultiple() {
        var s = self.state(subnets: 3)
        for id: UInt16 in 1...3 { s.subnets[id]!.pool.taoFlow = 100_000_000 }
        let before = (1...3).map { s.subnets[UInt16($0)]!.pool.taoIn }
        let r = s.runCoinbase(blockEmission: 3_333_333)
        for id in 1...3 { #expect(abs(Int64(s.subnets[UInt16(id)]!.pool.taoIn - before[id - 1]) - 3_333_333 / 3) <= 1) }
        #expect(abs(Int64(r.issued) - 3_333_333) <= 3)
    }

    @Test("test_coinbase_alpha_issuance_base: at price 1 the alpha reserve grows by the TAO injected")
    func coinbaseAlphaIssuanceBase() {
        var s = self.state(subnets: 2)
        for id: UInt16 in 1...2 { s.subnets[id]!.pool.taoFlow = 100_000_000 }
        _ = s.runCoinbase(blockEmission: 1_000_000)
        for id: UInt16 in 1...2 { #expect(s.subnets[id]!.pool.alphaIn == 1_000_000 + 500_000) }
    }

    @Test("test_coinbase_alpha_issuance_with_cap_trigger: alpha injection capped; alpha out is the full block emission")
    func coinbaseAlphaCap() {
        var s = self.state(subnets: 2, reserve: 1_000)
        for id: UInt16 in 1...2 {
            s.subnets[id]!.pool.alphaIn = 1_000 * 1_000_000  // price very low
            s.subnets[id]!.pool.movingPrice = U64F64(UInt64(id))
        }
        _ = s.runCoinbase(blockEmission: 1_000_000)
        for id: UInt16 in 1...2 {
            #expect(s.subnets[id]!.pool.alphaIn < 1_000 * 1_000_000 + 1_000_000_000)
            #expect(s.subnets[id]!.pool.alphaOut == 1_000_000_000, "the subnet gets its full alpha block emission")
        }
    }

    @Test("test_owner_cut_base: a zero cut pends nothing, a full cut pends the whole alpha emission")
    func ownerCut() {
        var s = self.state(subnets: 1, reserve: 1_000_000_000_000)
        s.params.subnetOwnerCut = 0
        _ = s.runCoinbase(blockEmission: 0)
        #expect(s.subnets[1]!.pool.pendingOwnerCut == 0)
        s.params.subnetOwnerCut = UInt16.max
        _ = s.runCoinbase(blockEmission: 0)
        #expect(s.subnets[1]!.pool.pendingOwnerCut == 1_000_000_000)
    }

    @Test("test_root_proportion: tao_weight·rootTAO / (tao_weight·rootTAO + alpha issuance), exactly")
    func rootProportion() {
        var s = self.state(subnets: 1)
        s.subnets[0]!.pool.taoIn = 1_000_000_000_000
        s.params.taoWeight = 3_320_413_933_267_719_290
        s.subnets[1]!.pool.alphaIn = 100_000_000_000
        let w = U96F32.ratio(UInt128(s.params.taoWeight), UInt128(UInt64.max))
        let rootTao = U96F32(1_000_000_000_000)
        let expected = (w * rootTao).safeDiv(w * rootTao + U96F32(s.subnets[1]!.pool.alphaIssuance))
        #expect(s.rootProportion(1) == expected)
    }

    @Test("test_update_moving_price_initial: a subnet started 10 blocks ago barely moves its price average")
    func movingPriceInitial() {
        var s = self.state(subnets: 1)
        s.params.movingAlphaPpb = 500_000_000  // 0.5
        s.subnets[1]!.pool.firstEmissionBlock = 500
        s.number = 510
        s.updateMovingPrices([1])
        #expect(s.subnets[1]!.pool.movingPrice.doubleValue < 0.001)
    }

    @Test("test_zero_shares_zero_emission and test_run_coinbase_not_started: no flow or no start call, no TAO emitted")
    func zeroShares() {
        var s = self.state(subnets: 2)
        let r = s.runCoinbase(blockEmission: 1_000_000_000)
        #expect(r.issued == 0)
        s.subnets[1]!.pool.firstEmissionBlock = 0
        s.subnets[2]!.pool.firstEmissionBlock = 0
        s.subnets[1]!.pool.taoFlow = 1_000
        #expect(s.runCoinbase(blockEmission: 1_000_000_000).subnets.isEmpty)
    }

    // MARK: Lifecycle (networks.rs, subnet.rs)

    @Test("prune_none_with_no_networks, prune_none_when_all_networks_immune, prune_selects_network_with_lowest_price, prune_ignores_immune_network_even_if_lower_price, prune_tie_on_price_earlier_registration_wins")
    func pruning() {
        var s = self.state(subnets: 2)
        var empty = s
        empty.subnets = [0: s.subnets[0]!]
        #expect(empty.subnetToPrune(at: 10) == nil)
        s.params.networkImmunityPeriod = 100
        s.subnets[1]!.createdAt = 0
        s.subnets[2]!.createdAt = 1
        #expect(s.subnetToPrune(at: 50) == nil, "all immune")
        s.subnets[1]!.pool.movingPrice = U64F64(1)
        s.subnets[2]!.pool.movingPrice = U64F64(10)
        #expect(s.subnetToPrune(at: 110) == 1, "lowest price")
        s.subnets[2]!.createdAt = 105
        s.subnets[2]!.pool.movingPrice = .zero
        #expect(s.subnetToPrune(at: 110) == 1, "a cheaper subnet still immune is skipped")
        s.subnets[2]!.createdAt = 1
        s.subnets[1]!.pool.movingPrice = U64F64(7)
        s.subnets[2]!.pool.movingPrice = U64F64(7)
        #expect(s.subnetToPrune(at: 200) == 1, "a tie goes to the earlier registration")
    }

    @Test("test_register_subnet_low_lock_cost and test_register_subnet_high_lock_cost: the pool holds the lock in TAO and as much alpha",
          arguments: [UInt64(1_000), 1_000_000_000_000])
    func lockIntoPool(lock: UInt64) throws {
        var s = self.state(subnets: 1)
        s.subnets = [0: s.subnets[0]!]  // no other subnet: the median price is 1
        s.params.minLockCost = lock
        s.lastLockCost = lock
        let owner = Ed25519.PrivateKey().publicKey
        s.balances[owner] = 2 * lock + 1_000
        let cost = s.lockCost(at: s.number)
        try s.createSubnet(owner: owner, hotkey: owner, maxLock: .max, number: s.number)
        #expect(s.subnets[1]!.pool.taoIn == cost && s.subnets[1]!.pool.alphaIn == cost)
    }

    @Test("get_network_lock_cost: doubles after a creation and decays by last/interval per block, at least the minimum")
    func lockCost() {
        var s = self.state(subnets: 1)
        s.params.minLockCost = 100
        s.params.lockReductionInterval = 10
        s.lastLockCost = 1_000
        s.lastLockBlock = 0
        #expect(s.lockCost(at: 0) == 1_000, "before the first creation: not doubled")
        #expect(s.lockCost(at: 5) == 1_000 - 100 * 5)
        s.lastLockBlock = 40
        #expect(s.lockCost(at: 40) == 2_000)
        #expect(s.lockCost(at: 45) == 2_000 - 100 * 5)
        #expect(s.lockCost(at: 100) == 100, "floored at the minimum")
    }

    @Test("test_do_start_call_ok, test_do_start_call_fail_with_not_existed_subnet, test_do_start_call_fail_not_owner, test_do_start_call_fail_for_set_again")
    func startCall() throws {
        let a = try DevChain { spec in spec.subnets[0].started = false }
        func refusal(_ call: Call, _ signer: Ed25519.PrivateKey) throws -> DispatchError? {
            var st = a.state
            return try st.apply(a.tx(signer, call), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context).error
        }
        #expect(a.state.subnets[1]!.pool.firstEmissionBlock == 0)
        #expect(try refusal(.startCall(netuid: 9), a.owner)?.code == "SubNetworkDoesNotExist")
        #expect(try refusal(.startCall(netuid: 1), a.accounts[0])?.code == "NotSubnetOwner")
        #expect(try refusal(.addStake(hotkey: a.ownerHotkey.publicKey, netuid: 1, amount: Token.tao), a.accounts[0])?.code == "SubtokenDisabled")
        try a.produce([a.tx(a.owner, .startCall(netuid: 1))])
        #expect(a.state.subnets[1]!.pool.firstEmissionBlock == a.state.number + 1)
        #expect(try refusal(.startCall(netuid: 1), a.owner)?.code == "FirstEmissionBlockNumberAlreadySet")
    }
}

func Foundation_pow(_ x: Double, _ p: Int) -> Double { (0..<p).reduce(1.0) { r, _ in r * x } }
