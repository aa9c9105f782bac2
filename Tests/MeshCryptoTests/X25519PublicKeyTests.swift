@testable import MeshCrypto
import MeshTestSupport
import Testing

@Suite("X25519 public keys by the Edwards fixed base")
struct X25519PublicKeyTests {
    static func ladder(_ secret: [UInt8]) -> [UInt8] { secret.withUnsafeBytes { X25519.ladderPublicKey(of: $0) } }

    static func fixedBase(_ secret: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        secret.withUnsafeBytes { s in out.withUnsafeMutableBytes { X25519.publicKey(of: s, into: $0) } }
        return out
    }

    @Test("the same public key as the Montgomery ladder, for random scalars (3 seeds)", arguments: [UInt64(1), 2, 3])
    func randomScalars(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        for _ in 0..<2000 {
            let secret = rng.bytes(32)
            let expected = Self.ladder(secret)
            #expect(Self.fixedBase(secret) == expected, "scalar \(secret)")
            #expect((try? X25519.PrivateKey(secretBytes: secret))?.publicKey.bytes == expected)
        }
    }

    @Test("the same public key at the edges: zero (the Edwards path refuses it), all ones, the clamped bits alone, RFC 7748's keys")
    func edgeScalars() {
        var scalars: [[UInt8]] = [
            [UInt8](repeating: 0, count: 32), [UInt8](repeating: 0xff, count: 32),
            [UInt8](repeating: 0, count: 31) + [0x40], [8] + [UInt8](repeating: 0, count: 30) + [0x40],
            [UInt8](repeating: 0x07, count: 1) + [UInt8](repeating: 0, count: 31),
        ]
        for i in 0..<32 {
            var s = [UInt8](repeating: 0, count: 32)
            s[i] = 0x80
            scalars.append(s)
        }
        for s in scalars { #expect(Self.fixedBase(s) == Self.ladder(s), "scalar \(s)") }
    }

    @Test("the field: an inverse times its value is one; the map refuses the identity and a non-canonical y")
    func field() {
        typealias F = X25519.FieldElement
        var rng = SeededRNG(seed: 9)
        for _ in 0..<200 {
            let b = rng.bytes(32)
            let words = (0..<4).map { i in (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[i * 8 + $1]) << (8 * $1) } }
            let x = F(words[0], words[1], words[2], words[3] & 0x7fff_ffff_ffff_ffff).reduced()
            guard x != F(0, 0, 0, 0) else { continue }
            #expect(x.multiplied(by: x.inverse()).reduced() == F(1, 0, 0, 0))
        }
        // p - 1 squared is 1; 2^256 - 1 reduces to 37 (2^256 = 2p + 38).
        let minusOne = F.prime.subtracting(F(1, 0, 0, 0))
        #expect(minusOne.squared().reduced() == F(1, 0, 0, 0))
        #expect(F(.max, .max, .max, .max).reduced() == F(37, 0, 0, 0))
        #expect(X25519.montgomeryU(edwardsY: (1, 0, 0, 0)) == nil)
        #expect(X25519.montgomeryU(edwardsY: (F.prime.w0.littleEndian, .max, .max, F.prime.w3.littleEndian)) == nil)
    }
}
