import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

@Suite("LZ4")
struct CompressionTests {
    @Test("round trips", arguments: [0, 1, 100, 4096, 65_536, 1 << 20])
    func roundTrip(size: Int) throws {
        var rng = SeededRNG(seed: UInt64(size))
        // Half-compressible data: runs of repeated bytes mixed with noise.
        var data: [UInt8] = []
        while data.count < size {
            if Bool.random(using: &rng) {
                data += [UInt8](repeating: UInt8.random(in: 0...255, using: &rng), count: Int.random(in: 1...64, using: &rng))
            } else {
                data += rng.bytes(Int.random(in: 1...32, using: &rng))
            }
        }
        data = Array(data.prefix(size))
        let compressed = try LZ4.compress(data)
        #expect(try LZ4.decompress(compressed, originalSize: size, limit: size) == data)
        let sized = try LZ4.compressSized(data)
        #expect(try LZ4.decompressSized(sized, limit: size) == data)
    }

    @Test("incompressible input")
    func incompressible() throws {
        var rng = SeededRNG(seed: 99)
        let data = rng.bytes(100_000)
        let c = try LZ4.compress(data)
        #expect(c.count > data.count - 10)
        #expect(try LZ4.decompress(c, originalSize: data.count, limit: 1 << 20) == data)
    }

    @Test("a decompression bomb is refused before allocation")
    func bomb() throws {
        let zeros = [UInt8](repeating: 0, count: 10 << 20)
        let sized = try LZ4.compressSized(zeros)
        #expect(sized.count < 100_000)
        #expect(throws: CryptoError.decompressedSizeExceedsLimit(declared: 10 << 20, limit: 1 << 20)) {
            try LZ4.decompressSized(sized, limit: 1 << 20)
        }
        // A forged size header claiming a huge output is refused too.
        var forged = ByteWriter()
        forged.varint(UInt64(1) << 62)
        forged.raw([0x10, 0x00])
        #expect(throws: CryptoError.self) { try LZ4.decompressSized(forged.bytes, limit: 1 << 20) }
    }

    @Test("corrupt, truncated and random input give typed errors")
    func garbage() throws {
        var rng = SeededRNG(seed: 7)
        let data = Array(repeating: Array("tensormesh block ".utf8), count: 500).flatMap { $0 }
        let c = try LZ4.compress(data)
        for cut in stride(from: 0, to: c.count, by: max(1, c.count / 50)) {
            #expect(throws: CryptoError.self) { try LZ4.decompress(Array(c.prefix(cut)), originalSize: data.count, limit: data.count) }
        }
        // Wrong declared size.
        #expect(throws: CryptoError.self) { try LZ4.decompress(c, originalSize: data.count - 1, limit: data.count) }
        for _ in 0..<2000 {
            let junk = rng.bytes(Int.random(in: 0...300, using: &rng))
            let claimed = Int.random(in: 0...5000, using: &rng)
            _ = try? LZ4.decompress(junk, originalSize: claimed, limit: 4096)
            _ = try? LZ4.decompressSized(junk, limit: 4096)
        }
    }
}

@Suite("Secrets")
struct SecretTests {
    @Test("constant-time compare")
    func constantTime() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
    }

    @Test("zeroing an array")
    func zeroing() {
        var secret: [UInt8] = [9, 9, 9, 9]
        Memory.zero(&secret)
        #expect(secret == [0, 0, 0, 0])
        var source: [UInt8] = [1, 2, 3]
        let s = SecureBytes(consuming: &source)
        #expect(source == [0, 0, 0])
        s.withUnsafeBytes { #expect(Array($0) == [1, 2, 3]) }
    }

    @Test("random bytes differ")
    func random() {
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
        #expect(SecureRandom.bytes(0).isEmpty)
    }

    @Test("Argon2id is deterministic for a salt and sensitive to the password")
    func argon2() throws {
        let salt = [UInt8](repeating: 1, count: 16)
        let cost = PasswordHash.Cost(opsLimit: 1, memLimit: 8 << 20)
        let a = try PasswordHash.argon2id(password: SecureBytes(copying: Array("pw".utf8)), salt: salt, cost: cost)
        let b = try PasswordHash.argon2id(password: SecureBytes(copying: Array("pw".utf8)), salt: salt, cost: cost)
        let c = try PasswordHash.argon2id(password: SecureBytes(copying: Array("pX".utf8)), salt: salt, cost: cost)
        #expect(a.constantTimeEquals(b))
        #expect(!a.constantTimeEquals(c))
        let empty = try PasswordHash.argon2id(password: SecureBytes(copying: []), salt: salt, cost: cost)
        #expect(empty.count == 32)
        #expect(throws: CryptoError.self) {
            try PasswordHash.argon2id(password: SecureBytes(copying: []), salt: salt, cost: .init(opsLimit: 1, memLimit: 1 << 40))
        }
    }

    @Test("Ed25519 to X25519 conversion agrees on the shared secret")
    func edToCurve() throws {
        let a = Ed25519.PrivateKey()
        let b = Ed25519.PrivateKey()
        let s1 = try a.curve25519PrivateKey().sharedSecret(with: try b.publicKey.curve25519PublicKey())
        let s2 = try b.curve25519PrivateKey().sharedSecret(with: try a.publicKey.curve25519PublicKey())
        #expect(s1.constantTimeEquals(s2))
    }
}
