import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshTestSupport
import Testing

/// Hostile transactions, specs and answers against the chain: each used to trap the node, or
/// to leave state that a restart could not rebuild.
@Suite("Chain under hostile input")
struct HostileChainTests {
    func tx(_ d: DevChain, _ key: Ed25519.PrivateKey, _ call: Call, nonce: UInt64? = nil, fee: UInt64? = nil) -> Transaction {
        Transaction(signer: key, nonce: nonce ?? d.state.nonce(key.publicKey), validUntil: d.state.number + 64,
                    fee: fee ?? d.spec.params.baseFee, call: call, genesis: d.core.genesisHash)
    }

    @Test("a zero transfer is refused; a fee-free producer and every other path keep zero balances out of the state; a snapshot restores the same root")
    func zeroBalances() throws {
        let store = MemoryStore()
        let d = try DevChain(store: store)
        let fresh = Ed25519.PrivateKey().publicKey
        let block = try d.produce([self.tx(d, d.accounts[0], .transfer(to: fresh, amount: 0))])
        #expect(d.core.receipts[block.transactions[0].hash]?.error?.code == "InvalidTransferAmount")
        #expect(d.state.balance(fresh) == 0)
        // Drain an account completely: its entry disappears rather than holding 0.
        let all = d.state.balance(d.accounts[1].publicKey) - d.spec.params.baseFee
        try d.produce([self.tx(d, d.accounts[1], .transfer(to: fresh, amount: all))])
        #expect(d.state.balance(d.accounts[1].publicKey) == 0)
        // The state survives a snapshot byte for byte: same root after a decode.
        var s = d.state
        var decoded = try ChainState.decode(s.encoded)
        #expect(decoded.stateRoot() == s.stateRoot())
    }

    @Test("sudo: a forced validator change with delay 2^64 - 1 is refused, minting past the supply cap is refused")
    func sudoOverflows() throws {
        let d = try DevChain()
        let force = self.tx(d, d.sudo, .sudoForceValidators(validators: [d.validators[0].publicKey], delay: .max))
        let b1 = try d.produce([force])
        #expect(d.core.receipts[b1.transactions[0].hash]?.error?.code == "InvalidDelay")
        let mint = self.tx(d, d.sudo, .sudoSetBalance(account: d.accounts[0].publicKey, amount: .max))
        let b2 = try d.produce([mint])
        #expect(d.core.receipts[b2.transactions[0].hash]?.error?.code == "SupplyCapExceeded")
        // Through the pool's dry run too (every node runs it on gossip).
        let pool = Mempool()
        #expect(throws: MempoolError.self) {
            try pool.submit(self.tx(d, d.sudo, .sudoForceValidators(validators: [d.validators[0].publicKey], delay: .max)), state: d.state, context: d.context)
        }
    }

    @Test("chain specs: parameters out of range and balances past the supply cap are refused with the field named")
    func hostileSpecs() throws {
        let d = try DevChain()
        func parse(_ mutate: (inout ChainSpec) -> Void) -> String? {
            var spec = d.spec
            mutate(&spec)
            do { _ = try ChainSpec.parse(Array(spec.json().serialized().utf8)); return nil } catch { return error.field }
        }
        #expect(parse { _ in } == nil)
        #expect(parse { $0.params.maxAuthorities = 5000 } == "params.maxAuthorities")
        #expect(parse { $0.params.slotDurationMs = .max } == "params.slotDurationMs")
        #expect(parse { $0.params.authorityChangeDelay = .max } == "params.authorityChangeDelay")
        #expect(parse { $0.params.emission.supplyCap = .max } == "params.supplyCap")
        let someone = d.accounts[0].publicKey
        #expect(parse { $0.balances = [(someone, .max), (someone, .max)] } == "genesis")
        #expect(parse { $0.balances = [(someone, $0.params.emission.supplyCap)] } == "genesis", "balances plus the validators' stake pass the cap")
    }

    @Test("pool: an account cannot pin it with future nonces or with fees it cannot pay; a replacement near 2^64 does not trap")
    func poolPinning() throws {
        let d = try DevChain()
        var config = Mempool.Config()
        config.maxTransactions = 64
        let pool = Mempool(config: config)
        let a = d.accounts[0]
        let n = d.state.nonce(a.publicKey)
        var refused = 0
        for k in 1..<40 {
            do { try pool.submit(self.tx(d, a, .transfer(to: d.accounts[2].publicKey, amount: 1), nonce: n + UInt64(k), fee: Token.tao), state: d.state, context: d.context) } catch {
                refused += 1
            }
        }
        #expect(pool.count == config.maxFuturePerAccount, "future-nonce transactions per account are capped")
        #expect(refused == 39 - config.maxFuturePerAccount)
        // A gap-free run of nonces is not "future": an account may queue more than that many.
        let seq = d.accounts[1]
        let m = d.state.nonce(seq.publicKey)
        for k in 0..<(config.maxFuturePerAccount + 8) {
            try pool.submit(self.tx(d, seq, .transfer(to: d.accounts[2].publicKey, amount: 1), nonce: m + UInt64(k), fee: Token.tao), state: d.state, context: d.context)
        }
        #expect(pool.count == 2 * config.maxFuturePerAccount + 8)
        // Fees the account cannot pay in sum are refused.
        let poor = d.accounts[3]
        let balance = d.state.balance(poor.publicKey)
        try pool.submit(self.tx(d, poor, .transfer(to: d.accounts[2].publicKey, amount: 1), fee: balance / 2 + 1), state: d.state, context: d.context)
        #expect(throws: MempoolError.self) {
            try pool.submit(self.tx(d, poor, .transfer(to: d.accounts[2].publicKey, amount: 1), nonce: d.state.nonce(poor.publicKey) + 1, fee: balance / 2 + 1),
                            state: d.state, context: d.context)
        }
        // A runnable transaction from another account evicts future ones when the pool is full.
        for (i, k) in d.accounts[4...6].enumerated() {
            for j in 1...config.maxFuturePerAccount {
                _ = try? pool.submit(self.tx(d, k, .transfer(to: d.accounts[2].publicKey, amount: 1), nonce: d.state.nonce(k.publicKey) + UInt64(j), fee: Token.tao),
                                     state: d.state, context: d.context)
            }
            _ = i
        }
        let honest = self.tx(d, d.accounts[7], .transfer(to: d.accounts[2].publicKey, amount: 1))
        try pool.submit(honest, state: d.state, context: d.context)
        #expect(pool.contains(honest.hash))
    }
}
