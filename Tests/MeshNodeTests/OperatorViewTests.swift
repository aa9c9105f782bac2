import MeshHTTP
@testable import MeshNode
import Testing

/// What an operator reads: log filters, sync speed and ETA, histograms, bounded label sets.
@Suite("Logs, sync progress and metrics")
struct OperatorViewTests {
    @Test("--log directives: a default level and levels per target, later ones winning; bad ones refused")
    func logFilter() throws {
        let f = try LogFilter(directives: "warn,sync=debug, finality=trace,sync=info")
        #expect(f.defaultLevel == .warn && f.level(for: "sync") == .info && f.level(for: "finality") == .trace && f.level(for: "gossip") == .warn)
        #expect(f.lowest == .trace)
        #expect(try LogFilter(directives: "debug").targets.isEmpty)
        for bad in ["loud", "sync=", "=debug", "sync=loud", "a b=info"] {
            #expect(throws: LogFilterError.self, "\(bad)") { try LogFilter(directives: bad) }
        }
        let log = Log(filter: f, colour: false)
        #expect(log.child("sync").enabled(.info) && !log.child("sync").enabled(.debug) && !log.enabled(.info))
        var more = log.filter
        try more.add("sync=trace")
        log.setFilter(more)
        #expect(log.child("sync").enabled(.trace), "a filter change reaches the targets' loggers")
    }

    @Test("sync speed over the last 30 s, ETA to the target, and how they read")
    func syncProgress() {
        var p = SyncProgress()
        #expect(p.blocksPerSecond == 0 && p.eta(best: 0, target: 100) == nil)
        for i in 0...12 { p.record(now: UInt64(i) * 5_000_000_000, best: UInt64(i) * 50) }  // 10 blocks/s
        #expect(abs(p.blocksPerSecond - 10) < 1e-9)
        #expect(p.eta(best: 600, target: 1_200) == 60)
        #expect(p.eta(best: 600, target: 600) == nil)
        #expect(p.samples.count <= 8, "only the window is kept")
        for i in 13...20 { p.record(now: UInt64(i) * 5_000_000_000, best: 600) }  // stalled
        #expect(p.blocksPerSecond == 0)
        #expect(SyncProgress.format(seconds: 45) == "45s" && SyncProgress.format(seconds: 192) == "3m 12s" && SyncProgress.format(seconds: 7500) == "2h 05m")
    }

    @Test("histograms render cumulative buckets, +Inf, sum and count")
    func histogram() {
        var h = Histogram(bounds: [0.1, 1])
        for v in [0.05, 0.5, 0.5, 3, .nan] { h.observe(v) }
        let text = h.render("x_seconds", help: "X.")
        #expect(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n") && text.contains("x_seconds_bucket{le=\"1\"} 3\n"))
        #expect(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n") && text.contains("x_seconds_sum 4.05\n") && text.contains("x_seconds_count 4\n"))
    }

    @Test("a label's series are bounded: past the limit the smallest are summed as other")
    func boundedLabels() {
        var counts: [String: Int] = [:]
        for i in 0..<100 { counts["reason \(i)"] = i }
        let b = Node.bounded(counts, limit: 10)
        #expect(b.count == 10 && b.contains { $0.0 == "other" } && b.reduce(0) { $0 + $1.1 } == (0..<100).reduce(0, +))
        #expect(Node.bounded(["a": 1]).map(\.0) == ["a"])
        #expect(Node.label("reason", "a\"b\\c\nd") == #"reason="a\"b\\c\nd""#)
    }
}
