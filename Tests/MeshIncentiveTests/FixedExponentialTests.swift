@testable import MeshIncentive
import MeshTestSupport
import Testing

/// Liquid alpha's sigmoid in fixed point, as the chain computes it: no floating point or
/// libm on the epoch's path, so nodes whose libm rounds differently still agree on the state
/// root. Expected bits come from an independent model of substrate-fixed's `exp` (Python,
/// integer arithmetic), not from this implementation.
@Suite("Fixed-point exponential and liquid alpha")
struct FixedExponentialTests {
    static func fixed(_ v: Double) -> I32F32 { I32F32(approximating: v) }

    @Test("e^x follows substrate-fixed's series bit for bit, including its overflow to 0 near |x| = 21")
    func exponentialBits() {
        let cases: [(Double, Int64)] = [
            (0.5, 7_081_203_935), (-0.5, 2_605_029_348), (2, 31_735_754_285), (-2, 581_260_615),
            (5, 637_429_664_624), (-5, 28_939_262), (10, 94_602_947_905_357), (-10, 194_991),
            (20, 2_066_907_302_758_576_256), (20.5, 3_397_147_115_676_518_083),
            (21, 0), (21.5, 0), (-21.5, 0), (-30, 0),
        ]
        for (x, bits) in cases {
            #expect(I32F32.exponential(Self.fixed(x)).bits == bits, "e^\(x)")
        }
        #expect(I32F32.exponential(.zero) == .one)
        // exp(1) is substrate-fixed's E constant (23 fractional bits), not the series.
        #expect(I32F32.exponential(.one).bits == 22_802_600 << 9)
        #expect(I32F32.exponential(I32F32(bits: 4)).bits == 4_294_967_300)
        #expect(I32F32.exponential(I32F32(bits: .min)) == .zero && I32F32.exponential(I32F32(bits: .max)) == .zero)
    }

    @Test("the liquid-alpha sigmoid pins: default steepness, and a steep one where the chain's exp overflows to alpha_high at both ends")
    func alphaPins() {
        var p = YumaParameters()
        let low = I32F32(u16Proportion: p.alphaLow), high = I32F32(u16Proportion: p.alphaHigh)
        func gapAlpha(_ d: Int64) -> Int64 {
            YumaEpoch.alphaSigmoid(consensus: .zero, weight: I32F32(bits: d), bond: .zero, low: low, high: high,
                                   steepness: I32F32(signedInteger: p.alphaSigmoidSteepness).saturatingDiv(I32F32(signedInteger: -100)),
                                   half: I32F32(bits: 1 << 31)).bits
        }
        let defaults: [(Int64, Int64)] = [(0, 3_012_258_989), (1 << 30, 3_071_671_555), (1 << 31, 3_436_006_604),
                                          (3 << 30, 3_800_341_653), (1 << 32, 3_859_754_218), (123_456_789, 3_014_156_503)]
        for (d, bits) in defaults { #expect(gapAlpha(d) == bits, "gap \(d)") }
        p.alphaSigmoidSteepness = 30_000
        for d: Int64 in [0, 1 << 30, 3 << 30, 1 << 32] { #expect(gapAlpha(d) == 3_865_503_334, "steep, gap \(d)") }
    }

    static func digest(_ o: EpochOutput<I32F32>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ v: UInt64) { for k in 0..<8 { h = (h ^ ((v >> (8 * UInt64(k))) & 0xff)) &* 0x100_0000_01b3 } }
        for v in o.consensus + o.incentive + o.dividends + o.validatorTrust { mix(UInt64(bitPattern: v.bits)) }
        for v in o.serverEmission + o.validatorEmission { mix(v) }
        for row in o.newBonds {
            mix(UInt64(row?.count ?? .max))
            for (j, b) in row ?? [] { mix(UInt64(j) << 16 | UInt64(b)) }
        }
        return h
    }

    @Test("liquid-alpha epochs (Yuma 3, sparse production path) are pinned bit for bit, at gentle, default and steep sigmoids")
    func epochPins() {
        var got: [UInt64] = []
        for (seed, steepness): (UInt64, Int64) in [(1, 1000), (5, 1000), (3, 100), (4, 5000)] {
            var rng = SeededRNG(seed: seed)
            var input = RandomSubnet.make(&rng, n: 48, validators: 8, yuma3: true, liquid: true)
            input.params.alphaSigmoidSteepness = steepness
            got.append(Self.digest(YumaEpoch.run(input, as: I32F32.self)))
            // The pin covers liquid alpha: without it the bonds come out otherwise.
            input.params.liquidAlpha = false
            #expect(Self.digest(YumaEpoch.run(input, as: I32F32.self)) != got.last, "seed \(seed): liquid alpha changed nothing")
        }
        #expect(got == Self.pinned, "epoch digests \(got.map { "0x" + String($0, radix: 16) })")
    }

    static let pinned: [UInt64] = [0x612e_fa78_8a25_aa48, 0x3b8b_9de7_d26e_2243, 0x8345_6e52_ae4d_0c13, 0x865d_797f_5059_4dc0]
}
