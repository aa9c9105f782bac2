import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport

/// A small chain for tests: validators, funded accounts, one subnet, and helpers to build
/// blocks in the right slots.
final class DevChain {
    let validators: [Ed25519.PrivateKey]
    let accounts: [Ed25519.PrivateKey]
    let sudo: Ed25519.PrivateKey
    let owner: Ed25519.PrivateKey
    let ownerHotkey: Ed25519.PrivateKey
    let spec: ChainSpec
    let core: ChainCore
    var time: UInt64

    init(validators count: Int = 3, accounts n: Int = 8, store: any BlockStore = MemoryStore(), tempo: UInt64 = 10,
         seed: UInt64 = 1, configure: (inout ChainSpec) -> Void = { _ in }) throws {
        func key(_ i: UInt64) -> Ed25519.PrivateKey {
            var rng = SeededRNG(seed: seed &* 1000 &+ i)
            return try! Ed25519.PrivateKey(seedBytes: rng.bytes(32))
        }
        self.validators = (0..<UInt64(count)).map { key(100 + $0) }
        self.accounts = (0..<UInt64(n)).map { key(200 + $0) }
        self.sudo = key(1)
        self.owner = key(2)
        self.ownerHotkey = key(3)
        var p = ChainParams()
        p.slotDurationMs = 1000
        p.baseFee = 1000
        p.minLockCost = 10 * Token.tao
        var spec = ChainSpec(name: "Test", id: "test", params: p)
        spec.genesisTimestamp = 1_000_000
        spec.sudo = self.sudo.publicKey
        spec.balances = self.accounts.map { ($0.publicKey, 1000 * Token.tao) } + [(self.owner.publicKey, 1000 * Token.tao), (self.sudo.publicKey, 10 * Token.tao)]
        spec.validators = self.validators.map { ChainSpec.Validator(hotkey: $0.publicKey, coldkey: $0.publicKey, stake: 100 * Token.tao) }
        var sp = SubnetParams()
        _ = sp.set(.tempo, tempo)
        _ = sp.set(.weightsRateLimit, 0)
        _ = sp.set(.immunityPeriod, 5)
        _ = sp.set(.minBurn, Token.tao)
        spec.subnets = [ChainSpec.SubnetSpec(netuid: 1, name: "test", owner: self.owner.publicKey, ownerHotkey: self.ownerHotkey.publicKey, params: sp,
                                             poolTao: 1000 * Token.tao)]
        configure(&spec)
        self.spec = spec
        self.core = try ChainCore(spec: spec, store: store)
        self.time = spec.genesisTimestamp
    }

    var context: ExecutionContext { self.core.context }
    var state: ChainState { self.core.bestState }

    func key(for id: AccountID) -> Ed25519.PrivateKey? { self.validators.first { $0.publicKey == id } }

    /// Builds (without importing) the next block on `parent` in the next slot whose author we hold.
    func nextBlock(on parentHash: Hash32? = nil, txs: [Transaction] = []) -> (Block, UInt64) {
        let parent = parentHash ?? self.core.best.hash
        let parentState = self.core.state(at: parent)!
        let parentHeader = self.core.header(parent)!
        var slot = max(parentHeader.slot + 1, self.time / self.spec.params.slotDurationMs + 1)
        while true {
            var probe = parentState
            let ts = slot * self.spec.params.slotDurationMs
            probe.beginBlock(number: parentHeader.number + 1, timestamp: ts)
            if let author = probe.slotAuthor(slot), let k = self.key(for: author) {
                let (block, _, _) = parentState.buildBlock(parentHash: parent, slot: slot, timestamp: ts, candidates: txs, producer: k, context: self.context)
                return (block, ts)
            }
            slot += 1
        }
    }

    /// Produces and imports one block with `txs`.
    @discardableResult
    func produce(_ txs: [Transaction] = []) throws -> Block {
        let (block, ts) = self.nextBlock(txs: txs)
        self.time = ts
        try self.core.importBlock(block, now: ts)
        return block
    }

    func tx(_ signer: Ed25519.PrivateKey, _ call: Call, nonce: UInt64? = nil, fee: Rao = 1000, validFor: UInt64 = 100) -> Transaction {
        let n = nonce ?? self.core.bestState.nonce(signer.publicKey)
        return Transaction(signer: signer, nonce: n, validUntil: self.core.best.number + validFor, fee: fee, call: call, genesis: self.core.genesisHash)
    }

    /// Checks issuance − burned == every rao accounted for, and every subnet's alpha outside
    /// its pool accounted for.
    func conserved() -> Bool {
        let s = self.core.bestState
        return s.totalIssuance - s.totalBurned == s.accountedSupply && s.subnets.keys.allSatisfy { s.accountedAlpha($0) == s.subnets[$0]!.pool.alphaOut }
    }
}
