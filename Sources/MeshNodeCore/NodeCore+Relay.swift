import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Compact block relay (docs/gossip.md): the blocks topic carries headers and short
/// transaction ids; the body is rebuilt from the pool, and only what is missing is fetched
/// from the peer that sent the announcement (`/tm/blocktxs/1`). A block that cannot be
/// rebuilt (a short-id collision, a peer that does not answer) is fetched whole through sync.
extension NodeCore {
    /// The gossip verdict on a compact block; nil when it comes later (transactions fetched).
    func validateCompactBlock(_ m: GossipMessage, from id: PeerID?, now: NodeTime) -> ValidationResult? {
        let compact: CompactBlock
        do { compact = try CompactBlock.decode(m.data) } catch {
            self.countInvalid("undecodable block")
            self.logSync.debug("undecodable compact block from a peer", ["peer": "\(id ?? -1)", "error": "\(error)"])
            return .reject
        }
        let hash = compact.hash
        if self.chain.contains(hash) || self.relay.isPending(hash) { return .ignore }
        guard self.chain.contains(compact.header.parentHash) else {
            // Cannot be checked yet (its parent is unknown): not relayed, not held; sync asks
            // this peer for its chain, which proves or disproves it.
            if let id { self.requestSync(from: id, now: now) }
            return .ignore
        }
        // A block on a parent finality left behind is stale, not forged: a peer that was paused
        // or partitioned publishes what it built meanwhile. Dropped, not relayed, not charged.
        guard self.chain.canExtend(compact.header.parentHash) else {
            self.countInvalid("stale block")
            return .ignore
        }
        // The header must come from the slot's author, in order, before anything is spent on
        // the body (rebuilding from the pool, fetching transactions).
        do { try self.chain.verifyHeader(compact.header, now: now.wallMillis) } catch {
            if let id { self.penalize(id, "block header fails its checks", by: 50, now: now) }
            self.logSync.debug("rejected block header", ["number": "#\(compact.header.number)", "reason": "\(error)"])
            return .reject
        }
        // A signed header proves the peer has the block: its claimed best may rise to it.
        if let id { self.peers.update(id) { p in if compact.header.number > p.best.number { p.best = ChainPointer(number: compact.header.number, hash: hash) } } }
        let (body, result) = compact.reconstruct(fromHashed: self.mempool.pending)
        switch result {
        case .complete(let block):
            self.counters.compactFromPool += 1
            return self.importBlock(block, from: id, now: now)
        case .rootMismatch:
            self.counters.compactFallbacks += 1
            if let id { self.requestSync(from: id, now: now) }
            return .ignore
        case .missing(let indexes):
            guard let id, self.relay.hasRoom else {
                self.counters.compactFallbacks += 1
                return .ignore
            }
            self.relay.hold(hash, CompactPending(compact: compact, body: body, messageID: m.id, from: id, asked: indexes,
                                                 deadline: now.instant + BlockRelay.fetchTimeout))
            self.request(id, protocol: ProtocolName.blockTransactions,
                         body: BlockTransactionsRequest(block: hash, indexes: indexes.map { UInt32($0) }).encoded, now: now)
            return nil
        }
    }

    /// Answers a request for transactions of a block we hold.
    func serveBlockTransactions(_ message: [UInt8], to id: PeerID, stream: StreamID, now: NodeTime) {
        guard let req = try? BlockTransactionsRequest.decode(message) else {
            self.penalize(id, "bad block transactions request", now: now)
            self.resetIncoming(id, stream, code: ChannelCode.protocolError)
            return
        }
        guard let block = self.chain.block(req.block), req.indexes.allSatisfy({ Int($0) < block.transactions.count }) else {
            self.resetIncoming(id, stream, code: ChannelCode.refused)
            return
        }
        let txs = req.indexes.map { block.transactions[Int($0)] }
        self.reply(id, stream, BlockTransactionsResponse(block: req.block, transactions: txs).encoded)
    }

    /// The missing transactions arrived: finish the block and give gossip its verdict.
    func receiveBlockTransactions(_ message: [UInt8], from id: PeerID, now: NodeTime) {
        guard let resp = try? BlockTransactionsResponse.decode(message) else {
            self.penalize(id, "bad block transactions response", by: 30, now: now)
            return
        }
        guard let pending = self.relay.take(resp.block, from: id) else { return }
        let (_, result) = pending.compact.fill(pending.body, indexes: pending.asked, with: resp.transactions)
        let verdict: ValidationResult
        switch result {
        case .complete(let block):
            self.counters.compactFetched += 1
            self.counters.compactTransactionsFetched += resp.transactions.count
            verdict = self.importBlock(block, from: id, now: now)
        case .missing, .rootMismatch:
            // The peer relayed the block, so it holds the body: an answer that does not
            // complete it is a broken promise. Fetch the block whole.
            self.counters.compactFallbacks += 1
            self.penalize(id, "block transactions do not complete the block", by: 20, now: now)
            self.requestSync(from: id, now: now)
            verdict = .ignore
        }
        self.gossip.validated(pending.messageID, verdict, now: now.instant)
    }

    /// Fetches that took too long fall back to sync (from the heartbeat).
    func expireCompactFetches(now: NodeTime) {
        for pending in self.relay.expired(now: now.instant) {
            self.counters.compactFallbacks += 1
            self.gossip.validated(pending.messageID, .ignore, now: now.instant)
            if self.peers.isConnected(pending.from) {
                self.penalize(pending.from, "block transactions not served", by: 5, now: now)
                self.requestSync(from: pending.from, now: now)
            }
        }
    }
}
