import MeshCodec

/// What a subnet's owner publishes about it (subtensor's `SubnetIdentity`): every field is
/// optional text, bounded in length.
public struct SubnetIdentity: Equatable, Sendable, BinaryCodable {
    public var name: String
    public var repository: String
    public var contact: String
    public var url: String
    public var discord: String
    public var description: String
    public var logoURL: String
    public var additional: String

    /// Longest field, in bytes.
    public static let maxField = 256

    public init(name: String = "", repository: String = "", contact: String = "", url: String = "", discord: String = "",
                description: String = "", logoURL: String = "", additional: String = "") {
        self.name = name
        self.repository = repository
        self.contact = contact
        self.url = url
        self.discord = discord
        self.description = description
        self.logoURL = logoURL
        self.additional = additional
    }

    /// The fields in their canonical order (as `fieldNames`).
    public var fields: [String] { [self.name, self.repository, self.contact, self.url, self.discord, self.description, self.logoURL, self.additional] }
    public static let fieldNames = ["name", "repository", "contact", "url", "discord", "description", "logoUrl", "additional"]

    /// The first field that is too long, if any.
    public var invalidField: String? {
        for (n, f) in zip(Self.fieldNames, self.fields) where f.utf8.count > Self.maxField { return n }
        return nil
    }

    public func encode(to w: inout ByteWriter) { for f in self.fields { w.string(f) } }

    public init(from r: inout ByteReader) throws(CodecError) {
        var f: [String] = []
        for n in Self.fieldNames { f.append(try r.string(field: "identity.\(n)", limit: Self.maxField)) }
        self.init(name: f[0], repository: f[1], contact: f[2], url: f[3], discord: f[4], description: f[5], logoURL: f[6], additional: f[7])
    }
}

/// The alpha tokens' symbols: the root subnet's is τ; subnet N takes the N-th of the Greek,
/// then Hebrew, then Cyrillic lowercase letters (as on Bittensor, where subnet 1 is α).
public enum TokenSymbols {
    /// Every symbol, indexed by netuid; index 0 is the root's.
    public static let all: [String] = {
        var out = ["τ"]
        // Greek α…ω without the final sigma; the letter τ is spelled "t" (τ is the root's).
        for v in 0x03B1...0x03C9 where v != 0x03C2 {
            out.append(v == 0x03C4 ? "t" : String(Character(Unicode.Scalar(v)!)))
        }
        for v in 0x05D0...0x05EA { out.append(String(Character(Unicode.Scalar(v)!))) }
        for v in 0x0430...0x044F { out.append(String(Character(Unicode.Scalar(v)!))) }
        return out
    }()

    /// The default symbol of `netuid`.
    public static func symbol(for netuid: UInt16) -> String {
        Int(netuid) < all.count ? all[Int(netuid)] : "sn\(netuid)"
    }

    /// Whether `symbol` is one a subnet may choose (any but the root's).
    public static func isValid(_ symbol: String) -> Bool { symbol != all[0] && all.contains(symbol) }
}
