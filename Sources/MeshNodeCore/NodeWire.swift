import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Stream protocol names spoken over the secure channel (docs/node-protocols.md).
public enum ProtocolName {
    /// Long-lived: finality messages sent to one peer (catch-up, vote requests and their
    /// answers); votes and commits for everyone travel by gossip.
    public static let finality = "/tm/grandpa/1"
    /// Request/response: block ranges and justifications.
    public static let sync = "/tm/sync/1"
    /// Request/response: the peer's peers (for meshprobe).
    public static let peers = "/tm/peers/1"
    /// Request/response: the peer's head (for meshprobe).
    public static let head = "/tm/head/1"
    /// Gossip frames (docs/gossip.md): blocks, transactions and finality votes.
    public static let gossip = "/tm/gossip/1"
    /// Request/response: a block by hash with its ancestors (blocks off the canonical chain,
    /// e.g. forks that finality votes point at).
    public static let ancestry = "/tm/ancestry/1"
    /// Request/response: transactions of a block by position (compact block relay).
    public static let blockTransactions = "/tm/blocktxs/1"
    /// Validator-to-miner queries.
    public static let query = "/tm/query/1"
    /// Every protocol above (the label set of per-protocol metrics).
    public static let all = [finality, sync, peers, head, gossip, ancestry, blockTransactions, query]
}

/// A sync request: blocks from `from` (inclusive), at most `count` (≤ 128).
public struct BlocksRequest: Equatable, Sendable, BinaryCodable {
    public static let maxCount: UInt64 = 128
    public var from: UInt64
    public var count: UInt64

    public init(from: UInt64, count: UInt64) {
        self.from = from
        self.count = count
    }

    public func encode(to w: inout ByteWriter) { w.u8(1); w.u64(self.from); w.u64(self.count) }
    public init(from r: inout ByteReader) throws(CodecError) {
        guard try r.u8() == 1 else { throw .invalidValue(field: "sync request", reason: "unknown kind") }
        self.from = try r.u64()
        self.count = try r.u64()
        guard self.count >= 1 && self.count <= BlocksRequest.maxCount else { throw .invalidValue(field: "count", reason: "1...128") }
        guard self.from <= UInt64.max - self.count else { throw .invalidValue(field: "from", reason: "range ends past 2^64") }
    }
}

/// A request for a block by hash and up to `count` of its ancestors (`/tm/ancestry/1`).
public struct AncestryRequest: Equatable, Sendable, BinaryCodable {
    public static let maxCount: UInt16 = 128
    public var hash: Hash32
    public var count: UInt16

    public init(hash: Hash32, count: UInt16) {
        self.hash = hash
        self.count = count
    }

    public func encode(to w: inout ByteWriter) { self.hash.encode(to: &w); w.u16(self.count) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.hash = try Hash32(from: &r)
        self.count = try r.u16()
        guard self.count >= 1 && self.count <= AncestryRequest.maxCount else { throw .invalidValue(field: "count", reason: "1...128") }
    }
}

/// A sync response: consecutive canonical blocks and the justifications stored for them.
public struct BlocksResponse: Equatable, Sendable, BinaryCodable {
    public var blocks: [Block]
    public var justifications: [(UInt64, [UInt8])]

    public init(blocks: [Block], justifications: [(UInt64, [UInt8])]) {
        self.blocks = blocks
        self.justifications = justifications
    }

    public static func == (a: BlocksResponse, b: BlocksResponse) -> Bool {
        a.blocks == b.blocks && a.justifications.map { $0.0 } == b.justifications.map { $0.0 } && a.justifications.map { $0.1 } == b.justifications.map { $0.1 }
    }

    public func encode(to w: inout ByteWriter) {
        w.list(self.blocks)
        w.list(self.justifications) { w, j in w.u64(j.0); w.bytes(j.1) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.blocks = try r.list(of: Block.self, field: "blocks", limit: Int(BlocksRequest.maxCount), minElementSize: 200)
        self.justifications = try r.list(field: "justifications", limit: Int(BlocksRequest.maxCount), minElementSize: 9) { (r: inout ByteReader) throws(CodecError) in
            (try r.u64(), try r.bytes(field: "justification", limit: 1 << 20))
        }
    }
}

/// A peer as another node describes it (`/tm/peers/1`).
public struct PeerEntry: Equatable, Sendable, BinaryCodable {
    public var nodeId: AccountID
    public var address: String
    public var bestNumber: UInt64
    public var roles: UInt8
    public var inbound: Bool
    /// Application bytes exchanged with this peer, per stream protocol: (protocol, in, out).
    public var traffic: [Traffic]

    public struct Traffic: Equatable, Sendable {
        public var protocolName: String
        public var bytesIn: UInt64
        public var bytesOut: UInt64
        public init(protocolName: String, bytesIn: UInt64, bytesOut: UInt64) {
            self.protocolName = protocolName
            self.bytesIn = bytesIn
            self.bytesOut = bytesOut
        }
    }

    public init(nodeId: AccountID, address: String, bestNumber: UInt64, roles: UInt8, inbound: Bool, traffic: [Traffic] = []) {
        self.nodeId = nodeId
        self.address = address
        self.bestNumber = bestNumber
        self.roles = roles
        self.inbound = inbound
        self.traffic = traffic
    }

    public func encode(to w: inout ByteWriter) {
        self.nodeId.encode(to: &w); w.string(self.address); w.u64(self.bestNumber); w.u8(self.roles); w.bool(self.inbound)
        w.list(self.traffic) { w, t in w.string(t.protocolName); w.u64(t.bytesIn); w.u64(t.bytesOut) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.nodeId = try AccountID(from: &r)
        self.address = try r.string(field: "address", limit: 128)
        self.bestNumber = try r.u64()
        self.roles = try r.u8()
        self.inbound = try r.bool()
        self.traffic = try r.list(field: "traffic", limit: 64, minElementSize: 17) { (r: inout ByteReader) throws(CodecError) in
            Traffic(protocolName: try r.string(field: "protocol", limit: 64), bytesIn: try r.u64(), bytesOut: try r.u64())
        }
    }
}

/// The answer to `/tm/head/1`.
public struct HeadInfo: Equatable, Sendable, BinaryCodable {
    public var best: ChainPointer
    public var finalized: ChainPointer
    public var round: UInt64
    public var setId: UInt64

    public init(best: ChainPointer, finalized: ChainPointer, round: UInt64, setId: UInt64) {
        self.best = best
        self.finalized = finalized
        self.round = round
        self.setId = setId
    }

    public func encode(to w: inout ByteWriter) { self.best.encode(to: &w); self.finalized.encode(to: &w); w.u64(self.round); w.u64(self.setId) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.best = try ChainPointer(from: &r)
        self.finalized = try ChainPointer(from: &r)
        self.round = try r.u64()
        self.setId = try r.u64()
    }
}

/// A node address `NODEID@HOST:PORT` (CONTRACT.md).
public struct NodeAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var nodeId: AccountID
    public var host: String
    public var port: UInt16

    public init(nodeId: AccountID, host: String, port: UInt16) {
        self.nodeId = nodeId
        self.host = host
        self.port = port
    }

    /// Parses `NODEID@HOST:PORT` (IPv6 hosts in brackets).
    public init?(_ text: String) {
        let parts = text.split(separator: "@", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 64, let id = AccountID(hex: String(parts[0])) else { return nil }
        let rest = String(parts[1])
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]), port > 0 else { return nil }
        var host = String(rest[rest.startIndex..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.nodeId = id
        self.host = host
        self.port = port
    }

    public var description: String {
        let h = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.nodeId.hex)@\(h):\(self.port)"
    }
}

/// The finality set the node last enacted (persisted; `import-blocks` reads and writes it too).
package struct FinalitySetInfo: BinaryCodable {
    package var setId: UInt64
    package var authorities: [WeightedAuthority]

    package init(setId: UInt64, authorities: [WeightedAuthority]) {
        self.setId = setId
        self.authorities = authorities
    }

    package func encode(to w: inout ByteWriter) { w.u64(self.setId); w.list(self.authorities) }
    package init(from r: inout ByteReader) throws(CodecError) {
        self.setId = try r.u64()
        self.authorities = try r.list(of: WeightedAuthority.self, limit: 1024, minElementSize: 40)
    }
}

/// The peers answer.
public struct PeerList: BinaryCodable, Sendable, Equatable {
    public var peers: [PeerEntry]
    public init(peers: [PeerEntry]) { self.peers = peers }
    public func encode(to w: inout ByteWriter) { w.list(self.peers) }
    public init(from r: inout ByteReader) throws(CodecError) { self.peers = try r.list(of: PeerEntry.self, limit: 1024, minElementSize: 40) }
}

/// Addresses of peers, persisted across restarts.
struct PeerCache: BinaryCodable {
    var addresses: [NodeAddress]
    init(addresses: [NodeAddress]) { self.addresses = addresses }
    func encode(to w: inout ByteWriter) { w.list(self.addresses) { w, a in w.string(a.description) } }
    init(from r: inout ByteReader) throws(CodecError) {
        self.addresses = try r.list(limit: 4096) { (r: inout ByteReader) throws(CodecError) in
            let s = try r.string(limit: 200)
            guard let a = NodeAddress(s) else { throw .invalidValue(field: "peer", reason: s) }
            return a
        }
    }
}
