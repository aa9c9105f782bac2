@testable import MeshIncentive
import MeshTestSupport
import Testing

/// The fast forms of the fixed-point operations the epoch spends its time in, against the
/// plain 128-bit definitions they replace (written out here as the oracle), on random and
/// edge inputs. Any difference would change an epoch's bits.
@Suite("Fixed-point kernels")
struct FixedPointKernelTests {
    /// substrate-fixed's series in 128-bit arithmetic, as the epoch first computed it.
    static func referenceExponential(_ x: I32F32) -> I32F32 {
        if x.bits == 0 { return .one }
        if x == .one { return I32F32.e }
        guard x.bits != .min else { return .zero }
        let neg = x.bits < 0
        let a = Int128(neg ? -x.bits : x.bits)
        let limit = Int128(Int64.max)
        var result = a + (1 << 32)
        var term = a
        for i in 2..<32 {
            term = (term * a) >> 32
            if term > limit { return .zero }
            term = (term << 32) / (Int128(i) << 32)
            result += term
            if result > limit { return .zero }
        }
        if neg { result = (Int128(1) << 64) / result }
        return I32F32(bits: Int64(result))
    }

    static func referenceProduct(_ a: I32F32, _ b: I32F32) -> I32F32 {
        let p = (Int128(a.bits) * Int128(b.bits)) >> 32
        if p > Int128(Int64.max) { return I32F32(bits: .max) }
        if p < Int128(Int64.min) { return I32F32(bits: .min) }
        return I32F32(bits: Int64(p))
    }

    static func referenceU16(_ x: I32F32) -> UInt16 {
        if x.bits <= 0 { return 0 }
        let v = (Int128(x.bits) * 65535) >> 32
        return v >= 65535 ? 65535 : UInt16(v)
    }

    static let seeds: [UInt64] = [1, 2, 3, 4]

    static let specialBits: [Int64] = [0, 1, -1, 1 << 32, -(1 << 32), .max, .min, .min + 1, .max - 1, 1 << 31, (1 << 32) + 1]

    /// Values around the places where the arithmetic changes behaviour.
    static func edgeBits(_ rng: inout SeededRNG) -> Int64 {
        switch UInt64.random(in: 0..<8, using: &rng) {
        case 0: return Int64.random(in: -(1 << 36)...(1 << 36), using: &rng)  // |x| < 16
        case 1: return Int64.random(in: (20 << 32)...(22 << 32), using: &rng) * (Bool.random(using: &rng) ? 1 : -1)  // exp overflow edge
        case 2: return Int64.random(in: 0...(1 << 33), using: &rng)  // proportions
        case 3: return Self.specialBits[Int.random(in: 0..<Self.specialBits.count, using: &rng)]
        case 4: return Int64.random(in: Int64.min...Int64.max, using: &rng)
        default: return Int64.random(in: -(1 << 40)...(1 << 40), using: &rng)
        }
    }

    @Test("e^x: the 64-bit series equals the 128-bit one", arguments: seeds)
    func exponential(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        for _ in 0..<10_000 {
            let x = I32F32(bits: Self.edgeBits(&rng))
            #expect(I32F32.exponential(x) == Self.referenceExponential(x), "seed \(seed) x \(x.bits)")
        }
    }

    @Test("products, u16 proportions and reciprocal division equal their definitions", arguments: seeds)
    func arithmetic(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 100)
        for _ in 0..<25_000 {
            let a = I32F32(bits: Self.edgeBits(&rng))
            let b = I32F32(bits: Self.edgeBits(&rng))
            #expect(a * b == Self.referenceProduct(a, b), "seed \(seed) \(a.bits) * \(b.bits)")
            #expect(a.u16Proportion == Self.referenceU16(a), "seed \(seed) u16 of \(a.bits)")
            #expect(I32F32.divide(a, by: I32F32.reciprocal(b)) == a.safeDiv(b), "seed \(seed) \(a.bits) / \(b.bits)")
        }
        // Row normalisation's case: integer weights over their sum.
        for _ in 0..<25_000 {
            let w = I32F32(integer: UInt64.random(in: 0...65535, using: &rng))
            let sum = I32F32(integer: UInt64.random(in: 1...(1 << 26), using: &rng))
            #expect(I32F32.divide(w, by: I32F32.reciprocal(sum)) == w.safeDiv(sum), "seed \(seed) \(w.bits) / \(sum.bits)")
        }
    }

    @Test("the column consensus equals the chain's dense partition search when ties are common", arguments: seeds)
    func quantile(seed: UInt64) {
        var rng = SeededRNG(seed: seed &+ 200)
        for round in 0..<300 {
            let n = Int.random(in: 2...24, using: &rng)
            // Some rows without stake, and few distinct weight levels so that ties are common.
            let stake = (0..<n).map { _ in Bool.random(using: &rng) ? I32F32(bits: Int64.random(in: 1...(1 << 30), using: &rng)) : .zero }
            var rows: [[(Int, I32F32)]] = Array(repeating: [], count: n)
            var dense = [[I32F32]](repeating: [I32F32](repeating: .zero, count: n), count: n)
            for i in 0..<n {
                for j in 0..<n where Int.random(in: 0..<3, using: &rng) > 0 {
                    let v = I32F32(bits: Int64.random(in: 0...4, using: &rng) << 30)
                    rows[i].append((j, v))
                    dense[i][j] = v
                }
            }
            let kappa = I32F32(u16Proportion: UInt16.random(in: 0...65535, using: &rng))
            let got = YumaEpoch.weightedMedianColumns(stake: stake, weights: SparseMatrix(rows: rows, n: n), majority: kappa)
            let oracle = YumaEpoch.weightedMedianColumnsDense(stake: stake, score: dense, majority: kappa)
            #expect(got == oracle, "seed \(seed) round \(round)")
        }
    }

    @Test("a caller generic over the scalar gets the same epoch as a concrete one", arguments: seeds)
    func genericCaller(seed: UInt64) throws {
        var rng = SeededRNG(seed: seed &+ 300)
        let s = RandomSubnet.make(&rng, n: 40, validators: 9, yuma3: true, liquid: true)
        let direct = YumaEpoch.run(s, as: I32F32.self)
        let scenario = try EpochScenario(path: .sparse, initial: s, steps: [EpochScenario.Step(actions: [])]).run(as: I32F32.self)
        let viaScenario = try #require(scenario.first?.output)
        #expect(FixedExponentialTests.digest(direct) == FixedExponentialTests.digest(viaScenario), "seed \(seed)")
    }
}
