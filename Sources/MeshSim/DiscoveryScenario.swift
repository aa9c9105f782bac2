import Foundation
import MeshCodec
import MeshCrypto
import MeshDiscovery

/// Settings of the `discovery` scenario.
public struct DiscoveryScenarioConfig: Sendable {
    public var nodes = 200
    public var seconds: Double = 60
    /// Nodes join one by one over this many seconds, each through node 0 only.
    public var joinSeconds: Double = 20
    /// Nodes that join late (after convergence) to measure how fast a newcomer fills its table.
    public var latecomers = 20
    public var latecomersAt: Double = 35
    /// Lookups for random targets started at `lookupsAt`, from random nodes.
    public var lookups = 200
    public var lookupsAt: Double = 45
    public var network = NetworkModel()
    public init() {}
}

/// Many real ``DiscoveryCore``s on simulated UDP: join through one bootnode, then measure
/// lookups (do they find the true k closest, in how many rounds and how long) and how fast a
/// newcomer fills its table.
public final class DiscoveryScenario {
    let config: DiscoveryScenarioConfig
    let sim: Simulator
    var cores: [DiscoveryCore?] = []
    var keys: [Ed25519.PrivateKey] = []
    var endpoints: [Endpoint] = []
    var index: [Endpoint: Int] = [:]
    var joinedAt: [Int: UInt64] = [:]
    var filledAfter: [Int: UInt64] = [:]
    var lookupResults: [(node: Int, result: LookupResult)] = []
    var pendingLookups: [Int: Set<UInt64>] = [:]
    var packets = 0
    var dropped = 0
    var bytes = 0

    public init(config: DiscoveryScenarioConfig, seed: UInt64) {
        self.config = config
        self.sim = Simulator(seed: seed)
    }

    var total: Int { self.config.nodes + self.config.latecomers }

    func endpoint(_ i: Int) -> Endpoint {
        // One node per /24, public-looking addresses (so the diversity limits apply as on the internet).
        Endpoint(ip: [UInt8(20 + (i >> 16) & 0x3f), UInt8((i >> 8) & 0xff), UInt8(i & 0xff), 7], port: 30333)
    }

    func makeCore(_ i: Int) -> DiscoveryCore {
        let key = self.keys[i]
        let e = self.endpoints[i]
        let genesis = [UInt8](repeating: 0x99, count: 32)
        var dc = DiscoveryConfig(genesis: genesis)
        dc.refreshInterval = .seconds(20)
        let record = NodeRecord(key: key, seq: 1, ip: e.ip, tcpPort: e.port, udpPort: e.port, roles: 2, genesis: genesis)
        var rng = self.sim.rng.fork()
        return DiscoveryCore(key: key, record: record, config: dc, random: { n in rng.bytes(n) })
    }

    public func run(clock: () -> UInt64) -> SimSummary {
        let started = clock()
        for i in 0..<self.total {
            self.keys.append(try! Ed25519.PrivateKey(seedBytes: self.sim.rng.bytes(32)))
            self.endpoints.append(self.endpoint(i))
            self.index[self.endpoints[i]] = i
            self.cores.append(nil)
        }
        // Node 0 (the bootnode) first, the rest spread over the join window, latecomers later.
        self.start(0, at: 0)
        for i in 1..<self.config.nodes {
            self.start(i, at: UInt64(Double(i) / Double(self.config.nodes) * self.config.joinSeconds * 1e9))
        }
        for j in 0..<self.config.latecomers {
            self.start(self.config.nodes + j, at: UInt64((self.config.latecomersAt + Double(j) * 0.25) * 1e9))
        }
        // Lookups from random established nodes for random targets.
        for l in 0..<self.config.lookups {
            let at = UInt64((self.config.lookupsAt + Double(l) * 0.02) * 1e9)
            self.sim.schedule(at: at) { [unowned self] in
                let i = Int(self.sim.rng.next() % UInt64(self.config.nodes))
                guard let c = self.cores[i], let target = try? Ed25519.PublicKey(bytes: self.sim.rng.bytes(32)) else { return }
                let id = c.lookup(target: target, now: self.sim.instant)
                self.pendingLookups[i, default: []].insert(id)
                self.flush(i)
            }
        }
        self.sim.run(until: UInt64(self.config.seconds * 1e9))
        return self.summary(wall: Double(clock() - started) / 1e9)
    }

    func start(_ i: Int, at t: UInt64) {
        self.sim.schedule(at: t) { [unowned self] in
            let c = self.makeCore(i)
            self.cores[i] = c
            self.joinedAt[i] = self.sim.now
            if i != 0 { c.addBootnode(id: self.keys[0].publicKey, endpoint: self.endpoints[0], now: self.sim.instant) }
            self.flush(i)
            // Like the node: a self-lookup once the bootnode answered.
            self.sim.schedule(after: 300_000_000) { [unowned self] in
                c.lookup(target: c.id, now: self.sim.instant)
                self.flush(i)
            }
            self.tick(i)
        }
    }

    func tick(_ i: Int) {
        self.sim.schedule(after: 100_000_000) { [unowned self] in
            guard let c = self.cores[i] else { return }
            c.tick(now: self.sim.instant)
            self.flush(i)
            if self.filledAfter[i] == nil, c.table.count >= 16, let j = self.joinedAt[i] { self.filledAfter[i] = self.sim.now - j }
            self.tick(i)
        }
    }

    func flush(_ i: Int) {
        guard let c = self.cores[i] else { return }
        let (out, events) = c.drain()
        for e in events {
            if case .lookupFinished(let r) = e, self.pendingLookups[i]?.remove(r.id) != nil { self.lookupResults.append((i, r)) }
        }
        let net = self.config.network
        for p in out {
            self.packets += 1
            self.bytes += p.bytes.count
            guard let to = self.index[p.to] else { continue }
            self.sim.trace(10, UInt64(i), UInt64(to), UInt64(p.bytes.count))
            if net.blocked(i, to, nodes: self.total, at: self.sim.now) || self.sim.rng.chance(net.loss) {
                self.dropped += 1
                continue
            }
            var delay = net.latency
            if net.jitter > 0 { delay += self.sim.rng.next() % (net.jitter + 1) }
            let from = self.endpoints[i]
            let bytes = p.bytes
            self.sim.schedule(after: delay) { [unowned self] in
                guard let d = self.cores[to] else { return }
                d.receive(bytes, from: from, now: self.sim.instant)
                self.flush(to)
            }
        }
    }

    /// Why a lookup missed the target (exact k closest, ≤ 3 rounds, < 500 ms): each reason
    /// counts once per lookup. A true neighbour it did not return either was asked and did not
    /// answer, or was never asked although a node that answered holds it in its table (the
    /// answers or the choice of whom to ask missed it), or no node asked holds it (tables are
    /// read at the end of the run: nodes only join in this scenario, none leaves).
    func classify(_ r: LookupResult, truth: Set<Ed25519.PublicKey>, exact: Bool, byId: [Ed25519.PublicKey: Int], into why: inout [String: Int]) {
        if r.rounds > 3 { why["over3Rounds"] = (why["over3Rounds"] ?? 0) + 1 }
        if r.elapsed >= .milliseconds(500) { why["over500ms"] = (why["over500ms"] ?? 0) + 1 }
        if r.queried >= DiscoveryConfig(genesis: []).maxLookupQueries { why["queryCap"] = (why["queryCap"] ?? 0) + 1 }
        guard !exact else { return }
        why["inexact"] = (why["inexact"] ?? 0) + 1
        let got = Set(r.closest.map { $0.nodeId })
        let asked = Dictionary(r.path.map { ($0.id, $0.answered) }, uniquingKeysWith: { a, _ in a })
        let tables = r.path.filter { $0.answered }.compactMap { s in byId[s.id].flatMap { self.cores[$0]?.table } }
        var reasons = Set<String>()
        for t in truth.subtracting(got) {
            if let answered = asked[t] {
                reasons.insert(answered ? "missingAnsweredButDropped" : "missingAskedNoAnswer")
            } else if tables.contains(where: { $0.entry(t) != nil }) {
                reasons.insert("missingHeldByAnAskedNode")
            } else {
                reasons.insert("missingHeldByNoAskedNode")
            }
        }
        for x in reasons { why[x] = (why[x] ?? 0) + 1 }
    }

    func summary(wall: Double) -> SimSummary {
        // Lookup quality against the truth: the 16 closest among nodes alive at the time.
        let alive = self.cores.indices.filter { self.cores[$0] != nil }.map { self.keys[$0].publicKey }
        var exact = 0, within3 = 0, under500 = 0, good = 0
        var why: [String: Int] = [:]
        let byId = Dictionary(self.keys.indices.map { (self.keys[$0].publicKey, $0) }, uniquingKeysWith: { a, _ in a })
        var latencies: [Double] = []
        var rounds: [Double] = []
        for (i, r) in self.lookupResults {
            let me = self.keys[i].publicKey
            let truth = Set(alive.filter { $0 != me }.sorted { Distance.closer($0, $1, to: r.target) }.prefix(16))
            let ok = Set(r.closest.map { $0.nodeId }) == truth
            if ok { exact += 1 }
            if r.rounds <= 3 { within3 += 1 }
            if r.elapsed < .milliseconds(500) { under500 += 1 }
            if ok && r.rounds <= 3 && r.elapsed < .milliseconds(500) { good += 1 } else { self.classify(r, truth: truth, exact: ok, byId: byId, into: &why) }
            latencies.append(Double(r.elapsed.nanoseconds) / 1e6)
            rounds.append(Double(r.rounds))
        }
        let n = max(1, self.lookupResults.count)
        let lat = Percentiles.of(latencies, [50, 95, 99])
        let late = (self.config.nodes..<self.total).compactMap { self.filledAfter[$0].map { Double($0) / 1e9 } }
        let lateP = Percentiles.of(late, [50, 95, 100])
        let tables = self.cores.compactMap { $0?.table.count }
        var s = SimSummary(scenario: "discovery", nodes: self.total, seed: self.sim.seed, virtualSeconds: self.config.seconds,
                           traceHash: self.sim.traceHash(), safetyViolations: 0, delivered: nil,
                           latencyP50Ms: latencies.isEmpty ? nil : lat[0], latencyP99Ms: latencies.isEmpty ? nil : lat[2],
                           events: self.sim.eventCount)
        s.wallSeconds = wall
        s.extra = [
            ("lookups", .int(self.lookupResults.count)),
            ("lookupsExactK", .double(Double(exact) / Double(n))),
            ("lookupsWithin3Rounds", .double(Double(within3) / Double(n))),
            ("lookupsUnder500ms", .double(Double(under500) / Double(n))),
            ("lookupsExactWithin3RoundsUnder500ms", .double(Double(good) / Double(n))),
            ("lookupRoundsMean", .double(rounds.isEmpty ? 0 : rounds.reduce(0, +) / Double(rounds.count))),
            ("lookupP95Ms", .double(latencies.isEmpty ? 0 : lat[1])),
            ("lookupFailures", .object(why.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("latecomersFilled16", .int(late.count)), ("latecomers", .int(self.config.latecomers)),
            ("latecomerFillP50Seconds", .double(late.isEmpty ? 0 : lateP[0])),
            ("latecomerFillMaxSeconds", .double(late.isEmpty ? 0 : lateP[2])),
            ("tableSizeMin", .int(tables.min() ?? 0)), ("tableSizeMean", .double(Double(tables.reduce(0, +)) / Double(max(1, tables.count)))),
            ("requestsTimedOut", .int(self.cores.compactMap { $0?.counters.requestsTimedOut }.reduce(0, +))),
            ("dropped", .object(self.cores.compactMap { $0?.counters.dropped }.reduce(into: [String: Int]()) { acc, d in for (k, v) in d { acc[k, default: 0] += v } }.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("packets", .int(self.packets)), ("bytesPerNodePerSecond", .double(Double(self.bytes) / Double(max(1, self.total)) / self.config.seconds)),
        ]
        return s
    }
}
