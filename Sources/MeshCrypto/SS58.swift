/// SS58 addresses (Substrate's, which Bittensor users read and paste): base58 of a network
/// prefix, the 32-byte public key, and the first two bytes of
/// BLAKE2b-512("SS58PRE" ‖ prefix ‖ key). Tensormesh uses the generic prefix 42 (addresses
/// start with 5), as Bittensor does.
public enum SS58 {
    /// The network prefix of Tensormesh addresses.
    public static let genericFormat: UInt16 = 42

    static let alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)

    /// The address of a 32-byte public key under a prefix (0...16383).
    public static func encode(_ key: [UInt8], format: UInt16 = genericFormat) -> String {
        precondition(key.count == 32 && format < 16_384, "SS58 encodes a 32-byte key under a prefix below 16384")
        let prefix: [UInt8] = format < 64
            ? [UInt8(format)]
            : [UInt8((format & 0b1111_1100) >> 2) | 0b0100_0000, UInt8(format >> 8) | UInt8((format & 0b11) << 6)]
        let body = prefix + key
        let checksum = Blake2b.hash(Array("SS58PRE".utf8) + body, outputLength: 64)
        return Self.base58(body + checksum[0..<2])
    }

    /// The public key and prefix of an address, or nil when it is not a valid SS58 address of
    /// a 32-byte key (bad characters, length, or checksum).
    public static func decode(_ address: String) -> (key: [UInt8], format: UInt16)? {
        guard address.utf8.count <= 64, let raw = Self.unbase58(address) else { return nil }
        let prefixLength: Int
        let format: UInt16
        guard let first = raw.first else { return nil }
        if first < 64 {
            prefixLength = 1
            format = UInt16(first)
        } else if first < 128, raw.count > 1 {
            prefixLength = 2
            let lower = UInt16(first & 0b0011_1111) << 2 | UInt16(raw[1] >> 6)
            format = lower | UInt16(raw[1] & 0b0011_1111) << 8
        } else {
            return nil
        }
        guard raw.count == prefixLength + 32 + 2 else { return nil }
        let body = Array(raw[0..<(prefixLength + 32)])
        let checksum = Blake2b.hash(Array("SS58PRE".utf8) + body, outputLength: 64)
        guard raw[(prefixLength + 32)...].elementsEqual(checksum[0..<2]) else { return nil }
        return (Array(body[prefixLength...]), format)
    }

    static func base58(_ bytes: [UInt8]) -> String {
        var digits: [UInt8] = []  // base 58, least significant first
        for b in bytes {
            var carry = Int(b)
            for i in digits.indices {
                carry += Int(digits[i]) << 8
                digits[i] = UInt8(carry % 58)
                carry /= 58
            }
            while carry > 0 {
                digits.append(UInt8(carry % 58))
                carry /= 58
            }
        }
        let zeros = bytes.prefix { $0 == 0 }.count
        return String(decoding: [UInt8](repeating: alphabet[0], count: zeros) + digits.reversed().map { alphabet[Int($0)] }, as: UTF8.self)
    }

    static func unbase58(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []  // base 256, least significant first
        for c in text.utf8 {
            guard let d = alphabet.firstIndex(of: c) else { return nil }
            var carry = d
            for i in bytes.indices {
                carry += Int(bytes[i]) * 58
                bytes[i] = UInt8(carry & 0xFF)
                carry >>= 8
            }
            while carry > 0 {
                bytes.append(UInt8(carry & 0xFF))
                carry >>= 8
            }
        }
        let zeros = text.utf8.prefix { $0 == alphabet[0] }.count
        return [UInt8](repeating: 0, count: zeros) + bytes.reversed()
    }
}

extension Ed25519.PublicKey {
    /// The key's SS58 address (prefix 42).
    public var ss58: String { SS58.encode(self.bytes) }

    /// A key from its SS58 address (any prefix), or from 64 hex digits with or without `0x`:
    /// what a user may paste wherever the CLI and the RPC take a key.
    public init?(address: String) {
        var s = Substring(address)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        let text = String(s)
        if let (key, _) = SS58.decode(text), let k = try? Ed25519.PublicKey(bytes: key) {
            self = k
            return
        }
        let hex = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        guard let k = Ed25519.PublicKey(hex: hex) else { return nil }
        self = k
    }
}
