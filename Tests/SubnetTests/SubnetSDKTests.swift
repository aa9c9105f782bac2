import ExampleSubnets
import Foundation
import MeshCrypto
import MeshKeystore
import MeshSubnet
import MeshTestSupport
import Testing

@Suite("Subnet SDK and example markets")
struct SubnetSDKTests {
    @Test("moving averages: newest score weighs alpha, a new hotkey on a uid starts over")
    func scoreBook() {
        var b = ScoreBook(alpha: 0.5)
        b.update(uid: 1, hotkey: [1], score: 1)
        b.update(uid: 1, hotkey: [1], score: 1)
        #expect(b.scores[1] == 0.75)
        b.update(uid: 1, hotkey: [2], score: 1)  // re-registered by someone else
        #expect(b.scores[1] == 0.5)
        b.update(uid: 2, hotkey: [3], score: .nan)
        #expect(b.scores[2] == 0)
        b.update(uid: 3, hotkey: [4], score: 7)
        #expect(b.scores[3] == 0.5)  // clamped to 1
        b.prune(n: 3, hotkeys: [[0], [2], [3]])
        #expect(b.scores[3] == nil && b.scores[1] != nil)
    }

    @Test("weights: max-upscaled u16, own uid excluded, max-weight limit respected, padded to the minimum count")
    func weights() {
        var b = ScoreBook(alpha: 1)
        for (uid, s) in [(0, 0.9), (1, 0.3), (2, 0.1), (5, 0.0)] { b.update(uid: UInt16(uid), hotkey: [UInt8(uid)], score: s) }
        let (uids, values) = b.weights(n: 6, exclude: 0)
        #expect(uids == [1, 2])
        #expect(values == [65535, 21845])
        // No single share above 50% of the total.
        let capped = b.weights(n: 6, maxWeightsLimit: 32768)
        let total = capped.values.reduce(0) { $0 + Int($1) }
        #expect(capped.values.allSatisfy { Int($0) * 65535 / total <= 32768 }, "\(capped)")
        // At least 5 non-zero weights.
        let padded = b.weights(n: 6, minAllowedWeights: 5)
        #expect(padded.uids.count == 5 && padded.values.allSatisfy { $0 > 0 }, "\(padded)")
        #expect(ScoreBook().weights(n: 4).uids.isEmpty)
    }

    @Test("forecasting: the fitted model beats a lazy miner on the validators' series, across seeds")
    func prediction() throws {
        for seed in [1, 2, 3, 99] as [UInt64] {
            var series = Prediction.Series(seed: seed)
            var honest = 0.0, lazy = 0.0
            for _ in 0..<50 {
                let history = Array(series.values.suffix(64))
                let scale = Prediction.variance(history)
                let h = try Prediction.handle(.init(history: history, horizon: 2), lazy: false).prediction
                let l = try Prediction.handle(.init(history: history, horizon: 2), lazy: true).prediction
                let truth = [series.advance(), series.advance()]
                honest += Prediction.score(prediction: h, truth: truth, scale: scale)
                lazy += Prediction.score(prediction: l, truth: truth, scale: scale)
            }
            #expect(honest / 50 > 0.8, "seed \(seed): honest mean score \(honest / 50)")
            #expect(lazy / 50 < honest / 50 / 2, "seed \(seed): lazy \(lazy / 50) vs honest \(honest / 50)")
        }
        // An exact AR(2) process is recovered.
        var xs: [Double] = [1, 2]
        for _ in 0..<60 { xs.append(0.6 * xs[xs.count - 1] - 0.3 * xs[xs.count - 2] + 1) }
        let f = Prediction.forecast(history: xs, horizon: 1, order: 2)[0]
        #expect(abs(f - (0.6 * xs[xs.count - 1] - 0.3 * xs[xs.count - 2] + 1)) < 1e-3)
        // Bad requests are refused; odd predictions score 0.
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1, 2], horizon: 0), lazy: false) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [.infinity], horizon: 1), lazy: false) }
        #expect(Prediction.score(prediction: [.nan], truth: [1], scale: 1) == 0)
        #expect(Prediction.score(prediction: [1, 2], truth: [1], scale: 1) == 0)
        var ledger = Prediction.Ledger()
        ledger.record(uid: 3, asked: 2, prediction: [5, 6], scale: 1)
        #expect(ledger.settle(series: [0, 0, 5]).isEmpty)  // truth not out yet
        let settled = ledger.settle(series: [0, 0, 5, 6])
        #expect(settled.count == 1 && settled[0].uid == 3 && settled[0].score == 1)
    }

    @Test("storage: proofs need the bytes, the store is bounded and path-safe, cheaters fail challenges")
    func storage() throws {
        let dir = TestPaths.temporaryDirectory()
        let store = try Storage.ChunkStore(directory: dir, budgetBytes: 10_000)
        let caller = String(repeating: "ab", count: 32)
        let data = Data((0..<4096).map { UInt8($0 % 251) })
        try store.put(caller: caller, id: "00ff", data: data)
        #expect(store.usedBytes == 4096)
        #expect(throws: SubnetError.self) { try store.put(caller: caller, id: "../../etc", data: data) }
        #expect(throws: SubnetError.self) { try store.put(caller: "x/y", id: "01", data: data) }
        try store.put(caller: caller, id: "00ff", data: data)  // replacing does not double count
        #expect(store.usedBytes == 4096)
        try store.put(caller: caller, id: "01", data: data)
        #expect(throws: SubnetError.self) { try store.put(caller: caller, id: "02", data: data) }  // budget
        // A reopened store knows what it holds.
        #expect(try Storage.ChunkStore(directory: dir, budgetBytes: 10_000).usedBytes == 8192)

        var ledger = Storage.Ledger(perMiner: 2)
        var rng = SeededRNG(seed: 7)
        ledger.stored(uid: 4, hotkey: [1], id: "00ff", data: data)
        for _ in 0..<20 {
            let (challenge, expected) = try #require(ledger.challenge(uid: 4, hotkey: [1], using: &rng))
            let honest = try Storage.answer(challenge, caller: caller, store: store, cheat: false)
            #expect(honest.proof == expected)
            let cheat = try Storage.answer(challenge, caller: caller, store: nil, cheat: true)
            #expect(cheat.proof != expected)
        }
        #expect(ledger.challenge(uid: 4, hotkey: [2], using: &rng) == nil)  // another hotkey holds uid 4 now
        #expect(throws: SubnetError.self) {
            try Storage.answer(Storage.Challenge(id: "00ff", offset: 4000, length: 500, nonce: Data([1])), caller: caller, store: store, cheat: false)
        }
        #expect(Storage.score(correct: true, latencyMs: 0, timeoutMs: 1000) == 1)
        #expect(Storage.score(correct: false, latencyMs: 0, timeoutMs: 1000) == 0)
    }

    @Test("wallets: coldkey and hotkeys encrypted under one directory, listed without the password")
    func wallet() throws {
        let root = TestPaths.temporaryDirectory()
        let w = Wallet(name: "alice", root: root)
        let pw = SecureBytes(copying: Array("pw".utf8))
        let first = try w.create(hotkey: "h1", password: pw, cost: .init(opsLimit: 1, memLimit: 8 << 20))
        let second = try w.create(hotkey: "h2", password: pw, cost: .init(opsLimit: 1, memLimit: 8 << 20))
        #expect(first.coldkey == second.coldkey)
        #expect(first.hotkey != second.hotkey)
        #expect(w.hotkeyNames() == ["h1", "h2"])
        #expect(try w.hotkeyPublic("h2") == second.hotkey)
        #expect(try w.hotkey("h1", password: pw).publicKey == first.hotkey)
        #expect(throws: KeystoreError.wrongPassword) { try w.coldkey(password: SecureBytes(copying: Array("no".utf8))) }
        #expect(throws: (any Error).self) { try w.create(hotkey: "h1", password: pw) }  // never overwritten
        #expect(throws: (any Error).self) { try Wallet(name: "../x", root: root).create(hotkey: "h", password: pw) }
        #expect(Wallet.all(root: root).map(\.name) == ["alice"])
        let mode = try FileManager.default.attributesOfItem(atPath: w.coldkeyPath)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("the README's minimal subnet is the one that ships and is under 80 lines")
    func readmeExample() throws {
        let source = try String(contentsOfFile: TestPaths.repositoryRoot + "/Sources/tmsubnet/Minimal.swift", encoding: .utf8)
        let readme = try String(contentsOfFile: TestPaths.repositoryRoot + "/README.md", encoding: .utf8)
        #expect(source.split(separator: "\n", omittingEmptySubsequences: false).count < 80)
        #expect(readme.contains(source.trimmingCharacters(in: .whitespacesAndNewlines)), "README.md must show Sources/tmsubnet/Minimal.swift verbatim")
    }
}
