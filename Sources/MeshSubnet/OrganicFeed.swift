import Dispatch
import Foundation
import MeshCodec
import MeshQuery

/// Organic queries for a validator: what end users asked a subnet through an apps gateway
/// and what the miners answered, sampled by the gateway (`--organic-sample`) and read with a
/// key marked `organic` (`GET /v1/organic/{netuid}`, drained on read). A validator that can
/// judge such answers (a reference model, agreement between miners) folds them into its
/// scores beside its own synthetic queries.
public struct OrganicFeed: Sendable {
    /// One sampled query.
    public struct Query: Sendable {
        public var synapse: String
        /// The request body (JSON text).
        public var request: [UInt8]
        public var answers: [(uid: UInt16, hotkey: String, answer: [UInt8])]
    }

    let forwarder: HTTPForwarder
    let key: String
    public let netuid: UInt16

    /// - Parameters: `gateway` is `http://HOST:PORT`; `key` an API key marked `organic`.
    public init(gateway: String, key: String, netuid: UInt16) throws {
        var f = try HTTPForwarder(url: gateway.hasSuffix("/") ? gateway : gateway + "/")
        f.timeoutSeconds = 10
        f.maxResponseBytes = 16 << 20
        self.forwarder = f
        guard !key.isEmpty, key.utf8.count <= 256, key.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw SubnetError("bad API key") }
        self.key = key
        self.netuid = netuid
    }

    /// The queries sampled since the last call.
    public func fetch() async throws -> [Query] {
        let head = "GET /v1/organic/\(self.netuid) HTTP/1.1\r\nHost: \(self.forwarder.host):\(self.forwarder.port)\r\nAuthorization: Bearer \(self.key)\r\nConnection: close\r\n\r\n"
        let body = try await self.forwarder.exchange(Array(head.utf8), seconds: self.forwarder.timeoutSeconds)
        let v = try JSONValue.parse(body, limits: .init(maxBytes: 16 << 20, maxDepth: 64))
        return (v["queries"]?.array ?? []).compactMap { q in
            guard let synapse = q["synapse"]?.string, let request = q["request"] else { return nil }
            let answers = (q["answers"]?.array ?? []).compactMap { a -> (UInt16, String, [UInt8])? in
                guard let uid = a["uid"]?.uint64.flatMap({ UInt16(exactly: $0) }), let answer = a["answer"] else { return nil }
                return (uid, a["hotkey"]?.string ?? "", Array(answer.serialized().utf8))
            }
            return Query(synapse: synapse, request: Array(request.serialized().utf8), answers: answers)
        }
    }
}

extension HTTPForwarder {
    /// Sends `request` (a whole HTTP/1.1 request) and returns the body of a 200 answer.
    func exchange(_ request: [UInt8], seconds: Double) async throws -> [UInt8] {
        let reply = try await self.exchangeReply(request, seconds: seconds)
        switch reply {
        case .body(let b): return b
        case .stream(let s):
            var out: [UInt8] = []
            for try await chunk in s { out += chunk }
            return out
        }
    }
}
