import Foundation
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshTestSupport
import Testing

@Suite("Key files")
struct KeyFileTests {
    static let cheap = PasswordHash.Cost(opsLimit: 1, memLimit: 8 << 20)
    func pw(_ s: String) -> SecureBytes { SecureBytes(copying: Array(s.utf8)) }

    @Test("seal and open round trip")
    func roundTrip() throws {
        let key = Ed25519.PrivateKey()
        let file = try KeyFile.seal(key, password: pw("correct horse"), cost: Self.cheap)
        let opened = try KeyFile.open(file, password: pw("correct horse"))
        #expect(opened.publicKey == key.publicKey)
        #expect(try KeyFile.publicKey(of: file) == key.publicKey)
        let text = String(decoding: file, as: UTF8.self)
        // The seed never appears in clear.
        let seedHex = key.seed().withUnsafeBytes { Hex.encode(Array($0)) }
        #expect(!text.contains(seedHex))
    }

    @Test("a wrong password is told apart")
    func wrongPassword() throws {
        let file = try KeyFile.seal(Ed25519.PrivateKey(), password: pw("a"), cost: Self.cheap)
        #expect(throws: KeystoreError.wrongPassword) { try KeyFile.open(file, password: pw("b")) }
        #expect(throws: KeystoreError.wrongPassword) { try KeyFile.open(file, password: pw("")) }
    }

    @Test("every truncation is a malformed-file error")
    func truncated() throws {
        let file = try KeyFile.seal(Ed25519.PrivateKey(), password: pw("a"), cost: Self.cheap)
        for cut in stride(from: 0, to: file.count - 2, by: 7) {
            #expect(throws: KeystoreError.self) { try KeyFile.open(Array(file.prefix(cut)), password: pw("a")) }
        }
    }

    @Test("tampering with any field is detected")
    func tampered() throws {
        let key = Ed25519.PrivateKey()
        let file = try KeyFile.seal(key, password: pw("a"), cost: Self.cheap)
        var doc = try JSONSerialization.jsonObject(with: Data(file)) as! [String: Any]

        // Flip a byte of the ciphertext.
        var ct = Hex.decode(doc["ciphertext"] as! String)!
        ct[3] ^= 1
        doc["ciphertext"] = Hex.encode(ct)
        #expect(throws: KeystoreError.tampered(reason: "the encrypted key or its header does not authenticate")) {
            try KeyFile.open(Array(try JSONSerialization.data(withJSONObject: doc)), password: pw("a"))
        }

        // Swap the public key for another one.
        doc = try JSONSerialization.jsonObject(with: Data(file)) as! [String: Any]
        doc["publicKey"] = Ed25519.PrivateKey().publicKey.hex
        #expect(throws: KeystoreError.self) {
            try KeyFile.open(Array(try JSONSerialization.data(withJSONObject: doc)), password: pw("a"))
        }

        // Change the nonce.
        doc = try JSONSerialization.jsonObject(with: Data(file)) as! [String: Any]
        var cipher = doc["cipher"] as! [String: Any]
        cipher["nonce"] = Hex.encode([UInt8](repeating: 0, count: 12))
        doc["cipher"] = cipher
        #expect(throws: KeystoreError.self) {
            try KeyFile.open(Array(try JSONSerialization.data(withJSONObject: doc)), password: pw("a"))
        }

        // A hostile KDF cost is refused without running it.
        doc = try JSONSerialization.jsonObject(with: Data(file)) as! [String: Any]
        var kdf = doc["kdf"] as! [String: Any]
        kdf["memLimit"] = 1 << 40
        doc["kdf"] = kdf
        #expect(throws: KeystoreError.malformed(reason: "kdf cost out of the accepted range")) {
            try KeyFile.open(Array(try JSONSerialization.data(withJSONObject: doc)), password: pw("a"))
        }
    }

    @Test("KDF costs above 8 passes or 256 MiB are refused before hashing; what the tools write opens")
    func costCap() throws {
        let file = try KeyFile.seal(Ed25519.PrivateKey(), password: pw("a"), cost: Self.cheap)
        func withCost(ops: Int, mem: Int) throws -> [UInt8] {
            var doc = try JSONSerialization.jsonObject(with: Data(file)) as! [String: Any]
            var kdf = doc["kdf"] as! [String: Any]
            kdf["opsLimit"] = ops
            kdf["memLimit"] = mem
            doc["kdf"] = kdf
            return Array(try JSONSerialization.data(withJSONObject: doc))
        }
        // Before the cap these ran Argon2 (512 MiB; 9 passes) and then failed on the password.
        let refused = KeystoreError.malformed(reason: "kdf cost out of the accepted range")
        #expect(throws: refused) { try KeyFile.open(try withCost(ops: 1, mem: 512 << 20), password: pw("a")) }
        #expect(throws: refused) { try KeyFile.open(try withCost(ops: 9, mem: 8 << 20), password: pw("a")) }
        #expect(throws: refused) { try KeyFile.open(try withCost(ops: 16, mem: 1 << 30), password: pw("a")) }
        // The presets the tools use are within the cap, and sealing above it is refused.
        #expect(KeyFile.acceptable(.interactive))
        #expect(KeyFile.acceptable(KeyFile.maximumCost))
        let key = Ed25519.PrivateKey()
        #expect(try KeyFile.open(try KeyFile.seal(key, password: pw("b")), password: pw("b")).publicKey == key.publicKey)
        #expect(throws: KeystoreError.self) { try KeyFile.seal(key, password: pw("b"), cost: .init(opsLimit: 9, memLimit: 8 << 20)) }
    }

    @Test("random and bit-flipped files give typed errors")
    func fuzz() throws {
        var rng = SeededRNG(seed: 11)
        let file = try KeyFile.seal(Ed25519.PrivateKey(), password: pw("a"), cost: Self.cheap)
        for _ in 0..<300 {
            var input = file
            let i = Int.random(in: 0..<input.count, using: &rng)
            input[i] ^= UInt8.random(in: 1...255, using: &rng)
            // Typed throws: any failure is a KeystoreError by construction. A flip inside
            // insignificant whitespace may still open the right key.
            _ = try? KeyFile.open(input, password: pw("a"))
        }
        for _ in 0..<300 {
            #expect(throws: KeystoreError.self) { try KeyFile.open(rng.bytes(Int.random(in: 0...400, using: &rng)), password: pw("a")) }
        }
        #expect(throws: KeystoreError.self) { try KeyFile.open([UInt8](repeating: 0x20, count: 100_000), password: pw("a")) }
    }

    @Test("atomic write uses mode 0600 and refuses to overwrite")
    func atomicWrite() throws {
        let dir = TestPaths.temporaryDirectory()
        let path = dir + "/k.json"
        try AtomicFile.write([1, 2, 3], to: path)
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as! NSNumber).intValue == 0o600)
        #expect(throws: KeystoreError.alreadyExists(path: path)) { try AtomicFile.write([4], to: path) }
        try AtomicFile.write([4], to: path, overwrite: true)
        #expect(try AtomicFile.read(path, limit: 10) == [4])
        #expect(throws: KeystoreError.fileNotFound(path: dir + "/missing")) { try AtomicFile.read(dir + "/missing", limit: 10) }
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["k.json"])
        // An entry the existence check cannot see (a dangling symlink, as a file created
        // after the check would be) is not replaced: rename() used to replace it silently.
        let link = dir + "/dangling"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir + "/nowhere/at/all")
        #expect(throws: KeystoreError.alreadyExists(path: link)) { try AtomicFile.write([5], to: link) }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == dir + "/nowhere/at/all")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["dangling", "k.json"])
    }
}
