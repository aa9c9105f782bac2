import MeshCodec
import MeshCrypto

/// A message id: the first 20 bytes of SHA-256(topic ‖ 0x00 ‖ data), so the same content on
/// the same topic is one message whoever publishes it.
public struct MessageID: Hashable, Sendable, Comparable, CustomStringConvertible {
    // The 20 bytes, big-endian in three words: no allocation per id, and hashing, equality
    // and ordering are a few integer operations (ids are looked up on every frame).
    let w0: UInt64
    let w1: UInt64
    let w2: UInt32

    /// The id of these 20 bytes (shorter input is padded with zeros, longer is cut: ids on the
    /// wire are always 20 bytes).
    public init(bytes: [UInt8]) {
        func byte(_ i: Int) -> UInt64 { i < bytes.count ? UInt64(bytes[i]) : 0 }
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0
        for i in 0..<8 { a = a << 8 | byte(i) }
        for i in 8..<16 { b = b << 8 | byte(i) }
        for i in 16..<20 { c = c << 8 | byte(i) }
        self.w0 = a
        self.w1 = b
        self.w2 = UInt32(c)
    }

    /// Reads the 20 bytes off the wire.
    init(from r: inout ByteReader) throws(CodecError) {
        self.w0 = try r.u64()
        self.w1 = try r.u64()
        self.w2 = try r.u32()
    }

    /// Writes the 20 bytes.
    func write(to w: inout ByteWriter) {
        w.u64(self.w0)
        w.u64(self.w1)
        w.u32(self.w2)
    }

    /// The id of `data` on `topic`. Hashed from one scratch buffer into a stack digest: ids
    /// are computed for every frame received, duplicates included.
    public init(topic: String, data: [UInt8]) {
        var topic = topic
        self = topic.withUTF8 { t in data.withUnsafeBytes { d in MessageID(topicUTF8: UnsafeRawBufferPointer(t), data: d) } }
    }

    /// The id of a message whose topic (its UTF-8) and data are given in place (a frame's
    /// bytes: `GossipFrame.messageLayout`).
    init(topicUTF8 t: UnsafeRawBufferPointer, data d: UnsafeRawBufferPointer) {
        self = withUnsafeTemporaryAllocation(byteCount: t.count + 1 + d.count, alignment: 8) { input in
            UnsafeMutableRawBufferPointer(rebasing: input[0..<t.count]).copyMemory(from: t)
            input[t.count] = 0
            UnsafeMutableRawBufferPointer(rebasing: input[(t.count + 1)...]).copyMemory(from: d)
            return withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest in
                SHA256.hash(UnsafeRawBufferPointer(input), into: digest)
                func word(_ from: Int, _ count: Int) -> UInt64 {
                    var v: UInt64 = 0
                    for i in from..<(from + count) { v = v << 8 | UInt64(digest[i]) }
                    return v
                }
                return MessageID(w0: word(0, 8), w1: word(8, 8), w2: UInt32(word(16, 4)))
            }
        }
    }

    private init(w0: UInt64, w1: UInt64, w2: UInt32) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
    }

    /// The 20 bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(20)
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: self.w0 >> (8 * UInt64(i)))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: self.w1 >> (8 * UInt64(i)))) }
        for i in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: self.w2 >> (8 * UInt32(i)))) }
        return out
    }

    public static func < (a: MessageID, b: MessageID) -> Bool { (a.w0, a.w1, a.w2) < (b.w0, b.w1, b.w2) }
    public var description: String { Hex.encode(self.bytes.prefix(6)) }
}

/// A published message.
public struct GossipMessage: Equatable, Sendable {
    public var topic: String
    public var data: [UInt8]
    public var id: MessageID

    public init(topic: String, data: [UInt8]) {
        self.topic = topic
        self.data = data
        self.id = MessageID(topic: topic, data: data)
    }
}

/// The control and data frames of the gossip protocol (`/tm/gossip/1`; docs/gossip.md).
public enum GossipFrame: Equatable, Sendable {
    case subscribe([String])
    case unsubscribe([String])
    case graft(String)
    case prune(String, backoffSeconds: UInt16)
    case ihave(String, [MessageID])
    case iwant([MessageID])
    case idontwant([MessageID])
    /// Announces a large message about to follow (its id and size), so that receivers can tell
    /// their other mesh peers IDONTWANT before the body has arrived.
    case preamble(String, MessageID, size: UInt32)
    case message(GossipMessage)
    /// Lazy push of a large message: "I have it"; the receiver asks one announcer (IWANT).
    case announce(String, MessageID, size: UInt32)

    public static let maxTopic = 64
    public static let maxIDs = 512
    public static let maxMessage = 4 << 20

    /// Bytes on the wire (for the simulator's bandwidth model).
    public var wireSize: Int {
        switch self {
        case .message(let m): return 8 + m.topic.utf8.count + m.data.count
        case .ihave(_, let ids), .iwant(let ids), .idontwant(let ids): return 8 + 20 * ids.count
        default: return 40
        }
    }

    public var encoded: [UInt8] {
        // Sized up front: an IHAVE of a hundred ids grew its buffer six times.
        var w: ByteWriter
        switch self {
        case .message(let m): w = ByteWriter(capacity: 16 + m.topic.utf8.count + m.data.count)
        case .ihave(let t, let l): w = ByteWriter(capacity: 16 + t.utf8.count + 20 * l.count)
        case .iwant(let l), .idontwant(let l): w = ByteWriter(capacity: 16 + 20 * l.count)
        default: w = ByteWriter(capacity: 64)
        }
        switch self {
        case .subscribe(let t): w.u8(1); w.list(t) { w, s in w.string(s) }
        case .unsubscribe(let t): w.u8(2); w.list(t) { w, s in w.string(s) }
        case .graft(let t): w.u8(3); w.string(t)
        case .prune(let t, let b): w.u8(4); w.string(t); w.u16(b)
        case .ihave(let t, let l): w.u8(5); w.string(t); Self.write(ids: l, to: &w)
        case .iwant(let l): w.u8(6); Self.write(ids: l, to: &w)
        case .idontwant(let l): w.u8(7); Self.write(ids: l, to: &w)
        case .preamble(let t, let id, let size): w.u8(8); w.string(t); id.write(to: &w); w.u32(size)
        case .message(let m): w.u8(9); w.string(m.topic); w.bytes(m.data)
        case .announce(let t, let id, let size): w.u8(10); w.string(t); id.write(to: &w); w.u32(size)
        }
        return w.bytes
    }

    /// A length-prefixed list of ids (a plain loop: `ByteWriter.list` is generic across the
    /// module boundary, and ids are most of what gossip control frames carry).
    static func write(ids: [MessageID], to w: inout ByteWriter) {
        w.varint(ids.count)
        for id in ids { id.write(to: &w) }
    }

    /// Where a message frame's topic and data lie in `bytes`, read in place (nothing copied),
    /// when `bytes` is a message frame `decode` would accept — bar the topic's UTF-8, which
    /// the caller matches against the topics it knows; nil for anything else.
    public static func messageLayout(_ bytes: [UInt8]) -> (topic: Range<Int>, data: Range<Int>)? {
        var r = ByteReader(bytes)
        do {
            guard try r.u8() == 9 else { return nil }
            let t = try r.length(field: "topic", limit: maxTopic)
            let topicStart = r.offset
            try r.skip(t)
            let d = try r.length(field: "data", limit: maxMessage)
            let dataStart = r.offset
            try r.skip(d)
            try r.finish()
            return (topicStart..<(topicStart + t), dataStart..<(dataStart + d))
        } catch {
            return nil
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> GossipFrame {
        var r = ByteReader(bytes)
        func ids() throws(CodecError) -> [MessageID] {
            try r.list(field: "ids", limit: maxIDs, minElementSize: 20) { (r: inout ByteReader) throws(CodecError) in try MessageID(from: &r) }
        }
        func topics() throws(CodecError) -> [String] {
            try r.list(field: "topics", limit: 64, minElementSize: 1) { (r: inout ByteReader) throws(CodecError) in try r.string(field: "topic", limit: maxTopic) }
        }
        let f: GossipFrame
        switch try r.u8() {
        case 1: f = .subscribe(try topics())
        case 2: f = .unsubscribe(try topics())
        case 3: f = .graft(try r.string(field: "topic", limit: maxTopic))
        case 4: f = .prune(try r.string(field: "topic", limit: maxTopic), backoffSeconds: try r.u16())
        case 5: f = .ihave(try r.string(field: "topic", limit: maxTopic), try ids())
        case 6: f = .iwant(try ids())
        case 7: f = .idontwant(try ids())
        case 8: f = .preamble(try r.string(field: "topic", limit: maxTopic), try MessageID(from: &r), size: try r.u32())
        case 9: f = .message(GossipMessage(topic: try r.string(field: "topic", limit: maxTopic), data: try r.bytes(field: "data", limit: maxMessage)))
        case 10: f = .announce(try r.string(field: "topic", limit: maxTopic), try MessageID(from: &r), size: try r.u32())
        case let t: throw .invalidValue(field: "gossip frame", reason: "type \(t)")
        }
        try r.finish()
        return f
    }
}
