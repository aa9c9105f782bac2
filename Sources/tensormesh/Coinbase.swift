import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCodec

extension Tensormesh {
    /// `tensormesh coinbase --scenario FILE`: blocks of emission over several subnets, offline.
    struct Coinbase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run blocks of emission over several subnets offline (pools, flows, epochs) and print every output as JSON.",
            discussion: """
                The scenario is a JSON object: {"blocks": N, "report": "epochs"|"blocks", "params": {…}, \
                "root": {"stake": RAO}, "subnets": [{"netuid", "poolTao", "tempo", "started", \
                "neurons": [{"name", "stake", "take", "weights": {"NAME": W}}], \
                "nominators": [{"name", "on", "stake"}]}], \
                "flows": [{"block", "netuid", "by", "stake"|"unstake"}]}. Names stand for keys derived from \
                them; amounts are integers (rao, or alpha in 10^-9). The chain runs through the same state \
                machine a node runs: registration at block 1, stakes and nominations at block 2, validators \
                set their weights every tempo. Parameters (taoWeight, subnetOwnerCut, flowEmaSmoothing, \
                netFlowEnabled, flowNormExponent, flowCutoff, initialBlockEmission, …) are those of a chain \
                spec; see docs/economics.md. Example: Bootstrap/scenarios/coinbase.json. A malformed \
                scenario exits with code 2 and names the field.
                """)

        @Option(name: .long, help: ArgumentHelp("The scenario file (JSON).", valueName: "FILE"))
        var scenario: String

        @Flag(name: .long, help: "Print JSON (the output is always JSON; accepted for uniformity).")
        var json = false

        @Flag(name: .long, help: "Indent the JSON.")
        var pretty = false

        func run() async throws {
            let bytes: [UInt8]
            do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: self.scenario))) } catch {
                throw CommandFailure("cannot read \(self.scenario): \(error.localizedDescription)")
            }
            let parsed: CoinbaseScenario
            do { parsed = try CoinbaseScenario.parse(bytes) } catch { throw CommandFailure.usage("malformed scenario: \(error)") }
            let output: JSONValue
            do { output = try parsed.run() } catch { throw CommandFailure("scenario failed: \(error)") }
            StandardOutput.line(output.serialized(pretty: self.pretty))
        }
    }
}
