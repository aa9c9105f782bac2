/// Reads values written by ``ByteWriter`` from untrusted bytes.
///
/// Every read checks the remaining input first and every length read from the input is
/// checked against a caller-supplied maximum *before* anything is allocated, so hostile
/// input cannot trap the process or make it allocate more than the caller allowed.
public struct ByteReader: Sendable {
    @usableFromInline let storage: [UInt8]
    /// The position of the next byte to read.
    public private(set) var offset: Int
    @usableFromInline let end: Int

    /// Creates a reader over `bytes`.
    public init(_ bytes: [UInt8]) {
        self.storage = bytes
        self.offset = 0
        self.end = bytes.count
    }

    /// Creates a reader over any byte sequence (copied once).
    public init<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        self.init(Array(bytes))
    }

    /// Bytes not read yet.
    public var remaining: Int { self.end - self.offset }

    /// Whether every byte was read.
    public var isAtEnd: Bool { self.offset == self.end }

    /// Throws ``CodecError/trailingBytes(count:)`` unless every byte was consumed.
    public func finish() throws(CodecError) {
        if self.offset != self.end { throw .trailingBytes(count: self.end - self.offset) }
    }

    @inline(__always)
    mutating func need(_ n: Int) throws(CodecError) {
        if n < 0 || self.end - self.offset < n { throw .truncated(needed: n, available: self.end - self.offset) }
    }

    /// Reads one byte.
    public mutating func u8() throws(CodecError) -> UInt8 {
        try self.need(1)
        let b = self.storage[self.offset]
        self.offset += 1
        return b
    }

    /// Reads a `Bool` encoded as 0 or 1; any other byte is an error.
    public mutating func bool(field: String = "bool") throws(CodecError) -> Bool {
        switch try self.u8() {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue(field: field, reason: "boolean byte \(other)")
        }
    }

    /// Reads a big-endian `UInt16`.
    public mutating func u16() throws(CodecError) -> UInt16 {
        try self.need(2)
        let v = UInt16(self.storage[self.offset]) << 8 | UInt16(self.storage[self.offset + 1])
        self.offset += 2
        return v
    }

    /// Reads a big-endian `UInt32`.
    public mutating func u32() throws(CodecError) -> UInt32 {
        try self.need(4)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(self.storage[self.offset + i]) }
        self.offset += 4
        return v
    }

    /// Reads a big-endian `UInt64`.
    public mutating func u64() throws(CodecError) -> UInt64 {
        try self.need(8)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(self.storage[self.offset + i]) }
        self.offset += 8
        return v
    }

    /// Reads a big-endian two's-complement `Int64`.
    public mutating func i64() throws(CodecError) -> Int64 { Int64(bitPattern: try self.u64()) }

    /// Reads a minimal unsigned LEB128 integer of at most 64 bits.
    public mutating func varint() throws(CodecError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            let byte = try self.u8()
            count += 1
            let payload = UInt64(byte & 0x7f)
            if shift == 63 && payload > 1 { throw .varintOverflow }
            if shift > 63 { throw .varintOverflow }
            result |= payload << shift
            if byte & 0x80 == 0 {
                // A final zero byte after the first one means a longer-than-minimal encoding.
                if count > 1 && byte == 0 { throw .nonCanonicalVarint }
                return result
            }
            shift += 7
        }
    }

    /// Reads a varint length and checks it against `limit` before anything is allocated.
    public mutating func length(field: String, limit: Int) throws(CodecError) -> Int {
        let declared = try self.varint()
        if declared > UInt64(limit) { throw .lengthExceedsLimit(field: field, length: declared, limit: limit) }
        return Int(declared)
    }

    /// Reads a varint that must fit in `Int` and be at most `limit`.
    public mutating func varintInt(field: String, limit: Int = Int.max) throws(CodecError) -> Int {
        let value = try self.varint()
        if value > UInt64(limit) { throw .invalidValue(field: field, reason: "\(value) exceeds \(limit)") }
        return Int(value)
    }

    /// Reads exactly `count` bytes (a fixed-size field).
    public mutating func raw(_ count: Int) throws(CodecError) -> [UInt8] {
        try self.need(count)
        let slice = Array(self.storage[self.offset..<(self.offset + count)])
        self.offset += count
        return slice
    }

    /// Skips `count` bytes.
    public mutating func skip(_ count: Int) throws(CodecError) {
        try self.need(count)
        self.offset += count
    }

    /// Reads a length-prefixed byte string of at most `limit` bytes.
    public mutating func bytes(field: String = "bytes", limit: Int) throws(CodecError) -> [UInt8] {
        let n = try self.length(field: field, limit: limit)
        return try self.raw(n)
    }

    /// Reads a length-prefixed UTF-8 string of at most `limit` bytes.
    public mutating func string(field: String = "string", limit: Int) throws(CodecError) -> String {
        let n = try self.length(field: field, limit: limit)
        try self.need(n)
        // Validated straight from the input: no intermediate array (topics and protocol names
        // are decoded on every frame).
        let start = self.offset
        let s = self.storage.withUnsafeBufferPointer {
            String(validating: UnsafeBufferPointer(rebasing: $0[start..<(start + n)]), as: UTF8.self)
        }
        guard let s else { throw .invalidUTF8(field: field) }
        self.offset += n
        return s
    }

    /// Reads a length-prefixed list of at most `limit` elements, decoding each with `decode`.
    ///
    /// The element count is checked against `limit` and against the bytes left (each
    /// element takes at least `minElementSize` bytes) before the array is reserved.
    public mutating func list<T>(
        field: String = "list", limit: Int, minElementSize: Int = 1,
        _ decode: (inout ByteReader) throws(CodecError) -> T
    ) throws(CodecError) -> [T] {
        let n = try self.length(field: field, limit: limit)
        if minElementSize > 0 && n > self.remaining / minElementSize {
            throw .truncated(needed: n * minElementSize, available: self.remaining)
        }
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try decode(&self)) }
        return out
    }

    /// Reads a length-prefixed list of decodable values.
    public mutating func list<T: BinaryDecodable>(
        of type: T.Type, field: String = "list", limit: Int, minElementSize: Int = 1
    ) throws(CodecError) -> [T] {
        try self.list(field: field, limit: limit, minElementSize: minElementSize) { (r: inout ByteReader) throws(CodecError) -> T in
            try T(from: &r)
        }
    }

    /// Reads an optional value written by ``ByteWriter/optional(_:_:)``.
    public mutating func optional<T>(
        field: String = "optional", _ decode: (inout ByteReader) throws(CodecError) -> T
    ) throws(CodecError) -> T? {
        switch try self.u8() {
        case 0: return nil
        case 1: return try decode(&self)
        case let other: throw .invalidValue(field: field, reason: "presence byte \(other)")
        }
    }

    /// Reads a decodable value.
    public mutating func value<T: BinaryDecodable>(_ type: T.Type = T.self) throws(CodecError) -> T {
        try T(from: &self)
    }
}
