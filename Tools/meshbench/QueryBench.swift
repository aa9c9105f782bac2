import ArgumentParser
import Foundation
import MeshChannel
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshQuery
import MeshSockets
import Synchronization

extension MeshBench {
    /// The miner half of `meshbench query`: axons in their own process.
    struct QueryServer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "query-server", abstract: "Benchmark miners (started by `meshbench query`).", shouldDisplay: false)

        @Option var axons: Int = 1
        @Option var sleepMs: UInt64 = 0
        @Option var allow: [String] = []

        func run() async throws {
            let loops = try (0..<2).map { try EventLoop(name: "bench.axon.\($0)") }
            var directory: [Ed25519.PublicKey: CallerInfo] = [:]
            for (i, h) in self.allow.enumerated() {
                guard let k = Ed25519.PublicKey(hex: h) else { throw ValidationError("bad --allow key") }
                directory[k] = CallerInfo(uid: UInt16(i), stake: 1000, validatorPermit: true)
            }
            var limits = AxonLimits()
            limits.maxConcurrent = 4096
            limits.ratePerSecond = 1e6
            limits.burst = 1e6
            // A miner serving one busy validator over one channel: thousands of requests in
            // flight on it, past the defaults (128 streams, 128 waiting for their header).
            limits.maxPendingHeaders = 4096
            var channel = ChannelConfig()
            channel.maxStreams = 4096
            var servers: [Axon] = []
            let sleep = self.sleepMs
            for i in 0..<self.axons {
                let key = Ed25519.PrivateKey()
                let axon = Axon(hotkey: key, netuid: 1, genesisHash: benchGenesis, loop: loops[i % loops.count], limits: limits, channel: channel)
                axon.attach(synapse: "work") { _ in
                    if sleep > 0 { try await Task.sleep(nanoseconds: sleep * 1_000_000) }
                    return .body([UInt8](repeating: 7, count: 64))
                }
                axon.attach(synapse: "echo") { req in .body(req.body) }
                axon.attach(synapse: "stats") { [axon] _ in
                    let s = await axon.statistics()
                    let o: JSONValue = .object([("maxInFlight", .int(s.maxInFlight)), ("refusedBeforeBody", .int(s.refusedBeforeBody)),
                                                ("refusalNanos", .int(s.refusalNanos)), ("handled", .int(s.handled)),
                                                ("byStatus", .object(s.byStatus.sorted { $0.key < $1.key }.map { (String($0.key), .int($0.value)) }))])
                    return .body(Array(o.serialized().utf8))
                }
                axon.updateDirectory(directory)
                let addr = try await axon.start(listen: SocketAddress("127.0.0.1:0")!)
                StandardOutput.line("AXON \(addr.port) \(key.publicKey.hex)")
                servers.append(axon)
            }
            StandardOutput.line("READY")
            while let line = readLine(), line != "quit" {}
            for a in servers { a.stop() }
            for l in loops { l.shutdown() }
        }
    }

    /// Query routing on loopback: in-flight capacity, fan-out overhead, junk refusal.
    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Query routing on loopback (miners in a second process): 2,000 in flight, fan-out to 256, junk under load.")

        @Option(help: "Concurrent requests for the in-flight test.")
        var inflight: Int = 2000
        @Option(help: "Miners for the fan-out test.")
        var fanout: Int = 256
        @Option(help: "Fan-out rounds.")
        var rounds: Int = 60
        @Option(help: "Junk requests per second in the junk test.")
        var junkRate: Int = 10_000
        @Option(help: "Seconds of each phase of the junk test.")
        var seconds: Double = 10
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            var report: [(String, String, String)] = []
            let loop = try EventLoop(name: "bench.dendrite")
            defer { loop.shutdown() }
            let validators = (0..<8).map { _ in Ed25519.PrivateKey() }
            let allow = validators.flatMap { ["--allow", $0.publicKey.hex] }

            // 1. In-flight capacity of one miner process.
            do {
                let server = try AxonProcess(["--axons", "1", "--sleep-ms", "1000"] + allow)
                defer { server.stop() }
                let target = server.endpoints[0]
                let dendrites = validators.map { Dendrite(hotkey: $0, genesisHash: benchGenesis, loop: loop) }
                defer { dendrites.forEach { $0.close() } }
                // Warm the channels.
                for d in dendrites { _ = await d.call(target, netuid: 1, synapse: "echo", body: [1], timeout: 5) }
                let per = self.inflight / dendrites.count
                let start = Clock.now()
                let results = await withTaskGroup(of: [QueryResult].self) { g in
                    for d in dendrites { g.addTask { await d.query([AxonEndpoint](repeating: target, count: per), netuid: 1, synapse: "work", body: [], timeout: 30) } }
                    var all: [QueryResult] = []
                    for await r in g { all += r }
                    return all
                }
                let wall = Double(Clock.now() - start) / 1e9
                let ok = results.filter(\.isSuccess).count
                let stats = await Self.stats(dendrites[0], target)
                let maxInFlight = stats["maxInFlight"]?.uint64 ?? 0
                report.append(("in-flight requests on one miner (handler sleeps 1 s)", "\(maxInFlight) at once, \(ok)/\(results.count) ok in \(fmt(wall)) s", "target >= 2000"))
            }

            // 2. Fan-out to many miners.
            do {
                let server = try AxonProcess(["--axons", String(self.fanout), "--sleep-ms", "20"] + allow)
                defer { server.stop() }
                let d = Dendrite(hotkey: validators[0], genesisHash: benchGenesis, loop: loop)
                defer { d.close() }
                _ = await d.query(server.endpoints, netuid: 1, synapse: "work", body: [], timeout: 10)  // connect
                var overheads: [Double] = []
                var failures = 0
                for _ in 0..<self.rounds {
                    let start = Clock.now()
                    let rs = await d.query(server.endpoints, netuid: 1, synapse: "work", body: [], timeout: 5)
                    let wall = Double(Clock.now() - start) / 1e6
                    failures += rs.filter { !$0.isSuccess }.count
                    let slowest = Double(rs.map(\.processingMicros).max() ?? 0) / 1000
                    overheads.append(wall - slowest)
                }
                overheads.sort()
                let p50 = overheads[overheads.count / 2], p99 = overheads[min(overheads.count - 1, overheads.count * 99 / 100)]
                report.append(("fan-out to \(self.fanout) miners: added over slowest processing", "p50 \(fmt(p50)) ms, p99 \(fmt(p99)) ms (\(failures) failed)", "target p99 <= 50 ms"))
            }

            // 3. Junk under load.
            do {
                let server = try AxonProcess(["--axons", "1", "--sleep-ms", "0"] + allow)
                defer { server.stop() }
                let target = server.endpoints[0]
                let d = Dendrite(hotkey: validators[0], genesisHash: benchGenesis, loop: loop)
                defer { d.close() }
                _ = await d.call(target, netuid: 1, synapse: "echo", body: [1], timeout: 5)
                let baseline0 = await Self.legitLatencies(d, target, seconds: self.seconds)
                let baseline = await Self.legitLatencies(d, target, seconds: self.seconds)
                StandardError.write("baseline p99 twice: \(fmt(Self.p99(baseline0), 3)) / \(fmt(Self.p99(baseline), 3)) ms; p50 \(fmt(baseline.sorted()[baseline.count / 2], 3))\n")
                let before = await Self.stats(d, target)
                let junkLoop = try EventLoop(name: "bench.junk")
                let junk = JunkSender(loop: junkLoop, target: target, registered: validators[1])
                let exp = ProcessInfo.processInfo.environment["MESHBENCH_EXP"] ?? ""
                if exp != "noconnect" { try await junk.connect(count: 4) }
                if exp == "" { junk.start(ratePerSecond: self.junkRate) }
                let loaded = await Self.legitLatencies(d, target, seconds: self.seconds)
                let sent = junk.stop()
                let reconnects = junk.reconnects.load(ordering: .relaxed)
                junkLoop.shutdown()
                let after = await Self.stats(d, target)
                let refused = Double((after["refusedBeforeBody"]?.uint64 ?? 0) - (before["refusedBeforeBody"]?.uint64 ?? 0))
                let nanos = Double((after["refusalNanos"]?.uint64 ?? 0) - (before["refusalNanos"]?.uint64 ?? 0))
                let p99a = Self.p99(baseline), p99b = Self.p99(loaded)
                StandardError.write("loaded p50 \(fmt(loaded.sorted()[loaded.count / 2], 3)) ms, samples \(baseline.count) / \(loaded.count)\n")
                report.append(("junk refused before the body (forged caller, unregistered, oversized)", "\(Int(refused)) of \(sent) sent at \(fmt(Double(sent) / self.seconds, 0))/s, \(fmt(refused > 0 ? nanos / refused / 1000 : 0, 1)) us each in the axon; \(reconnects) junk connections closed and redialled", "target <= 100 us"))
                report.append(("legit p99 without / with junk", "\(fmt(p99a, 3)) / \(fmt(p99b, 3)) ms (\(fmt((p99b / p99a - 1) * 100, 1))%)", "target <= +10%"))
            }

            if self.json {
                StandardOutput.line(JSONValue.object([("results", .array(report.map { .object([("name", .string($0.0)), ("result", .string($0.1)), ("target", .string($0.2))]) }))]).serialized(pretty: true))
            } else {
                for (n, r, t) in report { StandardOutput.line("\(pad(n, 66)) \(pad(r, 58)) \(t)") }
            }
        }

        static func stats(_ d: Dendrite, _ e: AxonEndpoint) async -> JSONValue {
            let r = await d.call(e, netuid: 1, synapse: "stats", body: [], timeout: 5)
            return (try? JSONValue.parse(r.body)) ?? .null
        }

        /// Echo requests at ~200/s for `seconds`; their latencies in ms.
        static func legitLatencies(_ d: Dendrite, _ e: AxonEndpoint, seconds: Double) async -> [Double] {
            var out: [Double] = []
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                let rs = await d.query([AxonEndpoint](repeating: e, count: 4), netuid: 1, synapse: "echo", body: [UInt8](repeating: 1, count: 256), timeout: 5)
                out += rs.filter(\.isSuccess).map(\.latencyMs)
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            return out
        }

        static func p99(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, s.count * 99 / 100)]
        }
    }
}

/// A `meshbench query-server` child process and its axons.
final class AxonProcess {
    let process = Process()
    let input = Pipe()
    var endpoints: [AxonEndpoint] = []

    init(_ args: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        self.process.arguments = ["query-server"] + args
        let out = Pipe()
        self.process.standardOutput = out
        self.process.standardInput = self.input
        try self.process.run()
        let handle = out.fileHandleForReading
        var buffer = ""
        while true {
            let d = handle.availableData
            if d.isEmpty { throw CommandFailure("benchmark miners did not start") }
            buffer += String(decoding: d, as: UTF8.self)
            if buffer.contains("READY") { break }
        }
        for line in buffer.split(separator: "\n") where line.hasPrefix("AXON ") {
            let parts = line.split(separator: " ")
            let key = Ed25519.PublicKey(hex: String(parts[2]))!
            self.endpoints.append(AxonEndpoint(hotkey: key, nodeId: key, address: SocketAddress("127.0.0.1:\(parts[1])")!))
        }
    }

    func stop() {
        try? self.input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        try? self.input.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }
}

/// Sends junk request headers at a steady rate: forged signatures from a registered hotkey,
/// unregistered callers, and oversized bodies (header only; the body never follows).
final class JunkSender: SecurePeerDelegate, @unchecked Sendable {
    // Safety: confined to `loop`; `sent` is atomic.
    let loop: EventLoop
    let target: AxonEndpoint
    let registered: Ed25519.PrivateKey
    var hosts: [SecureHost] = []
    var peers: [SecurePeer] = []
    var stopped = false
    let reconnects = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let ready = Atomic<Int>(0)
    var timer: TimerID?
    var templates: [[UInt8]] = []
    var counter: UInt64 = 0

    init(loop: EventLoop, target: AxonEndpoint, registered: Ed25519.PrivateKey) {
        self.loop = loop
        self.target = target
        self.registered = registered
    }

    func connect(count: Int) async throws {
        try await self.loop.submit { for _ in 0..<count { self.dialOne() } }
        while self.ready.load(ordering: .relaxed) < count { try await Task.sleep(nanoseconds: 10_000_000) }
    }

    /// Dials with a fresh identity (a banned one would be refused), as a persistent attacker would.
    func dialOne() {
        let host = SecureHost(loop: self.loop, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())) { Hello(genesisHash: benchGenesis) }
        host.delegate = self
        self.hosts.append(host)
        _ = try? host.dial(self.target.address)
    }

    func header(kind: Int, nonce: UInt64) -> [UInt8] {
        let deadline = UInt64(Date().timeIntervalSince1970 * 1000) + 5000
        switch kind {
        case 0:  // forged: a registered caller named on someone else's channel
            var h = QueryRequestHeader(netuid: 1, synapse: "echo", caller: self.registered, target: self.target.hotkey, nonce: nonce, deadline: deadline, body: [1])
            h.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 9, count: 64))
            return h.encoded
        case 1:  // unregistered caller
            return QueryRequestHeader(netuid: 1, synapse: "echo", caller: Ed25519.PrivateKey(), target: self.target.hotkey, nonce: nonce, deadline: deadline, body: [1]).encoded
        default:  // oversized
            var h = QueryRequestHeader(netuid: 1, synapse: "echo", caller: self.registered, target: self.target.hotkey, nonce: nonce, deadline: deadline, body: [1])
            h.bodyLength = 1 << 30
            return h.encoded
        }
    }

    func start(ratePerSecond: Int) {
        self.loop.execute {
            // Pre-build a pool of junk (signing costs must not throttle the sender).
            self.templates = (0..<300).map { self.header(kind: $0 % 3, nonce: UInt64($0)) }
            let started = Clock.now()
            func tick() {
                // Send what the rate asks for by now (the timer's granularity does not cap the rate).
                let due = Int(Double(Clock.now() - started) / 1e9 * Double(ratePerSecond))
                var n = due - self.sent.load(ordering: .relaxed)
                var i = 0
                while n > 0 && !self.peers.isEmpty {
                    let p = self.peers[i % self.peers.count]
                    i += 1
                    n -= 1
                    guard let s = try? p.openStream(QueryProtocol.query) else { continue }
                    self.counter &+= 1
                    try? p.send(self.templates[Int(self.counter % UInt64(self.templates.count))], on: s, finish: true)
                    self.sent.add(1, ordering: .relaxed)
                }
                self.timer = self.loop.schedule(after: 1_000_000) { tick() }
            }
            tick()
        }
    }

    func stop() -> Int {
        let done = Mutex(false)
        self.loop.execute {
            if let t = self.timer { self.loop.cancel(t) }
            self.timer = nil
            self.stopped = true
            for h in self.hosts { h.shutdown() }
            done.withLock { $0 = true }
        }
        while !done.withLock({ $0 }) { usleep(1000) }
        return self.sent.load(ordering: .relaxed)
    }

    func peerReady(_ peer: SecurePeer) {
        self.peers.append(peer)
        self.ready.add(1, ordering: .relaxed)
    }
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {}
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {}
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {}
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        self.peers.removeAll { $0 === peer }
        self.hosts.removeAll { h in h.peers.isEmpty && h.listener == nil }
        guard !self.stopped else { return }
        self.reconnects.add(1, ordering: .relaxed)
        self.dialOne()
    }
}
