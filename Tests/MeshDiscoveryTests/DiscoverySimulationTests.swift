import Foundation
import MeshCodec
import MeshSim
import Testing

@Suite("Discovery in the simulator")
struct DiscoverySimulationTests {
    func run(nodes: Int, seed: UInt64) -> SimSummary {
        var c = DiscoveryScenarioConfig()
        c.nodes = nodes
        c.seconds = 32
        c.joinSeconds = 8
        c.latecomers = 5
        c.latecomersAt = 14
        c.lookups = 40
        c.lookupsAt = 20
        c.network.latency = 25_000_000
        c.network.jitter = 5_000_000
        return DiscoveryScenario(config: c, seed: seed).run(clock: { DispatchTime.now().uptimeNanoseconds })
    }

    func value(_ s: SimSummary, _ k: String) -> Double { s.extra.first { $0.0 == k }?.1.double ?? -1 }

    @Test("nodes joining through one bootnode fill their tables fast; lookups find the k closest; runs replay exactly")
    func discovery() {
        let seed: UInt64 = 7
        let s = self.run(nodes: 60, seed: seed)
        let replay = "replay: DiscoverySimulationTests.run(nodes: 60, seed: \(seed))"
        #expect(self.value(s, "latecomersFilled16") == 5, "seed \(seed): \(replay)")
        #expect(self.value(s, "latecomerFillMaxSeconds") <= 2, "seed \(seed): \(replay)")
        #expect(self.value(s, "lookupsExactK") >= 0.85, "seed \(seed): \(replay) \(s.extra)")
        #expect(self.value(s, "lookupsUnder500ms") >= 0.95, "seed \(seed): \(replay)")
        // The target at 1,000 nodes is 95 % (the benchmark); 60 nodes must not be worse.
        #expect(self.value(s, "lookupsExactWithin3RoundsUnder500ms") >= 0.95, "seed \(seed): \(replay) \(s.extra)")
        #expect(self.value(s, "tableSizeMin") >= 16)
        #expect(self.value(s, "requestsTimedOut") == 0)
        let again = self.run(nodes: 60, seed: seed)
        #expect(again.traceHash == s.traceHash, "the same seed must replay the same trace")
        #expect(self.run(nodes: 60, seed: seed + 1).traceHash != s.traceHash)
    }
}
