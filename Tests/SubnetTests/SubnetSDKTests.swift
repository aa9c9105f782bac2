import ExampleSubnets
import Foundation
import MeshCodec
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

    @Test("geometric moving averages: the typical round counts, not the lucky one; newcomers ramp up; saved books are checked")
    func geometricBook() throws {
        var b = ScoreBook(alpha: 0.5, averaging: .geometric(floor: 1e-4))
        let hot = [UInt8](repeating: 1, count: 32)
        b.update(uid: 1, hotkey: hot, score: 1)
        #expect(b.scores[1] == 0.5)  // the ramp of a newcomer, as an arithmetic average from 0
        b.update(uid: 1, hotkey: hot, score: 0.25)
        #expect(abs(b.scores[1]! - pow(0.25, 2.0 / 3) * 0.75) < 1e-12, "\(b.scores)")
        b.update(uid: 2, hotkey: [UInt8](repeating: 2, count: 32), score: 0)  // no answer counts as the floor
        #expect(abs(b.scores[2]! - 1e-4 * 0.5) < 1e-15)
        #expect(b.isValid)
        // One lucky round among many poor ones: the arithmetic average jumps, the geometric one hardly.
        var arithmetic = ScoreBook(alpha: 0.1), geometric = ScoreBook(alpha: 0.1, averaging: .geometric(floor: 1e-4))
        for round in 0..<40 {
            let s = round == 39 ? 1.0 : 0.01
            arithmetic.update(uid: 0, hotkey: hot, score: s)
            geometric.update(uid: 0, hotkey: hot, score: s)
            arithmetic.update(uid: 1, hotkey: hot, score: 0.05)
            geometric.update(uid: 1, hotkey: hot, score: 0.05)
        }
        #expect(arithmetic.scores[0]! > arithmetic.scores[1]!, "\(arithmetic.scores)")
        #expect(geometric.scores[0]! < geometric.scores[1]!, "\(geometric.scores)")
        // Saved and restored as it was; a tampered score or floor is not trusted; a book saved
        // before geometric averaging existed reads as arithmetic.
        let saved = try SynapseCoding.encodeJSON(b)
        #expect(try SynapseCoding.decodeJSON(ScoreBook.self, saved) == b)
        var text = String(decoding: saved, as: UTF8.self)
        #expect(text.contains("1.0000000000000001e-04") || text.contains("0.0001"), "\(text)")
        text = text.replacingOccurrences(of: "0.0001", with: "2").replacingOccurrences(of: "1.0000000000000001e-04", with: "2")
        #expect(try SynapseCoding.decodeJSON(ScoreBook.self, Array(text.utf8)).isValid == false)
        var forged = try SynapseCoding.decodeJSON(ScoreBook.self, saved)
        forged.update(uid: 1, hotkey: hot, score: 1)
        var forgedText = String(decoding: try SynapseCoding.encodeJSON(forged), as: UTF8.self)
        forgedText = forgedText.replacingOccurrences(of: "\"ramps\":[", with: "\"ramps\":[7,0.5,")
        #expect((try? SynapseCoding.decodeJSON(ScoreBook.self, Array(forgedText.utf8)))?.isValid != true)
        var old = ScoreBook(alpha: 0.2)
        old.update(uid: 3, hotkey: hot, score: 0.5)
        let oldText = String(decoding: try SynapseCoding.encodeJSON(old), as: UTF8.self)
            .replacingOccurrences(of: #""averaging":{"arithmetic":{}},"#, with: "")
        #expect(!oldText.contains("averaging"), "\(oldText)")
        let restored = try SynapseCoding.decodeJSON(ScoreBook.self, Array(oldText.utf8))
        #expect(restored == old && restored.averaging == .arithmetic && restored.isValid)
    }

    @Test("forecasting: on seeded runs of the market, every epoch's incentive follows the quality order with zeros at most 2 %")
    func prediction() throws {
        for seed in [1, 2, 3, 99] as [UInt64] {
            let run = Prediction.evaluate(seed: seed, rounds: 260, roundsPerEpoch: 13)
            let by = Dictionary(uniqueKeysWithValues: run.strategies.map { ($0.strategy, $0) })
            let order: [Prediction.Strategy] = [.zeros, .last, .seasonal, .model]
            for (worse, better) in zip(order, order.dropFirst()) {
                #expect(by[worse]!.meanScore < by[better]!.meanScore, "seed \(seed): \(worse) vs \(better): \(run.strategies)")
                #expect(by[worse]!.meanSquaredError > by[better]!.meanSquaredError, "seed \(seed): \(run.strategies)")
            }
            #expect(run.epochShares.count == 20)
            #expect(run.orderedEpochs == 20, "seed \(seed): epochs out of order: \(run.epochShares.filter { !Prediction.MarketRun.inOrder($0) })")
            #expect(run.zerosMaxShare <= 0.02, "seed \(seed): zeros earn up to \(run.zerosMaxShare)")
            #expect(by[.model]!.share >= 0.5, "seed \(seed): the model earns only \(by[.model]!.share)")
        }
        // The arithmetic average of the same round scores reorders epochs (what the devnet saw).
        let arithmetic = (1...4).map { Prediction.evaluate(seed: $0, rounds: 260, roundsPerEpoch: 13, alpha: 0.1, averaging: .arithmetic) }
        #expect(arithmetic.contains { $0.orderedEpochs < 20 }, "\(arithmetic.map(\.orderedEpochs))")
        // Bad requests are refused; odd predictions score 0; a lone miner is judged against the reference.
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1, 2], covariate: [0, 0], period: 24, horizon: 0), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [.infinity], covariate: [0, 0], period: 24, horizon: 1), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1], covariate: [0], period: 24, horizon: 1), strategy: .model) }
        #expect(throws: SubnetError.self) { try Prediction.handle(.init(history: [1], covariate: [0, 0], period: 1, horizon: 1), strategy: .model) }
        let s = Prediction.scoreRound([1: [.nan], 2: [1, 2], 3: [1.5], 4: [3]], truth: [1], reference: 0.5)
        #expect(s[1] == 0 && s[2] == 0 && s[3] == 1 && s[4] == 0.25 / 4, "\(s)")
        #expect(Prediction.scoreRound([4: [3]], truth: [1], reference: 0.25, sharpness: 2)[4] == (0.25 / 4) * (0.25 / 4))
        #expect(Prediction.scoreRound([7: [0]], truth: [10], reference: 1)[7] == 0.01)
        // Copies share one answer's score: a verbatim copy and one off by rounding, under other
        // uids, split the original's score three ways; a distinct answer keeps its own.
        let original = [1.25, 2.5, 3.75], truth = [1.0, 2.0, 4.0]
        let alone = Prediction.scoreRound([1: original, 4: [0, 0, 0]], truth: truth, reference: 10)
        let copied = Prediction.scoreRound([1: original, 2: original, 3: original.map { $0 + 1e-9 }, 4: [0, 0, 0]], truth: truth, reference: 10)
        #expect(copied[1] == alone[1]! / 3 && copied[2] == copied[1] && abs(copied[3]! - copied[1]!) < 1e-6 && copied[4] == alone[4], "\(copied) vs \(alone)")
        #expect((copied[1]! + copied[2]! + copied[3]!) <= alone[1]! * (1 + 1e-12))
        // A near answer that is a different forecast is not a copy.
        let near = Prediction.scoreRound([1: original, 2: original.map { $0 + 0.01 }], truth: truth, reference: 10)
        #expect(near[1] == 1 && near[2]! > 0.9, "\(near)")
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

    @Test("Merkle commitments: every chunk of every object size proves its place; any change fails")
    func merkle() {
        for count in 1...9 {
            let chunks = (0..<count).map { i in [UInt8](repeating: UInt8(i), count: 5 + i) }
            let tree = MerkleTree(chunks: chunks)
            for i in 0..<count {
                let proof = tree.proof(index: i)!
                #expect(MerkleTree.verify(chunk: chunks[i], index: i, count: count, siblings: proof, root: tree.root), "count \(count) index \(i)")
                #expect(!MerkleTree.verify(chunk: chunks[i] + [0], index: i, count: count, siblings: proof, root: tree.root))
                #expect(!MerkleTree.verify(chunk: chunks[i], index: (i + 1) % count, count: count, siblings: proof, root: tree.root) || chunks[i] == chunks[(i + 1) % count])
                if !proof.isEmpty {
                    var bent = proof
                    bent[0][0] ^= 1
                    #expect(!MerkleTree.verify(chunk: chunks[i], index: i, count: count, siblings: bent, root: tree.root))
                    #expect(!MerkleTree.verify(chunk: chunks[i], index: i, count: count, siblings: proof + [proof[0]], root: tree.root))
                }
            }
            #expect(tree.proof(index: count) == nil && tree.proof(index: -1) == nil)
        }
        #expect(!MerkleTree.verify(chunk: [], index: 0, count: 0, siblings: [], root: []))
        #expect(MerkleTree.chunkCount(length: 8193, size: 4096) == 3 && MerkleTree.chunkCount(length: 0, size: 4096) == 1)
        // A leaf cannot pass for an inner node (domain-separated hashes).
        let pair = MerkleTree(chunks: [[1], [2]])
        #expect(MerkleTree(chunks: [pair.levels[0][0] + pair.levels[0][1]]).root != pair.root)
    }

    @Test("storage: a miner proves any chunk of anything it holds; a cheat or a deleted object fails; scores follow proven capacity")
    func storage() throws {
        let dir = TestPaths.temporaryDirectory()
        let store = try Storage.ObjectStore(directory: dir, budgetBytes: 100_000)
        let caller = String(repeating: "ab", count: 32)
        let data = Data((0..<10_000).map { UInt8($0 % 251) })
        #expect(throws: QueryError.self) { try store.put(caller: caller, key: "../../etc", data: data) }
        #expect(throws: QueryError.self) { try store.put(caller: "x/y", key: "01", data: data) }
        #expect(throws: QueryError.self) { try store.put(caller: caller, key: "01", data: Data(count: Storage.maxObject + 1)) }
        var ledger = Storage.Ledger(perMiner: 50)
        let hot: [UInt8] = [1]
        for i in 0..<9 {
            let key = String(format: "%02x", i)
            let answer = try Storage.answer(Storage.Store(key: key, payload: data), caller: caller, store: store, cheat: false)
            #expect(answer.root == Storage.root(of: data) && answer.size == data.count)
            ledger.stored(uid: 4, hotkey: hot, Storage.Commitment(key: key, root: Hex.decode(answer.root)!, size: data.count))
        }
        #expect(store.usedBytes == 90_000)
        #expect(throws: QueryError.self) { try store.put(caller: caller, key: "ff", data: data + data) }  // budget
        #expect(try Storage.ObjectStore(directory: dir, budgetBytes: 100_000).usedBytes == 90_000)
        var rng = SeededRNG(seed: 7)
        for _ in 0..<30 {
            let (challenge, commitment) = try #require(ledger.challenge(uid: 4, hotkey: hot, using: &rng))
            let proof = try Storage.answer(challenge, caller: caller, store: store)
            #expect(Storage.verify(proof, index: challenge.index, of: commitment))
            #expect(!Storage.verify(proof, index: (challenge.index + 1) % commitment.chunks, of: commitment))
            var forged = proof
            forged.payload = Data(repeating: 0, count: proof.payload.count)
            #expect(!Storage.verify(forged, index: challenge.index, of: commitment))
            ledger.record(uid: 4, hotkey: hot, passed: true)
        }
        // The oldest object deleted behind the validator's back: a challenge on it fails.
        try FileManager.default.removeItem(atPath: dir + "/" + caller + "/00")
        #expect(throws: QueryError.self) { try Storage.answer(Storage.Challenge(key: "00", index: 2), caller: caller, store: store) }
        // A cheat keeps nothing: it acknowledges the store with the right root, then cannot prove anything.
        let cheat = try Storage.answer(Storage.Store(key: "aa", payload: data), caller: caller, store: nil, cheat: true)
        #expect(cheat.root == Storage.root(of: data))
        #expect(throws: QueryError.self) { try Storage.answer(Storage.Challenge(key: "aa", index: 0), caller: caller, store: nil) }
        ledger.stored(uid: 5, hotkey: [2], Storage.Commitment(key: "aa", root: Hex.decode(cheat.root)!, size: data.count))
        for _ in 0..<5 { ledger.record(uid: 5, hotkey: [2], passed: false) }
        // Half the capacity with every challenge passed.
        for i in 0..<4 { ledger.stored(uid: 6, hotkey: [3], Storage.Commitment(key: "\(i)", root: [], size: data.count)) }
        ledger.record(uid: 6, hotkey: [3], passed: true)
        let scores = ledger.scores()
        #expect(scores[4] == 1 && scores[5] == 0 && abs((scores[6] ?? 0) - 4.0 / 9) < 1e-9, "\(scores)")
        // A new hotkey on a uid starts over.
        ledger.record(uid: 4, hotkey: [9], passed: true)
        #expect(ledger.bytes(uid: 4) == 0 && ledger.challenge(uid: 4, hotkey: hot, using: &rng) == nil)
        // Retrieval returns the bytes.
        #expect(try Storage.answer(Storage.Retrieve(key: "05"), caller: caller, store: store).payload == data)
    }

    @Test("storage validator: commitments and challenge records survive a restart, only for their subnet and hotkey; a tampered file is not trusted")
    func ledgerRestart() throws {
        let path = TestPaths.temporaryDirectory() + "/validator-state.json.commitments.json"
        let me = String(repeating: "cd", count: 32)
        let miner = [UInt8](repeating: 4, count: 32)
        let data = Data((0..<9_000).map { UInt8($0 % 13) })
        let first = Storage.LedgerStore(path: path, netuid: 2, hotkey: me)
        #expect(!first.restored && first.objectCount == 0)
        for i in 0..<5 {
            first.stored(uid: 3, hotkey: miner, Storage.Commitment(key: String(format: "%02x", i), root: Hex.decode(Storage.root(of: data))!, size: data.count))
        }
        first.record(uid: 3, hotkey: miner, passed: true)
        first.record(uid: 3, hotkey: miner, passed: false)
        try first.save()
        // The restarted validator challenges what it handed out before.
        let second = Storage.LedgerStore(path: path, netuid: 2, hotkey: me)
        #expect(second.restored && second.objectCount == 5 && second.snapshot == first.snapshot)
        var rng = SystemRandomNumberGenerator()
        let (challenge, commitment) = try #require(second.challenge(uid: 3, hotkey: miner, using: &rng))
        #expect(commitment.size == data.count && commitment.key.hasPrefix("0") && challenge.index < commitment.chunks)
        #expect(second.scores() == first.scores())
        // Another subnet or validator hotkey starts over.
        #expect(!Storage.LedgerStore(path: path, netuid: 3, hotkey: me).restored)
        #expect(!Storage.LedgerStore(path: path, netuid: 2, hotkey: String(repeating: "ef", count: 32)).restored)
        // Tampered: bytes that disagree with the commitments, a short root, a bad key, a pass rate past 1.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"bytes\":45000"), "\(text.prefix(300))")
        let root = Storage.root(of: data)
        for (from, to) in [("\"bytes\":45000", "\"bytes\":90000"), (root, String(root.dropLast(2))), ("\"key\":\"03\"", "\"key\":\"..x\""),
                           ("\"challenged\":2", "\"challenged\":-1")] {
            #expect(text.contains(from), "\(from)")
            try text.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
            #expect(!Storage.LedgerStore(path: path, netuid: 2, hotkey: me).restored, "accepted with \(to)")
        }
        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!Storage.LedgerStore(path: path, netuid: 2, hotkey: me).restored)
        // Without a path nothing is written.
        try Storage.LedgerStore(path: nil, netuid: 2, hotkey: me).save()
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
