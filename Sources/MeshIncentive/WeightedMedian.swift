extension YumaEpoch {
    /// Consensus per column: the smallest weight level c with
    /// Σ_{i: W_ij ≤ c} s_i > Σ s − κ over the validators with positive active stake
    /// (stakes renormalised among them), absent entries counting as 0; when no level
    /// qualifies, the largest level. This is exactly what subtensor's partition search
    /// (`weighted_median_col_sparse`) returns, computed here per column in O(k log k)
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

        // Transpose the positive entries of the stake-holding rows into per-column lists.
        var counts = [Int](repeating: 0, count: n + 1)
        for i in 0..<min(weights.n, stake.count) where rowIndex[i] >= 0 {
            for k in weights.range(ofRow: i) where weights.values[k] > .zero {
                counts[Int(weights.columns[k]) + 1] += 1
            }
        }
        for j in 0..<n { counts[j + 1] += counts[j] }
        var fill = counts
        var colValue = [S](repeating: .zero, count: counts[n])
        var colStake = [S](repeating: .zero, count: counts[n])
        for i in 0..<min(weights.n, stake.count) where rowIndex[i] >= 0 {
            let s = useStake[rowIndex[i]]
            for k in weights.range(ofRow: i) where weights.values[k] > .zero {
                let j = Int(weights.columns[k])
                colValue[fill[j]] = weights.values[k]
                colStake[fill[j]] = s
                fill[j] += 1
            }
        }

        for j in 0..<n {
            let lo = counts[j]
            let hi = counts[j + 1]
            var positiveMass = S.zero
            for k in lo..<hi { positiveMass = positiveMass + colStake[k] }
            let hasZero = hi - lo < positiveRows
            let zeroMass = stakeSum - positiveMass
            if hasZero && zeroMass > minority {
                consensus[j] = .zero
                continue
            }
            if hi == lo { continue }
            consensus[j] = quantileSelect(values: &colValue, stakes: &colStake, lo: lo, hi: hi, below: zeroMass, minority: minority)
        }
        return consensus
    }

    /// The smallest value p in values[lo..<hi] with below + Σ_{v ≤ p} stake > minority, or
    /// the largest value when none qualifies. Expected linear time: three-way partitions
    /// around a middle pivot, keeping only the side that holds the answer (in place).
    @inlinable
    static func quantileSelect<S: YumaScalar>(values: inout [S], stakes: inout [S], lo: Int, hi: Int, below: S, minority: S) -> S {
        var l = lo
        var h = hi
        var acc = below
        while true {
            let pivot = values[l + (h - l) / 2]
            var lt = l
            var i = l
            var gt = h
            var sLess = S.zero
            var sEqual = S.zero
            while i < gt {
                let v = values[i]
                if v < pivot {
                    values.swapAt(lt, i)
                    stakes.swapAt(lt, i)
                    sLess = sLess + stakes[lt]
                    lt += 1
                    i += 1
                } else if pivot < v {
                    gt -= 1
                    values.swapAt(i, gt)
                    stakes.swapAt(i, gt)
                } else {
                    sEqual = sEqual + stakes[i]
                    i += 1
                }
            }
            if acc + sLess > minority {
                if lt == l { return pivot }
                h = lt
            } else if acc + sLess + sEqual > minority {
                return pivot
            } else {
                if gt == h { return pivot }
                acc = acc + sLess + sEqual
                l = gt
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
