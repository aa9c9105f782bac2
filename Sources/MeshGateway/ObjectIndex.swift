import Foundation
import MeshSubnet

/// Where the gateway's stored objects are: per caller key name and object key, the Merkle
/// root, the size and the miners (hotkeys) that committed to it. Bounded: ``maxObjects`` in
/// all and ``maxPerKey`` per API key; saved atomically as JSON.
struct ObjectIndex: Codable, Sendable {
    static let maxObjects = 100_000
    static let maxPerKey = 10_000

    struct Record: Codable, Sendable, Equatable {
        var root: String
        var size: Int
        var holders: [String]
    }

    var records: [String: Record] = [:]
    var perKey: [String: Int] = [:]

    static func id(keyName: String, key: String) -> String { keyName + "/" + key }

    func get(keyName: String, key: String) -> Record? { self.records[Self.id(keyName: keyName, key: key)] }

    /// Records an object; false when a bound is reached (an existing object may be replaced).
    mutating func put(keyName: String, key: String, _ r: Record) -> Bool {
        let id = Self.id(keyName: keyName, key: key)
        if self.records[id] == nil {
            guard self.records.count < Self.maxObjects, self.perKey[keyName, default: 0] < Self.maxPerKey else { return false }
            self.perKey[keyName, default: 0] += 1
        }
        self.records[id] = r
        return true
    }

    func save(path: String) throws { try StateFile.save(self, to: path) }

    static func load(path: String) -> ObjectIndex {
        guard let i = StateFile.load(ObjectIndex.self, from: path, limit: 256 << 20), i.records.count <= maxObjects else { return ObjectIndex() }
        return i
    }
}
