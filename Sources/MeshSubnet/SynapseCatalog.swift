import Foundation
import Synchronization

/// What a miner serves, as it answers the built-in synapse ``synapseName``: each synapse's
/// name, whether it streams, how the apps gateway combines answers, how requests are coded,
/// and an example request (JSON) the miner answers. The gateway lists it to end users.
public enum SynapseCatalog {
    /// The synapse every SDK miner answers with its catalog.
    public static let synapseName = "tm.synapses"
    /// Longest example request kept.
    public static let maxExample = 16 << 10

    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var streaming: Bool
        public var policy: AnswerPolicy
        /// "json" (end users may send it through the gateway) or "binary".
        public var encoding: String
        /// An example request body, as JSON text.
        public var example: String?

        public init(name: String, streaming: Bool, policy: AnswerPolicy, encoding: String, example: String?) {
            self.name = name
            self.streaming = streaming
            self.policy = policy
            self.encoding = encoding
            self.example = example.flatMap { $0.utf8.count <= SynapseCatalog.maxExample ? $0 : nil }
        }

        public init<S: Synapse>(_ type: S.Type) {
            let json = S.jsonRequests
            let example = json ? S.example.flatMap { try? $0.encodeRequest() }.map { String(decoding: $0, as: UTF8.self) } : nil
            self.init(name: S.name, streaming: S.streaming, policy: S.policy, encoding: json ? "json" : "binary", example: example)
        }
    }

    public struct List: Codable, Sendable, Equatable {
        public var synapses: [Entry]
        public init(synapses: [Entry]) { self.synapses = synapses }
    }
}

/// A miner's catalog as synapses are attached.
final class Catalog: Sendable {
    let entries = Mutex<[String: SynapseCatalog.Entry]>([:])

    func add<S: Synapse>(_ type: S.Type) { self.add(SynapseCatalog.Entry(S.self)) }
    func add(_ e: SynapseCatalog.Entry) { self.entries.withLock { $0[e.name] = e } }
    func snapshot() -> SynapseCatalog.List {
        SynapseCatalog.List(synapses: self.entries.withLock { $0.values.sorted { $0.name < $1.name } })
    }
}
