import MeshCodec
import MeshCrypto

/// Why the mempool refused a transaction.
public enum MempoolError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(TransactionError)
    case alreadyKnown
    case nonceTooFarAhead(expected: UInt64, got: UInt64)
    case replacementUnderpriced
    case full
    case accountLimit
    /// The call would fail if included in the next block (checked for the next nonce only).
    case wouldFail(DispatchError)

    public var description: String {
        switch self {
        case .invalid(let e): return e.description
        case .alreadyKnown: return "transaction already in the pool"
        case .nonceTooFarAhead(let e, let g): return "nonce \(g) is too far ahead (next is \(e))"
        case .replacementUnderpriced: return "a transaction with this nonce is pending; a replacement must pay 10% more"
        case .full: return "the transaction pool is full and this fee is too low to evict anything"
        case .accountLimit: return "too many pending transactions from this account"
        case .wouldFail(let e): return e.description
        }
    }
}

/// Pending transactions: validated on entry, deduplicated, ordered per account by nonce,
/// bounded in count, evicting the cheapest (then oldest) first. Not thread-safe.
public final class Mempool {
    public struct Config: Sendable {
        public var maxTransactions = 8192
        public var maxPerAccount = 64
        public var maxNonceGap: UInt64 = 64
        /// Transactions per account that cannot run yet (a nonce gap before them): they pay no
        /// fee until they do, so only a few are kept, and they are evicted first.
        public var maxFuturePerAccount = 16
        /// Blocks a transaction may wait in the pool before it is dropped.
        public var maxAgeBlocks: UInt64 = 600
        /// Refuse a next-nonce transaction whose call would fail on the current best state.
        public var dryRun = true
        public init() {}
    }

    struct Entry {
        var tx: Transaction
        var hash: Hash32
        var arrival: UInt64
        /// The best block when it arrived (for the age limit).
        var arrivedAt: UInt64
    }

    public let config: Config
    var byHash: [Hash32: Entry] = [:]
    var byAccount: [AccountID: [UInt64: Hash32]] = [:]
    var arrivals: UInt64 = 0
    /// Signatures already verified (by transaction hash), so a gossiped transaction is
    /// verified once, not at every relay and again at block import.
    var verified: Set<Hash32> = []

    public init(config: Config = Config()) { self.config = config }

    public var count: Int { self.byHash.count }
    public func contains(_ hash: Hash32) -> Bool { self.byHash[hash] != nil }
    public func transaction(_ hash: Hash32) -> Transaction? { self.byHash[hash]?.tx }
    /// The pending transactions in no particular order (cheap: no sort).
    public var pending: some Sequence<(hash: Hash32, tx: Transaction)> { self.byHash.values.lazy.map { (hash: $0.hash, tx: $0.tx) } }
    public var all: [Transaction] { self.byHash.values.sorted { $0.arrival < $1.arrival }.map { $0.tx } }

    /// Validates and adds a transaction against the best state.
    @discardableResult
    public func submit(_ tx: Transaction, state: ChainState, context: ExecutionContext) throws(MempoolError) -> Hash32 {
        let hash = tx.hash
        if self.byHash[hash] != nil { throw .alreadyKnown }
        let next = state.number + 1
        let expected = state.nonce(tx.signer)
        if tx.nonce < expected { throw .invalid(.staleNonce(expected: expected, got: tx.nonce)) }
        if tx.nonce >= expected.addingSaturated(self.config.maxNonceGap) { throw .nonceTooFarAhead(expected: expected, got: tx.nonce) }
        if tx.validUntil < next { throw .invalid(.expired(validUntil: tx.validUntil, block: next)) }
        if tx.fee < state.params.baseFee { throw .invalid(.feeTooLow(minimum: state.params.baseFee, offered: tx.fee)) }
        if state.balance(tx.signer) < tx.fee { throw .invalid(.cannotPayFee(balance: state.balance(tx.signer), fee: tx.fee)) }
        let size = tx.encoded.count
        if size > Transaction.maxSize { throw .invalid(.tooLarge(size)) }
        // The cheap refusals first (nothing here costs a signature check or a state copy).
        var account = self.byAccount[tx.signer] ?? [:]
        let replacing = account[tx.nonce].flatMap { self.byHash[$0] }
        if let old = replacing, tx.fee < old.tx.fee.addingSaturated(old.tx.fee / 10) { throw .replacementUnderpriced }
        if replacing == nil {
            if account.count >= self.config.maxPerAccount { throw .accountLimit }
            // Future: past the gap-free run of nonces from the state's. Those wait for a
            // transaction that may never come, so only a few are held per account.
            var runEnd = expected
            while account[runEnd] != nil { runEnd &+= 1 }
            if tx.nonce > runEnd && account.keys.filter({ $0 > runEnd }).count >= self.config.maxFuturePerAccount { throw .accountLimit }
        }
        // The account must be able to pay every fee it has pending, this one included.
        let pendingFees = account.values.compactMap { self.byHash[$0] }.filter { $0.tx.nonce != tx.nonce }
            .reduce(UInt64(0)) { $0.addingSaturated($1.tx.fee) }
        if state.balance(tx.signer) < pendingFees.addingSaturated(tx.fee) {
            throw .invalid(.cannotPayFee(balance: state.balance(tx.signer), fee: pendingFees.addingSaturated(tx.fee)))
        }
        // The signature before the full-pool scan below: that scan walks the pool, and a
        // forged transaction must not buy it.
        if !self.verified.contains(hash) {
            guard tx.verifySignature(genesis: context.genesis) else { throw .invalid(.badSignature) }
        }
        var victim: Entry?
        if replacing == nil && self.byHash.count >= self.config.maxTransactions {
            // Evict what cannot run yet first, then the cheapest, oldest transaction, if this
            // one pays more.
            // Runnable: its account's nonces run without a gap from the state's up to it.
            var runEnd: [AccountID: UInt64] = [:]
            for (acct, nonces) in self.byAccount {
                var n = state.nonce(acct)
                while nonces[n] != nil { n &+= 1 }
                runEnd[acct] = n
            }
            let runnable = { (e: Entry) in e.tx.nonce < (runEnd[e.tx.signer] ?? 0) }
            guard let v = self.byHash.values.min(by: { a, b in
                runnable(a) != runnable(b) ? !runnable(a) : (a.tx.fee != b.tx.fee ? a.tx.fee < b.tx.fee : a.arrival < b.arrival)
            }), !runnable(v) || v.tx.fee < tx.fee else { throw .full }
            victim = v
        }
        if tx.nonce == expected && self.config.dryRun {
            // Refuse calls that would fail now, with the chain's reason (the fee would be
            // wasted otherwise); later nonces depend on earlier ones and are not checked.
            var trial = state
            trial.number = next
            var ctx = context
            ctx.checkSignatures = false
            if let r = try? trial.apply(tx, at: next, producer: tx.signer, context: ctx), let e = r.error { throw .wouldFail(e) }
        }
        if let old = replacing {
            self.remove(old.hash)
            account = self.byAccount[tx.signer] ?? [:]
        }
        if let v = victim {
            self.remove(v.hash)
            account = self.byAccount[tx.signer] ?? [:]
        }
        self.arrivals += 1
        self.byHash[hash] = Entry(tx: tx, hash: hash, arrival: self.arrivals, arrivedAt: state.number)
        account[tx.nonce] = hash
        self.byAccount[tx.signer] = account
        self.verified.insert(hash)
        if self.verified.count > 4 * self.config.maxTransactions { self.verified = Set(self.byHash.keys) }
        return hash
    }

    /// Which of `hashes` have verified signatures here (for block import).
    public func verifiedAmong(_ hashes: some Sequence<Hash32>) -> Set<Hash32> { Set(hashes.filter { self.verified.contains($0) }) }

    /// Marks a signature as verified (e.g. by a block import) so the pool skips it.
    public func noteVerified(_ hash: Hash32) { self.verified.insert(hash) }

    /// Removes a transaction.
    public func remove(_ hash: Hash32) {
        guard let e = self.byHash.removeValue(forKey: hash) else { return }
        self.byAccount[e.tx.signer]?[e.tx.nonce] = nil
        if self.byAccount[e.tx.signer]?.isEmpty == true { self.byAccount[e.tx.signer] = nil }
    }

    /// Drops what the new best state made invalid (used nonces, expired) and what waited
    /// longer than `maxAgeBlocks`.
    public func prune(state: ChainState) {
        let next = state.number &+ 1
        for (hash, e) in self.byHash
        where e.tx.nonce < state.nonce(e.tx.signer) || e.tx.validUntil < next || state.number.subtractingSaturated(e.arrivedAt) > self.config.maxAgeBlocks {
            self.remove(hash)
        }
    }

    /// Transactions ready for the next block: each account's run of consecutive nonces from
    /// its state nonce, merged across accounts by fee (highest first), then arrival.
    public func ready(state: ChainState, limit: Int = 1000) -> [Transaction] {
        var queues: [[Entry]] = []
        for (account, nonces) in self.byAccount {
            var run: [Entry] = []
            var n = state.nonce(account)
            while let h = nonces[n], let e = self.byHash[h] {
                run.append(e)
                n &+= 1
            }
            if !run.isEmpty { queues.append(run) }
        }
        var heads = queues.map { _ in 0 }
        var out: [Transaction] = []
        while out.count < limit {
            var pick = -1
            for q in queues.indices where heads[q] < queues[q].count {
                let e = queues[q][heads[q]]
                if pick < 0 { pick = q; continue }
                let b = queues[pick][heads[pick]]
                if e.tx.fee > b.tx.fee || (e.tx.fee == b.tx.fee && e.arrival < b.arrival) { pick = q }
            }
            if pick < 0 { break }
            out.append(queues[pick][heads[pick]].tx)
            heads[pick] += 1
        }
        return out
    }
}
