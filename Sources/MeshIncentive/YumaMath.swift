/// Dense forms of the chain's matrix helpers, for the unit cases transcribed from
/// subtensor's `math.rs` tests and for cross-checking the sparse path.
public enum YumaMath {
    /// `mat_ema_alpha` (dense): per cell `min(1, (1 − α)·old + max(α·new, 0))`.
    public static func denseEMA<S: YumaScalar>(new: [[S]], old: [[S]], alpha: [[S]]) -> [[S]] {
        new.indices.map { i in
            new[i].indices.map { j in
                let a = alpha[i][j]
                let decayed = (S.one - a) * old[i][j]
                var purchase = a * new[i][j]
                if purchase < .zero { purchase = .zero }
                let v = decayed + purchase
                return v > .one ? .one : v
            }
        }
    }

    /// `mat_ema` (dense) with one alpha: `α·new + (1 − α)·old`.
    public static func denseEMA<S: YumaScalar>(new: [[S]], old: [[S]], alpha: S) -> [[S]] {
        new.indices.map { i in
            new[i].indices.map { j in alpha * new[i][j] + (S.one - alpha) * old[i][j] }
        }
    }

    /// Yuma 3 with liquid alpha on dense inputs (the dense path decays every cell).
    public static func denseLiquidEMA<S: YumaScalar>(new: [[S]], old: [[S]], consensus: [S], params p: YumaParameters) -> [[S]] {
        let low = S(u16Proportion: p.alphaLow)
        let high = S(u16Proportion: p.alphaHigh)
        let steepness = S(signedInteger: p.alphaSigmoidSteepness).saturatingDiv(S(signedInteger: -100))
        let half = S.one.saturatingDiv(S(signedInteger: 2))
        let alphas: [[S]] = new.indices.map { i in
            new[i].indices.map { j in
                YumaEpoch.alphaSigmoid(consensus: consensus[j], weight: new[i][j], bond: old[i][j],
                                       low: low, high: high, steepness: steepness, half: half)
            }
        }
        return denseEMA(new: new, old: old, alpha: alphas)
    }
}
