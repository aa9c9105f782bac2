import Foundation
import MeshQuery

/// A subnet's request type: what validators send to miners, with the answer type. Subnet
/// authors declare one per kind of query. By default both travel as JSON inside the signed
/// query; a type that conforms to ``BinaryPayload`` sends its `payload` as raw bytes after
/// its other fields, and a type may replace the coding entirely by implementing the four
/// coding requirements.
///
///     struct Twice: Synapse {
///         static let name = "double"
///         var x: Int
///         struct Response: Codable, Sendable { var y: Int }
///     }
public protocol Synapse: Codable, Sendable {
    associatedtype Response: Codable & Sendable
    /// The synapse's name on the wire (≤ 64 bytes).
    static var name: String { get }
    /// A request the subnet's miners answer: shown to end users by the apps gateway
    /// (`GET /v1/subnets`). Nil hides the synapse from the gateway's list.
    static var example: Self? { get }
    /// How the apps gateway combines the answers of several miners.
    static var policy: AnswerPolicy { get }
    /// Whether miners answer with a stream of `Response` values (one per response chunk)
    /// instead of one.
    static var streaming: Bool { get }

    /// The request's bytes on the wire.
    func encodeRequest() throws -> [UInt8]
    /// A request from its bytes on the wire (hostile input: throw on anything malformed).
    static func decodeRequest(_ bytes: [UInt8]) throws -> Self
    /// One answer's bytes on the wire.
    static func encodeResponse(_ response: Response) throws -> [UInt8]
    /// One answer from its bytes on the wire (hostile input).
    static func decodeResponse(_ bytes: [UInt8]) throws -> Response
}

/// A synapse whose miners stream their answer: each `Response` value is one chunk of the
/// response, delivered to the validator (and through the gateway, as a server-sent event)
/// as it comes.
public protocol StreamingSynapse: Synapse {}

extension StreamingSynapse {
    public static var streaming: Bool { true }
}

/// How the apps gateway turns several miners' answers into one.
public enum AnswerPolicy: String, Codable, Sendable, CaseIterable {
    /// The first verified answer.
    case first
    /// The answer of the miner with the highest incentive among those that answered.
    case best
    /// A combination of all answers: element-wise medians of numeric arrays when the answers
    /// share their shape, else the answer most miners gave.
    case aggregate
}

/// A message that carries bulk bytes: `payload` travels raw after the message's other fields
/// (as JSON), not as base64 inside JSON. Wire form: u32 big-endian length of the JSON, the
/// JSON (with `payload` empty), then the payload bytes.
public protocol BinaryPayload: Codable, Sendable {
    var payload: Data { get set }
}

/// The SDK's wire coding of synapse messages.
public enum SynapseCoding {
    /// Largest JSON part of a binary message.
    public static let maxBinaryHeader = 64 << 10

    /// JSON with sorted keys (stable bytes for equal values).
    public static func encodeJSON<T: Encodable>(_ v: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(v))
    }

    public static func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes))
    }

    public static func encodeBinary<T: BinaryPayload>(_ v: T) throws -> [UInt8] {
        var head = v
        head.payload = Data()
        let json = try encodeJSON(head)
        guard json.count <= maxBinaryHeader else { throw SubnetError("the fields beside the payload take \(json.count) bytes (at most \(maxBinaryHeader))") }
        let n = UInt32(json.count)
        var out = [UInt8]()
        out.reserveCapacity(4 + json.count + v.payload.count)
        out += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
        out += json
        out += v.payload
        return out
    }

    public static func decodeBinary<T: BinaryPayload>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        guard bytes.count >= 4 else { throw SubnetError("binary message shorter than its 4-byte header") }
        let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard n <= maxBinaryHeader, n <= bytes.count - 4 else { throw SubnetError("binary message header of \(n) bytes does not fit") }
        var v = try decodeJSON(T.self, Array(bytes[4..<(4 + n)]))
        v.payload = Data(bytes[(4 + n)...])
        return v
    }
}

extension Synapse {
    public static var example: Self? { nil }
    public static var policy: AnswerPolicy { .first }
    public static var streaming: Bool { false }

    public func encodeRequest() throws -> [UInt8] { try SynapseCoding.encodeJSON(self) }
    public static func decodeRequest(_ bytes: [UInt8]) throws -> Self { try SynapseCoding.decodeJSON(Self.self, bytes) }
    public static func encodeResponse(_ response: Response) throws -> [UInt8] { try SynapseCoding.encodeJSON(response) }
    public static func decodeResponse(_ bytes: [UInt8]) throws -> Response { try SynapseCoding.decodeJSON(Response.self, bytes) }
}

extension Synapse where Self: BinaryPayload {
    public func encodeRequest() throws -> [UInt8] { try SynapseCoding.encodeBinary(self) }
    public static func decodeRequest(_ bytes: [UInt8]) throws -> Self { try SynapseCoding.decodeBinary(Self.self, bytes) }
}

extension Synapse where Response: BinaryPayload {
    public static func encodeResponse(_ response: Response) throws -> [UInt8] { try SynapseCoding.encodeBinary(response) }
    public static func decodeResponse(_ bytes: [UInt8]) throws -> Response { try SynapseCoding.decodeBinary(Response.self, bytes) }
}

extension Synapse {
    /// Whether the request travels as JSON (so the apps gateway can take it from end users).
    static var jsonRequests: Bool { !(Self.self is any BinaryPayload.Type) }
}

/// A typed answer from one miner.
public struct SynapseResult<Response: Sendable>: Sendable {
    public var uid: UInt16
    public var response: Response?
    public var status: QueryStatus
    public var failure: QueryFailure?
    public var latencyMs: Double
    /// The miner's signed trailer, when it answered.
    public var receipt: QueryResponseTrailer?
}
