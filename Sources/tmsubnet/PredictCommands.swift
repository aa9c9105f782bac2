import ArgumentParser
import ExampleSubnets
import Foundation
import MeshCrypto
import MeshSubnet

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "The intelligence market: forecast a time series.",
        subcommands: [PredictMiner.self, PredictValidator.self])
}

struct PredictMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "miner", abstract: "Serve forecasts from a model fitted to each request's history.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions

    func run() async throws {
        let ctx = try self.subnet.context(role: self.miner.lazy ? "predict-miner(lazy)" : "predict-miner")
        let m = try await Miner(ctx, port: self.miner.port, listenHost: self.miner.listen, externalHost: self.miner.externalIP,
                                relay: try self.miner.relayTarget())
        let lazy = self.miner.lazy
        m.serve(Prediction.Forecast.self) { req, _ in try Prediction.handle(req, lazy: lazy) }
        try await runUntilSignalled { try await m.run() }
    }
}

struct PredictValidator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validator", abstract: "Ask miners for forecasts and score them when the truth is out.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var options: ValidatorOptions
    @Option(help: "Steps ahead to forecast.")
    var horizon: Int = 2
    @Option(help: "History length sent with each query.")
    var history: Int = 64

    func validate() throws {
        guard (1...Prediction.maxHorizon).contains(self.horizon) else { throw ValidationError("--horizon must be 1...\(Prediction.maxHorizon)") }
        guard (1...Prediction.maxHistory).contains(self.history) else { throw ValidationError("--history must be 1...\(Prediction.maxHistory)") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: "predict-validator")
        let v = try await SubnetValidator(ctx, stake: try self.options.stakeRao(), sampleSize: self.options.sample, timeout: self.options.timeout)
        let state = PredictState(seed: UInt64.random(in: 1...UInt64.max))
        let horizon = self.horizon, historyLength = self.history
        try await runUntilSignalled {
            try await v.run(stepSeconds: self.options.stepSeconds) { _, v in
                // The truth of earlier forecasts comes out one value per step.
                let (req, asked, scale) = state.next(history: historyLength, horizon: horizon)
                let results = await v.query(req)
                for r in results { if let p = r.response?.prediction, p.count == horizon { state.record(uid: r.uid, asked: asked, prediction: p, scale: scale) } }
                var scores = state.settle()
                // No answer (or a malformed one) scores 0 now.
                for r in results where r.response?.prediction.count != horizon { scores[r.uid] = 0 }
                return scores
            }
        }
    }
}

/// The validator's private series and its pending forecasts.
final class PredictState: @unchecked Sendable {
    // Safety: used by one validator loop at a time, under `lock`.
    let lock = NSLock()
    var series: Prediction.Series
    var ledger = Prediction.Ledger()

    init(seed: UInt64) { self.series = Prediction.Series(seed: seed) }

    func next(history: Int, horizon: Int) -> (Prediction.Forecast, Int, Double) {
        self.lock.withLock {
            self.series.advance()
            let h = Array(self.series.values.suffix(history))
            return (Prediction.Forecast(history: h, horizon: horizon), self.series.values.count, Prediction.variance(h))
        }
    }

    func record(uid: UInt16, asked: Int, prediction: [Double], scale: Double) {
        self.lock.withLock { self.ledger.record(uid: uid, asked: asked, prediction: prediction, scale: scale) }
    }

    func settle() -> [UInt16: Double] {
        self.lock.withLock {
            var out: [UInt16: Double] = [:]
            for (uid, s) in self.ledger.settle(series: self.series.values) { out[uid] = s }
            return out
        }
    }
}
