import ArgumentParser
import Foundation
import MeshCLI
import MeshCodec
import MeshFinality
import MeshSim

/// `meshsim`: the deterministic network simulator (CONTRACT.md).
struct MeshSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshsim",
        abstract: "Run Tensormesh's protocol state machines for many nodes in one process under virtual time.",
        discussion: "Every run prints its seed and a trace hash; the same arguments reproduce the same hash.",
        subcommands: [Run.self, Campaign.self])
}

struct SimOptions: ParsableArguments {
    @Option(help: "Scenario: node (whole nodes: the binary's own core), finality, twins, gossip, discovery.")
    var scenario: String
    @Option(help: "Number of nodes.")
    var nodes: Int = 16
    @Option(help: "Validators among the nodes (finality, twins).")
    var validators: Int?
    @Option(help: "Byzantine nodes (finality: silent validators; twins: validators with a twin).")
    var byzantine: Int = 0
    @Option(help: "Message loss probability.")
    var loss: Double = 0
    @Option(help: "One-way link latency in milliseconds.")
    var latency: Double = 25
    @Option(help: "Latency jitter in milliseconds.")
    var jitter: Double = 5
    @Option(help: "Link bandwidth in Mbit/s (0 = unlimited).")
    var bandwidth: Double = 0
    @Option(help: "Duplication probability.")
    var duplication: Double = 0
    @Option(help: "A partition: PERCENT/PERCENT@START-END in seconds, e.g. 50/50@10-40 (repeatable).")
    var partition: [String] = []
    @Option(help: "Virtual seconds to simulate.")
    var seconds: Double = 60
    @Option(help: "Slot duration in milliseconds (finality, twins).")
    var slotMs: Int = 2000
    @Option(help: "Twins: seconds until the network stabilises (GST).")
    var gst: Double = 20
    @Option(help: ArgumentHelp("Finality: honest validators that crash at START and come back at END seconds: N@START-END.", valueName: "N@START-END"))
    var crash: String?
    @Flag(help: "Finality: crashed validators restart from their disk (persisted vote state only) instead of resuming.")
    var restart = false
    @Option(help: "Finality: what Byzantine validators do: silent (withhold everything) or replay (vote, replay observed messages later, send mutated copies).")
    var byzantineMode: String = "silent"
    @Option(help: "Each node's clock is off by up to ±MS milliseconds (finality, twins).")
    var clockSkew: Int = 0
    @Flag(help: "Plant a bug (count equivocators twice) to show that the checkers catch it.")
    var plantBug = false
    @Flag(help: "Give every validator the same stake (default: random stakes in 1...100).")
    var equalStake = false
    @Option(help: ArgumentHelp("Node: every PERIOD seconds N full nodes go offline for DOWN seconds and restart from their store.", valueName: "N@PERIOD:DOWN"))
    var churn: String?
    @Option(help: "Node: transfers submitted per second across the network.")
    var tps: Double = 0
    @Option(help: "Node: outbound peers each node keeps.")
    var outPeers: Int = 8
    @Option(help: "Node: threads that run the nodes (default: one per core). The run and its trace hash do not depend on it.")
    var threads: Int?

    func nodeConfig() throws -> NodeScenarioConfig {
        var c = NodeScenarioConfig()
        c.nodes = self.nodes
        c.validators = self.validators ?? min(self.nodes, 16)
        c.byzantine = self.byzantine
        c.seconds = self.seconds
        c.slotMs = UInt64(self.slotMs)
        c.network = try self.model()
        c.outPeers = self.outPeers
        c.clockSkewMs = UInt64(max(0, self.clockSkew))
        c.transactionsPerSecond = self.tps
        if let t = self.threads, t < 1 || t > 256 { throw CommandFailure.usage("--threads must be 1...256") }
        c.workers = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
        if self.plantBug { c.finality.fault = .countEquivocatorsTwice }
        if let churn = self.churn {
            let parts = churn.split(separator: "@")
            let rest = parts.count == 2 ? parts[1].split(separator: ":") : []
            guard parts.count == 2, let n = Int(parts[0]), rest.count == 2, let period = Double(rest[0]), let down = Double(rest[1]),
                  n >= 0, period > 0, down > 0, down < period else {
                throw CommandFailure.usage("bad --churn \"\(churn)\" (expected N@PERIOD:DOWN, e.g. 2@20:5)")
            }
            c.churnNodes = n
            c.churnPeriod = period
            c.churnDowntime = down
        }
        if let crash = self.crash {
            let (n, a, b) = try Self.window(crash)
            c.restartValidators = n
            c.restartFrom = a
            c.restartAt = b
        }
        return c
    }

    /// Parses N@START-END.
    static func window(_ text: String) throws -> (Int, Double, Double) {
        let parts = text.split(separator: "@")
        let window = parts.count == 2 ? parts[1].split(separator: "-") : []
        guard parts.count == 2, let n = Int(parts[0]), window.count == 2, let a = Double(window[0]), let b = Double(window[1]), a < b else {
            throw CommandFailure.usage("bad --crash \"\(text)\" (expected N@START-END, e.g. 2@10-30)")
        }
        return (n, a, b)
    }

    func model() throws -> NetworkModel {
        var net = NetworkModel()
        net.latency = UInt64(self.latency * 1e6)
        net.jitter = UInt64(self.jitter * 1e6)
        net.loss = self.loss
        net.duplication = self.duplication
        net.bandwidth = UInt64(self.bandwidth * 1e6 / 8)
        for spec in self.partition {
            guard let p = NetworkModel.Partition(spec: spec) else { throw CommandFailure.usage("bad --partition \"\(spec)\" (expected e.g. 50/50@10-40)") }
            net.partitions.append(p)
        }
        return net
    }

    func run(seed: UInt64) throws -> SimSummary {
        let clock = { DispatchTime.now().uptimeNanoseconds }
        switch self.scenario {
        case "node":
            return try NodeScenario(config: try self.nodeConfig(), seed: seed).run(clock: clock)
        case "finality", "twins":
            var c = FinalityScenarioConfig()
            c.nodes = self.nodes
            c.validators = self.validators ?? min(self.nodes, 16)
            c.byzantine = self.byzantine
            c.twins = self.scenario == "twins"
            c.seconds = self.seconds
            c.slotMs = UInt64(self.slotMs)
            c.network = try self.model()
            c.gstSeconds = self.gst
            if self.plantBug { c.finality.fault = .countEquivocatorsTwice }
            if let crash = self.crash {
                let (n, a, b) = try Self.window(crash)
                c.silentValidators = n
                c.silentFrom = a
                c.silentUntil = b
            }
            c.restartAfterCrash = self.restart
            guard let mode = FinalityScenarioConfig.ByzantineMode(rawValue: self.byzantineMode) else {
                throw CommandFailure.usage("--byzantine-mode must be silent or replay")
            }
            c.byzantineMode = mode
            c.clockSkewMs = UInt64(max(0, self.clockSkew))
            if self.equalStake { c.stakeRange = 10...10 }
            return FinalityScenario(config: c, seed: seed).run(clock: clock)
        case "gossip":
            var c = GossipScenarioConfig()
            c.nodes = self.nodes
            c.byzantine = self.byzantine
            c.seconds = max(self.seconds, 30)
            var net = try self.model()
            if self.bandwidth == 0 { net.bandwidth = 20_000_000 / 8 }
            c.network = net
            return GossipScenario(config: c, seed: seed).run(clock: clock)
        case "discovery":
            var c = DiscoveryScenarioConfig()
            c.nodes = self.nodes
            c.seconds = max(self.seconds, 50)
            c.network = try self.model()
            return DiscoveryScenario(config: c, seed: seed).run(clock: clock)
        default:
            throw CommandFailure.usage("unknown scenario \"\(self.scenario)\" (node, finality, twins, gossip, discovery)")
        }
    }
}

extension MeshSimCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one scenario with one seed.")
        @OptionGroup var options: SimOptions
        @Option(help: "The seed.")
        var seed: UInt64 = 1
        @Flag(help: "Print the summary as JSON.")
        var json = false

        func run() async throws {
            let s = try self.options.run(seed: self.seed)
            let peakMiB = Double(ProcessMemory.peakBytes()) / 1_048_576
            if self.json {
                var out = s.json()
                if case .object(let fields) = out { out = .object(fields + [("peakRSSMiB", .double(peakMiB))]) }
                StandardOutput.line(out.serialized(pretty: true))
            } else {
                StandardOutput.line("scenario \(s.scenario), \(s.nodes) nodes, seed \(s.seed), \(s.virtualSeconds) virtual s")
                StandardOutput.line("trace hash \(s.traceHash)")
                StandardOutput.line("safety violations \(s.safetyViolations)")
                for v in s.violations.prefix(5) { StandardOutput.line("  \(v)") }
                for (k, v) in s.extra { StandardOutput.line("\(k) \(v.serialized())") }
                if let d = s.delivered { StandardOutput.line("delivered \(d)") }
                if let p = s.latencyP50Ms, let q = s.latencyP99Ms { StandardOutput.line("latency p50 \(p) ms, p99 \(q) ms") }
                StandardOutput.line("\(s.events) events in \(String(format: "%.2f", s.wallSeconds)) s (\(Int(s.eventsPerSecond)) events/s), peak RSS \(Int(peakMiB)) MiB")
            }
            if s.safetyViolations > 0 {
                StandardError.write("replay: meshsim run \(CommandLine.arguments.dropFirst(2).joined(separator: " "))\n")
                throw ExitCode(1)
            }
        }
    }

    struct Campaign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run many seeds; report violations with the command that replays each.")
        @OptionGroup var options: SimOptions
        @Option(help: "First seed.")
        var from: UInt64 = 1
        @Option(help: "Number of seeds.")
        var count: UInt64 = 100
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            var failing: [UInt64] = []
            var hashes = Set<String>()
            let start = DispatchTime.now().uptimeNanoseconds
            for seed in self.from..<(self.from + self.count) {
                let s = try self.options.run(seed: seed)
                hashes.insert(s.traceHash)
                if s.safetyViolations > 0 {
                    failing.append(seed)
                    StandardError.write("seed \(seed): \(s.violations.first ?? "violation")\n")
                    StandardError.write("  replay: meshsim run --scenario \(self.options.scenario) --nodes \(self.options.nodes) --byzantine \(self.options.byzantine) --seconds \(self.options.seconds)\(self.options.equalStake ? " --equal-stake" : "")\(self.options.plantBug ? " --plant-bug" : "") --seed \(seed)\n")
                }
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("scenario", .string(self.options.scenario)), ("seeds", .int(self.count)),
                    ("failingSeeds", .array(failing.map { .int($0) })), ("distinctTraceHashes", .int(hashes.count)),
                    ("wallSeconds", .double(wall)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("\(self.count) seeds, \(failing.count) with safety violations, \(String(format: "%.1f", wall)) s")
            }
            if !failing.isEmpty { throw ExitCode(1) }
        }
    }
}
