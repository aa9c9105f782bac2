import MeshCrypto

/// A WebSocket message or control frame as the reader delivers it (RFC 6455).
public enum WebSocketEvent: Sendable, Equatable {
    /// A complete text message (valid UTF-8).
    case text([UInt8])
    /// A complete binary message.
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// The peer's close frame: its status code (1005 when it sent none) and reason.
    case close(code: UInt16, reason: String)
}

/// Why a stream of frames is refused; `closeCode` is the status to close with.
public enum WebSocketError: Error, Equatable, Sendable {
    case protocolError(String)
    case messageTooBig(Int)
    case invalidText

    public var closeCode: UInt16 {
        switch self {
        case .protocolError: return 1002
        case .messageTooBig: return 1009
        case .invalidText: return 1007
        }
    }

    public var message: String {
        switch self {
        case .protocolError(let s): return s
        case .messageTooBig(let n): return "message of \(n) bytes or more is too big"
        case .invalidText: return "text message is not UTF-8"
        }
    }
}

/// Reads WebSocket frames from a byte stream that may be hostile (sans-IO). A message —
/// one frame or a fragmented sequence — is bounded by ``maxMessageBytes`` as soon as a frame
/// header announces a length, before its payload is buffered. Frames from a client must be
/// masked (``requireMask``), frames from a server must not; reserved bits (no extensions are
/// negotiated), unknown opcodes, fragmented or long control frames, and continuations
/// without a start are protocol errors.
public struct WebSocketFrameReader: Sendable {
    public let maxMessageBytes: Int
    public let requireMask: Bool

    private var buffer: [UInt8] = []
    private var start = 0
    private var fragments: [UInt8] = []
    private var fragmentOpcode: UInt8?

    public init(maxMessageBytes: Int = 1 << 20, requireMask: Bool = true) {
        self.maxMessageBytes = maxMessageBytes
        self.requireMask = requireMask
    }

    /// Adds received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if self.start > 0 && self.start >= self.buffer.count / 2 {
            self.buffer.removeFirst(self.start)
            self.start = 0
        }
        self.buffer.append(contentsOf: bytes)
    }

    /// Bytes held for a partial frame or message.
    public var bufferedCount: Int { self.buffer.count - self.start + self.fragments.count }

    /// The next message or control frame, or nil until more bytes arrive.
    public mutating func next() throws(WebSocketError) -> WebSocketEvent? {
        while true {
            let b = self.buffer
            let s = self.start
            guard b.count - s >= 2 else { return nil }
            let fin = b[s] & 0x80 != 0
            guard b[s] & 0x70 == 0 else { throw .protocolError("reserved bits set") }
            let opcode = b[s] & 0x0F
            let masked = b[s + 1] & 0x80 != 0
            guard masked == self.requireMask else { throw .protocolError(self.requireMask ? "client frames must be masked" : "server frames must not be masked") }
            var length = UInt64(b[s + 1] & 0x7F)
            var offset = s + 2
            if length == 126 {
                guard b.count - offset >= 2 else { return nil }
                length = UInt64(b[offset]) << 8 | UInt64(b[offset + 1])
                guard length >= 126 else { throw .protocolError("length not in its shortest form") }
                offset += 2
            } else if length == 127 {
                guard b.count - offset >= 8 else { return nil }
                length = 0
                for k in 0..<8 { length = length << 8 | UInt64(b[offset + k]) }
                guard length >> 63 == 0 else { throw .protocolError("length with the top bit set") }
                guard length > 0xFFFF else { throw .protocolError("length not in its shortest form") }
                offset += 8
            }
            let isControl = opcode & 0x08 != 0
            if isControl {
                guard opcode <= 0x0A else { throw .protocolError("unknown opcode \(opcode)") }
                guard fin && length <= 125 else { throw .protocolError("control frames are at most 125 bytes and not fragmented") }
            } else {
                guard opcode <= 2 else { throw .protocolError("unknown opcode \(opcode)") }
                if opcode == 0 && self.fragmentOpcode == nil { throw .protocolError("continuation without a first frame") }
                if opcode != 0 && self.fragmentOpcode != nil { throw .protocolError("new message inside a fragmented one") }
                // The whole message is bounded before a byte of this frame is kept.
                let total = UInt64(self.fragments.count) + length
                guard total <= UInt64(self.maxMessageBytes) else { throw .messageTooBig(Int(clamping: total)) }
            }
            var mask: [UInt8] = []
            if masked {
                guard b.count - offset >= 4 else { return nil }
                mask = Array(b[offset..<(offset + 4)])
                offset += 4
            }
            let n = Int(length)
            guard b.count - offset >= n else { return nil }
            var payload = Array(b[offset..<(offset + n)])
            if masked {
                for i in payload.indices { payload[i] ^= mask[i & 3] }
            }
            self.start = offset + n
            switch opcode {
            case 0x8:
                guard payload.count != 1 else { throw .protocolError("close frame of one byte") }
                let code = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : 1005
                guard let reason = String(validating: payload.dropFirst(2), as: UTF8.self) else { throw .invalidText }
                return .close(code: code, reason: reason)
            case 0x9: return .ping(payload)
            case 0xA: return .pong(payload)
            default:
                if opcode != 0 { self.fragmentOpcode = opcode }
                self.fragments.append(contentsOf: payload)
                guard fin else { continue }
                let message = self.fragments
                let kind = self.fragmentOpcode
                self.fragments = []
                self.fragmentOpcode = nil
                if kind == 1 {
                    guard String(validating: message, as: UTF8.self) != nil else { throw .invalidText }
                    return .text(message)
                }
                return .binary(message)
            }
        }
    }
}

/// Writes WebSocket frames (RFC 6455 §5.2): unmasked as a server sends them, masked with a
/// fresh key as a client must.
public enum WebSocketFrameWriter {
    public static let text: UInt8 = 0x1
    public static let binary: UInt8 = 0x2
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xA

    /// One final frame carrying `payload`; masked with `mask` (4 bytes) when given.
    public static func frame(opcode: UInt8, _ payload: some Collection<UInt8>, mask: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = [0x80 | opcode]
        out.reserveCapacity(payload.count + 14)
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let n = payload.count
        if n < 126 {
            out.append(maskBit | UInt8(n))
        } else if n <= 0xFFFF {
            out += [maskBit | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out.append(maskBit | 127)
            for k in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> (8 * UInt64(k)))) }
        }
        if let mask {
            precondition(mask.count == 4, "a WebSocket mask is 4 bytes")
            out += mask
            var i = 0
            for byte in payload {
                out.append(byte ^ mask[i & 3])
                i += 1
            }
        } else {
            out.append(contentsOf: payload)
        }
        return out
    }

    /// A close frame with a status code and a reason (cut to fit 125 bytes).
    public static func closeFrame(code: UInt16, reason: String, mask: [UInt8]? = nil) -> [UInt8] {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var r = Array(reason.utf8.prefix(123))
        while String(validating: r, as: UTF8.self) == nil { r.removeLast() }
        payload += r
        return Self.frame(opcode: Self.close, payload, mask: mask)
    }
}

/// The opening handshake (RFC 6455 §4).
public enum WebSocketHandshake {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Whether a request asks to switch to WebSocket (Upgrade: websocket).
    public static func isUpgrade(_ request: HTTPRequest) -> Bool {
        request.tokens("upgrade").contains("websocket")
    }

    /// The client's key when the request is a valid opening handshake, else why not.
    public static func validate(_ request: HTTPRequest) -> Result<String, HTTPRequestError> {
        guard request.method == "GET", request.minorVersion >= 1 else { return .failure(.badRequest("a WebSocket handshake is an HTTP/1.1 GET")) }
        guard request.tokens("connection").contains("upgrade") else { return .failure(.badRequest("Connection must include Upgrade")) }
        guard request.header("sec-websocket-version") == "13" else { return .failure(.badRequest("Sec-WebSocket-Version must be 13")) }
        guard let key = request.header("sec-websocket-key"), Base64.decode(key)?.count == 16 else {
            return .failure(.badRequest("Sec-WebSocket-Key must be 16 bytes in base64"))
        }
        return .success(key)
    }

    /// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key + GUID)).
    public static func accept(key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + Self.guid).utf8)))
    }
}

/// Base64 (RFC 4648 §4, with padding), for the handshake's keys.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let v = UInt32(bytes[i]) << 16 | (n > 1 ? UInt32(bytes[i + 1]) << 8 : 0) | (n > 2 ? UInt32(bytes[i + 2]) : 0)
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(n > 1 ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of padded base64 text, or nil.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            var v: UInt32 = 0
            var pad = 0
            for k in 0..<4 {
                let c = chars[i + k]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == chars.count, k >= 2 else { return nil }
                    pad += 1
                    v <<= 6
                    continue
                }
                guard pad == 0, let d = alphabet.firstIndex(of: c) else { return nil }
                v = v << 6 | UInt32(d)
            }
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        return out
    }
}
