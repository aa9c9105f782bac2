/// Verifies blocks' signatures ahead of their import, on threads its owner runs (the node's
/// `SignatureWorkerPool`); `ChainCore.signatureVerifier`.
///
/// It only ever adds knowledge: at import `ChainCore` skips the signatures a ticket reported
/// valid and checks every other one itself, in order, exactly as without a verifier. A
/// signature that is invalid, or that the verifier skipped (its queue full, the ticket
/// cancelled), therefore fails the block at the same index with the same error.
public protocol BlockSignatureVerifier: AnyObject, Sendable {
    /// Starts verifying the producer's signature and the transactions' signatures of
    /// `blocks` (transactions whose hash is in `skipping` left out: verified already). One
    /// ticket per block, in the order given; work is queued in that order.
    func submit(_ blocks: [Block], genesis: Hash32, skipping: Set<Hash32>) -> [any SignatureTicket]
}

/// One block's signature checks in a verifier.
public protocol SignatureTicket: AnyObject, Sendable {
    /// Blocks until every queued check of the block is done (or the ticket was cancelled) and
    /// returns what was found valid.
    func wait() -> VerifiedSignatures
    /// Drops the checks not started yet (the block will not be imported, or not now).
    func cancel()
}

/// What a verifier found valid for one block.
public struct VerifiedSignatures: Sendable, Equatable {
    /// The producer's signature over the header hash verified.
    public var header: Bool
    /// Transactions (by hash, which covers the signature) whose signatures verified.
    public var transactions: Set<Hash32>
    /// Transactions by index: `true` at i when transaction i of `indexedTransactions`
    /// verified. A verifier that checks a block's own transactions reports them this way,
    /// without hashing each one for the set (the importer hashes them anyway, for the
    /// transactions root).
    public var transactionsByIndex: [Bool]
    /// The transactions `transactionsByIndex` speaks of: the body the verifier was given. A
    /// header hash does not pin a body (a peer can send another body under the same header),
    /// so the importer uses the indices only for this very body (``indices(for:)``).
    public var indexedTransactions: [Transaction]

    public init(header: Bool = false, transactions: Set<Hash32> = [], transactionsByIndex: [Bool] = [],
                indexedTransactions: [Transaction] = []) {
        self.header = header
        self.transactions = transactions
        self.transactionsByIndex = transactionsByIndex
        self.indexedTransactions = indexedTransactions
    }

    /// `transactionsByIndex` when `body` is the body the verifier checked (the same array,
    /// or equal transactions), else none.
    public func indices(for body: [Transaction]) -> [Bool] {
        guard !self.transactionsByIndex.isEmpty, self.transactionsByIndex.count == body.count,
              self.indexedTransactions.count == body.count else { return [] }
        // One array handed along (the usual case): the same storage is the same body.
        let same = self.indexedTransactions.withUnsafeBufferPointer { a in body.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress } }
        return same || self.indexedTransactions == body ? self.transactionsByIndex : []
    }
}
