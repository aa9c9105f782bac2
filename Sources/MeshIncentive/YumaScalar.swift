import Foundation

/// The number type an epoch is computed in.
///
/// Two implementations: ``I32F32`` reproduces the chain's fixed-point arithmetic bit for bit
/// (floor multiplication, truncating division, x / 0 = 0), and `Double` is a float64 mode for
/// analysis. The epoch code is generic over this protocol and specialised for each.
public protocol YumaScalar: Comparable, Sendable {
    static var zero: Self { get }
    static var one: Self { get }
    /// Saturating addition.
    static func + (a: Self, b: Self) -> Self
    /// Saturating subtraction.
    static func - (a: Self, b: Self) -> Self
    /// Multiplication (floor in fixed point).
    static func * (a: Self, b: Self) -> Self
    /// Division truncating toward zero; division by zero (or overflow) gives zero.
    func safeDiv(_ divisor: Self) -> Self
    /// Saturating division (overflow saturates; by zero saturates too).
    func saturatingDiv(_ divisor: Self) -> Self
    /// An integer value (weights and bonds are loaded as integers before normalising).
    init(integer: UInt64)
    /// `x / 65535` as the chain computes it.
    init(u16Proportion x: UInt16)
    /// Converts from a float (unit tests with f32 literals, reports). Never on the chain's path.
    init(approximating value: Double)
    /// An integer, exactly (saturating where the type has no room).
    init(signedInteger: Int64)
    /// `safe_exp`: e^x as the chain computes it — for I32F32 substrate-fixed's series in
    /// fixed point, and 0 where that overflows. No floating point or libm on the chain's path.
    static func exponential(_ x: Self) -> Self
    /// Stake normalised in I64F64 then narrowed, as `inplace_normalize_64` + `vec_fixed64_to_fixed32`.
    static func normalizedStake(_ stake: [UInt64]) -> [Self]
    /// `1 - bma / 10^6` computed through I64F64, as the chain derives the EMA alpha.
    static func emaAlpha(bondsMovingAverage: UInt64) -> Self
    /// `floor(x * 65535)`, saturated to 0...65535 (`fixed_proportion_to_u16`).
    var u16Proportion: UInt16 { get }
    /// `floor(x * emission)` in rao (I96F32 product, floored).
    func amount(of emission: UInt64) -> UInt64
    /// The value as a float, for reports.
    var doubleValue: Double { get }

    /// A precomputed form of a divisor, for dividing many values by it.
    associatedtype Reciprocal
    /// Prepares `divisor` for ``divide(_:by:)``.
    static func reciprocal(_ divisor: Self) -> Reciprocal
    /// Exactly `x.safeDiv(divisor)`, faster when one divisor serves many values.
    static func divide(_ x: Self, by r: Reciprocal) -> Self

    /// One epoch computed in this scalar: what ``YumaEpoch/run(_:path:as:)`` calls.
    ///
    /// A requirement, so that a caller generic over the scalar (the scenario runner, the
    /// `tensormesh epoch` command) reaches the epoch compiled for the concrete type through
    /// the witness table instead of running the unspecialised generic body.
    static func runEpoch(_ input: EpochInput, path: EpochPath) -> EpochOutput<Self>
}

extension YumaScalar {
    /// The generic body, for scalars other than the two built in.
    public static func runEpoch(_ input: EpochInput, path: EpochPath) -> EpochOutput<Self> {
        YumaEpoch.compute(input, path: path, as: Self.self)
    }
}

/// Signed fixed point with 32 integer and 32 fractional bits, as `substrate_fixed::I32F32`.
public struct I32F32: YumaScalar, Hashable, CustomStringConvertible {
    /// The raw two's-complement bits: value = bits / 2^32.
    public var bits: Int64

    @inlinable public init(bits: Int64) { self.bits = bits }

    public static let zero = I32F32(bits: 0)
    public static let one = I32F32(bits: 1 << 32)

    @inlinable static func saturate(_ x: Int128) -> I32F32 {
        if x > Int128(Int64.max) { return I32F32(bits: .max) }
        if x < Int128(Int64.min) { return I32F32(bits: .min) }
        return I32F32(bits: Int64(x))
    }

    @inlinable public static func + (a: I32F32, b: I32F32) -> I32F32 {
        let (r, o) = a.bits.addingReportingOverflow(b.bits)
        if !o { return I32F32(bits: r) }
        return I32F32(bits: b.bits > 0 ? .max : .min)
    }

    @inlinable public static func - (a: I32F32, b: I32F32) -> I32F32 {
        let (r, o) = a.bits.subtractingReportingOverflow(b.bits)
        if !o { return I32F32(bits: r) }
        return I32F32(bits: b.bits < 0 ? .max : .min)
    }

    @inlinable @inline(__always) public static func * (a: I32F32, b: I32F32) -> I32F32 {
        // Exact 128-bit product, arithmetic shift right (floor, also for negatives):
        // high·2^32 + (low >> 32), which fits 64 bits when the high word does in 32.
        let (high, low) = a.bits.multipliedFullWidth(by: b.bits)
        if high >= 1 << 31 { return I32F32(bits: .max) }
        if high < -(1 << 31) { return I32F32(bits: .min) }
        return I32F32(bits: (high << 32) | Int64(low >> 32))
    }

    @inlinable public func safeDiv(_ d: I32F32) -> I32F32 {
        if d.bits == 0 { return .zero }
        let q = (Int128(self.bits) << 32) / Int128(d.bits)
        if q > Int128(Int64.max) || q < Int128(Int64.min) { return .zero }
        return I32F32(bits: Int64(q))
    }

    @inlinable public func saturatingDiv(_ d: I32F32) -> I32F32 {
        if d.bits == 0 {
            if self.bits == 0 { return .zero }
            return I32F32(bits: self.bits > 0 ? .max : .min)
        }
        return I32F32.saturate((Int128(self.bits) << 32) / Int128(d.bits))
    }

    @inlinable public init(integer: UInt64) {
        self = integer > UInt64(Int32.max) ? I32F32(bits: .max) : I32F32(bits: Int64(integer) << 32)
    }

    @inlinable public init(u16Proportion x: UInt16) {
        self.bits = (Int64(x) << 32) / 65535
    }

    public init(approximating value: Double) {
        let scaled = (value * 4_294_967_296.0).rounded(.toNearestOrEven)
        if scaled >= 9.2e18 { self.bits = .max } else if scaled <= -9.2e18 { self.bits = .min } else { self.bits = Int64(scaled) }
    }

    @inlinable public init(signedInteger x: Int64) {
        self = x > Int64(Int32.max) ? I32F32(bits: .max) : (x < Int64(Int32.min) ? I32F32(bits: .min) : I32F32(bits: x << 32))
    }

    /// e as substrate-fixed holds it for `exp(1)`: 23 fractional bits (I9F23, truncated).
    public static let e = I32F32(bits: 22_802_600 << 9)

    /// substrate-fixed's `transcendental::exp` for I32F32, which subtensor's `safe_exp` wraps
    /// (an error becomes 0): for |x|, the Taylor series 1 + x + Σ_{i=2}^{31} x^i/i!, each term
    /// the previous one multiplied by |x| (floored) and divided by i (truncated), every step
    /// checked for overflow; for negative x the reciprocal. Integer arithmetic only, so every
    /// node computes the same bits. Overflow happens near |x| ≈ 21, where the result is 0 (and
    /// the liquid-alpha sigmoid 1/(1 + 0) = 1), exactly as on the chain.
    public static func exponential(_ x: I32F32) -> I32F32 {
        if x.bits == 0 { return .one }
        if x == .one { return Self.e }
        guard x.bits != .min else { return .zero }
        let neg = x.bits < 0
        // |x| and every term are non-negative and below 2^63 (checked), so the series runs in
        // 64-bit words: term·|x| is an exact 128-bit product, and the chain's division of
        // term·2^32 by i·2^32 equals term / i.
        let a = neg ? -x.bits : x.bits
        var (result, overflow) = a.addingReportingOverflow(1 << 32)
        if overflow { return .zero }
        var term = a
        // One term of the series: false when the sum or a term overflows (the chain's error).
        // Written out for i = 2...31 so that each division is by a constant (a multiply).
        @inline(__always) func add(_ i: Int64) -> Bool {
            if term == 0 { return true }  // every later term is 0 too
            let (high, low) = term.multipliedFullWidth(by: a)
            // (term·a) >> 32 must fit in 63 bits: the high word below 2^31.
            if high >= 1 << 31 { return false }
            term = ((high << 32) | Int64(low >> 32)) / i
            (result, overflow) = result.addingReportingOverflow(term)
            return !overflow
        }
        guard add(2), add(3), add(4), add(5), add(6), add(7), add(8), add(9), add(10), add(11), add(12), add(13),
              add(14), add(15), add(16), add(17), add(18), add(19), add(20), add(21), add(22), add(23), add(24),
              add(25), add(26), add(27), add(28), add(29), add(30), add(31) else { return .zero }
        if neg {
            // 1 / result: result ≥ 1 here, so the quotient fits.
            return I32F32(bits: Int64((Int128(1) << 64) / Int128(result)))
        }
        return I32F32(bits: result)
    }

    public static func normalizedStake(_ stake: [UInt64]) -> [I32F32] {
        var sum: UInt128 = 0
        for s in stake { sum += UInt128(s) }
        // I64F64 holds integers below 2^63.
        if sum > UInt128(Int64.max) { sum = UInt128(Int64.max) }
        if sum == 0 { return stake.map { I32F32(integer: $0) } }
        return stake.map { s in
            let raw64 = (UInt128(min(s, UInt64(Int64.max))) << 64) / sum
            return I32F32(bits: Int64(raw64 >> 32))
        }
    }

    public static func emaAlpha(bondsMovingAverage bma: UInt64) -> I32F32 {
        let raw64 = (UInt128(bma) << 64) / 1_000_000
        let narrowed = raw64 >> 32
        let f = narrowed > UInt128(Int64.max) ? I32F32(bits: .max) : I32F32(bits: Int64(narrowed))
        return I32F32.one - f
    }

    @inlinable public var u16Proportion: UInt16 {
        if self.bits <= 0 { return 0 }
        // At most 1 (2^32) times 65535 fits 64 bits; larger values saturate either way.
        if self.bits > 1 << 32 { return 65535 }
        let v = (self.bits &* 65535) >> 32
        return v >= 65535 ? 65535 : UInt16(v)
    }

    @inlinable public func amount(of emission: UInt64) -> UInt64 {
        if self.bits <= 0 { return 0 }
        let v = (UInt128(UInt64(self.bits)) * UInt128(emission)) >> 32
        return v > UInt128(UInt64.max) ? .max : UInt64(v)
    }

    public var doubleValue: Double { Double(self.bits) / 4_294_967_296.0 }

    @inlinable public static func < (a: I32F32, b: I32F32) -> Bool { a.bits < b.bits }

    public var description: String { String(self.doubleValue) }

    /// A divisor with a float estimate of 2^32 / divisor.
    public struct Reciprocal {
        @usableFromInline let divisor: Int64
        @usableFromInline let estimate: Double
        @inlinable init(divisor: Int64, estimate: Double) {
            self.divisor = divisor
            self.estimate = estimate
        }
    }

    @inlinable public static func reciprocal(_ d: I32F32) -> Reciprocal {
        Reciprocal(divisor: d.bits, estimate: d.bits == 0 ? 0 : 4_294_967_296.0 / Double(d.bits))
    }

    /// floor(x·2^32 / d) for the common case 0 ≤ x, 0 < d, quotient below 2^40: a float
    /// estimate corrected with exact 128-bit remainders; other cases take the exact path.
    @inlinable public static func divide(_ x: I32F32, by r: Reciprocal) -> I32F32 {
        let d = r.divisor
        guard d > 0, d < 1 << 60, x.bits >= 0 else { return x.safeDiv(I32F32(bits: d)) }
        let est = Double(x.bits) * r.estimate
        guard est < 1_099_511_627_776.0 else { return x.safeDiv(I32F32(bits: d)) }
        var q = Int64(est)
        // rem = x·2^32 − q·d must land in [0, d). The estimate is within a few units of the
        // quotient, so |rem| < 2^62 and the 64-bit wrapping difference is the exact remainder.
        var rem = (x.bits &<< 32) &- (q &* d)
        // One step either way, without a branch on the data (the sign bits as masks) …
        let below = rem >> 63
        q &+= below
        rem &+= d & below
        let above = ~((rem &- d) >> 63)
        q &-= above
        rem &-= d & above
        // … and a net for an estimate further off (not taken when it is within one).
        while rem < 0 {
            q -= 1
            rem += d
        }
        while rem >= d {
            q += 1
            rem -= d
        }
        return I32F32(bits: q)
    }

    /// The epoch compiled for fixed point.
    public static func runEpoch(_ input: EpochInput, path: EpochPath) -> EpochOutput<I32F32> {
        YumaEpoch.compute(input, path: path, as: I32F32.self)
    }

    /// Rounds to the nearest integer, half away from zero (`fixed::round`).
    @inlinable public func roundedHalfAwayFromZero() -> I32F32 {
        let half: Int64 = 1 << 31
        let mask: Int64 = ~((1 << 32) - 1)
        if self.bits >= 0 {
            let (r, o) = self.bits.addingReportingOverflow(half)
            return I32F32(bits: o ? .max & mask : r & mask)
        }
        // For negatives: -round(-x).
        return I32F32(bits: -((-self.bits + half) & mask))
    }

    /// The integer part, floored (`to_num` for integer targets).
    @inlinable public var floorInteger: Int64 { self.bits >> 32 }
}

extension Double: YumaScalar {
    public static let one: Double = 1

    @inlinable public func safeDiv(_ d: Double) -> Double { d == 0 ? 0 : self / d }
    @inlinable public func saturatingDiv(_ d: Double) -> Double { d == 0 ? 0 : self / d }
    @inlinable public init(integer: UInt64) { self = Double(integer) }
    @inlinable public init(u16Proportion x: UInt16) { self = Double(x) / 65535 }
    @inlinable public init(approximating value: Double) { self = value }
    @inlinable public init(signedInteger x: Int64) { self = Double(x) }
    /// The float reference model (tests and reports only): libm's exp, clamped to ±20.
    public static func exponential(_ x: Double) -> Double { Foundation.exp(Swift.min(20, Swift.max(-20, x))) }

    public static func normalizedStake(_ stake: [UInt64]) -> [Double] {
        let sum = stake.reduce(0.0) { $0 + Double($1) }
        if sum == 0 { return stake.map { Double($0) } }
        return stake.map { Double($0) / sum }
    }

    public static func emaAlpha(bondsMovingAverage bma: UInt64) -> Double { 1 - Double(bma) / 1_000_000 }

    @inlinable public var u16Proportion: UInt16 {
        let v = (self * 65535).rounded(.down)
        if !(v > 0) { return 0 }
        return v >= 65535 ? 65535 : UInt16(v)
    }

    @inlinable public func amount(of emission: UInt64) -> UInt64 {
        let v = (self * Double(emission)).rounded(.down)
        if !(v > 0) { return 0 }
        return v >= 1.8e19 ? .max : UInt64(v)
    }

    public var doubleValue: Double { self }

    /// The epoch compiled for float64.
    public static func runEpoch(_ input: EpochInput, path: EpochPath) -> EpochOutput<Double> {
        YumaEpoch.compute(input, path: path, as: Double.self)
    }

    public typealias Reciprocal = Double
    @inlinable public static func reciprocal(_ d: Double) -> Double { d }
    @inlinable public static func divide(_ x: Double, by r: Double) -> Double { r == 0 ? 0 : x / r }
}
