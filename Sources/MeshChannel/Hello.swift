import MeshCodec

/// Node roles, as a bit set in the hello and in node records.
public struct NodeRoles: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let validator = NodeRoles(rawValue: 1)
    public static let full = NodeRoles(rawValue: 2)
    public static let miner = NodeRoles(rawValue: 4)
    public static let subnetValidator = NodeRoles(rawValue: 8)
    public static let light = NodeRoles(rawValue: 16)

    /// Names as RPC and logs show them.
    public var names: [String] {
        var out: [String] = []
        if self.contains(.validator) { out.append("validator") }
        if self.contains(.full) { out.append("full") }
        if self.contains(.miner) { out.append("miner") }
        if self.contains(.subnetValidator) { out.append("subnet-validator") }
        if self.contains(.light) { out.append("light") }
        return out
    }
}

/// A block reference: number and hash.
public struct BlockRef: Equatable, Hashable, Sendable, BinaryCodable, CustomStringConvertible {
    public var number: UInt64
    public var hash: [UInt8]

    public init(number: UInt64, hash: [UInt8]) {
        self.number = number
        self.hash = hash
    }

    public static let zero = BlockRef(number: 0, hash: [UInt8](repeating: 0, count: 32))

    public func encode(to w: inout ByteWriter) {
        w.u64(self.number)
        w.raw(self.hash)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.number = try r.u64()
        self.hash = try r.raw(32)
    }

    public var description: String { "#\(self.number) (\(Hex.encode(self.hash.prefix(4))))" }
}

/// The first transport message each side sends (CONTRACT.md): protocol version, genesis
/// hash, best and finalized head, plus roles, the listening port and a client name.
///
/// Wire form (inside a HELLO frame): version u32, genesis 32 bytes, best BlockRef,
/// finalized BlockRef, roles u8, listenPort u16, agent string (≤ 64 bytes).
public struct Hello: Equatable, Sendable, BinaryCodable {
    /// The protocol version this build speaks.
    public static let currentVersion: UInt32 = 1

    public var version: UInt32
    public var genesisHash: [UInt8]
    public var best: BlockRef
    public var finalized: BlockRef
    public var roles: NodeRoles
    public var listenPort: UInt16
    public var agent: String

    public init(genesisHash: [UInt8], best: BlockRef = .zero, finalized: BlockRef = .zero, roles: NodeRoles = .full,
                listenPort: UInt16 = 0, agent: String = "tensormesh/0.1.0", version: UInt32 = Hello.currentVersion) {
        self.version = version
        self.genesisHash = genesisHash
        self.best = best
        self.finalized = finalized
        self.roles = roles
        self.listenPort = listenPort
        self.agent = agent
    }

    public func encode(to w: inout ByteWriter) {
        w.u32(self.version)
        w.raw(self.genesisHash)
        self.best.encode(to: &w)
        self.finalized.encode(to: &w)
        w.u8(self.roles.rawValue)
        w.u16(self.listenPort)
        w.string(self.agent)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.version = try r.u32()
        self.genesisHash = try r.raw(32)
        self.best = try BlockRef(from: &r)
        self.finalized = try BlockRef(from: &r)
        self.roles = NodeRoles(rawValue: try r.u8())
        self.listenPort = try r.u16()
        self.agent = try r.string(field: "hello.agent", limit: 64)
        // Later versions may append fields; they are ignored.
        try r.skip(r.remaining)
    }
}
