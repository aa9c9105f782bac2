import Dispatch
import Foundation
import MeshCodec
import MeshCrypto
import MeshQuery
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The bridge from a miner to a local model server: each admitted, verified request body is
/// POSTed to `http://HOST:PORT/PATH` and the server's answer becomes the miner's answer, so a
/// PyTorch, scikit-learn or llama.cpp server becomes a miner without Swift.
///
/// The request carries `Content-Type: application/json` (the synapse's body as the caller
/// sent it) and the headers `X-Tensormesh-Synapse`, `X-Tensormesh-Netuid` and
/// `X-Tensormesh-Caller` (the validator's hotkey, hex). `{synapse}` in the path is replaced by
/// the synapse's name. A `200` answer with a `Content-Length` is one body; a chunked answer is
/// streamed chunk by chunk, and a `text/event-stream` answer event by event (each event's
/// `data`; a final `data: [DONE]` is dropped). Any other status is a refusal: 400 and 413
/// pass through, the rest become 500.
///
/// The server is trusted no more than a peer: its head is at most 64 KiB, its body at most
/// ``maxResponseBytes``, chunk sizes are checked, and the whole exchange ends at the
/// request's deadline or after ``timeoutSeconds``, whichever is first.
public struct HTTPForwarder: Sendable {
    public let host: String
    public let port: UInt16
    public let path: String
    /// Longest exchange with the server, seconds (the request's own deadline may end it sooner).
    public var timeoutSeconds: Double = 30
    /// Largest request body forwarded (larger ones are refused with 413).
    public var maxRequestBytes: Int = 1 << 20
    /// Largest answer taken from the server, all chunks together.
    public var maxResponseBytes: Int = 8 << 20
    static let maxHead = 64 << 10

    /// Parses `http://HOST:PORT/PATH` (HOST an IPv4 address or `localhost`).
    public init(url: String) throws {
        guard url.hasPrefix("http://") else { throw SubnetError("--forward-url must start with http:// (a local model server)") }
        let rest = url.dropFirst(7)
        let hostPort = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(hostPort.count)
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]), port > 0 else {
            throw SubnetError("--forward-url \(url): expected http://HOST:PORT/PATH")
        }
        let host = String(hostPort[..<colon])
        self.host = host == "localhost" ? "127.0.0.1" : host
        guard self.host.split(separator: ".").count == 4, inet_addr(self.host) != INADDR_NONE else {
            throw SubnetError("--forward-url \(url): the host must be an IPv4 address or localhost")
        }
        self.port = port
        self.path = path.isEmpty ? "/" : String(path)
        guard self.path.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { throw SubnetError("--forward-url \(url): bad path") }
    }

    /// Forwards one request; the answer as the axon sends it.
    public func forward(_ req: QueryRequest) async throws -> QueryReply {
        guard req.body.count <= self.maxRequestBytes else {
            throw QueryError(.payloadTooLarge, "body of \(req.body.count) bytes exceeds the forwarder's limit of \(self.maxRequestBytes)")
        }
        let nowMs = UInt64(Date().timeIntervalSince1970 * 1000)
        let byDeadline = Double(req.header.deadline.subtractingSaturated(nowMs)) / 1000
        let seconds = max(0.001, min(self.timeoutSeconds.isFinite ? self.timeoutSeconds : 30, byDeadline))
        let path = self.path.replacingOccurrences(of: "{synapse}", with: req.header.synapse)
        let head = """
            POST \(path) HTTP/1.1\r
            Host: \(self.host):\(self.port)\r
            Content-Type: application/json\r
            Content-Length: \(req.body.count)\r
            X-Tensormesh-Synapse: \(req.header.synapse)\r
            X-Tensormesh-Netuid: \(req.header.netuid)\r
            X-Tensormesh-Caller: \(req.header.caller.hex)\r
            Connection: close\r
            \r

            """
        return try await self.exchangeReply(Array(head.utf8) + req.body, seconds: seconds)
    }

    /// Sends a whole HTTP/1.1 request and returns the answer as the axon sends it.
    func exchangeReply(_ request: [UInt8], seconds: Double) async throws -> QueryReply {
        let exchange = Exchange(deadline: DispatchTime.now().uptimeNanoseconds.addingSaturated(UInt64(max(0.001, min(seconds, 3600)) * 1e9)),
                                maxBody: self.maxResponseBytes)
        let (host, port) = (self.host, self.port)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<QueryReply, any Error>) in
                DispatchQueue.global().async { exchange.run(host: host, port: port, request: request, reply: cont) }
            }
        } onCancel: {
            exchange.abort()
        }
    }
}

/// One exchange with the model server, run blocking on a dispatch thread.
final class Exchange: Sendable {
    let deadline: UInt64
    let maxBody: Int
    /// The socket while it is open (-1 after), so a cancellation can shut it down.
    let fd = Mutex<Int32>(-1)
    let aborted = Atomic<Bool>(false)

    init(deadline: UInt64, maxBody: Int) {
        self.deadline = deadline
        self.maxBody = maxBody
    }

    func abort() {
        self.aborted.store(true, ordering: .relaxed)
        self.fd.withLock { if $0 >= 0 { _ = shutdown($0, Int32(SHUT_RDWR)) } }
    }

    struct Failure: Error { let status: QueryStatus; let message: String }

    func run(host: String, port: UInt16, request: [UInt8], reply: CheckedContinuation<QueryReply, any Error>) {
        var streaming: AsyncThrowingStream<[UInt8], any Error>.Continuation?
        do {
            let s = try self.connect(host: host, port: port)
            defer { self.fd.withLock { close($0); $0 = -1 } }
            try self.send(s, request)
            var reader = Reader(exchange: self, socket: s)
            let head = try reader.head()
            guard head.status == 200 else {
                let text = String(decoding: (try? reader.bodyPrefix(head, limit: 200)) ?? [], as: UTF8.self)
                let status: QueryStatus = head.status == 400 ? .badRequest : head.status == 413 ? .payloadTooLarge : .internalError
                throw Failure(status: status, message: "model server answered \(head.status)\(text.isEmpty ? "" : ": \(text)")")
            }
            if let n = head.contentLength, !head.chunked, !head.eventStream {
                reply.resume(returning: .body(try reader.exactly(n)))
                return
            }
            // Streamed: hand the axon a stream now and feed it as the server writes.
            // Unbounded in count, bounded in bytes: everything yielded counts against maxBody.
            let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream(bufferingPolicy: .unbounded)
            continuation.onTermination = { [weak self] _ in self?.abort() }
            reply.resume(returning: .stream(stream))
            streaming = continuation
            var total = 0
            var events = EventStreamParser()
            func emit(_ piece: [UInt8]) throws {
                if head.eventStream {
                    for e in try events.feed(piece, limit: self.maxBody) where e != Array("[DONE]".utf8) { continuation.yield(e) }
                } else if !piece.isEmpty {
                    continuation.yield(piece)
                }
            }
            while let piece = head.chunked ? try reader.nextChunk() : try reader.some() {
                total += piece.count
                guard total <= self.maxBody else { throw Failure(status: .internalError, message: "model server answer exceeds \(self.maxBody) bytes") }
                try emit(piece)
            }
            if head.eventStream { for e in events.finish() where e != Array("[DONE]".utf8) { continuation.yield(e) } }
            continuation.finish()
        } catch {
            let e = (error as? Failure).map { QueryError($0.status, $0.message) } ?? QueryError(.internalError, "model server: \(error)")
            // A stream already handed over ends with the error (the axon answers with its status).
            if let c = streaming { c.finish(throwing: e) } else { reply.resume(throwing: e) }
        }
    }

    func remaining() throws -> timeval {
        let now = DispatchTime.now().uptimeNanoseconds
        guard now < self.deadline, !self.aborted.load(ordering: .relaxed) else {
            throw Failure(status: .timeout, message: "model server did not answer in time")
        }
        let left = self.deadline - now
        return timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: max(1, Int(left % 1_000_000_000 / 1000)))
    }

    func setTimeouts(_ s: Int32) throws {
        var tv = try self.remaining()
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func connect(host: String, port: UInt16) throws -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw Failure(status: .internalError, message: "socket: \(String(cString: strerror(errno)))") }
        self.fd.withLock { $0 = s }
        if self.aborted.load(ordering: .relaxed) { throw Failure(status: .timeout, message: "cancelled") }
        try self.setTimeouts(s)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            throw Failure(status: .unavailable, message: "model server at \(host):\(port) unreachable: \(String(cString: strerror(errno)))")
        }
        return s
    }

    func send(_ s: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            try self.setTimeouts(s)
            let n = bytes.withUnsafeBytes { Glibc.send(s, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(status: .internalError, message: "model server: send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// The response head as far as the forwarder needs it.
    struct Head {
        var status = 0
        var contentLength: Int?
        var chunked = false
        var eventStream = false
    }

    /// Buffered reads with the exchange's deadline.
    struct Reader {
        let exchange: Exchange
        let socket: Int32
        var buffer: [UInt8] = []
        var eof = false

        init(exchange: Exchange, socket: Int32) {
            self.exchange = exchange
            self.socket = socket
        }

        /// Reads more bytes; false at the end of the stream.
        mutating func fill() throws -> Bool {
            guard !self.eof else { return false }
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                try self.exchange.setTimeouts(self.socket)
                let n = chunk.withUnsafeMutableBytes { recv(self.socket, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { _ = try self.exchange.remaining(); continue }
                guard n >= 0 else { throw Failure(status: .internalError, message: "model server: receive: \(String(cString: strerror(errno)))") }
                if n == 0 { self.eof = true; return false }
                self.buffer += chunk[0..<n]
                return true
            }
        }

        /// Index just past the first CRLF at or after `from`, filling as needed; nil at EOF.
        mutating func line(limit: Int) throws -> [UInt8]? {
            var scanned = 0
            while true {
                if let i = self.buffer[scanned...].firstIndex(of: 10) {
                    let line = Array(self.buffer[..<i])
                    self.buffer.removeFirst(i + 1)
                    return line.last == 13 ? Array(line.dropLast()) : line
                }
                scanned = self.buffer.count
                guard self.buffer.count <= limit else { throw Failure(status: .internalError, message: "model server sent a line longer than \(limit) bytes") }
                guard try self.fill() else { return nil }
            }
        }

        mutating func head() throws -> Head {
            var h = Head()
            var used = 0
            guard let status = try self.line(limit: HTTPForwarder.maxHead) else {
                throw Failure(status: .internalError, message: "model server closed without an answer")
            }
            used += status.count
            let parts = String(decoding: status, as: UTF8.self).split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]) else {
                throw Failure(status: .internalError, message: "model server: not an HTTP status line")
            }
            h.status = code
            while let line = try self.line(limit: HTTPForwarder.maxHead - used) {
                used += line.count + 2
                guard used <= HTTPForwarder.maxHead else { throw Failure(status: .internalError, message: "model server head too long") }
                if line.isEmpty { return h }
                let text = String(decoding: line, as: UTF8.self)
                guard let colon = text.firstIndex(of: ":") else { continue }
                let name = text[..<colon].lowercased()
                let value = String(text[text.index(after: colon)...]).trimmingCharacters(in: CharacterSet.whitespaces)
                switch name {
                case "content-length":
                    guard value.utf8.count <= 12, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value) else {
                        throw Failure(status: .internalError, message: "model server: bad Content-Length")
                    }
                    guard n <= self.exchange.maxBody else {
                        throw Failure(status: .internalError, message: "model server answer of \(n) bytes exceeds \(self.exchange.maxBody)")
                    }
                    h.contentLength = n
                case "transfer-encoding":
                    guard value.lowercased() == "chunked" else { throw Failure(status: .internalError, message: "model server: unsupported Transfer-Encoding \(value.prefix(40))") }
                    h.chunked = true
                case "content-type":
                    h.eventStream = value.lowercased().hasPrefix("text/event-stream")
                default: break
                }
            }
            throw Failure(status: .internalError, message: "model server closed inside its head")
        }

        mutating func exactly(_ n: Int) throws -> [UInt8] {
            while self.buffer.count < n {
                guard try self.fill() else { throw Failure(status: .internalError, message: "model server closed after \(self.buffer.count) of \(n) bytes") }
            }
            let out = Array(self.buffer[..<n])
            self.buffer.removeFirst(n)
            return out
        }

        /// Whatever arrives next; nil at the end of the stream.
        mutating func some() throws -> [UInt8]? {
            if self.buffer.isEmpty, try !self.fill() { return nil }
            defer { self.buffer = [] }
            return self.buffer
        }

        /// The next chunk of a chunked body; nil after the last.
        mutating func nextChunk() throws -> [UInt8]? {
            guard let sizeLine = try self.line(limit: 1024) else { throw Failure(status: .internalError, message: "model server ended inside a chunked body") }
            let hex = String(decoding: sizeLine.prefix { $0 != UInt8(ascii: ";") }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard !hex.isEmpty, hex.count <= 8, let size = Int(hex, radix: 16) else { throw Failure(status: .internalError, message: "model server: bad chunk size") }
            guard size <= self.exchange.maxBody else { throw Failure(status: .internalError, message: "model server: chunk of \(size) bytes") }
            if size == 0 {
                while let trailer = try self.line(limit: 8192), !trailer.isEmpty {}
                return nil
            }
            let data = try self.exactly(size)
            guard let end = try self.line(limit: 2), end.isEmpty else { throw Failure(status: .internalError, message: "model server: chunk not followed by CRLF") }
            return data
        }

        mutating func bodyPrefix(_ h: Head, limit: Int) throws -> [UInt8] {
            if let n = h.contentLength { return try self.exactly(min(n, limit)) }
            return Array((try self.some() ?? []).prefix(limit))
        }
    }
}

/// Splits a `text/event-stream` into the `data` of its events (lines joined with LF).
struct EventStreamParser {
    var pending: [UInt8] = []
    var data: [UInt8]?

    mutating func feed(_ bytes: [UInt8], limit: Int) throws -> [[UInt8]] {
        self.pending += bytes
        var out: [[UInt8]] = []
        while let i = self.pending.firstIndex(of: 10) {
            var line = Array(self.pending[..<i])
            self.pending.removeFirst(i + 1)
            if line.last == 13 { line.removeLast() }
            if line.isEmpty {
                if let d = self.data { out.append(d) }
                self.data = nil
            } else if line.starts(with: Array("data:".utf8)) {
                var value = line.dropFirst(5)
                if value.first == 32 { value = value.dropFirst() }
                if self.data != nil { self.data! += [10] + value } else { self.data = Array(value) }
            }
        }
        guard self.pending.count + (self.data?.count ?? 0) <= limit else {
            throw Exchange.Failure(status: .internalError, message: "model server event longer than \(limit) bytes")
        }
        return out
    }

    mutating func finish() -> [[UInt8]] {
        defer { self.data = nil }
        return self.data.map { [$0] } ?? []
    }
}
