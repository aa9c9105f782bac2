import ArgumentParser
import Foundation
import MeshCLI
import MeshCodec
import MeshIncentive

extension MeshBench {
    /// Yuma epoch time against a vectorised numpy implementation run in the same session.
    struct Epoch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One Yuma 3 + liquid alpha epoch (fixed point) at 256, 1024 and 4096 uids, sparse and dense, vs numpy.")

        @Option(help: "Epoch runs per measurement (median reported).")
        var runs: Int = 21

        @Option(help: "Sizes to measure.")
        var sizes: [Int] = [256, 1024, 4096]

        @Flag(help: "Skip the numpy anchor.")
        var noNumpy = false

        @Flag(help: "Print JSON.")
        var json = false

        struct Row: Encodable {
            var uids: Int
            var validators: Int
            var layout: String
            var nonZeroWeights: Int
            var swiftMillisMedian: Double
            var numpyMillisMedian: Double?
            var speedupVsNumpy: Double?
            var peakRSSMiB: Double
        }

        /// A subnet with `validators` validators and `perRow` weights per validator row, and
        /// bonds carried from three earlier epochs.
        static func subnet(n: Int, validators: Int, perRow: Int, seed: UInt64) -> EpochInput {
            var rng = BenchRNG(seed: seed)
            var s = EpochInput(n: n, currentBlock: 10_000, tempo: 360, emission: 1_000_000_000)
            for i in 0..<n {
                s.stake[i] = i < validators ? UInt64.random(in: 1_000_000_000...100_000_000_000, using: &rng) : 0
                s.validatorPermit[i] = i < validators
                s.lastUpdate[i] = 9_990
                s.blockAtRegistration[i] = UInt64.random(in: 0...5_000, using: &rng)
            }
            let quality = (0..<n).map { _ in Double.random(in: 0...1, using: &rng) }
            var rows: [[(Int, UInt16)]] = Array(repeating: [], count: n)
            for i in 0..<validators {
                let dests = perRow >= n ? Array(0..<n) : Array((0..<n).shuffled(using: &rng).prefix(perRow))
                let values = dests.map { j in UInt16(max(0, min(65535, (quality[j] + Double.random(in: -0.1...0.1, using: &rng)) * 65535))) }
                rows[i] = Array(zip(dests, WeightsUpscale.maxUpscale(values)))
            }
            s.weights = SparseMatrix(rows: rows, n: n)
            s.params.yuma3 = true
            s.params.liquidAlpha = true
            s.params.maxAllowedValidators = validators
            for _ in 0..<3 {
                let out = YumaEpoch.run(s, as: I32F32.self)
                EpochScenario.commit(out, to: &s)
            }
            return s
        }

        func run() async throws {
            var rows: [Row] = []
            for n in self.sizes {
                let validators = max(1, n / 16)
                for layout in ["sparse", "dense"] {
                    let perRow = layout == "dense" ? n : n / 4
                    let s = Self.subnet(n: n, validators: validators, perRow: perRow, seed: UInt64(n))
                    var times: [Double] = []
                    for _ in 0..<self.runs {
                        let t0 = Clock.now()
                        let out = YumaEpoch.run(s, as: I32F32.self)
                        times.append(Double(Clock.now() - t0) / 1e6)
                        precondition(out.incentive.count == n)
                    }
                    times.sort()
                    let swiftMs = times[times.count / 2]
                    var numpyMs: Double?
                    if !self.noNumpy { numpyMs = try Self.numpy(s, runs: max(5, self.runs / 3)) }
                    rows.append(Row(uids: n, validators: validators, layout: layout, nonZeroWeights: s.weights.nonZeroCount,
                                    swiftMillisMedian: swiftMs, numpyMillisMedian: numpyMs,
                                    speedupVsNumpy: numpyMs.map { $0 / swiftMs }, peakRSSMiB: Double(peakRSSBytes()) / 1048576))
                }
            }
            if self.json {
                try JSONOutput.print(rows)
                return
            }
            StandardOutput.line("Yuma 3 + liquid alpha, fixed point, bonds carried; validators = uids/16; sparse = uids/4 weights per row")
            StandardOutput.line(pad("uids", 7) + pad("layout", 8) + pad("weights", 10) + pad("swift ms", 11) + pad("numpy ms", 11) + pad("x numpy", 9) + "peak RSS MiB")
            for r in rows {
                StandardOutput.line(pad("\(r.uids)", 7) + pad(r.layout, 8) + pad("\(r.nonZeroWeights)", 10) + pad(fmt(r.swiftMillisMedian, 3), 11)
                    + pad(r.numpyMillisMedian.map { fmt($0, 2) } ?? "-", 11) + pad(r.speedupVsNumpy.map { fmt($0, 1) } ?? "-", 9) + fmt(r.peakRSSMiB, 1))
            }
        }

        /// Runs Tools/bench/yuma_numpy.py on the same input and returns its median epoch time.
        static func numpy(_ s: EpochInput, runs: Int) throws -> Double? {
            let dir = NSTemporaryDirectory() + "/meshbench-\(getpid())"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = dir + "/epoch-\(s.n)-\(s.weights.nonZeroCount).json"
            func rows(_ m: SparseMatrix<UInt16>) -> JSONValue {
                .array((0..<m.n).map { i in .array(m.row(i).map { .array([.int($0.0), .int($0.1)]) }) })
            }
            let input: JSONValue = .object([
                ("n", .int(s.n)), ("current_block", .int(s.currentBlock)), ("stake", .array(s.stake.map { .int($0) })),
                ("validator_permit", .array(s.validatorPermit.map { .bool($0) })),
                ("last_update", .array(s.lastUpdate.map { .int($0) })),
                ("block_at_registration", .array(s.blockAtRegistration.map { .int($0) })),
                ("weights", rows(s.weights)), ("bonds", rows(s.bonds)), ("runs", .int(runs)),
            ])
            try Data(input.serialized().utf8).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("bench/yuma_numpy.py").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [benchPython(), script, path]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { return nil }
            return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// SplitMix64 for reproducible benchmark inputs.
struct BenchRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
