import Foundation
import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshStore
import MeshTestSupport
import Testing

@Suite("Chain core")
struct ChainTests {
    @Test("genesis is deterministic and round-trips through JSON")
    func genesis() throws {
        let a = try DevChain()
        let b = try DevChain()
        #expect(a.core.genesisHash == b.core.genesisHash)
        let json = a.spec.json().serialized(pretty: true)
        let reparsed = try ChainSpec.parse(Array(json.utf8))
        #expect(reparsed.genesis().0.hash == a.core.genesisHash)
        #expect(a.state.authorities.count == 3)
        #expect(a.conserved())
    }

    @Test("produced blocks import on another node with identical state roots")
    func produceImport() throws {
        let a = try DevChain()
        let b = try DevChain()
        var blocks: [Block] = []
        for i in 0..<30 {
            let from = a.accounts[i % 8]
            let to = a.accounts[(i + 3) % 8].publicKey
            blocks.append(try a.produce([a.tx(from, .transfer(to: to, amount: Token.tao))]))
            #expect(a.conserved())
        }
        for blk in blocks { try b.core.importBlock(blk, now: blk.header.timestamp) }
        #expect(b.core.best == a.core.best)
        var sa = a.core.bestState
        var sb = b.core.bestState
        #expect(sa.stateRoot() == sb.stateRoot())
        #expect(sa.balance(a.accounts[3].publicKey) == 1000 * Token.tao + 4 * Token.tao - 4 * Token.tao - 4 * 1000)
    }

    @Test("a header verifyHeader checked is not verified again on import, but only with the signature it checked")
    func verifiedHeaderOnce() throws {
        let a = try DevChain()
        let (good, ts) = a.nextBlock(txs: [a.tx(a.accounts[0], .transfer(to: a.accounts[1].publicKey, amount: 5))])
        try a.core.verifyHeader(good.header, now: ts)
        // The header hash does not cover the signature: the same header with another signature
        // has the same hash, and must be verified on its own.
        var forged = good
        forged.header.signature = try Ed25519.Signature(bytes: [UInt8](repeating: 1, count: 64))
        #expect(forged.hash == good.hash)
        #expect(throws: BlockError.badProducerSignature) { try a.core.importBlock(forged, now: ts) }
        _ = try a.core.importBlock(good, now: ts)
        #expect(a.core.best.hash == good.hash)
    }

    @Test("bad blocks are rejected with a typed reason and nothing is stored")
    func badBlocks() throws {
        let a = try DevChain()
        let (good, ts) = a.nextBlock(txs: [a.tx(a.accounts[0], .transfer(to: a.accounts[1].publicKey, amount: 5))])
        func reject(_ block: Block, now: UInt64 = ts, _ check: (BlockError) -> Bool) {
            do {
                try a.core.importBlock(block, now: now)
                Issue.record("accepted a bad block")
            } catch {
                #expect(check(error), "\(error)")
            }
        }
        var badSig = good
        badSig.header.signature = try Ed25519.Signature(bytes: [UInt8](repeating: 1, count: 64))
        reject(badSig) { $0 == .badProducerSignature }
        var badRoot = good
        badRoot.header.stateRoot = Hash32.of([9])
        badRoot.header.sign(with: a.key(for: good.header.producer)!)
        reject(badRoot) { if case .stateRootMismatch = $0 { return true }; return false }
        var badTxRoot = good
        badTxRoot.transactions = []
        reject(badTxRoot) { $0 == .transactionsRootMismatch }
        var wrongProducer = good
        let other = a.validators.first { $0.publicKey != good.header.producer }!
        wrongProducer.header.producer = other.publicKey
        wrongProducer.header.sign(with: other)
        reject(wrongProducer) { if case .wrongProducer = $0 { return true }; return false }
        reject(good, now: ts - 10_000) { if case .timestampInFuture = $0 { return true }; return false }
        var orphan = good
        orphan.header.parentHash = Hash32.of([1])
        reject(orphan) { if case .unknownParent = $0 { return true }; return false }
        // A block carrying a badly signed transaction.
        var forged = a.tx(a.accounts[0], .transfer(to: a.accounts[2].publicKey, amount: 7))
        forged.signature = a.accounts[1].sign([1])
        let producerKey = a.key(for: good.header.producer)!
        var withForged = good
        withForged.transactions = [forged]
        withForged.header.transactionsRoot = Block.transactionsRoot([forged])
        withForged.header.sign(with: producerKey)
        reject(withForged) { if case .invalidTransaction(0, .badSignature) = $0 { return true }; return false }
        // A pool's "already verified" set names transactions by a hash that covers the
        // signature: the honest twin being verified does not let the forged one through.
        var honest = forged
        honest.signature = a.accounts[0].sign(honest.signingPayload(genesis: a.context.genesis))
        #expect(honest.hash != forged.hash)
        #expect(throws: BlockError.invalidTransaction(index: 0, .badSignature)) {
            try a.core.importBlock(withForged, now: ts, preverified: [honest.hash])
        }
        #expect(a.core.best.number == 0)
        #expect(a.core.block(good.hash) == nil)
        // The good block still imports.
        try a.core.importBlock(good, now: ts)
        #expect(a.core.best.number == 1)
        // Replaying its transaction in the next block is refused.
        let (next, ts2) = a.nextBlock()
        var replay = next
        replay.transactions = good.transactions
        replay.header.transactionsRoot = Block.transactionsRoot(good.transactions)
        replay.header.sign(with: a.key(for: next.header.producer)!)
        do {
            try a.core.importBlock(replay, now: ts2)
            Issue.record("replay accepted")
        } catch {
            if case .invalidTransaction(0, .staleNonce) = error {} else { Issue.record("\(error)") }
        }
    }

    @Test("malformed and random block bytes never trap")
    func fuzzDecode() throws {
        let a = try DevChain()
        let blk = try a.produce([a.tx(a.accounts[0], .setWeights(netuid: 1, uids: [0], values: [1], versionKey: 0))])
        let bytes = blk.encoded
        var rng = SeededRNG(seed: 12)
        for _ in 0..<3000 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...6, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
            _ = try? Block.decode(b)
            _ = try? Transaction.decode(rng.bytes(Int.random(in: 0...300, using: &rng)))
            _ = try? Block.decode(Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng))))
        }
    }

    @Test("subnet life: register, stake, weights, epochs; supply is conserved exactly")
    func subnetLife() throws {
        let a = try DevChain(tempo: 5)
        let validatorHot = a.accounts[0]
        let miners = Array(a.accounts[1...4])
        var txs = [a.tx(validatorHot, .register(netuid: 1, hotkey: validatorHot.publicKey, maxBurn: 100 * Token.tao))]
        try a.produce(txs)
        for (i, m) in miners.enumerated() {
            try a.produce([a.tx(m, .register(netuid: 1, hotkey: m.publicKey, maxBurn: 100 * Token.tao))])
            #expect(a.state.subnets[1]!.neurons.count == 3 + i)
        }
        try a.produce([a.tx(validatorHot, .addStake(hotkey: validatorHot.publicKey, netuid: 1, amount: 500 * Token.tao))])
        // Wait for an epoch so the staked validator gets a permit.
        for _ in 0..<6 { try a.produce() }
        let vUid = a.state.subnets[1]!.uid(of: validatorHot.publicKey)!
        #expect(a.state.subnets[1]!.neurons[vUid].validatorPermit)
        let uids = miners.map { UInt16(a.state.subnets[1]!.uid(of: $0.publicKey)!) }
        txs = [a.tx(validatorHot, .setWeights(netuid: 1, uids: uids, values: [10, 20, 30, 40], versionKey: 0))]
        let b = try a.produce(txs)
        _ = b
        for _ in 0..<12 {
            try a.produce()
            #expect(a.conserved(), "issuance \(a.state.totalIssuance) burned \(a.state.totalBurned) accounted \(a.state.accountedSupply)")
        }
        let s = a.state.subnets[1]!
        let incentives = uids.map { s.neurons[Int($0)].incentive }
        #expect(incentives[3] > incentives[0], "the best-weighted miner earns most: \(incentives)")
        #expect(s.neurons[vUid].dividends > 0)
        #expect(a.state.totalIssuance > 0)
        #expect(a.state.totalStake(hotkey: miners[3].publicKey, netuid: 1) > 0, "miner emission is staked to its hotkey")
    }

    @Test("weights refusals say why and when")
    func weightsRules() throws {
        let a = try DevChain(tempo: 50) { spec in
            _ = spec.subnets[0].params.set(.weightsRateLimit, 10)
            _ = spec.subnets[0].params.set(.minAllowedWeights, 2)
            _ = spec.subnets[0].params.set(.weightsVersionKey, 3)
        }
        let v = a.accounts[0]
        let m = a.accounts[1]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao))])
        try a.produce([a.tx(m, .register(netuid: 1, hotkey: m.publicKey, maxBurn: 100 * Token.tao))])
        func refusal(_ call: Call, signer: Ed25519.PrivateKey) throws -> DispatchError? {
            var st = a.state
            let r = try st.apply(a.tx(signer, call), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
            return r.error
        }
        #expect(try refusal(.setWeights(netuid: 9, uids: [0], values: [1], versionKey: 3), signer: v)?.code == "SubNetworkDoesNotExist")
        #expect(try refusal(.setWeights(netuid: 1, uids: [0], values: [1], versionKey: 3), signer: a.accounts[5])?.code == "HotKeyNotRegisteredInSubNet")
        #expect(try refusal(.setWeights(netuid: 1, uids: [1, 2], values: [1, 1], versionKey: 2), signer: v)?.code == "IncorrectWeightVersionKey")
        #expect(try refusal(.setWeights(netuid: 1, uids: [1, 1], values: [1, 1], versionKey: 3), signer: v)?.code == "DuplicateUids")
        #expect(try refusal(.setWeights(netuid: 1, uids: [7, 2], values: [1, 1], versionKey: 3), signer: v)?.code == "UidVecContainInvalidOne")
        #expect(try refusal(.setWeights(netuid: 1, uids: [1], values: [1, 2], versionKey: 3), signer: v)?.code == "WeightVecNotEqualSize")
        let noPermit = try refusal(.setWeights(netuid: 1, uids: [0, 2], values: [1, 1], versionKey: 3), signer: v)
        #expect(noPermit?.code == "NeuronNoValidatorPermit")
        #expect(noPermit?.allowedAtBlock == 50)
        // Self-weight needs no permit, then the rate limit applies with the block it lifts.
        let selfUid = UInt16(a.state.subnets[1]!.uid(of: v.publicKey)!)
        try a.produce([a.tx(v, .setWeights(netuid: 1, uids: [selfUid], values: [1], versionKey: 3))])
        let tooFast = try refusal(.setWeights(netuid: 1, uids: [selfUid], values: [1], versionKey: 3), signer: v)
        #expect(tooFast?.code == "SettingWeightsTooFast")
        #expect(tooFast?.allowedAtBlock == a.state.number + 10)
        // Commit-reveal on: set_weights is refused with directions.
        var st = a.state
        st.subnets[1]!.params.commitRevealEnabled = 1
        let r = try st.apply(a.tx(m, .setWeights(netuid: 1, uids: [0], values: [1], versionKey: 3)), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(r.error?.code == "CommitRevealEnabled")
    }

    @Test("a full subnet replaces the lowest-emission non-immune uid, oldest first, never the owner")
    func pruning() throws {
        let a = try DevChain(accounts: 8, tempo: 1000) { spec in
            _ = spec.subnets[0].params.set(.maxAllowedUids, 4)
            _ = spec.subnets[0].params.set(.immunityPeriod, 2)
        }
        for i in 0..<3 { try a.produce([a.tx(a.accounts[i], .register(netuid: 1, hotkey: a.accounts[i].publicKey, maxBurn: 1000 * Token.tao))]) }
        #expect(a.state.subnets[1]!.neurons.count == 4)
        for _ in 0..<3 { try a.produce() }
        // All emissions are zero: the earliest registered non-owner (accounts[0], uid 1) goes.
        try a.produce([a.tx(a.accounts[5], .register(netuid: 1, hotkey: a.accounts[5].publicKey, maxBurn: 1000 * Token.tao))])
        let s = a.state.subnets[1]!
        #expect(s.neurons[1].hotkey == a.accounts[5].publicKey)
        #expect(s.neurons[0].hotkey == a.ownerHotkey.publicKey)
        #expect(s.uid(of: a.accounts[0].publicKey) == nil)
        // The burn doubled with each registration, within its bounds.
        #expect(s.burn >= s.params.minBurn && s.burn <= s.params.maxBurn)
        #expect(a.conserved())
    }

    @Test("commit-reveal: commit, wait an epoch, reveal; a wrong reveal is refused")
    func commitReveal() throws {
        let a = try DevChain(tempo: 4) { spec in _ = spec.subnets[0].params.set(.commitRevealEnabled, 1) }
        let v = a.accounts[0]
        try a.produce([a.tx(v, .register(netuid: 1, hotkey: v.publicKey, maxBurn: 100 * Token.tao))])
        let selfUid = UInt16(a.state.subnets[1]!.uid(of: v.publicKey)!)
        let salt: [UInt8] = [1, 2, 3]
        let hash = ChainState.commitHash(hotkey: v.publicKey, netuid: 1, uids: [selfUid], values: [9], salt: salt, versionKey: 0)
        try a.produce([a.tx(v, .commitWeights(netuid: 1, commitHash: hash))])
        var st = a.state
        let early = try st.apply(a.tx(v, .revealWeights(netuid: 1, uids: [selfUid], values: [9], salt: salt, versionKey: 0)), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(early.error?.code == "RevealTooEarly")
        for _ in 0..<5 { try a.produce() }
        st = a.state
        let wrong = try st.apply(a.tx(v, .revealWeights(netuid: 1, uids: [selfUid], values: [8], salt: salt, versionKey: 0)), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context)
        #expect(wrong.error?.code == "InvalidRevealCommitHashNotMatch")
        try a.produce([a.tx(v, .revealWeights(netuid: 1, uids: [selfUid], values: [9], salt: salt, versionKey: 0))])
        #expect(a.state.subnets[1]!.neurons[Int(selfUid)].weights.first?.value == 65535)
    }

    @Test("fork choice: the longest chain wins; finality prunes forks and is never reverted")
    func forks() throws {
        let a = try DevChain()
        let base = try a.produce()
        // Fork A: two blocks; fork B: three blocks, both on `base`.
        let (a1, _) = a.nextBlock(on: base.hash, txs: [a.tx(a.accounts[0], .transfer(to: a.accounts[1].publicKey, amount: 1))])
        try a.core.importBlock(a1, now: a1.header.timestamp)
        let (a2, _) = a.nextBlock(on: a1.hash)
        try a.core.importBlock(a2, now: a2.header.timestamp)
        #expect(a.core.best.hash == a2.hash)
        a.time = a2.header.timestamp
        let (b1, _) = a.nextBlock(on: base.hash, txs: [a.tx(a.accounts[0], .transfer(to: a.accounts[2].publicKey, amount: 1))])
        try a.core.importBlock(b1, now: b1.header.timestamp)
        let (b2, _) = a.nextBlock(on: b1.hash)
        try a.core.importBlock(b2, now: b2.header.timestamp)
        #expect(a.core.best.hash == a2.hash, "equal length: the first seen stays")
        let (b3, _) = a.nextBlock(on: b2.hash)
        let outcome = try a.core.importBlock(b3, now: b3.header.timestamp)
        #expect(outcome == .imported(newBest: true, reorgDepth: 2))
        #expect(a.core.canonicalHash(2) == b1.hash)
        // Finalizing a1 moves the best chain back to fork A and prunes B.
        try a.core.finalize(a1.hash, justification: [1, 2, 3])
        #expect(a.core.best.hash == a2.hash)
        #expect(a.core.state(at: b3.hash) == nil)
        #expect(throws: BlockError.conflictsWithFinalized) { try a.core.importBlock(b1, now: b1.header.timestamp) }
        #expect(throws: ChainStoreError.self) { try a.core.finalize(base.hash, justification: nil) }
    }

    @Test("SQLite store: restart from the base path keeps blocks, best, finalized and state")
    func persistence() throws {
        let dir = TestPaths.temporaryDirectory("chain-db")
        let path = dir + "/chain.db"
        var best: ChainPointer
        var root: Hash32
        do {
            let store = try SQLiteStore(path: path)
            let a = try DevChain(store: store)
            for i in 0..<40 { try a.produce([a.tx(a.accounts[i % 8], .transfer(to: a.accounts[0].publicKey, amount: 3))]) }
            try a.core.finalize(a.core.canonicalHash(25)!, justification: [7])
            best = a.core.best
            var s = a.core.bestState
            root = s.stateRoot()
            store.close()
        }
        let store = try SQLiteStore(path: path)
        let b = try DevChain(store: store)
        #expect(b.core.best == best)
        #expect(b.core.finalized.number == 25)
        var s = b.core.bestState
        #expect(s.stateRoot() == root)
        #expect(try store.justification(25) == [7])
        // It keeps producing on top.
        try b.produce()
        #expect(b.core.best.number == best.number + 1)
        // Another chain's spec is refused on this database.
        #expect(throws: ChainStoreError.self) { _ = try DevChain(store: store, seed: 99) }
    }
}

@Suite("Mempool")
struct MempoolTests {
    @Test("nonce order, dedup, replacement, eviction, pruning")
    func pool() throws {
        let a = try DevChain()
        var config = Mempool.Config()
        config.maxTransactions = 5
        let pool = Mempool(config: config)
        let s = a.state
        let k = a.accounts[0]
        let t1 = a.tx(k, .transfer(to: a.accounts[1].publicKey, amount: 1), nonce: 1)
        let t0 = a.tx(k, .transfer(to: a.accounts[1].publicKey, amount: 1), nonce: 0)
        try pool.submit(t1, state: s, context: a.context)
        #expect(pool.ready(state: s).isEmpty, "nonce 1 waits for nonce 0")
        try pool.submit(t0, state: s, context: a.context)
        #expect(pool.ready(state: s).map(\.nonce) == [0, 1])
        #expect(throws: MempoolError.alreadyKnown) { try pool.submit(t0, state: s, context: a.context) }
        let cheapReplace = a.tx(k, .transfer(to: a.accounts[2].publicKey, amount: 1), nonce: 0, fee: 1050)
        #expect(throws: MempoolError.replacementUnderpriced) { try pool.submit(cheapReplace, state: s, context: a.context) }
        let replace = a.tx(k, .transfer(to: a.accounts[2].publicKey, amount: 1), nonce: 0, fee: 2000)
        try pool.submit(replace, state: s, context: a.context)
        #expect(pool.count == 2)
        var bad = a.tx(a.accounts[1], .transfer(to: k.publicKey, amount: 1))
        bad.signature = k.sign([0])
        #expect(throws: MempoolError.invalid(.badSignature)) { try pool.submit(bad, state: s, context: a.context) }
        #expect(throws: MempoolError.invalid(.feeTooLow(minimum: 1000, offered: 1))) {
            try pool.submit(a.tx(a.accounts[1], .transfer(to: k.publicKey, amount: 1), fee: 1), state: s, context: a.context)
        }
        for i in 1...3 { try pool.submit(a.tx(a.accounts[i], .transfer(to: k.publicKey, amount: 1)), state: s, context: a.context) }
        #expect(pool.count == 5)
        #expect(throws: MempoolError.full) { try pool.submit(a.tx(a.accounts[4], .transfer(to: k.publicKey, amount: 1)), state: s, context: a.context) }
        try pool.submit(a.tx(a.accounts[4], .transfer(to: k.publicKey, amount: 1), fee: 5000), state: s, context: a.context)
        #expect(pool.count == 5)
        // After a block using nonce 0 of k, pruning drops it.
        try a.produce(pool.ready(state: s))
        pool.prune(state: a.state)
        #expect(!pool.contains(replace.hash))
    }
}

@Suite("Chain codec bounds")
struct ChainCodecBoundsTests {
    @Test("the smallest transaction of every call kind fits the decoder's size bound; blocks of them round-trip")
    func smallestTransactions() throws {
        let k = Ed25519.PrivateKey()
        let a = k.publicKey
        let calls: [Call] = [
            .transfer(to: a, amount: 0), .createSubnet(ownerHotkey: a, maxLockCost: 0), .register(netuid: 0, hotkey: a, maxBurn: 0),
            .addStake(hotkey: a, netuid: 0, amount: 0), .removeStake(hotkey: a, netuid: 0, amount: 0),
            .setWeights(netuid: 0, uids: [], values: [], versionKey: 0), .setWeights(netuid: 2, uids: [2], values: [65535], versionKey: 0),
            .commitWeights(netuid: 0, commitHash: .zero), .revealWeights(netuid: 0, uids: [], values: [], salt: [], versionKey: 0),
            .serveAxon(netuid: 0, ip: [], port: 0, nodeId: nil), .setHyperparameter(netuid: 0, parameter: .tempo, value: 0),
            .sudoSetBalance(account: a, amount: 0), .sudoForceValidators(validators: [], delay: 0), .reportEquivocation(evidence: []),
            .increaseTake(hotkey: a, take: 0), .decreaseTake(hotkey: a, take: 0),
            .addStakeLimit(hotkey: a, netuid: 0, amount: 0, limitPrice: 0, allowPartial: false),
            .removeStakeLimit(hotkey: a, netuid: 0, amount: 0, limitPrice: 0, allowPartial: false),
            .moveStake(originHotkey: a, destinationHotkey: a, originNetuid: 0, destinationNetuid: 0, amount: 0),
            .swapStake(hotkey: a, originNetuid: 0, destinationNetuid: 0, amount: 0, limitPrice: nil, allowPartial: false),
            .startCall(netuid: 0), .setSubnetIdentity(netuid: 0, identity: SubnetIdentity()), .updateSymbol(netuid: 0, symbol: ""),
            .setChildren(hotkey: a, netuid: 0, children: []), .setChildkeyTake(hotkey: a, netuid: 0, take: 0),
        ]
        let genesis = Hash32.of([1])
        let txs = calls.map { Transaction(signer: k, nonce: 0, validUntil: 0, fee: 0, call: $0, genesis: genesis) }
        for t in txs { #expect(t.encoded.count >= Transaction.minEncodedSize, "\(t.call.name): \(t.encoded.count) bytes") }
        for t in txs {
            let header = BlockHeader(parentHash: .zero, number: 1, slot: 1, timestamp: 1, stateRoot: .zero,
                                     transactionsRoot: Block.transactionsRoot([t]), producer: a)
            let b = Block(header: header, transactions: [t])
            #expect(try Block.decode(b.encoded) == b, "\(t.call.name)")
        }
    }
}
