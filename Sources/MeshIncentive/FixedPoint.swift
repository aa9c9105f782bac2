// Fixed-point numbers for the token economics (pools, emission shares, flows), in the
// formats subtensor uses (`substrate_fixed::U64F64`, `U96F32`, `I64F64`), with the same
// rounding: multiplication floors (toward −∞), division truncates toward zero, and every
// operation saturates instead of trapping (`saturating_*`), or gives zero on a zero divisor
// (`safe_div`). Integer arithmetic only: these values feed the state root, so every node must
// compute the same bits; no floating point is used except in `doubleValue` (reports).

/// The number of fractional bits of an unsigned 128-bit fixed-point format.
public protocol FixedFormat: Sendable {
    static var fractionalBits: Int { get }
}

/// 64 fractional bits (`U64F64`).
public enum Frac64: FixedFormat { public static let fractionalBits = 64 }
/// 32 fractional bits (`U96F32`).
public enum Frac32: FixedFormat { public static let fractionalBits = 32 }

/// An unsigned fixed-point number held in 128 bits, `Format.fractionalBits` of them fractional.
public struct UFixed<Format: FixedFormat>: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The raw bits: value = bits / 2^fractionalBits.
    public var bits: UInt128

    @inlinable public init(bits: UInt128) { self.bits = bits }

    @inlinable static var f: Int { Format.fractionalBits }

    public static var zero: Self { Self(bits: 0) }
    public static var one: Self { Self(bits: 1 << UInt128(f)) }
    public static var max: Self { Self(bits: .max) }

    /// An integer, saturating where the format has no room.
    @inlinable public init(_ integer: UInt64) {
        let shifted = UInt128(integer) << UInt128(Self.f)
        self.bits = (shifted >> UInt128(Self.f)) == UInt128(integer) ? shifted : .max
    }

    /// `numerator / denominator`, truncated; zero when the denominator is zero (`safe_div`),
    /// the maximum when the quotient does not fit (saturating).
    public static func ratio(_ numerator: UInt128, _ denominator: UInt128) -> Self {
        guard denominator != 0 else { return .zero }
        return Self(bits: WideMath.shiftDivide(numerator, shift: f, by: denominator) ?? .max)
    }

    /// `a * b`, floored, saturating.
    @inlinable public static func * (a: Self, b: Self) -> Self {
        Self(bits: WideMath.multiplyShift(a.bits, b.bits, shift: f) ?? .max)
    }

    /// `a + b`, saturating.
    @inlinable public static func + (a: Self, b: Self) -> Self {
        let (r, o) = a.bits.addingReportingOverflow(b.bits)
        return Self(bits: o ? .max : r)
    }

    /// `a - b`, saturating at zero.
    @inlinable public static func - (a: Self, b: Self) -> Self { Self(bits: a.bits >= b.bits ? a.bits - b.bits : 0) }

    /// `self / d` truncated; zero when `d` is zero (`safe_div`), saturating on overflow.
    public func safeDiv(_ d: Self) -> Self {
        guard d.bits != 0 else { return .zero }
        return Self(bits: WideMath.shiftDivide(self.bits, shift: Self.f, by: d.bits) ?? .max)
    }

    /// The integer part (`saturating_to_num::<u64>()`: floor, saturating).
    @inlinable public var floorU64: UInt64 {
        let i = self.bits >> UInt128(Self.f)
        return i > UInt128(UInt64.max) ? .max : UInt64(i)
    }

    /// Whether the value is exactly zero.
    @inlinable public var isZero: Bool { self.bits == 0 }

    /// The same value in another format: floored when fractional bits are dropped,
    /// saturating when the integer part does not fit.
    public func converted<G: FixedFormat>(to: G.Type = G.self) -> UFixed<G> {
        let from = Self.f, to = G.fractionalBits
        if to == from { return UFixed<G>(bits: self.bits) }
        if to < from { return UFixed<G>(bits: self.bits >> UInt128(from - to)) }
        let s = UInt128(to - from)
        let shifted = self.bits << s
        return UFixed<G>(bits: (shifted >> s) == self.bits ? shifted : .max)
    }

    /// `floor(self * amount)` as an integer amount (e.g. a share of an emission in rao).
    @inlinable public func amount(of value: UInt64) -> UInt64 { (self * Self(value)).floorU64 }

    /// A float for reports and JSON (never on the state path).
    public var doubleValue: Double { Double(self.bits) / Double(sign: .plus, exponent: Self.f, significand: 1) }

    /// The exact decimal expansion, truncated after `digits` fractional digits.
    public func decimalString(digits: Int = 9) -> String {
        let intPart = self.bits >> UInt128(Self.f)
        var frac = self.bits & ((1 << UInt128(Self.f)) - 1)
        var s = String(intPart)
        guard digits > 0 else { return s }
        s += "."
        for _ in 0..<digits {
            // frac < 2^f ≤ 2^64, so frac * 10 fits in 128 bits.
            frac *= 10
            s += String(frac >> UInt128(Self.f))
            frac &= (1 << UInt128(Self.f)) - 1
        }
        return s
    }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.bits < b.bits }

    public var description: String { self.decimalString() }
}

/// Unsigned, 64 integer and 64 fractional bits (`substrate_fixed::U64F64`).
public typealias U64F64 = UFixed<Frac64>
/// Unsigned, 96 integer and 32 fractional bits (`substrate_fixed::U96F32`).
public typealias U96F32 = UFixed<Frac32>

/// Signed, 64 integer and 64 fractional bits (`substrate_fixed::I64F64`), for TAO flows.
public struct I64F64: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The raw two's-complement bits: value = bits / 2^64.
    public var bits: Int128

    @inlinable public init(bits: Int128) { self.bits = bits }

    public static let zero = I64F64(bits: 0)
    public static let one = I64F64(bits: 1 << 64)

    /// An integer (always fits: 64 integer bits).
    @inlinable public init(_ integer: Int64) { self.bits = Int128(integer) << 64 }

    /// `a + b`, saturating.
    @inlinable public static func + (a: I64F64, b: I64F64) -> I64F64 {
        let (r, o) = a.bits.addingReportingOverflow(b.bits)
        return o ? I64F64(bits: b.bits > 0 ? .max : .min) : I64F64(bits: r)
    }

    /// `a - b`, saturating.
    @inlinable public static func - (a: I64F64, b: I64F64) -> I64F64 {
        let (r, o) = a.bits.subtractingReportingOverflow(b.bits)
        return o ? I64F64(bits: b.bits < 0 ? .max : .min) : I64F64(bits: r)
    }

    /// `a * b`, floored (arithmetic shift of the exact product), saturating.
    public static func * (a: I64F64, b: I64F64) -> I64F64 {
        let negative = (a.bits < 0) != (b.bits < 0)
        let ma = a.bits.magnitude, mb = b.bits.magnitude
        let (hi, lo) = ma.multipliedFullWidth(by: mb)
        // |a·b| / 2^64, and whether bits were dropped (for flooring negatives).
        guard hi >> 64 == 0 else { return I64F64(bits: negative ? .min : .max) }
        let q = (hi << 64) | (lo >> 64)
        let dropped = (lo & UInt128(UInt64.max)) != 0
        return Self.signed(q, negative: negative, roundAway: dropped)
    }

    /// ±`magnitude` (plus one when `roundAway` and negative: floor toward −∞), saturating.
    static func signed(_ magnitude: UInt128, negative: Bool, roundAway: Bool = false) -> I64F64 {
        let limit = UInt128(Int128.max)
        if !negative { return magnitude > limit ? I64F64(bits: .max) : I64F64(bits: Int128(magnitude)) }
        if magnitude > limit { return I64F64(bits: .min) }
        let mag = roundAway ? magnitude + 1 : magnitude  // at most 2^127
        return mag > limit ? I64F64(bits: .min) : I64F64(bits: -Int128(mag))
    }

    /// `self / d` truncated toward zero; zero when `d` is zero (`safe_div`), saturating.
    public func safeDiv(_ d: I64F64) -> I64F64 {
        guard d.bits != 0 else { return .zero }
        let negative = (self.bits < 0) != (d.bits < 0)
        guard let q = WideMath.shiftDivide(self.bits.magnitude, shift: 64, by: d.bits.magnitude) else {
            return I64F64(bits: negative ? .min : .max)
        }
        return Self.signed(q, negative: negative)
    }

    /// The value as a non-negative U64F64 (negatives become zero), as `U64F64::saturating_from_num`.
    @inlinable public var nonNegative: U64F64 { self.bits <= 0 ? .zero : U64F64(bits: UInt128(self.bits)) }

    @inlinable public static func < (a: I64F64, b: I64F64) -> Bool { a.bits < b.bits }

    /// A float for reports and JSON (never on the state path).
    public var doubleValue: Double { Double(self.bits) / 18_446_744_073_709_551_616.0 }

    public var description: String {
        let negative = self.bits < 0
        let s = U64F64(bits: self.bits.magnitude).decimalString()
        return negative ? "-" + s : s
    }
}

/// 256-bit intermediate arithmetic on 128-bit words.
public enum WideMath {
    /// `(a * b) >> shift`, or nil when that exceeds 128 bits.
    @inlinable public static func multiplyShift(_ a: UInt128, _ b: UInt128, shift: Int) -> UInt128? {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        if shift == 0 { return hi == 0 ? lo : nil }
        guard hi >> UInt128(shift) == 0 else { return nil }
        return (hi << UInt128(128 - shift)) | (lo >> UInt128(shift))
    }

    /// `(a << shift) / d` truncated, or nil when the quotient exceeds 128 bits (`d` > 0).
    public static func shiftDivide(_ a: UInt128, shift: Int, by d: UInt128) -> UInt128? {
        precondition(d != 0)
        let hi = shift == 0 ? 0 : a >> UInt128(128 - shift)
        let lo = shift == 0 ? a : a << UInt128(shift)
        guard hi < d else { return nil }
        return d.dividingFullWidth((high: hi, low: lo)).quotient
    }

    /// `floor(a * b / d)` for `d` > 0, or nil when it exceeds 128 bits.
    public static func mulDiv(_ a: UInt128, _ b: UInt128, _ d: UInt128) -> UInt128? {
        precondition(d != 0)
        let (hi, lo) = a.multipliedFullWidth(by: b)
        guard hi < d else { return nil }
        return d.dividingFullWidth((high: hi, low: lo)).quotient
    }

    /// `ceil(a * b / d)` for `d` > 0, or nil when it exceeds 128 bits.
    public static func mulDivCeil(_ a: UInt128, _ b: UInt128, _ d: UInt128) -> UInt128? {
        precondition(d != 0)
        let (hi, lo) = a.multipliedFullWidth(by: b)
        guard hi < d else { return nil }
        let (q, r) = d.dividingFullWidth((high: hi, low: lo))
        if r == 0 { return q }
        return q == .max ? nil : q + 1
    }

    /// Compares `a * b` with `c * d` exactly: -1, 0 or 1.
    public static func compareProducts(_ a: UInt128, _ b: UInt128, _ c: UInt128, _ d: UInt128) -> Int {
        let x = a.multipliedFullWidth(by: b), y = c.multipliedFullWidth(by: d)
        if x.high != y.high { return x.high < y.high ? -1 : 1 }
        if x.low != y.low { return x.low < y.low ? -1 : 1 }
        return 0
    }
}
