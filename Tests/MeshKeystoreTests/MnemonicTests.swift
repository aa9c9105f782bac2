import Foundation
import MeshCodec
import MeshCrypto
@testable import MeshKeystore
import MeshTestSupport
import Testing

/// BIP-39 mnemonics, the Ed25519 key a phrase stands for (as Substrate derives it), SS58
/// addresses and unencrypted hotkey files — against published vectors.
@Suite("Mnemonics, SS58 addresses and hotkey files")
struct MnemonicTests {
    @Test("the vendored English wordlist is the BIP's, byte for byte")
    func wordlist() {
        #expect(BIP39English.words.count == 2048)
        let file = Array((BIP39English.words.joined(separator: "\n") + "\n").utf8)
        #expect(Hex.encode(SHA256.hash(file)) == "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda")
    }

    /// Vectors of the BIP-39 reference implementation (entropy, phrase, seed with passphrase "TREZOR").
    static let vectors: [(String, String, String)] = [
        ("00000000000000000000000000000000", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
         "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"),
        ("7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f", "legal winner thank year wave sausage worth useful legal winner thank yellow",
         "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607"),
        ("9e885d952ad362caeb4efe34a8e91bd2", "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
         "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028"),
        ("6610b25967cdcca9d59875f5cb50b0ea75433311869e930b",
         "gravity machine north sort system female filter attitude volume fold club stay feature office ecology stable narrow fog",
         "628c3827a8823298ee685db84f55caa34b5cc195a778e52d45f59bcf75aba68e4d7590e101dc414bc1bbd5737666fbbef35d1f1903953b66624f910feef245ac"),
        ("68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
         "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
         "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440"),
    ]

    @Test("BIP-39 vectors: entropy to phrase, phrase to entropy, phrase to seed", arguments: Self.vectors.indices)
    func bip39(_ i: Int) throws {
        let (entropy, phrase, seed) = Self.vectors[i]
        #expect(Mnemonic.phrase(entropy: hex(entropy)) == phrase)
        #expect(try Mnemonic.entropy(of: phrase) == hex(entropy))
        #expect(try Mnemonic.entropy(of: "  " + phrase.uppercased().replacingOccurrences(of: " ", with: "\n ")) == hex(entropy))
        #expect(Mnemonic.seed(phrase: phrase, passphrase: "TREZOR").withUnsafeBytes { Hex.encode($0) } == seed)
    }

    @Test("a wrong word, a wrong checksum or a wrong count is refused")
    func refusals() {
        #expect(throws: Mnemonic.Failure.checksum) { try Mnemonic.entropy(of: "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon") }
        #expect(throws: Mnemonic.Failure.unknownWord("abandonn")) { try Mnemonic.entropy(of: "abandonn abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about") }
        #expect(throws: Mnemonic.Failure.wordCount(11)) { try Mnemonic.entropy(of: "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about") }
        for n in [12, 15, 18, 21, 24] {
            let p = Mnemonic.generate(words: n)
            #expect(p.split(separator: " ").count == n)
            #expect((try? Mnemonic.entropy(of: p))?.count == n / 3 * 4)
        }
    }

    @Test("the Ed25519 key of a phrase is Substrate's: subkey's Ed25519 key and address of the development phrase")
    func substrateKey() throws {
        let dev = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
        #expect(try Mnemonic.substrateSeed(phrase: dev).withUnsafeBytes { Hex.encode($0) } == "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e")
        let key = try Mnemonic.ed25519Key(phrase: dev)
        #expect(key.publicKey.hex == "345071da55e5dccefaaa440339415ef9f2663338a38f7da0df21be5ab4e055ef")
        #expect(key.publicKey.ss58 == "5DFJF7tY4bpbpcKPJcBTQaKuCDEPCpiz8TRjpmLeTtweqmXL")
    }

    @Test("SS58: known addresses, both ways; a changed character or prefix fails the checksum")
    func ss58() throws {
        let alice = try Ed25519.PublicKey(bytes: hex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"))
        #expect(alice.ss58 == "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")
        #expect(Ed25519.PublicKey(address: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY") == alice)
        #expect(Ed25519.PublicKey(address: " 0x" + alice.hex + "\n") == alice)
        #expect(Ed25519.PublicKey(address: alice.hex) == alice)
        #expect(Ed25519.PublicKey(address: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ") == nil)
        #expect(Ed25519.PublicKey(address: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKut0Y") == nil)  // 0 is not base58
        #expect(Ed25519.PublicKey(address: "") == nil && Ed25519.PublicKey(address: String(repeating: "5", count: 200)) == nil)
        // Two-byte prefixes round-trip too (Polkadot is 0, Kusama 2, a parachain 1284).
        for format: UInt16 in [0, 2, 42, 63, 64, 1284, 16_383] {
            let a = SS58.encode(alice.bytes, format: format)
            #expect(SS58.decode(a)?.format == format && SS58.decode(a)?.key == alice.bytes, "\(format)")
        }
        #expect(SS58.encode(alice.bytes, format: 0) == "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5")
    }

    @Test("a coldkey regenerated from its mnemonic has the same address; hotkeys are unencrypted unless asked")
    func wallet() throws {
        let root = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cheap = PasswordHash.Cost(opsLimit: 1, memLimit: 8 << 20)
        let pw = SecureBytes(copying: Array("pw".utf8))
        let w = Wallet(name: "alice", root: root)
        let made = try w.create(hotkey: "miner", password: pw, cost: cheap)
        let phrase = try #require(made.mnemonic)
        #expect(phrase.split(separator: " ").count == 12)
        #expect(try !w.hotkeyIsEncrypted("miner"))
        #expect(try w.hotkey("miner", password: SecureBytes(copying: [UInt8]())).publicKey == made.hotkey)
        let second = try w.create(hotkey: "validator", password: pw, encryptHotkey: true, cost: cheap)
        #expect(second.mnemonic == nil && second.coldkey == made.coldkey)
        #expect(try w.hotkeyIsEncrypted("validator"))
        #expect(throws: KeystoreError.wrongPassword) { try w.hotkey("validator", password: SecureBytes(copying: Array("no".utf8))) }
        // Lost: the coldkey file is gone; the mnemonic brings back the same key.
        try FileManager.default.removeItem(atPath: w.coldkeyPath)
        let again = try w.regenerateColdkey(mnemonic: phrase, password: SecureBytes(copying: Array("new".utf8)), cost: cheap)
        #expect(again == made.coldkey)
        #expect(try w.coldkey(password: SecureBytes(copying: Array("new".utf8))).publicKey == made.coldkey)
        #expect(throws: KeystoreError.self) { try w.regenerateColdkey(mnemonic: phrase, password: pw, cost: cheap) }  // never overwritten unasked
        // An unencrypted file whose public key does not match its seed is refused.
        var doc = String(decoding: try AtomicFile.read(w.hotkeyPath("miner"), limit: 1 << 16), as: UTF8.self)
        doc = doc.replacingOccurrences(of: made.hotkey.hex, with: second.hotkey.hex)
        #expect(throws: KeystoreError.self) { try KeyFile.open(Array(doc.utf8), password: pw) }
    }
}
