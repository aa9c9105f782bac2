import MeshCodec
import MeshCrypto

/// A discovery message, carried encrypted inside a packet.
public enum DiscoveryMessage: Equatable, Sendable {
    case ping(requestId: UInt64, recordSeq: UInt64)
    /// The recipient's record sequence and the address the answerer saw the ping come from.
    case pong(requestId: UInt64, recordSeq: UInt64, observed: Endpoint)
    /// Asks for the answerer's table entries at these log2 distances from the answerer (0: its own record).
    case findNode(requestId: UInt64, distances: [UInt16])
    /// One packet of an answer; `total` packets make the whole answer.
    case nodes(requestId: UInt64, total: UInt8, records: [NodeRecord])

    public static let maxDistances = 8

    var requestId: UInt64 {
        switch self {
        case .ping(let r, _), .pong(let r, _, _), .findNode(let r, _), .nodes(let r, _, _): return r
        }
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 64)
        switch self {
        case .ping(let r, let seq):
            w.u8(1); w.u64(r); w.u64(seq)
        case .pong(let r, let seq, let e):
            w.u8(2); w.u64(r); w.u64(seq); w.bytes(e.ip); w.u16(e.port)
        case .findNode(let r, let d):
            w.u8(3); w.u64(r); w.list(d) { w, x in w.u16(x) }
        case .nodes(let r, let total, let records):
            w.u8(4); w.u64(r); w.u8(total); w.list(records)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> DiscoveryMessage {
        var r = ByteReader(bytes)
        let m: DiscoveryMessage
        switch try r.u8() {
        case 1: m = .ping(requestId: try r.u64(), recordSeq: try r.u64())
        case 2:
            let id = try r.u64(), seq = try r.u64()
            let ip = try r.bytes(field: "ip", limit: 16)
            guard ip.count == 4 || ip.count == 16 else { throw .invalidValue(field: "ip", reason: "\(ip.count) bytes") }
            m = .pong(requestId: id, recordSeq: seq, observed: Endpoint(ip: ip, port: try r.u16()))
        case 3:
            let id = try r.u64()
            let d = try r.list(field: "distances", limit: maxDistances, minElementSize: 2) { (r: inout ByteReader) throws(CodecError) in try r.u16() }
            guard d.allSatisfy({ $0 <= 256 }) else { throw .invalidValue(field: "distances", reason: "above 256") }
            m = .findNode(requestId: id, distances: d)
        case 4:
            let id = try r.u64(), total = try r.u8()
            m = .nodes(requestId: id, total: total, records: try r.list(of: NodeRecord.self, limit: 16, minElementSize: 120))
        case let t: throw .invalidValue(field: "message type", reason: "\(t)")
        }
        try r.finish()
        return m
    }
}

/// The three kinds of packet (discv5's design, our encoding; docs/discovery.md).
public enum PacketFlag: UInt8, Sendable {
    /// An ordinary message under an established session (or random bytes to provoke a challenge).
    case message = 0
    /// The challenge a node sends when it cannot decrypt a packet.
    case whoareyou = 1
    /// The answer to a challenge: identity proof, ephemeral key, optional record, and the message.
    case handshake = 2
}

/// A packet's unmasked header.
struct PacketHeader: Equatable {
    static let protocolId = Array("tmdisc".utf8)
    static let version: UInt8 = 1
    static let fixedSize = 6 + 1 + 1 + 12 + 2

    var flag: PacketFlag
    var nonce: [UInt8]
    var authdata: [UInt8]

    var encoded: [UInt8] {
        var w = ByteWriter(capacity: Self.fixedSize + self.authdata.count)
        w.raw(Self.protocolId)
        w.u8(Self.version)
        w.u8(self.flag.rawValue)
        w.raw(self.nonce)
        w.u16(UInt16(self.authdata.count))
        w.raw(self.authdata)
        return w.bytes
    }
}

/// Packet framing: a random 16-byte IV, then the header masked with ChaCha20 keyed by the
/// recipient's node id (only someone who knows the recipient can even parse the header), then
/// the AEAD-sealed message.
enum PacketCodec {
    static let ivSize = 16
    static let minSize = 62
    static let maxSize = 1280

    static func mask(_ header: [UInt8], recipient: Ed25519.PublicKey, iv: [UInt8]) -> [UInt8] {
        ChaCha20.xor(header, key: recipient.bytes, nonce: Array(iv.prefix(12)))
    }

    /// Parses a packet addressed to `me`: the IV, the unmasked header and the rest (message).
    static func parse(_ packet: [UInt8], me: Ed25519.PublicKey) -> (iv: [UInt8], header: PacketHeader, headerBytes: [UInt8], message: [UInt8])? {
        guard packet.count >= minSize, packet.count <= maxSize else { return nil }
        let iv = Array(packet[0..<ivSize])
        let key = me.bytes
        let nonce = Array(iv.prefix(12))
        // Unmask the fixed part first to learn the authdata size.
        let fixed = ChaCha20.xor(Array(packet[ivSize..<(ivSize + PacketHeader.fixedSize)]), key: key, nonce: nonce)
        guard Array(fixed[0..<6]) == PacketHeader.protocolId, fixed[6] == PacketHeader.version, let flag = PacketFlag(rawValue: fixed[7]) else { return nil }
        let authSize = Int(fixed[20]) << 8 | Int(fixed[21])
        let headerEnd = ivSize + PacketHeader.fixedSize + authSize
        guard authSize <= 512, headerEnd <= packet.count else { return nil }
        let whole = ChaCha20.xor(Array(packet[ivSize..<headerEnd]), key: key, nonce: nonce)
        let header = PacketHeader(flag: flag, nonce: Array(whole[8..<20]), authdata: Array(whole[PacketHeader.fixedSize...]))
        return (iv, header, whole, Array(packet[headerEnd...]))
    }

    /// Builds a packet: iv ‖ masked header ‖ `sealed(ad = iv ‖ header)`.
    static func build(iv: [UInt8], header: PacketHeader, recipient: Ed25519.PublicKey, seal: ([UInt8]) throws -> [UInt8]) rethrows -> [UInt8] {
        let h = header.encoded
        return iv + mask(h, recipient: recipient, iv: iv) + (try seal(iv + h))
    }
}

/// Session keys for one peer at one address.
struct SessionKeys {
    var writeKey: [UInt8]
    var readKey: [UInt8]

    /// Derives both directions' keys from the ECDH secret and the challenge (HKDF-SHA256).
    static func derive(secret: SecureBytes, challenge: [UInt8], initiator: Ed25519.PublicKey, recipient: Ed25519.PublicKey,
                       weAreInitiator: Bool) -> SessionKeys {
        let info = Array("tensormesh discovery key agreement".utf8) + initiator.bytes + recipient.bytes
        let okm = HKDF.deriveKey(salt: challenge, ikm: secret, info: info, length: 64)
        let i = Array(okm[0..<32]), r = Array(okm[32..<64])
        return weAreInitiator ? SessionKeys(writeKey: i, readKey: r) : SessionKeys(writeKey: r, readKey: i)
    }

    /// What the initiator signs to prove its identity for this challenge.
    static func identityProof(challenge: [UInt8], ephemeral: [UInt8], recipient: Ed25519.PublicKey) -> [UInt8] {
        SHA256.hash(Array("tensormesh discovery identity proof".utf8) + challenge + ephemeral + recipient.bytes)
    }
}
