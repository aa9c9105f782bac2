import MeshCodec
import MeshCrypto

/// The status of a query, with the HTTP-like codes Bittensor's axons use.
public struct QueryStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let ok = QueryStatus(rawValue: 200)
    /// Malformed header or body, body hash mismatch, deadline too far ahead.
    public static let badRequest = QueryStatus(rawValue: 400)
    /// Bad signature, replayed nonce.
    public static let unauthorized = QueryStatus(rawValue: 401)
    /// Blacklisted: unregistered caller, no validator permit, the author's own rule.
    public static let forbidden = QueryStatus(rawValue: 403)
    /// Unknown synapse, or the target hotkey is not served here.
    public static let notFound = QueryStatus(rawValue: 404)
    /// The deadline passed (before, during or after processing).
    public static let timeout = QueryStatus(rawValue: 408)
    /// The declared body is larger than the axon accepts.
    public static let payloadTooLarge = QueryStatus(rawValue: 413)
    /// The caller's rate limit is exhausted.
    public static let tooManyRequests = QueryStatus(rawValue: 429)
    /// The handler failed.
    public static let internalError = QueryStatus(rawValue: 500)
    /// Overloaded: the queue is full and this request had the lowest priority.
    public static let unavailable = QueryStatus(rawValue: 503)

    public var description: String {
        switch self.rawValue {
        case 200: return "200 OK"
        case 400: return "400 Bad Request"
        case 401: return "401 Unauthorized"
        case 403: return "403 Forbidden"
        case 404: return "404 Not Found"
        case 408: return "408 Timeout"
        case 413: return "413 Payload Too Large"
        case 429: return "429 Too Many Requests"
        case 500: return "500 Internal Error"
        case 503: return "503 Unavailable"
        default: return "\(self.rawValue)"
        }
    }
}

/// The signed header a validator (the caller) sends first on a `/tm/query/1` stream; the
/// body follows as the stream's next messages. The signature, by the caller's hotkey, covers
/// every field, so a relay can carry a request but not alter it, and the target hotkey binds
/// it to one miner (wire format: docs/query-routing.md).
public struct QueryRequestHeader: Equatable, Sendable, BinaryCodable {
    public static let version: UInt8 = 1
    public static let maxSynapseName = 64
    /// Largest encoded header accepted.
    public static let maxEncodedSize = 512
    static let domain = Array("tensormesh-query/1:".utf8)

    public var netuid: UInt16
    public var synapse: String
    public var caller: Ed25519.PublicKey
    public var target: Ed25519.PublicKey
    /// Unique per caller within the deadline horizon (callers use a timestamp-based counter).
    public var nonce: UInt64
    /// Unix milliseconds after which the caller no longer waits.
    public var deadline: UInt64
    public var bodyLength: UInt32
    /// SHA-256 of the body.
    public var bodyHash: [UInt8]
    public var signature: Ed25519.Signature

    /// Builds and signs a header for `body`.
    public init(netuid: UInt16, synapse: String, caller key: Ed25519.PrivateKey, target: Ed25519.PublicKey,
                nonce: UInt64, deadline: UInt64, body: [UInt8]) {
        self.netuid = netuid
        self.synapse = synapse
        self.caller = key.publicKey
        self.target = target
        self.nonce = nonce
        self.deadline = deadline
        self.bodyLength = UInt32(clamping: body.count)
        self.bodyHash = SHA256.hash(body)
        self.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 0, count: 64))
        self.signature = key.sign(self.signingBytes)
    }

    /// The bytes the caller signs: a domain tag, then every field but the signature.
    public var signingBytes: [UInt8] {
        var w = ByteWriter(capacity: 200)
        w.raw(Self.domain)
        self.encodeFields(to: &w)
        return w.bytes
    }

    /// Identifies the request in the miner's signed answer.
    public var requestHash: [UInt8] { SHA256.hash(self.signingBytes) }

    public var hasValidSignature: Bool { self.caller.isValidSignature(self.signature, for: self.signingBytes) }

    func encodeFields(to w: inout ByteWriter) {
        w.u8(Self.version)
        w.u16(self.netuid)
        w.string(self.synapse)
        self.caller.encode(to: &w)
        self.target.encode(to: &w)
        w.u64(self.nonce)
        w.u64(self.deadline)
        w.u32(self.bodyLength)
        w.raw(self.bodyHash)
    }

    public func encode(to w: inout ByteWriter) {
        self.encodeFields(to: &w)
        self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let v = try r.u8()
        guard v == Self.version else { throw .unsupportedVersion(v) }
        self.netuid = try r.u16()
        self.synapse = try r.string(field: "synapse", limit: Self.maxSynapseName)
        self.caller = try Ed25519.PublicKey(from: &r)
        self.target = try Ed25519.PublicKey(from: &r)
        self.nonce = try r.u64()
        self.deadline = try r.u64()
        self.bodyLength = try r.u32()
        self.bodyHash = try r.raw(32)
        self.signature = try Ed25519.Signature(from: &r)
    }
}

/// One message of a response stream: a piece of the body, or the trailer that ends it.
public enum QueryResponseFrame: Equatable, Sendable, BinaryEncodable {
    case chunk([UInt8])
    case trailer(QueryResponseTrailer)

    public func encode(to w: inout ByteWriter) {
        switch self {
        case .chunk(let b):
            w.u8(1)
            w.raw(b)
        case .trailer(let t):
            w.u8(2)
            t.encode(to: &w)
        }
    }

    /// Decodes one frame; a chunk takes the rest of the message.
    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> QueryResponseFrame {
        guard let tag = bytes.first else { throw .truncated(needed: 1, available: 0) }
        switch tag {
        case 1: return .chunk(Array(bytes[1...]))
        case 2:
            var r = ByteReader(bytes: bytes[1...])
            let t = try QueryResponseTrailer(from: &r)
            try r.finish()
            return .trailer(t)
        default: throw .invalidValue(field: "response frame", reason: "unknown tag \(tag)")
        }
    }
}

/// The end of a response: its status and, for requests that passed verification, the
/// responder's signature over the request hash, the status and the hash of every body chunk
/// in order. Refusals before verification are unsigned (signing junk would let junk cost the
/// miner a signature each).
public struct QueryResponseTrailer: Equatable, Sendable, BinaryCodable {
    static let domain = Array("tensormesh-query-response/1:".utf8)
    public static let maxMessage = 256

    public var status: QueryStatus
    public var message: String
    public var responder: Ed25519.PublicKey
    public var requestHash: [UInt8]
    public var bodyLength: UInt64
    public var bodyHash: [UInt8]
    /// Time the handler took, in microseconds.
    public var processingMicros: UInt64
    public var signature: Ed25519.Signature?

    public init(status: QueryStatus, message: String, responder: Ed25519.PublicKey, requestHash: [UInt8],
                bodyLength: UInt64 = 0, bodyHash: [UInt8] = SHA256.hash([UInt8]()), processingMicros: UInt64 = 0) {
        self.status = status
        self.message = Self.truncate(message)
        self.responder = responder
        self.requestHash = requestHash
        self.bodyLength = bodyLength
        self.bodyHash = bodyHash
        self.processingMicros = processingMicros
    }

    /// Cuts `s` to at most ``maxMessage`` UTF-8 bytes on a scalar boundary.
    static func truncate(_ s: String) -> String {
        guard s.utf8.count > Self.maxMessage else { return s }
        var out = String.UnicodeScalarView()
        var bytes = 0
        for u in s.unicodeScalars {
            let n = String(u).utf8.count
            if bytes + n > Self.maxMessage { break }
            out.append(u)
            bytes += n
        }
        return String(out)
    }

    public var signingBytes: [UInt8] {
        var w = ByteWriter(capacity: 200)
        w.raw(Self.domain)
        self.encodeFields(to: &w)
        return w.bytes
    }

    public mutating func sign(with key: Ed25519.PrivateKey) { self.signature = key.sign(self.signingBytes) }

    /// Whether the trailer is signed by `expected` (the target hotkey).
    public func isSigned(by expected: Ed25519.PublicKey) -> Bool {
        guard let s = self.signature, self.responder == expected else { return false }
        return expected.isValidSignature(s, for: self.signingBytes)
    }

    func encodeFields(to w: inout ByteWriter) {
        w.u16(self.status.rawValue)
        w.string(self.message)
        self.responder.encode(to: &w)
        w.raw(self.requestHash)
        w.u64(self.bodyLength)
        w.raw(self.bodyHash)
        w.u64(self.processingMicros)
    }

    public func encode(to w: inout ByteWriter) {
        self.encodeFields(to: &w)
        w.optional(self.signature) { w, s in s.encode(to: &w) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.status = QueryStatus(rawValue: try r.u16())
        self.message = try r.string(field: "message", limit: Self.maxMessage)
        self.responder = try Ed25519.PublicKey(from: &r)
        self.requestHash = try r.raw(32)
        self.bodyLength = try r.u64()
        self.bodyHash = try r.raw(32)
        self.processingMicros = try r.u64()
        self.signature = try r.optional { (r: inout ByteReader) throws(CodecError) in try Ed25519.Signature(from: &r) }
    }
}
