/// A validator's running scores of miners: an exponential moving average per uid, reset when
/// a uid changes hands (a new hotkey registered in its place). Pure; the validator loop feeds it.
public struct ScoreBook: Sendable, Equatable, Codable {
    /// Weight of the newest score in the average.
    public var alpha: Double
    public private(set) var scores: [UInt16: Double] = [:]
    var owners: [UInt16: [UInt8]] = [:]

    public init(alpha: Double = 0.1) { self.alpha = alpha }

    /// Whether the book is one a validator could have written: alpha in (0, 1], every score
    /// in [0, 1] with its owner's 32-byte hotkey (a restored file is checked with this).
    public var isValid: Bool {
        self.alpha > 0 && self.alpha <= 1 && self.scores.count <= 65_536
            && self.scores.allSatisfy { $0.value >= 0 && $0.value <= 1 && self.owners[$0.key]?.count == 32 }
    }

    /// Folds one score (clamped to [0, 1]) for `uid`, currently held by `hotkey`.
    public mutating func update(uid: UInt16, hotkey: [UInt8], score: Double) {
        let s = score.isFinite ? min(1, max(0, score)) : 0
        if self.owners[uid] != hotkey {
            self.owners[uid] = hotkey
            self.scores[uid] = nil
        }
        self.scores[uid] = (self.scores[uid] ?? 0) * (1 - self.alpha) + s * self.alpha
    }

    /// Forgets uids at or above `n` (the subnet shrank) and uids whose hotkey changed.
    public mutating func prune(n: Int, hotkeys: [[UInt8]]) {
        for uid in Array(self.scores.keys) where Int(uid) >= n || (Int(uid) < hotkeys.count && self.owners[uid] != hotkeys[Int(uid)]) {
            self.scores[uid] = nil
            self.owners[uid] = nil
        }
    }

    /// The weights to set: uids and u16 values (largest 65535) within the subnet's rules:
    /// no single share above `maxWeightsLimit`/65535 of the total, at least `minAllowedWeights`
    /// non-zero entries (padded with the smallest weight among uids `0..<n` when needed).
    public func weights(n: Int, maxWeightsLimit: UInt64 = 65535, minAllowedWeights: Int = 1, exclude: UInt16? = nil) -> (uids: [UInt16], values: [UInt16]) {
        var entries = self.scores.filter { Int($0.key) < n && $0.value > 0 && $0.key != exclude }.sorted { $0.key < $1.key }
        if entries.isEmpty { return ([], []) }
        // Pad to the minimum count with a token weight.
        if entries.count < minAllowedWeights {
            let floor = (entries.map { $0.value }.min() ?? 1) * 0.01
            var present = Set(entries.map { $0.key })
            for uid in 0..<UInt16(clamping: n) where entries.count < minAllowedWeights && !present.contains(uid) && uid != exclude {
                entries.append((key: uid, value: floor))
                present.insert(uid)
            }
            entries.sort { $0.key < $1.key }
        }
        var w = entries.map { $0.value }
        let cap = Double(maxWeightsLimit) / 65535
        if cap < 1 && Double(w.count) * cap >= 1 {
            // Water-fill: clip shares above the cap and spread the excess over the rest.
            for _ in 0..<64 {
                let total = w.reduce(0, +)
                var clipped = false
                var free = 0.0
                for i in w.indices where w[i] / total > cap {
                    free += w[i] - cap * total
                    w[i] = cap * total * 0.999
                    clipped = true
                }
                if !clipped { break }
                let under = w.indices.filter { w[$0] / total < cap * 0.999 }
                let base = under.reduce(0.0) { $0 + w[$1] }
                if base > 0 { for i in under { w[i] += free * w[i] / base } }
            }
        }
        let top = w.max()!
        let values = w.map { UInt16(clamping: Int(($0 / top * 65535).rounded(.down))) }
        let kept = zip(entries.map { $0.key }, values).filter { $0.1 > 0 }
        return (kept.map { $0.0 }, kept.map { $0.1 })
    }
}
