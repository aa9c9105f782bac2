import MeshCodec
import MeshCrypto

/// Why a secure channel failed. Every value is a reason to drop the peer.
public enum ChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A handshake or transport message did not authenticate (garbage, tampering, wrong key).
    case decryptFailed
    /// A handshake message is shorter than its pattern requires, or has the wrong shape.
    case malformedHandshake(String)
    /// The peer's identity payload is missing, too short or its signature does not verify.
    case invalidIdentity(String)
    /// The peer presented our own identity.
    case selfConnection
    /// The peer is on another chain.
    case genesisMismatch(ours: String, theirs: String)
    /// The peer speaks an incompatible protocol version.
    case incompatibleVersion(UInt32)
    /// A frame's declared length is over the limit.
    case frameTooLarge(Int)
    /// A message is larger than the declared maximum.
    case messageTooLarge(declared: Int, limit: Int)
    /// The peer broke the framing or stream rules.
    case protocolViolation(String)
    /// The peer sent more than its flow-control window allows.
    case flowControlViolation(stream: UInt64)
    /// The handshake did not finish in time.
    case handshakeTimeout
    /// The connection was idle too long.
    case idleTimeout
    /// The nonce space is exhausted (2^64 − 1 messages).
    case nonceExhausted
    /// A message could not be decoded.
    case codec(CodecError)
    /// A primitive failed.
    case crypto(CryptoError)
    /// The peer closed the channel with a reason.
    case remoteClosed(code: UInt16, reason: String)
    /// The send or receive buffer limit was hit.
    case bufferLimit(String)

    public var description: String {
        switch self {
        case .decryptFailed: return "message did not authenticate"
        case .malformedHandshake(let s): return "malformed handshake: \(s)"
        case .invalidIdentity(let s): return "invalid identity: \(s)"
        case .selfConnection: return "peer presented our own identity"
        case .genesisMismatch(let o, let t): return "peer is on another chain (genesis \(t), ours \(o))"
        case .incompatibleVersion(let v): return "incompatible protocol version \(v)"
        case .frameTooLarge(let n): return "frame of \(n) bytes over the limit"
        case .messageTooLarge(let d, let l): return "message of \(d) bytes over the limit \(l)"
        case .protocolViolation(let s): return "protocol violation: \(s)"
        case .flowControlViolation(let s): return "flow-control window exceeded on stream \(s)"
        case .handshakeTimeout: return "handshake timed out"
        case .idleTimeout: return "idle timeout"
        case .nonceExhausted: return "nonce space exhausted"
        case .codec(let e): return "undecodable message: \(e)"
        case .crypto(let e): return "crypto failure: \(e)"
        case .remoteClosed(let c, let r): return "peer closed the channel (\(c)): \(r)"
        case .bufferLimit(let s): return "buffer limit: \(s)"
        }
    }
}
