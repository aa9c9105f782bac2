import Foundation
import MeshCodec
import MeshGossip

/// Settings of the `gossip` scenario.
public struct GossipScenarioConfig: Sendable {
    public var nodes = 100
    /// Each node dials this many random others (so the mean degree is about twice that).
    public var dials = 10
    public var largeMessages = 10
    public var largeSize = 1 << 20
    public var smallMessages = 50
    public var smallSize = 1024
    /// Nodes that publish invalid messages at `junkRate` per second each.
    public var byzantine = 0
    public var junkRate = 50.0
    public var seconds: Double = 40
    public var network = NetworkModel()
    public var gossip = GossipConfig()
    public init() {
        self.network.latency = 25_000_000
        self.network.jitter = 2_000_000
        self.network.bandwidth = 20_000_000 / 8
    }
}

/// Many real ``GossipCore``s on simulated links with latency and per-link bandwidth (large
/// frames queue on the link, small control frames interleave as they do over the channel's
/// multiplexed streams). Measures delivery, latency and received copies per message.
public final class GossipScenario {
    let config: GossipScenarioConfig
    let sim: Simulator
    var cores: [GossipCore] = []
    var links: [Int: Link] = [:]
    var published: [MessageID: (at: UInt64, size: Int, topic: String)] = [:]
    var firstReceipt: [MessageID: [Int: UInt64]] = [:]
    var copies: [MessageID: [Int: Int]] = [:]
    var bytesSent: [Int] = []
    var disconnects: [(Int, Int)] = []
    var adjacency: [Set<Int>] = []

    final class Link {
        var queue: [(frame: GossipFrame, id: MessageID?, size: Int)] = []
        var inFlight: (id: MessageID?, started: UInt64, token: UInt64)?
        var token: UInt64 = 0
    }

    public init(config: GossipScenarioConfig, seed: UInt64) {
        self.config = config
        self.sim = Simulator(seed: seed)
    }

    func isByzantine(_ i: Int) -> Bool { i >= self.config.nodes - self.config.byzantine }

    public func run(clock: () -> UInt64) -> SimSummary {
        let started = clock()
        let n = self.config.nodes
        self.bytesSent = Array(repeating: 0, count: n)
        self.adjacency = Array(repeating: [], count: n)
        for _ in 0..<n {
            var rng = self.sim.rng.fork()
            let core = GossipCore(config: self.config.gossip, random: { bound in rng.next() % max(1, bound) })
            self.cores.append(core)
        }
        // A random graph: each node dials `dials` others.
        for i in 0..<n {
            var tries = 0
            var dialled = 0
            while dialled < self.config.dials && tries < 100 {
                tries += 1
                let j = Int(self.sim.rng.next() % UInt64(n))
                guard j != i, !self.adjacency[i].contains(j) else { continue }
                self.adjacency[i].insert(j)
                self.adjacency[j].insert(i)
                self.cores[i].addPeer(j, outbound: true)
                self.cores[j].addPeer(i, outbound: false)
                dialled += 1
            }
        }
        for i in 0..<n {
            self.cores[i].subscribe("blocks", now: .zero)
            self.flush(i)
            self.heartbeat(i, at: 700_000_000 + UInt64(i) * 10_000_000)
        }
        // Publications after the meshes formed: large messages every 2 s, small ones in between.
        let honest = (0..<n).filter { !self.isByzantine($0) }
        for k in 0..<self.config.largeMessages {
            let at = UInt64((5 + Double(k) * 2) * 1e9)
            self.sim.schedule(at: at) { [unowned self] in
                let from = honest[Int(self.sim.rng.next() % UInt64(honest.count))]
                var data = self.sim.rng.bytes(self.config.largeSize)
                data[0] = UInt8(k & 0x7f)
                self.publish(from: from, data: data)
            }
        }
        for k in 0..<self.config.smallMessages {
            let at = UInt64((5.5 + Double(k) * 0.3) * 1e9)
            self.sim.schedule(at: at) { [unowned self] in
                let from = honest[Int(self.sim.rng.next() % UInt64(honest.count))]
                var data = self.sim.rng.bytes(self.config.smallSize)
                data[0] = 0x01
                self.publish(from: from, data: data)
            }
        }
        // Byzantine nodes flood invalid messages.
        for b in (n - self.config.byzantine)..<n where self.config.byzantine > 0 {
            self.junk(b, at: 3_000_000_000)
        }
        self.sim.run(until: UInt64(self.config.seconds * 1e9))
        return self.summary(wall: Double(clock() - started) / 1e9)
    }

    func junk(_ b: Int, at t: UInt64) {
        self.sim.schedule(at: t) { [unowned self] in
            var data = self.sim.rng.bytes(2048)
            data[0] = 0xFF
            self.cores[b].publish(topic: "blocks", data: data, now: self.sim.instant)
            self.flush(b)
            self.junk(b, at: self.sim.now + UInt64(1e9 / self.config.junkRate))
        }
    }

    func publish(from i: Int, data: [UInt8]) {
        let id = self.cores[i].publish(topic: "blocks", data: data, now: self.sim.instant)
        self.published[id] = (self.sim.now, data.count, "blocks")
        self.firstReceipt[id, default: [:]][i] = self.sim.now
        self.flush(i)
    }

    func heartbeat(_ i: Int, at t: UInt64) {
        self.sim.schedule(at: t) { [unowned self] in
            self.cores[i].heartbeat(now: self.sim.instant)
            self.flush(i)
            self.heartbeat(i, at: self.sim.now + self.config.gossip.heartbeat.nanoseconds)
        }
    }

    func link(_ from: Int, _ to: Int) -> Link {
        let key = from * 1_000_003 + to
        if let l = self.links[key] { return l }
        let l = Link()
        self.links[key] = l
        return l
    }

    func flush(_ i: Int) {
        for o in self.cores[i].drain() {
            switch o {
            case .send(let to, let frame):
                self.transmit(frame, from: i, to: to)
            case .cancel(let to, let id):
                self.cancel(id, from: i, to: to)
            case .validate(let m, _):
                // The scenario's application: messages starting 0xFF are invalid.
                self.cores[i].validated(m.id, m.data.first == 0xFF ? .reject : .accept, now: self.sim.instant)
                self.flush(i)
            case .deliver(let m, _):
                if self.firstReceipt[m.id]?[i] == nil, self.published[m.id] != nil { self.firstReceipt[m.id, default: [:]][i] = self.sim.now }
            case .disconnect(let p, _):
                self.disconnects.append((i, p))
                self.cores[i].removePeer(p, now: self.sim.instant)
                self.cores[p].removePeer(i, now: self.sim.instant)
            }
        }
    }

    func delay() -> UInt64 {
        var d = self.config.network.latency
        if self.config.network.jitter > 0 { d += self.sim.rng.next() % (self.config.network.jitter + 1) }
        return d
    }

    func transmit(_ frame: GossipFrame, from: Int, to: Int) {
        let size = frame.wireSize
        self.sim.trace(20, UInt64(from), UInt64(to), UInt64(size))
        if size < 1024 || self.config.network.bandwidth == 0 {
            // Control frames interleave with bulk data on the channel: latency only.
            self.bytesSent[from] += size
            let d = self.delay() + (self.config.network.bandwidth > 0 ? UInt64(size) * 1_000_000_000 / self.config.network.bandwidth : 0)
            self.sim.schedule(after: d) { [unowned self] in self.arrive(frame, from: from, to: to) }
            return
        }
        var id: MessageID?
        if case .message(let m) = frame { id = m.id }
        let l = self.link(from, to)
        l.queue.append((frame, id, size))
        if l.inFlight == nil { self.startNext(from, to) }
    }

    func startNext(_ from: Int, _ to: Int) {
        let l = self.link(from, to)
        guard !l.queue.isEmpty else { return }
        let (frame, id, size) = l.queue.removeFirst()
        l.token += 1
        let token = l.token
        l.inFlight = (id, self.sim.now, token)
        let duration = UInt64(size) * 1_000_000_000 / self.config.network.bandwidth
        self.sim.schedule(after: duration) { [unowned self] in
            guard let f = l.inFlight, f.token == token else { return }  // cancelled
            l.inFlight = nil
            self.bytesSent[from] += size
            let d = self.delay()
            self.sim.schedule(after: d) { [unowned self] in self.arrive(frame, from: from, to: to) }
            self.startNext(from, to)
        }
    }

    func cancel(_ id: MessageID, from: Int, to: Int) {
        let l = self.link(from, to)
        l.queue.removeAll { $0.id == id }
        if let f = l.inFlight, f.id == id {
            // Abort: what was already sent counts as spent bandwidth.
            let sent = Int(Double(self.sim.now - f.started) * Double(self.config.network.bandwidth) / 1e9)
            self.bytesSent[from] += sent
            l.inFlight = nil
            self.startNext(from, to)
        }
    }

    func arrive(_ frame: GossipFrame, from: Int, to: Int) {
        if case .message(let m) = frame, self.published[m.id] != nil {
            self.copies[m.id, default: [:]][to, default: 0] += 1
        }
        self.cores[to].receive(frame, from: from, now: self.sim.instant)
        self.flush(to)
    }

    func summary(wall: Double) -> SimSummary {
        let n = self.config.nodes
        let honest = (0..<n).filter { !self.isByzantine($0) }
        var latencies: [Double] = []
        var within1s = 0, reachedAll = 0, deliveredPairs = 0
        var copiesLarge: [Double] = [], copiesSmall: [Double] = []
        var p95Large: [Double] = []
        for (id, pub) in self.published {
            let got = self.firstReceipt[id] ?? [:]
            let honestGot = honest.filter { got[$0] != nil }
            deliveredPairs += honestGot.count
            if honestGot.count == honest.count { reachedAll += 1 }
            let lats = honestGot.map { Double(got[$0]! - pub.at) / 1e6 }
            latencies += lats
            if pub.size >= self.config.largeSize {
                let sorted = lats.sorted()
                let p95 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(honest.count) * 0.95))]
                p95Large.append(p95)
                if honestGot.count >= Int((Double(honest.count) * 0.95).rounded(.up)), p95 <= 1000 { within1s += 1 }
            }
            let c = self.copies[id] ?? [:]
            let receivers = honest.filter { got[$0] != nil && got[$0]! > pub.at || (got[$0] != nil && c[$0] != nil) }
            let mean = receivers.isEmpty ? 0 : Double(receivers.map { c[$0] ?? 0 }.reduce(0, +)) / Double(receivers.count)
            if pub.size >= self.config.largeSize { copiesLarge.append(mean) } else { copiesSmall.append(mean) }
        }
        let pct = Percentiles.of(latencies, [50, 99])
        let large = self.published.values.filter { $0.size >= self.config.largeSize }.count
        let delivered = Double(deliveredPairs) / Double(max(1, self.published.count * honest.count))
        var s = SimSummary(scenario: "gossip", nodes: n, seed: self.sim.seed, virtualSeconds: self.config.seconds,
                           traceHash: self.sim.traceHash(), safetyViolations: 0, delivered: delivered,
                           latencyP50Ms: latencies.isEmpty ? nil : pct[0], latencyP99Ms: latencies.isEmpty ? nil : pct[1],
                           events: self.sim.eventCount)
        s.wallSeconds = wall
        let mean = { (a: [Double]) in a.isEmpty ? 0 : a.reduce(0, +) / Double(a.count) }
        let honestCounters = honest.map { self.cores[$0].counters }
        s.extra = [
            ("messages", .int(self.published.count)),
            ("messagesReachingEveryHonestNode", .int(reachedAll)),
            ("largeMessages", .int(large)), ("largeMessagesTo95PercentWithin1s", .int(within1s)),
            ("largeP95LatencyMsMean", .double(mean(p95Large))),
            ("copiesPerNodeLarge", .double(mean(copiesLarge))), ("copiesPerNodeSmall", .double(mean(copiesSmall))),
            ("bytesSentPerNodeMiB", .double(Double(honest.map { self.bytesSent[$0] }.reduce(0, +)) / Double(honest.count) / 1_048_576)),
            ("invalidReceived", .int(honestCounters.map { $0.invalid }.reduce(0, +))),
            ("byzantineDisconnected", .int(Set(self.disconnects.filter { self.isByzantine($0.1) }.map { $0.1 }).count)),
            ("honestDisconnected", .int(Set(self.disconnects.filter { !self.isByzantine($0.1) && !self.isByzantine($0.0) }.map { $0.1 }).count)),
            ("idontwantSent", .int(honestCounters.map { $0.idontwantSent }.reduce(0, +))),
            ("ihaveSent", .int(honestCounters.map { $0.ihaveSent }.reduce(0, +))),
            ("meanDegree", .double(Double(self.adjacency.map { $0.count }.reduce(0, +)) / Double(n))),
        ]
        return s
    }
}
