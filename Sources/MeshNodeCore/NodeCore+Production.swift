import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Block production: at each slot boundary a validator whose slot it is builds a block from
/// the pool's ready transactions, imports it and announces it.
extension NodeCore {
    func onSlot(now: NodeTime) {
        self.slots.arm(wallMillis: now.wallMillis)
        guard self.config.validator, let slot = self.slots.due(wallMillis: now.wallMillis) else { return }
        // Not while catching up: the block would land on a stale parent.
        if self.isSyncing(now: now) { return }
        do {
            let candidates = self.mempool.ready(state: self.chain.bestState, limit: 1000)
            guard let block = try self.chain.produce(slot: slot, timestamp: now.wallMillis, key: self.key, candidates: candidates) else { return }
            self.slots.produced(slot)
            self.counters.blocksProduced += 1
            self.log.info("Prepared block", ["number": "#\(block.number)", "hash": String(block.hash.hex.prefix(18)),
                                             "transactions": "\(block.transactions.count)"])
            self.publish(GossipTopic.blocks, CompactBlock(block).encoded, now: now)
            self.afterImport(block, newBest: true, reorgDepth: 0, produced: true, now: now)
        } catch {
            self.log.error("block production failed", ["error": "\(error)"])
        }
    }
}
