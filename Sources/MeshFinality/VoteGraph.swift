import MeshChain
import MeshCrypto

/// The block tree as the finality gadget sees it. The node answers from its chain; the
/// simulator from its own tree. Both must be synchronous and deterministic.
public protocol FinalityEnvironment: AnyObject {
    /// Number and parent of a known block.
    func header(_ hash: Hash32) -> (number: UInt64, parent: Hash32)?
    /// The head of the best chain that contains `base`, or nil if `base` is unknown.
    func bestChain(containing base: VoteTarget) -> VoteTarget?
}

extension FinalityEnvironment {
    /// Whether `descendant` is `ancestor` or built on it.
    public func isDescendant(_ descendant: VoteTarget, of ancestor: VoteTarget) -> Bool {
        if descendant.number < ancestor.number { return false }
        var cursor = descendant.hash
        var number = descendant.number
        while number > ancestor.number {
            guard let h = self.header(cursor) else { return false }
            cursor = h.parent
            number -= 1
        }
        return cursor == ancestor.hash
    }

    /// The ancestor of `block` at `number` (block itself when equal).
    public func ancestor(of block: VoteTarget, at number: UInt64) -> VoteTarget? {
        guard number <= block.number else { return nil }
        var cursor = block.hash
        var n = block.number
        while n > number {
            guard let h = self.header(cursor) else { return nil }
            cursor = h.parent
            n -= 1
        }
        return VoteTarget(hash: cursor, number: number)
    }
}

/// Votes of one phase of one round: at most two per voter (a second different vote makes
/// the voter an equivocator, counted for every block from then on).
struct VoteTracker {
    private(set) var votes: [AccountID: [SignedVote]] = [:]
    private(set) var equivocators: Set<AccountID> = []
    /// Every vote kept, in the order it came: `version` is its length, so weights counted at
    /// an earlier version can take in just the votes after it.
    private(set) var log: [SignedVote] = []
    /// The number of votes kept so far: the key of cached weights over these votes.
    var version: Int { self.log.count }

    enum AddResult {
        case added
        case duplicate
        case equivocation(Equivocation)
        case ignored
    }

    mutating func add(_ v: SignedVote) -> AddResult {
        var list = self.votes[v.voter] ?? []
        if list.contains(where: { $0.target == v.target }) { return .duplicate }
        if list.count >= 2 { return .ignored }
        list.append(v)
        self.votes[v.voter] = list
        self.log.append(v)
        if list.count == 2 {
            self.equivocators.insert(v.voter)
            return .equivocation(Equivocation(first: list[0], second: list[1]))
        }
        return .added
    }

    /// Every vote, in a deterministic order.
    var all: [SignedVote] {
        self.votes.keys.sorted().flatMap { self.votes[$0]! }
    }

    func vote(of voter: AccountID) -> SignedVote? { self.votes[voter]?.first }
}

/// Stake-weighted arithmetic for one validator set, in 128 bits.
struct VoterSet {
    let authorities: [WeightedAuthority]
    let weights: [AccountID: UInt128]
    let total: UInt128
    /// W − ⌊(W − 1) / 3⌋: more than two thirds.
    let threshold: UInt128

    init(_ authorities: [WeightedAuthority]) {
        self.authorities = authorities
        var w: [AccountID: UInt128] = [:]
        var t: UInt128 = 0
        for a in authorities {
            w[a.id, default: 0] += UInt128(a.weight)
            t += UInt128(a.weight)
        }
        self.weights = w
        self.total = t
        self.threshold = t == 0 ? 1 : t - (t - 1) / 3
    }

    func weight(_ id: AccountID) -> UInt128 { self.weights[id] ?? 0 }
    func contains(_ id: AccountID) -> Bool { self.weights[id] != nil }
    var ids: [AccountID] { self.authorities.map { $0.id } }
}

/// GHOST over a vote graph: accumulated weight per block for the votes of one phase.
struct VoteWeights {
    /// Weight of votes for each block or its descendants (equivocators excluded).
    var weight: [Hash32: UInt128] = [:]
    var numbers: [Hash32: UInt64] = [:]
    var parents: [Hash32: Hash32] = [:]
    /// Weight of equivocators (counted for every block).
    var equivocatorWeight: UInt128 = 0
    /// Weight of voters who voted at all.
    var participation: UInt128 = 0

    /// Builds the weights of `tracker`'s votes over blocks descending from `base`.
    init(_ tracker: VoteTracker, set: VoterSet, base: VoteTarget, env: any FinalityEnvironment, doubleCountEquivocators: Bool = false) {
        for (voter, votes) in tracker.votes {
            let w = set.weight(voter)
            self.participation += w
            if tracker.equivocators.contains(voter) {
                self.equivocatorWeight += w
                if !doubleCountEquivocators { continue }
            }
            for v in (doubleCountEquivocators ? votes : Array(votes.prefix(1))) {
                self.count(v.target, weight: w, base: base, env: env)
            }
        }
    }

    /// Takes in the votes `tracker` kept after `version` (the weights were built at that
    /// version), or returns false when only a rebuild is right: a new vote made its voter an
    /// equivocator (whose weight then moves), or equivocators count twice.
    mutating func extend(from version: Int, _ tracker: VoteTracker, set: VoterSet, base: VoteTarget, env: any FinalityEnvironment,
                         doubleCountEquivocators: Bool) -> Bool {
        guard !doubleCountEquivocators, version <= tracker.version else { return false }
        let new = tracker.log[version...]
        // A voter's second vote is an equivocation; its first may be among the new ones too.
        guard new.allSatisfy({ !tracker.equivocators.contains($0.voter) }) else { return false }
        for v in new {
            let w = set.weight(v.voter)
            self.participation += w
            self.count(v.target, weight: w, base: base, env: env)
        }
        return true
    }

    /// Adds `w` to `target` and each of its ancestors down to `base` (nothing when it does not
    /// descend from `base` or its ancestry is not known yet).
    private mutating func count(_ target: VoteTarget, weight w: UInt128, base: VoteTarget, env: any FinalityEnvironment) {
        // Walk from the target down to the base.
        var cursor = target.hash
        var number = target.number
        var path: [(Hash32, UInt64, Hash32?)] = []
        var reached = false
        while number >= base.number {
            if number == base.number {
                reached = cursor == base.hash
                if reached { path.append((cursor, number, nil)) }
                break
            }
            guard let h = env.header(cursor) else { break }
            path.append((cursor, number, h.parent))
            cursor = h.parent
            number -= 1
        }
        guard reached else { return }
        for (hash, n, parent) in path {
            self.weight[hash, default: 0] += w
            self.numbers[hash] = n
            if let parent { self.parents[hash] = parent }
        }
    }

    func total(_ hash: Hash32) -> UInt128 { (self.weight[hash] ?? 0) + self.equivocatorWeight }

    /// The highest block whose weight reaches `threshold` (ties: lowest hash).
    func ghost(threshold: UInt128) -> VoteTarget? {
        var best: VoteTarget?
        for (hash, _) in self.weight where self.total(hash) >= threshold {
            let n = self.numbers[hash]!
            if let b = best {
                if n > b.number || (n == b.number && hash < b.hash) { best = VoteTarget(hash: hash, number: n) }
            } else {
                best = VoteTarget(hash: hash, number: n)
            }
        }
        return best
    }

    /// Children of `block` among the voted blocks.
    func children(of block: Hash32) -> [Hash32] {
        self.parents.filter { $0.value == block }.map { $0.key }.sorted()
    }
}
