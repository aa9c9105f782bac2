/// A versioned, typed wrapper around an encoded message.
///
/// Wire form: `version: u8`, `kind: u16`, `payload: bytes` (varint length). Receivers check
/// the version first, so the format can evolve; the kind tells which decoder applies.
public struct Envelope: Equatable, Sendable, BinaryCodable {
    /// The envelope format this build writes.
    public static let currentVersion: UInt8 = 1

    /// The envelope format version.
    public var version: UInt8
    /// The message type, from the module that owns the payload.
    public var kind: UInt16
    /// The encoded message.
    public var payload: [UInt8]

    /// Creates an envelope of the current version.
    public init(kind: UInt16, payload: [UInt8]) {
        self.version = Envelope.currentVersion
        self.kind = kind
        self.payload = payload
    }

    /// Wraps an encodable message.
    public init<M: BinaryEncodable>(kind: UInt16, message: M) {
        self.init(kind: kind, payload: message.encoded)
    }

    public func encode(to writer: inout ByteWriter) {
        writer.u8(self.version)
        writer.u16(self.kind)
        writer.bytes(self.payload)
    }

    /// Decodes an envelope whose payload is at most `Envelope.maxPayload` bytes.
    public init(from reader: inout ByteReader) throws(CodecError) {
        try self.init(from: &reader, maxPayload: Envelope.maxPayload)
    }

    /// The default bound on a payload (16 MiB).
    public static let maxPayload = 16 << 20

    /// Decodes an envelope with an explicit payload bound.
    public init(from reader: inout ByteReader, maxPayload: Int) throws(CodecError) {
        let version = try reader.u8()
        guard version == Envelope.currentVersion else { throw .unsupportedVersion(version) }
        self.version = version
        self.kind = try reader.u16()
        self.payload = try reader.bytes(field: "envelope.payload", limit: maxPayload)
    }

    /// Decodes the payload as `M`, requiring that every byte is used.
    public func open<M: BinaryDecodable>(as type: M.Type) throws(CodecError) -> M {
        try M.decode(self.payload)
    }
}
