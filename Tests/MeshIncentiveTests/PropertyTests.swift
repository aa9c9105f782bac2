import MeshCodec
import MeshIncentive
import MeshTestSupport
import Testing

/// Random subnets for property tests.
enum RandomSubnet {
    static func make(_ rng: inout SeededRNG, n: Int, validators requested: Int, yuma3: Bool, liquid: Bool = false) -> EpochInput {
        let validators = min(requested, n)
        var s = EpochInput(n: n, currentBlock: 1000, tempo: 100, emission: 1_000_000_000)
        // Distinct stakes so no permit tie depends on uid order.
        var stakes = Set<UInt64>()
        for i in 0..<n {
            if i < validators {
                var v = UInt64.random(in: 1_000...1_000_000_000, using: &rng)
                while stakes.contains(v) { v += 1 }
                stakes.insert(v)
                s.stake[i] = v
                s.validatorPermit[i] = true
            } else {
                s.stake[i] = 0
            }
            s.blockAtRegistration[i] = UInt64.random(in: 0...500, using: &rng)
            s.lastUpdate[i] = UInt64.random(in: 600...1000, using: &rng)
        }
        var rows: [[(Int, UInt16)]] = Array(repeating: [], count: n)
        var bonds: [[(Int, UInt16)]] = Array(repeating: [], count: n)
        for i in 0..<validators {
            let k = Int.random(in: 1...max(1, n / 2), using: &rng)
            let dests = Array((0..<n).shuffled(using: &rng).prefix(k))
            let values = dests.map { _ in UInt16.random(in: 0...65535, using: &rng) }
            rows[i] = Array(zip(dests, WeightsUpscale.maxUpscale(values)))
            bonds[i] = dests.map { ($0, UInt16.random(in: 0...65535, using: &rng)) }
        }
        s.weights = SparseMatrix(rows: rows, n: n)
        s.bonds = SparseMatrix(rows: bonds, n: n)
        s.params.yuma3 = yuma3
        s.params.liquidAlpha = liquid
        s.params.maxAllowedValidators = validators
        return s
    }

    /// The same subnet with uids relabelled by `perm` (new uid = perm[old uid]).
    static func permuted(_ s: EpochInput, _ perm: [Int]) -> EpochInput {
        var p = s
        for old in 0..<s.n {
            let new = perm[old]
            p.stake[new] = s.stake[old]
            p.validatorPermit[new] = s.validatorPermit[old]
            p.lastUpdate[new] = s.lastUpdate[old]
            p.blockAtRegistration[new] = s.blockAtRegistration[old]
            p.commitBlock[new] = s.commitBlock[old]
        }
        func remap(_ m: SparseMatrix<UInt16>) -> SparseMatrix<UInt16> {
            var rows: [[(Int, UInt16)]] = Array(repeating: [], count: s.n)
            for old in 0..<s.n { rows[perm[old]] = m.row(old).map { (perm[$0.0], $0.1) } }
            return SparseMatrix(rows: rows, n: s.n)
        }
        p.weights = remap(s.weights)
        p.bonds = remap(s.bonds)
        return p
    }
}

@Suite("Yuma properties")
struct YumaPropertyTests {
    static let seeds: [UInt64] = Array(1...40)

    @Test("incentive and dividends each sum to 1 or 0", arguments: seeds)
    func sums(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        let s = RandomSubnet.make(&rng, n: Int.random(in: 2...60, using: &rng), validators: Int.random(in: 1...8, using: &rng), yuma3: seed % 2 == 0, liquid: seed % 4 == 0)
        let o = YumaEpoch.run(s, as: I32F32.self)
        let eps = Double(s.n) / 4_294_967_296.0 * 2
        for v in [o.incentive, o.dividends] {
            let sum = v.reduce(0.0) { $0 + $1.doubleValue }
            #expect(sum == 0 || abs(sum - 1) <= eps, "seed \(seed): sum \(sum)")
        }
        #expect(o.combinedEmission.reduce(0, +) <= s.emission, "seed \(seed)")
    }

    @Test("outputs do not depend on uid labels", arguments: seeds)
    func permutation(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 1000)
        let s = RandomSubnet.make(&rng, n: Int.random(in: 2...40, using: &rng), validators: Int.random(in: 1...6, using: &rng), yuma3: seed % 2 == 1, liquid: seed % 3 == 0)
        let perm = Array(0..<s.n).shuffled(using: &rng)
        let a = YumaEpoch.run(s, as: I32F32.self)
        let b = YumaEpoch.run(RandomSubnet.permuted(s, perm), as: I32F32.self)
        for old in 0..<s.n {
            let new = perm[old]
            #expect(a.consensus[old] == b.consensus[new], "seed \(seed) consensus uid \(old)")
            #expect(a.incentive[old] == b.incentive[new], "seed \(seed) incentive uid \(old)")
            #expect(a.dividends[old] == b.dividends[new], "seed \(seed) dividends uid \(old)")
            #expect(a.combinedEmission[old] == b.combinedEmission[new], "seed \(seed) emission uid \(old)")
            let bondsA = (a.newBonds[old] ?? []).map { (perm[$0.0], $0.1) }.sorted { $0.0 < $1.0 }
            let bondsB = (b.newBonds[new] ?? [])
            #expect(bondsA.map(\.0) == bondsB.map(\.0) && bondsA.map(\.1) == bondsB.map(\.1), "seed \(seed) bonds uid \(old)")
        }
    }

    @Test("a zero-stake validator's weights change nothing", arguments: seeds)
    func zeroStake(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 2000)
        var s = RandomSubnet.make(&rng, n: 20, validators: 5, yuma3: seed % 2 == 0)
        let base = YumaEpoch.run(s, as: I32F32.self)
        // uid 19 gets a permit but no stake, and weights every miner heavily.
        s.validatorPermit[19] = true
        s.weights = s.weights.replacingRow(19, with: (5..<19).map { ($0, UInt16(65535)) })
        s.lastUpdate[19] = 1000
        let with = YumaEpoch.run(s, as: I32F32.self)
        #expect(base.consensus == with.consensus, "seed \(seed)")
        #expect(base.incentive == with.incentive, "seed \(seed)")
    }

    @Test("an inactive validator's weights change nothing", arguments: seeds)
    func inactive(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 3000)
        var s = RandomSubnet.make(&rng, n: 20, validators: 5, yuma3: seed % 2 == 0)
        s.params.maxAllowedValidators = 6
        let base = YumaEpoch.run(s, as: I32F32.self)
        // uid 19: large stake and a permit, but its last weight update is older than the cutoff.
        s.stake[19] = 5_000_000_000
        s.validatorPermit[19] = true
        s.weights = s.weights.replacingRow(19, with: (5..<19).map { ($0, UInt16(65535)) })
        s.lastUpdate[19] = 1
        s.activityCutoff = 500
        let with = YumaEpoch.run(s, as: I32F32.self)
        #expect(!with.active[19])
        // Stake normalisation now includes uid 19, so active stake is renormalised with
        // different rounding; the effect is bounded by a few units of 2^-32.
        for j in 0..<20 {
            #expect(abs(base.incentive[j].doubleValue - with.incentive[j].doubleValue) < 1e-8, "seed \(seed) uid \(j)")
            #expect(abs(base.consensus[j].doubleValue - with.consensus[j].doubleValue) < 1e-8, "seed \(seed) uid \(j)")
        }
    }

    @Test("consensus is monotone in kappa", arguments: seeds)
    func kappaMonotone(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 4000)
        var s = RandomSubnet.make(&rng, n: 30, validators: 7, yuma3: false)
        var previous: [I32F32]?
        for kappa in stride(from: 0, through: 65535, by: 4096) {
            s.params.kappa = UInt16(kappa)
            let c = YumaEpoch.run(s, as: I32F32.self).consensus
            if let p = previous {
                for j in 0..<s.n { #expect(c[j] <= p[j], "seed \(seed) kappa \(kappa) uid \(j)") }
            }
            previous = c
        }
    }

    @Test("the column median matches the chain's partition search", arguments: seeds)
    func medianOracle(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 5000)
        let s = RandomSubnet.make(&rng, n: 25, validators: 9, yuma3: false)
        let o = YumaEpoch.run(s, as: I32F32.self)
        var dense = [[I32F32]](repeating: [I32F32](repeating: .zero, count: s.n), count: s.n)
        for i in 0..<s.n { for (j, v) in o.weightsNorm.row(i) { dense[i][j] = v } }
        let oracle = YumaEpoch.weightedMedianColumnsDense(stake: o.activeStake, score: dense, majority: I32F32(u16Proportion: s.params.kappa))
        #expect(oracle == o.consensus, "seed \(seed)")
    }

    @Test("sparse and dense paths agree without owner, commit-reveal or liquid alpha", arguments: seeds)
    func sparseDense(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 6000)
        let s = RandomSubnet.make(&rng, n: 20, validators: 6, yuma3: seed % 2 == 0)
        let a = YumaEpoch.run(s, path: .sparse, as: I32F32.self)
        let b = YumaEpoch.run(s, path: .dense, as: I32F32.self)
        #expect(a.incentive == b.incentive && a.dividends == b.dividends && a.consensus == b.consensus, "seed \(seed)")
    }

    @Test("garbage scenarios give a field-naming error")
    func malformedScenarios() {
        let cases: [(String, String)] = [
            (#"{"init": {"n": 2, "stake": [1]}, "steps": []}"#, "init.stake"),
            (#"{"init": {"n": 2, "stake": [1, -4]}, "steps": []}"#, "init.stake[1]"),
            (#"{"init": {"n": 2}, "steps": [{"actions": [{"op": "explode"}]}]}"#, "op"),
            (#"{"init": {"n": 2, "params": {"kappa": 70000}}, "steps": []}"#, "init.params.kappa"),
            (#"{"init": {"n": 2}}"#, "scenario.steps"),
            (#"{"steps": []}"#, "scenario.init"),
            (#"[1, 2"#, "scenario"),
            (#"{"init": {"n": 2, "weights": [[[5, 1]], []]}, "steps": []}"#, "init.weights[0][0]"),
        ]
        for (text, field) in cases {
            do {
                _ = try EpochScenario.parse(bytes: Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.field.contains(field), "\(text) -> \(error)")
            }
        }
        var rng = SeededRNG(seed: 77)
        for _ in 0..<2000 {
            let junk = rng.bytes(Int.random(in: 0...120, using: &rng))
            _ = try? EpochScenario.parse(bytes: junk)
        }
    }
}

@Suite("Emission")
struct EmissionTests {
    @Test("halvings at half the cap, then at three quarters")
    func halving() {
        let s = EmissionSchedule()
        #expect(s.blockEmission(totalIssuance: 0) == 1_000_000_000)
        #expect(s.blockEmission(totalIssuance: 10_500_000 * 1_000_000_000 - 1) == 1_000_000_000)
        #expect(s.blockEmission(totalIssuance: 10_500_000 * 1_000_000_000) == 500_000_000)
        #expect(s.blockEmission(totalIssuance: 15_750_000 * 1_000_000_000) == 250_000_000)
        #expect(s.blockEmission(totalIssuance: s.supplyCap) == 0)
        #expect(s.blockEmission(totalIssuance: s.supplyCap - 7) <= 7)
    }

    @Test("proportional splits are exact", arguments: Array(UInt64(1)...50))
    func proportional(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        let total = UInt64.random(in: 0...10_000_000_000, using: &rng)
        let weights = (0..<Int.random(in: 1...20, using: &rng)).map { _ in UInt64.random(in: 0...1_000_000, using: &rng) }
        let parts = EmissionSplit.proportional(total, weights: weights)
        #expect(parts.reduce(0, +) == total)
        let (o, m, v) = EmissionSplit.perBlock(total)
        #expect(o + m + v == total)
    }

    @Test("issued equals credited plus pending plus burned, over many epochs", arguments: Array(UInt64(1)...20))
    func conservation(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        var s = RandomSubnet.make(&rng, n: 16, validators: 4, yuma3: true)
        let schedule = EmissionSchedule()
        var issued: UInt64 = 0
        var credited: UInt64 = 0
        var burned: UInt64 = 0
        var owner: UInt64 = 0
        var pendingServer: UInt64 = 0
        var pendingValidator: UInt64 = 0
        for block in 1...600 {
            let e = schedule.blockEmission(totalIssuance: issued)
            issued += e
            let split = EmissionSplit.perBlock(e)
            owner += split.owner
            pendingServer += split.miners
            pendingValidator += split.validators
            if block % 100 == 0 {
                s.currentBlock = UInt64(block)
                let out = YumaEpoch.run(s, as: I32F32.self)
                let pay = EpochPayout.distribute(out, pendingServer: pendingServer, pendingValidator: pendingValidator, burnUids: [15])
                credited += pay.credited.reduce(0, +)
                burned += pay.burned
                pendingServer = pay.dustServer
                pendingValidator = pay.dustValidator
                EpochScenario.commit(out, to: &s)
            }
        }
        #expect(issued == credited + owner + burned + pendingServer + pendingValidator, "seed \(seed)")
        #expect(pendingServer + pendingValidator < 10_000, "dust stays small")
    }
}
