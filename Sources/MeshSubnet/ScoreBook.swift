import Foundation

/// A validator's running scores of miners: a moving average per uid, reset when a uid changes
/// hands (a new hotkey registered in its place). Pure; the validator loop feeds it.
///
/// Two averages:
/// - ``Averaging/arithmetic``: an exponential moving average of the round scores, from 0 (a
///   newcomer ramps up). A round that went unusually well weighs as much as it scores, so where
///   round scores are noisy and heavy-tailed the average follows lucky rounds.
/// - ``Averaging/geometric(floor:)``: an exponential moving average of the logarithm of each
///   round's score (floored at `floor`), then exponentiated and multiplied by the same ramp an
///   arithmetic average from 0 has. A miner's standing is then its typical round, not its lucky
///   ones: markets whose scores are ratios (an error relative to the round's best) rank miners
///   by their usual ratio. Miners that started together share the ramp, so their weights are
///   in proportion from the first round; a newcomer ramps up as with the arithmetic average.
public struct ScoreBook: Sendable, Equatable, Codable {
    /// How round scores are averaged.
    public enum Averaging: Sendable, Equatable, Codable {
        case arithmetic
        /// Averages log(max(score, floor)); `floor` in (0, 1) is what a round with no usable
        /// answer counts as.
        case geometric(floor: Double)
    }

    /// Weight of the newest score in the average.
    public var alpha: Double
    public let averaging: Averaging
    public private(set) var scores: [UInt16: Double] = [:]
    var owners: [UInt16: [UInt8]] = [:]
    /// Geometric averaging: per uid the average of log(score) so far (each round weighted as the
    /// moving average weighs it, normalised) and the ramp, 1 - (1 - alpha)^rounds.
    var logMeans: [UInt16: Double] = [:]
    var ramps: [UInt16: Double] = [:]

    public init(alpha: Double = 0.1, averaging: Averaging = .arithmetic) {
        self.alpha = alpha
        self.averaging = averaging
    }

    enum CodingKeys: String, CodingKey { case alpha, averaging, scores, owners, logMeans, ramps }

    /// Reads a saved book; files written before geometric averaging existed are arithmetic.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.alpha = try c.decode(Double.self, forKey: .alpha)
        self.averaging = try c.decodeIfPresent(Averaging.self, forKey: .averaging) ?? .arithmetic
        self.scores = try c.decode([UInt16: Double].self, forKey: .scores)
        self.owners = try c.decode([UInt16: [UInt8]].self, forKey: .owners)
        self.logMeans = try c.decodeIfPresent([UInt16: Double].self, forKey: .logMeans) ?? [:]
        self.ramps = try c.decodeIfPresent([UInt16: Double].self, forKey: .ramps) ?? [:]
    }

    /// Whether the book is one a validator could have written: alpha in (0, 1], every score
    /// in [0, 1] with its owner's 32-byte hotkey, and for geometric averaging a floor in (0, 1)
    /// and each uid's log-average and ramp in range and agreeing with its score (a restored
    /// file is checked with this).
    public var isValid: Bool {
        guard self.alpha > 0 && self.alpha <= 1 && self.scores.count <= 65_536
            && self.scores.allSatisfy({ $0.value >= 0 && $0.value <= 1 && self.owners[$0.key]?.count == 32 }) else { return false }
        switch self.averaging {
        case .arithmetic:
            return self.logMeans.isEmpty && self.ramps.isEmpty
        case .geometric(let floor):
            guard floor > 0 && floor < 1, self.logMeans.count == self.scores.count, self.ramps.count == self.scores.count else { return false }
            let lowest = Foundation.log(floor)
            return self.scores.allSatisfy { uid, score in
                guard let m = self.logMeans[uid], let r = self.ramps[uid], m >= lowest - 1e-9, m <= 0, r > 0, r <= 1 else { return false }
                return abs(Foundation.exp(m) * r - score) <= 1e-9
            }
        }
    }

    /// Folds one score (clamped to [0, 1]; NaN is 0) for `uid`, currently held by `hotkey`.
    public mutating func update(uid: UInt16, hotkey: [UInt8], score: Double) {
        let s = score.isFinite ? min(1, max(0, score)) : 0
        if self.owners[uid] != hotkey {
            self.owners[uid] = hotkey
            self.forget(uid)
        }
        switch self.averaging {
        case .arithmetic:
            self.scores[uid] = (self.scores[uid] ?? 0) * (1 - self.alpha) + s * self.alpha
        case .geometric(let floor):
            let ramp = self.ramps[uid] ?? 0
            let newRamp = ramp * (1 - self.alpha) + self.alpha
            let mean = ((self.logMeans[uid] ?? 0) * ramp * (1 - self.alpha) + Foundation.log(max(s, floor)) * self.alpha) / newRamp
            self.ramps[uid] = newRamp
            self.logMeans[uid] = mean
            self.scores[uid] = Foundation.exp(mean) * newRamp
        }
    }

    mutating func forget(_ uid: UInt16) {
        self.scores[uid] = nil
        self.logMeans[uid] = nil
        self.ramps[uid] = nil
    }

    /// Forgets uids at or above `n` (the subnet shrank) and uids whose hotkey changed.
    public mutating func prune(n: Int, hotkeys: [[UInt8]]) {
        for uid in Array(self.scores.keys) where Int(uid) >= n || (Int(uid) < hotkeys.count && self.owners[uid] != hotkeys[Int(uid)]) {
            self.forget(uid)
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
