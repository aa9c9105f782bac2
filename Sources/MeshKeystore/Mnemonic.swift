import Foundation
import MeshCrypto

/// BIP-39 mnemonics (English wordlist) for coldkeys, and the Ed25519 key a phrase stands for.
///
/// A phrase encodes 128 to 256 bits of entropy and a checksum (the first bits of its SHA-256)
/// in 11-bit words. The key is derived as Substrate derives an Ed25519 key from a phrase
/// (`substrate-bip39`'s `mini_secret_from_entropy`, which `subkey` and Polkadot.js use): the
/// 32-byte seed is the first half of PBKDF2-HMAC-SHA-512 over the phrase's *entropy* with the
/// salt `"mnemonic" + password`, 2,048 rounds. (Standard BIP-39 — ``seed(phrase:passphrase:)``,
/// for wallets of other chains — runs PBKDF2 over the phrase's text instead.) So
/// `subkey inspect --scheme ed25519 "<phrase>"` shows the same public key as
/// `tensormesh wallet regen-coldkey --mnemonic "<phrase>"`.
public enum Mnemonic {
    /// Word counts a phrase may have (128, 160, 192, 224 or 256 bits of entropy).
    public static let wordCounts: Set<Int> = [12, 15, 18, 21, 24]

    /// Why a phrase is refused.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case wordCount(Int)
        case unknownWord(String)
        case checksum

        public var description: String {
            switch self {
            case .wordCount(let n): return "a mnemonic has 12, 15, 18, 21 or 24 words, not \(n)"
            case .unknownWord(let w): return "\"\(w)\" is not a word of the BIP-39 English list"
            case .checksum: return "the mnemonic's checksum does not match (a word is wrong or out of order)"
            }
        }
    }

    static let index: [String: Int] = Dictionary(uniqueKeysWithValues: BIP39English.words.enumerated().map { ($1, $0) })

    /// A new phrase of `words` words from the system's random source.
    public static func generate(words: Int = 12) -> String {
        precondition(Self.wordCounts.contains(words), "a mnemonic has 12, 15, 18, 21 or 24 words")
        var entropy = SecureRandom.bytes(words / 3 * 4)
        defer { Memory.zero(&entropy) }
        return Self.phrase(entropy: entropy)
    }

    /// The phrase for 16, 20, 24, 28 or 32 bytes of entropy.
    public static func phrase(entropy: [UInt8]) -> String {
        precondition([16, 20, 24, 28, 32].contains(entropy.count), "BIP-39 entropy is 16 to 32 bytes in steps of 4")
        let checksumBits = entropy.count / 4
        let bits = entropy + [SHA256.hash(entropy)[0]]
        var words: [String] = []
        for w in 0..<((entropy.count * 8 + checksumBits) / 11) {
            var v = 0
            for k in 0..<11 {
                let bit = w * 11 + k
                v = v << 1 | Int(bits[bit / 8] >> (7 - UInt8(bit % 8)) & 1)
            }
            words.append(BIP39English.words[v])
        }
        return words.joined(separator: " ")
    }

    /// The entropy a phrase encodes (words separated by any whitespace, in any case), after
    /// checking each word and the checksum.
    public static func entropy(of phrase: String) throws(Failure) -> [UInt8] {
        let words = phrase.lowercased().split(whereSeparator: { $0.isWhitespace }).map(String.init)
        guard Self.wordCounts.contains(words.count) else { throw .wordCount(words.count) }
        var indexes: [Int] = []
        for w in words {
            guard let i = Self.index[w] else { throw .unknownWord(w) }
            indexes.append(i)
        }
        let totalBits = words.count * 11
        let checksumBits = totalBits / 33
        var bytes = [UInt8](repeating: 0, count: (totalBits + 7) / 8)
        for (w, i) in indexes.enumerated() {
            for k in 0..<11 where i >> (10 - k) & 1 == 1 {
                let bit = w * 11 + k
                bytes[bit / 8] |= 1 << (7 - UInt8(bit % 8))
            }
        }
        let entropy = Array(bytes[0..<((totalBits - checksumBits) / 8)])
        let expected = SHA256.hash(entropy)[0] >> (8 - UInt8(checksumBits))
        let got = bytes[entropy.count] >> (8 - UInt8(checksumBits))
        guard expected == got else { throw .checksum }
        return entropy
    }

    /// Standard BIP-39 seed (64 bytes): PBKDF2-HMAC-SHA-512 of the phrase (NFKD) with the salt
    /// `"mnemonic" + passphrase` (NFKD), 2,048 rounds. The phrase is not checked.
    public static func seed(phrase: String, passphrase: String = "") -> SecureBytes {
        SHA512.pbkdf2(password: Array(phrase.decomposedStringWithCompatibilityMapping.utf8),
                      salt: Array(("mnemonic" + passphrase).decomposedStringWithCompatibilityMapping.utf8), iterations: 2048, length: 64)
    }

    /// Substrate's seed of a phrase (`mini_secret_from_entropy`): the first 32 bytes of
    /// PBKDF2-HMAC-SHA-512 over the entropy with the salt `"mnemonic" + password`.
    public static func substrateSeed(phrase: String, password: String = "") throws(Failure) -> SecureBytes {
        var entropy = try Self.entropy(of: phrase)
        defer { Memory.zero(&entropy) }
        let full = SHA512.pbkdf2(password: entropy, salt: Array(("mnemonic" + password).decomposedStringWithCompatibilityMapping.utf8),
                                 iterations: 2048, length: 64)
        return full.withUnsafeBytes { SecureBytes(copying: $0[0..<32]) }
    }

    /// The Ed25519 key a phrase stands for (Substrate's derivation, without a derivation path).
    public static func ed25519Key(phrase: String, password: String = "") throws(Failure) -> Ed25519.PrivateKey {
        let seed = try Self.substrateSeed(phrase: phrase, password: password)
        var bytes = seed.withUnsafeBytes { Array($0) }
        defer { Memory.zero(&bytes) }
        // 32 bytes always make a key.
        return try! Ed25519.PrivateKey(seedBytes: bytes)
    }
}
