import Foundation
import MeshCodec
import MeshCrypto
import MeshSubnet

/// The storage market: miners keep objects for validators and apps, and are paid for what
/// they provably hold. A miner commits to each object with the root of a Merkle tree over
/// its 4 KiB chunks; the validator checks the root against the bytes it sent, then keeps only
/// the commitment (key, root, size). Later it challenges any chunk of anything it stored, and
/// only a miner that still holds the bytes can answer with the chunk and its Merkle path.
/// A miner's score is its proven capacity (bytes committed with this validator, relative to
/// the miner holding most) times its challenge pass rate to the fourth power; latency counts
/// only as a cap (an answer after the validator's deadline fails).
public enum Storage {
    /// Chunk size of the Merkle commitments.
    public static let chunkSize = 4096
    /// Largest object (it travels in one query body).
    public static let maxObject = 512 << 10

    /// Keep `payload` under `key` (the caller's own namespace); answers the Merkle root.
    public struct Store: Synapse, BinaryPayload {
        public static let name = "store"
        public var key: String
        public var payload: Data
        public init(key: String, payload: Data) {
            self.key = key
            self.payload = payload
        }
        public struct Response: Codable, Sendable, Equatable {
            /// Hex of the Merkle root over the object's chunks.
            public var root: String
            public var size: Int
            public init(root: String, size: Int) {
                self.root = root
                self.size = size
            }
        }
    }

    /// Prove chunk `index` of object `key`: the chunk and its Merkle path.
    public struct Challenge: Synapse {
        public static let name = "challenge"
        public var key: String
        public var index: Int
        public init(key: String, index: Int) {
            self.key = key
            self.index = index
        }
        public struct Response: Codable, Sendable, BinaryPayload {
            /// Sibling hashes (hex) from the leaf up.
            public var siblings: [String]
            /// The chunk.
            public var payload: Data
            public init(siblings: [String], payload: Data) {
                self.siblings = siblings
                self.payload = payload
            }
        }
    }

    /// Return object `key` whole.
    public struct Retrieve: Synapse {
        public static let name = "retrieve"
        public var key: String
        public init(key: String) { self.key = key }
        public struct Response: Codable, Sendable, BinaryPayload {
            public var payload: Data
            public init(payload: Data) { self.payload = payload }
        }
    }

    /// Whether a key is safe as a file name (hex, 1-64 characters).
    public static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 64 && key.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The Merkle root of an object (hex).
    public static func root(of data: Data) -> String { Hex.encode(MerkleTree(data: Array(data), chunkSize: chunkSize).root) }

    // MARK: Miner side

    /// A miner's objects on disk: `<dir>/<caller>/<key>`, within a byte budget.
    public final class ObjectStore: @unchecked Sendable {
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

        func path(caller: String, key: String) -> String { "\(self.dir)/\(caller)/\(key)" }

        /// Stores an object; its Merkle root. Throws when the key is unsafe, the object too
        /// large or the budget exhausted.
        @discardableResult
        public func put(caller: String, key: String, data: Data) throws -> String {
            guard Storage.isValidKey(key), Storage.isValidKey(caller) else { throw QueryError(.badRequest, "keys are 1-64 lowercase hex digits") }
            guard data.count <= Storage.maxObject else { throw QueryError(.payloadTooLarge, "objects are at most \(Storage.maxObject) bytes") }
            try self.lock.withLock {
                let p = self.path(caller: caller, key: key)
                let old = (try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? Int ?? 0
                guard self.used - old + data.count <= self.budget else { throw QueryError(.payloadTooLarge, "storage budget exhausted") }
                try FileManager.default.createDirectory(atPath: "\(self.dir)/\(caller)", withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: p), options: .atomic)
                self.used += data.count - old
            }
            return Storage.root(of: data)
        }

        public func get(caller: String, key: String) -> Data? {
            guard Storage.isValidKey(key), Storage.isValidKey(caller) else { return nil }
            return self.lock.withLock { FileManager.default.contents(atPath: self.path(caller: caller, key: key)) }
        }

        public var usedBytes: Int { self.lock.withLock { self.used } }
    }

    /// The miner's handlers. A cheating miner (`cheat`) acknowledges stores with the right
    /// root but keeps nothing.
    public static func answer(_ s: Store, caller: String, store: ObjectStore?, cheat: Bool) throws -> Store.Response {
        guard s.payload.count <= maxObject else { throw QueryError(.payloadTooLarge, "objects are at most \(maxObject) bytes") }
        if cheat || store == nil { return .init(root: root(of: s.payload), size: s.payload.count) }
        return .init(root: try store!.put(caller: caller, key: s.key, data: s.payload), size: s.payload.count)
    }

    public static func answer(_ c: Challenge, caller: String, store: ObjectStore?) throws -> Challenge.Response {
        guard let data = store?.get(caller: caller, key: c.key) else { throw QueryError(.notFound, "no object \(c.key.prefix(64))") }
        let tree = MerkleTree(data: Array(data), chunkSize: chunkSize)
        guard let siblings = tree.proof(index: c.index) else { throw QueryError(.badRequest, "chunk \(c.index) out of range") }
        let chunks = MerkleTree.chunks(Array(data), size: chunkSize)
        return .init(siblings: siblings.map { Hex.encode($0) }, payload: Data(chunks[c.index]))
    }

    public static func answer(_ r: Retrieve, caller: String, store: ObjectStore?) throws -> Retrieve.Response {
        guard let data = store?.get(caller: caller, key: r.key) else { throw QueryError(.notFound, "no object \(r.key.prefix(64))") }
        return .init(payload: data)
    }

    // MARK: Validator side

    /// What a validator keeps of an object it stored: not the bytes, only the commitment.
    /// Saved with the root in hex.
    public struct Commitment: Sendable, Equatable, Codable {
        public var key: String
        public var root: [UInt8]
        public var size: Int
        public var chunks: Int { MerkleTree.chunkCount(length: self.size, size: Storage.chunkSize) }

        public init(key: String, root: [UInt8], size: Int) {
            self.key = key
            self.root = root
            self.size = size
        }

        enum CodingKeys: String, CodingKey { case key, root, size }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.key = try c.decode(String.self, forKey: .key)
            let hex = try c.decode(String.self, forKey: .root)
            guard hex.utf8.count == 64, let root = Hex.decode(hex) else {
                throw DecodingError.dataCorruptedError(forKey: .root, in: c, debugDescription: "a root is 64 hex digits")
            }
            self.root = root
            self.size = try c.decode(Int.self, forKey: .size)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.key, forKey: .key)
            try c.encode(Hex.encode(self.root), forKey: .root)
            try c.encode(self.size, forKey: .size)
        }

        /// Whether a validator could have recorded it: a key a miner accepts, a 32-byte root,
        /// a size the market stores.
        public var isValid: Bool { Storage.isValidKey(self.key) && self.root.count == 32 && (1...Storage.maxObject).contains(self.size) }
    }

    /// Whether a challenge answer proves chunk `index` of `c`: the chunk has the right length
    /// and its Merkle path leads to the committed root.
    public static func verify(_ r: Challenge.Response, index: Int, of c: Commitment) -> Bool {
        guard index >= 0, index < c.chunks, r.siblings.count <= 64 else { return false }
        let expectedLength = index == c.chunks - 1 ? c.size - index * chunkSize : chunkSize
        guard r.payload.count == expectedLength else { return false }
        let siblings = r.siblings.compactMap { Hex.decode($0) }
        guard siblings.count == r.siblings.count else { return false }
        return MerkleTree.verify(chunk: Array(r.payload), index: index, count: c.chunks, siblings: siblings, root: c.root)
    }

    /// A validator's commitments per miner and the miners' challenge records. Bounded:
    /// ``perMiner`` commitments per miner (the oldest forgotten first). Saved across restarts
    /// (``LedgerFile``), so data handed out before a restart is still challenged after it.
    public struct Ledger: Sendable, Codable, Equatable {
        public var perMiner: Int
        /// Weight of the newest challenge in a miner's pass rate.
        public var alpha: Double
        struct Miner: Sendable, Codable, Equatable {
            var hotkey: [UInt8]
            var commitments: [Commitment] = []
            var bytes = 0
            var passRate = 0.0
            var challenged = 0
        }
        var miners: [UInt16: Miner] = [:]

        public init(perMiner: Int = 4096, alpha: Double = 0.1) {
            self.perMiner = perMiner
            self.alpha = alpha
        }

        mutating func entry(_ uid: UInt16, _ hotkey: [UInt8]) -> Miner {
            if let m = self.miners[uid], m.hotkey == hotkey { return m }
            return Miner(hotkey: hotkey)  // a new hotkey on the uid starts over
        }

        /// Records an object the miner committed to (after its root was checked).
        public mutating func stored(uid: UInt16, hotkey: [UInt8], _ c: Commitment) {
            var m = self.entry(uid, hotkey)
            m.commitments.append(c)
            m.bytes += c.size
            if m.commitments.count > self.perMiner {
                m.bytes -= m.commitments.removeFirst().size
            }
            self.miners[uid] = m
        }

        /// A challenge on a random chunk of a random object the miner holds.
        public func challenge<R: RandomNumberGenerator>(uid: UInt16, hotkey: [UInt8], using rng: inout R) -> (Challenge, Commitment)? {
            guard let m = self.miners[uid], m.hotkey == hotkey, let c = m.commitments.randomElement(using: &rng) else { return nil }
            return (Challenge(key: c.key, index: Int.random(in: 0..<c.chunks, using: &rng)), c)
        }

        /// Records a challenge's outcome.
        public mutating func record(uid: UInt16, hotkey: [UInt8], passed: Bool) {
            var m = self.entry(uid, hotkey)
            m.passRate = m.challenged == 0 ? (passed ? 1 : 0) : m.passRate * (1 - self.alpha) + (passed ? self.alpha : 0)
            m.challenged += 1
            self.miners[uid] = m
        }

        /// Whether the ledger is one a validator could have written (a restored file is
        /// checked with this): bounds in range, every miner's 32-byte hotkey, at most
        /// ``perMiner`` valid commitments whose sizes add up to its bytes, a pass rate in [0, 1].
        public var isValid: Bool {
            guard (1...1_000_000).contains(self.perMiner), self.alpha > 0, self.alpha <= 1, self.miners.count <= 65_536 else { return false }
            return self.miners.values.allSatisfy { m in
                m.hotkey.count == 32 && m.commitments.count <= self.perMiner && m.commitments.allSatisfy(\.isValid)
                    && m.bytes == m.commitments.reduce(0) { $0 + $1.size } && m.passRate >= 0 && m.passRate <= 1 && m.challenged >= 0
            }
        }

        /// Commitments recorded for `uid` (held by `hotkey`).
        public func commitments(uid: UInt16, hotkey: [UInt8]) -> [Commitment] {
            guard let m = self.miners[uid], m.hotkey == hotkey else { return [] }
            return m.commitments
        }

        /// Commitments recorded, all miners together.
        public var commitmentCount: Int { self.miners.values.reduce(0) { $0 + $1.commitments.count } }

        /// Bytes the miner has committed to with this validator.
        public func bytes(uid: UInt16) -> Int { self.miners[uid]?.bytes ?? 0 }
        public func passRate(uid: UInt16) -> Double { self.miners[uid]?.passRate ?? 0 }

        /// Scores of the miners with commitments: proven capacity relative to the largest,
        /// times the pass rate to the fourth power (a miner that lost a tenth of its data keeps
        /// about two thirds of its score; one that lost half keeps a sixteenth).
        public func scores() -> [UInt16: Double] {
            let largest = self.miners.values.map { $0.bytes }.max() ?? 0
            guard largest > 0 else { return [:] }
            var out: [UInt16: Double] = [:]
            for (uid, m) in self.miners where m.challenged > 0 {
                out[uid] = Double(m.bytes) / Double(largest) * pow(m.passRate, 4)
            }
            return out
        }
    }

    /// A storage validator's ledger as saved: for one subnet and validator hotkey (hex).
    /// Written atomically after every change; a file for another subnet or hotkey, another
    /// version, or one that fails ``Ledger/isValid`` is ignored (the validator starts over).
    public struct LedgerFile: Codable, Sendable, Equatable {
        public static let version = 1
        /// Largest file read.
        public static let maxFileBytes = 256 << 20
        public var version = LedgerFile.version
        public var netuid: UInt16
        public var hotkey: String
        public var ledger: Ledger

        public init(netuid: UInt16, hotkey: String, ledger: Ledger) {
            self.netuid = netuid
            self.hotkey = hotkey
            self.ledger = ledger
        }

        public func save(to path: String) throws { try StateFile.save(self, to: path) }

        /// The ledger saved at `path` for this subnet and hotkey, or nil.
        public static func load(from path: String, netuid: UInt16, hotkey: String) -> Ledger? {
            guard let f = StateFile.load(LedgerFile.self, from: path, limit: maxFileBytes),
                  f.version == version, f.netuid == netuid, f.hotkey == hotkey, f.ledger.isValid else { return nil }
            return f.ledger
        }
    }

    /// A storage validator's ledger, shared by a round's concurrent miner tasks, restored from
    /// `path` when it holds one for this subnet and hotkey and saved there by ``save()``.
    public final class LedgerStore: @unchecked Sendable {
        // Safety: every access holds `lock`.
        let lock = NSLock()
        var ledger = Storage.Ledger()
        var fullUntil: [UInt16: Int] = [:]
        let path: String?
        let netuid: UInt16
        let hotkey: String
        /// Whether the ledger came from `path`.
        public let restored: Bool

        public init(path: String?, netuid: UInt16, hotkey: String) {
            self.path = path
            self.netuid = netuid
            self.hotkey = hotkey
            let saved = path.flatMap { Storage.LedgerFile.load(from: $0, netuid: netuid, hotkey: hotkey) }
            self.restored = saved != nil
            if let saved { self.ledger = saved }
        }

        public var objectCount: Int { self.lock.withLock { self.ledger.commitmentCount } }
        /// A copy of the ledger now.
        public var snapshot: Storage.Ledger { self.lock.withLock { self.ledger } }

        /// Writes the ledger atomically (nothing without a path).
        public func save() throws {
            guard let path = self.path else { return }
            let file = self.lock.withLock { Storage.LedgerFile(netuid: self.netuid, hotkey: self.hotkey, ledger: self.ledger) }
            try file.save(to: path)
        }

        public func stored(uid: UInt16, hotkey: [UInt8], _ c: Storage.Commitment) { self.lock.withLock { self.ledger.stored(uid: uid, hotkey: hotkey, c) } }
        public func record(uid: UInt16, hotkey: [UInt8], passed: Bool) { self.lock.withLock { self.ledger.record(uid: uid, hotkey: hotkey, passed: passed) } }
        public func scores() -> [UInt16: Double] { self.lock.withLock { self.ledger.scores() } }
        public func full(uid: UInt16, step: Int) { self.lock.withLock { self.fullUntil[uid] = step + 100 } }
        public func isFull(uid: UInt16, step: Int) -> Bool { self.lock.withLock { (self.fullUntil[uid] ?? 0) > step } }

        public func challenge(uid: UInt16, hotkey: [UInt8], using rng: inout SystemRandomNumberGenerator) -> (Storage.Challenge, Storage.Commitment)? {
            self.lock.withLock { self.ledger.challenge(uid: uid, hotkey: hotkey, using: &rng) }
        }
    }
}
