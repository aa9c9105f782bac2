import Foundation
import MeshSubnet

/// The intelligence market: miners forecast the next values of a time series from its recent
/// history; validators know the series only as it unfolds and score each forecast once the
/// true values are out (R² against the truth, floored at 0).
public enum Prediction {
    /// The query: the last values of the series and how many steps ahead to forecast.
    public struct Forecast: Synapse {
        public static let name = "forecast"
        public var history: [Double]
        public var horizon: Int
        public init(history: [Double], horizon: Int) {
            self.history = history
            self.horizon = horizon
        }
        public struct Response: Codable, Sendable, Equatable {
            public var prediction: [Double]
            public init(prediction: [Double]) { self.prediction = prediction }
        }
    }

    public static let maxHistory = 1024
    public static let maxHorizon = 16

    // MARK: The series (validator side)

    /// A seasonal autoregressive series with seeded noise: hard to guess, easy to learn from
    /// its history. Deterministic for a seed.
    public struct Series: Sendable {
        public private(set) var values: [Double] = []
        var state: UInt64
        let period: Double

        public init(seed: UInt64, period: Double = 20, warmUp: Int = 64) {
            self.state = seed | 1
            self.period = period
            for _ in 0..<warmUp { self.advance() }
        }

        mutating func gaussian() -> Double {
            // xorshift64* then Box-Muller.
            func next(_ s: inout UInt64) -> Double {
                s ^= s >> 12; s ^= s << 25; s ^= s >> 27
                return Double((s &* 2_685_821_657_736_338_717) >> 11) / Double(1 << 53)
            }
            let u1 = max(next(&self.state), 1e-12), u2 = next(&self.state)
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }

        /// Appends the next value.
        @discardableResult
        public mutating func advance() -> Double {
            let t = Double(self.values.count)
            let a = self.values.last ?? 0
            let b = self.values.count >= 2 ? self.values[self.values.count - 2] : 0
            let x = 0.5 * a + 0.2 * b + 6 * sin(2 * .pi * t / self.period) + 0.5 * self.gaussian()
            self.values.append(x)
            return x
        }
    }

    /// R² of `prediction` against `truth`, floored at 0; `scale` is the variance the forecast
    /// is judged against (the history's).
    public static func score(prediction: [Double], truth: [Double], scale: Double) -> Double {
        guard prediction.count == truth.count, !truth.isEmpty, prediction.allSatisfy({ $0.isFinite }), scale > 0 else { return 0 }
        let mse = zip(prediction, truth).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(truth.count)
        return max(0, 1 - mse / scale)
    }

    public static func variance(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 1 }
        let m = xs.reduce(0, +) / Double(xs.count)
        return xs.reduce(0.0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    }

    // MARK: The model (miner side)

    /// Fits an AR(`order`) model with intercept by least squares and forecasts `horizon`
    /// steps by iterating it. Falls back to the last value when the history is too short.
    public static func forecast(history: [Double], horizon: Int, order: Int = 6) -> [Double] {
        let p = min(order, max(0, history.count / 3))
        guard p > 0, history.count > p + 1 else { return [Double](repeating: history.last ?? 0, count: horizon) }
        // Normal equations (XᵀX) β = Xᵀy for rows [1, x_{t-1}, …, x_{t-p}].
        let k = p + 1
        var a = [[Double]](repeating: [Double](repeating: 0, count: k + 1), count: k)
        for t in p..<history.count {
            var row = [1.0]
            for j in 1...p { row.append(history[t - j]) }
            for i in 0..<k {
                for j in 0..<k { a[i][j] += row[i] * row[j] }
                a[i][k] += row[i] * history[t]
            }
        }
        for i in 0..<k { a[i][i] += 1e-6 }  // ridge, for degenerate histories
        guard let beta = solve(&a) else { return [Double](repeating: history.last ?? 0, count: horizon) }
        var h = history
        var out: [Double] = []
        for _ in 0..<horizon {
            var x = beta[0]
            for j in 1...p { x += beta[j] * h[h.count - j] }
            out.append(x)
            h.append(x)
        }
        return out
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

    /// The miner's handler: validates the request, then forecasts (or, when `lazy`, answers
    /// zeros at once without looking).
    public static func handle(_ req: Forecast, lazy: Bool) throws -> Forecast.Response {
        guard (1...maxHorizon).contains(req.horizon), req.history.count <= maxHistory, req.history.allSatisfy({ $0.isFinite }) else {
            throw SubnetError("horizon must be 1...\(maxHorizon) and history at most \(maxHistory) finite values")
        }
        if lazy { return .init(prediction: [Double](repeating: 0, count: req.horizon)) }
        return .init(prediction: forecast(history: req.history, horizon: req.horizon))
    }

    // MARK: Validator bookkeeping

    /// Forecasts waiting for their truth: asked at series index `asked`, for the next `horizon` values.
    public struct Ledger: Sendable {
        public struct Entry: Sendable {
            public var uid: UInt16
            public var asked: Int
            public var prediction: [Double]
            public var scale: Double
        }
        public private(set) var entries: [Entry] = []
        public init() {}

        public mutating func record(uid: UInt16, asked: Int, prediction: [Double], scale: Double) {
            self.entries.append(Entry(uid: uid, asked: asked, prediction: prediction, scale: scale))
            if self.entries.count > 100_000 { self.entries.removeFirst(self.entries.count - 100_000) }
        }

        /// Scores every forecast whose truth is now known and forgets it.
        public mutating func settle(series: [Double]) -> [(uid: UInt16, score: Double)] {
            var out: [(UInt16, Double)] = []
            self.entries.removeAll { e in
                let end = e.asked + e.prediction.count
                guard end <= series.count else { return false }
                out.append((e.uid, Prediction.score(prediction: e.prediction, truth: Array(series[e.asked..<end]), scale: e.scale)))
                return true
            }
            return out
        }
    }
}
