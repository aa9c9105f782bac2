import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

@Suite("Known-answer vectors")
struct KnownAnswerTests {
    struct Ed25519Vector: Sendable {
        var seed: String
        var publicKey: String
        var message: String
        var signature: String
    }

    // RFC 8032, section 7.1, tests 1-3.
    static let ed25519Vectors: [Ed25519Vector] = [
        .init(seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
              publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
              message: "",
              signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        .init(seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
              publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
              message: "72",
              signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        .init(seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
              publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
              message: "af82",
              signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test("Ed25519 RFC 8032", arguments: ed25519Vectors)
    func ed25519(_ v: Ed25519Vector) throws {
        let key = try Ed25519.PrivateKey(seedBytes: hex(v.seed))
        #expect(key.publicKey.hex == v.publicKey)
        let sig = key.sign(hex(v.message))
        #expect(Hex.encode(sig.bytes) == v.signature)
        #expect(key.publicKey.isValidSignature(sig, for: hex(v.message)))
        var tampered = hex(v.message)
        tampered.append(0)
        #expect(!key.publicKey.isValidSignature(sig, for: tampered))
    }

    @Test("Ed25519 edge cases give libsodium 1.0.18's answers")
    func ed25519EdgeCases() throws {
        let root = try TestPaths.json("ed25519-edge-cases.json") as! [String: Any]
        let cases = root["cases"] as! [[String: Any]]
        #expect(cases.count >= 12)
        for c in cases {
            let pk = try Ed25519.PublicKey(bytes: hex(c["pub_key"] as! String))
            let sig = try Ed25519.Signature(bytes: hex(c["signature"] as! String))
            let accepted = pk.isValidSignature(sig, for: hex(c["message"] as! String))
            #expect(accepted == (c["libsodium_1_0_18_accepts"] as! Bool), "case \(c["index"]!)")
        }
    }

    @Test("X25519 RFC 7748 section 6.1")
    func x25519() throws {
        let alice = try X25519.PrivateKey(secretBytes: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try X25519.PrivateKey(secretBytes: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(alice.publicKey.bytes == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKey.bytes == hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let s1 = try alice.sharedSecret(with: bob.publicKey)
        let s2 = try bob.sharedSecret(with: alice.publicKey)
        let expected = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        s1.withUnsafeBytes { #expect(Array($0) == expected) }
        #expect(s1.constantTimeEquals(s2))
    }

    @Test("X25519 RFC 7748 section 5.2 scalar multiplication")
    func x25519ScalarMult() throws {
        let k = try X25519.PrivateKey(secretBytes: hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"))
        let u = try X25519.PublicKey(bytes: hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))
        let out = try k.sharedSecret(with: u)
        out.withUnsafeBytes { #expect(Array($0) == hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")) }
    }

    @Test("X25519 rejects a low-order point")
    func x25519LowOrder() throws {
        let k = X25519.PrivateKey()
        let zero = try X25519.PublicKey(bytes: [UInt8](repeating: 0, count: 32))
        #expect(throws: CryptoError.weakSharedSecret) { try k.sharedSecret(with: zero) }
    }

    @Test("ChaCha20-Poly1305 RFC 8439 section 2.8.2")
    func aead() throws {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("070000004041424344454647")
        let ad = hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let expected = hex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
                + "1ae10b594f09e26a7e902ecbd0600691")
        let cipher = try ChaChaPoly(keyBytes: key)
        let sealed = try cipher.seal(nonce: nonce, ad: ad, plaintext: plaintext)
        #expect(sealed == expected)
        #expect(try cipher.open(nonce: nonce, ad: ad, ciphertext: sealed) == plaintext)
        // Reuse of the context for the next call must not carry state over.
        #expect(try cipher.seal(nonce: nonce, ad: ad, plaintext: plaintext) == expected)
    }

    @Test("ChaCha20-Poly1305 sealed in pieces of any length, in place or from another buffer, equals one seal of the whole")
    func aeadPieces() throws {
        let cipher = try ChaChaPoly(keyBytes: [UInt8](repeating: 9, count: 32))
        let nonce = [UInt8](repeating: 3, count: 12)
        var rng = SeededRNG(seed: 21)
        for round in 0..<40 {
            let plaintext = rng.bytes(Int.random(in: 0...5000, using: &rng))
            let whole = try cipher.seal(nonce: nonce, ad: [], plaintext: plaintext)
            // Cut the plaintext at random points; even pieces are encrypted from the plaintext
            // into the output, odd ones copied there first and encrypted in place.
            var cuts = (0..<Int.random(in: 0...6, using: &rng)).map { _ in Int.random(in: 0...plaintext.count, using: &rng) }
            cuts = ([0] + cuts.sorted() + [plaintext.count])
            let o = UnsafeMutableRawBufferPointer.allocate(byteCount: plaintext.count + 16, alignment: 16)
            defer { o.deallocate() }
            let n = UnsafeMutableRawBufferPointer.allocate(byteCount: 12, alignment: 1)
            defer { n.deallocate() }
            n.copyBytes(from: nonce)
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(plaintext.count, 1), alignment: 1)
            defer { p.deallocate() }
            p.copyBytes(from: plaintext)
            try cipher.beginSeal(nonce: UnsafeRawBufferPointer(n))
            for (i, (lo, hi)) in zip(cuts, cuts.dropFirst()).enumerated() {
                if i % 2 == 0 {
                    try cipher.sealUpdate(UnsafeRawBufferPointer(rebasing: p[lo..<hi]), into: o.baseAddress! + lo)
                } else {
                    if hi > lo { (o.baseAddress! + lo).copyMemory(from: p.baseAddress! + lo, byteCount: hi - lo) }
                    try cipher.sealUpdate(UnsafeRawBufferPointer(rebasing: o[lo..<hi]), into: o.baseAddress! + lo)
                }
            }
            try cipher.finishSeal(tag: UnsafeMutableRawBufferPointer(rebasing: o[plaintext.count...]))
            let out = Array(o)
            #expect(out == whole, "round \(round), cuts \(cuts)")
        }
    }

    @Test("ChaCha20-Poly1305 rejects every single-bit flip")
    func aeadBitFlips() throws {
        let cipher = try ChaChaPoly(keyBytes: [UInt8](repeating: 7, count: 32))
        let nonce = [UInt8](repeating: 1, count: 12)
        let sealed = try cipher.seal(nonce: nonce, ad: [1, 2, 3], plaintext: Array("hello tensormesh".utf8))
        for bit in 0..<(sealed.count * 8) {
            var bad = sealed
            bad[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: CryptoError.authenticationFailed) { try cipher.open(nonce: nonce, ad: [1, 2, 3], ciphertext: bad) }
        }
        #expect(throws: CryptoError.authenticationFailed) { try cipher.open(nonce: nonce, ad: [1, 2, 4], ciphertext: sealed) }
        #expect(throws: CryptoError.authenticationFailed) { try cipher.open(nonce: nonce, ad: [], ciphertext: Array(sealed.prefix(10))) }
    }

    @Test("SHA-256 FIPS 180 examples", arguments: [
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256(_ input: String, _ digest: String) {
        #expect(Hex.encode(SHA256.hash(Array(input.utf8))) == digest)
        let h = SHA256.Hasher()
        for b in input.utf8 { h.update([b]) }
        #expect(Hex.encode(h.finalize()) == digest)
    }

    @Test("SHA-256 of one million 'a'")
    func sha256Million() {
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(Hex.encode(SHA256.hash(input)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("BLAKE2b-512 RFC 7693 appendix A")
    func blake2b() {
        #expect(Hex.encode(Blake2b.hash(Array("abc".utf8), outputLength: 64))
            == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
    }

    @Test("HMAC-SHA256 RFC 4231 test 1")
    func hmac() {
        let mac = HMACSHA256.authenticate(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))
        #expect(Hex.encode(mac) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        // A key longer than the block is hashed first (RFC 4231 test 6).
        let long = HMACSHA256.authenticate(
            key: [UInt8](repeating: 0xaa, count: 131),
            message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        #expect(Hex.encode(long) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test("HMAC-SHA256 into a buffer with a reused hasher: RFC 4231 tests 1 and 2, message in two parts")
    func hmacIntoBuffer() {
        let hasher = SHA256.Hasher()
        var out = [UInt8](repeating: 0, count: 32)
        func mac(_ key: [UInt8], _ first: [UInt8], _ second: [UInt8]) -> String {
            key.withUnsafeBytes { k in
                first.withUnsafeBytes { a in
                    second.withUnsafeBytes { b in
                        out.withUnsafeMutableBytes { o in HMACSHA256.authenticate(key: k, first: a, second: b, into: o, hasher: hasher) }
                    }
                }
            }
            return Hex.encode(out)
        }
        #expect(mac([UInt8](repeating: 0x0b, count: 20), Array("Hi ".utf8), Array("There".utf8))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        // The same hasher again (it resets after each digest); RFC 4231 test 2.
        #expect(mac(Array("Jefe".utf8), Array("what do ya want ".utf8), Array("for nothing?".utf8))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(mac(Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), [])
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("HKDF RFC 5869 tests 1 and 3")
    func hkdf() {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let prk = HKDF.extract(salt: hex("000102030405060708090a0b0c"), ikm: ikm)
        #expect(Hex.encode(prk) == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        let okm = HKDF.expand(prk: prk, info: hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
        #expect(Hex.encode(okm) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let prk3 = HKDF.extract(salt: [], ikm: ikm)
        #expect(Hex.encode(prk3) == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04")
        #expect(Hex.encode(HKDF.expand(prk: prk3, info: [], length: 42))
            == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }
}
