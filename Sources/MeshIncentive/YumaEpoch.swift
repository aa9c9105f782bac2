
/// One Yuma Consensus epoch of one subnet, as subtensor's `epoch_mechanism` computes it
/// (yuma.md sections 4-8). Pure: no I/O, no chain types, time and stake come in as values.
///
/// Generic over ``YumaScalar``: `YumaEpoch.run(input, as: I32F32.self)` is bit-exact with
/// the chain; `as: Double.self` is the float64 analysis mode.
public enum YumaEpoch {
    /// Runs one epoch.
    @_specialize(exported: true, where S == I32F32)
    @_specialize(exported: true, where S == Double)
    public static func run<S: YumaScalar>(_ input: EpochInput, path: EpochPath = .sparse, as: S.Type = S.self) -> EpochOutput<S> {
        let n = input.n
        let t = input.currentBlock
        let p = input.params
        let sparsePath = path == .sparse

        // Step 1: activity and the block the last epoch ran at.
        let cutoff = input.effectiveActivityCutoff
        var inactive = [Bool](repeating: false, count: n)
        for i in 0..<n {
            let (sum, overflow) = input.lastUpdate[i].addingReportingOverflow(cutoff)
            inactive[i] = !overflow && sum < t
        }
        let active = inactive.map { !$0 }
        let lastTempo: UInt64 = input.lastMechanismStepBlock != 0
            ? input.lastMechanismStepBlock &+ 1
            : (t >= input.tempo ? t - input.tempo : 0)

        // Step 2: stake, masked below the threshold (the owner is exempt on the production path).
        let owner = input.ownerUid
        var rawStake = input.stake
        for i in 0..<n where rawStake[i] < input.stakeThreshold && !(sparsePath && owner == i) {
            rawStake[i] = 0
        }
        let stake: [S] = S.normalizedStake(rawStake)

        // Step 3: permits in force now, and the new top-k permits stored for the next epoch.
        var permit = input.validatorPermit
        if sparsePath, let o = owner { permit[o] = true }
        var newPermit = topKNonZero(stake, k: p.maxAllowedValidators)
        if sparsePath, let o = owner { newPermit[o] = true }

        // Step 4: active stake.
        var activeStake = stake
        for i in 0..<n where inactive[i] || !permit[i] { activeStake[i] = .zero }
        normalize(&activeStake)

        // Step 5: weights with the masks, then row-normalised.
        let keepOwnerDiagonal = sparsePath ? owner : nil
        let commitMask = sparsePath && input.commitRevealEnabled
        var weights: SparseMatrix<S> = input.weights.filter { i, j, _ in
            if !permit[i] { return false }
            if i == j && keepOwnerDiagonal != i { return false }
            if input.lastUpdate[i] <= input.blockAtRegistration[j] { return false }
            if commitMask, let c = input.commitBlock[i], c < input.blockAtRegistration[j] { return false }
            return true
        }.mapValues { S(integer: UInt64($0)) }
        rowNormalize(&weights)

        // Step 6: consensus, the stake-weighted kappa-quantile of each column.
        let kappa = S(u16Proportion: p.kappa)
        let consensus = weightedMedianColumns(stake: activeStake, weights: weights, majority: kappa)

        // Step 7: clip weights above consensus.
        let clipped = clip(weights, to: consensus)

        // Step 8: validator trust.
        let validatorTrust = rowSums(clipped)

        // Step 9: incentive.
        var incentive = [S](repeating: .zero, count: n)
        for i in 0..<n where activeStake[i] != .zero {
            let a = activeStake[i]
            for k in clipped.range(ofRow: i) {
                let j = Int(clipped.columns[k])
                incentive[j] = incentive[j] + a * clipped.values[k]
            }
        }
        normalize(&incentive)

        // Step 10: weights for bonds.
        let beta = S(u16Proportion: p.bondsPenalty)
        let weightsForBonds = interpolate(weights, clipped, ratio: beta)

        // Step 11: bonds and dividends.
        let recentlyRegistered = input.blockAtRegistration.map { lastTempo <= $0 }
        let alpha = S.emaAlpha(bondsMovingAverage: p.bondsMovingAverage)
        var dividends = [S](repeating: .zero, count: n)
        var storedBonds: SparseMatrix<UInt16>
        if p.yuma3 {
            let oldBonds = input.bonds.filter { _, j, _ in !recentlyRegistered[j] }.mapValues { S(u16Proportion: $0) }
            let ema: SparseMatrix<S>
            if p.liquidAlpha && consensus.contains(where: { $0 != .zero }) {
                ema = liquidAlphaEMA(new: weightsForBonds, old: oldBonds, consensus: consensus, params: p, decayAbsent: !sparsePath)
            } else {
                ema = exponentialMovingAverage(new: weightsForBonds, old: oldBonds, alpha: alpha)
            }
            var normalized = ema
            columnNormalize(&normalized)
            for i in 0..<n {
                var total = S.zero
                for k in normalized.range(ofRow: i) {
                    total = total + normalized.values[k] * incentive[Int(normalized.columns[k])]
                }
                dividends[i] = total * activeStake[i]
            }
            normalize(&dividends)
            storedBonds = ema.mapValues { $0.u16Proportion }
        } else {
            var oldBonds = input.bonds.filter { _, j, _ in !recentlyRegistered[j] }.mapValues { S(integer: UInt64($0)) }
            columnNormalize(&oldBonds)
            var delta = weightsForBonds
            for i in 0..<n {
                for k in delta.range(ofRow: i) { delta.values[k] = delta.values[k] * activeStake[i] }
            }
            columnNormalize(&delta)
            var ema = exponentialMovingAverage(new: delta, old: oldBonds, alpha: alpha)
            columnNormalize(&ema)
            for i in 0..<n {
                var total = S.zero
                for k in ema.range(ofRow: i) {
                    total = total + incentive[Int(ema.columns[k])] * ema.values[k]
                }
                dividends[i] = total
            }
            normalize(&dividends)
            columnMaxUpscale(&ema)
            storedBonds = ema.mapValues { $0.u16Proportion }
        }

        // Step 12: emission shares, with the all-zero fallback.
        var combined = [S](repeating: .zero, count: n)
        var emissionSum = S.zero
        for i in 0..<n {
            combined[i] = incentive[i] + dividends[i]
            emissionSum = emissionSum + combined[i]
        }
        var normServer = incentive
        var normValidator = dividends
        var normCombined = combined
        if emissionSum != .zero {
            for i in 0..<n {
                normServer[i] = normServer[i].safeDiv(emissionSum)
                normValidator[i] = normValidator[i].safeDiv(emissionSum)
            }
        }
        normalize(&normCombined)
        if emissionSum == .zero {
            let fallback = activeStake.allSatisfy({ $0 == .zero }) ? stake : activeStake
            normValidator = fallback
            normCombined = fallback
        }
        let e = input.emission

        // Step 13: bonds to store.
        var newBonds = [[(Int, UInt16)]?](repeating: nil, count: n)
        for i in 0..<n {
            if newPermit[i] {
                newBonds[i] = storedBonds.row(i).filter { $0.1 > 0 || !sparsePath }
            } else if sparsePath || permit[i] {
                newBonds[i] = []
            }
        }

        return EpochOutput(
            active: active, stakeNorm: stake, activeStake: activeStake, newValidatorPermit: newPermit,
            weightsNorm: weights, consensus: consensus, validatorTrust: validatorTrust, incentive: incentive,
            dividends: dividends, normServerEmission: normServer, normValidatorEmission: normValidator,
            normCombinedEmission: normCombined,
            serverEmission: normServer.map { $0.amount(of: e) },
            validatorEmission: normValidator.map { $0.amount(of: e) },
            combinedEmission: normCombined.map { $0.amount(of: e) },
            newBonds: newBonds)
    }
}

// MARK: - Vector and matrix primitives (math.rs)

extension YumaEpoch {
    /// `inplace_normalize`: divide by the sum; an all-zero vector is left as is.
    @inlinable
    static func normalize<S: YumaScalar>(_ x: inout [S]) {
        var sum = S.zero
        for v in x { sum = sum + v }
        if sum == .zero { return }
        let r = S.reciprocal(sum)
        for i in x.indices { x[i] = S.divide(x[i], by: r) }
    }

    /// `is_topk_nonzero`: the k largest non-zero entries keep a permit; ties at the boundary
    /// go against the lower uid (stable ascending sort).
    static func topKNonZero<S: YumaScalar>(_ v: [S], k: Int) -> [Bool] {
        var result = v.map { $0 != .zero }
        let n = v.count
        if n < k { return result }
        let order = v.indices.sorted { a, b in v[a] < v[b] || (v[a] == v[b] && a < b) }
        for idx in order.prefix(max(0, n - k)) { result[idx] = false }
        return result
    }

    static func rowNormalize<S: YumaScalar>(_ m: inout SparseMatrix<S>) {
        for i in 0..<m.n {
            let r = m.range(ofRow: i)
            var sum = S.zero
            for k in r { sum = sum + m.values[k] }
            if sum > .zero {
                let rec = S.reciprocal(sum)
                for k in r { m.values[k] = S.divide(m.values[k], by: rec) }
            }
        }
    }

    static func columnSums<S: YumaScalar>(_ m: SparseMatrix<S>) -> [S] {
        var sums = [S](repeating: .zero, count: m.n)
        for k in 0..<m.nonZeroCount {
            let j = Int(m.columns[k])
            sums[j] = sums[j] + m.values[k]
        }
        return sums
    }

    static func columnNormalize<S: YumaScalar>(_ m: inout SparseMatrix<S>) {
        let reciprocals = columnSums(m).map { S.reciprocal($0) }
        for k in 0..<m.nonZeroCount {
            m.values[k] = S.divide(m.values[k], by: reciprocals[Int(m.columns[k])])
        }
    }

    static func columnMaxUpscale<S: YumaScalar>(_ m: inout SparseMatrix<S>) {
        var maxima = [S](repeating: .zero, count: m.n)
        for k in 0..<m.nonZeroCount {
            let j = Int(m.columns[k])
            if m.values[k] > maxima[j] { maxima[j] = m.values[k] }
        }
        let reciprocals = maxima.map { S.reciprocal($0) }
        for k in 0..<m.nonZeroCount {
            m.values[k] = S.divide(m.values[k], by: reciprocals[Int(m.columns[k])])
        }
    }

    static func rowSums<S: YumaScalar>(_ m: SparseMatrix<S>) -> [S] {
        (0..<m.n).map { i in
            var s = S.zero
            for k in m.range(ofRow: i) { s = s + m.values[k] }
            return s
        }
    }

    /// `col_clip_sparse`: entries above the column's consensus are lowered to it, or dropped
    /// when the consensus is zero.
    static func clip<S: YumaScalar>(_ m: SparseMatrix<S>, to threshold: [S]) -> SparseMatrix<S> {
        var b = SparseMatrix<S>.Builder(n: m.n, capacity: m.nonZeroCount)
        for i in 0..<m.n {
            for k in m.range(ofRow: i) {
                let j = Int(m.columns[k])
                let v = m.values[k]
                let c = threshold[j]
                if c < v {
                    if .zero < c { b.append(column: j, value: c) }
                } else {
                    b.append(column: j, value: v)
                }
            }
            b.endRow()
        }
        return b.build()
    }

    /// `interpolate_sparse`: `a + ratio (b - a)`, keeping positive entries. `b`'s pattern
    /// is a subset of `a`'s (it is the clipped `a`).
    static func interpolate<S: YumaScalar>(_ a: SparseMatrix<S>, _ b: SparseMatrix<S>, ratio: S) -> SparseMatrix<S> {
        if ratio == .zero { return a }
        if ratio == .one { return b }
        var out = SparseMatrix<S>.Builder(n: a.n, capacity: a.nonZeroCount)
        for i in 0..<a.n {
            var kb = b.range(ofRow: i).lowerBound
            let endB = b.range(ofRow: i).upperBound
            for k in a.range(ofRow: i) {
                let j = a.columns[k]
                while kb < endB && b.columns[kb] < j { kb += 1 }
                let bv = (kb < endB && b.columns[kb] == j) ? b.values[kb] : S.zero
                let v = a.values[k] + ratio * (bv - a.values[k])
                if .zero < v { out.append(column: Int(j), value: v) }
            }
            out.endRow()
        }
        return out.build()
    }

    /// `mat_ema_sparse`: `alpha·new + (1 − alpha)·old` over the union of each row's entries,
    /// keeping positive results.
    static func exponentialMovingAverage<S: YumaScalar>(new: SparseMatrix<S>, old: SparseMatrix<S>, alpha: S) -> SparseMatrix<S> {
        let oneMinusAlpha = S.one - alpha
        var out = SparseMatrix<S>.Builder(n: new.n, capacity: max(new.nonZeroCount, old.nonZeroCount))
        for i in 0..<new.n {
            var kn = new.range(ofRow: i).lowerBound
            let en = new.range(ofRow: i).upperBound
            var ko = old.range(ofRow: i).lowerBound
            let eo = old.range(ofRow: i).upperBound
            while kn < en || ko < eo {
                let jn = kn < en ? new.columns[kn] : Int32.max
                let jo = ko < eo ? old.columns[ko] : Int32.max
                var v = S.zero
                let j: Int32
                if jn <= jo {
                    j = jn
                    v = v + alpha * new.values[kn]
                    kn += 1
                    if jo == jn {
                        v = v + oneMinusAlpha * old.values[ko]
                        ko += 1
                    }
                } else {
                    j = jo
                    v = v + oneMinusAlpha * old.values[ko]
                    ko += 1
                }
                if v > .zero { out.append(column: Int(j), value: v) }
            }
            out.endRow()
        }
        return out.build()
    }

    /// Yuma 3 with liquid alpha (`mat_ema_alpha_sparse` with `compute_liquid_alpha_values`):
    /// each cell moves toward the new weight with its own alpha, capped at 1. On the
    /// production path, a cell absent from the new row is deleted; the dense test path
    /// decays it instead (yuma.md 5.3).
    static func liquidAlphaEMA<S: YumaScalar>(
        new: SparseMatrix<S>, old: SparseMatrix<S>, consensus: [S], params p: YumaParameters, decayAbsent: Bool
    ) -> SparseMatrix<S> {
        let low = S(u16Proportion: p.alphaLow)
        let high = S(u16Proportion: p.alphaHigh)
        let steepness = S(signedInteger: p.alphaSigmoidSteepness).saturatingDiv(S(signedInteger: -100))
        let half = S.one.saturatingDiv(S(signedInteger: 2))
        // Cells with the same consensus gap share their alpha; with the default bonds
        // penalty (β = 1) every cell whose weight is at or above its bond has gap 0.
        var cachedGap = S.zero
        var cachedAlpha = alphaFromGap(.zero, low: low, high: high, steepness: steepness, half: half)
        var out = SparseMatrix<S>.Builder(n: new.n, capacity: max(new.nonZeroCount, old.nonZeroCount))
        for i in 0..<new.n {
            var kn = new.range(ofRow: i).lowerBound
            let en = new.range(ofRow: i).upperBound
            var ko = old.range(ofRow: i).lowerBound
            let eo = old.range(ofRow: i).upperBound
            while kn < en || ko < eo {
                let jn = kn < en ? new.columns[kn] : Int32.max
                let jo = ko < eo ? old.columns[ko] : Int32.max
                let j = min(jn, jo)
                let w = jn == j ? new.values[kn] : S.zero
                let b = jo == j ? old.values[ko] : S.zero
                let inNew = jn == j
                if jn == j { kn += 1 }
                if jo == j { ko += 1 }
                if !inNew && !decayAbsent { continue }
                let gap = consensusGap(consensus: consensus[Int(j)], weight: w, bond: b)
                if gap != cachedGap {
                    cachedGap = gap
                    cachedAlpha = alphaFromGap(gap, low: low, high: high, steepness: steepness, half: half)
                }
                let a = cachedAlpha
                let decayed = (S.one - a) * b
                var purchase = a * w
                if purchase < .zero { purchase = .zero }
                var v = decayed + purchase
                if v > .one { v = .one }
                if v > .zero { out.append(column: Int(j), value: v) }
            }
            out.endRow()
        }
        return out.build()
    }

    /// `alpha_sigmoid`: a large deviation from consensus (buying above it, or holding bonds
    /// above one's weight) moves the bond fast; an in-consensus cell moves at about alpha_low.
    @inlinable
    static func alphaSigmoid<S: YumaScalar>(consensus c: S, weight w: S, bond b: S, low: S, high: S, steepness: S, half: S) -> S {
        alphaFromGap(consensusGap(consensus: c, weight: w, bond: b), low: low, high: high, steepness: steepness, half: half)
    }

    /// The deviation that drives liquid alpha: buying above consensus, or holding bond above
    /// one's current weight.
    @inlinable
    static func consensusGap<S: YumaScalar>(consensus c: S, weight w: S, bond b: S) -> S {
        func clamp(_ x: S) -> S { x < .zero ? .zero : (x > .one ? .one : x) }
        return w >= b ? clamp(w - c) : clamp(b - w)
    }

    @inlinable
    static func alphaFromGap<S: YumaScalar>(_ d: S, low: S, high: S, steepness: S, half: S) -> S {
        func clamp(_ x: S, _ lo: S, _ hi: S) -> S { x < lo ? lo : (x > hi ? hi : x) }
        // sigmoid = 1 / (1 + e^(steepness · (d − ½))), all in the scalar's own arithmetic.
        let e = S.exponential(steepness * (d - half))
        let sigmoid = S.one.saturatingDiv(S.one + e)
        return clamp(low + sigmoid * (high - low), low, high)
    }
}
