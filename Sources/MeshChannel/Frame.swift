import MeshCodec

/// The frames carried inside transport messages (docs/secure-channel.md).
///
/// A transport message's plaintext is one or more frames:
/// `kind: u8, stream: varint, length: varint, body[length]`.
enum FrameKind: UInt8 {
    /// Stream 0: the sender's ``Hello``. Must be the first frame either side sends.
    case hello = 1
    /// Opens `stream`; body: protocol name (≤ 64 bytes UTF-8).
    case open = 2
    /// Part of a message on `stream`; body: flags u8, then when FIRST: wire length varint and
    /// (when COMPRESSED) original length varint; then the chunk.
    case data = 3
    /// Grants the peer more window on `stream`; body: increment varint.
    case window = 4
    /// Abandons `stream`; body: code u16.
    case reset = 5
    /// Stream 0: closes the channel; body: code u16, reason string.
    case close = 6
    /// Stream 0: keep-alive probe; body: 8 bytes echoed in PONG.
    case ping = 7
    case pong = 8
}

/// Flags of a DATA frame.
struct DataFlags: OptionSet {
    let rawValue: UInt8
    /// The first chunk of a message (carries the lengths).
    static let first = DataFlags(rawValue: 1)
    /// The last chunk of a message.
    static let last = DataFlags(rawValue: 2)
    /// The message body is an LZ4 block.
    static let compressed = DataFlags(rawValue: 4)
    /// The sender will send nothing more on this stream after this message.
    static let fin = DataFlags(rawValue: 8)
}

/// Reset and close codes.
public enum ChannelCode {
    public static let normal: UInt16 = 0
    public static let refused: UInt16 = 1
    public static let cancelled: UInt16 = 2
    public static let protocolError: UInt16 = 3
    public static let genesisMismatch: UInt16 = 4
    public static let incompatibleVersion: UInt16 = 5
    public static let tooManyStreams: UInt16 = 6
    public static let shuttingDown: UInt16 = 7
    public static let banned: UInt16 = 8
    public static let tooManyPeers: UInt16 = 9
    /// A stream or connection timed out (idle, stalled, or a message never completed).
    public static let timeout: UInt16 = 10
}

struct Frame {
    var kind: FrameKind
    var stream: UInt64
    var body: ArraySlice<UInt8>

    static func encode(kind: FrameKind, stream: UInt64, body: [UInt8], into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.varint(stream)
        w.bytes(body)
    }
}
