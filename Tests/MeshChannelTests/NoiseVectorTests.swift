import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

/// The cacophony vectors for Noise_*_25519_ChaChaPoly_SHA256: every handshake and transport
/// message's ciphertext and the handshake hash must match byte for byte.
@Suite("Noise vectors")
struct NoiseVectorTests {
    static let vectors: [JSONValue] = {
        let text = try! String(contentsOfFile: TestPaths.vector("noise-25519-chachapoly-sha256.json"), encoding: .utf8)
        return try! JSONValue.parse(text)["vectors"]!.array!
    }()

    static var names: [String] { vectors.map { $0["protocol_name"]!.string! } }

    @Test("vector", arguments: names)
    func replay(_ name: String) throws {
        let v = Self.vectors.first { $0["protocol_name"]!.string! == name }!
        func key(_ field: String) throws -> X25519.PrivateKey? {
            guard let h = v[field]?.string else { return nil }
            return try X25519.PrivateKey(secretBytes: hex(h))
        }
        func pub(_ field: String) throws -> X25519.PublicKey? {
            guard let h = v[field]?.string else { return nil }
            return try X25519.PublicKey(bytes: hex(h))
        }
        func psks(_ field: String) -> [SecureBytes] {
            (v[field]?.array ?? []).map { SecureBytes(copying: hex($0.string!)) }
        }
        var initiator = try NoiseHandshake(
            protocolName: name, initiator: true, prologue: hex(v["init_prologue"]!.string!),
            staticKey: try key("init_static"), ephemeral: try key("init_ephemeral"),
            remoteStatic: try pub("init_remote_static"), psks: psks("init_psks"))
        var responder = try NoiseHandshake(
            protocolName: name, initiator: false, prologue: hex(v["resp_prologue"]!.string!),
            staticKey: try key("resp_static"), ephemeral: try key("resp_ephemeral"),
            remoteStatic: try pub("resp_remote_static"), psks: psks("resp_psks"))
        let messages = v["messages"]!.array!
        var index = 0
        // Handshake.
        while !initiator.isComplete {
            let m = messages[index]
            let payload = hex(m["payload"]!.string!)
            let senderIsInitiator = index % 2 == 0
            let ct: [UInt8]
            if senderIsInitiator {
                ct = try initiator.writeMessage(payload: payload)
                #expect(try responder.readMessage(ct) == payload)
            } else {
                ct = try responder.writeMessage(payload: payload)
                #expect(try initiator.readMessage(ct) == payload)
            }
            #expect(Hex.encode(ct) == m["ciphertext"]!.string!, "\(name) message \(index)")
            index += 1
        }
        #expect(responder.isComplete)
        #expect(Hex.encode(initiator.handshakeHash) == v["handshake_hash"]!.string!)
        #expect(initiator.handshakeHash == responder.handshakeHash)
        // Transport.
        var (iSend, iRecv) = try initiator.split()
        var (rSend, rRecv) = try responder.split()
        let oneWay = initiator.pattern.isOneWay
        while index < messages.count {
            let m = messages[index]
            let payload = hex(m["payload"]!.string!)
            let fromInitiator = oneWay || index % 2 == 0
            let ct = fromInitiator ? try iSend.encrypt(ad: [], plaintext: payload) : try rSend.encrypt(ad: [], plaintext: payload)
            #expect(Hex.encode(ct) == m["ciphertext"]!.string!, "\(name) transport \(index)")
            let back = fromInitiator ? try rRecv.decrypt(ad: [], ciphertext: ct) : try iRecv.decrypt(ad: [], ciphertext: ct)
            #expect(back == payload)
            index += 1
        }
    }

    @Test("a handshake draws no randomness: without the caller's ephemeral key it refuses to write an e token")
    func noHiddenEphemeral() throws {
        var h = try NoiseHandshake(protocolName: "Noise_XX_25519_ChaChaPoly_SHA256", initiator: true, prologue: [],
                                   staticKey: X25519.PrivateKey(), ephemeral: nil)
        #expect(throws: ChannelError.self) { _ = try h.writeMessage(payload: []) }
    }

    @Test("a copied symmetric state is independent: mixing a key into one leaves the other's chaining key and hash")
    func symmetricStateCopies() {
        var a = NoiseSymmetricState(protocolName: "Noise_XX_25519_ChaChaPoly_SHA256")
        a.mixKey([UInt8](repeating: 7, count: 32))
        let b = a
        let (ck, h) = (b.chainingKey, b.handshakeHash)
        a.mixKey([UInt8](repeating: 9, count: 32))
        a.mixHash([1, 2, 3])
        #expect(b.chainingKey == ck && b.handshakeHash == h)
        #expect(a.chainingKey != ck && a.handshakeHash != h)
        // The copy, given the same inputs, reaches the same state (value semantics).
        var c = b
        c.mixKey([UInt8](repeating: 9, count: 32))
        c.mixHash([1, 2, 3])
        #expect(c.chainingKey == a.chainingKey && c.handshakeHash == a.handshakeHash)
        // Split zeroes the chaining key.
        _ = c.split()
        #expect(c.chainingKey == [UInt8](repeating: 0, count: 32))
    }

    @Test("all 36 vectors are present")
    func count() { #expect(Self.vectors.count == 36) }
}
