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

    @Test("forecasting: on a seeded evaluation, scores rank zeros < last < seasonal < model and zeros earn at most 2 %")
    func prediction() throws {
        for seed in [1, 2, 3, 99] as [UInt64] {
            let e = Prediction.evaluate(seed: seed, rounds: 300)
            let by = Dictionary(uniqueKeysWithValues: e.map { ($0.strategy, $0) })
            let order: [Prediction.Strategy] = [.zeros, .last, .seasonal, .model]
            for (worse, better) in zip(order, order.dropFirst()) {
                #expect(by[worse]!.meanScore < by[better]!.meanScore, "seed \(seed): \(worse) vs \(better): \(e)")
                #expect(by[worse]!.meanSquaredError > by[better]!.meanSquaredError, "seed \(seed): \(e)")
            }
            #expect(by[.zeros]!.share <= 0.02, "seed \(seed): zeros earn \(by[.zeros]!.share)")
            #expect(by[.model]!.share >= 0.5, "seed \(seed): the model earns only \(by[.model]!.share)")
        }
        // Bad requests are refused; odd predictions score 0; a lone miner is judged against the reference.
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1, 2], covariate: [0, 0], period: 24, horizon: 0), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [.infinity], covariate: [0, 0], period: 24, horizon: 1), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1], covariate: [0], period: 24, horizon: 1), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1], covariate: [0, 0], period: 1, horizon: 1), strategy: .model) }
        let s = Prediction.scoreRound([1: [.nan], 2: [1, 2], 3: [1.5], 4: [3]], truth: [1], reference: 0.5)
        #expect(s[1] == 0 && s[2] == 0 && s[3] == 1 && s[4] == (0.25 / 4) * (0.25 / 4), "\(s)")
        #expect(Prediction.scoreRound([7: [0]], truth: [10], reference: 1)[7] == 0.0001)
        // Every strategy answers a well-formed request with `horizon` finite values.
        var series = Prediction.Series(seed: 5)
        let (req, _) = series.request(historyLength: 96, horizon: 6)
        for st in Prediction.Strategy.allCases {
            let p = try Prediction.handle(req, strategy: st).prediction
            #expect(p.count == 6 && p.allSatisfy { $0.isFinite }, "\(st)")
        }
        let example = try #require(Prediction.Forecast.example)
        try Prediction.validate(example)
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

    @Test("the README's subnet is the template's, under 80 lines, and the one tmsubnet ships")
    func readmeExample() throws {
        let template = TestPaths.repositoryRoot + "/Bootstrap/templates/subnet/Sources/MySubnet/"
        let source = try String(contentsOfFile: template + "Minimal.swift", encoding: .utf8)
        let main = try String(contentsOfFile: template + "main.swift", encoding: .utf8)
        let readme = try String(contentsOfFile: TestPaths.repositoryRoot + "/README.md", encoding: .utf8)
        #expect(source.split(separator: "\n", omittingEmptySubsequences: false).count < 80)
        for text in [source, main] {
            #expect(readme.contains(text.trimmingCharacters(in: .whitespacesAndNewlines)), "README.md must show the template verbatim")
        }
        let shipped = try FileManager.default.destinationOfSymbolicLink(atPath: TestPaths.repositoryRoot + "/Sources/tmsubnet/Minimal.swift")
        #expect(shipped.hasSuffix("Bootstrap/templates/subnet/Sources/MySubnet/Minimal.swift"))
    }
}
