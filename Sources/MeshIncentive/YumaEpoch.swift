
/// One Yuma Consensus epoch of one subnet, as subtensor's `epoch_mechanism` computes it
/// (yuma.md sections 4-8). Pure: no I/O, no chain types, time and stake come in as values.
///
/// Generic over ``YumaScalar``: `YumaEpoch.run(input, as: I32F32.self)` is bit-exact with
/// the chain; `as: Double.self` is the float64 analysis mode.
public enum YumaEpoch {
    /// Runs one epoch, in the code compiled for `S` (``YumaScalar/runEpoch(_:path:)``) even
    /// when the caller is itself generic over the scalar.
    public static func run<S: YumaScalar>(_ input: EpochInput, path: EpochPath = .sparse, as: S.Type = S.self) -> EpochOutput<S> {
        S.runEpoch(input, path: path)
    }

    /// The epoch's body; the conformances of ``I32F32`` and `Double` call it with the scalar
    /// known, so it is compiled (specialised) for each.
    static func compute<S: YumaScalar>(_ input: EpochInput, path: EpochPath, as: S.Type) -> EpochOutput<S> {
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

        // Step 5: weights with the masks, then row-normalised (`inplace_row_normalize`: each
        // row divided by its sum, rows summing to zero left as they are), in one pass.
        let keepOwnerDiagonal = sparsePath ? owner : nil
        let commitMask = sparsePath && input.commitRevealEnabled
        let rows = input.weights.n
        let weights: SparseMatrix<S> = input.weights.withBuffers { offs, cols, vals in
            input.blockAtRegistration.withUnsafeBufferPointer { registered in
                SparseMatrix<S>.assemble(n: rows, capacity: input.weights.nonZeroCount) { i, out in
                    guard permit[i] else { return }
                    let updated = input.lastUpdate[i]
                    let commit = commitMask ? input.commitBlock[i] : nil
                    let keepDiagonal = keepOwnerDiagonal == i
                    let rowStart = out.count
                    var sum = S.zero
                    for k in offs[i]..<offs[i + 1] {
                        let j = Int(cols[k])
                        if j == i && !keepDiagonal { continue }
                        let reg = registered[j]
                        if updated <= reg { continue }
                        if let c = commit, c < reg { continue }
                        let w = S(integer: UInt64(vals[k]))
                        sum = sum + w
                        out.append(cols[k], w)
                    }
                    if sum > .zero {
                        let rec = S.reciprocal(sum)
                        out.updateValues(from: rowStart) { $0 = S.divide($0, by: rec) }
                    }
                }
            }
        }

        // Step 6: consensus, the stake-weighted kappa-quantile of each column.
        let kappa = S(u16Proportion: p.kappa)
        let consensus = weightedMedianColumns(stake: activeStake, weights: weights, majority: kappa)

        // Step 7: clip weights above consensus (`col_clip_sparse`): an entry above its
        // column's consensus is lowered to it, or dropped (nil) when the consensus is zero.
        // The clipped matrix is only built where a step needs it as a matrix.
        @inline(__always) func clipped(_ v: S, column j: Int32) -> S? {
            let c = consensus[Int(j)]
            if c < v { return .zero < c ? c : nil }
            return v
        }

        // Steps 8 and 9: validator trust (row sums of the clipped weights) and incentive
        // (the active-stake-weighted column sums), in one pass.
        var validatorTrust = [S](repeating: .zero, count: rows)
        var incentive = [S](repeating: .zero, count: n)
        validatorTrust.withUnsafeMutableBufferPointer { trust in
            incentive.withUnsafeMutableBufferPointer { inc in
                weights.withBuffers { offs, cols, vals in
                    consensus.withUnsafeBufferPointer { cons in
                        for i in 0..<rows {
                            let a = activeStake[i]
                            var sum = S.zero
                            // Weights and consensus are non-negative, so an entry clipped away
                            // (consensus 0) adds the same as min(w, c) = 0: no branch on the data.
                            for k in offs[i]..<offs[i + 1] {
                                let j = Int(cols[k])
                                let v = vals[k]
                                let c = cons[j]
                                let x = c < v ? c : v
                                sum = sum + x
                                inc[j] = inc[j] + a * x
                            }
                            trust[i] = sum
                        }
                    }
                }
            }
        }
        normalize(&incentive)

        // Step 10: weights for bonds, `W + β (clipped − W)`. With β = 1 (the default) that is
        // the clipped matrix, which the Yuma 3 EMA reads through `clipped` on the fly.
        let beta = S(u16Proportion: p.bondsPenalty)
        let clipOnTheFly = beta == .one && p.yuma3
        let weightsForBonds: SparseMatrix<S>
        if beta == .zero || clipOnTheFly {
            weightsForBonds = weights
        } else {
            weightsForBonds = interpolate(weights, clip(weights, to: consensus), ratio: beta)
        }

        // Step 11: bonds and dividends.
        let recentlyRegistered = input.blockAtRegistration.map { lastTempo <= $0 }
        let alpha = S.emaAlpha(bondsMovingAverage: p.bondsMovingAverage)
        var dividends = [S](repeating: .zero, count: n)
        // The bonds to store, as scalars before the u16 conversion.
        let finalBonds: SparseMatrix<S>
        if p.yuma3 {
            // Old bonds in the scalar, fresh registrations' columns dropped, read on the fly.
            let oldBond: (Int32, UInt16) -> S? = { j, b in recentlyRegistered[Int(j)] ? nil : S(u16Proportion: b) }
            let newWeight: (Int32, S) -> S? = { j, w in clipOnTheFly ? clipped(w, column: j) : w }
            let ema: SparseMatrix<S>
            if p.liquidAlpha && consensus.contains(where: { $0 != .zero }) {
                if sparsePath {
                    ema = liquidAlphaEMAOnNewPattern(new: weightsForBonds, clip: clipOnTheFly, old: input.bonds,
                                                     dropOld: recentlyRegistered, consensus: consensus, params: p)
                } else {
                    ema = liquidAlphaEMA(new: weightsForBonds, newValue: newWeight, old: input.bonds, oldValue: oldBond,
                                         consensus: consensus, params: p, decayAbsent: true)
                }
            } else {
                ema = exponentialMovingAverage(new: weightsForBonds, newValue: newWeight, old: input.bonds, oldValue: oldBond, alpha: alpha)
            }
            // Dividends through the column-normalised bonds, each value divided as
            // `columnNormalize` would, without a normalised copy.
            let reciprocals = columnSums(ema).map { S.reciprocal($0) }
            dividends.withUnsafeMutableBufferPointer { div in
                incentive.withUnsafeBufferPointer { inc in
                    reciprocals.withUnsafeBufferPointer { rec in
                        ema.forEachEntry { i, j, v in div[i] = div[i] + S.divide(v, by: rec[Int(j)]) * inc[Int(j)] }
                    }
                }
                for i in 0..<n { div[i] = div[i] * activeStake[i] }
            }
            normalize(&dividends)
            finalBonds = ema
        } else {
            var oldBonds = input.bonds.compactMap { _, j, b in recentlyRegistered[Int(j)] ? nil : S(integer: UInt64(b)) }
            columnNormalize(&oldBonds)
            var delta = weightsForBonds
            delta.updateValues { i, _, v in v = v * activeStake[i] }
            columnNormalize(&delta)
            var ema = exponentialMovingAverage(new: delta, newValue: { _, w in w }, old: oldBonds, oldValue: { _, b in b }, alpha: alpha)
            columnNormalize(&ema)
            dividends.withUnsafeMutableBufferPointer { div in
                ema.forEachEntry { i, j, v in div[i] = div[i] + incentive[Int(j)] * v }
            }
            normalize(&dividends)
            columnMaxUpscale(&ema)
            finalBonds = ema
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
        finalBonds.withBuffers { offs, cols, vals in
            for i in 0..<n {
                if newPermit[i] {
                    let r = i < finalBonds.n ? offs[i]..<offs[i + 1] : 0..<0
                    newBonds[i] = [(Int, UInt16)](unsafeUninitializedCapacity: r.count) { row, count in
                        // Zero bonds are dropped on the production path (a trivial slot is
                        // simply overwritten by the next entry).
                        var c = 0
                        for k in r {
                            let b = vals[k].u16Proportion
                            (row.baseAddress! + c).initialize(to: (Int(cols[k]), b))
                            c += (b > 0 || !sparsePath) ? 1 : 0
                        }
                        count = c
                    }
                } else if sparsePath || permit[i] {
                    newBonds[i] = []
                }
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

    static func columnSums<S: YumaScalar>(_ m: SparseMatrix<S>) -> [S] {
        var sums = [S](repeating: .zero, count: m.n)
        sums.withUnsafeMutableBufferPointer { out in
            m.forEachEntry { _, j, v in out[Int(j)] = out[Int(j)] + v }
        }
        return sums
    }

    static func columnNormalize<S: YumaScalar>(_ m: inout SparseMatrix<S>) {
        let reciprocals = columnSums(m).map { S.reciprocal($0) }
        reciprocals.withUnsafeBufferPointer { rec in
            m.updateValues { _, j, v in v = S.divide(v, by: rec[Int(j)]) }
        }
    }

    static func columnMaxUpscale<S: YumaScalar>(_ m: inout SparseMatrix<S>) {
        var maxima = [S](repeating: .zero, count: m.n)
        maxima.withUnsafeMutableBufferPointer { mx in
            m.forEachEntry { _, j, v in if v > mx[Int(j)] { mx[Int(j)] = v } }
        }
        let reciprocals = maxima.map { S.reciprocal($0) }
        reciprocals.withUnsafeBufferPointer { rec in
            m.updateValues { _, j, v in v = S.divide(v, by: rec[Int(j)]) }
        }
    }

    static func rowSums<S: YumaScalar>(_ m: SparseMatrix<S>) -> [S] {
        var sums = [S](repeating: .zero, count: m.n)
        sums.withUnsafeMutableBufferPointer { out in
            m.forEachEntry { i, _, v in out[i] = out[i] + v }
        }
        return sums
    }

    /// `col_clip_sparse`: entries above the column's consensus are lowered to it, or dropped
    /// when the consensus is zero.
    static func clip<S: YumaScalar>(_ m: SparseMatrix<S>, to threshold: [S]) -> SparseMatrix<S> {
        threshold.withUnsafeBufferPointer { th in
            m.compactMap { _, j, v -> S? in
                let c = th[Int(j)]
                if c < v { return .zero < c ? c : nil }
                return v
            }
        }
    }

    /// `interpolate_sparse`: `a + ratio (b - a)`, keeping positive entries. `b`'s pattern
    /// is a subset of `a`'s (it is the clipped `a`).
    static func interpolate<S: YumaScalar>(_ a: SparseMatrix<S>, _ b: SparseMatrix<S>, ratio: S) -> SparseMatrix<S> {
        if ratio == .zero { return a }
        if ratio == .one { return b }
        return SparseMatrix<S>.mergeRows(a, b) { _, av, bv -> S? in
            guard let av else { return nil }
            let v = av + ratio * ((bv ?? .zero) - av)
            return .zero < v ? v : nil
        }
    }

    /// `mat_ema_sparse`: `alpha·new + (1 − alpha)·old` over the union of each row's entries,
    /// keeping positive results.
    /// `new` and `old` are read through `newValue` and `oldValue` (nil: the entry counts as absent).
    static func exponentialMovingAverage<S: YumaScalar, B>(
        new: SparseMatrix<S>, newValue: (Int32, S) -> S?, old: SparseMatrix<B>, oldValue: (Int32, B) -> S?, alpha: S
    ) -> SparseMatrix<S> {
        let oneMinusAlpha = S.one - alpha
        return SparseMatrix<S>.mergeRows(new, old) { j, given, stored -> S? in
            let w = given.flatMap { newValue(j, $0) }
            let b = stored.flatMap { oldValue(j, $0) }
            var v = S.zero
            if let w { v = v + alpha * w }
            if let b { v = v + oneMinusAlpha * b }
            return v > .zero ? v : nil
        }
    }

    /// Yuma 3 with liquid alpha (`mat_ema_alpha_sparse` with `compute_liquid_alpha_values`):
    /// each cell moves toward the new weight with its own alpha, capped at 1. On the
    /// production path, a cell absent from the new row is deleted; the dense test path
    /// decays it instead (yuma.md 5.3).
    static func liquidAlphaEMA<S: YumaScalar, B>(
        new: SparseMatrix<S>, newValue: (Int32, S) -> S?, old: SparseMatrix<B>, oldValue: (Int32, B) -> S?, consensus: [S],
        params p: YumaParameters, decayAbsent: Bool
    ) -> SparseMatrix<S> {
        let low = S(u16Proportion: p.alphaLow)
        let high = S(u16Proportion: p.alphaHigh)
        let steepness = S(signedInteger: p.alphaSigmoidSteepness).saturatingDiv(S(signedInteger: -100))
        let half = S.one.saturatingDiv(S(signedInteger: 2))
        // Cells with the same consensus gap share their alpha. With the default bonds penalty
        // (β = 1) every cell whose weight is at or above its bond has gap 0, so that alpha is
        // kept apart from the last other gap's.
        let alphaAtZero = alphaFromGap(.zero, low: low, high: high, steepness: steepness, half: half)
        var cachedGap = S.zero
        var cachedAlpha = alphaAtZero
        return consensus.withUnsafeBufferPointer { cons in
            SparseMatrix<S>.mergeRows(new, old) { j, given, stored -> S? in
                let wNew = given.flatMap { newValue(j, $0) }
                let bOld = stored.flatMap { oldValue(j, $0) }
                if wNew == nil && (bOld == nil || !decayAbsent) { return nil }
                let w = wNew ?? .zero
                let b = bOld ?? .zero
                let gap = consensusGap(consensus: cons[Int(j)], weight: w, bond: b)
                let a: S
                if gap == .zero {
                    a = alphaAtZero
                } else {
                    if gap != cachedGap {
                        cachedGap = gap
                        cachedAlpha = alphaFromGap(gap, low: low, high: high, steepness: steepness, half: half)
                    }
                    a = cachedAlpha
                }
                let decayed = (S.one - a) * b
                var purchase = a * w
                if purchase < .zero { purchase = .zero }
                var v = decayed + purchase
                if v > .one { v = .one }
                return v > .zero ? v : nil
            }
        }
    }

    /// ``liquidAlphaEMA(new:newValue:old:oldValue:consensus:params:decayAbsent:)`` on the
    /// production path, where a cell absent from the new row is deleted, so the result has
    /// the new row's pattern: the old row (u16, `dropOld` columns reset) is scattered into a
    /// dense scratch row and the new row walked in order, with no merge. With `clip`, the new
    /// values are the weights clipped to consensus (entries clipped away are absent).
    static func liquidAlphaEMAOnNewPattern<S: YumaScalar>(
        new: SparseMatrix<S>, clip: Bool, old: SparseMatrix<UInt16>, dropOld: [Bool], consensus: [S], params p: YumaParameters
    ) -> SparseMatrix<S> {
        let low = S(u16Proportion: p.alphaLow)
        let high = S(u16Proportion: p.alphaHigh)
        let steepness = S(signedInteger: p.alphaSigmoidSteepness).saturatingDiv(S(signedInteger: -100))
        let half = S.one.saturatingDiv(S(signedInteger: 2))
        let alphaAtZero = alphaFromGap(.zero, low: low, high: high, steepness: steepness, half: half)
        var cachedGap = S.zero
        var cachedAlpha = alphaAtZero
        var scratch = [S](repeating: .zero, count: max(new.n, consensus.count))
        return scratch.withUnsafeMutableBufferPointer { bond in
            consensus.withUnsafeBufferPointer { cons in
                dropOld.withUnsafeBufferPointer { drop in
                    old.withBuffers { oo, oc, ov in
                        new.withBuffers { no, nc, nv in
                            SparseMatrix<S>.assemble(n: new.n, capacity: new.nonZeroCount) { i, out in
                                let oldRow = i < old.n ? oo[i]..<oo[i + 1] : 0..<0
                                for k in oldRow {
                                    let j = Int(oc[k])
                                    bond[j] = drop[j] ? .zero : S(u16Proportion: ov[k])
                                }
                                for k in no[i]..<no[i + 1] {
                                    let column = nc[k]
                                    let j = Int(column)
                                    var w = nv[k]
                                    if clip {
                                        let c = cons[j]
                                        if c < w {
                                            guard .zero < c else { continue }
                                            w = c
                                        }
                                    }
                                    let b = bond[j]
                                    let gap = consensusGap(consensus: cons[j], weight: w, bond: b)
                                    let a: S
                                    if gap == .zero {
                                        a = alphaAtZero
                                    } else {
                                        if gap != cachedGap {
                                            cachedGap = gap
                                            cachedAlpha = alphaFromGap(gap, low: low, high: high, steepness: steepness, half: half)
                                        }
                                        a = cachedAlpha
                                    }
                                    let decayed = (S.one - a) * b
                                    var purchase = a * w
                                    purchase = purchase < .zero ? .zero : purchase
                                    var v = decayed + purchase
                                    v = v > .one ? .one : v
                                    out.append(column, v, if: v > .zero)
                                }
                                for k in oldRow { bond[Int(oc[k])] = .zero }
                            }
                        }
                    }
                }
            }
        }
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
