/// A value with a canonical binary encoding (see ``ByteWriter``).
public protocol BinaryEncodable {
    /// Appends the canonical encoding of `self`.
    func encode(to writer: inout ByteWriter)
    /// About how many bytes the encoding takes (the buffer `encoded` starts with; a value
    /// encoded on a hot path that outgrows the default pays one or two reallocations).
    var encodedSizeHint: Int { get }
}

/// A value that can be decoded from untrusted bytes without trapping.
public protocol BinaryDecodable {
    /// Decodes a value, throwing a ``CodecError`` on malformed input.
    init(from reader: inout ByteReader) throws(CodecError)
}

/// A value that can be both encoded and decoded.
public typealias BinaryCodable = BinaryEncodable & BinaryDecodable

extension BinaryEncodable {
    public var encodedSizeHint: Int { 64 }

    /// The canonical encoding of `self`.
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: self.encodedSizeHint)
        self.encode(to: &w)
        return w.bytes
    }
}

extension BinaryDecodable {
    /// Decodes a value that must use every byte of `bytes`.
    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> Self {
        var r = ByteReader(bytes)
        let v = try Self(from: &r)
        try r.finish()
        return v
    }
}
