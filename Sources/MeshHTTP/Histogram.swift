/// A Prometheus histogram with fixed bucket bounds: counts per bucket, the sum and the count
/// of observations; rendered cumulatively with `le` labels and `+Inf`, as the text format
/// requires. Memory is fixed by the bounds, whatever is observed.
public struct Histogram: Sendable, Equatable {
    /// Upper bounds of the buckets, increasing.
    public let bounds: [Double]
    private(set) var counts: [UInt64]
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    public init(bounds: [Double]) {
        precondition(!bounds.isEmpty && zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "histogram bounds must increase")
        self.bounds = bounds
        self.counts = [UInt64](repeating: 0, count: bounds.count + 1)
    }

    /// Seconds, from 1 ms to a minute.
    public static func seconds() -> Histogram {
        Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    }

    /// Records one value (NaN is ignored; negative values fall in the first bucket).
    public mutating func observe(_ value: Double) {
        guard !value.isNaN else { return }
        let i = self.bounds.firstIndex { value <= $0 } ?? self.bounds.count
        self.counts[i] &+= 1
        self.count &+= 1
        self.sum += value
    }

    /// The exposition lines of `name` (with `# HELP` and `# TYPE`).
    public func render(_ name: String, help: String) -> String {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, b) in self.bounds.enumerated() {
            cumulative &+= self.counts[i]
            out += "\(name)_bucket{le=\"\(Self.format(b))\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(self.count)\n\(name)_sum \(Self.format(self.sum))\n\(name)_count \(self.count)\n"
        return out
    }

    public static func format(_ v: Double) -> String { PrometheusText.number(v) }
}
