import MeshChain
import MeshChannel
import MeshCodec
import MeshGossip
import MeshNetwork
import MeshSockets

/// A compact block waiting for the transactions the pool did not have.
struct CompactPending {
    var compact: CompactBlock
    var body: [Transaction?]
    var messageID: MessageID
    var from: Int
    var asked: [Int]
    var deadline: UInt64
}

/// Compact block relay (docs/gossip.md): the blocks topic carries headers and short
/// transaction ids; the body is rebuilt from the pool, and only what is missing is fetched
/// from the peer that sent the announcement (`/tm/blocktxs/1`). A block that cannot be
/// rebuilt (a short-id collision, a peer that does not answer) is fetched whole through sync.
extension Node {
    static let compactFetchTimeout: UInt64 = 3_000_000_000
    static let maxCompactPending = 64

    /// The gossip verdict on a compact block; nil when it comes later (transactions fetched).
    func validateCompactBlock(_ m: GossipMessage, from p: PeerState?) -> ValidationResult? {
        let compact: CompactBlock
        do { compact = try CompactBlock.decode(m.data) } catch {
            self.counters.invalidMessages["undecodable block", default: 0] += 1
            self.log.warn("undecodable compact block from a peer", ["peer": p?.peer.description ?? "?", "error": "\(error)"])
            return .reject
        }
        let hash = compact.hash
        if self.chain.contains(hash) || self.compactPending[hash] != nil { return .ignore }
        guard self.chain.contains(compact.header.parentHash) else {
            // Cannot be checked yet (its parent is unknown): not relayed, not held; sync asks
            // this peer for its chain, which proves or disproves it.
            if let p { self.requestSync(from: p) }
            return .ignore
        }
        // A block on a parent finality left behind is stale, not forged: a peer that was paused
        // or partitioned publishes what it built meanwhile. Dropped, not relayed, not charged.
        guard self.chain.canExtend(compact.header.parentHash) else {
            self.counters.invalidMessages["stale block", default: 0] += 1
            return .ignore
        }
        // The header must come from the slot's author, in order, before anything is spent on
        // the body (rebuilding from the pool, fetching transactions).
        do { try self.chain.verifyHeader(compact.header, now: Node.wallClockMillis()) } catch {
            if let p { self.penalize(p, "block header fails its checks", by: 50) }
            self.log.debug("rejected block header", ["number": "#\(compact.header.number)", "reason": "\(error)"])
            return .reject
        }
        if let p, compact.header.number > p.best.number { p.best = ChainPointer(number: compact.header.number, hash: hash) }
        let (body, result) = compact.reconstruct(fromHashed: self.mempool.pending)
        switch result {
        case .complete(let block):
            self.counters.compactFromPool += 1
            return self.importBlock(block, from: p)
        case .rootMismatch:
            self.counters.compactFallbacks += 1
            if let p { self.requestSync(from: p) }
            return .ignore
        case .missing(let indexes):
            guard let p, self.compactPending.count < Node.maxCompactPending else {
                self.counters.compactFallbacks += 1
                return .ignore
            }
            self.compactPending[hash] = CompactPending(compact: compact, body: body, messageID: m.id, from: p.tag, asked: indexes,
                                                       deadline: EventLoop.now() + Node.compactFetchTimeout)
            self.request(p, protocol: ProtocolName.blockTransactions,
                         body: BlockTransactionsRequest(block: hash, indexes: indexes.map { UInt32($0) }).encoded)
            return nil
        }
    }

    /// Answers a request for transactions of a block we hold.
    func serveBlockTransactions(_ message: [UInt8], to p: PeerState, stream: StreamID) {
        guard let req = try? BlockTransactionsRequest.decode(message) else {
            self.penalize(p, "bad block transactions request")
            self.resetIncoming(p, stream, code: ChannelCode.protocolError)
            return
        }
        guard let block = self.chain.block(req.block), req.indexes.allSatisfy({ Int($0) < block.transactions.count }) else {
            self.resetIncoming(p, stream, code: ChannelCode.refused)
            return
        }
        let txs = req.indexes.map { block.transactions[Int($0)] }
        try? p.peer.send(BlockTransactionsResponse(block: req.block, transactions: txs).encoded, on: stream, finish: true)
    }

    /// The missing transactions arrived: finish the block and give gossip its verdict.
    func receiveBlockTransactions(_ message: [UInt8], from p: PeerState) {
        guard let resp = try? BlockTransactionsResponse.decode(message) else {
            self.penalize(p, "bad block transactions response", by: 30)
            return
        }
        guard let pending = self.compactPending[resp.block], pending.from == p.tag else { return }
        self.compactPending[resp.block] = nil
        let (_, result) = pending.compact.fill(pending.body, indexes: pending.asked, with: resp.transactions)
        let verdict: ValidationResult
        switch result {
        case .complete(let block):
            self.counters.compactFetched += 1
            self.counters.compactTransactionsFetched += resp.transactions.count
            verdict = self.importBlock(block, from: p)
        case .missing, .rootMismatch:
            // The peer relayed the block, so it holds the body: an answer that does not
            // complete it is a broken promise. Fetch the block whole.
            self.counters.compactFallbacks += 1
            self.penalize(p, "block transactions do not complete the block", by: 20)
            self.requestSync(from: p)
            verdict = .ignore
        }
        self.gossip.validated(pending.messageID, verdict, now: EventLoop.now())
        self.flushGossip()
    }

    /// Fetches that took too long fall back to sync (called from the heartbeat).
    func expireCompactFetches() {
        let now = EventLoop.now()
        for (hash, pending) in self.compactPending where pending.deadline <= now {
            self.compactPending[hash] = nil
            self.counters.compactFallbacks += 1
            self.gossip.validated(pending.messageID, .ignore, now: now)
            if let p = self.peers[pending.from] {
                self.penalize(p, "block transactions not served", by: 5)
                self.requestSync(from: p)
            }
        }
    }
}
