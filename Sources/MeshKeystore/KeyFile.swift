import Foundation
import MeshCodec
import MeshCrypto

/// The encrypted-at-rest key file format, `tensormesh-key/1`.
///
/// A JSON object (so operators can see what a file is) holding:
/// - `publicKey`: the Ed25519 public key (hex), so tools can show it without a password;
/// - `kdf`: Argon2id with its cost and a random 16-byte salt;
/// - `passwordCheck`: 16 bytes derived from the password, so a wrong password is told apart
///   from a damaged file;
/// - `cipher`: ChaCha20-Poly1305 with a random nonce; `ciphertext`: the 32-byte seed and tag.
///
/// The AEAD's associated data binds every other field, so changing any of them (the public
/// key, the cost, the salt, the nonce) makes the file fail to open as ``KeystoreError/tampered(reason:)``.
public enum KeyFile {
    /// The format identifier written into every file.
    public static let format = "tensormesh-key/1"
    /// Largest key file accepted (a real one is under 1 KiB).
    public static let maximumFileSize = 64 * 1024
    /// The most Argon2 work a key file may ask for, checked before any hashing: 8 passes over
    /// 256 MiB (libsodium's "moderate" preset is 3 × 256 MiB; what `key generate` and
    /// `wallet create` write, ``PasswordHash/Cost/interactive``, is 2 × 64 MiB). A crafted
    /// file cannot make `key inspect`, `run --key` or a relay spend a gigabyte and minutes of
    /// CPU before the password is even checked.
    public static let maximumCost = PasswordHash.Cost(opsLimit: 8, memLimit: 256 << 20)

    /// Whether `cost` is one a key file may carry.
    public static func acceptable(_ cost: PasswordHash.Cost) -> Bool {
        cost.opsLimit >= 1 && cost.opsLimit <= maximumCost.opsLimit
            && cost.memLimit >= PasswordHash.Cost.minimumMemLimit && cost.memLimit <= maximumCost.memLimit
    }

    struct Document: Codable {
        struct KDF: Codable {
            var name: String
            var opsLimit: UInt64
            var memLimit: Int
            var salt: String
        }
        struct Cipher: Codable {
            var name: String
            var nonce: String
        }
        var format: String
        var type: String
        var publicKey: String
        var kdf: KDF
        var passwordCheck: String
        var cipher: Cipher
        var ciphertext: String
    }

    /// Encrypts `key` under `password` and returns the file's bytes.
    public static func seal(
        _ key: Ed25519.PrivateKey, password: SecureBytes, cost: PasswordHash.Cost = .interactive
    ) throws -> [UInt8] {
        // Never write a file this module would refuse to open.
        guard acceptable(cost) else { throw KeystoreError.malformed(reason: "kdf cost above \(maximumCost.opsLimit) passes over \(maximumCost.memLimit >> 20) MiB") }
        let salt = SecureRandom.bytes(PasswordHash.saltByteCount)
        let nonce = SecureRandom.bytes(ChaChaPoly.nonceByteCount)
        let derived = try PasswordHash.argon2id(password: password, salt: salt, cost: cost, length: 64)
        let (encKey, check) = split(derived)
        let ad = associatedData(publicKey: key.publicKey.bytes, cost: cost, salt: salt, nonce: nonce, check: check)
        let seed = key.seed()
        var plaintext = seed.withUnsafeBytes { Array($0) }
        defer { Memory.zero(&plaintext) }
        let ciphertext = try ChaChaPoly(key: encKey).seal(nonce: nonce, ad: ad, plaintext: plaintext)
        let doc = Document(
            format: format, type: "ed25519", publicKey: key.publicKey.hex,
            kdf: .init(name: "argon2id", opsLimit: cost.opsLimit, memLimit: cost.memLimit, salt: Hex.encode(salt)),
            passwordCheck: Hex.encode(check),
            cipher: .init(name: "chacha20-poly1305", nonce: Hex.encode(nonce)),
            ciphertext: Hex.encode(ciphertext))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(doc)) + [0x0a]
    }

    /// An unencrypted key file: the same format and fields a tool reads without a password,
    /// `"encrypted": false` and the 32-byte seed in hex. Hotkeys are written so by default (as
    /// btcli does), so a miner restarts unattended; the file's mode 0600 is its protection.
    struct PlainDocument: Codable {
        var format: String
        var type: String
        var publicKey: String
        var encrypted: Bool
        var seed: String
    }

    /// Writes `key` unencrypted (see ``PlainDocument``).
    public static func sealUnencrypted(_ key: Ed25519.PrivateKey) throws -> [UInt8] {
        var seed = key.seed().withUnsafeBytes { Array($0) }
        defer { Memory.zero(&seed) }
        let doc = PlainDocument(format: format, type: "ed25519", publicKey: key.publicKey.hex, encrypted: false, seed: Hex.encode(seed))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(doc)) + [0x0a]
    }

    /// Whether opening the file takes a password (false for an unencrypted key file).
    public static func isEncrypted(_ bytes: [UInt8]) throws(KeystoreError) -> Bool {
        if try plain(bytes) != nil { return false }
        _ = try parse(bytes)
        return true
    }

    /// The unencrypted document, or nil when the file is an encrypted one.
    private static func plain(_ bytes: [UInt8]) throws(KeystoreError) -> PlainDocument? {
        guard bytes.count <= maximumFileSize, !bytes.isEmpty,
              let doc = try? JSONDecoder().decode(PlainDocument.self, from: Data(bytes)), !doc.encrypted else { return nil }
        guard doc.format == format else { throw .unsupportedFormat(doc.format) }
        guard doc.type == "ed25519" else { throw .malformed(reason: "unknown key type \"\(doc.type)\"") }
        return doc
    }

    private static func openPlain(_ doc: PlainDocument) throws(KeystoreError) -> Ed25519.PrivateKey {
        guard var seed = Hex.decode(doc.seed, count: 32) else { throw .malformed(reason: "seed is not 32 bytes of hex") }
        defer { Memory.zero(&seed) }
        let key: Ed25519.PrivateKey
        do { key = try Ed25519.PrivateKey(seedBytes: seed) } catch { throw .malformed(reason: "seed is not 32 bytes") }
        guard key.publicKey.hex == doc.publicKey.lowercased() else { throw .tampered(reason: "public key does not match the seed") }
        return key
    }

    /// Reads the public key without the password (no authenticity is implied).
    public static func publicKey(of bytes: [UInt8]) throws(KeystoreError) -> Ed25519.PublicKey {
        if let p = try plain(bytes) {
            guard let pk = Ed25519.PublicKey(hex: p.publicKey) else { throw .malformed(reason: "publicKey is not 32 bytes of hex") }
            return pk
        }
        let doc = try parse(bytes)
        guard let pk = Ed25519.PublicKey(hex: doc.publicKey) else { throw .malformed(reason: "publicKey is not 32 bytes of hex") }
        return pk
    }

    /// Decrypts a key file. Distinguishes a wrong password from a damaged or altered file. An
    /// unencrypted file opens whatever the password.
    public static func open(_ bytes: [UInt8], password: SecureBytes) throws(KeystoreError) -> Ed25519.PrivateKey {
        if let p = try plain(bytes) { return try openPlain(p) }
        let doc = try parse(bytes)
        guard doc.type == "ed25519" else { throw .malformed(reason: "unknown key type \"\(doc.type)\"") }
        guard doc.kdf.name == "argon2id" else { throw .malformed(reason: "unknown kdf \"\(doc.kdf.name)\"") }
        guard doc.cipher.name == "chacha20-poly1305" else { throw .malformed(reason: "unknown cipher \"\(doc.cipher.name)\"") }
        guard let pk = Hex.decode(doc.publicKey, count: 32) else { throw .malformed(reason: "publicKey is not 32 bytes of hex") }
        guard let salt = Hex.decode(doc.kdf.salt, count: PasswordHash.saltByteCount) else { throw .malformed(reason: "kdf.salt is not 16 bytes of hex") }
        guard let nonce = Hex.decode(doc.cipher.nonce, count: ChaChaPoly.nonceByteCount) else { throw .malformed(reason: "cipher.nonce is not 12 bytes of hex") }
        guard let check = Hex.decode(doc.passwordCheck, count: 16) else { throw .malformed(reason: "passwordCheck is not 16 bytes of hex") }
        guard let ciphertext = Hex.decode(doc.ciphertext, count: 32 + ChaChaPoly.tagByteCount) else {
            throw .malformed(reason: "ciphertext is not 48 bytes of hex (truncated?)")
        }
        let cost = PasswordHash.Cost(opsLimit: doc.kdf.opsLimit, memLimit: doc.kdf.memLimit)
        guard acceptable(cost) else { throw .malformed(reason: "kdf cost out of the accepted range") }

        let derived: SecureBytes
        do { derived = try PasswordHash.argon2id(password: password, salt: salt, cost: cost, length: 64) } catch {
            throw .malformed(reason: "password hashing failed: \(error)")
        }
        let (encKey, expectedCheck) = split(derived)
        guard ConstantTime.equals(check, expectedCheck) else { throw .wrongPassword }
        let ad = associatedData(publicKey: pk, cost: cost, salt: salt, nonce: nonce, check: check)
        var seed: [UInt8]
        do {
            seed = try ChaChaPoly(key: encKey).open(nonce: nonce, ad: ad, ciphertext: ciphertext)
        } catch {
            throw .tampered(reason: "the encrypted key or its header does not authenticate")
        }
        defer { Memory.zero(&seed) }
        let key: Ed25519.PrivateKey
        do { key = try Ed25519.PrivateKey(seedBytes: seed) } catch { throw .malformed(reason: "seed is not 32 bytes") }
        guard key.publicKey.bytes == pk else { throw .tampered(reason: "public key does not match the encrypted key") }
        return key
    }

    private static func parse(_ bytes: [UInt8]) throws(KeystoreError) -> Document {
        guard bytes.count <= maximumFileSize else { throw .malformed(reason: "file is \(bytes.count) bytes, larger than any key file") }
        guard !bytes.isEmpty else { throw .malformed(reason: "file is empty") }
        let doc: Document
        do { doc = try JSONDecoder().decode(Document.self, from: Data(bytes)) } catch {
            throw .malformed(reason: "not a complete key file (JSON: \(shortReason(error)))")
        }
        guard doc.format == format else { throw .unsupportedFormat(doc.format) }
        return doc
    }

    private static func shortReason(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field \(key.stringValue)"
        case DecodingError.typeMismatch(_, let ctx): return "wrong type at \(ctx.codingPath.map { $0.stringValue }.joined(separator: "."))"
        case DecodingError.valueNotFound(_, let ctx): return "missing value at \(ctx.codingPath.map { $0.stringValue }.joined(separator: "."))"
        case DecodingError.dataCorrupted: return "syntax error or truncated"
        default: return "unreadable"
        }
    }

    private static func split(_ derived: SecureBytes) -> (SecureBytes, [UInt8]) {
        derived.withUnsafeBytes { d in
            let key = SecureBytes(copying: d[0..<32])
            // The check value is a hash of the second half, so it reveals nothing about the key.
            let check = Array(Blake2b.hash(UnsafeRawBufferPointer(rebasing: d[32..<64]), outputLength: 16))
            return (key, check)
        }
    }

    private static func associatedData(
        publicKey: [UInt8], cost: PasswordHash.Cost, salt: [UInt8], nonce: [UInt8], check: [UInt8]
    ) -> [UInt8] {
        var w = ByteWriter()
        w.string(format)
        w.raw(publicKey)
        w.u64(cost.opsLimit)
        w.u64(UInt64(cost.memLimit))
        w.raw(salt)
        w.raw(nonce)
        w.raw(check)
        return w.bytes
    }
}
