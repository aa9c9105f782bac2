import Foundation
import MeshCodec
import MeshCrypto

/// The gateway's API keys, read from a JSON file:
///
///     {"keys": [{"name": "devnet", "key": "tm_…", "ratePerSecond": 10, "burst": 10,
///                "quota": 100000, "quotaWindowSeconds": 86400, "organic": false}]}
///
/// `name` identifies the key in usage and metrics (never the key itself); `quota` requests
/// per window (0: no quota); `organic` lets the key read sampled organic queries (for
/// validators). Keys are looked up by their SHA-256, so a lookup's time does not depend on
/// how much of a guess matches.
public struct APIKeys: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var key: String
        public var ratePerSecond: Double
        public var burst: Double
        public var quota: UInt64
        public var quotaWindowSeconds: UInt64
        public var organic: Bool

        public init(name: String, key: String, ratePerSecond: Double = 10, burst: Double = 10, quota: UInt64 = 0,
                    quotaWindowSeconds: UInt64 = 86_400, organic: Bool = false) {
            self.name = name
            self.key = key
            self.ratePerSecond = ratePerSecond
            self.burst = burst
            self.quota = quota
            self.quotaWindowSeconds = quotaWindowSeconds
            self.organic = organic
        }

        enum CodingKeys: String, CodingKey { case name, key, ratePerSecond, burst, quota, quotaWindowSeconds, organic }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.name = try c.decode(String.self, forKey: .name)
            self.key = try c.decode(String.self, forKey: .key)
            self.ratePerSecond = try c.decodeIfPresent(Double.self, forKey: .ratePerSecond) ?? 10
            self.burst = try c.decodeIfPresent(Double.self, forKey: .burst) ?? max(1, self.ratePerSecond)
            self.quota = try c.decodeIfPresent(UInt64.self, forKey: .quota) ?? 0
            self.quotaWindowSeconds = try c.decodeIfPresent(UInt64.self, forKey: .quotaWindowSeconds) ?? 86_400
            self.organic = try c.decodeIfPresent(Bool.self, forKey: .organic) ?? false
        }
    }

    struct File: Codable { var keys: [Entry] }

    /// Largest keys file read.
    public static let maxFileBytes = 4 << 20

    let byHash: [[UInt8]: Entry]
    public var entries: [Entry] { self.byHash.values.sorted { $0.name < $1.name } }

    public init(_ entries: [Entry]) throws(GatewayError) {
        var d: [[UInt8]: Entry] = [:]
        var names = Set<String>()
        for e in entries {
            guard e.key.utf8.count >= 16, e.key.utf8.count <= 256, e.key.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                throw GatewayError("key \(e.name): a key is 16 to 256 printable ASCII characters")
            }
            guard !e.name.isEmpty, e.name.utf8.count <= 64, e.name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else {
                throw GatewayError("key names are 1 to 64 printable ASCII characters without quotes or backslashes")
            }
            guard e.ratePerSecond.isFinite, e.ratePerSecond > 0, e.ratePerSecond <= 1e6, e.burst.isFinite, e.burst >= 1, e.burst <= 1e6 else {
                throw GatewayError("key \(e.name): ratePerSecond in (0, 1e6], burst in [1, 1e6]")
            }
            guard e.quotaWindowSeconds >= 1, e.quotaWindowSeconds <= 366 * 86_400 else { throw GatewayError("key \(e.name): quotaWindowSeconds in [1, 366 days]") }
            guard names.insert(e.name).inserted else { throw GatewayError("key name \(e.name) appears twice") }
            let h = SHA256.hash(Array(e.key.utf8))
            guard d[h] == nil else { throw GatewayError("key \(e.name) repeats another key") }
            d[h] = e
        }
        self.byHash = d
    }

    /// Reads a keys file.
    public static func load(path: String) throws(GatewayError) -> APIKeys {
        guard let data = FileManager.default.contents(atPath: path) else { throw GatewayError("cannot read the API keys file \(path)") }
        guard data.count <= maxFileBytes else { throw GatewayError("\(path) is larger than \(maxFileBytes) bytes") }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch { throw GatewayError("\(path): \(error)") }
        return try APIKeys(file.keys)
    }

    /// The entry of a presented key.
    public func lookup(_ key: String) -> Entry? {
        guard key.utf8.count <= 256 else { return nil }
        return self.byHash[SHA256.hash(Array(key.utf8))]
    }

    /// The key in an `Authorization: Bearer KEY` header value.
    public static func bearer(_ header: String?) -> String? {
        guard let h = header, h.utf8.count <= 300 else { return nil }
        let parts = h.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}

/// Why the gateway cannot start or go on.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { self.description = d }
}
