import MeshChain
import MeshCrypto
import MeshFinality

/// A node's view of the block tree in simulations: headers only (no state machine), with
/// longest-chain fork choice. Implements the finality gadget's environment.
public final class SimBlockTree: FinalityEnvironment {
    struct Node {
        var number: UInt64
        var parent: Hash32
        var digest: [DigestItem]
    }

    var nodes: [Hash32: Node] = [:]
    var leaves: Set<Hash32> = []
    public private(set) var best: VoteTarget
    public let genesis: VoteTarget

    public init(genesis: Hash32) {
        self.genesis = VoteTarget(hash: genesis, number: 0)
        self.nodes[genesis] = Node(number: 0, parent: .zero, digest: [])
        self.leaves = [genesis]
        self.best = self.genesis
    }

    public func contains(_ hash: Hash32) -> Bool { self.nodes[hash] != nil }

    /// Adds a block whose parent is known; returns false otherwise (or if already known).
    @discardableResult
    public func add(hash: Hash32, number: UInt64, parent: Hash32, digest: [DigestItem] = []) -> Bool {
        guard self.nodes[hash] == nil, let p = self.nodes[parent], p.number + 1 == number else { return false }
        self.nodes[hash] = Node(number: number, parent: parent, digest: digest)
        self.leaves.remove(parent)
        self.leaves.insert(hash)
        if number > self.best.number || (number == self.best.number && hash < self.best.hash) {
            self.best = VoteTarget(hash: hash, number: number)
        }
        return true
    }

    public func header(_ hash: Hash32) -> (number: UInt64, parent: Hash32)? {
        guard let n = self.nodes[hash] else { return nil }
        return (n.number, n.parent)
    }

    public func bestChain(containing base: VoteTarget) -> VoteTarget? {
        guard self.nodes[base.hash] != nil else { return nil }
        var bestLeaf: VoteTarget?
        for leaf in self.leaves {
            let n = self.nodes[leaf]!.number
            let t = VoteTarget(hash: leaf, number: n)
            guard n >= base.number, self.isDescendant(t, of: base) else { continue }
            if let b = bestLeaf, !(n > b.number || (n == b.number && leaf < b.hash)) { continue }
            bestLeaf = t
        }
        return bestLeaf ?? base
    }

    /// The best chain containing `base` (fork choice that respects finality).
    public func head(respecting finalized: VoteTarget) -> VoteTarget { self.bestChain(containing: finalized) ?? self.best }

    /// Walks from `hash` down to `number`, returning (number, hash) pairs, highest first.
    public func path(from target: VoteTarget, downTo number: UInt64) -> [(UInt64, Hash32)] {
        var out: [(UInt64, Hash32)] = []
        var cursor = target.hash
        var n = target.number
        while n > number, let node = self.nodes[cursor] {
            out.append((n, cursor))
            cursor = node.parent
            n -= 1
        }
        return out
    }

    /// A block hash for the simulation: SHA-256 over its fields.
    public static func blockHash(parent: Hash32, number: UInt64, slot: UInt64, producer: Int, instance: Int) -> Hash32 {
        var w = [UInt8]()
        w.reserveCapacity(64)
        w += parent.bytes
        for v in [number, slot, UInt64(producer), UInt64(instance)] {
            for i in 0..<8 { w.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
        }
        return Hash32.of(w)
    }
}
