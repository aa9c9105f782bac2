import Foundation
import MeshClient
import MeshCodec
import MeshTestSupport
import Testing

/// Node processes killed with SIGKILL at random points, and validators frozen with SIGSTOP.
@Suite("Crashes and frozen validators (processes)", .serialized)
struct CrashEndToEndTests {
    static func blockHash(_ c: ChainClient, _ n: UInt64) -> String? {
        (try? c.rpc.call("chain_getBlock", .object([("number", .int(n))])))?["hash"]?.string
    }

    @Test("kill -9 at 50 random points of production, import and sync: every restart opens a consistent store, no finalized block is lost, the chains agree")
    func killNine() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["TM_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var rng = SeededRNG(seed: seed)
        let net = try LocalNet(nodes: 2, validators: 1, slotMs: 200)
        var procs = [try net.start(0, validator: true), try net.start(1, validator: false)]
        defer { procs.forEach { $0.stop() } }
        let clients = try (0..<2).map { try net.client($0) }
        #expect(try clients[1].waitUntil(timeout: 60) { try clients[1].finalized() >= 3 }, "no finality at first (seed \(seed))")
        var lastFinal: [UInt64] = [0, 0]
        var runs = [0, 0]
        for k in 0..<50 {
            // Alternate: the producer (killed while producing, finalizing, writing) and the full
            // node (killed while importing and syncing what it missed).
            let i = k % 2
            try await Task.sleep(nanoseconds: 50_000_000 + rng.next() % 600_000_000)
            lastFinal[i] = max(lastFinal[i], (try? clients[i].finalized()) ?? 0)
            procs[i].kill9()
            runs[i] += 1
            procs[i] = try net.start(i, validator: i == 0, run: runs[i])
            let up = try clients[i].waitUntil(timeout: 30, interval: 0.05) { (try? clients[i].finalized()) != nil }
            #expect(up, "node \(i) did not come back after kill \(k) (seed \(seed)): \(procs[i].output.suffix(1500))")
            guard up else { return }
            let fin = try clients[i].finalized()
            #expect(fin >= lastFinal[i], "node \(i) lost finalized blocks after kill \(k): #\(fin) < #\(lastFinal[i]) (seed \(seed))")
            lastFinal[i] = max(lastFinal[i], fin)
        }
        // Both keep going, and agree on the finalized chain.
        let target = try clients[0].finalized() + 5
        for c in clients {
            #expect(try c.waitUntil(timeout: 60) { try c.finalized() >= target }, "finality stalled after the kills (seed \(seed))")
        }
        let fin = min(try clients[0].finalized(), try clients[1].finalized())
        for n in [1, fin / 2, fin] {
            #expect(Self.blockHash(clients[0], n) != nil && Self.blockHash(clients[0], n) == Self.blockHash(clients[1], n),
                    "the nodes disagree at #\(n) (seed \(seed); replay with TM_CRASH_SEED=\(seed))")
        }
    }

    /// Every node's log lines about peers it scored down or dropped, for a failure message.
    static func misbehaviour(_ procs: [BackgroundProcess], only: [String] = ["misbehaved", "dropping peer", "gossip score"]) -> String {
        procs.enumerated().flatMap { i, p in
            p.output.split(separator: "\n").filter { line in only.contains { line.contains($0) } }.suffix(20).map { "  [\(i)] \($0)" }
        }.joined(separator: "\n")
    }

    @Test("four validator processes: finality continues with one frozen, stops with two frozen while blocks continue, catches up on resume")
    func frozenValidators() async throws {
        let net = try LocalNet(nodes: 4, validators: 4, slotMs: 500)
        let procs = try (0..<4).map { try net.start($0, validator: true) }
        defer { procs.forEach { $0.stop() } }
        let c = try (0..<4).map { try net.client($0) }
        #expect(try c[0].waitUntil(timeout: 60) { try c[0].finalized() >= 4 }, "no finality with all four: \(procs[0].output.suffix(1500))")

        // One of four frozen (a quarter of the stake): finality continues.
        procs[3].signal(SIGSTOP)
        let f1 = try c[0].finalized()
        // (A liveness check, not a speed one: the suite runs other node processes beside this.)
        #expect(try c[0].waitUntil(timeout: 40) { try c[0].finalized() >= f1 + 4 }, "finality stopped with one validator frozen at #\(f1): finalized #\((try? c[0].finalized()) ?? 0), head #\((try? c[0].head()) ?? 0)\n\((0..<3).map { "[\($0)] " + procs[$0].output.suffix(4000) }.joined(separator: "\n"))")

        // Two of four frozen (half the stake): blocks continue, finality waits.
        procs[2].signal(SIGSTOP)
        try await Task.sleep(nanoseconds: 2_000_000_000)  // votes in flight settle
        let f2 = try c[0].finalized()
        let b2 = try c[0].head()
        // Long enough that the frozen ones wake to a backlog: everything their peers sent
        // meanwhile is read at once.
        try await Task.sleep(nanoseconds: 15_000_000_000)
        let f3 = try c[0].finalized()
        let b3 = try c[0].head()
        #expect(f3 <= f2 + 1, "finality advanced from #\(f2) to #\(f3) with half the stake frozen")
        #expect(b3 >= b2 + 3, "block production stopped with half the validators frozen (#\(b2) → #\(b3))")

        // Resume: everything up to the common head is finalized.
        procs[2].signal(SIGCONT)
        procs[3].signal(SIGCONT)
        let head = try c[0].head()
        for i in 0..<4 {
            // (Liveness, not speed: a resumed validator redials within 10 s, then syncs and catches up.)
            #expect(try c[i].waitUntil(timeout: 60) { try c[i].finalized() >= head },
                    "validator \(i) did not catch up to #\(head): finalized #\((try? c[i].finalized()) ?? 0)\n\(procs[i].output.suffix(3000))\nwhy peers were scored down:\n\(Self.misbehaviour(procs))")
        }
        // Waking to a backlog is not misbehaviour: nobody charged the paused validators for
        // requests read late, or for the stale blocks they published on waking.
        let charged = Self.misbehaviour(procs, only: ["over its request budget", "block header fails", "dropping peer"])
        #expect(charged.isEmpty, "honest validators were scored down after a pause:\n\(charged)")
    }

    @Test("validators that produced apart, each on its own fork, converge and finalize once connected (votes on fork blocks are fetched by hash)")
    func forksConverge() async throws {
        // Validators 1-3 start first, pointed at validator 0, which is not up yet (and the
        // spec's bootnodes point nowhere): each builds its own fork and votes on it alone.
        let net = try LocalNet(nodes: 4, validators: 4, slotMs: 150, specBasePort: 9)
        var procs: [BackgroundProcess?] = [nil]
        defer { procs.forEach { $0?.stop() } }
        for i in 1..<4 { procs.append(try net.start(i, validator: true, bootnodes: [net.address(0)])) }
        let c = try (0..<4).map { try net.client($0) }
        for i in 1..<4 { #expect(try c[i].waitUntil(timeout: 30) { try c[i].head() >= 3 }, "validator \(i) produced nothing alone") }
        let forks = Set((1..<4).compactMap { Self.blockHash(c[$0], 1) })
        #expect(forks.count >= 2, "the validators did not fork while apart")
        // Validator 0 comes up: the others' bootnode retries reach it and discovery joins them.
        procs[0] = try net.start(0, validator: true)
        for i in 0..<4 {
            #expect(try c[i].waitUntil(timeout: 60) { try c[i].finalized() >= 3 }, "validator \(i) never finalized after the forks met: \(procs[i]?.output.suffix(2000) ?? "")")
        }
        let fin = (try (0..<4).map { try c[$0].finalized() }).min() ?? 0
        let hashes = Set((0..<4).compactMap { Self.blockHash(c[$0], fin) })
        #expect(hashes.count == 1, "validators finalized different blocks at #\(fin)")
    }
}
