import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Blocks in: import (from gossip, sync or ancestry fetches), range sync from peers that are
/// ahead, fetches by hash for forks and vote targets, and serving both to peers.
extension NodeCore {
    // MARK: Import

    /// Imports a block; the gossip verdict: accept when imported, ignore when its parent is
    /// unknown (a sync is started), stale or a local store failure, reject when invalid.
    func importBlock(_ block: Block, from id: PeerID?, now: NodeTime) -> ValidationResult {
        let hashes = block.transactions.map { $0.hash }
        do {
            let outcome = try self.chain.importBlock(block, now: now.wallMillis, preverified: self.mempool.verifiedAmong(hashes))
            guard case .imported(let newBest, let depth) = outcome else { return .ignore }
            self.afterImport(block, newBest: newBest, reorgDepth: depth, produced: false, now: now)
            return .accept
        } catch BlockError.unknownParent {
            if let id { self.requestSync(from: id, now: now) }
            return .ignore
        } catch BlockError.conflictsWithFinalized {
            // Stale (built beside what we finalized), e.g. by a peer that was paused: dropped.
            self.countInvalid("stale block")
            return .ignore
        } catch where error.isLocal {
            self.logSync.error("cannot store a block", ["number": "#\(block.number)", "error": "\(error)"])
            return .ignore
        } catch {
            if let id { self.penalize(id, "invalid block", by: 50, now: now) }
            self.logSync.debug("rejected block", ["number": "#\(block.number)", "reason": "\(error)"])
            return .reject
        }
    }

    /// What follows every import: the pool forgets what the block included, the gadget hears
    /// of it, epochs are noted.
    /// `prune`: re-check the pool against the new best state now (a batch prunes once, after).
    func afterImport(_ block: Block, newBest: Bool, reorgDepth: Int, produced: Bool, prune: Bool = true, now: NodeTime) {
        if reorgDepth > 0 {
            self.counters.reorgs += 1
            self.logSync.info("reorganised", ["depth": "\(reorgDepth)", "best": "#\(block.number)"])
        }
        self.imported.note(block.hash, at: now.wallMillis)
        for tx in block.transactions { self.mempool.remove(tx.hash) }
        if newBest && prune { self.mempool.prune(state: self.chain.bestState) }
        self.sync.forgetFetch(block.hash)
        self.emit(.event(.imported(ChainPointer(number: block.number, hash: block.hash), newBest: newBest, produced: produced)))
        self.process(self.finality.blockImported(hash: block.hash, number: block.number, digest: block.header.digest, now: now.instant), now: now)
        self.noteEpochs(block)
    }

    func noteEpochs(_ block: Block) {
        guard let parent = self.chain.state(at: block.header.parentHash), let state = self.chain.state(at: block.hash) else { return }
        for (id, s) in state.subnets.sorted(by: { $0.key < $1.key }) where s.epochCount > (parent.subnets[id]?.epochCount ?? 0) {
            self.counters.epochsRun += 1
            self.emit(.event(.epoch(netuid: id, block: block.number)))
            self.logSync.info("epoch ran", ["netuid": "\(id)", "block": "#\(block.number)", "uids": "\(s.neurons.count)"])
        }
    }

    // MARK: Range sync

    func maybeSync(_ id: PeerID, now: NodeTime) {
        guard let best = self.peers.connected[id]?.best.number, best > self.chain.best.number else { return }
        self.requestSync(from: id, now: now)
    }

    /// Resumes range sync after a request ended without blocks (refused over the peer's
    /// budget, reset, timed out): when no range request is in flight and a peer claims more
    /// than our best, asks the one that claims most. Called every gossip heartbeat, so a
    /// refused request is retried once the peer's budget has refilled, and a node whose peers
    /// produce nothing new does not sit below their best for good.
    func resumeSync(now: NodeTime) {
        let ours = self.chain.best.number
        let connected = self.peers.connected.values
        guard !connected.contains(where: { $0.syncing }),
              let c = connected.filter({ $0.best.number > ours }).max(by: { ($0.best.number, $1.id) < ($1.best.number, $0.id) })
        else { return }
        self.requestSync(from: c.id, now: now)
    }

    /// Asks a peer for the blocks above our best, when no range request to it is in flight:
    /// its pipeline starts at our best + 1 (and a second range follows when the peer claims
    /// blocks past the first).
    func requestSync(from id: PeerID, now: NodeTime) {
        guard let p = self.peers.connected[id], !p.syncing else { return }
        // From just above our best. When the peer's chain forks below it, the first block does
        // not attach (unknown parent) and the fork is fetched back by hash (importSynced).
        guard self.requestRange(id, from: self.chain.best.number.addingSaturated(1), now: now) else { return }
        self.fillSyncPipeline(id, now: now)
    }

    /// Asks for further ranges, each just above the last one asked, while fewer than
    /// `syncRangesInFlight` are in flight and the peer claims blocks in the next one.
    func fillSyncPipeline(_ id: PeerID, now: NodeTime) {
        while let p = self.peers.connected[id], let last = p.syncRanges.last,
              p.syncRanges.count < max(1, self.config.syncRangesInFlight), p.best.number >= last.end {
            guard self.requestRange(id, from: last.end, now: now) else { return }
        }
    }

    /// Sends one range request and records it as the last of the peer's pipeline.
    func requestRange(_ id: PeerID, from: UInt64, now: NodeTime) -> Bool {
        let count = min(max(1, self.config.syncRangeBlocks), BlocksRequest.maxCount)
        let from = min(from, UInt64.max - count)
        guard let rid = self.peers.startRequest(id, kind: ProtocolName.sync, hash: nil, now: now.instant) else { return false }
        self.peers.update(id) { $0.syncRanges.append(SyncRange(rid: rid, from: from, count: count)) }
        self.emit(.request(id, rid, protocol: ProtocolName.sync, BlocksRequest(from: from, count: count).encoded))
        return true
    }

    /// Ends a peer's pipeline at range `index`: that range and every one above it are
    /// dropped, the ones still in flight cancelled. The ranges below it stay and are applied
    /// when they come; what follows them is decided then, as after any applied range.
    func endSyncPipeline(_ id: PeerID, at index: Int) {
        guard let ranges = self.peers.connected[id]?.syncRanges, index < ranges.count else { return }
        for r in ranges[index...] where r.answer == nil {
            if self.peers.finishRequest(id, r.rid) != nil { self.emit(.cancel(id, r.rid)) }
        }
        self.peers.update(id) { $0.syncRanges.removeSubrange(index...) }
    }

    /// The answer to range request `rid`. Answers are applied in the order of their ranges:
    /// one that comes before the ranges below it is held (at most `SyncState.maxHeldAnswers`
    /// and `SyncState.maxHeldBytes` across peers). Each applied range may let the next follow
    /// (it must start where the last block applied ends, after a range applied whole), else
    /// the pipeline ends there; then the pipeline is topped up from the last range asked, or,
    /// when empty, started again at our best as before when the peer is still ahead and the
    /// range imported blocks.
    func receiveRange(_ message: [UInt8], _ rid: RequestID, from id: PeerID, now: NodeTime) {
        guard let index = self.peers[id]?.syncRanges.firstIndex(where: { $0.rid == rid }) else { return }
        guard let answer = try? BlocksResponse.decode(message) else {
            self.endSyncPipeline(id, at: index)
            self.penalize(id, "bad sync response", by: 30, now: now)
            return
        }
        if index > 0 {
            var held = 0, heldBytes = 0
            for p in self.peers.connected.values {
                for r in p.syncRanges { if let a = r.answer { held += 1; heldBytes += a.count } }
            }
            if held >= SyncState.maxHeldAnswers || heldBytes + message.count > SyncState.maxHeldBytes {
                self.endSyncPipeline(id, at: index)
            } else {
                // Kept as received (decoded again when applied): what it holds is its size.
                self.peers.update(id) { $0.syncRanges[index].answer = message }
            }
            return
        }
        var next: BlocksResponse? = answer
        var imported = 0
        while let resp = next, let head = self.peers[id]?.syncRanges.first {
            self.peers.update(id) { $0.syncRanges.removeFirst() }
            let (n, whole) = self.importSynced(resp, from: id, now: now)
            imported = n
            next = nil
            guard let following = self.peers[id]?.syncRanges.first else { break }
            // The next range follows only a range applied whole that ended where it starts.
            guard whole, let last = resp.blocks.last, last.number &+ 1 == following.from, following.from == head.end else {
                self.endSyncPipeline(id, at: 0)
                break
            }
            if let held = following.answer {
                // It decoded when it came; the same bytes decode again.
                guard let decoded = try? BlocksResponse.decode(held) else {
                    self.endSyncPipeline(id, at: 0)
                    break
                }
                next = decoded
            }
        }
        // The peer sends its answers one after the other: the range now lowest in flight was
        // queued behind the ones just applied, and its 15 s start now (a peer that withholds
        // it is still timed out, one answered range at a time).
        if let lowest = self.peers[id]?.syncRanges.first, lowest.answer == nil {
            self.peers.restartRequest(id, lowest.rid, now: now.instant)
        }
        guard imported > 0, let p = self.peers[id], p.best.number > self.chain.best.number else { return }
        if p.syncing {
            self.fillSyncPipeline(id, now: now)
        } else {
            self.logSync.info("syncing", ["best": "#\(self.chain.best.number)", "target": "#\(p.best.number)", "imported": "\(imported)"])
            self.requestSync(from: id, now: now)
        }
    }

    func serveSync(_ message: [UInt8], to id: PeerID, stream: StreamID, now: NodeTime) {
        guard let req = try? BlocksRequest.decode(message) else {
            self.penalize(id, "bad sync request", now: now)
            self.resetIncoming(id, stream, code: ChannelCode.protocolError)
            return
        }
        var blocks: [Block] = []
        var justifications: [(UInt64, [UInt8])] = []
        var size = 0
        var n = req.from
        let end = req.from.addingSaturated(req.count)
        while n < end, let b = self.chain.block(number: n) {
            blocks.append(b)
            size += b.encoded.count
            if let j = try? self.chain.store.justification(n) { justifications.append((n, j)) }
            n += 1
            if size > 8 << 20 { break }
        }
        let answer = BlocksResponse(blocks: blocks, justifications: justifications).encoded
        self.peers.chargeServedBlocks(id, bytes: answer.count, now: now.instant)
        self.reply(id, stream, answer)
    }

    /// Imports one range answer in order; returns the blocks imported and whether the whole
    /// answer was applied (no block failed: held ones are skipped).
    func importSynced(_ resp: BlocksResponse, from id: PeerID, now: NodeTime) -> (imported: Int, whole: Bool) {
        var imported = 0
        var whole = true
        // Signatures of the whole answer are checked on the driver's workers (if any) while
        // the blocks execute in order; what a failed block leaves unchecked is dropped after.
        self.chain.verifyAhead(resp.blocks)
        defer { self.chain.cancelVerifyAhead() }
        // One store transaction for the answer's blocks (`importBatch`); each block's effects
        // on the node follow once it is stored, in order.
        let batch = self.chain.importBatch(resp.blocks, now: now.wallMillis)
        for (block, outcome) in zip(resp.blocks, batch.outcomes) {
            guard case .imported(let newBest, let depth) = outcome else { continue }
            imported += 1
            self.afterImport(block, newBest: newBest, reorgDepth: depth, produced: false, prune: false, now: now)
        }
        if let error = batch.error {
            let block = resp.blocks[batch.outcomes.count]
            whole = false
            switch error {
            case .unknownParent(let parent):
                // The peer's chain forks below our best: fetch its branch back by hash.
                self.fetchBlock(parent, voter: nil, from: id, now: now)
            case _ where error.isLocal:
                self.logSync.error("cannot store a synced block", ["number": "#\(block.number)", "error": "\(error)"])
            default:
                self.logSync.debug("invalid synced block", ["number": "#\(block.number)", "error": "\(error)"])
                self.penalize(id, "invalid synced block", by: 50, now: now)
            }
        }
        self.counters.syncedBlocks += imported
        if imported > 0 {
            self.sync.noteProgress(now.instant)
            self.mempool.prune(state: self.chain.bestState)
        }
        let ours = self.chain.best
        if resp.blocks.isEmpty, let p = self.peers[id], p.best.number > ours.number {
            // The peer claimed more than it could show: its claim is disproven.
            self.peers.update(id) { $0.best = ours }
            self.penalize(id, "sync answer below the claimed best", by: 5, now: now)
        }
        for (_, j) in resp.justifications {
            if let c = try? Commit.decode(j) { _ = self.applyFinality(.commit(c), from: id, now: now) }
        }
        return (imported, whole)
    }

    // MARK: Blocks by hash

    /// Fetches a block we lack by hash (and the ancestors we lack), e.g. the fork block a
    /// finality vote points at: range sync only follows the peer's canonical chain. Asks the
    /// voter's own node when connected (it holds its votes' targets), and the sender.
    func fetchBlock(_ hash: Hash32, voter: AccountID?, from id: PeerID?, now: NodeTime) {
        if self.chain.contains(hash) { return }
        guard self.sync.beginFetch(hash, now: now.instant) else { return }
        var asked = Set<PeerID>()
        let owner = voter.flatMap { self.peers.peer(nodeId: $0) }
        for q in [owner, id].compactMap({ $0 }) where asked.insert(q).inserted {
            self.logSync.debug("fetching block by hash", ["hash": String(hash.hex.prefix(18)), "peer": "\(q)"])
            self.request(q, protocol: ProtocolName.ancestry, body: AncestryRequest(hash: hash, count: 32).encoded, hash: hash, now: now)
        }
    }

    func serveAncestry(_ message: [UInt8], to id: PeerID, stream: StreamID, now: NodeTime) {
        guard let req = try? AncestryRequest.decode(message) else {
            self.penalize(id, "bad ancestry request", now: now)
            self.resetIncoming(id, stream, code: ChannelCode.protocolError)
            return
        }
        var blocks: [Block] = []
        var cursor = req.hash
        var size = 0
        while blocks.count < Int(req.count), size < 8 << 20, let b = self.chain.block(cursor) {
            blocks.append(b)
            size += b.encoded.count
            if b.number <= self.chain.finalized.number { break }
            cursor = b.header.parentHash
        }
        guard !blocks.isEmpty else {
            self.resetIncoming(id, stream, code: ChannelCode.refused)
            return
        }
        let answer = BlocksResponse(blocks: blocks.reversed(), justifications: []).encoded
        self.peers.chargeServedBlocks(id, bytes: answer.count, now: now.instant)
        self.reply(id, stream, answer)
    }

    /// An answer to our request for `asked` and its ancestors: it must end with that block and
    /// be a parent-linked run of consecutive numbers; anything else is the peer's fault.
    func receiveAncestry(_ message: [UInt8], asked: Hash32, from id: PeerID, now: NodeTime) {
        guard let resp = try? BlocksResponse.decode(message), let last = resp.blocks.last, last.hash == asked,
              zip(resp.blocks, resp.blocks.dropFirst()).allSatisfy({ $0.hash == $1.header.parentHash && $0.number &+ 1 == $1.number }) else {
            self.penalize(id, "ancestry answer not the chain asked for", by: 30, now: now)
            return
        }
        // Blocks we hold already (the common ancestor, typically) are skipped.
        let missing = resp.blocks.drop { self.chain.contains($0.hash) }
        guard let first = missing.first else { return }
        self.logSync.debug("blocks by hash received", ["count": "\(missing.count)", "from": "#\(first.number)",
                                                   "parentKnown": "\(self.chain.contains(first.header.parentHash))"])
        if !self.chain.contains(first.header.parentHash) {
            if first.number > self.chain.finalized.number.addingSaturated(1),
               first.number <= self.chain.best.number.addingSaturated(SyncState.maxFetchAhead) {
                self.sync.forgetFetch(first.header.parentHash)
                self.fetchBlock(first.header.parentHash, voter: nil, from: id, now: now)
            }
            return
        }
        self.chain.verifyAhead(Array(missing))
        defer { self.chain.cancelVerifyAhead() }
        for block in missing where !self.chain.contains(block.hash) {
            guard self.chain.contains(block.header.parentHash) else { break }
            if self.importBlock(block, from: id, now: now) == .reject { break }
        }
        self.maybeSync(id, now: now)
    }
}
