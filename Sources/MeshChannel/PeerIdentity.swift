import MeshCodec
import MeshCrypto

/// A node's long-term identity (Ed25519) and the static X25519 key it uses in Noise, bound
/// together by a signature (CONTRACT.md, "Secure channel").
public final class NodeIdentity: Sendable {
    /// The signed prefix before the static key.
    public static let staticKeyPrefix = Array("tensormesh-static-key:".utf8)

    /// The Ed25519 identity; its public key is the node id.
    public let signingKey: Ed25519.PrivateKey
    /// The Noise static key (may be regenerated per process; it need not be stored).
    public let noiseStatic: X25519.PrivateKey
    /// The 96-byte identity payload: public key, then the signature over prefix ‖ static key.
    public let payload: [UInt8]

    /// Binds `signingKey` to `noiseStatic`. The caller draws the static key (drivers from the
    /// operating system, tests and the simulator from their seed): nothing here draws
    /// randomness of its own.
    public init(signingKey: Ed25519.PrivateKey, noiseStatic: X25519.PrivateKey) {
        self.signingKey = signingKey
        self.noiseStatic = noiseStatic
        let sig = signingKey.sign(NodeIdentity.staticKeyPrefix + noiseStatic.publicKey.bytes)
        self.payload = signingKey.publicKey.bytes + sig.bytes
    }

    /// For tests that forge payloads.
    init(signingKey: Ed25519.PrivateKey, noiseStatic: X25519.PrivateKey, payloadOverride: [UInt8]) {
        self.signingKey = signingKey
        self.noiseStatic = noiseStatic
        self.payload = payloadOverride
    }

    /// The node id.
    public var nodeId: Ed25519.PublicKey { self.signingKey.publicKey }

    /// Verifies a peer's identity payload against the static key the handshake proved.
    /// Bytes after the first 96 are extensions and are ignored.
    public static func verify(payload: [UInt8], remoteStatic: X25519.PublicKey) throws(ChannelError) -> Ed25519.PublicKey {
        guard payload.count >= 96 else { throw .invalidIdentity("payload of \(payload.count) bytes, need 96") }
        let pk = try! Ed25519.PublicKey(bytes: Array(payload[0..<32]))
        let sig = try! Ed25519.Signature(bytes: Array(payload[32..<96]))
        guard pk.isValidSignature(sig, for: staticKeyPrefix + remoteStatic.bytes) else {
            throw .invalidIdentity("signature over the static key does not verify")
        }
        return pk
    }
}
