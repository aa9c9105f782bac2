import Foundation
import MeshHTTP

/// Usage per API key and the gateway's counters, for `GET /v1/usage` and Prometheus
/// (`GET /metrics`). Keys appear by name only.
public struct GatewayMetrics: Sendable {
    public struct KeyUsage: Codable, Sendable, Equatable {
        public var requests: UInt64 = 0
        public var answered: UInt64 = 0
        public var failed: UInt64 = 0
        public var rateLimited: UInt64 = 0
        public var bytesIn: UInt64 = 0
        public var bytesOut: UInt64 = 0
        public init() {}
    }

    public var usage: [String: KeyUsage] = [:]
    /// Responses by route and status code.
    var responses: [String: UInt64] = [:]
    var unauthorized: UInt64 = 0
    /// Miner queries by outcome ("ok" or a status).
    var minerQueries: [String: UInt64] = [:]
    /// Time to answer an admitted request, seconds.
    var requestSeconds = Histogram(bounds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    /// Round trip of each query to a miner (answered or not), seconds.
    var minerQuerySeconds = Histogram.seconds()
    var organicSampled: UInt64 = 0
    /// Storage repair: holders dropped (failed a challenge or left), copies made, objects left short.
    var repairDropped: UInt64 = 0
    var repairAdded: UInt64 = 0
    var repairShort: UInt64 = 0

    public init() {}

    mutating func response(route: String, status: Int, key: String?, bytesIn: Int, bytesOut: Int, seconds: Double) {
        self.responses["\(route) \(status)", default: 0] &+= 1
        if status == 401 { self.unauthorized &+= 1 }
        guard let key else { return }
        var u = self.usage[key] ?? KeyUsage()
        u.requests &+= 1
        if status == 429 { u.rateLimited &+= 1 } else if status < 400 { u.answered &+= 1 } else { u.failed &+= 1 }
        u.bytesIn &+= UInt64(max(0, bytesIn))
        u.bytesOut &+= UInt64(max(0, bytesOut))
        self.usage[key] = u
        if status != 429 && seconds.isFinite && seconds >= 0 { self.requestSeconds.observe(seconds) }
    }

    mutating func minerQuery(_ outcome: String, seconds: Double) {
        self.minerQueries[outcome, default: 0] &+= 1
        if seconds.isFinite && seconds >= 0 { self.minerQuerySeconds.observe(seconds) }
    }

    mutating func repairs(dropped: Int, added: Int, short: Int) {
        self.repairDropped &+= UInt64(max(0, dropped))
        self.repairAdded &+= UInt64(max(0, added))
        self.repairShort &+= UInt64(max(0, short))
    }

    /// Prometheus text format.
    func prometheus(metagraphAge: [UInt16: Double]) -> String {
        var out = ""
        out += "# HELP tensormesh_gateway_responses_total Responses by route and HTTP status.\n# TYPE tensormesh_gateway_responses_total counter\n"
        for (k, v) in self.responses.sorted(by: { $0.key < $1.key }) {
            let parts = k.split(separator: " ")
            out += "tensormesh_gateway_responses_total{route=\"\(parts[0])\",status=\"\(parts[1])\"} \(v)\n"
        }
        out += "# HELP tensormesh_gateway_unauthorized_total Requests refused for a missing or unknown key.\n# TYPE tensormesh_gateway_unauthorized_total counter\n"
        out += "tensormesh_gateway_unauthorized_total \(self.unauthorized)\n"
        out += "# HELP tensormesh_gateway_key_requests_total Requests per API key (by name) and outcome.\n# TYPE tensormesh_gateway_key_requests_total counter\n"
        for (k, u) in self.usage.sorted(by: { $0.key < $1.key }) {
            out += "tensormesh_gateway_key_requests_total{key=\"\(k)\",outcome=\"answered\"} \(u.answered)\n"
            out += "tensormesh_gateway_key_requests_total{key=\"\(k)\",outcome=\"failed\"} \(u.failed)\n"
            out += "tensormesh_gateway_key_requests_total{key=\"\(k)\",outcome=\"rate_limited\"} \(u.rateLimited)\n"
        }
        out += "# HELP tensormesh_gateway_key_bytes_total Request and response bytes per API key.\n# TYPE tensormesh_gateway_key_bytes_total counter\n"
        for (k, u) in self.usage.sorted(by: { $0.key < $1.key }) {
            out += "tensormesh_gateway_key_bytes_total{key=\"\(k)\",direction=\"in\"} \(u.bytesIn)\n"
            out += "tensormesh_gateway_key_bytes_total{key=\"\(k)\",direction=\"out\"} \(u.bytesOut)\n"
        }
        out += "# HELP tensormesh_gateway_miner_queries_total Queries to miners by outcome.\n# TYPE tensormesh_gateway_miner_queries_total counter\n"
        for (k, v) in self.minerQueries.sorted(by: { $0.key < $1.key }) { out += "tensormesh_gateway_miner_queries_total{outcome=\"\(k)\"} \(v)\n" }
        out += self.requestSeconds.render("tensormesh_gateway_request_seconds", help: "Time to answer an admitted request.")
        out += self.minerQuerySeconds.render("tensormesh_gateway_miner_query_seconds", help: "Round trip of each query to a miner, answered or not.")
        out += "# HELP tensormesh_gateway_storage_repairs_total Storage repair: holders dropped, copies made, objects left below their replication.\n"
        out += "# TYPE tensormesh_gateway_storage_repairs_total counter\n"
        out += "tensormesh_gateway_storage_repairs_total{action=\"dropped\"} \(self.repairDropped)\n"
        out += "tensormesh_gateway_storage_repairs_total{action=\"copied\"} \(self.repairAdded)\n"
        out += "tensormesh_gateway_storage_repairs_total{action=\"short\"} \(self.repairShort)\n"
        out += "# HELP tensormesh_gateway_organic_sampled_total Organic queries kept for validators.\n# TYPE tensormesh_gateway_organic_sampled_total counter\n"
        out += "tensormesh_gateway_organic_sampled_total \(self.organicSampled)\n"
        out += "# HELP tensormesh_gateway_metagraph_age_seconds Age of the gateway's view of each subnet.\n# TYPE tensormesh_gateway_metagraph_age_seconds gauge\n"
        for (n, a) in metagraphAge.sorted(by: { $0.key < $1.key }) { out += "tensormesh_gateway_metagraph_age_seconds{netuid=\"\(n)\"} \(a)\n" }
        return out
    }
}
