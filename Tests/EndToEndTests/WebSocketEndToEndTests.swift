import Foundation
import MeshClient
import MeshTestSupport
import Testing

/// What operators and client authors see of node processes, checked with tools no one here
/// wrote: Python's `websockets` and Prometheus's `promtool`.
@Suite("Operators' tools end to end (processes)", .serialized)
struct WebSocketEndToEndTests {
    @Test("python websockets gets each new and finalized head once, in order; promtool passes every node's /metrics; the Grafana dashboard names served metrics")
    func operatorsTools() throws {
        let net = try LocalNet(nodes: 2, validators: 2, slotMs: 500)
        let prom = [freePort(), freePort()]
        let a = try net.start(0, validator: true, prometheusPort: prom[0])
        let b = try net.start(1, validator: true, bootnodes: [net.address(0)], prometheusPort: prom[1])
        defer { a.stop(); b.stop() }
        let client = try net.client(1)
        #expect(try client.waitUntil(timeout: 60) { try client.head() >= 1 }, "no blocks: \(b.output.suffix(1500))")
        let result = try ProcessRunner.run("/usr/bin/env", [
            TestPaths.python, TestPaths.repositoryRoot + "/Tests/Interop/ws_heads.py", "ws://127.0.0.1:\(net.rpc[1])", "8", "60",
        ], timeout: 90)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)\nnode 0 (running: \(a.isRunning)): \(a.output.suffix(1500))\nnode 1: \(b.output.suffix(1500))")
        let summary = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(summary["ok"] as? Bool == true && (summary["finalized"] as? Int ?? 0) >= 8, "\(result.stdout)")
        print("python websockets: \(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")

        // promtool, Prometheus's own linter, on every node's exposition.
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        #expect(promtool != nil, "promtool is missing: Bootstrap/test installs it (TENSORMESH_WITH_PROMTOOL=1 Bootstrap/setup)")
        var served = Set<String>()
        for port in prom {
            let text = try httpGet(port: port, path: "/metrics")
            for line in text.split(separator: "\n") {
                if line.hasPrefix("# TYPE ") {
                    // A declared metric is served even before it has a series (a counter of invalid messages on a calm network).
                    let name = line.dropFirst(7).prefix { $0 != " " }
                    served.insert(String(name))
                    if line.hasSuffix(" histogram") { for s in ["_bucket", "_sum", "_count"] { served.insert(String(name) + s) } }
                } else if !line.hasPrefix("#") {
                    served.insert(String(line.prefix { $0 != "{" && $0 != " " }))
                }
            }
            for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
                         "tensormesh_build_info", "tensormesh_block_import_seconds_bucket", "tensormesh_finality_lag_at_finalization_seconds_count",
                         "tensormesh_rpc_request_duration_seconds_bucket", "tensormesh_rpc_connections"] {
                #expect(text.contains("\n\(name)"), "\(name) missing from :\(port)/metrics")
            }
            if let promtool {
                let file = net.dir + "/metrics-\(port).txt"
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let check = try ProcessRunner.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"], timeout: 30)
                #expect(check.status == 0 && check.stdout.isEmpty && check.stderr.isEmpty, "promtool on :\(port): \(check.stdout)\(check.stderr)")
            }
        }
        // Every query of the shipped Grafana dashboard names a metric the node serves.
        let dashboard = try String(contentsOfFile: TestPaths.repositoryRoot + "/Bootstrap/grafana-dashboard.json", encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any] ?? [:]
        var queries: [String] = []
        for panel in object["panels"] as? [[String: Any]] ?? [] {
            for t in panel["targets"] as? [[String: Any]] ?? [] { queries.append(t["expr"] as? String ?? "") }
        }
        for v in (object["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? [] { if let q = v["query"] as? String, q.contains("(") { queries.append(q) } }
        #expect(queries.count >= 16)
        let pattern = try NSRegularExpression(pattern: "\\b(tensormesh_[a-z0-9_]+|process_[a-z0-9_]+)")
        var named = Set<String>()
        for q in queries {
            for m in pattern.matches(in: q, range: NSRange(q.startIndex..., in: q)) { named.insert((q as NSString).substring(with: m.range)) }
        }
        #expect(named.count >= 15)
        for n in named.sorted() { #expect(served.contains(n), "the dashboard queries \(n), which no node serves") }
    }
}
