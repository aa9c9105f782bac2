import MeshChain
import MeshCodec
import MeshCrypto

/// The two voting phases, and the primary's proposal.
public enum VotePhase: UInt8, Sendable, Hashable, CaseIterable {
    case prevote = 1
    case precommit = 2
    case primaryPropose = 3
}

/// A block a vote is for.
public struct VoteTarget: Hashable, Sendable, BinaryCodable, CustomStringConvertible {
    public var hash: Hash32
    public var number: UInt64

    public init(hash: Hash32, number: UInt64) {
        self.hash = hash
        self.number = number
    }

    public func encode(to w: inout ByteWriter) { self.hash.encode(to: &w); w.u64(self.number) }
    public init(from r: inout ByteReader) throws(CodecError) { self.hash = try Hash32(from: &r); self.number = try r.u64() }
    public var description: String { "#\(self.number)(\(self.hash))" }
}

/// A signed vote. The signature covers SHA-256("tensormesh/grandpa/1" ‖ phase ‖ target ‖ round ‖ set id).
public struct SignedVote: Hashable, Sendable, BinaryCodable {
    public var phase: VotePhase
    public var target: VoteTarget
    public var round: UInt64
    public var setId: UInt64
    public var voter: AccountID
    public var signature: Ed25519.Signature

    static let domain = Array("tensormesh/grandpa/1".utf8)

    public static func payload(phase: VotePhase, target: VoteTarget, round: UInt64, setId: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 80)
        w.raw(domain)
        w.u8(phase.rawValue)
        target.encode(to: &w)
        w.u64(round)
        w.u64(setId)
        return SHA256.hash(w.bytes)
    }

    public init(phase: VotePhase, target: VoteTarget, round: UInt64, setId: UInt64, key: Ed25519.PrivateKey) {
        self.phase = phase
        self.target = target
        self.round = round
        self.setId = setId
        self.voter = key.publicKey
        self.signature = key.sign(Self.payload(phase: phase, target: target, round: round, setId: setId))
    }

    public var isSignatureValid: Bool {
        self.voter.isValidSignature(self.signature, for: Self.payload(phase: self.phase, target: self.target, round: self.round, setId: self.setId))
    }

    /// Identity of the vote for de-duplication and the verified-signature cache.
    public var id: Hash32 { Hash32.of(self.encoded) }

    /// phase 1, target 40, round and set 16, voter 32, signature 64.
    public var encodedSizeHint: Int { 153 }

    public func encode(to w: inout ByteWriter) {
        w.u8(self.phase.rawValue); self.target.encode(to: &w); w.u64(self.round); w.u64(self.setId)
        self.voter.encode(to: &w); self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let p = try r.u8()
        guard let phase = VotePhase(rawValue: p) else { throw .invalidValue(field: "vote.phase", reason: "\(p)") }
        self.phase = phase
        self.target = try VoteTarget(from: &r)
        self.round = try r.u64()
        self.setId = try r.u64()
        self.voter = try AccountID(from: &r)
        self.signature = try Ed25519.Signature(from: &r)
    }
}

/// The precommits that finalized a block: a justification, verifiable from headers alone.
public struct Commit: Equatable, Sendable, BinaryCodable {
    public var target: VoteTarget
    public var round: UInt64
    public var setId: UInt64
    public var precommits: [SignedVote]
    /// Headers between the target and precommit targets that are descendants of it (so a
    /// light client can check ancestry without the blocks).
    public var ancestry: [BlockHeader]

    public init(target: VoteTarget, round: UInt64, setId: UInt64, precommits: [SignedVote], ancestry: [BlockHeader]) {
        self.target = target
        self.round = round
        self.setId = setId
        self.precommits = precommits
        self.ancestry = ancestry
    }

    public func encode(to w: inout ByteWriter) {
        self.target.encode(to: &w); w.u64(self.round); w.u64(self.setId)
        w.list(self.precommits); w.list(self.ancestry)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.target = try VoteTarget(from: &r)
        self.round = try r.u64()
        self.setId = try r.u64()
        self.precommits = try r.list(of: SignedVote.self, field: "precommits", limit: 2048, minElementSize: 150)
        self.ancestry = try r.list(of: BlockHeader.self, field: "ancestry", limit: 1024, minElementSize: 200)
    }
}

/// Two signed votes by one voter in the same round and phase for different blocks.
public struct Equivocation: Equatable, Hashable, Sendable, BinaryCodable {
    public var first: SignedVote
    public var second: SignedVote

    public init(first: SignedVote, second: SignedVote) {
        // Canonical order, so both discoverers produce the same evidence.
        if first.id < second.id {
            self.first = first
            self.second = second
        } else {
            self.first = second
            self.second = first
        }
    }

    /// Whether this proves an equivocation on its own.
    public var isValid: Bool {
        self.first.voter == self.second.voter && self.first.round == self.second.round && self.first.setId == self.second.setId
            && self.first.phase == self.second.phase && self.first.target != self.second.target
            && self.first.isSignatureValid && self.second.isSignatureValid
    }

    public func encode(to w: inout ByteWriter) { self.first.encode(to: &w); self.second.encode(to: &w) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.init(first: try SignedVote(from: &r), second: try SignedVote(from: &r))
    }

    /// Checks evidence bytes against a validator set (for the chain's `report_equivocation`).
    public static func verify(_ bytes: [UInt8], authorities: [WeightedAuthority]) -> Bool {
        guard let e = try? Equivocation.decode(bytes) else { return false }
        return e.isValid && authorities.contains { $0.id == e.first.voter }
    }
}

/// The votes that complete a round, sent to a validator that fell two or more rounds behind.
public struct CatchUp: Equatable, Sendable, BinaryCodable {
    public var round: UInt64
    public var setId: UInt64
    public var prevotes: [SignedVote]
    public var precommits: [SignedVote]

    public init(round: UInt64, setId: UInt64, prevotes: [SignedVote], precommits: [SignedVote]) {
        self.round = round
        self.setId = setId
        self.prevotes = prevotes
        self.precommits = precommits
    }

    public func encode(to w: inout ByteWriter) { w.u64(self.round); w.u64(self.setId); w.list(self.prevotes); w.list(self.precommits) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.round = try r.u64()
        self.setId = try r.u64()
        self.prevotes = try r.list(of: SignedVote.self, limit: 2048, minElementSize: 150)
        self.precommits = try r.list(of: SignedVote.self, limit: 2048, minElementSize: 150)
    }
}

/// Finality protocol messages (carried on the `/tm/grandpa/1` stream or gossip topic).
public enum FinalityMessage: Equatable, Sendable, BinaryCodable {
    case vote(SignedVote)
    case commit(Commit)
    case catchUpRequest(round: UInt64, setId: UInt64)
    case catchUp(CatchUp)
    /// Asks for the votes we have of a round (missing votes of the current and previous round).
    case voteRequest(round: UInt64, setId: UInt64)
    case equivocation(Equivocation)

    public var encodedSizeHint: Int {
        switch self {
        case .vote(let v): return 1 + v.encodedSizeHint
        case .commit(let c): return 96 + 153 * c.precommits.count + 256 * c.ancestry.count
        case .equivocation: return 1 + 2 * 153
        default: return 64
        }
    }

    public func encode(to w: inout ByteWriter) {
        switch self {
        case .vote(let v): w.u8(1); v.encode(to: &w)
        case .commit(let c): w.u8(2); c.encode(to: &w)
        case .catchUpRequest(let r, let s): w.u8(3); w.u64(r); w.u64(s)
        case .catchUp(let c): w.u8(4); c.encode(to: &w)
        case .voteRequest(let r, let s): w.u8(5); w.u64(r); w.u64(s)
        case .equivocation(let e): w.u8(6); e.encode(to: &w)
        }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        switch try r.u8() {
        case 1: self = .vote(try SignedVote(from: &r))
        case 2: self = .commit(try Commit(from: &r))
        case 3: self = .catchUpRequest(round: try r.u64(), setId: try r.u64())
        case 4: self = .catchUp(try CatchUp(from: &r))
        case 5: self = .voteRequest(round: try r.u64(), setId: try r.u64())
        case 6: self = .equivocation(try Equivocation(from: &r))
        case let t: throw .invalidValue(field: "finality message", reason: "unknown kind \(t)")
        }
    }
}
