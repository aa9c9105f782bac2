import MeshCodec
import MeshCrypto

/// A message on a subnet's gossip topic (`subnet/<netuid>`, docs/gossip.md): subnet traffic
/// that is not a transaction — a validator sharing scores, a miner announcing capacity —
/// signed by a hotkey registered on that subnet. Nodes forward only messages whose hotkey
/// holds a uid on the subnet at their best block, and whose timestamp is recent.
public struct SubnetGossipMessage: Equatable, Sendable, BinaryCodable {
    public static let maxPayload = 64 << 10
    public var netuid: UInt16
    public var hotkey: AccountID
    /// Milliseconds since the epoch, by the signer's clock.
    public var timestamp: UInt64
    public var payload: [UInt8]
    public var signature: Ed25519.Signature

    public static func topic(_ netuid: UInt16) -> String { "subnet/\(netuid)" }

    public init(netuid: UInt16, key: Ed25519.PrivateKey, timestamp: UInt64, payload: [UInt8], genesis: Hash32) {
        self.netuid = netuid
        self.hotkey = key.publicKey
        self.timestamp = timestamp
        self.payload = payload
        self.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 0, count: 64))
        self.signature = key.sign(self.signingPayload(genesis: genesis))
    }

    /// What the hotkey signs: a domain tag, the chain, and every field.
    public func signingPayload(genesis: Hash32) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + self.payload.count)
        w.string("tensormesh/subnet-gossip/1")
        w.raw(genesis.bytes)
        w.u16(self.netuid)
        w.u64(self.timestamp)
        w.bytes(self.payload)
        return w.bytes
    }

    public func hasValidSignature(genesis: Hash32) -> Bool {
        self.hotkey.isValidSignature(self.signature, for: self.signingPayload(genesis: genesis))
    }

    public func encode(to w: inout ByteWriter) {
        w.u16(self.netuid)
        self.hotkey.encode(to: &w)
        w.u64(self.timestamp)
        w.bytes(self.payload)
        self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.netuid = try r.u16()
        self.hotkey = try AccountID(from: &r)
        self.timestamp = try r.u64()
        self.payload = try r.bytes(field: "payload", limit: SubnetGossipMessage.maxPayload)
        self.signature = try Ed25519.Signature(from: &r)
    }

    /// Why a message is not forwarded.
    public enum Refusal: Error, Equatable, Sendable {
        case wrongTopic
        case unknownSubnet
        case notRegistered
        case stale(ageMs: Int64)
        case badSignature
    }

    /// Checks the message against the state at the best block and the local clock (±60 s).
    public func check(state: ChainState, genesis: Hash32, topic netuid: UInt16, nowMs: UInt64) -> Refusal? {
        guard self.netuid == netuid else { return .wrongTopic }
        guard let subnet = state.subnets[netuid] else { return .unknownSubnet }
        guard subnet.uid(of: self.hotkey) != nil else { return .notRegistered }
        let age = Int64(bitPattern: nowMs &- self.timestamp)
        guard abs(age) <= 60_000 else { return .stale(ageMs: age) }
        guard self.hasValidSignature(genesis: genesis) else { return .badSignature }
        return nil
    }
}
