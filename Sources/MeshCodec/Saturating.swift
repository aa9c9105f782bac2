/// Saturating arithmetic for integers that come from outside (a peer, a client, a file).
/// Swift traps on overflow, so `a + b` on a hostile `b` is a remote crash; these clamp at
/// the type's bounds instead. Use them where the clamped value is still meaningful (a
/// deadline far in the future, a range that ends past the last block); where it is not,
/// refuse the value with a typed error.
extension FixedWidthInteger {
    /// `self + other`, or the type's bound when that overflows.
    @inlinable
    public func addingSaturated(_ other: Self) -> Self {
        let (r, o) = self.addingReportingOverflow(other)
        return o ? (other < 0 ? .min : .max) : r
    }

    /// `self - other`, or the type's bound when that overflows (0 for unsigned types).
    @inlinable
    public func subtractingSaturated(_ other: Self) -> Self {
        let (r, o) = self.subtractingReportingOverflow(other)
        return o ? (other < 0 ? .max : .min) : r
    }

    /// `self * other`, or the type's bound when that overflows.
    @inlinable
    public func multipliedSaturated(by other: Self) -> Self {
        let (r, o) = self.multipliedReportingOverflow(by: other)
        return o ? ((self < 0) != (other < 0) ? .min : .max) : r
    }
}
