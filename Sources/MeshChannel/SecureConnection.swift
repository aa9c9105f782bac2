import MeshCodec
import MeshCrypto

/// A stream id: odd for streams the connection's initiator opens, even for the responder's.
public typealias StreamID = UInt64

/// Something the application learns from a connection.
public enum ChannelEvent: Sendable {
    /// The handshake finished; the peer proved `nodeId`.
    case established(nodeId: Ed25519.PublicKey)
    /// The peer's hello arrived (and matched our genesis and version).
    case hello(Hello)
    /// The peer opened a stream for `protocolName`.
    case streamOpened(StreamID, protocolName: String)
    /// A whole message arrived on a stream.
    case message(StreamID, [UInt8])
    /// The peer finished sending on a stream.
    case streamFinished(StreamID)
    /// The peer abandoned a stream.
    case streamReset(StreamID, code: UInt16)
    /// The peer answered a ping.
    case pong([UInt8])
    /// The connection is over; `error` is nil for an orderly close we asked for.
    case closed(ChannelError?)
}

/// The sans-IO secure channel: Noise XX handshake with identity binding, then framed,
/// encrypted, multiplexed streams (CONTRACT.md "Secure channel"; docs/secure-channel.md).
///
/// Feed it bytes from the socket with ``receive(_:now:)``, take bytes to write with
/// ``takeOutbound(maxBytes:)`` and application events with ``takeEvents()``. It never touches
/// a socket, a clock or a random source: time and the ephemeral key come in as values.
/// Not thread-safe: one owner drives it.
public final class SecureConnection {
    public enum Role: Sendable { case initiator, responder }

    enum State {
        case handshake(NoiseHandshake)
        case established
        case closed
    }

    public let role: Role
    public let config: ChannelConfig
    let identity: NodeIdentity
    let localHello: Hello
    var state: State
    let startedAt: UInt64

    /// The peer's node id, once the handshake has proved it.
    public private(set) var remoteNodeId: Ed25519.PublicKey?
    /// The peer's hello, once received.
    public private(set) var remoteHello: Hello?
    /// The handshake hash (for channel binding and diagnostics).
    public private(set) var handshakeHash: [UInt8] = []
    /// Why the connection closed, when it did.
    public private(set) var closeReason: ChannelError?

    var sendCipher: TransportCipher?
    var receiveCipher: TransportCipher?

    // Inbound: `inbound[inboundStart..<inboundEnd]` read and not yet processed; the rest of
    // `inbound` is room for the next read (the socket reads straight into it).
    var inbound: [UInt8] = []
    var inboundStart = 0
    var inboundEnd = 0
    /// A read filled all the room it was offered: offer more next time, and keep the buffer
    /// between reads until a ``tick(now:)`` finds the connection idle.
    var inboundLarge = false

    // Outbound: handshake bytes ready to write, then control frames and stream data to encrypt.
    var handshakeOut: [UInt8] = []
    var controlFrames = ControlQueue()
    /// PINGs the peer may still send before we stop answering (a token bucket refilled at
    /// `config.pingsPerSecond`), and PINGs dropped past it.
    var pingTokens: Double
    var pingRefilledAt: UInt64
    public private(set) var pingsDropped = 0
    var pingWindowStart: UInt64
    var events: [ChannelEvent] = []

    var streams: [StreamID: StreamState] = [:]
    /// Open streams by who opened them: each side has its own `maxStreams`, so a peer that
    /// opens many cannot keep us from opening ours.
    var remoteStreams = 0
    var localStreams = 0
    /// OPENs refused because the peer had `maxStreams` open already.
    var refusedOpens = 0
    /// The latest time seen (by ``receive(_:now:)`` or ``tick(now:)``).
    var now: UInt64
    var readyStreams: [StreamID] = []
    /// Chunks of the transport message being packed that are encrypted from their messages
    /// (kept between calls for its capacity).
    var gathered: [TransportCipher.Gathered] = []
    var nextStreamID: StreamID
    public private(set) var queuedBytes = 0
    var reassemblyBytes = 0
    var closeAfterFlush = false

    /// Counters for metrics and diagnostics.
    public private(set) var messagesSent = 0
    public private(set) var messagesReceived = 0
    public private(set) var bytesSent = 0
    public private(set) var bytesReceived = 0

    struct OutgoingMessage {
        var body: [UInt8]
        var offset: Int
        var flags: DataFlags
        var originalLength: Int
    }

    /// Per-stream state. A class, so updating a stream in the table never copies its
    /// queues (a struct in a dictionary would copy on every write).
    final class StreamState {
        var protocolName: String
        var sendWindow: Int
        var receiveWindow: Int
        var receiveCredit = 0
        var outgoing: [OutgoingMessage] = []
        var outgoingHead = 0
        var localFinished = false
        var remoteFinished = false
        // Reassembly of the message being received.
        var partial: [UInt8]?
        var partialExpected = 0
        var partialOriginal = 0
        var partialCompressed = false
        var partialFin = false

        /// When the peer last sent on this stream, when the message being received began, and
        /// since when our data waits for a WINDOW (for ``SecureConnection/tick(now:)``).
        var lastActivity: UInt64
        var partialSince: UInt64 = 0
        var windowBlockedSince: UInt64?

        var hasPending: Bool { self.outgoingHead < self.outgoing.count }

        init(protocolName: String, sendWindow: Int, receiveWindow: Int, now: UInt64) {
            self.protocolName = protocolName
            self.sendWindow = sendWindow
            self.receiveWindow = receiveWindow
            self.lastActivity = now
        }
    }

    /// The channel's Noise protocol (CONTRACT.md), parsed once rather than per connection.
    static let noiseProtocol = try! NoiseProtocol(name: "Noise_XX_25519_ChaChaPoly_SHA256")

    /// Creates a connection. The initiator must call ``start()``.
    public init(role: Role, identity: NodeIdentity, hello: Hello, config: ChannelConfig = ChannelConfig(),
                ephemeral: X25519.PrivateKey, now: Instant) {
        let now = now.nanoseconds
        self.role = role
        self.config = config
        self.identity = identity
        self.localHello = hello
        self.startedAt = now
        self.nextStreamID = role == .initiator ? 1 : 2
        self.pingTokens = Double(config.pingBurst)
        self.pingRefilledAt = now
        self.pingWindowStart = now
        self.now = now
        let hs = try! NoiseHandshake(
            protocol: Self.noiseProtocol, initiator: role == .initiator, prologue: config.prologue,
            staticKey: identity.noiseStatic, ephemeral: ephemeral)
        self.state = .handshake(hs)
    }

    /// Whether the handshake is done and the channel usable.
    public var isEstablished: Bool { if case .established = self.state { return true } else { return false } }
    /// Whether the connection is over.
    public var isClosed: Bool { if case .closed = self.state { return true } else { return false } }

    /// Initiator: writes handshake message 1 (an ephemeral key, empty payload).
    public func start() throws(ChannelError) {
        guard self.role == .initiator, case .handshake(var hs) = self.state else { return }
        let m1 = try hs.writeMessage(payload: [])
        self.state = .handshake(hs)
        self.appendFramed(m1)
    }

    func appendFramed(_ message: [UInt8]) {
        self.handshakeOut.append(UInt8(message.count >> 8))
        self.handshakeOut.append(UInt8(message.count & 0xff))
        self.handshakeOut.append(contentsOf: message)
    }

    // MARK: Inbound

    /// Processes bytes read from the socket. On error the connection is closed and the
    /// error returned; the caller should flush ``takeOutbound(maxBytes:)`` then drop the socket.
    public func receive(_ bytes: [UInt8], now: Instant) throws(ChannelError) {
        let now = now.nanoseconds
        if self.isClosed { return }
        self.makeRoom(bytes.count)
        bytes.withUnsafeBytes { b in
            self.inbound.withUnsafeMutableBytes { to in
                if b.count > 0 { (to.baseAddress! + self.inboundEnd).copyMemory(from: b.baseAddress!, byteCount: b.count) }
            }
        }
        try self.stored(bytes.count, now: now, filledRoom: false)
    }

    /// Reads straight into the connection's own buffer: lends `read` the free space (the
    /// socket layer reads into it and returns how many bytes it stored, 0 for none), then
    /// processes them in place: no copy between the socket and the decryption. Returns what
    /// `read` returned. Errors as ``receive(_:now:)``.
    @discardableResult
    public func receive(now: Instant, reading read: (UnsafeMutableRawBufferPointer) -> Int) throws(ChannelError) -> Int {
        let now = now.nanoseconds
        if self.isClosed {
            // Nothing more is processed; the bytes are read and dropped.
            return withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { read($0) }
        }
        self.makeRoom(self.inboundLarge ? Self.largeRoom : Self.smallRoom)
        let room = self.inbound.count - self.inboundEnd
        let end = self.inboundEnd
        let n = self.inbound.withUnsafeMutableBytes { b in read(UnsafeMutableRawBufferPointer(rebasing: b[end...])) }
        guard n > 0 else {
            self.releaseIfIdle(keepLarge: false)
            return n
        }
        precondition(n <= room, "read past the room it was lent")
        try self.stored(n, now: now, filledRoom: n == room)
        return n
    }

    /// Free space offered to a read: small for connections that trickle, large once a read
    /// filled what it was offered (a bulk transfer).
    static let smallRoom = 16 * 1024
    static let largeRoom = 256 * 1024

    /// Makes at least `room` bytes free after `inboundEnd`: moves unprocessed bytes (at most
    /// one partial transport message) to the front, or grows the buffer.
    func makeRoom(_ room: Int) {
        if self.inboundStart == self.inboundEnd {
            self.inboundStart = 0
            self.inboundEnd = 0
        }
        if self.inbound.count - self.inboundEnd >= room { return }
        let pending = self.inboundEnd - self.inboundStart
        if self.inboundStart > 0 && self.inbound.count - pending >= room {
            let from = self.inboundStart
            self.inbound.withUnsafeMutableBytes { b in
                if pending > 0 { b.baseAddress!.copyMemory(from: UnsafeRawPointer(b.baseAddress! + from), byteCount: pending) }
            }
        } else {
            // Not zero-filled first (a new small buffer per read of a short-lived connection
            // made the memset show in profiles): only `inbound[inboundStart..<inboundEnd]`
            // is ever read, and the socket writes every byte of it before that.
            let from = self.inboundStart
            let grown = self.inbound.withUnsafeBytes { b in
                [UInt8](unsafeUninitializedCapacity: max(pending + room, self.inbound.count)) { to, count in
                    if pending > 0 { UnsafeMutableRawPointer(to.baseAddress!).copyMemory(from: b.baseAddress! + from, byteCount: pending) }
                    count = to.count
                }
            }
            self.inbound = grown
        }
        self.inboundStart = 0
        self.inboundEnd = pending
    }

    /// `count` bytes were stored at `inboundEnd`: processes every whole transport message.
    func stored(_ count: Int, now: UInt64, filledRoom: Bool) throws(ChannelError) {
        self.now = max(self.now, now)
        self.bytesReceived += count
        self.inboundEnd += count
        if filledRoom { self.inboundLarge = true }
        do {
            try self.processInbound(now: now)
        } catch {
            self.fail(error)
            throw error
        }
        self.releaseIfIdle(keepLarge: filledRoom)
        if self.controlFrames.bytes > self.config.maxControlBytes {
            let e = ChannelError.bufferLimit("control frames owed to a peer that does not read")
            self.fail(e)
            throw e
        }
        if self.inboundEnd - self.inboundStart > self.config.maxInboundBuffer {
            let e = ChannelError.bufferLimit("inbound buffer")
            self.fail(e)
            throw e
        }
    }

    /// Idle connections keep no buffer: once everything read is processed, a small buffer is
    /// dropped at once; a large one (a bulk transfer, more reads to come) at the next
    /// ``tick(now:)`` that finds it empty, so a transfer does not reallocate it per read.
    func releaseIfIdle(keepLarge: Bool) {
        guard self.inboundStart == self.inboundEnd, !self.inbound.isEmpty else { return }
        if keepLarge || (self.inboundLarge && self.inbound.count > Self.smallRoom) {
            self.inboundStart = 0
            self.inboundEnd = 0
            return
        }
        self.inbound = []
        self.inboundStart = 0
        self.inboundEnd = 0
    }

    func processInbound(now: UInt64) throws(ChannelError) {
        while !self.isClosed {
            let available = self.inboundEnd - self.inboundStart
            guard available >= 2 else { return }
            let length = Int(self.inbound[self.inboundStart]) << 8 | Int(self.inbound[self.inboundStart + 1])
            guard available >= 2 + length else { return }
            let start = self.inboundStart + 2
            self.inboundStart = start + length
            switch self.state {
            case .handshake(var hs):
                let message = Array(self.inbound[start..<(start + length)])
                try self.handleHandshake(message, &hs)
            case .established:
                guard length >= 16 else { throw .decryptFailed }
                try self.receiveCipher!.open(&self.inbound, ciphertext: start..<(start + length))
                self.messagesReceived += 1
                try self.handlePlaintext(start..<(start + length - 16), now: now)
            case .closed:
                return
            }
        }
    }

    func handleHandshake(_ message: [UInt8], _ hs: inout NoiseHandshake) throws(ChannelError) {
        guard !hs.isMyTurn else { throw .protocolViolation("handshake message out of turn") }
        let payload = try hs.readMessage(message)
        switch self.role {
        case .responder where !hs.isComplete:
            // Message 1 read: answer with message 2 carrying our identity.
            let m2 = try hs.writeMessage(payload: self.identity.payload)
            self.state = .handshake(hs)
            self.appendFramed(m2)
        case .responder:
            // Message 3 read: the initiator's identity.
            try self.finishHandshake(&hs, payload: payload)
        case .initiator:
            // Message 2 read: check the responder's identity, then send message 3.
            try self.verifyIdentity(payload, hs)
            let m3 = try hs.writeMessage(payload: self.identity.payload)
            self.appendFramed(m3)
            try self.finishHandshake(&hs, payload: nil)
        }
    }

    func verifyIdentity(_ payload: [UInt8], _ hs: NoiseHandshake) throws(ChannelError) {
        guard let rs = hs.remoteStatic else { throw .malformedHandshake("no remote static key") }
        let nodeId = try NodeIdentity.verify(payload: payload, remoteStatic: rs)
        if nodeId == self.identity.nodeId { throw .selfConnection }
        self.remoteNodeId = nodeId
    }

    func finishHandshake(_ hs: inout NoiseHandshake, payload: [UInt8]?) throws(ChannelError) {
        if let payload { try self.verifyIdentity(payload, hs) }
        let (send, receive) = try hs.split()
        self.sendCipher = TransportCipher(key: send.takeKey()!, rekeyInterval: self.config.rekeyInterval)
        self.receiveCipher = TransportCipher(key: receive.takeKey()!, rekeyInterval: self.config.rekeyInterval)
        self.handshakeHash = hs.handshakeHash
        self.state = .established
        self.events.append(.established(nodeId: self.remoteNodeId!))
        // Our hello is the first transport message, sent without waiting for theirs.
        self.queueControl(.hello, stream: 0, body: self.localHello.encoded)
    }

    func handlePlaintext(_ range: Range<Int>, now: UInt64) throws(ChannelError) {
        var offset = range.lowerBound
        let end = range.upperBound
        while offset < end {
            // kind u8, stream varint, length varint, body
            let kindByte = self.inbound[offset]
            offset += 1
            let stream = try self.readVarint(&offset, end: end)
            let length = try self.readVarint(&offset, end: end)
            guard length <= UInt64(end - offset) else { throw .protocolViolation("frame longer than its message") }
            let bodyRange = offset..<(offset + Int(length))
            offset += Int(length)
            guard let kind = FrameKind(rawValue: kindByte) else { continue }  // unknown frames are skipped
            try self.handleFrame(kind, stream: stream, body: bodyRange, now: now)
            if self.isClosed { return }
        }
    }

    func readVarint(_ offset: inout Int, end: Int) throws(ChannelError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw .protocolViolation("truncated varint") }
            let b = self.inbound[offset]
            offset += 1
            if shift == 63 && b > 1 { throw .protocolViolation("varint overflow") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 {
                // Canonical form only (as the codec's varint): no trailing zero group.
                if b == 0 && shift > 0 { throw .protocolViolation("non-canonical varint") }
                return result
            }
            shift += 7
            if shift > 63 { throw .protocolViolation("varint overflow") }
        }
    }

    func handleFrame(_ kind: FrameKind, stream: UInt64, body: Range<Int>, now: UInt64) throws(ChannelError) {
        if self.remoteHello == nil && kind != .hello && kind != .close {
            throw .protocolViolation("first frame is not a hello")
        }
        switch kind {
        case .hello:
            guard self.remoteHello == nil, stream == 0 else { throw .protocolViolation("second hello") }
            let hello: Hello
            do { hello = try Hello.decode(Array(self.inbound[body])) } catch { throw .codec(error) }
            guard hello.version == Hello.currentVersion else {
                self.close(code: ChannelCode.incompatibleVersion, reason: "protocol version \(hello.version) not supported")
                throw .incompatibleVersion(hello.version)
            }
            guard hello.genesisHash == self.localHello.genesisHash || self.config.acceptAnyGenesis else {
                self.close(code: ChannelCode.genesisMismatch, reason: "genesis \(Hex.encode(self.localHello.genesisHash)) expected")
                throw .genesisMismatch(ours: Hex.encode(self.localHello.genesisHash), theirs: Hex.encode(hello.genesisHash))
            }
            self.remoteHello = hello
            self.events.append(.hello(hello))
        case .open:
            guard stream != 0, (stream % 2 == 1) == (self.role == .responder) else { throw .protocolViolation("bad stream id \(stream) in OPEN") }
            guard self.streams[stream] == nil else { throw .protocolViolation("stream \(stream) opened twice") }
            guard body.count <= 64, let name = String(validating: self.inbound[body], as: UTF8.self) else {
                throw .protocolViolation("bad protocol name")
            }
            if self.remoteStreams >= self.config.maxStreams {
                self.refusedOpens += 1
                // A peer that keeps opening past the limit is flooding us with RESETs to send.
                guard self.refusedOpens <= self.config.maxStreams else { throw .protocolViolation("too many streams opened past the limit") }
                self.queueControl(.reset, stream: stream, body: Self.u16(ChannelCode.tooManyStreams))
                return
            }
            self.insertStream(stream, StreamState(protocolName: name, sendWindow: self.config.streamWindow,
                                                  receiveWindow: self.config.streamWindow, now: now), remote: true)
            self.events.append(.streamOpened(stream, protocolName: name))
        case .data:
            try self.handleData(stream: stream, body: body)
        case .window:
            var o = body.lowerBound
            let inc = try self.readVarint(&o, end: body.upperBound)
            guard inc <= UInt64(Int32.max) else { throw .protocolViolation("window increment too large") }
            guard let s = self.streams[stream] else { return }  // stream already gone
            s.sendWindow += Int(inc)
            s.windowBlockedSince = nil
            guard s.sendWindow <= 1 << 40 else { throw .protocolViolation("window overflow") }
            if s.hasPending && !self.readyStreams.contains(stream) { self.readyStreams.append(stream) }
        case .reset:
            guard body.count >= 2 else { throw .protocolViolation("short RESET") }
            let code = UInt16(self.inbound[body.lowerBound]) << 8 | UInt16(self.inbound[body.lowerBound + 1])
            if self.removeStream(stream) != nil {
                self.events.append(.streamReset(stream, code: code))
            }
        case .close:
            var r = ByteReader(Array(self.inbound[body]))
            let code = (try? r.u16()) ?? 0
            let reason = (try? r.string(limit: 256)) ?? ""
            self.finish(.remoteClosed(code: code, reason: reason))
        case .ping:
            guard body.count <= 64 else { throw .protocolViolation("ping too large") }
            guard self.takePingToken(now: now) else {
                // Past the budget PINGs are not answered; a peer that keeps flooding (more than
                // `maxDroppedPings` dropped within 10 s) is dropped.
                if now &- self.pingWindowStart > 10_000_000_000 {
                    self.pingWindowStart = now
                    self.pingsDropped = 0
                }
                self.pingsDropped += 1
                if self.pingsDropped > self.config.maxDroppedPings { throw .protocolViolation("ping flood") }
                return
            }
            self.queueControl(.pong, stream: 0, body: Array(self.inbound[body]))
        case .pong:
            self.events.append(.pong(Array(self.inbound[body])))
        }
    }

    func handleData(stream: StreamID, body: Range<Int>) throws(ChannelError) {
        guard let s = self.streams[stream] else {
            // Data for a stream we reset or never knew: a stale frame after RESET is normal,
            // but data on a stream id nobody opened is a violation.
            let opener = stream % 2 == 1 ? Role.initiator : Role.responder
            if opener == self.role && stream < self.nextStreamID { return }
            if opener != self.role { return }
            throw .protocolViolation("DATA on unknown stream \(stream)")
        }
        guard !s.remoteFinished else { throw .protocolViolation("DATA after FIN on stream \(stream)") }
        s.lastActivity = self.now
        var o = body.lowerBound
        guard o < body.upperBound else { throw .protocolViolation("empty DATA") }
        let flags = DataFlags(rawValue: self.inbound[o])
        o += 1
        if flags.contains(.first) {
            guard s.partial == nil else { throw .protocolViolation("new message before the last ended") }
            let wire = try self.readVarint(&o, end: body.upperBound)
            let original = flags.contains(.compressed) ? try self.readVarint(&o, end: body.upperBound) : wire
            let limit = UInt64(self.config.maxMessageSize)
            guard original <= limit else { throw .messageTooLarge(declared: Int(min(original, 1 << 40)), limit: self.config.maxMessageSize) }
            guard wire <= limit + limit / 255 + 16 else { throw .messageTooLarge(declared: Int(min(wire, 1 << 40)), limit: self.config.maxMessageSize) }
            // Nothing is reserved ahead of the bytes: a declared size is a claim, and memory
            // follows what arrives (counted in `reassemblyBytes`).
            s.partial = []
            s.partialSince = self.now
            s.partialExpected = Int(wire)
            s.partialOriginal = Int(original)
            s.partialCompressed = flags.contains(.compressed)
        } else if s.partial == nil {
            throw .protocolViolation("continuation without a first chunk")
        }
        let chunk = body.upperBound - o
        s.receiveWindow -= chunk
        guard s.receiveWindow >= 0 else { throw .flowControlViolation(stream: stream) }
        guard s.partial!.count + chunk <= s.partialExpected else { throw .protocolViolation("message longer than declared") }
        self.reassemblyBytes += chunk
        guard self.reassemblyBytes <= self.config.maxReassemblyBytes else { throw .bufferLimit("reassembly") }
        s.partial!.append(contentsOf: self.inbound[o..<body.upperBound])
        // Grant window back as chunks arrive; memory is bounded by the reassembly limit.
        s.receiveCredit += chunk
        if s.receiveCredit >= self.config.streamWindow / 2 {
            var w = ByteWriter()
            w.varint(s.receiveCredit)
            self.queueControl(.window, stream: stream, body: w.bytes)
            s.receiveWindow += s.receiveCredit
            s.receiveCredit = 0
        }
        if flags.contains(.last) {
            guard s.partial!.count == s.partialExpected else { throw .protocolViolation("message shorter than declared") }
            var message = s.partial!
            self.reassemblyBytes -= message.count
            s.partial = nil
            if s.partialCompressed {
                do { message = try LZ4.decompress(message, originalSize: s.partialOriginal, limit: self.config.maxMessageSize) } catch {
                    throw .crypto(error)
                }
            }
            self.events.append(.message(stream, message))
            if flags.contains(.fin) {
                s.remoteFinished = true
                self.events.append(.streamFinished(stream))
            }
        }
        if s.remoteFinished && s.localFinished && !s.hasPending && s.partial == nil {
            self.removeStream(stream)
        }
    }

    func insertStream(_ id: StreamID, _ s: StreamState, remote: Bool) {
        self.streams[id] = s
        if remote { self.remoteStreams += 1 } else { self.localStreams += 1 }
    }

    /// Removes a stream and releases what it held (queued bytes, reassembly); the one place a
    /// stream leaves the table.
    @discardableResult
    func removeStream(_ id: StreamID) -> StreamState? {
        guard let s = self.streams.removeValue(forKey: id) else { return nil }
        self.queuedBytes -= s.outgoing[s.outgoingHead...].reduce(0) { $0 + $1.body.count - $1.offset }
        self.reassemblyBytes -= s.partial?.count ?? 0
        self.readyStreams.removeAll { $0 == id }
        if self.isRemote(id) { self.remoteStreams -= 1 } else { self.localStreams -= 1 }
        return s
    }

    /// Whether the peer opened `id` (odd ids are the initiator's).
    func isRemote(_ id: StreamID) -> Bool { (id % 2 == 1) == (self.role == .responder) }

    // MARK: Application API

    /// Opens a stream for `protocolName` (≤ 64 bytes). The peer sees `.streamOpened`.
    public func openStream(protocolName: String) throws(ChannelError) -> StreamID {
        guard self.isEstablished else { throw .protocolViolation("channel not established") }
        guard self.localStreams < self.config.maxStreams else { throw .bufferLimit("too many open streams") }
        let id = self.nextStreamID
        self.nextStreamID += 2
        let name = Array(protocolName.utf8.prefix(64))
        self.insertStream(id, StreamState(protocolName: protocolName, sendWindow: self.config.streamWindow,
                                          receiveWindow: self.config.streamWindow, now: self.now), remote: false)
        self.queueControl(.open, stream: id, body: name)
        return id
    }

    /// Streams open now (either side's).
    public var streamCount: Int { self.streams.count }

    /// The protocol a stream was opened for.
    public func protocolName(of stream: StreamID) -> String? { self.streams[stream]?.protocolName }

    /// Queues one message on `stream`. Large messages are split into frames, compressed with
    /// LZ4 when that pays (or as `compress` says), and interleaved fairly with other streams.
    public func send(_ message: [UInt8], on stream: StreamID, finish: Bool = false, compress: Bool? = nil) throws(ChannelError) {
        guard self.isEstablished else { throw .protocolViolation("channel not established") }
        guard let s = self.streams[stream] else { throw .protocolViolation("unknown stream \(stream)") }
        guard !s.localFinished else { throw .protocolViolation("stream \(stream) already finished") }
        guard message.count <= self.config.maxMessageSize else {
            throw .messageTooLarge(declared: message.count, limit: self.config.maxMessageSize)
        }
        guard self.queuedBytes + message.count <= self.config.maxQueuedBytes else { throw .bufferLimit("send queue full") }
        var body = message
        var flags: DataFlags = [.first]
        let wantCompression = compress ?? (message.count >= self.config.compressionThreshold)
        if wantCompression && !message.isEmpty, let c = try? LZ4.compress(message), c.count * 10 < message.count * 9 {
            body = c
            flags.insert(.compressed)
        }
        if finish {
            flags.insert(.fin)
            s.localFinished = true
        }
        s.outgoing.append(OutgoingMessage(body: body, offset: 0, flags: flags, originalLength: message.count))
        self.queuedBytes += body.count
        if !self.readyStreams.contains(stream) { self.readyStreams.append(stream) }
    }

    /// Abandons a stream; the peer sees `.streamReset`.
    public func reset(stream: StreamID, code: UInt16 = ChannelCode.cancelled) {
        guard self.removeStream(stream) != nil else { return }
        if self.isEstablished { self.queueControl(.reset, stream: stream, body: Self.u16(code)) }
    }

    /// Sends a ping; the answer arrives as `.pong` with the same bytes.
    public func ping(_ payload: [UInt8]) {
        guard self.isEstablished else { return }
        self.queueControl(.ping, stream: 0, body: Array(payload.prefix(64)))
    }

    /// Closes the channel with a reason the peer will see. Flush ``takeOutbound(maxBytes:)``
    /// afterwards to send it.
    public func close(code: UInt16 = ChannelCode.normal, reason: String = "") {
        guard !self.isClosed else { return }
        if self.isEstablished {
            var w = ByteWriter()
            w.u16(code)
            w.string(String(reason.utf8.prefix(256)) ?? "")
            // The close frame goes out ahead of queued data, but after our hello if that is still
            // queued (so the peer learns who we are and why we closed).
            let at = self.controlFrames.first?.first == FrameKind.hello.rawValue ? 1 : 0
            self.controlFrames.insert(Self.frame(.close, 0, w.bytes), at: at)
            self.readyStreams.removeAll()
            self.closeAfterFlush = true
        }
        self.finish(nil)
    }

    /// Timeouts, checked by the driver now and then (every few seconds): the handshake
    /// deadline, then per stream — a peer's stream silent for `streamIdleTimeout`, a message
    /// whose first chunk came `partialTimeout` ago and is still not complete, and our data
    /// waiting `windowStallTimeout` for a WINDOW — each resets that stream. Nothing a peer
    /// started is held forever.
    public func tick(now: Instant) throws(ChannelError) {
        let now = now.nanoseconds
        self.now = max(self.now, now)
        if self.inboundStart == self.inboundEnd && !self.inbound.isEmpty {
            self.inbound = []
            self.inboundStart = 0
            self.inboundEnd = 0
            self.inboundLarge = false
        }
        if case .handshake = self.state, now &- self.startedAt > self.config.handshakeTimeout.nanoseconds {
            self.fail(.handshakeTimeout)
            throw .handshakeTimeout
        }
        guard self.isEstablished else { return }
        var expired: [StreamID] = []
        for (id, s) in self.streams {
            if s.partial != nil, now &- s.partialSince > self.config.partialTimeout.nanoseconds {
                expired.append(id)
            } else if let since = s.windowBlockedSince, s.hasPending, now &- since > self.config.windowStallTimeout.nanoseconds {
                expired.append(id)
            } else if self.isRemote(id), !s.remoteFinished, now &- s.lastActivity > self.config.streamIdleTimeout.nanoseconds {
                expired.append(id)
            }
        }
        for id in expired.sorted() {
            self.events.append(.streamReset(id, code: ChannelCode.timeout))
            self.reset(stream: id, code: ChannelCode.timeout)
        }
    }

    /// Events since the last call.
    public func takeEvents() -> [ChannelEvent] {
        defer { self.events.removeAll(keepingCapacity: true) }
        return self.events
    }

    /// Whether ``takeOutbound(maxBytes:)`` would return bytes.
    public var hasOutbound: Bool {
        !self.handshakeOut.isEmpty || (self.sendCipher != nil && (!self.controlFrames.isEmpty || self.hasSendableData))
    }

    var hasSendableData: Bool {
        self.readyStreams.contains { id in
            guard let s = self.streams[id] else { return false }
            return s.hasPending && s.sendWindow > 0
        }
    }

    /// Bytes to write to the socket, at most about `maxBytes` (whole transport messages).
    /// Encryption happens here, so a socket that cannot take more does not make the
    /// connection encrypt (and buffer) ahead.
    public func takeOutbound(maxBytes: Int = 256 * 1024) -> [UInt8] {
        let handshake = self.handshakeOut
        self.handshakeOut = []
        guard let cipher = self.sendCipher else { return handshake }
        guard !self.controlFrames.isEmpty || self.hasSendableData else {
            self.bytesSent += handshake.count
            if self.closeAfterFlush && self.controlFrames.isEmpty { self.sendCipher = nil }
            return handshake
        }
        // One allocation, sized to what is queued (never past one transport message beyond
        // `maxBytes`): frames are packed into it and sealed where they lie, and large chunks
        // are encrypted straight from the application's message into it (no plaintext copy).
        let slack = 4096
        let wanted = self.controlFrames.bytes.addingReportingOverflow(self.queuedBytes).partialValue
        let capacity = handshake.count + min(maxBytes + 65_537, max(0, wanted) + slack)
        var failure: ChannelError?
        let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            handshake.withUnsafeBytes { h in if h.count > 0 { raw.baseAddress!.copyMemory(from: h.baseAddress!, byteCount: h.count) } }
            var w = handshake.count
            do throws(ChannelError) {
                while w < handshake.count + maxBytes {
                    guard let sealedEnd = try self.packRecord(into: raw, at: w, cipher: cipher) else { break }
                    w = sealedEnd
                }
            } catch {
                failure = error
            }
            initialized = w
        }
        if let failure { self.fail(failure) }
        self.bytesSent += out.count
        if self.closeAfterFlush && self.controlFrames.isEmpty { self.sendCipher = nil }
        return out
    }

    /// Chunks at least this long are encrypted from the message into the send buffer; shorter
    /// ones are copied next to their frame header and sealed with it (fewer cipher calls).
    static let gatherThreshold = 2048

    /// Packs control frames, then data chunks of the ready streams in turn, into one transport
    /// message at `start` of `out` (2-byte length, frames, tag) and seals it. Returns where it
    /// ends, or nil when nothing fitted or was ready (`out` is then untouched past `start`).
    func packRecord(into out: UnsafeMutableRawBufferPointer, at start: Int, cipher: TransportCipher) throws(ChannelError) -> Int? {
        let plainStart = start + 2
        // The record's plaintext: at most 65,535 − 16 bytes, and what the buffer holds.
        let limit = min(65_535 - 16, out.count - plainStart - 16)
        guard limit >= 64 else { return nil }
        var w = plainStart
        func put(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { b in if b.count > 0 { (out.baseAddress! + w).copyMemory(from: b.baseAddress!, byteCount: b.count) } }
            w += bytes.count
        }
        func putVarint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                out[w] = UInt8(truncatingIfNeeded: v) | 0x80
                w += 1
                v >>= 7
            }
            out[w] = UInt8(v)
            w += 1
        }
        func varintSize(_ value: UInt64) -> Int { value < 0x80 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7 }
        // Control frames first.
        while let f = self.controlFrames.first, w - plainStart + f.count <= limit {
            put(f)
            self.controlFrames.removeFirst()
        }
        // Then data, one chunk per ready stream in turn.
        self.gathered.removeAll(keepingCapacity: true)
        var rounds = 0
        while w - plainStart < limit - 64, !self.readyStreams.isEmpty, rounds < self.readyStreams.count * 2 {
            rounds += 1
            let id = self.readyStreams.removeFirst()
            guard let s = self.streams[id], s.hasPending else { continue }
            if s.sendWindow <= 0 {
                if s.windowBlockedSince == nil { s.windowBlockedSince = self.now }
                continue  // re-added on WINDOW
            }
            let msg = s.outgoing[s.outgoingHead]
            let room = limit - (w - plainStart) - 32
            let remaining = msg.body.count - msg.offset
            let chunk = min(remaining, room, s.sendWindow)
            if chunk <= 0 && remaining > 0 {
                self.readyStreams.insert(id, at: 0)
                break
            }
            var flags = DataFlags()
            if msg.offset == 0 {
                flags.insert(.first)
                if msg.flags.contains(.compressed) { flags.insert(.compressed) }
            }
            let isLast = chunk == remaining
            if isLast {
                flags.insert(.last)
                if msg.flags.contains(.fin) { flags.insert(.fin) }
            }
            // kind, stream, length, then the DATA body: flags, the sizes on FIRST, the chunk.
            var headerCount = 1
            if flags.contains(.first) {
                headerCount += varintSize(UInt64(msg.body.count))
                if flags.contains(.compressed) { headerCount += varintSize(UInt64(msg.originalLength)) }
            }
            out[w] = FrameKind.data.rawValue
            w += 1
            putVarint(id)
            putVarint(UInt64(headerCount + chunk))
            out[w] = flags.rawValue
            w += 1
            if flags.contains(.first) {
                putVarint(UInt64(msg.body.count))
                if flags.contains(.compressed) { putVarint(UInt64(msg.originalLength)) }
            }
            if chunk >= Self.gatherThreshold {
                self.gathered.append(TransportCipher.Gathered(source: msg.body, sourceOffset: msg.offset, count: chunk, at: w))
            } else if chunk > 0 {
                msg.body.withUnsafeBytes { b in (out.baseAddress! + w).copyMemory(from: b.baseAddress! + msg.offset, byteCount: chunk) }
            }
            w += chunk
            s.sendWindow -= chunk
            self.queuedBytes -= chunk
            if isLast {
                s.outgoing[s.outgoingHead] = OutgoingMessage(body: [], offset: 0, flags: [], originalLength: 0)
                s.outgoingHead += 1
                if s.outgoingHead == s.outgoing.count {
                    s.outgoing.removeAll()
                    s.outgoingHead = 0
                } else if s.outgoingHead > 1024 {
                    s.outgoing.removeFirst(s.outgoingHead)
                    s.outgoingHead = 0
                }
            } else {
                s.outgoing[s.outgoingHead].offset += chunk
            }
            let done = s.localFinished && !s.hasPending && s.remoteFinished && s.partial == nil
            if done {
                self.removeStream(id)
            } else if s.hasPending {
                self.readyStreams.append(id)
            }
        }
        let plainCount = w - plainStart
        guard plainCount > 0 else { return nil }
        try cipher.seal(out, plaintext: plainStart..<w, gathering: self.gathered)
        self.gathered.removeAll(keepingCapacity: true)
        let total = plainCount + 16
        out[start] = UInt8(total >> 8)
        out[start + 1] = UInt8(total & 0xff)
        self.messagesSent += 1
        return w + 16
    }

    // MARK: Fuzzing support

    /// A connection already past its handshake, with the given transport keys (32 bytes
    /// each) and peer: two of them with swapped keys talk to each other at once. For
    /// structure-aware fuzzing of the transport, whose inputs should not each pay for a Noise
    /// handshake (package only; the handshake has its own target).
    package static func established(role: Role, identity: NodeIdentity, hello: Hello, config: ChannelConfig, sendKey: [UInt8],
                                    receiveKey: [UInt8], remote: Ed25519.PublicKey, ephemeral: X25519.PrivateKey, now: Instant) -> SecureConnection {
        let c = SecureConnection(role: role, identity: identity, hello: hello, config: config, ephemeral: ephemeral, now: now)
        c.sendCipher = TransportCipher(key: SecureBytes(copying: sendKey), rekeyInterval: config.rekeyInterval)
        c.receiveCipher = TransportCipher(key: SecureBytes(copying: receiveKey), rekeyInterval: config.rekeyInterval)
        c.remoteNodeId = remote
        c.state = .established
        c.events.append(.established(nodeId: remote))
        c.queueControl(.hello, stream: 0, body: hello.encoded)
        return c
    }

    /// Seals `plaintext` — frames, valid or not — as one transport message with this side's
    /// send cipher, length prefix included: what a peer that holds the session keys can put
    /// on the wire. For structure-aware fuzzing of the receiving side (package only).
    package func sealTransport(_ plaintext: [UInt8]) -> [UInt8]? {
        guard let cipher = self.sendCipher, plaintext.count <= 65_535 - 16 else { return nil }
        var out: [UInt8] = [0, 0]
        out.append(contentsOf: plaintext)
        out.append(contentsOf: [UInt8](repeating: 0, count: 16))
        do { try cipher.seal(&out, plaintext: 2..<(2 + plaintext.count)) } catch { return nil }
        let total = plaintext.count + 16
        out[0] = UInt8(total >> 8)
        out[1] = UInt8(total & 0xff)
        return out
    }

    // MARK: Helpers

    func queueControl(_ kind: FrameKind, stream: UInt64, body: [UInt8]) {
        self.controlFrames.append(Self.frame(kind, stream, body))
    }

    /// Bytes of control frames (PONG, WINDOW, RESET…) we owe the peer and have not encrypted
    /// yet. The driver stops reading from a peer while this is above its watermark: what a
    /// peer makes us answer counts against its connection.
    public var controlBacklogBytes: Int { self.controlFrames.bytes }

    func takePingToken(now: UInt64) -> Bool {
        let elapsed = now >= self.pingRefilledAt ? Double(now - self.pingRefilledAt) / 1e9 : 0
        self.pingRefilledAt = max(self.pingRefilledAt, now)
        self.pingTokens = min(Double(self.config.pingBurst), self.pingTokens + elapsed * self.config.pingsPerSecond)
        guard self.pingTokens >= 1 else { return false }
        self.pingTokens -= 1
        return true
    }

    static func frame(_ kind: FrameKind, _ stream: UInt64, _ body: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: body.count + 8)
        Frame.encode(kind: kind, stream: stream, body: body, into: &w)
        return w.bytes
    }

    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    func fail(_ error: ChannelError) {
        guard !self.isClosed else { return }
        // Tell the peer why when we can.
        switch error {
        case .genesisMismatch, .incompatibleVersion, .remoteClosed: break
        default:
            if self.isEstablished, self.sendCipher != nil {
                var w = ByteWriter()
                w.u16(ChannelCode.protocolError)
                w.string(String(error.description.utf8.prefix(200)) ?? "protocol error")
                self.controlFrames.insert(Self.frame(.close, 0, w.bytes), at: 0)
                self.readyStreams.removeAll()
                self.closeAfterFlush = true
            }
        }
        self.finish(error)
    }

    func finish(_ error: ChannelError?) {
        guard !self.isClosed else { return }
        self.closeReason = error
        self.state = .closed
        self.streams.removeAll()
        self.remoteStreams = 0
        self.localStreams = 0
        self.reassemblyBytes = 0
        self.queuedBytes = 0
        self.readyStreams.removeAll()
        self.inbound = []
        self.inboundStart = 0
        self.inboundEnd = 0
        self.events.append(.closed(error))
        if !self.closeAfterFlush { self.controlFrames.removeAll() }
    }
}
