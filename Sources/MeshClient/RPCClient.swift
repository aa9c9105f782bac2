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
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(self.host, String(self.port), &hints, &res) == 0, let ai = res else { throw .connection("cannot resolve \(self.host)") }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, 0)
        guard fd >= 0 else { throw .connection(String(cString: strerror(errno))) }
        defer { close(fd) }
        var tv = timeval(tv_sec: self.timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw .connection("\(self.host):\(self.port): \(String(cString: strerror(errno)))")
        }
        let head = "POST / HTTP/1.1\r\nHost: \(self.host):\(self.port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw .connection("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { throw .connection("receive: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            response += buf[0..<n]
            if response.count > 64 << 20 { throw .http("answer too large") }
            if let body = Self.completeBody(response) { return body }
        }
        guard let body = Self.completeBody(response, eof: true) else { throw .http("incomplete HTTP answer") }
        return body
    }

    /// The body once headers and Content-Length bytes (or EOF) have arrived.
    static func completeBody(_ r: [UInt8], eof: Bool = false) -> [UInt8]? {
        guard let split = (0..<max(0, r.count - 3)).first(where: { r[$0] == 13 && r[$0 + 1] == 10 && r[$0 + 2] == 13 && r[$0 + 3] == 10 }) else { return nil }
        let head = String(decoding: r[0..<split], as: UTF8.self).lowercased()
        let bodyStart = split + 4
        for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            let n = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            return r.count - bodyStart >= n ? Array(r[bodyStart..<(bodyStart + n)]) : nil
        }
        return eof ? Array(r[bodyStart...]) : nil
    }
}
