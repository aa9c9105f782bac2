import Foundation
import MeshQuery

/// A subnet's request type: what validators send to miners, with the answer type. Subnet
/// authors declare one per kind of query; both travel as JSON inside the signed query.
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
}

enum SynapseCoding {
    static func encode<T: Encodable>(_ v: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(v))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}

/// A typed answer from one miner.
public struct SynapseResult<Response: Sendable>: Sendable {
    public var uid: UInt16
    public var response: Response?
    public var status: QueryStatus
    public var failure: QueryFailure?
    public var latencyMs: Double
}
