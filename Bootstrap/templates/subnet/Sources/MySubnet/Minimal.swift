// A complete subnet in one file: validators send a number, miners double it.
import MeshSubnet

struct Twice: Synapse {
    static let name = "double"
    static let example: Twice? = Twice(x: 21)
    var x: Int
    struct Response: Codable, Sendable { var y: Int }
}

struct Minimal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The smallest subnet: miners double numbers, validators check them.",
        subcommands: [MinimalMiner.self, MinimalValidator.self])
}

struct MinimalMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "miner")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions

    func run() async throws {
        let m = try await self.miner.miner(try self.subnet.context(role: "double-miner"))
        let lazy = self.miner.lazy
        // Requests are hostile input: a trap here (x * 2 overflowing) would kill the whole miner.
        m.serve(Twice.self) { request, _ in
            let (y, overflow) = request.x.multipliedReportingOverflow(by: 2)
            guard !overflow else { throw QueryError(.badRequest, "x = \(request.x) is out of range") }
            return .init(y: lazy ? 0 : y)
        }
        try await runUntilSignalled { try await m.run() }
    }
}

struct MinimalValidator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validator")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var options: ValidatorOptions

    func run() async throws {
        let v = try await self.options.validator(try self.subnet.context(role: "double-validator"))
        try await runUntilSignalled {
            try await v.run(stepSeconds: self.options.stepSeconds, request: { step in Twice(x: step) }, score: { request, results in
                results.map { $0.response?.y == request.x * 2 ? 1 : 0 }
            })
        }
    }
}
