import Dispatch
import Foundation
import MeshCodec
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking JSON-RPC 2.0 client over HTTP/1.1 (for the CLI and tools).
public struct RPCClient: Sendable {
    public let host: String
    public let port: UInt16
    public var timeoutSeconds: Int = 10

    /// Parses `http://HOST:PORT` (the default is the local node, http://127.0.0.1:9944).
    public init(url: String) throws {
        var rest = url
        if rest.hasPrefix("http://") { rest.removeFirst(7) }
        if rest.hasSuffix("/") { rest.removeLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else {
            throw Failure.connection("the RPC URL must look like http://127.0.0.1:9944, got \(url)")
        }
        self.host = String(rest[rest.startIndex..<colon])
        self.port = port
    }

    /// Why a call failed.
    public enum Failure: Error, CustomStringConvertible {
        case connection(String)
        case http(String)
        case rpc(code: Int, message: String, data: JSONValue?)

        public var description: String {
            switch self {
            case .connection(let s): return "cannot reach the node: \(s)"
            case .http(let s): return "bad answer from the node: \(s)"
            case .rpc(_, let m, _): return m
            }
        }
    }

    /// Calls `method` and returns its result.
    public func call(_ method: String, _ params: JSONValue = .array([])) throws(Failure) -> JSONValue {
        let request: JSONValue = .object([("jsonrpc", "2.0"), ("id", 1), ("method", .string(method)), ("params", params)])
        let body = Array(request.serialized().utf8)
        let raw = try self.post(body)
        let reply: JSONValue
        do { reply = try JSONValue.parse(raw) } catch { throw .http("not JSON: \(error)") }
        if let err = reply["error"] {
            throw .rpc(code: Int(err["code"]?.int64 ?? 0), message: err["message"]?.string ?? "error", data: err["data"])
        }
        return reply["result"] ?? .null
    }

    func post(_ body: [UInt8]) throws(Failure) -> [UInt8] {
        // One deadline for the whole call: a server that dribbles a byte just under the
        // receive timeout cannot hold the caller forever.
        let timeout = max(1, self.timeoutSeconds)
        let deadline = DispatchTime.now().uptimeNanoseconds.addingSaturated(UInt64(timeout).multipliedSaturated(by: 1_000_000_000))
        func remaining() throws(Failure) -> timeval {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { throw .connection("\(self.host):\(self.port): no complete answer within \(timeout) s") }
            let left = deadline - now
            // Never zero: a zero timeval means "block forever".
            return timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: max(1, Int(left % 1_000_000_000 / 1000)))
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(self.host, String(self.port), &hints, &res) == 0, let ai = res else { throw .connection("cannot resolve \(self.host)") }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, 0)
        guard fd >= 0 else { throw .connection(String(cString: strerror(errno))) }
        defer { close(fd) }
        func setTimeouts() throws(Failure) {
            var tv = try remaining()
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        try setTimeouts()  // SO_SNDTIMEO also bounds connect on Linux
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw .connection("\(self.host):\(self.port): \(String(cString: strerror(errno)))")
        }
        let head = "POST / HTTP/1.1\r\nHost: \(self.host):\(self.port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + body
        var sent = 0
        while sent < out.count {
            try setTimeouts()
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw .connection("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var reader = HTTPResponseReader()
        var buf = [UInt8](repeating: 0, count: 65536)
        var answer: HTTPResponseReader.Response?
        while answer == nil {
            try setTimeouts()
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { _ = try remaining() }  // throws once the deadline passed
                throw .connection("receive: \(String(cString: strerror(errno)))")
            }
            answer = n == 0 ? try reader.finish() : try reader.feed(buf[0..<n])
        }
        guard let answer else { throw .http("incomplete HTTP answer") }
        // 204: the server had nothing to answer (a JSON-RPC notification).
        if answer.status == 204 { return [] }
        guard answer.status == 200 else {
            let text = String(decoding: answer.body.prefix(200), as: UTF8.self)
            let message = (try? JSONValue.parse(answer.body))?["error"]?["message"]?.string ?? text
            throw .http("HTTP status \(answer.status)\(message.isEmpty ? "" : ": \(message)")")
        }
        return answer.body
    }
}

/// Reads one HTTP/1.x response as it arrives, from a server that may be hostile: the status
/// line must be well formed, the header is at most ``maxHeaderBytes`` and is searched only
/// once per byte, Content-Length must be plain digits within ``maxBodyBytes`` (and agree
/// with any repetition), and Transfer-Encoding is refused (a node always sends a length).
package struct HTTPResponseReader {
    static let maxHeaderBytes = 64 << 10
    static let maxBodyBytes = 64 << 20

    package struct Response: Equatable {
        package var status: Int
        package var body: [UInt8]
    }

    package init() {}

    private(set) var buffer: [UInt8] = []
    /// Bytes already searched for the end of the header.
    private var scanned = 0
    private var bodyStart: Int?
    private var status = 0
    /// nil: the body runs to the end of the connection.
    private var contentLength: Int?

    /// Adds received bytes; the response once it is complete.
    package mutating func feed(_ bytes: ArraySlice<UInt8>) throws(RPCClient.Failure) -> Response? {
        self.buffer.append(contentsOf: bytes)
        if self.bodyStart == nil {
            // Resume the search where it stopped (a terminator may straddle two reads).
            var i = max(0, self.scanned - 3)
            let b = self.buffer
            while i + 3 < b.count && !(b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10) { i += 1 }
            guard i + 3 < b.count else {
                self.scanned = b.count
                if b.count > Self.maxHeaderBytes { throw .http("HTTP header longer than \(Self.maxHeaderBytes) bytes") }
                return nil
            }
            guard i <= Self.maxHeaderBytes else { throw .http("HTTP header longer than \(Self.maxHeaderBytes) bytes") }
            try self.parseHead(b[0..<i])
            self.bodyStart = i + 4
        }
        let start = self.bodyStart!
        let have = self.buffer.count - start
        if let n = self.contentLength {
            return have >= n ? Response(status: self.status, body: Array(self.buffer[start..<(start + n)])) : nil
        }
        if have > Self.maxBodyBytes { throw .http("answer larger than \(Self.maxBodyBytes) bytes") }
        return nil
    }

    /// The connection ended: the response if it is complete.
    package mutating func finish() throws(RPCClient.Failure) -> Response {
        guard let start = self.bodyStart else { throw .http("the connection closed before the HTTP header was complete") }
        if let n = self.contentLength, self.buffer.count - start < n {
            throw .http("the connection closed after \(self.buffer.count - start) of \(n) body bytes")
        }
        return Response(status: self.status, body: Array(self.buffer[start..<(start + (self.contentLength ?? self.buffer.count - start))]))
    }

    private mutating func parseHead(_ head: ArraySlice<UInt8>) throws(RPCClient.Failure) {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        let statusLine = lines.popFirst() ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].utf8.count == 3,
              parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) }), let code = Int(parts[1]) else {
            throw .http("not an HTTP/1.1 status line: \(statusLine.prefix(80))")
        }
        self.status = code
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length":
                guard !value.isEmpty, value.utf8.count <= 12, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value) else {
                    throw .http("bad Content-Length \(value.prefix(40))")
                }
                guard n <= Self.maxBodyBytes else { throw .http("Content-Length \(n) exceeds \(Self.maxBodyBytes) bytes") }
                if let earlier = self.contentLength, earlier != n { throw .http("conflicting Content-Length headers") }
                self.contentLength = n
            case "transfer-encoding":
                throw .http("Transfer-Encoding \(value.prefix(40)) is not supported")
            default:
                break
            }
        }
    }
}
