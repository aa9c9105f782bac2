import Foundation
import MeshCodec
import MeshKeystore

/// What a validator keeps across restarts: its moving averages (with the hotkey each score
/// belongs to), a weight commit waiting for its reveal, and how many times it set weights.
/// Saved as JSON, atomically, after every change; a file for another subnet or hotkey, or one
/// that does not parse, is ignored (the validator starts over) rather than trusted.
public struct ValidatorState: Codable, Sendable, Equatable {
    public static let version = 1
    /// Largest state file read.
    public static let maxFileBytes = 16 << 20

    /// A weight commit waiting for its epoch to pass.
    public struct PendingReveal: Codable, Sendable, Equatable {
        public var uids: [UInt16]
        public var values: [UInt16]
        public var salt: [UInt8]
        public var epoch: UInt64
    }

    public var version = ValidatorState.version
    public var netuid: UInt16
    /// The validator's hotkey (hex).
    public var hotkey: String
    public var book: ScoreBook
    public var pendingReveal: PendingReveal?
    public var weightsSet: Int

    public init(netuid: UInt16, hotkey: String, book: ScoreBook, pendingReveal: PendingReveal? = nil, weightsSet: Int = 0) {
        self.netuid = netuid
        self.hotkey = hotkey
        self.book = book
        self.pendingReveal = pendingReveal
        self.weightsSet = weightsSet
    }

    /// Writes the state to `path` atomically (a crash leaves the old file or the new one).
    public func save(to path: String) throws { try StateFile.save(self, to: path) }

    /// The state saved at `path` for this subnet and hotkey; nil when there is none or it is
    /// unusable (another subnet or hotkey, another version, malformed, out of range).
    public static func load(from path: String, netuid: UInt16, hotkey: String) -> ValidatorState? {
        guard let s = StateFile.load(ValidatorState.self, from: path, limit: maxFileBytes),
              s.version == version, s.netuid == netuid, s.hotkey == hotkey, s.book.isValid,
              s.pendingReveal.map({ $0.uids.count == $0.values.count && $0.salt.count <= 64 }) ?? true else { return nil }
        return s
    }
}

/// The JSON files subnet processes keep their state in (a validator's moving averages, a
/// storage validator's commitments, the gateway's object index).
public enum StateFile {
    /// Writes `value` as JSON to `path` atomically (a crash leaves the old file or the new
    /// one), readable by the owner only, creating the folder.
    public static func save<T: Encodable>(_ value: T, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try AtomicFile.write(try SynapseCoding.encodeJSON(value), to: path, mode: 0o600, overwrite: true)
    }

    /// The value saved at `path`; nil when there is none, it is larger than `limit` bytes or
    /// does not parse. Callers still check what it holds.
    public static func load<T: Decodable>(_ type: T.Type, from path: String, limit: Int) -> T? {
        guard FileManager.default.fileExists(atPath: path), let bytes = try? AtomicFile.read(path, limit: limit) else { return nil }
        return try? SynapseCoding.decodeJSON(type, bytes)
    }
}
