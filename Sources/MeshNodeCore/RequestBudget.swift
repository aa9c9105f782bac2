import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// A peer's allowance for one kind of inbound message: a token bucket of `rate` per second
/// and `burst`, and behind it a grace bucket of twice the burst that refills at a quarter of
/// the rate.
///
/// Messages within the budget are served. Past it they are refused (nothing is done for
/// them) but not charged while the grace bucket lasts: a node that was stalled — its own
/// process paused, or a peer's backlog flushed at once after a network hiccup — reads in one
/// burst what honest peers sent over many seconds, and must not ban them for it. Only a peer
/// that stays over the budget (more than 1.25 × the rate, sustained) is charged.
struct RequestBudget: Sendable, Equatable {
    enum Verdict: Equatable, Sendable {
        /// Within the budget: serve it.
        case within
        /// Over the budget, within the grace: refuse it, no charge.
        case refused
        /// Over the budget and the grace: refuse it and charge the peer.
        case charged
    }

    var budget: TokenBucket
    var grace: TokenBucket

    init(burst: Double, now: UInt64) {
        self.budget = TokenBucket(tokens: burst, updatedAt: now)
        self.grace = TokenBucket(tokens: 2 * burst, updatedAt: now)
    }

    mutating func take(now: UInt64, rate: Double, burst: Double) -> Verdict {
        if self.budget.take(now: now, rate: rate, burst: burst) { return .within }
        return self.grace.take(now: now, rate: rate / 4, burst: 2 * burst) ? .refused : .charged
    }
}

/// A peer's standing with the node: penalties lower it, time heals it. Each maintenance tick
/// a negative score moves a tenth of the way back to 0 (at least one point), so an honest
/// peer's occasional fault (a timeout under load, a stale block after a pause) is forgotten
/// while a peer that keeps misbehaving reaches the ban threshold.
enum Reputation {
    /// The score at which a peer is dropped and banned.
    static let banThreshold = -100

    static func healed(_ score: Int) -> Int {
        guard score < 0 else { return score }
        return min(0, score + max(1, -score / 10))
    }
}
