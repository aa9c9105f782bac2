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
        let v = try await self.options.validator(ctx, alpha: Prediction.validatorAlpha, averaging: Prediction.validatorAveraging)
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
        commandName: "evaluate",
        abstract: "Run the market offline on seeded series: each strategy's error, mean score and incentive share, epoch by epoch.",
        discussion: """
            Every strategy answers every round; one validator scores the rounds and keeps its moving averages as the \
            market's validator does, and at the end of each epoch its weights (normalised) are the strategies' incentive \
            shares. An epoch is in order when zeros < last < seasonal < model and zeros hold at most 2 %.
            """)
    @Option(help: "Seed of the (first) series.")
    var seed: UInt64 = 1
    @Option(help: "Series to run, with seeds seed, seed+1, ….")
    var seeds: Int = 1
    @Option(help: "Epochs per series.")
    var epochs: Int = 20
    @Option(help: "Rounds per epoch (the devnet's validator runs about 13: a 40 s epoch, a round every 3 s).")
    var roundsPerEpoch: Int = 13
    @Option(help: "Exponent of the error ratio in a round's score.")
    var sharpness: Double = Prediction.defaultSharpness
    @Option(help: "Weight of a round in the validator's moving average.")
    var alpha: Double = Prediction.validatorAlpha
    @Flag(help: "Average round scores arithmetically (the SDK's default) instead of geometrically.")
    var arithmetic = false
    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (1...1000).contains(self.seeds) else { throw ValidationError("--seeds must be 1...1000") }
        guard (1...10_000).contains(self.epochs), (1...1000).contains(self.roundsPerEpoch), self.epochs * self.roundsPerEpoch <= 1_000_000 else {
            throw ValidationError("--epochs must be 1...10000 and --rounds-per-epoch 1...1000, at most 1000000 rounds")
        }
        guard self.sharpness.isFinite, (0.1...10).contains(self.sharpness) else { throw ValidationError("--sharpness must be 0.1...10") }
        guard self.alpha.isFinite, self.alpha > 0, self.alpha <= 1 else { throw ValidationError("--alpha must be in (0, 1]") }
        guard self.seed <= UInt64.max - UInt64(self.seeds) else { throw ValidationError("--seed is too large for --seeds") }
    }

    func run() throws {
        let averaging = self.arithmetic ? ScoreBook.Averaging.arithmetic : Prediction.validatorAveraging
        let runs = (0..<UInt64(self.seeds)).map { i in
            Prediction.evaluate(seed: self.seed + i, rounds: self.epochs * self.roundsPerEpoch, roundsPerEpoch: self.roundsPerEpoch,
                                sharpness: self.sharpness, alpha: self.alpha, averaging: averaging)
        }
        let ordered = runs.reduce(0) { $0 + $1.orderedEpochs }, total = runs.reduce(0) { $0 + $1.epochShares.count }
        let zerosMax = runs.map(\.zerosMaxShare).max() ?? 0
        if self.json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted]
            let out: [String: AnyEncodable] = [
                "seed": AnyEncodable(self.seed), "seeds": AnyEncodable(self.seeds), "epochs": AnyEncodable(self.epochs),
                "roundsPerEpoch": AnyEncodable(self.roundsPerEpoch), "orderedEpochs": AnyEncodable(ordered), "totalEpochs": AnyEncodable(total),
                "zerosMaxShare": AnyEncodable(zerosMax), "runs": AnyEncodable(runs),
                // With one seed, its strategies at the top level (as before).
                "strategies": AnyEncodable(runs.count == 1 ? runs[0].strategies : []),
            ]
            print(String(decoding: try e.encode(out), as: UTF8.self))
            return
        }
        let averagingName = self.arithmetic ? "arithmetic" : "geometric"
        print("\(self.seeds == 1 ? "seed \(self.seed)" : "seeds \(self.seed)...\(self.seed + UInt64(self.seeds) - 1)"): \(self.epochs) epochs of "
            + "\(self.roundsPerEpoch) rounds, \(averagingName) moving average (alpha \(self.alpha)), sharpness \(self.sharpness)")
        for r in runs {
            if runs.count > 1 { print("\nseed \(r.seed): \(r.orderedEpochs)/\(r.epochShares.count) epochs in order") }
            print("strategy       MSE   mean score   share (mean, min-max over epochs)")
            for s in r.strategies {
                let name = s.strategy.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                print("\(name) \(String(format: "%9.3f   %10.4f   %6.2f %% (%.2f-%.2f %%)", s.meanSquaredError, s.meanScore, s.share * 100, s.minShare * 100, s.maxShare * 100))")
            }
        }
        print("\nepochs in quality order (zeros < last < seasonal < model, zeros <= 2 %): \(ordered)/\(total); zeros' largest share \(String(format: "%.3f", zerosMax * 100)) %")
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
