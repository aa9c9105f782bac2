/// Appends values in Tensormesh's canonical binary encoding.
///
/// The encoding is deterministic: a value has exactly one encoding, so hashes and
/// signatures over encoded bytes are well defined.
///
/// - Fixed-width integers are big-endian.
/// - `varint` is unsigned LEB128 with the minimal number of bytes.
/// - Byte strings, strings and lists are a `varint` length followed by the content.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 64) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    /// The number of bytes written so far.
    public var count: Int { self.bytes.count }

    /// Appends one byte.
    public mutating func u8(_ value: UInt8) { self.bytes.append(value) }

    /// Appends a `Bool` as one byte, 0 or 1.
    public mutating func bool(_ value: Bool) { self.bytes.append(value ? 1 : 0) }

    /// Appends a big-endian `UInt16`.
    public mutating func u16(_ value: UInt16) {
        self.bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        self.bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// Appends a big-endian `UInt32`.
    public mutating func u32(_ value: UInt32) {
        // One append of the four bytes (a byte at a time checked capacity and uniqueness
        // four times).
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// Appends a big-endian `UInt64`.
    public mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
    }

    /// Appends a big-endian `Int64` (two's complement).
    public mutating func i64(_ value: Int64) { self.u64(UInt64(bitPattern: value)) }

    /// Appends a 128-bit unsigned integer as two big-endian 64-bit halves.
    public mutating func u128(high: UInt64, low: UInt64) {
        self.u64(high)
        self.u64(low)
    }

    /// Appends an unsigned LEB128 integer in its minimal form.
    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.bytes.append(UInt8(v))
    }

    /// Appends a non-negative `Int` as a varint.
    public mutating func varint(_ value: Int) {
        precondition(value >= 0, "varint of a negative Int")
        self.varint(UInt64(value))
    }

    /// Appends bytes exactly as given, with no length prefix (fixed-size fields).
    public mutating func raw<Bytes: Sequence>(_ data: Bytes) where Bytes.Element == UInt8 {
        self.bytes.append(contentsOf: data)
    }

    /// Appends a length-prefixed byte string.
    public mutating func bytes<Bytes: Collection>(_ data: Bytes) where Bytes.Element == UInt8 {
        self.varint(data.count)
        self.bytes.append(contentsOf: data)
    }

    /// Appends a length-prefixed UTF-8 string.
    public mutating func string(_ value: String) {
        self.bytes(value.utf8)
    }

    /// Appends a length-prefixed list, encoding each element with `encode`.
    public mutating func list<C: Collection>(_ items: C, _ encode: (inout ByteWriter, C.Element) -> Void) {
        self.varint(items.count)
        for item in items { encode(&self, item) }
    }

    /// Appends a length-prefixed list of encodable values.
    public mutating func list<C: Collection>(_ items: C) where C.Element: BinaryEncodable {
        self.varint(items.count)
        for item in items { item.encode(to: &self) }
    }

    /// Appends an optional value: a presence byte, then the value when present.
    public mutating func optional<T>(_ value: T?, _ encode: (inout ByteWriter, T) -> Void) {
        if let value {
            self.u8(1)
            encode(&self, value)
        } else {
            self.u8(0)
        }
    }

    /// Appends an encodable value.
    public mutating func value<T: BinaryEncodable>(_ value: T) { value.encode(to: &self) }
}
