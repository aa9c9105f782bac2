/// One HTTP/1.x request as the JSON-RPC server reads it.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Header fields in arrival order, names in lower case.
    public var headers: [HTTPField]
    public var body: [UInt8]

    public init(method: String, target: String, minorVersion: Int = 1, headers: [HTTPField] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
    }

    /// The first value of a header (name in any case), or nil.
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return self.headers.first { $0.name == n }?.value
    }

    /// The comma-separated tokens of a header, lower-cased (e.g. `Connection: keep-alive, Upgrade`).
    public func tokens(_ name: String) -> [String] {
        let n = name.lowercased()
        return self.headers.filter { $0.name == n }.flatMap { $0.value.split(separator: ",") }
            .map { $0.trimmingWhitespace().lowercased() }
    }

    /// Whether the connection stays open after the answer (HTTP/1.1 unless `close`; HTTP/1.0
    /// only with `keep-alive`).
    public var keepAlive: Bool {
        let t = self.tokens("connection")
        return self.minorVersion >= 1 ? !t.contains("close") : t.contains("keep-alive")
    }
}

/// A header field.
public struct HTTPField: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Why a request could not be read; each maps to the status the server answers before it
/// closes the connection.
public enum HTTPRequestError: Error, Equatable, Sendable {
    case badRequest(String)
    case headerTooLarge
    case bodyTooLarge(Int)
    case lengthRequired
    case notImplemented(String)

    /// The HTTP status to answer with.
    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .headerTooLarge: return 431
        case .bodyTooLarge: return 413
        case .lengthRequired: return 411
        case .notImplemented: return 501
        }
    }

    public var message: String {
        switch self {
        case .badRequest(let s): return "bad request: \(s)"
        case .headerTooLarge: return "request header too large"
        case .bodyTooLarge(let n): return "request body of \(n) bytes is too large"
        case .lengthRequired: return "Content-Length required"
        case .notImplemented(let s): return "not implemented: \(s)"
        }
    }
}

/// Reads HTTP/1.x requests from a byte stream that may be hostile (sans-IO: bytes in,
/// requests out). Every length is bounded before anything is buffered for it: the header
/// block (``maxHeaderBytes``, searched once per byte), the body (``maxBodyBytes``, checked
/// against Content-Length before the body arrives). Requests with Transfer-Encoding are
/// refused (JSON-RPC clients send a length), as are folded header lines and conflicting
/// lengths (request smuggling).
public struct HTTPRequestParser: Sendable {
    public let maxHeaderBytes: Int
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    private var start = 0
    /// Bytes after `start` already searched for the end of the header block.
    private var scanned = 0
    private var pending: (request: HTTPRequest, length: Int)?

    public init(maxHeaderBytes: Int = 16 << 10, maxBodyBytes: Int = 1 << 20) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Bytes received and not yet consumed by a request.
    public var bufferedCount: Int { self.buffer.count - self.start }

    /// Adds received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if self.start > 0 && self.start >= self.buffer.count / 2 {
            self.buffer.removeFirst(self.start)
            self.start = 0
        }
        self.buffer.append(contentsOf: bytes)
    }

    /// The bytes after the last request (what a client sent past an upgrade request), which
    /// the parser then forgets.
    public mutating func takeRemaining() -> [UInt8] {
        let rest = Array(self.buffer[self.start...])
        self.buffer = []
        self.start = 0
        self.scanned = 0
        return rest
    }

    /// The next complete request, or nil until more bytes arrive.
    public mutating func next() throws(HTTPRequestError) -> HTTPRequest? {
        if self.pending == nil {
            let b = self.buffer
            var i = self.start + max(0, self.scanned - 3)
            while i + 3 < b.count && !(b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10) { i += 1 }
            guard i + 3 < b.count else {
                self.scanned = b.count - self.start
                if self.scanned > self.maxHeaderBytes { throw .headerTooLarge }
                return nil
            }
            guard i - self.start <= self.maxHeaderBytes else { throw .headerTooLarge }
            self.pending = try Self.parseHead(b[self.start..<i], maxBody: self.maxBodyBytes)
            self.start = i + 4
            self.scanned = 0
        }
        guard let (request, length) = self.pending, self.buffer.count - self.start >= length else { return nil }
        var r = request
        r.body = Array(self.buffer[self.start..<(self.start + length)])
        self.start += length
        self.pending = nil
        return r
    }

    static func parseHead(_ head: ArraySlice<UInt8>, maxBody: Int) throws(HTTPRequestError) -> (HTTPRequest, Int) {
        // Header bytes must be visible ASCII, tabs and spaces (no NUL, no bare CR, no UTF-8
        // tricks): names and values are compared as ASCII.
        for c in head where !(c == 9 || c == 10 || c == 13 || (c >= 32 && c < 127)) { throw .badRequest("non-ASCII byte in the header") }
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        let first = lines.popFirst() ?? ""
        let parts = first.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isUppercase }), !parts[1].isEmpty else {
            throw .badRequest("request line \(first.prefix(60))")
        }
        let minor: Int
        switch parts[2] {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        default: throw .badRequest("version \(parts[2].prefix(20))")
        }
        var headers: [HTTPField] = []
        var length: Int?
        for line in lines {
            guard let first = line.first else { throw .badRequest("empty header line") }
            guard first != " " && first != "\t" else { throw .badRequest("folded header line") }
            guard !line.utf8.contains(13) && !line.utf8.contains(10) else { throw .badRequest("bare CR or LF in a header line") }
            guard let colon = line.firstIndex(of: ":") else { throw .badRequest("header line without a colon") }
            let name = line[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else { throw .badRequest("header name \(name.prefix(40))") }
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            let field = HTTPField(name.lowercased(), value)
            headers.append(field)
            guard headers.count <= 100 else { throw .headerTooLarge }
            switch field.name {
            case "content-length":
                guard !value.isEmpty, value.utf8.count <= 12, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value) else {
                    throw .badRequest("Content-Length \(value.prefix(20))")
                }
                if let earlier = length, earlier != n { throw .badRequest("conflicting Content-Length headers") }
                length = n
            case "transfer-encoding":
                throw .notImplemented("Transfer-Encoding (send a Content-Length)")
            default: break
            }
        }
        let method = String(parts[0])
        if length == nil && method == "POST" { throw .lengthRequired }
        let n = length ?? 0
        guard n <= maxBody else { throw .bodyTooLarge(n) }
        return (HTTPRequest(method: method, target: String(parts[1]), minorVersion: minor, headers: headers), n)
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(c)
        }
    }
}

/// Writes HTTP/1.1 responses.
public enum HTTPResponseWriter {
    /// The reason phrase of the statuses the server uses.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }

    /// A complete response: status line, headers (Content-Length added unless 101/204), body.
    public static func response(status: Int, headers: [HTTPField] = [], body: [UInt8] = []) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for h in headers { head += "\(h.name): \(h.value)\r\n" }
        if status != 101 && status != 204 { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
