import MeshCodec
import MeshIncentive
import MeshTestSupport
import Testing

/// The scenarios shipped in Bootstrap/scenarios, run as `tensormesh epoch` would, with
/// their outcomes written down (yuma.md section 13: weight copying and cabals).
@Suite("Attack scenarios")
struct AttackScenarioTests {
    static func run(_ name: String) throws -> [EpochScenario.StepResult<I32F32>] {
        let bytes = try ProcessRunnerFiles.read(TestPaths.repositoryRoot + "/Bootstrap/scenarios/" + name)
        return try EpochScenario.parse(bytes: bytes).run(as: I32F32.self)
    }

    static func cumulativeValidatorEmission(_ r: [EpochScenario.StepResult<I32F32>]) -> [UInt64] {
        var total = [UInt64](repeating: 0, count: 8)
        for step in r.dropFirst() {
            for (i, v) in step.output!.validatorEmission.enumerated() { total[i] += v }
        }
        return total
    }

    @Test("a minority cabal cannot pay its own miner")
    func minorityCabal() throws {
        let r = try Self.run("cabal-40.json")
        let last = r.last!.output!
        #expect(last.incentive[7] == .zero, "the cabal's miner earns nothing")
        #expect(last.validatorTrust[3] == .zero && last.validatorTrust[4] == .zero, "cabal weight is clipped away")
        let d = Self.cumulativeValidatorEmission(r)
        #expect(d[3] == 0 && d[4] == 0, "cabal validators earn no dividends")
        #expect(last.incentive[5] > last.incentive[6])
    }

    @Test("a majority cabal takes the subnet: consensus is a stake vote")
    func majorityCabal() throws {
        let r = try Self.run("cabal-60.json")
        let last = r.last!.output!
        #expect(last.incentive[7] == .one)
        #expect(last.incentive[5] == .zero && last.incentive[6] == .zero)
    }

    @Test("copying weights that are public at once pays as well as evaluating")
    func openCopying() throws {
        let d = Self.cumulativeValidatorEmission(try Self.run("weight-copying-open.json"))
        let honestPerStake = Double(d[0]) / 300
        let copierPerStake = Double(d[3]) / 100
        #expect(copierPerStake >= 0.95 * honestPerStake, "copier \(copierPerStake) vs honest \(honestPerStake)")
    }

    @Test("with commit-reveal the copier lags one epoch and earns far less per stake")
    func lateCopying() throws {
        let d = Self.cumulativeValidatorEmission(try Self.run("weight-copying-commit-reveal.json"))
        let honestPerStake = Double(d[0]) / 300
        let copierPerStake = Double(d[3]) / 100
        #expect(copierPerStake < 0.5 * honestPerStake, "copier \(copierPerStake) vs honest \(honestPerStake)")
    }
}
