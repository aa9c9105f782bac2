import ArgumentParser
import Foundation
import MeshCLI
import MeshCodec
import MeshIncentive

extension MeshBench {
    /// Yuma epoch time against a vectorised numpy implementation run in the same session.
    struct Epoch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One Yuma 3 + liquid alpha epoch (fixed point), uniform and realistic subnets, sparse and dense, vs numpy float64.",
            discussion: """
                Workloads (seeded, see EpochWorkload.swift): `uniform` (validators weight a random quarter of the \
                uids) and `realistic` (skewed miner popularity, dust stake, 1 % fresh registrations, stale validators, \
                weights older than registrations, commit-reveal, bonds carried from earlier epochs). Each row times \
                YumaEpoch.run directly and through EpochScenario.run (the path `tensormesh epoch --scenario` takes), \
                and the numpy model of the same input (Tools/bench/yuma_numpy.py). Peak RSS is the process's high-water \
                mark while the epochs of that row ran (reset before each row).
                """)

        @Option(help: "Epoch runs per measurement (median reported).")
        var runs: Int = 21

        @Option(help: "Sizes to measure.")
        var sizes: [Int] = [256, 1024, 4096, 16384]

        @Option(help: "Workloads: uniform, realistic (repeatable).")
        var workload: [String] = ["realistic", "uniform"]

        @Option(help: "Layouts: sparse (n/4 weights per row), dense (full rows) (repeatable).")
        var layout: [String] = ["sparse", "dense"]

        @Option(help: "Largest size measured in the dense layout.")
        var denseMax: Int = 4096

        @Option(help: "Seed of the generators.")
        var seed: UInt64 = 16

        @Option(help: "Write the realistic input at this size as a `tensormesh epoch` scenario to --scenario-out.")
        var scenarioSize: Int?

        @Option(help: "File for --scenario-size.")
        var scenarioOut: String?

        @Flag(help: "Skip the numpy anchor.")
        var noNumpy = false

        @Flag(help: "Print JSON: a list of {uids, layout, workload, swiftMillis, numpyMillis, peakRSSMiB, ...}.")
        var json = false

        struct Row: Encodable {
            var uids: Int
            var validators: Int
            var layout: String
            var workload: String
            var nonZeroWeights: Int
            var bondEntries: Int
            /// Median of YumaEpoch.run, and the fastest and slowest run.
            var swiftMillis: Double
            var swiftMillisMin: Double
            var swiftMillisMax: Double
            /// Median through EpochScenario.run (the `tensormesh epoch --scenario` path).
            var scenarioMillis: Double
            var numpyMillis: Double?
            var speedupVsNumpy: Double?
            var peakRSSMiB: Double
            /// FNV-1a over every output the chain stores (consensus, trust, incentive, dividends,
            /// emissions, bonds): equal digests mean bit-identical epochs across versions.
            var outputDigest: String
        }

        func validate() throws {
            guard self.runs >= 1 else { throw ValidationError("--runs must be at least 1") }
            for w in self.workload where EpochWorkload(rawValue: w) == nil { throw ValidationError("unknown workload \(w)") }
            for l in self.layout where l != "sparse" && l != "dense" { throw ValidationError("unknown layout \(l)") }
            for n in self.sizes where n < 16 || n > 65536 { throw ValidationError("sizes must be in 16...65536") }
            if (self.scenarioSize == nil) != (self.scenarioOut == nil) { throw ValidationError("--scenario-size and --scenario-out go together") }
        }

        func run() async throws {
            if let n = self.scenarioSize, let out = self.scenarioOut {
                let s = EpochWorkload.realistic(n: n, dense: false, seed: self.seed &+ UInt64(n))
                try Data(Self.scenarioJSON(s).serialized().utf8).write(to: URL(fileURLWithPath: out))
                return
            }
            var rows: [Row] = []
            for workloadName in self.workload {
                let workload = EpochWorkload(rawValue: workloadName)!
                for n in self.sizes {
                    for layout in self.layout where layout == "sparse" || n <= self.denseMax {
                        let s = workload.input(n: n, dense: layout == "dense", seed: self.seed &+ UInt64(n))
                        rows.append(try self.measure(s, layout: layout, workload: workloadName))
                        if !self.json { StandardError.write("epoch: \(workloadName) \(n) \(layout) done\n") }
                    }
                }
            }
            if self.json {
                try JSONOutput.print(rows)
                return
            }
            StandardOutput.line("Yuma 3 + liquid alpha, fixed point; validators = min(256, uids/16); sparse = uids/4 weights per row; numpy float64 in the same run")
            StandardOutput.line(pad("workload", 11) + pad("uids", 7) + pad("layout", 8) + pad("weights", 9) + pad("bonds", 9)
                + pad("swift ms", 17) + pad("scenario ms", 12) + pad("numpy ms", 10) + pad("x numpy", 9) + "peak RSS MiB")
            for r in rows {
                StandardOutput.line(pad(r.workload, 11) + pad("\(r.uids)", 7) + pad(r.layout, 8) + pad("\(r.nonZeroWeights)", 9) + pad("\(r.bondEntries)", 9)
                    + pad("\(fmt(r.swiftMillis, 3)) (\(fmt(r.swiftMillisMin, 2))-\(fmt(r.swiftMillisMax, 2)))", 17)
                    + pad(fmt(r.scenarioMillis, 3), 12) + pad(r.numpyMillis.map { fmt($0, 2) } ?? "-", 10)
                    + pad(r.speedupVsNumpy.map { fmt($0, 1) } ?? "-", 9) + fmt(r.peakRSSMiB, 1))
            }
        }

        func measure(_ s: EpochInput, layout: String, workload: String) throws -> Row {
            ProcessMemory.resetPeak()
            var times: [Double] = []
            var last: EpochOutput<I32F32>?
            for _ in 0..<self.runs {
                let t0 = Clock.now()
                let out = YumaEpoch.run(s, as: I32F32.self)
                times.append(Double(Clock.now() - t0) / 1e6)
                last = out
            }
            let digest = Self.digest(last!)
            let peak = Double(ProcessMemory.peakBytes()) / 1048576
            times.sort()
            let swiftMs = times[times.count / 2]
            // The same epoch through the scenario runner (what `tensormesh epoch` runs).
            let scenario = EpochScenario(path: .sparse, initial: s, steps: [EpochScenario.Step(actions: [])])
            let results = try scenario.run(as: I32F32.self, repeat: max(3, self.runs), clock: Clock.now)
            let scenarioMs = Double(results.first?.epochNanosMedian ?? 0) / 1e6
            var numpyMs: Double?
            if !self.noNumpy { numpyMs = try Self.numpy(s, runs: max(5, self.runs / 3)) }
            return Row(uids: s.n, validators: s.validatorPermit.filter { $0 }.count, layout: layout, workload: workload,
                       nonZeroWeights: s.weights.nonZeroCount, bondEntries: s.bonds.nonZeroCount,
                       swiftMillis: swiftMs, swiftMillisMin: times.first!, swiftMillisMax: times.last!, scenarioMillis: scenarioMs,
                       numpyMillis: numpyMs, speedupVsNumpy: numpyMs.map { $0 / swiftMs }, peakRSSMiB: peak, outputDigest: digest)
        }

        static func digest(_ o: EpochOutput<I32F32>) -> String {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            func mix(_ v: UInt64) { for k in 0..<8 { h = (h ^ ((v >> (8 * UInt64(k))) & 0xff)) &* 0x100_0000_01b3 } }
            for v in o.consensus + o.incentive + o.dividends + o.validatorTrust + o.activeStake { mix(UInt64(bitPattern: v.bits)) }
            for v in o.serverEmission + o.validatorEmission + o.combinedEmission { mix(v) }
            for p in o.newValidatorPermit { mix(p ? 1 : 0) }
            for row in o.newBonds {
                mix(UInt64(row?.count ?? .max))
                for (j, b) in row ?? [] { mix(UInt64(j) << 16 | UInt64(b)) }
            }
            for k in 0..<o.weightsNorm.nonZeroCount { mix(UInt64(o.weightsNorm.columns[k])); mix(UInt64(bitPattern: o.weightsNorm.values[k].bits)) }
            return String(h, radix: 16)
        }

        static func rowsJSON(_ m: SparseMatrix<UInt16>) -> JSONValue {
            .array((0..<m.n).map { i in .array(m.row(i).map { .array([.int($0.0), .int($0.1)]) }) })
        }

        /// The input as a `tensormesh epoch` scenario (yuma.md section 11): one step, one epoch.
        static func scenarioJSON(_ s: EpochInput) -> JSONValue {
            let p = s.params
            return .object([
                ("path", .string("sparse")),
                ("init", .object([
                    ("n", .int(s.n)), ("current_block", .int(s.currentBlock)), ("tempo", .int(s.tempo)), ("emission", .int(s.emission)),
                    ("last_mechanism_step_block", .int(s.lastMechanismStepBlock)),
                    ("stake", .array(s.stake.map { .int($0) })),
                    ("validator_permit", .array(s.validatorPermit.map { .bool($0) })),
                    ("last_update", .array(s.lastUpdate.map { .int($0) })),
                    ("block_at_registration", .array(s.blockAtRegistration.map { .int($0) })),
                    ("weights", Self.rowsJSON(s.weights)), ("bonds", Self.rowsJSON(s.bonds)),
                    ("commit_reveal_enabled", .bool(s.commitRevealEnabled)),
                    ("commit_block", .array(s.commitBlock.map { $0.map { .int($0) } ?? .null })),
                    ("params", .object([
                        ("yuma3", .bool(p.yuma3)), ("liquid_alpha", .bool(p.liquidAlpha)),
                        ("max_allowed_validators", .int(p.maxAllowedValidators)),
                    ])),
                ])),
                ("steps", .array([.object([])])),
            ])
        }

        /// Runs Tools/bench/yuma_numpy.py on the same input and returns its median epoch time.
        static func numpy(_ s: EpochInput, runs: Int) throws -> Double? {
            let dir = NSTemporaryDirectory() + "/meshbench-\(getpid())"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = dir + "/epoch-\(s.n)-\(s.weights.nonZeroCount).json"
            let p = s.params
            let input: JSONValue = .object([
                ("n", .int(s.n)), ("current_block", .int(s.currentBlock)), ("tempo", .int(s.tempo)),
                ("activity_cutoff", .int(s.effectiveActivityCutoff)),
                ("last_mechanism_step_block", .int(s.lastMechanismStepBlock)),
                ("stake", .array(s.stake.map { .int($0) })),
                ("validator_permit", .array(s.validatorPermit.map { .bool($0) })),
                ("last_update", .array(s.lastUpdate.map { .int($0) })),
                ("block_at_registration", .array(s.blockAtRegistration.map { .int($0) })),
                ("commit_reveal_enabled", .bool(s.commitRevealEnabled)),
                ("commit_block", .array(s.commitBlock.map { $0.map { .int($0) } ?? .null })),
                ("max_allowed_validators", .int(p.maxAllowedValidators)),
                ("weights", Self.rowsJSON(s.weights)), ("bonds", Self.rowsJSON(s.bonds)), ("runs", .int(runs)),
            ])
            try Data(input.serialized().utf8).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("bench/yuma_numpy.py").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [benchPython(), script, path]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { return nil }
            return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
