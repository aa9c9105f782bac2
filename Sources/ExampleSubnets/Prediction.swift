import Foundation
import MeshSubnet

/// The intelligence market: miners forecast a seasonal series that depends on a covariate
/// whose future is published (think demand against a weather forecast), with regime changes
/// (level, seasonal amplitude and phase, the covariate's effect) at random times and
/// autocorrelated noise. Validators generate the series privately, so they know the truth of
/// each forecast at once, and score each answer relative to the round: the best mean squared
/// error among the answers and the validator's own reference model, divided by the miner's
/// (1 for the best, near 0 for a forecast many times worse). The validator averages these
/// ratios geometrically (``validatorAveraging``): a miner's standing is its typical ratio, not
/// its lucky rounds, so incentive follows the quality order epoch after epoch. Rules that
/// ignore what they are given earn little: on the offline evaluation (`tmsubnet predict
/// evaluate`), all zeros earn under 0.1 % of the incentive, "repeat the last value" about 3 %,
/// seasonal-naive about 12 % and a fitted model the rest.
public enum Prediction {
    /// The query: the series' recent history, the covariate over that history and the
    /// horizon, the season's length, and how many steps ahead to forecast.
    public struct Forecast: Synapse {
        public static let name = "forecast"
        public static let policy = AnswerPolicy.aggregate
        public static var example: Forecast? {
            var s = Series(seed: 7)
            return s.request(historyLength: 48, horizon: 4).0
        }
        public var history: [Double]
        /// Known covariate values: one per history value, then one per step of the horizon.
        public var covariate: [Double]
        public var period: Int
        public var horizon: Int
        public init(history: [Double], covariate: [Double], period: Int, horizon: Int) {
            self.history = history
            self.covariate = covariate
            self.period = period
            self.horizon = horizon
        }
        public struct Response: Codable, Sendable, Equatable {
            public var prediction: [Double]
            public init(prediction: [Double]) { self.prediction = prediction }
        }
    }

    public static let maxHistory = 1024
    public static let maxHorizon = 16
    public static let periods = 2...256

    /// Checks a request's shape (it is hostile input): sizes, finiteness, the covariate's length.
    public static func validate(_ req: Forecast) throws {
        guard (1...maxHorizon).contains(req.horizon), (1...maxHistory).contains(req.history.count), periods.contains(req.period),
              req.covariate.count == req.history.count + req.horizon,
              req.history.allSatisfy({ $0.isFinite && abs($0) < 1e9 }), req.covariate.allSatisfy({ $0.isFinite && abs($0) < 1e9 }) else {
            throw SubnetError("""
                horizon must be 1...\(maxHorizon), history 1...\(maxHistory) finite values, period \(periods), \
                and the covariate one value per history value and horizon step
                """)
        }
    }

    // MARK: The series (validator side)

    /// The validator's private series, deterministic for a seed.
    public struct Series: Sendable {
        public let period: Int
        public private(set) var values: [Double] = []
        public private(set) var covariate: [Double] = []
        /// Index (in the whole series) of `values[0]`: old values are dropped.
        public private(set) var offset = 0
        var rng: Xorshift
        var level = 0.0, amplitude = 8.0, phase = 0.0, beta = 1.0
        var noise = 0.0, c = 0.0
        var regimeLeft = 0

        public init(seed: UInt64, period: Int = 24, warmUp: Int = 200) {
            self.period = period
            self.rng = Xorshift(seed: seed)
            for _ in 0..<warmUp { self.advance() }
        }

        /// Appends the next value (and its covariate).
        public mutating func advance() {
            if self.regimeLeft <= 0 {
                // A new regime moves the level, the season and the covariate's effect from
                // where they were (a shift a model must follow, not a new series).
                let first = self.values.isEmpty && self.offset == 0
                self.regimeLeft = 300 + Int(self.rng.uniform() * 400)
                self.level = first ? 40 + 8 * self.rng.gaussian() : min(60, max(25, self.level + 6 * self.rng.gaussian()))
                self.amplitude = first ? 6 + 4 * self.rng.uniform() : min(11, max(5, self.amplitude + 1.5 * self.rng.gaussian()))
                self.phase = first ? 2 * .pi * self.rng.uniform() : self.phase + 0.6 * self.rng.gaussian()
                self.beta = (0.5 + self.rng.uniform()) * (self.rng.uniform() < 0.5 ? -1 : 1)
            }
            self.regimeLeft -= 1
            self.c = 0.9 * self.c + self.rng.gaussian()
            self.noise = 0.5 * self.noise + 0.8 * self.rng.gaussian()
            let t = Double(self.offset + self.values.count)
            let x = self.level + self.amplitude * sin(2 * .pi * t / Double(self.period) + self.phase) + self.beta * self.c + self.noise
            self.values.append(x)
            self.covariate.append(self.c)
            if self.values.count > 4096 {
                self.values.removeFirst(2048)
                self.covariate.removeFirst(2048)
                self.offset += 2048
            }
        }

        /// Advances `horizon` steps and returns a request whose history ends before them,
        /// with their true values (kept by the validator).
        public mutating func request(historyLength: Int, horizon: Int) -> (Forecast, truth: [Double]) {
            while self.values.count < historyLength { self.advance() }
            for _ in 0..<horizon { self.advance() }
            let end = self.values.count - horizon
            let start = max(0, end - historyLength)
            let req = Forecast(history: Array(self.values[start..<end]), covariate: Array(self.covariate[start..<(end + horizon)]),
                               period: self.period, horizon: horizon)
            return (req, Array(self.values[end...]))
        }
    }

    /// xorshift64* with Box-Muller: the series' own seeded generator.
    struct Xorshift: Sendable {
        var state: UInt64
        init(seed: UInt64) {
            // SplitMix64 of the seed: nearby seeds give unrelated streams (never 0).
            var z = seed &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            self.state = (z ^ (z >> 31)) | 1
        }
        mutating func uniform() -> Double {
            self.state ^= self.state >> 12
            self.state ^= self.state << 25
            self.state ^= self.state >> 27
            return Double((self.state &* 2_685_821_657_736_338_717) >> 11) / Double(1 << 53)
        }
        mutating func gaussian() -> Double {
            let u1 = max(self.uniform(), 1e-12), u2 = self.uniform()
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
    }

    // MARK: Scoring (validator side)

    /// Mean squared error of a forecast; nil when it is not a forecast of `truth`.
    public static func mse(_ prediction: [Double], _ truth: [Double]) -> Double? {
        guard prediction.count == truth.count, !truth.isEmpty, prediction.allSatisfy({ $0.isFinite }) else { return nil }
        return zip(prediction, truth).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(truth.count)
    }

    /// Scores a round relative to its answers: the best error among the answers and the
    /// validator's `reference` error, divided by each miner's (in (0, 1]; 0 for no answer or a
    /// malformed one). A miner alone in a round is still judged against the reference, and
    /// errors are floored so a lucky exact answer cannot divide by zero.
    ///
    /// Copies share: answers that are the same forecast (they differ from each other by less
    /// than ``duplicateTolerance`` of the round's best error) split one answer's score between
    /// them, so relaying another miner's answer, or running one model under many hotkeys, earns
    /// no more than the original alone. (A copy perturbed on purpose is not caught by this
    /// rule, but it scores worse than the original by the perturbation's error; a copier also
    /// has to obtain the answer within the deadline, and miners answer only validators.)
    public static func scoreRound(_ predictions: [UInt16: [Double]], truth: [Double], reference: Double,
                                  sharpness: Double = defaultSharpness) -> [UInt16: Double] {
        let floor = 1e-6
        var errors: [UInt16: Double] = [:]
        for (uid, p) in predictions { if let e = mse(p, truth) { errors[uid] = max(e, floor) } }
        let best = min(errors.values.min() ?? .infinity, max(reference.isFinite ? reference : .infinity, floor))
        var out: [UInt16: Double] = [:]
        for uid in predictions.keys { out[uid] = errors[uid].map { best.isFinite ? pow(min(1, best / $0), sharpness) : 0 } ?? 0 }
        // Group the usable answers into copies of one another (greedy, in uid order) and split.
        guard best.isFinite else { return out }
        var groups: [(first: [Double], uids: [UInt16])] = []
        for uid in errors.keys.sorted() {
            let p = predictions[uid]!
            if let g = groups.firstIndex(where: { (mse($0.first, p) ?? .infinity) <= duplicateTolerance * best }) {
                groups[g].uids.append(uid)
            } else {
                groups.append((p, [uid]))
            }
        }
        for g in groups where g.uids.count > 1 {
            for uid in g.uids { out[uid] = out[uid]! / Double(g.uids.count) }
        }
        return out
    }

    /// Answers closer to each other than this fraction of the round's best error (mean squared)
    /// are the same forecast: rounding, not modelling, tells them apart.
    public static let duplicateTolerance = 1e-6

    /// The exponent of the error ratio in a round's score: 1 makes a forecast with twice the
    /// best error earn half.
    public static let defaultSharpness = 1.0

    /// How the market's validators average round scores: geometrically, a round without a
    /// usable answer counting as 1e-4 (a forecast 10,000 times worse than the best).
    public static let validatorAveraging = ScoreBook.Averaging.geometric(floor: 1e-4)
    /// The weight of a round in the validator's average: about 33 rounds of memory, so a
    /// stretch of rounds that happens to favour a worse rule (a regime where repeating the
    /// last value beats the season's) does not reorder an epoch's incentive.
    public static let validatorAlpha = 0.03

    // MARK: The miners

    /// The graded strategies the devnet runs, from worst to best.
    public enum Strategy: String, CaseIterable, Sendable, Codable {
        /// All zeros, at once (the idle miner).
        case zeros
        /// The last value, repeated.
        case last
        /// The value one season earlier.
        case seasonal
        /// A least-squares fit of level, season and covariate effect on the recent history,
        /// with an autoregressive correction of its residuals.
        case model
    }

    /// The miner's handler: validates the request, then forecasts with `strategy`.
    public static func handle(_ req: Forecast, strategy: Strategy) throws -> Forecast.Response {
        try validate(req)
        return .init(prediction: forecast(req, strategy: strategy))
    }

    public static func forecast(_ req: Forecast, strategy: Strategy) -> [Double] {
        let h = req.history, n = h.count
        switch strategy {
        case .zeros:
            return [Double](repeating: 0, count: req.horizon)
        case .last:
            return [Double](repeating: h[n - 1], count: req.horizon)
        case .seasonal:
            return (0..<req.horizon).map { k in
                var i = n + k - req.period
                while i >= n { i -= req.period }
                return i >= 0 ? h[i] : h[n - 1]
            }
        case .model:
            return fitted(req) ?? forecast(req, strategy: .seasonal)
        }
    }

    /// The fitted model: y_t = a + b·sin(2πt/P) + c·cos(2πt/P) + d·cov_t by weighted least
    /// squares on the last three seasons, then the residual's lag-1 autocorrelation carried
    /// into the horizon. Two fits compete: one whose weights halve every season (steady,
    /// for a stable regime) and one whose weights halve every quarter season (quick to
    /// follow a regime change); each is fitted without the last few values and the one that
    /// forecasts those better is refitted on everything.
    static func fitted(_ req: Forecast) -> [Double]? {
        let holdout = min(req.horizon, max(2, req.period / 6))
        let p = Double(max(req.period, 8))
        guard req.history.count > 3 * holdout + 8 else { return fitted(req, halfLife: p) }
        var shorter = req
        shorter.history.removeLast(holdout)
        shorter.covariate.removeLast(req.covariate.count - shorter.history.count - holdout)
        shorter.horizon = holdout
        let truth = Array(req.history.suffix(holdout))
        let candidates = [p, p / 4]
        let errors = candidates.map { h in fitted(shorter, halfLife: h).flatMap { mse($0, truth) } ?? .infinity }
        let best = errors[1] < errors[0] ? candidates[1] : candidates[0]
        return fitted(req, halfLife: best)
    }

    static func fitted(_ req: Forecast, halfLife: Double) -> [Double]? {
        let n = req.history.count, p = Double(req.period)
        let window = min(n, max(3 * req.period, 24))
        guard window >= 8 else { return nil }
        let start = n - window
        let decay = pow(0.5, 1 / max(halfLife, 1))
        func row(_ t: Int) -> [Double] {
            [1, sin(2 * .pi * Double(t) / p), cos(2 * .pi * Double(t) / p), req.covariate[t]]
        }
        var a = [[Double]](repeating: [Double](repeating: 0, count: 5), count: 4)
        var w = 1.0
        for t in stride(from: n - 1, through: start, by: -1) {
            let r = row(t)
            for i in 0..<4 {
                for j in 0..<4 { a[i][j] += w * r[i] * r[j] }
                a[i][4] += w * r[i] * req.history[t]
            }
            w *= decay
        }
        for i in 0..<4 { a[i][i] += 1e-6 }
        guard let beta = solve(&a), beta.allSatisfy({ $0.isFinite }) else { return nil }
        func predict(_ t: Int) -> Double { zip(beta, row(t)).reduce(0) { $0 + $1.0 * $1.1 } }
        let residuals = (start..<n).map { req.history[$0] - predict($0) }
        var num = 0.0, den = 0.0
        for i in 1..<residuals.count {
            num += residuals[i] * residuals[i - 1]
            den += residuals[i - 1] * residuals[i - 1]
        }
        let rho = den > 0 ? max(-0.99, min(0.99, num / den)) : 0
        var r = residuals.last ?? 0
        return (0..<req.horizon).map { k in
            r *= rho
            return predict(n + k) + r
        }
    }

    /// Gaussian elimination with partial pivoting on an augmented matrix.
    static func solve(_ a: inout [[Double]]) -> [Double]? {
        let n = a.count
        for c in 0..<n {
            guard let pivot = (c..<n).max(by: { abs(a[$0][c]) < abs(a[$1][c]) }), abs(a[pivot][c]) > 1e-12 else { return nil }
            a.swapAt(c, pivot)
            for r in (c + 1)..<n {
                let f = a[r][c] / a[c][c]
                if f == 0 { continue }
                for j in c...n { a[r][j] -= f * a[c][j] }
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = a[r][n]
            for j in (r + 1)..<n { s -= a[r][j] * x[j] }
            x[r] = s / a[r][r]
        }
        return x
    }

    // MARK: Offline evaluation

    /// One strategy's figures over an evaluation.
    public struct Evaluation: Codable, Sendable {
        public var strategy: Strategy
        public var meanSquaredError: Double
        /// Mean round score.
        public var meanScore: Double
        /// Its mean share of the subnet's incentive at the end of each epoch: the weights one
        /// validator would set from its moving averages (as u16 values), normalised, which is
        /// what Yuma pays miners when one validator holds the stake.
        public var share: Double
        /// Its smallest and largest share over the epochs.
        public var minShare: Double
        public var maxShare: Double
    }

    /// The market run offline: every strategy answers every round, one validator scores and
    /// averages as the market's validator does, and an epoch ends every `roundsPerEpoch` rounds.
    public struct MarketRun: Codable, Sendable {
        public var seed: UInt64
        public var rounds: Int
        public var roundsPerEpoch: Int
        public var alpha: Double
        public var sharpness: Double
        public var strategies: [Evaluation]
        /// Each epoch's incentive shares, in the order of ``Strategy/allCases``.
        public var epochShares: [[Double]]
        /// Epochs whose shares are strictly in the quality order with zeros at most 2 %.
        public var orderedEpochs: Int
        /// The zeros strategy's largest share in any epoch.
        public var zerosMaxShare: Double

        /// Whether an epoch's shares follow the quality order, zeros at most 2 %.
        public static func inOrder(_ shares: [Double]) -> Bool {
            zip(shares, shares.dropFirst()).allSatisfy { $0 < $1 } && (shares.first ?? 1) <= 0.02
        }
    }

    /// Runs `rounds` rounds of the market on a seeded series, every strategy answering each.
    public static func evaluate(seed: UInt64, rounds: Int, roundsPerEpoch: Int = 13, historyLength: Int = 96, horizon: Int = 8,
                                sharpness: Double = defaultSharpness, alpha: Double = validatorAlpha,
                                averaging: ScoreBook.Averaging = validatorAveraging) -> MarketRun {
        var series = Series(seed: seed)
        var sse = [Strategy: Double](), scores = [Strategy: Double]()
        let strategies = Strategy.allCases
        var book = ScoreBook(alpha: alpha, averaging: averaging)
        var epochShares: [[Double]] = []
        for round in 0..<rounds {
            let (req, truth) = series.request(historyLength: historyLength, horizon: horizon)
            var predictions: [UInt16: [Double]] = [:]
            for (uid, s) in strategies.enumerated() {
                let p = forecast(req, strategy: s)
                predictions[UInt16(uid)] = p
                sse[s, default: 0] += mse(p, truth) ?? .infinity
            }
            let reference = mse(forecast(req, strategy: .model), truth) ?? .infinity
            for (uid, score) in scoreRound(predictions, truth: truth, reference: reference, sharpness: sharpness) {
                scores[strategies[Int(uid)], default: 0] += score
                book.update(uid: uid, hotkey: [UInt8](repeating: UInt8(uid), count: 32), score: score)
            }
            if (round + 1) % max(1, roundsPerEpoch) == 0 {
                let (uids, values) = book.weights(n: strategies.count)
                let total = values.reduce(0.0) { $0 + Double($1) }
                var shares = [Double](repeating: 0, count: strategies.count)
                for (u, v) in zip(uids, values) where total > 0 { shares[Int(u)] = Double(v) / total }
                epochShares.append(shares)
            }
        }
        let n = Double(max(rounds, 1)), epochs = Double(max(epochShares.count, 1))
        let evaluations = strategies.enumerated().map { i, s in
            let column = epochShares.map { $0[i] }
            return Evaluation(strategy: s, meanSquaredError: sse[s, default: 0] / n, meanScore: scores[s, default: 0] / n,
                              share: column.reduce(0, +) / epochs, minShare: column.min() ?? 0, maxShare: column.max() ?? 0)
        }
        return MarketRun(seed: seed, rounds: rounds, roundsPerEpoch: roundsPerEpoch, alpha: alpha, sharpness: sharpness, strategies: evaluations,
                         epochShares: epochShares, orderedEpochs: epochShares.filter(MarketRun.inOrder).count,
                         zerosMaxShare: epochShares.map { $0[0] }.max() ?? 0)
    }
}
