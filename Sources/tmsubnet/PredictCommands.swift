import ArgumentParser
import ExampleSubnets
import Foundation
import MeshCLI
import MeshCrypto
import MeshSubnet

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "The intelligence market: forecast a seasonal series with a known covariate.",
        subcommands: [PredictMiner.self, PredictValidator.self, PredictEvaluate.self])
}

extension Prediction.Strategy: ExpressibleByArgument {}

struct PredictMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "miner", abstract: "Serve forecasts with one of the graded strategies.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions
    @Option(help: "How to forecast: zeros, last, seasonal or model (--lazy is zeros).")
    var strategy: Prediction.Strategy = .model

    func run() async throws {
        let strategy = self.miner.lazy ? .zeros : self.strategy
        let ctx = try self.subnet.context(role: "predict-miner(\(strategy.rawValue))")
        let m = try await self.miner.miner(ctx)
        m.serve(Prediction.Forecast.self) { req, _ in
            do { return try Prediction.handle(req, strategy: strategy) } catch { throw QueryError(.badRequest, "\(error)") }
        }
        try await runUntilSignalled { try await m.run() }
    }
}

struct PredictValidator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validator", abstract: "Ask miners for forecasts and score them against the truth and each other.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var options: ValidatorOptions
    @Option(help: "Steps ahead to forecast.")
    var horizon: Int = 8
    @Option(help: "History length sent with each query.")
    var history: Int = 96

    func validate() throws {
        guard (1...Prediction.maxHorizon).contains(self.horizon) else { throw ValidationError("--horizon must be 1...\(Prediction.maxHorizon)") }
        guard (1...Prediction.maxHistory).contains(self.history) else { throw ValidationError("--history must be 1...\(Prediction.maxHistory)") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: "predict-validator")
        let v = try await self.options.validator(ctx)
        let state = PredictState(seed: UInt64.random(in: 1...UInt64.max))
        let horizon = self.horizon, historyLength = self.history
        try await runUntilSignalled {
            try await v.run(stepSeconds: self.options.stepSeconds) { _, v in
                let (req, truth) = state.next(history: historyLength, horizon: horizon)
                let results = await v.query(req)
                var predictions: [UInt16: [Double]] = [:]
                for r in results { predictions[r.uid] = r.response?.prediction ?? [] }
                // The validator's own fitted model is the reference a round is judged against.
                let reference = Prediction.mse(Prediction.forecast(req, strategy: .model), truth) ?? .infinity
                return Prediction.scoreRound(predictions, truth: truth, reference: reference)
            }
        }
    }
}

struct PredictEvaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate", abstract: "Run the market offline on a seeded series: each strategy's error, mean score and share.")
    @Option(help: "Seed of the series.")
    var seed: UInt64 = 1
    @Option(help: "Rounds.")
    var rounds: Int = 2000
    @Option(help: "Exponent of the error ratio in a round's score.")
    var sharpness: Double = Prediction.defaultSharpness
    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(self.rounds) else { throw ValidationError("--rounds must be 1...1000000") }
        guard self.sharpness.isFinite, (0.1...10).contains(self.sharpness) else { throw ValidationError("--sharpness must be 0.1...10") }
    }

    func run() throws {
        let results = Prediction.evaluate(seed: self.seed, rounds: self.rounds, sharpness: self.sharpness)
        if self.json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try e.encode(["seed": AnyEncodable(self.seed), "rounds": AnyEncodable(self.rounds), "strategies": AnyEncodable(results)]),
                         as: UTF8.self))
            return
        }
        print("seed \(self.seed), \(self.rounds) rounds")
        print("strategy       MSE   mean score   share")
        for r in results {
            print("\(r.strategy.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(format: "%9.3f   %10.4f   %5.1f %%", r.meanSquaredError, r.meanScore, r.share * 100))")
        }
    }
}

/// A type-erased Encodable for one-off JSON output.
struct AnyEncodable: Encodable {
    let encode: (any Encoder) throws -> Void
    init<T: Encodable>(_ v: T) { self.encode = v.encode }
    func encode(to encoder: any Encoder) throws { try self.encode(encoder) }
}

/// The validator's private series.
final class PredictState: @unchecked Sendable {
    // Safety: every access holds `lock`.
    let lock = NSLock()
    var series: Prediction.Series

    init(seed: UInt64) { self.series = Prediction.Series(seed: seed) }

    func next(history: Int, horizon: Int) -> (Prediction.Forecast, [Double]) {
        self.lock.withLock { self.series.request(historyLength: history, horizon: horizon) }
    }
}
