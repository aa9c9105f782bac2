import Foundation
import MeshCodec
import MeshCrypto
import MeshHTTP
#if canImport(Glibc)
import Glibc
#endif

/// A blocking JSON-RPC client over one WebSocket to a node (`ws://`, or the `http://` URL of
/// its RPC port), for subscriptions: the CLI's and the SDK's waits follow new heads and
/// watched transactions instead of polling.
///
/// Why our own: FoundationNetworking's `URLSessionWebSocketTask` needs a libcurl built with
/// WebSocket support, which Debian 12's is not; the frames are the project's `MeshHTTP`
/// codec (bounded, fuzzed), the socket a plain blocking one with a deadline per read. `wss://`
/// is not spoken; callers fall back to HTTP polling (``ChainClient``).
///
/// What the server sends is bounded here too: a message is at most ``maxMessageBytes``, and
/// notifications that arrive while a call waits for its answer are kept, at most
/// ``maxPending`` (the oldest are dropped past it).
public final class RPCWebSocket {
    public static let maxMessageBytes = 16 << 20
    public static let maxPending = 4096

    private var fd: Int32 = -1
    private var reader = WebSocketFrameReader(maxMessageBytes: RPCWebSocket.maxMessageBytes, requireMask: false)
    private var nextId = 1
    private var pending: [JSONValue] = []
    public let host: String
    public let port: UInt16

    /// Why the connection failed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { self.description = d }
    }

    /// Connects and upgrades: `ws://host[:port][/path]`, or an `http://` URL (the same port).
    public init(url: String, timeout: Double = 10) throws {
        guard var c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), ["ws", "http"].contains(scheme), let host = c.host, !host.isEmpty else {
            throw Failure("a WebSocket URL is ws://host:port or http://host:port (got \(url); wss and https are not spoken here)")
        }
        c.scheme = "http"
        let port = c.port.flatMap { UInt16(exactly: $0) } ?? 80
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        let path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(self.host, String(port), &hints, &res) == 0, let ai = res else { throw Failure("cannot resolve \(self.host)") }
        defer { freeaddrinfo(res) }
        self.fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, 0)
        guard self.fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
        self.setTimeout(timeout)
        guard connect(self.fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            let e = String(cString: strerror(errno))
            Glibc.close(self.fd)
            self.fd = -1
            throw Failure("\(self.host):\(port): \(e)")
        }
        let key = Base64.encode(SecureRandom.bytes(16))
        let hostHeader = self.host.contains(":") ? "[\(self.host)]:\(port)" : "\(self.host):\(port)"
        try self.send(Array("GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8))
        // The answer's header, byte by byte up to its end (at most 16 KiB), so no frame byte is read early.
        var head: [UInt8] = []
        while !(head.count >= 4 && head[head.count - 4] == 13 && head[head.count - 3] == 10 && head[head.count - 2] == 13 && head[head.count - 1] == 10) {
            guard head.count < 16 << 10 else { throw Failure("the handshake answer is too long") }
            var b: UInt8 = 0
            guard recv(self.fd, &b, 1, 0) == 1 else { throw Failure("the node closed the connection during the WebSocket handshake") }
            head.append(b)
        }
        let text = String(decoding: head, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 101"), text.lowercased().contains(WebSocketHandshake.accept(key: key).lowercased()) else {
            throw Failure("the node refused the WebSocket: \(text.split(separator: "\r\n").first ?? "")")
        }
    }

    deinit { self.close() }

    /// Closes the connection.
    public func close() {
        guard self.fd >= 0 else { return }
        _ = try? self.send(WebSocketFrameWriter.closeFrame(code: 1000, reason: "", mask: SecureRandom.bytes(4)))
        Glibc.close(self.fd)
        self.fd = -1
    }

    private func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1000 }  // zero would mean "forever"
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(self.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private func send(_ bytes: [UInt8]) throws {
        guard self.fd >= 0 else { throw Failure("the connection is closed") }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// The next message, waiting until `deadline`; nil when the deadline passes first.
    private func receive(until deadline: Date) throws -> JSONValue? {
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            do {
                if let e = try self.reader.next() {
                    switch e {
                    case .text(let t), .binary(let t):
                        do { return try JSONValue.parse(t) } catch { throw Failure("the node sent a message that is not JSON: \(error)") }
                    case .ping(let p): try self.send(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.pong, p, mask: SecureRandom.bytes(4)))
                    case .pong: break
                    case .close(let code, let reason): throw Failure("the node closed the WebSocket (\(code)\(reason.isEmpty ? "" : ": \(reason)"))")
                    }
                    continue
                }
            } catch let e as WebSocketError {
                throw Failure("bad WebSocket frames from the node: \(e.message)")
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            self.setTimeout(min(left, 3600))
            let n = buf.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { continue }
            guard n > 0 else { throw Failure("the node closed the connection") }
            self.reader.append(buf[0..<n])
        }
    }

    /// Calls a method and returns its result; notifications that arrive meanwhile are kept
    /// for ``next(timeout:)``.
    public func call(_ method: String, _ params: JSONValue = .array([]), timeout: Double = 30) throws -> JSONValue {
        let id = self.nextId
        self.nextId += 1
        let text = JSONValue.object([("jsonrpc", "2.0"), ("id", .int(id)), ("method", .string(method)), ("params", params)]).serialized()
        try self.send(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.text, Array(text.utf8), mask: SecureRandom.bytes(4)))
        let deadline = Date().addingTimeInterval(timeout)
        while let m = try self.receive(until: deadline) {
            if m["id"]?.int64 == Int64(id) {
                if let err = m["error"] {
                    throw RPCClient.Failure.rpc(code: Int(err["code"]?.int64 ?? 0), message: err["message"]?.string ?? "error", data: err["data"])
                }
                return m["result"] ?? .null
            }
            if m["method"] != nil {
                self.pending.append(m)
                if self.pending.count > Self.maxPending { self.pending.removeFirst() }
            }
        }
        throw Failure("no answer to \(method) within \(timeout) s")
    }

    /// Subscribes (`chain_subscribeNewHeads`, `author_submitAndWatchTransaction`, …) and returns the subscription id.
    public func subscribe(_ method: String, _ params: JSONValue = .array([])) throws -> String {
        guard let id = try self.call(method, params).string else { throw Failure("\(method) answered without a subscription id") }
        return id
    }

    /// The next notification (its subscription id and result), or nil when `timeout` passes.
    public func next(timeout: Double) throws -> (subscription: String, result: JSONValue)? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let m: JSONValue
            if !self.pending.isEmpty {
                m = self.pending.removeFirst()
            } else {
                guard let r = try self.receive(until: deadline) else { return nil }
                m = r
            }
            guard let params = m["params"], let sub = params["subscription"]?.string else { continue }
            return (sub, params["result"] ?? .null)
        }
    }
}
