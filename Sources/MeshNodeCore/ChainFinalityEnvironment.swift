import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// The finality gadget's view of the node's chain (also `import-blocks`').
package final class ChainFinalityEnvironment: FinalityEnvironment {
    unowned let chain: ChainCore

    package init(chain: ChainCore) { self.chain = chain }

    package func header(_ hash: Hash32) -> (number: UInt64, parent: Hash32)? {
        guard let h = self.chain.header(hash) else { return nil }
        return (h.number, h.parentHash)
    }

    package func bestChain(containing base: VoteTarget) -> VoteTarget? {
        guard self.chain.header(base.hash) != nil else { return nil }
        var best: VoteTarget?
        for leaf in self.chain.leaves where leaf.number >= base.number {
            let t = VoteTarget(hash: leaf.hash, number: leaf.number)
            guard self.isDescendant(t, of: base) else { continue }
            if let b = best, !(t.number > b.number || (t.number == b.number && t.hash < b.hash)) { continue }
            best = t
        }
        return best ?? base
    }
}
