/// Why a transaction cannot be included at all (the block that carries it is invalid, and the
/// mempool refuses it).
public enum TransactionError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSignature
    /// The nonce was already used (`expected` is the account's next nonce).
    case staleNonce(expected: UInt64, got: UInt64)
    /// The nonce is ahead of the account's (the mempool may hold it as "future").
    case futureNonce(expected: UInt64, got: UInt64)
    case expired(validUntil: UInt64, block: UInt64)
    case feeTooLow(minimum: UInt64, offered: UInt64)
    case cannotPayFee(balance: UInt64, fee: UInt64)
    case tooLarge(Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .badSignature: return "invalid signature"
        case .staleNonce(let e, let g): return "nonce \(g) already used (next is \(e))"
        case .futureNonce(let e, let g): return "nonce \(g) is ahead of the account (next is \(e))"
        case .expired(let v, let b): return "expired: valid until block \(v), now \(b)"
        case .feeTooLow(let m, let o): return "fee \(o) below the minimum \(m)"
        case .cannotPayFee(let b, let f): return "balance \(b) cannot pay the fee \(f)"
        case .tooLarge(let n): return "transaction of \(n) bytes is too large"
        case .malformed(let s): return "malformed transaction: \(s)"
        }
    }
}

/// Why a valid transaction's call was refused. The fee is still charged and the nonce used,
/// as on Substrate chains. Every refusal says why, and when waiting would help, from which
/// block it would be allowed.
public struct DispatchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stable code (Bittensor's error names where one exists, e.g. `SettingWeightsTooFast`).
    public var code: String
    public var message: String
    /// The first block at which the same call could succeed, when that is known.
    public var allowedAtBlock: UInt64?

    public init(_ code: String, _ message: String, allowedAt: UInt64? = nil) {
        self.code = code
        self.message = message
        self.allowedAtBlock = allowedAt
    }

    public var description: String {
        var s = "\(self.code): \(self.message)"
        if let b = self.allowedAtBlock { s += " (allowed at block \(b))" }
        return s
    }
}

/// Why a block is rejected.
public enum BlockError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownParent(Hash32)
    case badNumber(expected: UInt64, got: UInt64)
    case slotNotIncreasing(parent: UInt64, got: UInt64)
    case wrongProducer(slot: UInt64, expected: String, got: String)
    case badProducerSignature
    case timestampInFuture(UInt64)
    case timestampSlotMismatch
    case transactionsRootMismatch
    case stateRootMismatch(expected: Hash32, got: Hash32)
    case digestMismatch
    case invalidTransaction(index: Int, TransactionError)
    case tooLarge(Int)
    case malformed(String)
    case conflictsWithFinalized
    case alreadyKnown
    /// Our own store failed while writing the block: a local error, never the sender's fault.
    case storeFailure(String)

    /// Whether the error says nothing about the block (a local failure), so its sender must
    /// not be blamed.
    public var isLocal: Bool { if case .storeFailure = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .unknownParent(let h): return "unknown parent \(h.hex)"
        case .badNumber(let e, let g): return "block number \(g), expected \(e)"
        case .slotNotIncreasing(let p, let g): return "slot \(g) not after the parent's \(p)"
        case .wrongProducer(let s, let e, let g): return "slot \(s) belongs to \(e.prefix(16)), not \(g.prefix(16))"
        case .badProducerSignature: return "invalid producer signature"
        case .timestampInFuture(let t): return "timestamp \(t) is in the future"
        case .timestampSlotMismatch: return "timestamp does not fall in the slot"
        case .transactionsRootMismatch: return "transactions root mismatch"
        case .stateRootMismatch(let e, let g): return "state root \(g.hex) does not match the computed \(e.hex)"
        case .digestMismatch: return "consensus digest does not match the state transition"
        case .invalidTransaction(let i, let e): return "transaction \(i): \(e)"
        case .tooLarge(let n): return "block of \(n) bytes is too large"
        case .malformed(let s): return "malformed block: \(s)"
        case .conflictsWithFinalized: return "block conflicts with the finalized chain"
        case .alreadyKnown: return "block already known"
        case .storeFailure(let s): return "local store failure: \(s)"
        }
    }
}
