import MeshCodec
import MeshCrypto

/// A 32-byte SHA-256 digest: block hashes, transaction hashes, state roots.
///
/// Held inline (`Bytes32`), not in an array: hashes are dictionary keys on every block, vote
/// and sync path.
public struct Hash32: Hashable, Comparable, Sendable, BinaryCodable, CustomStringConvertible {
    let raw: Bytes32

    public init(_ bytes: [UInt8]) { self.raw = Bytes32(bytes) }

    /// The 32 bytes (a fresh array).
    public var bytes: [UInt8] { self.raw.bytes }

    public static let zero = Hash32([UInt8](repeating: 0, count: 32))

    /// SHA-256 of `data`.
    public static func of(_ data: [UInt8]) -> Hash32 {
        // Into a stack buffer: no array per digest (vote ids are hashed per received vote).
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { out in
            data.withUnsafeBytes { SHA256.hash($0, into: out) }
            return Hash32(raw: Bytes32(raw: UnsafeRawBufferPointer(out)))
        }
    }

    init(raw: Bytes32) { self.raw = raw }

    /// Parses `0x`-prefixed or plain hex.
    public init?(hex: String) {
        guard let b = Hex.decode(hex, count: 32) else { return nil }
        self.init(b)
    }

    public var hex: String { Hex.prefixed(self.bytes) }
    public var description: String { Hex.encode(self.bytes.prefix(4)) + "…" }
    public static func < (a: Hash32, b: Hash32) -> Bool { a.raw < b.raw }

    public func encode(to w: inout ByteWriter) { self.raw.encode(to: &w) }
    public init(from r: inout ByteReader) throws(CodecError) { self.raw = try Bytes32(from: &r) }
}

/// Binary Merkle root of SHA-256 leaves: pairs hashed with a 0x01 prefix, a lone last node
/// promoted as is, an empty list's root is SHA-256 of nothing.
public enum MerkleRoot {
    public static func of(_ leaves: [Hash32]) -> Hash32 {
        if leaves.isEmpty { return Hash32.of([]) }
        var level = leaves.map { $0.bytes }
        while level.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i < level.count {
                if i + 1 < level.count {
                    next.append(SHA256.hash([1] + level[i] + level[i + 1]))
                } else {
                    next.append(level[i])
                }
                i += 2
            }
            level = next
        }
        return Hash32(level[0])
    }
}

/// An account: an Ed25519 public key (coldkeys and hotkeys alike).
public typealias AccountID = Ed25519.PublicKey

/// TAO amounts in rao (1 TAO = 10^9 rao).
public typealias Rao = UInt64

public enum Token {
    public static let rao: Rao = 1
    public static let tao: Rao = 1_000_000_000

    /// "1.5 TAO" style text.
    public static func format(_ amount: Rao) -> String {
        let whole = amount / tao
        let frac = amount % tao
        if frac == 0 { return "\(whole) TAO" }
        var f = String(frac)
        f = String(repeating: "0", count: 9 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f) TAO"
    }

    /// Parses "1.5" (TAO) into rao.
    public static func parse(_ text: String) -> Rao? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = UInt64(parts[0].isEmpty ? "0" : String(parts[0])) else { return nil }
        var frac: UInt64 = 0
        if parts.count == 2 {
            let f = String(parts[1])
            guard f.count <= 9, f.allSatisfy({ $0.isNumber }) else { return nil }
            frac = UInt64(f + String(repeating: "0", count: 9 - f.count)) ?? 0
        }
        let (w, o) = whole.multipliedReportingOverflow(by: tao)
        guard !o else { return nil }
        let (t, o2) = w.addingReportingOverflow(frac)
        return o2 ? nil : t
    }
}
