import MeshChain
import MeshCodec
import MeshCrypto
import Synchronization

/// Tunables of the gadget.
public struct FinalityConfig: Sendable {
    /// The gossip bound T: prevote at 2T, precommit at the latest at 4T.
    public var gossipDuration: Duration = .milliseconds(333)
    /// Precommit as soon as no child of the prevote-GHOST can still reach a supermajority
    /// (specs/finality.md 5.1), instead of waiting for 4T.
    public var responsivePrecommit = true
    /// Keep a justification at least every this many finalized blocks.
    public var justificationPeriod: UInt64 = 512
    /// A deliberately broken rule, for showing that the simulator's checkers catch bugs.
    /// Never set outside tests.
    public var fault: Fault = .none
    public enum Fault: Sendable {
        case none
        /// Count an equivocator's weight twice (once as equivocator, once for each vote).
        case countEquivocatorsTwice
    }
    public init() {}
}

/// An opaque peer handle for directed replies (the runtime maps it to a connection).
public typealias PeerTag = Int

/// What the runtime must do, in order. A `.persist` must be durable (fsync) before any later
/// `.broadcast` or `.send` is performed: a vote is never sent before it is stored.
/// What the gadget made of a message from a peer (``FinalityCore/receive(_:from:now:)``).
public enum FinalityVerdict: Sendable, Equatable {
    /// Checked (signatures verified) and taken into account: may be relayed.
    case valid
    /// Cannot matter now: another set, an old round, a duplicate. Not relayed, no blame.
    case irrelevant
    /// Broken: a bad signature, a voter outside the set, a commit that does not verify.
    case invalid
    /// A commit with a supermajority of valid signatures on a block we lack: fetch it.
    case needsBlock(VoteTarget)
}

public enum FinalityAction: Equatable, Sendable {
    case persist(VoterState)
    case broadcast(FinalityMessage)
    case send(PeerTag, FinalityMessage)
    case finalize(VoteTarget, Commit)
    case equivocation(Equivocation)
    case authoritySetChanged(setId: UInt64, authorities: [WeightedAuthority])
}

/// The durable part of a voter: its own signed votes of the current round, so a restart
/// never signs a different vote in a round it already voted in.
public struct VoterState: Equatable, Sendable, BinaryCodable {
    public var setId: UInt64
    public var round: UInt64
    public var prevote: SignedVote?
    public var precommit: SignedVote?

    public init(setId: UInt64, round: UInt64, prevote: SignedVote?, precommit: SignedVote?) {
        self.setId = setId
        self.round = round
        self.prevote = prevote
        self.precommit = precommit
    }

    public func encode(to w: inout ByteWriter) {
        w.u64(self.setId); w.u64(self.round)
        w.optional(self.prevote) { w, v in v.encode(to: &w) }
        w.optional(self.precommit) { w, v in v.encode(to: &w) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.setId = try r.u64()
        self.round = try r.u64()
        self.prevote = try r.optional { (r: inout ByteReader) throws(CodecError) in try SignedVote(from: &r) }
        self.precommit = try r.optional { (r: inout ByteReader) throws(CodecError) in try SignedVote(from: &r) }
    }
}

/// Verifies vote signatures at most once each (shared by every gadget in a process: the
/// node's, or every simulated node's, on however many threads the simulator runs them).
/// Bounded: past `capacity` ids the older half is forgotten (and verified again if seen).
public final class SignatureCache: Sendable {
    private struct State {
        var verified: Set<Hash32> = []
        var order: [Hash32] = []
        var verifications = 0
        var hits = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    public init(capacity: Int = 200_000) { self.capacity = capacity }

    public var verifications: Int { self.state.withLock { $0.verifications } }
    public var hits: Int { self.state.withLock { $0.hits } }

    public func isValid(_ v: SignedVote) -> Bool {
        let id = v.id
        let known = self.state.withLock { s in
            if s.verified.contains(id) {
                s.hits += 1
                return true
            }
            s.verifications += 1
            return false
        }
        if known { return true }
        // Verified outside the lock: two threads may both verify a new vote (both agree).
        guard v.isSignatureValid else { return false }
        self.state.withLock { s in
            guard s.verified.insert(id).inserted else { return }
            s.order.append(id)
            if s.order.count > self.capacity {
                let drop = s.order.prefix(self.capacity / 2)
                for d in drop { s.verified.remove(d) }
                s.order.removeFirst(self.capacity / 2)
            }
        }
        return true
    }
}

/// A GRANDPA-style finality gadget (specs/finality.md section 5), sans-IO.
///
/// Rounds of prevote and precommit over chain heads; stake-weighted supermajority
/// (W − ⌊(W − 1)/3⌋, 128-bit); GHOST over the vote graph; finalizing a block finalizes its
/// ancestors; an equivocator's weight counts for every block, once. Inputs are messages,
/// block imports and the time; outputs are ``FinalityAction``s. Not thread-safe.
public final class FinalityCore {
    struct Round {
        let number: UInt64
        let startedAt: UInt64
        var prevotes = VoteTracker()
        var precommits = VoteTracker()
        var proposal: VoteTarget?
        var prevoted: SignedVote?
        var precommitted: SignedVote?
        var completable = false
        var estimate: VoteTarget?
        var prevoteGhost: VoteTarget?
        var precommitGhost: VoteTarget?
        var voteRequested = false
        /// Whether votes or blocks arrived since the last evaluation.
        var dirty = true
        /// Whether a child of the prevote-GHOST could still reach a prevote supermajority.
        var prevoteChildPossible = true
        /// The weights of each phase's votes as last counted: a vote of one phase leaves the
        /// other's weights as they were (see `weights(_:cached:base:)`).
        var prevoteWeights: CachedWeights?
        var precommitWeights: CachedWeights?
    }

    /// Weights counted over a tracker's votes, valid while the votes (`version`), the base,
    /// the set and the known blocks (`imports`) are what they were.
    struct CachedWeights {
        var weights: VoteWeights
        var version: Int
        let base: VoteTarget
        let setId: UInt64
        let imports: UInt64
    }

    public let config: FinalityConfig
    let key: Ed25519.PrivateKey?
    let env: any FinalityEnvironment
    let signatures: SignatureCache
    public private(set) var setId: UInt64
    public private(set) var authorities: [WeightedAuthority]
    var voters: VoterSet
    /// The last finalized block.
    public private(set) var finalized: VoteTarget
    /// The base of the current set (its first rounds build on it).
    var setBase: VoteTarget
    var current: Round
    var previous: Round?
    var lastEstimate: VoteTarget
    /// Standard changes seen in headers: (signal block, enact number, new set).
    var pendingStandard: [(signal: VoteTarget, enactAt: UInt64, authorities: [WeightedAuthority])] = []
    var pendingForced: [(signal: VoteTarget, enactAt: UInt64, authorities: [WeightedAuthority])] = []
    /// After losing local state, vote only in rounds after this one.
    var blockedUntilRound: UInt64?
    var catchUpRequested: [PeerTag: (round: UInt64, at: UInt64)] = [:]
    /// Commits already applied or sent (de-duplication).
    var seenCommits: Set<Hash32> = []
    /// Our commit of a round we finalized from its votes, held until our turn to send it
    /// (`commitDelay`); a valid commit for the same or a later block from a peer cancels it.
    var pendingCommit: (commit: Commit, at: UInt64)?
    /// Blocks imported so far: a vote for a block that was unknown counts once it arrives, so
    /// every import invalidates cached vote weights.
    var imports: UInt64 = 0
    public private(set) var equivocationsSeen: Set<Equivocation> = []
    /// Voters of this set we hold evidence against: one piece per voter is enough (a
    /// Byzantine voter can sign conflicting votes for every round; storing, relaying and
    /// reporting each would be an unbounded cost on every node).
    var equivocators: Set<AccountID> = []
    /// The highest round each voter of this set was seen voting in (checked votes): a voter
    /// that restarted without its vote state waits for the round more than a third of the
    /// weight has reached — a single liar cannot set it.
    var highestRound: [AccountID: UInt64] = [:]
    /// Vote requests answered, per peer and round, and when. A 17-byte request buys a whole
    /// round's votes, so the same round goes to the same peer again only after
    /// `2 × gossipDuration` — half the interval an honest node waits before asking again, so
    /// a lost answer is still re-sent. A peer can name only our current and previous rounds:
    /// two entries per peer (bounded by the peers we have).
    var voteRequestsAnswered: [PeerRound: UInt64] = [:]
    struct PeerRound: Hashable { var peer: PeerTag; var round: UInt64 }
    /// Catch-ups sent, per peer: the round they carried and when. A 17-byte request buys a
    /// whole round of votes, so one peer gets the same round again only after
    /// `4 × gossipDuration` — half the interval an honest requester waits before asking again
    /// (a lost answer is still re-sent) — and whatever round it names (the answer is always
    /// our previous round). Bounded by the peers we have.
    var catchUpsSent: [PeerTag: (round: UInt64, at: UInt64)] = [:]
    /// Counters for metrics.
    public private(set) var votesReceived = 0
    public private(set) var invalidMessages = 0
    /// The last commit we produced or accepted.
    public private(set) var lastCommit: Commit?

    /// Creates a gadget. `persisted` is the voter's stored state (nil on first start); when it
    /// is missing on a chain that already finalized blocks, the voter waits for a full round.
    public init(config: FinalityConfig = FinalityConfig(), key: Ed25519.PrivateKey?, authorities: [WeightedAuthority], setId: UInt64,
                finalized: VoteTarget, persisted: VoterState?, now instant: Instant, env: any FinalityEnvironment, signatures: SignatureCache) {
        let now = instant.nanoseconds
        self.config = config
        self.key = key
        self.env = env
        self.signatures = signatures
        self.setId = setId
        self.authorities = authorities
        self.voters = VoterSet(authorities)
        self.finalized = finalized
        self.setBase = finalized
        self.lastEstimate = finalized
        var round = Round(number: 1, startedAt: now)
        if let p = persisted, p.setId == setId, p.round >= 1 {
            round = Round(number: p.round, startedAt: now)
            round.prevoted = p.prevote
            round.precommitted = p.precommit
            if let v = p.prevote { _ = round.prevotes.add(v) }
            if let v = p.precommit { _ = round.precommits.add(v) }
        } else if persisted == nil && finalized.number > 0 && key != nil {
            self.blockedUntilRound = UInt64.max
        }
        self.current = round
    }

    /// Whether this node votes (its key is in the current set).
    public var isVoter: Bool { self.key.map { self.voters.contains($0.publicKey) } ?? false }
    /// The current round number.
    public var round: UInt64 { self.current.number }
    /// T in nanoseconds (the unit the rounds' timers are kept in).
    var gossipNanos: UInt64 { self.config.gossipDuration.nanoseconds }

    /// A one-line summary of the voter's state, for diagnostics.
    public var debugDescription: String {
        func r(_ x: Round?) -> String {
            guard let x else { return "-" }
            func targets(_ t: VoteTracker) -> String { t.all.map { "#\($0.target.number)" }.joined(separator: ",") }
            return "r\(x.number) pv=\(x.prevotes.votes.count)[\(targets(x.prevotes))] pc=\(x.precommits.votes.count)[\(targets(x.precommits))] me=\(x.prevoted != nil ? "P" : "_")\(x.precommitted != nil ? "C" : "_") gV=\(x.prevoteGhost.map { "\($0.number)" } ?? "nil") est=\(x.estimate.map { "\($0.number)" } ?? "nil") comp=\(x.completable)"
        }
        return "set \(self.setId) fin=\(self.finalized.number) lastEst=\(self.lastEstimate.number) blocked=\(String(describing: self.blockedUntilRound)) cur[\(r(self.current))] prev[\(r(self.previous))]"
    }
    /// The round's timers relative to `now` (ms), for diagnostics.
    public func timersDescription(now: Instant) -> String {
        func ms(_ t: UInt64) -> String { "\((Int64(truncatingIfNeeded: t) - Int64(truncatingIfNeeded: now.nanoseconds)) / 1_000_000)ms" }
        return "started=\(ms(self.current.startedAt)) lastRequest=\(ms(self.lastVoteRequestAt)) next=\(ms(self.nextDeadline(afterNanos: now.nanoseconds)))"
    }

    /// Votes seen in the current round.
    public var currentRoundVotes: (prevotes: Int, precommits: Int) { (self.current.prevotes.votes.count, self.current.precommits.votes.count) }

    /// The next time ``tick(now:)`` has work: `now` itself when something is already due.
    ///
    /// The timers are absolute: a caller that asks again after every message gets the same
    /// answer, never one pushed later by the asking (a node hearing others' requests more often
    /// than every 4T must still send its own). A timer that is past is returned only when the
    /// tick consumes it (the prevote, a vote request, a catch-up retry); the 4T precommit
    /// timer, once past, waits for votes (whose arrival re-evaluates the round), not the clock.
    public func nextDeadline(after instant: Instant) -> Instant {
        Instant(nanoseconds: self.nextDeadline(afterNanos: instant.nanoseconds))
    }

    func nextDeadline(afterNanos now: UInt64) -> UInt64 {
        // The earliest of the candidates (a running minimum: this runs after every finality
        // message, and an array of them was an allocation each time).
        let t = self.gossipNanos
        var earliest: UInt64?
        func candidate(_ at: UInt64) { earliest = min(earliest ?? at, at) }
        if self.canVote(in: self.current.number) {
            if self.current.prevoted == nil { candidate(max(now, self.current.startedAt.addingSaturated(2 * t))) }
            let precommitAt = self.current.startedAt.addingSaturated(4 * t)
            if self.current.precommitted == nil && precommitAt > now { candidate(precommitAt) }
        }
        if !self.current.completable {
            candidate(max(now, max(self.current.startedAt, self.lastVoteRequestAt).addingSaturated(4 * t)))
        }
        for asked in self.catchUpRequested.values where asked.round == self.current.number {
            candidate(max(now, asked.at.addingSaturated(8 * t)))
        }
        if let p = self.pendingCommit { candidate(max(now, p.at)) }
        return earliest ?? now.addingSaturated(4 * t)
    }

    var lastVoteRequestAt: UInt64 = 0

    // MARK: Inputs

    /// Starts voting (re-sends persisted votes of the current round).
    public func start(now: Instant) -> [FinalityAction] { self.start(at: now.nanoseconds) }

    func start(at now: UInt64) -> [FinalityAction] {
        var out: [FinalityAction] = []
        if let v = self.current.prevoted { out.append(.broadcast(.vote(v))) }
        if let v = self.current.precommitted { out.append(.broadcast(.vote(v))) }
        out += self.maybeProposeAsPrimary(now: now)
        return out + self.progress(now: now)
    }

    public func tick(now: Instant) -> [FinalityAction] { self.tick(at: now.nanoseconds) }

    func tick(at now: UInt64) -> [FinalityAction] {
        var out = self.progress(now: now)
        if let p = self.pendingCommit, now >= p.at {
            self.pendingCommit = nil
            out.append(.broadcast(.commit(p.commit)))
        }
        // Stuck for 4T: ask peers for votes we may have missed (again every 4T).
        let t4 = 4 * self.gossipNanos
        if now >= max(self.current.startedAt, self.lastVoteRequestAt) + t4 && !self.current.completable {
            self.current.voteRequested = true
            self.lastVoteRequestAt = now
            out.append(.broadcast(.voteRequest(round: self.current.number, setId: self.setId)))
            if let p = self.previous, !p.completable {
                out.append(.broadcast(.voteRequest(round: p.number, setId: self.setId)))
            }
        }
        // Asked a peer to catch us up and still in the same round 8T later (the answer was
        // lost, or the blocks it named were missing): ask it again, one peer per tick — the
        // votes that showed us behind may not come again.
        let t8 = 8 * self.gossipNanos
        if let (peer, asked) = self.catchUpRequested.filter({ $0.value.round == self.current.number && now >= $0.value.at.addingSaturated(t8) })
            .min(by: { $0.key < $1.key }) {
            self.catchUpRequested[peer] = (asked.round, now)
            out.append(.send(peer, .catchUpRequest(round: self.current.number, setId: self.setId)))
        }
        return out
    }

    /// A block was imported: consensus digests may schedule validator-set changes, and
    /// votes for it can now be counted.
    public func blockImported(hash: Hash32, number: UInt64, digest: [DigestItem], now: Instant) -> [FinalityAction] {
        self.blockImported(hash: hash, number: number, digest: digest, at: now.nanoseconds)
    }

    func blockImported(hash: Hash32, number: UInt64, digest: [DigestItem], at now: UInt64) -> [FinalityAction] {
        let signal = VoteTarget(hash: hash, number: number)
        for item in digest {
            switch item {
            case .scheduledChange(let a, let delay):
                if !self.pendingStandard.contains(where: { $0.signal == signal }) {
                    self.pendingStandard.append((signal, number + delay, a))
                }
            case .forcedChange(let a, let delay):
                if !self.pendingForced.contains(where: { $0.signal == signal }) {
                    self.pendingForced.append((signal, number + delay, a))
                }
            }
        }
        self.imports &+= 1
        self.current.dirty = true
        self.previous?.dirty = true
        var out = self.applyForcedChanges(now: now)
        out += self.progress(now: now)
        return out
    }

    /// A message from a peer (`peer` identifies it for replies).
    public func handle(_ message: FinalityMessage, from peer: PeerTag, now: Instant) -> [FinalityAction] {
        self.receive(message, from: peer, now: now).actions
    }

    /// A message from a peer, with the gadget's verdict on it: whether it was checked and
    /// counted (`valid`: relay it), could not matter (`irrelevant`: another set, an old
    /// round, a duplicate), is `invalid` (the sender is at fault), or is a commit whose
    /// precommits carry a supermajority of valid signatures for a block we lack
    /// (`needsBlock`: fetch it, the commit is sent again by sync). Only `valid` messages may
    /// travel on; nothing the gadget did not check is relayed.
    public func receive(_ message: FinalityMessage, from peer: PeerTag, now: Instant) -> (verdict: FinalityVerdict, actions: [FinalityAction]) {
        self.receive(message, from: peer, at: now.nanoseconds)
    }

    func receive(_ message: FinalityMessage, from peer: PeerTag, at now: UInt64) -> (verdict: FinalityVerdict, actions: [FinalityAction]) {
        switch message {
        case .vote(let v):
            return self.handleVote(v, from: peer, now: now)
        case .commit(let c):
            return self.handleCommit(c, now: now)
        case .catchUpRequest(let round, let setId):
            guard setId == self.setId, let p = self.previous, p.completable, p.number > round, self.current.number >= round &+ 2 else { return (.irrelevant, []) }
            if let last = self.catchUpsSent[peer], last.round == p.number, now < last.at.addingSaturated(4 * self.gossipNanos) {
                return (.irrelevant, [])
            }
            if self.catchUpsSent.count >= 1024 && self.catchUpsSent[peer] == nil { self.catchUpsSent.removeAll() }
            self.catchUpsSent[peer] = (p.number, now)
            return (.valid, [.send(peer, .catchUp(CatchUp(round: p.number, setId: self.setId, prevotes: p.prevotes.all, precommits: p.precommits.all)))])
        case .catchUp(let c):
            return self.handleCatchUp(c, now: now)
        case .voteRequest(let round, let setId):
            guard setId == self.setId else { return (.irrelevant, []) }
            // A peer asking for votes two rounds or more ahead of ours shows we are behind.
            // Votes alone would not tell us: a node that connects after the others' votes of
            // a stuck round went out (a quarter of the stake paused) hears only these
            // requests. Unsigned, so all it can buy is one 17-byte request to that peer per
            // round and 8T, whose answer is verified.
            if round >= self.current.number &+ 2 { return (.irrelevant, self.requestCatchUp(from: peer, now: now)) }
            let r: Round? = round == self.current.number ? self.current : (round == self.previous?.number ? self.previous : nil)
            guard let r else { return (.irrelevant, []) }
            // A 17-byte request must not buy the whole round's votes again and again: the same
            // round again only once an honest retry could be due (see `voteRequestsAnswered`).
            let key = PeerRound(peer: peer, round: round)
            if let at = self.voteRequestsAnswered[key], now < at.addingSaturated(2 * self.gossipNanos) { return (.irrelevant, []) }
            if self.voteRequestsAnswered.count >= 2048 && self.voteRequestsAnswered[key] == nil {
                self.voteRequestsAnswered = self.voteRequestsAnswered.filter { $0.key.round >= self.previous?.number ?? self.current.number }
                if self.voteRequestsAnswered.count >= 2048 { self.voteRequestsAnswered.removeAll() }
            }
            self.voteRequestsAnswered[key] = now
            return (.valid, (r.prevotes.all + r.precommits.all).map { .send(peer, .vote($0)) })
        case .equivocation(let e):
            guard e.first.setId == self.setId, self.voters.contains(e.first.voter) else { return (.irrelevant, []) }
            guard e.isValid else {
                self.invalidMessages += 1
                return (.invalid, [])
            }
            guard !self.equivocators.contains(e.first.voter) else { return (.irrelevant, []) }
            self.noteEquivocation(e)
            return (.valid, [.equivocation(e)])
        }
    }

    // MARK: Votes

    func handleVote(_ v: SignedVote, from peer: PeerTag, now: UInt64) -> (verdict: FinalityVerdict, actions: [FinalityAction]) {
        guard v.setId == self.setId else { return (.irrelevant, []) }
        guard self.voters.contains(v.voter) else {
            self.invalidMessages += 1
            return (.invalid, [])
        }
        // A target we hold must carry its real number (a wrong one would make every
        // evaluation walk the chain from it).
        if let h = self.env.header(v.target.hash), h.number != v.target.number {
            self.invalidMessages += 1
            return (.invalid, [])
        }
        let ahead = v.round >= self.current.number &+ 2
        let isCurrent = v.round == self.current.number
        let isNext = v.round == self.current.number &+ 1
        let isPrevious = v.round == self.previous?.number
        guard ahead || isCurrent || isPrevious || isNext else { return (.irrelevant, []) }
        // Checked before it changes anything (a forged vote "two rounds ahead" must not make
        // us ask for catch-up or block our rounds).
        guard self.signatures.isValid(v) else {
            self.invalidMessages += 1
            return (.invalid, [])
        }
        var out: [FinalityAction] = []
        if ahead {
            // We are behind: ask this peer to catch us up.
            out += self.requestCatchUp(from: peer, now: now)
            self.noteRound(v)
            // Checked, but far from anything we do: not relayed (`irrelevant`), its target
            // not fetched; catch-up brings us there.
            return (.irrelevant, out)
        }
        self.votesReceived += 1
        self.noteRound(v)
        if isNext {
            // A peer started the next round; remember nothing yet but note progress.
            return (.valid, out)
        }
        var result: VoteTracker.AddResult = .ignored
        if isCurrent {
            switch v.phase {
            case .prevote: result = self.current.prevotes.add(v)
            case .precommit: result = self.current.precommits.add(v)
            case .primaryPropose:
                if self.primary(of: v.round) == v.voter && self.current.proposal == nil { self.current.proposal = v.target }
                return (.valid, out + self.progress(now: now))
            }
        } else if self.previous != nil {
            // In place: a copy of the round would copy its vote tables on the first write.
            switch v.phase {
            case .prevote: result = self.previous!.prevotes.add(v)
            case .precommit: result = self.previous!.precommits.add(v)
            case .primaryPropose: break
            }
            if case .added = result { self.previous!.dirty = true } else if case .equivocation = result { self.previous!.dirty = true }
        }
        switch result {
        case .duplicate, .ignored:
            // Nothing new: no re-evaluation, nothing to relay.
            return (.irrelevant, out)
        case .added:
            if isCurrent { self.current.dirty = true }
        case .equivocation(let e):
            if isCurrent { self.current.dirty = true }
            if !self.equivocators.contains(e.first.voter) {
                self.noteEquivocation(e)
                out.append(.equivocation(e))
                out.append(.broadcast(.equivocation(e)))
            }
        }
        return (.valid, out + self.progress(now: now))
    }

    /// Asks `peer` to catch us up to its previous round: once per round of ours per peer and
    /// 8T (the table is bounded by the peers we have; `tick` retries a lost answer).
    func requestCatchUp(from peer: PeerTag, now: UInt64) -> [FinalityAction] {
        let last = self.catchUpRequested[peer]
        guard last == nil || last!.round != self.current.number || now >= last!.at.addingSaturated(8 * self.gossipNanos) else { return [] }
        if self.catchUpRequested.count >= 1024 && last == nil { self.catchUpRequested.removeAll() }
        self.catchUpRequested[peer] = (self.current.number, now)
        return [.send(peer, .catchUpRequest(round: self.current.number, setId: self.setId))]
    }

    func noteEquivocation(_ e: Equivocation) {
        self.equivocators.insert(e.first.voter)
        self.equivocationsSeen.insert(e)
    }

    /// Records how far a voter got; a voter without vote state (restarted, state lost) blocks
    /// its own votes until the round that more than a third of the weight has reached.
    func noteRound(_ v: SignedVote) {
        guard self.voters.contains(v.voter) else { return }
        self.highestRound[v.voter] = max(self.highestRound[v.voter] ?? 0, v.round)
        guard self.blockedUntilRound == UInt64.max else { return }
        var weight: UInt128 = 0
        for (voter, round) in self.highestRound.sorted(by: { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            weight += self.voters.weight(voter)
            if weight * 3 > self.voters.total {
                self.blockedUntilRound = round
                return
            }
        }
    }

    func primary(of round: UInt64) -> AccountID? {
        guard !self.authorities.isEmpty else { return nil }
        return self.authorities[Int(round % UInt64(self.authorities.count))].id
    }

    func canVote(in round: UInt64) -> Bool {
        guard self.isVoter else { return false }
        if let b = self.blockedUntilRound { return b != UInt64.max && round > b }
        return true
    }

    func maybeProposeAsPrimary(now: UInt64) -> [FinalityAction] {
        guard let key = self.key, self.canVote(in: self.current.number), self.primary(of: self.current.number) == key.publicKey,
              self.current.proposal == nil, self.current.number > 1, self.lastEstimate.number > self.finalized.number
        else { return [] }
        let v = SignedVote(phase: .primaryPropose, target: self.lastEstimate, round: self.current.number, setId: self.setId, key: key)
        self.current.proposal = self.lastEstimate
        return [.broadcast(.vote(v))]
    }

    /// The highest block a vote may target: not past a pending standard change's enactment.
    func limit(_ target: VoteTarget) -> VoteTarget {
        var t = target
        for change in self.pendingStandard where self.env.isDescendant(t, of: change.signal) && t.number > change.enactAt {
            if let a = self.env.ancestor(of: t, at: change.enactAt) { t = a }
        }
        return t
    }

    // MARK: Progress

    /// Re-evaluates the rounds: vote when due, finalize, complete and advance.
    func progress(now: UInt64) -> [FinalityAction] {
        var out: [FinalityAction] = []
        var guardCount = 0
        while guardCount < 64 {
            guardCount += 1
            let before = self.current.number
            out += self.evaluatePrevious(now: now)
            out += self.evaluateCurrent(now: now)
            if self.current.number == before { break }
        }
        return out
    }

    func evaluatePrevious(now: UInt64) -> [FinalityAction] {
        guard var p = self.previous, p.dirty else { return [] }
        // Moved out, not copied (see `evaluateCurrentRound`).
        self.previous = Round(number: p.number, startedAt: p.startedAt)
        let set = self.setId
        let out = self.evaluate(&p, now: now)
        if self.setId == set { self.previous = p }
        return out
    }

    /// Evaluates the current round. The round is moved out while `evaluate` works on it, so
    /// its vote tables and cached weights are uniquely referenced and change in place (a copy
    /// would copy each table on its first write: one or two dictionary copies per vote). What
    /// `evaluate` may read of `self.current` meanwhile is its number and start, which the
    /// stand-in keeps; a change of set replaces the round, and the evaluated one is dropped.
    func evaluateCurrentRound(now: UInt64) -> [FinalityAction] {
        guard self.current.dirty else { return [] }
        var r = self.current
        self.current = Round(number: r.number, startedAt: r.startedAt)
        let set = self.setId
        let out = self.evaluate(&r, now: now)
        if self.setId == set { self.current = r }
        return out
    }

    /// Updates a round's GHOSTs, estimate and completability; finalizes what it can.
    func evaluate(_ r: inout Round, now: UInt64) -> [FinalityAction] {
        guard r.dirty else { return [] }
        r.dirty = false
        var out: [FinalityAction] = []
        // Votes are counted over blocks at or above the last finalized block: nothing below
        // it can be finalized again, so shorter walks suffice.
        let base = self.finalized
        let pw = self.weights(r.prevotes, cached: &r.prevoteWeights, base: base)
        r.prevoteGhost = pw.ghost(threshold: self.voters.threshold)
        if let gv = r.prevoteGhost {
            let remainingPrevotes = self.voters.total > pw.participation ? self.voters.total - pw.participation : 0
            r.prevoteChildPossible = pw.children(of: gv.hash).contains {
                (pw.weight[$0] ?? 0) + pw.equivocatorWeight + remainingPrevotes >= self.voters.threshold
            }
        }
        let cw = self.weights(r.precommits, cached: &r.precommitWeights, base: base)
        r.precommitGhost = cw.ghost(threshold: self.voters.threshold)
        // Finalize the precommit GHOST.
        if let g = r.precommitGhost, g.number > self.finalized.number, self.env.isDescendant(g, of: self.finalized) {
            let support = r.precommits.all.filter { v in r.precommits.equivocators.contains(v.voter) || self.env.isDescendant(v.target, of: g) }
            let commit = Commit(target: g, round: r.number, setId: self.setId, precommits: support, ancestry: [])
            out += self.applyFinality(commit, broadcast: true, now: now)
        }
        // Estimate: the highest block on g(V)'s chain that precommits could still reach.
        guard let gv = r.prevoteGhost else {
            r.estimate = nil
            r.completable = false
            return out
        }
        let remaining = self.voters.total > cw.participation ? self.voters.total - cw.participation : 0
        var estimate: VoteTarget?
        var cursor: VoteTarget? = gv
        while let c = cursor {
            if (cw.weight[c.hash] ?? 0) + cw.equivocatorWeight + remaining >= self.voters.threshold || c == base {
                estimate = c
                break
            }
            guard c.number > base.number, let h = self.env.header(c.hash) else { break }
            cursor = VoteTarget(hash: h.parent, number: c.number - 1)
        }
        r.estimate = estimate ?? base
        // Completable: a precommit supermajority exists, and either the estimate is below g(V)
        // or no child of g(V) can still gather a precommit supermajority.
        if cw.participation >= self.voters.threshold {
            if let e = r.estimate, e != gv {
                r.completable = true
            } else {
                let children = cw.children(of: gv.hash)
                let childPossible = children.contains { (cw.weight[$0] ?? 0) + cw.equivocatorWeight + remaining >= self.voters.threshold }
                r.completable = !childPossible
            }
        } else {
            r.completable = false
        }
        return out
    }

    /// The weights of `tracker`'s votes above `base`: counted again only when the base, the
    /// set or the known blocks changed since `cached` was counted; new votes alone are added.
    func weights(_ tracker: VoteTracker, cached: inout CachedWeights?, base: VoteTarget) -> VoteWeights {
        let doubleCount = self.config.fault == .countEquivocatorsTwice
        if var c = cached, c.base == base, c.setId == self.setId, c.imports == self.imports {
            if c.version == tracker.version { return c.weights }
            cached = nil  // (the weights below are then the only copy: extended in place)
            if c.weights.extend(from: c.version, tracker, set: self.voters, base: base, env: self.env, doubleCountEquivocators: doubleCount) {
                c.version = tracker.version
                cached = c
                return c.weights
            }
        }
        let w = VoteWeights(tracker, set: self.voters, base: base, env: self.env, doubleCountEquivocators: doubleCount)
        cached = CachedWeights(weights: w, version: tracker.version, base: base, setId: self.setId, imports: self.imports)
        return w
    }

    func evaluateCurrent(now: UInt64) -> [FinalityAction] {
        var out: [FinalityAction] = []
        let set = self.setId
        out += self.evaluateCurrentRound(now: now)
        if self.setId != set { return out }
        let r = (number: self.current.number, startedAt: self.current.startedAt)
        let t = self.gossipNanos
        let roundNumber = r.number
        // Prevote at 2T.
        if self.canVote(in: roundNumber), self.current.prevoted == nil, now >= r.startedAt + 2 * t, let key = self.key {
            var target = self.lastEstimate
            if let p = self.current.proposal, self.env.isDescendant(p, of: self.lastEstimate),
               let pg = self.previous?.prevoteGhost, self.env.isDescendant(pg, of: p) {
                target = p
            }
            let head = self.limit(self.env.bestChain(containing: target) ?? target)
            let v = SignedVote(phase: .prevote, target: head, round: roundNumber, setId: self.setId, key: key)
            self.current.prevoted = v
            _ = self.current.prevotes.add(v)
            self.current.dirty = true
            out.append(.persist(VoterState(setId: self.setId, round: roundNumber, prevote: v, precommit: self.current.precommitted)))
            out.append(.broadcast(.vote(v)))
            out += self.evaluateCurrentRound(now: now)
            if self.setId != set { return out }
        }
        // Precommit once g(V) ≥ the last estimate and (4T passed, the round is completable,
        // or — responsive rule — no child of g(V) can still reach a prevote supermajority).
        if self.canVote(in: roundNumber), self.current.prevoted != nil, self.current.precommitted == nil, let key = self.key,
           let gv = self.current.prevoteGhost, self.env.isDescendant(gv, of: self.lastEstimate) {
            var due = now >= r.startedAt + 4 * t || self.current.completable
            if !due && self.config.responsivePrecommit {
                due = !self.current.prevoteChildPossible
            }
            if due {
                let target = self.limit(gv)
                let v = SignedVote(phase: .precommit, target: target, round: roundNumber, setId: self.setId, key: key)
                self.current.precommitted = v
                _ = self.current.precommits.add(v)
                self.current.dirty = true
                out.append(.persist(VoterState(setId: self.setId, round: roundNumber, prevote: self.current.prevoted, precommit: v)))
                out.append(.broadcast(.vote(v)))
                out += self.evaluateCurrentRound(now: now)
                if self.setId != set { return out }
            }
        }
        // Move on once the round is completable (and we voted, or cannot vote in it).
        let votedOrCannot = !self.canVote(in: roundNumber) || self.current.precommitted != nil
        if self.current.completable && votedOrCannot {
            out += self.startRound(self.current.number + 1, now: now)
        }
        return out
    }

    func startRound(_ number: UInt64, now: UInt64) -> [FinalityAction] {
        if let e = self.current.estimate, self.env.isDescendant(e, of: self.finalized) || e == self.finalized {
            self.lastEstimate = e
        }
        self.previous = self.current
        self.current = Round(number: number, startedAt: now)
        var out: [FinalityAction] = []
        if self.isVoter && self.canVote(in: number) {
            out.append(.persist(VoterState(setId: self.setId, round: number, prevote: nil, precommit: nil)))
        }
        out += self.maybeProposeAsPrimary(now: now)
        return out
    }

    // MARK: Finality, commits, catch-up

    /// How long a voter waits before sending the commit of a round it finalized from the
    /// round's votes: its place after the round's primary, times half a gossip duration (the
    /// primary at once). Every node that has the votes finalizes by itself; a commit is for
    /// those that missed them (and for justifications), and one is enough: a valid commit for
    /// the same or a later block heard in the meantime cancels ours, so in a healthy network
    /// one or two voters send one per round instead of every node its own — each a different
    /// set of signatures, a different message of 150 bytes per precommit flooding the network.
    /// Nodes that are not voters never author commits (they relay those they verify). Nil:
    /// not a voter.
    func commitDelay(round: UInt64) -> UInt64? {
        guard let key = self.key, let me = self.authorities.firstIndex(where: { $0.id == key.publicKey }) else { return nil }
        let n = self.authorities.count
        let primary = Int(round % UInt64(n))
        return UInt64((me - primary + n) % n) * (self.gossipNanos / 2)
    }

    func applyFinality(_ commit: Commit, broadcast: Bool, now: UInt64) -> [FinalityAction] {
        let target = commit.target
        guard target.number > self.finalized.number, self.env.isDescendant(target, of: self.finalized) else { return [] }
        self.finalized = target
        if self.lastEstimate.number < target.number { self.lastEstimate = target }
        self.current.dirty = true
        self.previous?.dirty = true
        self.lastCommit = commit
        var out: [FinalityAction] = [.finalize(target, commit)]
        let id = Hash32.of(commit.encoded)
        // Commits at or below the finalized block are refused by number; the ids need not be kept.
        if self.seenCommits.count > 1024 { self.seenCommits.removeAll() }
        if broadcast && !self.seenCommits.contains(id) {
            self.seenCommits.insert(id)
            if let delay = self.commitDelay(round: commit.round) {
                if delay == 0 {
                    self.pendingCommit = nil
                    out.append(.broadcast(.commit(commit)))
                } else {
                    self.pendingCommit = (commit, now.addingSaturated(delay))
                }
            }
        } else if let p = self.pendingCommit, target.number >= p.commit.target.number {
            self.pendingCommit = nil  // a peer's commit finalized this far: ours is not needed
        }
        out += self.applyStandardChanges(now: self.current.startedAt)
        return out
    }

    /// Checks a commit (justification) against the current set.
    public func verify(_ c: Commit) -> Bool {
        guard c.setId == self.setId else { return false }
        var seen: [AccountID: Set<VoteTarget>] = [:]
        var weight: UInt128 = 0
        var counted: Set<AccountID> = []
        var index: [Hash32: BlockHeader]?
        for v in c.precommits {
            guard v.phase == .precommit, v.round == c.round, v.setId == c.setId, self.voters.contains(v.voter) else { return false }
            var targets = seen[v.voter] ?? []
            guard targets.insert(v.target).inserted, targets.count <= 2 else { return false }
            seen[v.voter] = targets
            guard self.signatures.isValid(v) else { return false }
            var supports = targets.count == 2 || self.env.isDescendant(v.target, of: c.target)
            if !supports {
                // The commit's own ancestry, indexed once per commit (not per precommit).
                if index == nil { index = Self.ancestryIndex(c.ancestry) }
                supports = Self.ancestryLinks(v.target, to: c.target, index: index!)
            }
            if supports && counted.insert(v.voter).inserted { weight += self.voters.weight(v.voter) }
        }
        return weight >= self.voters.threshold
    }

    /// Whether `ancestry` holds a parent-linked chain of headers from `from` down to `to`
    /// (each header's parent is the next one, numbers falling by one): only then does a
    /// precommit for `from` support a commit for `to`. Headers that merely appear in the
    /// list prove nothing.
    /// A commit's ancestry headers by hash (the first 4,096).
    static func ancestryIndex(_ ancestry: [BlockHeader]) -> [Hash32: BlockHeader] {
        var byHash: [Hash32: BlockHeader] = [:]
        for h in ancestry.prefix(4096) { byHash[h.hash] = h }
        return byHash
    }

    static func ancestryLinks(_ from: VoteTarget, to: VoteTarget, index byHash: [Hash32: BlockHeader]) -> Bool {
        guard from.number > to.number else { return false }
        var cursor = from.hash
        var number = from.number
        while let h = byHash[cursor], h.number == number {
            if h.parentHash == to.hash { return number == to.number &+ 1 }
            cursor = h.parentHash
            number = number &- 1
            if number <= to.number { return false }
        }
        return false
    }

    func handleCommit(_ c: Commit, now: UInt64) -> (verdict: FinalityVerdict, actions: [FinalityAction]) {
        let id = Hash32.of(c.encoded)
        guard !self.seenCommits.contains(id) else { return (.irrelevant, []) }
        guard c.setId == self.setId else { return (.irrelevant, []) }
        guard c.target.number > self.finalized.number else {
            // Nothing to finalize; a valid one may still make the commit we hold unnecessary.
            if let p = self.pendingCommit, c.target.number >= p.commit.target.number,
               self.env.header(c.target.hash)?.number == c.target.number, self.verify(c) {
                self.seenCommits.insert(id)
                self.pendingCommit = nil
            }
            return (.irrelevant, [])
        }
        if let h = self.env.header(c.target.hash), h.number != c.target.number {
            self.invalidMessages += 1
            return (.invalid, [])
        }
        guard self.env.header(c.target.hash) != nil else {
            // An old round's commit for a block we never saw is not worth a fetch.
            guard c.round &+ 2 >= self.current.number else { return (.irrelevant, []) }
            // We cannot check that the precommits support the target without its block; their
            // signatures and weight we can. Only a commit that carries a supermajority of valid
            // signatures is worth fetching a block for (it comes again by sync).
            guard self.precommitsCarryThreshold(c) else {
                self.invalidMessages += 1
                return (.invalid, [])
            }
            return (.needsBlock(c.target), [])
        }
        guard self.verify(c) else {
            self.invalidMessages += 1
            return (.invalid, [])
        }
        self.seenCommits.insert(id)
        var out = self.applyFinality(c, broadcast: false, now: now)
        if c.round >= self.current.number {
            // Fast-forward past the committed round.
            self.lastEstimate = c.target
            if self.blockedUntilRound == UInt64.max { self.blockedUntilRound = c.round }
            out += self.startRound(c.round &+ 1, now: now)
        }
        return (.valid, out + self.progress(now: now))
    }

    /// Whether a commit's precommits are by distinct voters of this set, for its round, with
    /// valid signatures, and weigh a supermajority (the part of ``verify(_:)`` that needs no
    /// block).
    func precommitsCarryThreshold(_ c: Commit) -> Bool {
        var weight: UInt128 = 0
        var counted: Set<AccountID> = []
        for v in c.precommits {
            guard v.phase == .precommit, v.round == c.round, v.setId == c.setId, self.voters.contains(v.voter) else { return false }
            guard self.signatures.isValid(v) else { return false }
            if counted.insert(v.voter).inserted { weight += self.voters.weight(v.voter) }
        }
        return weight >= self.voters.threshold
    }

    func handleCatchUp(_ c: CatchUp, now: UInt64) -> (verdict: FinalityVerdict, actions: [FinalityAction]) {
        guard c.setId == self.setId, c.round >= self.current.number else { return (.irrelevant, []) }
        var r = Round(number: c.round, startedAt: now)
        for v in c.prevotes {
            guard v.phase == .prevote, v.round == c.round, v.setId == c.setId, self.voters.contains(v.voter), self.signatures.isValid(v) else {
                self.invalidMessages += 1
                return (.invalid, [])
            }
            _ = r.prevotes.add(v)
        }
        for v in c.precommits {
            guard v.phase == .precommit, v.round == c.round, v.setId == c.setId, self.voters.contains(v.voter), self.signatures.isValid(v) else {
                self.invalidMessages += 1
                return (.invalid, [])
            }
            _ = r.precommits.add(v)
        }
        let set = self.setId
        var out = self.evaluate(&r, now: now)
        guard self.setId == set, r.completable else { return (.irrelevant, out) }
        if self.blockedUntilRound == UInt64.max { self.blockedUntilRound = c.round }
        self.current = r
        out += self.startRound(c.round &+ 1, now: now)
        return (.valid, out + self.progress(now: now))
    }

    // MARK: Validator sets

    func applyStandardChanges(now: UInt64) -> [FinalityAction] {
        var out: [FinalityAction] = []
        // Drop changes on chains that finality abandoned.
        self.pendingStandard.removeAll { !self.env.isDescendant($0.signal, of: self.finalized) && !self.env.isDescendant(self.finalized, of: $0.signal) }
        guard let i = self.pendingStandard.firstIndex(where: { self.finalized.number >= $0.enactAt && self.env.isDescendant(self.finalized, of: $0.signal) })
        else { return out }
        let change = self.pendingStandard.remove(at: i)
        let base = self.env.ancestor(of: self.finalized, at: change.enactAt) ?? self.finalized
        out += self.switchSet(to: change.authorities, base: base, now: now)
        return out
    }

    func applyForcedChanges(now: UInt64) -> [FinalityAction] {
        guard let i = self.pendingForced.firstIndex(where: { change in
            guard let head = self.env.bestChain(containing: change.signal) else { return false }
            return head.number >= change.enactAt
        }) else { return [] }
        let change = self.pendingForced.remove(at: i)
        guard let head = self.env.bestChain(containing: change.signal), let base = self.env.ancestor(of: head, at: change.enactAt) else { return [] }
        self.pendingStandard.removeAll()
        return self.switchSet(to: change.authorities, base: base, now: now)
    }

    func switchSet(to authorities: [WeightedAuthority], base: VoteTarget, now: UInt64) -> [FinalityAction] {
        self.setId += 1
        self.authorities = authorities
        self.voters = VoterSet(authorities)
        self.setBase = base
        self.lastEstimate = base
        self.previous = nil
        self.current = Round(number: 1, startedAt: now)
        self.catchUpRequested.removeAll()
        self.equivocators.removeAll()
        self.equivocationsSeen.removeAll()
        self.highestRound.removeAll()
        self.voteRequestsAnswered.removeAll()
        self.catchUpsSent.removeAll()
        self.seenCommits.removeAll()
        if self.blockedUntilRound != nil && self.blockedUntilRound != UInt64.max { self.blockedUntilRound = nil }
        var out: [FinalityAction] = [.authoritySetChanged(setId: self.setId, authorities: authorities)]
        if self.isVoter { out.append(.persist(VoterState(setId: self.setId, round: 1, prevote: nil, precommit: nil))) }
        return out
    }
}
