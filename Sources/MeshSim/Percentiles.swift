/// Percentiles of a sample (nearest-rank).
public enum Percentiles {
    public static func of(_ values: [Double], _ ps: [Double]) -> [Double] {
        guard !values.isEmpty else { return ps.map { _ in .nan } }
        let sorted = values.sorted()
        return ps.map { p in
            let rank = max(0, min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
            return sorted[rank]
        }
    }
}
