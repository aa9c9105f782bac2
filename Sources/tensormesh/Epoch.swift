import ArgumentParser
import Foundation
import MeshCLI
import MeshCodec
import MeshIncentive

extension Tensormesh {
    /// `tensormesh epoch --scenario FILE`: one or more Yuma Consensus epochs, offline.
    struct Epoch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run Yuma Consensus epochs offline on a JSON scenario and print every output as JSON.",
            discussion: """
                The scenario is {"path", "init", "steps"} as in specs/yuma.md section 11 (the format of \
                Tests/Vectors/yuma-cases.json); omitted hyperparameters take subtensor's defaults. Each step \
                applies its actions, then runs one epoch; bonds and permits carry over. The output is \
                {"steps": [OUT, ...]}. Use it to try hyperparameters and attacks (weight copying, a cabal) \
                before changing a live subnet. A malformed scenario exits with code 2 and names the field.
                """)

        @Option(name: .long, help: ArgumentHelp("The scenario file (JSON).", valueName: "FILE"))
        var scenario: String

        @Option(name: .long, help: "Run each step's epoch N times and report the median time.")
        var `repeat`: Int = 1

        @Flag(name: .long, help: "Compute in float64 instead of the chain's fixed point (analysis only; not bit-exact).")
        var float = false

        @Flag(name: .long, help: "Print JSON (the output is always JSON; accepted for uniformity).")
        var json = false

        @Flag(name: .long, help: "Indent the JSON.")
        var pretty = false

        func validate() throws {
            guard self.repeat >= 1 && self.repeat <= 1_000_000 else { throw ValidationError("--repeat must be between 1 and 1000000") }
        }

        func run() async throws {
            let bytes: [UInt8]
            do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: self.scenario))) } catch {
                throw CommandFailure("cannot read \(self.scenario): \(error.localizedDescription)")
            }
            let parsed: EpochScenario
            do { parsed = try EpochScenario.parse(bytes: bytes) } catch {
                throw CommandFailure.usage("malformed scenario: \(error)")
            }
            do {
                try parsed.initial.validate()
            } catch {
                throw CommandFailure.usage("malformed scenario: init.\(error)")
            }
            let output: JSONValue
            do {
                output = self.float ? try Self.render(parsed, as: Double.self, repeat: self.repeat)
                                    : try Self.render(parsed, as: I32F32.self, repeat: self.repeat)
            } catch let error as EpochScenario.ActionError {
                throw CommandFailure.usage("malformed scenario: \(error)")
            }
            StandardOutput.line(output.serialized(pretty: self.pretty))
        }

        static func render<S: YumaScalar>(_ scenario: EpochScenario, as: S.Type, repeat count: Int) throws -> JSONValue {
            let results = try scenario.run(as: S.self, repeat: count, clock: { DispatchTime.now().uptimeNanoseconds })
            var members: [(String, JSONValue)] = [
                ("steps", .array(results.map { r in r.output.map { $0.json(storedBonds: r.storedBonds) } ?? .object([]) })),
            ]
            if count > 1 {
                let medians = results.compactMap { $0.epochNanosMedian }.sorted()
                let overall = medians.isEmpty ? 0 : Double(medians[medians.count / 2]) / 1e6
                members.append(("timing", .object([
                    ("epochMillisMedian", .double(overall)),
                    ("perStepMillisMedian", .array(results.map { r in r.epochNanosMedian.map { .double(Double($0) / 1e6) } ?? .null })),
                    ("repeat", .int(count)),
                ])))
            }
            return .object(members)
        }
    }
}
