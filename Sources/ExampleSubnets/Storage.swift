import Foundation
import MeshCrypto
import MeshSubnet

/// The storage market: validators hand miners chunks to keep and later challenge them at a
/// random offset with a fresh nonce; only a miner that still holds the bytes can answer
/// SHA-256(nonce ‖ chunk[offset ..< offset+length]). Scores reward correct answers, and fast
/// ones a little more.
public enum Storage {
    public static let maxChunk = 64 * 1024

    public struct Store: Synapse {
        public static let name = "store"
        public var id: String
        public var data: Data
        public init(id: String, data: Data) {
            self.id = id
            self.data = data
        }
        public struct Response: Codable, Sendable {
            public var stored: Bool
            public init(stored: Bool) { self.stored = stored }
        }
    }

    public struct Challenge: Synapse {
        public static let name = "challenge"
        public var id: String
        public var offset: Int
        public var length: Int
        public var nonce: Data
        public init(id: String, offset: Int, length: Int, nonce: Data) {
            self.id = id
            self.offset = offset
            self.length = length
            self.nonce = nonce
        }
        public struct Response: Codable, Sendable {
            public var proof: Data
            public init(proof: Data) { self.proof = proof }
        }
    }

    /// The expected answer to a challenge.
    public static func proof(nonce: Data, chunk: Data, offset: Int, length: Int) -> Data? {
        guard offset >= 0, length > 0, offset <= chunk.count, length <= chunk.count - offset, nonce.count <= 64 else { return nil }
        return Data(SHA256.hash(Array(nonce) + Array(chunk[chunk.startIndex + offset ..< chunk.startIndex + offset + length])))
    }

    /// Whether an id is safe as a file name (hex, ≤ 64 characters).
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.allSatisfy { $0.isHexDigit }
    }

    /// A miner's chunk store on disk: `<dir>/<caller>/<id>`, with a byte budget.
    public final class ChunkStore: @unchecked Sendable {
        // Safety: every access holds `lock`.
        let dir: String
        let budget: Int
        let lock = NSLock()
        var used = 0

        public init(directory: String, budgetBytes: Int = 256 << 20) throws {
            self.dir = directory
            self.budget = budgetBytes
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let files = FileManager.default.enumerator(atPath: directory)
            while let f = files?.nextObject() as? String {
                if let attrs = try? FileManager.default.attributesOfItem(atPath: directory + "/" + f),
                   attrs[.type] as? FileAttributeType == .typeRegular, let size = attrs[.size] as? Int {
                    self.used += size
                }
            }
        }

        func path(caller: String, id: String) -> String { "\(self.dir)/\(caller)/\(id)" }

        public func put(caller: String, id: String, data: Data) throws {
            guard Storage.isValidID(id), Storage.isValidID(caller) else { throw SubnetError("ids are 1-64 hex digits") }
            guard data.count <= Storage.maxChunk else { throw SubnetError("chunks are at most \(Storage.maxChunk) bytes") }
            try self.lock.withLock {
                let p = self.path(caller: caller, id: id)
                let old = (try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? Int ?? 0
                guard self.used - old + data.count <= self.budget else { throw SubnetError("storage budget exhausted") }
                try FileManager.default.createDirectory(atPath: "\(self.dir)/\(caller)", withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: p), options: .atomic)
                self.used += data.count - old
            }
        }

        public func get(caller: String, id: String) -> Data? {
            guard Storage.isValidID(id), Storage.isValidID(caller) else { return nil }
            return self.lock.withLock { FileManager.default.contents(atPath: self.path(caller: caller, id: id)) }
        }

        public var usedBytes: Int { self.lock.withLock { self.used } }
    }

    /// The miner's side of a challenge. A cheating miner (`cheat`) acknowledges stores but
    /// keeps nothing, and answers challenges with made-up bytes.
    public static func answer(_ c: Challenge, caller: String, store: ChunkStore?, cheat: Bool) throws -> Challenge.Response {
        if cheat { return .init(proof: Data((0..<32).map { _ in UInt8.random(in: 0...255) })) }
        guard let store, let chunk = store.get(caller: caller, id: c.id) else { throw SubnetError("unknown chunk \(c.id)") }
        guard let p = proof(nonce: c.nonce, chunk: chunk, offset: c.offset, length: c.length) else { throw SubnetError("offset or length out of range") }
        return .init(proof: p)
    }

    /// What a validator handed to each miner (bounded per miner), to check the answers.
    public struct Ledger: Sendable {
        public var perMiner: Int
        public private(set) var chunks: [UInt16: [(id: String, data: Data)]] = [:]
        var owners: [UInt16: [UInt8]] = [:]

        public init(perMiner: Int = 16) { self.perMiner = perMiner }

        /// Records a stored chunk; a uid with a new hotkey starts over.
        public mutating func stored(uid: UInt16, hotkey: [UInt8], id: String, data: Data) {
            if self.owners[uid] != hotkey {
                self.owners[uid] = hotkey
                self.chunks[uid] = []
            }
            var list = self.chunks[uid, default: []]
            list.append((id, data))
            if list.count > self.perMiner { list.removeFirst(list.count - self.perMiner) }
            self.chunks[uid] = list
        }

        /// A random challenge on one of the miner's chunks, with its expected proof.
        public func challenge<R: RandomNumberGenerator>(uid: UInt16, hotkey: [UInt8], using rng: inout R) -> (Challenge, Data)? {
            guard self.owners[uid] == hotkey, let list = self.chunks[uid], let pick = list.randomElement(using: &rng) else { return nil }
            let length = Int.random(in: 1...min(1024, pick.data.count), using: &rng)
            let offset = Int.random(in: 0...(pick.data.count - length), using: &rng)
            let nonce = Data((0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })
            guard let expected = proof(nonce: nonce, chunk: pick.data, offset: offset, length: length) else { return nil }
            return (Challenge(id: pick.id, offset: offset, length: length, nonce: nonce), expected)
        }
    }

    /// The score of one challenge answer.
    public static func score(correct: Bool, latencyMs: Double, timeoutMs: Double) -> Double {
        guard correct else { return 0 }
        return 0.7 + 0.3 * max(0, 1 - latencyMs / timeoutMs)
    }
}
