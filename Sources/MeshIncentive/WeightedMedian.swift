extension YumaEpoch {
    /// Consensus per column: the smallest weight level c with
    /// Σ_{i: W_ij ≤ c} s_i > Σ s − κ over the validators with positive active stake
    /// (stakes renormalised among them), absent entries counting as 0; when no level
    /// qualifies, the largest level. This is exactly what subtensor's partition search
    /// (`weighted_median_col_sparse`) returns, computed here per column in expected O(k)
    /// of the column's non-zero entries instead of a dense n x validators table.
    static func weightedMedianColumns<S: YumaScalar>(stake: [S], weights: SparseMatrix<S>, majority: S) -> [S] {
        let n = weights.n
        var useStake: [S] = []
        var rowIndex = [Int](repeating: -1, count: stake.count)
        for (i, s) in stake.enumerated() where s > .zero {
            rowIndex[i] = useStake.count
            useStake.append(s)
        }
        var consensus = [S](repeating: .zero, count: n)
        if useStake.isEmpty { return consensus }
        normalize(&useStake)
        var stakeSum = S.zero
        for s in useStake { stakeSum = stakeSum + s }
        let minority = stakeSum - majority
        let positiveRows = useStake.count
        let rows = min(weights.n, stake.count)

        // Pass 1: each column's positive entries and their stake. A column weighted by too
        // little stake has consensus 0 whatever the values (absent entries count as 0), so
        // only the others are gathered and searched: on a live subnet that is the popular
        // head, not the long tail.
        var entries = [Int](repeating: 0, count: n)
        var positiveMass = [S](repeating: .zero, count: n)
        entries.withUnsafeMutableBufferPointer { cnt in
            positiveMass.withUnsafeMutableBufferPointer { mass in
                weights.columns.withUnsafeBufferPointer { cols in
                    weights.values.withUnsafeBufferPointer { vals in
                        for i in 0..<rows where rowIndex[i] >= 0 {
                            let s = useStake[rowIndex[i]]
                            for k in weights.range(ofRow: i) where vals[k] > .zero {
                                let j = Int(cols[k])
                                cnt[j] += 1
                                mass[j] = mass[j] + s
                            }
                        }
                    }
                }
            }
        }
        // Offsets of the searched columns' lists; 0 entries for the others.
        var start = [Int](repeating: 0, count: n + 1)
        var searched = [Bool](repeating: false, count: n)
        for j in 0..<n {
            let hasZero = entries[j] < positiveRows
            let zeroMass = stakeSum - positiveMass[j]
            searched[j] = entries[j] > 0 && !(hasZero && zeroMass > minority)
            start[j + 1] = start[j] + (searched[j] ? entries[j] : 0)
        }
        let total = start[n]
        if total == 0 { return consensus }

        // Pass 2: gather the searched columns' (value, stake) pairs, side by side so that a
        // scattered write touches one cache line. An entry of another column (or a zero) is
        // written to a spare slot at the end instead of being branched around.
        var column = [WeightedValue<S>](repeating: WeightedValue(value: .zero, stake: .zero), count: total + 1)
        var fill = start
        column.withUnsafeMutableBufferPointer { col in
            fill.withUnsafeMutableBufferPointer { f in
                searched.withUnsafeBufferPointer { wanted in
                    weights.withBuffers { _, cols, vals in
                        for i in 0..<rows where rowIndex[i] >= 0 {
                            let s = useStake[rowIndex[i]]
                            for k in weights.range(ofRow: i) {
                                let j = Int(cols[k])
                                let v = vals[k]
                                let keep = (v > .zero) && wanted[j]
                                let d = keep ? f[j] : total
                                col[d] = WeightedValue(value: v, stake: s)
                                f[j] += keep ? 1 : 0
                            }
                        }
                    }
                }
            }
            // Pass 3: the quantile of each searched column.
            for j in 0..<n where start[j + 1] > start[j] {
                consensus[j] = quantileSelect(col, lo: start[j], hi: start[j + 1], below: stakeSum - positiveMass[j], minority: minority)
            }
        }
        return consensus
    }

    /// The smallest value p in entries[lo..<hi] with below + Σ_{value ≤ p} stake > minority,
    /// or the largest value when none qualifies. Expected linear time: partitions around a
    /// middle pivot, keeping only the side that holds the answer (in place). The partitions
    /// are branch-free (Lomuto with unconditional swaps), as the comparisons are data.
    static func quantileSelect<S: YumaScalar>(
        _ entries: UnsafeMutableBufferPointer<WeightedValue<S>>, lo: Int, hi: Int, below: S, minority: S
    ) -> S {
        var l = lo
        var h = hi
        var acc = below
        while true {
            let pivot = entries[l + (h - l) / 2].value
            // Values below the pivot to the front; their stake, and the pivot value's own.
            var lt = l
            var sLess = S.zero
            var sEqual = S.zero
            for i in l..<h {
                let e = entries[i]
                let less = e.value < pivot
                entries[i] = entries[lt]
                entries[lt] = e
                sLess = sLess + (less ? e.stake : .zero)
                sEqual = sEqual + (e.value == pivot ? e.stake : .zero)
                lt += less ? 1 : 0
            }
            if acc + sLess > minority {
                if lt == l { return pivot }
                h = lt
            } else if acc + sLess + sEqual > minority {
                return pivot
            } else {
                // The answer is above the pivot: move its equals out of the way first.
                var le = lt
                for i in lt..<h {
                    let e = entries[i]
                    let equal = e.value == pivot
                    entries[i] = entries[le]
                    entries[le] = e
                    le += equal ? 1 : 0
                }
                if le == h { return pivot }
                acc = acc + sLess + sEqual
                l = le
            }
        }
    }

    /// The chain's recursive partition search (`math.rs::weighted_median`), kept for the
    /// unit cases that call it directly and as an oracle for the column version.
    public static func weightedMedian<S: YumaScalar>(
        stake: [S], score: [S], partition: [Int], minority: S, low: S, high: S
    ) -> S {
        let n = partition.count
        if n == 0 { return .zero }
        if n == 1 { return score[partition[0]] }
        let pivot = score[partition[n / 2]]
        var loStake = S.zero
        var hiStake = S.zero
        var lower: [Int] = []
        var upper: [Int] = []
        for idx in partition {
            if score[idx] == pivot { continue }
            if score[idx] < pivot {
                loStake = loStake + stake[idx]
                lower.append(idx)
            } else {
                hiStake = hiStake + stake[idx]
                upper.append(idx)
            }
        }
        if low + loStake <= minority && minority < high - hiStake {
            return pivot
        } else if minority < low + loStake && !lower.isEmpty {
            return weightedMedian(stake: stake, score: score, partition: lower, minority: minority, low: low, high: low + loStake)
        } else if high - hiStake <= minority && !upper.isEmpty {
            return weightedMedian(stake: stake, score: score, partition: upper, minority: minority, low: high - hiStake, high: high)
        }
        return pivot
    }

    /// The dense column median (`math.rs::weighted_median_col`), used by the unit cases.
    public static func weightedMedianColumnsDense<S: YumaScalar>(stake: [S], score: [[S]], majority: S) -> [S] {
        guard let columns = score.first?.count else { return [] }
        var median = [S](repeating: .zero, count: columns)
        for c in 0..<columns {
            var useStake: [S] = []
            var useScore: [S] = []
            for r in 0..<stake.count where stake[r] > .zero {
                useStake.append(stake[r])
                useScore.append(score[r][c])
            }
            if useStake.isEmpty { continue }
            normalize(&useStake)
            var sum = S.zero
            for s in useStake { sum = sum + s }
            median[c] = weightedMedian(stake: useStake, score: useScore, partition: Array(useStake.indices),
                                       minority: sum - majority, low: .zero, high: sum)
        }
        return median
    }
}

/// A weight and the stake behind it, as the column median gathers them.
struct WeightedValue<S: YumaScalar> {
    var value: S
    var stake: S
}
