/// How `set_weights` stores a weight vector: max-upscaled so the largest becomes 65535
/// (`vec_u16_max_upscale_to_u16`, fixed point, rounding half away from zero).
public enum WeightsUpscale {
    /// The stored form of `values`.
    public static func maxUpscale(_ values: [UInt16]) -> [UInt16] {
        guard let mx = values.max() else { return values }
        if mx == 0 || mx == UInt16.max { return values }
        let u16Max = I32F32(integer: 65535)
        let maxValue = I32F32(integer: UInt64(mx))
        if mx <= 32768 {
            return values.map { v in
                toU16((I32F32(integer: UInt64(v)) * u16Max).safeDiv(maxValue).roundedHalfAwayFromZero())
            }
        }
        let ratio = u16Max.safeDiv(maxValue)
        return values.map { v in toU16((I32F32(integer: UInt64(v)) * ratio).roundedHalfAwayFromZero()) }
    }

    static func toU16(_ x: I32F32) -> UInt16 {
        let i = x.floorInteger
        if i <= 0 { return 0 }
        return i >= 65535 ? 65535 : UInt16(i)
    }

    /// Normalised float weights (as a client computes them) to u16 before upscaling.
    public static func fromFloats(_ values: [Double]) -> [UInt16] {
        values.map { v in
            let x = (max(0, min(1, v)) * 65535).rounded(.toNearestOrAwayFromZero)
            return UInt16(x)
        }
    }
}
