import MeshCodec
import MeshCrypto

/// A UDP/TCP endpoint as discovery sees it: IPv4 (4 bytes) or IPv6 (16 bytes) and a port.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var ip: [UInt8]
    public var port: UInt16

    public init(ip: [UInt8], port: UInt16) {
        self.ip = ip
        self.port = port
    }

    public var description: String {
        if self.ip.count == 4 { return self.ip.map(String.init).joined(separator: ".") + ":\(self.port)" }
        return "[" + stride(from: 0, to: self.ip.count, by: 2).map { String(Int(self.ip[$0]) << 8 | Int(self.ip[$0 + 1]), radix: 16) }.joined(separator: ":") + "]:\(self.port)"
    }

    /// Addresses exempt from the per-/24 table limits (loopback and private ranges, as geth does).
    public var isLocal: Bool {
        guard self.ip.count == 4 else { return self.ip == [UInt8](repeating: 0, count: 15) + [1] }
        return self.ip[0] == 127 || self.ip[0] == 10 || (self.ip[0] == 172 && self.ip[1] & 0xf0 == 16) || (self.ip[0] == 192 && self.ip[1] == 168)
    }

    /// Whether this is a loopback address.
    public var isLoopback: Bool { self.ip.count == 4 ? self.ip[0] == 127 : self.ip == [UInt8](repeating: 0, count: 15) + [1] }

    /// Addresses no node can be reached at: unspecified, multicast, broadcast, port 0.
    public var isUnusable: Bool {
        if self.port == 0 || self.ip.allSatisfy({ $0 == 0 }) { return true }
        if self.ip.count == 4 { return self.ip[0] >= 224 }  // multicast, reserved, broadcast
        return self.ip.count != 16 || self.ip[0] == 0xff  // IPv6 multicast
    }

    /// Whether a record with this address may come from a node at `sender` (a NODES answer):
    /// a loopback address only from loopback, a private one only from a private or loopback
    /// sender — a public node must not make us send packets into our own network.
    public func canBeRelayed(by sender: Endpoint) -> Bool {
        if self.isUnusable { return false }
        if self.isLoopback { return sender.isLoopback }
        if self.isLocal { return sender.isLocal }
        return true
    }

    /// The /24 (IPv4) or /48 (IPv6) network, for diversity limits.
    public var subnet: [UInt8] { self.ip.count == 4 ? Array(self.ip.prefix(3)) : Array(self.ip.prefix(6)) }
}

/// A signed node record: who a node is, where to reach it, what it does. A newer sequence
/// number replaces an older record; records are at most ``maxSize`` bytes and must carry a
/// valid signature by their node id (wire format: docs/discovery.md).
public struct NodeRecord: Equatable, Hashable, Sendable, BinaryCodable {
    public static let maxSize = 300
    public static let maxNetuids = 16
    static let domain = Array("tensormesh-record/1:".utf8)

    public var seq: UInt64
    public var nodeId: Ed25519.PublicKey
    /// Empty when the node does not know its public address.
    public var ip: [UInt8]
    public var tcpPort: UInt16
    public var udpPort: UInt16
    /// NodeRoles bits: validator 1, full 2, miner 4, subnet validator 8, light 16.
    public var roles: UInt8
    /// Subnets served (miners) or validated.
    public var netuids: [UInt16]
    /// The chain the node follows; records of other chains are never kept.
    public var genesis: [UInt8]
    public var signature: Ed25519.Signature

    /// Builds and signs a record.
    public init(key: Ed25519.PrivateKey, seq: UInt64, ip: [UInt8], tcpPort: UInt16, udpPort: UInt16, roles: UInt8,
                netuids: [UInt16] = [], genesis: [UInt8]) {
        self.seq = seq
        self.nodeId = key.publicKey
        self.ip = ip
        self.tcpPort = tcpPort
        self.udpPort = udpPort
        self.roles = roles
        self.netuids = Array(netuids.prefix(Self.maxNetuids))
        self.genesis = genesis
        self.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 0, count: 64))
        self.signature = key.sign(self.signingBytes)
    }

    var signingBytes: [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.raw(Self.domain)
        self.encodeFields(to: &w)
        return w.bytes
    }

    public var hasValidSignature: Bool { self.nodeId.isValidSignature(self.signature, for: self.signingBytes) }

    /// The UDP endpoint, when the record has an address.
    public var udpEndpoint: Endpoint? { self.ip.isEmpty ? nil : Endpoint(ip: self.ip, port: self.udpPort) }
    public var tcpEndpoint: Endpoint? { self.ip.isEmpty ? nil : Endpoint(ip: self.ip, port: self.tcpPort) }

    func encodeFields(to w: inout ByteWriter) {
        w.u64(self.seq)
        self.nodeId.encode(to: &w)
        w.bytes(self.ip)
        w.u16(self.tcpPort)
        w.u16(self.udpPort)
        w.u8(self.roles)
        w.list(self.netuids) { w, n in w.u16(n) }
        w.raw(self.genesis)
    }

    public func encode(to w: inout ByteWriter) {
        self.encodeFields(to: &w)
        self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let start = r.remaining
        self.seq = try r.u64()
        self.nodeId = try Ed25519.PublicKey(from: &r)
        self.ip = try r.bytes(field: "ip", limit: 16)
        guard self.ip.isEmpty || self.ip.count == 4 || self.ip.count == 16 else { throw .invalidValue(field: "ip", reason: "\(self.ip.count) bytes") }
        self.tcpPort = try r.u16()
        self.udpPort = try r.u16()
        self.roles = try r.u8()
        self.netuids = try r.list(field: "netuids", limit: Self.maxNetuids, minElementSize: 2) { (r: inout ByteReader) throws(CodecError) in try r.u16() }
        self.genesis = try r.raw(32)
        self.signature = try Ed25519.Signature(from: &r)
        guard start - r.remaining <= Self.maxSize else { throw .lengthExceedsLimit(field: "record", length: UInt64(start - r.remaining), limit: Self.maxSize) }
    }

    public static func == (a: NodeRecord, b: NodeRecord) -> Bool { a.encoded == b.encoded }
    public func hash(into h: inout Hasher) { h.combine(self.nodeId); h.combine(self.seq) }
}

/// The XOR metric of Kademlia over node ids.
public enum Distance {
    /// log2 of the XOR distance: 0 for the same id, 1…256 otherwise.
    public static func log2(_ a: Ed25519.PublicKey, _ b: Ed25519.PublicKey) -> Int {
        for i in 0..<32 {
            let x = a.bytes[i] ^ b.bytes[i]
            if x != 0 { return (31 - i) * 8 + (8 - x.leadingZeroBitCount) }
        }
        return 0
    }

    /// The XOR distance of `a` and `b`, big-endian.
    public static func xor(_ a: Ed25519.PublicKey, _ b: Ed25519.PublicKey) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 { out[i] = a.bytes[i] ^ b.bytes[i] }
        return out
    }

    /// The buckets of `peer`'s table (log2 distances from `peer`) worth asking for the nodes
    /// closest to `target`, nearest region first, at most `limit`.
    ///
    /// Bucket j of `peer` holds the ids whose XOR with `peer` has its top bit at j − 1; their
    /// distances to `target` share every bit above j − 1 with the peer's own distance x, have
    /// bit j − 1 flipped, and anything below. So each bucket covers one interval of distances
    /// to the target, the buckets' intervals are disjoint, and sorting them by their lower end
    /// orders them by how close to the target their members can be. Asked are the buckets
    /// whose interval starts below `horizon` (the distance of the k-th closest candidate so
    /// far; nil: no bound), skipping buckets whose interval is under 1/512 of the horizon
    /// (they are expected to be empty where k nodes lie below the horizon) and buckets below
    /// `floor` (expected to be empty in a network of the size we estimate).
    public static func bucketsToAsk(peer: Ed25519.PublicKey, target: Ed25519.PublicKey, horizon: [UInt8]?, floor: Int = 1, limit: Int) -> [UInt16] {
        let x = Self.xor(peer, target)
        // The scale below which buckets are too small to matter: the horizon's top bit, or
        // without one, the peer's own distance (what is closer than the peer comes first).
        let scale = Self.topBit(horizon ?? x)
        var picks: [(low: [UInt8], bucket: Int)] = []
        for j in stride(from: 256, through: max(1, floor, scale - 8), by: -1) {
            // Lower end of bucket j's interval: x's bits ≥ j, bit j − 1 flipped, zeros below.
            var low = x
            let bit = j - 1
            let byte = 31 - bit / 8, mask = UInt8(1 << (bit % 8))
            low[byte] ^= mask
            low[byte] &= ~(mask &- 1)
            for i in (byte + 1)..<32 { low[i] = 0 }
            if let h = horizon, !low.lexicographicallyPrecedes(h) { continue }
            picks.append((low, j))
        }
        picks.sort { $0.low.lexicographicallyPrecedes($1.low) }
        return picks.prefix(limit).map { UInt16($0.bucket) }
    }

    /// 1-based position of the highest set bit (0 for all zeros): log2 of a distance.
    static func topBit(_ v: [UInt8]) -> Int {
        for i in 0..<v.count where v[i] != 0 { return (v.count - 1 - i) * 8 + (8 - v[i].leadingZeroBitCount) }
        return 0
    }

    /// Whether `a` is closer to `target` than `b` is.
    public static func closer(_ a: Ed25519.PublicKey, _ b: Ed25519.PublicKey, to target: Ed25519.PublicKey) -> Bool {
        for i in 0..<32 {
            let da = a.bytes[i] ^ target.bytes[i], db = b.bytes[i] ^ target.bytes[i]
            if da != db { return da < db }
        }
        return false
    }
}
