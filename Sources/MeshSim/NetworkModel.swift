/// How simulated links behave: latency, jitter, loss, duplication, bandwidth, partitions.
public struct NetworkModel: Sendable {
    /// One-way base latency (ns).
    public var latency: UInt64 = 25_000_000
    /// Extra latency drawn uniformly from 0...jitter (ns); reorders messages.
    public var jitter: UInt64 = 5_000_000
    /// Probability that a message is lost.
    public var loss: Double = 0
    /// Probability that a message is delivered twice.
    public var duplication: Double = 0
    /// Bytes per second per link direction (0 = unlimited).
    public var bandwidth: UInt64 = 0
    /// Windows during which groups of nodes cannot reach each other.
    public var partitions: [Partition] = []

    public init() {}

    /// A split of the nodes for a time window.
    public struct Partition: Sendable, CustomStringConvertible {
        /// Fractions of the nodes per side (e.g. [0.5, 0.5]); nodes are assigned in order.
        public var fractions: [Double]
        public var start: UInt64
        public var end: UInt64

        public init(fractions: [Double], start: UInt64, end: UInt64) {
            self.fractions = fractions
            self.start = start
            self.end = end
        }

        /// Parses `A/B[/C…]@START-END` with percentages and seconds, e.g. `50/50@10-40`.
        public init?(spec: String) {
            let parts = spec.split(separator: "@")
            guard parts.count == 2 else { return nil }
            let shares = parts[0].split(separator: "/").compactMap { Double($0) }
            let window = parts[1].split(separator: "-").compactMap { Double($0) }
            guard shares.count >= 2, window.count == 2, window[0] < window[1], shares.allSatisfy({ $0 > 0 }) else { return nil }
            let total = shares.reduce(0, +)
            self.fractions = shares.map { $0 / total }
            self.start = UInt64(window[0] * 1e9)
            self.end = UInt64(window[1] * 1e9)
        }

        /// Which side node `i` of `n` is on.
        public func side(of i: Int, nodes n: Int) -> Int {
            var acc = 0.0
            for (k, f) in self.fractions.enumerated() {
                acc += f
                if Double(i) < acc * Double(n) - 1e-9 { return k }
            }
            return self.fractions.count - 1
        }

        public var description: String {
            "\(self.fractions.map { String(Int(($0 * 100).rounded())) }.joined(separator: "/"))@\(Double(self.start) / 1e9)-\(Double(self.end) / 1e9)"
        }
    }

    /// Whether a message from `a` to `b` at `time` crosses an active partition.
    public func blocked(_ a: Int, _ b: Int, nodes n: Int, at time: UInt64) -> Bool {
        for p in self.partitions where time >= p.start && time < p.end {
            if p.side(of: a, nodes: n) != p.side(of: b, nodes: n) { return true }
        }
        return false
    }
}
