import Foundation
import MeshCodec

/// An HTTP server on 127.0.0.1 that answers whatever a test tells it to, for answers a real
/// node never sends (hostile or broken servers). Each connection's request is read whole
/// (head and Content-Length body), then `respond` writes to the socket, which is closed after.
public final class HostileHTTPServer: @unchecked Sendable {
    // Safety: `fd` and `port` are set in init and never change.
    let fd: Int32
    public let port: UInt16

    struct SetupFailed: Error {}

    public init(_ respond: @escaping @Sendable (_ fd: Int32, _ requestBody: [UInt8]) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw SetupFailed()
        }
        var len = size
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }  // closed by stop()
                Thread.detachNewThread {
                    respond(c, Self.readRequest(c))
                    close(c)
                }
            }
        }
    }

    /// A JSON-RPC server: `result` maps a method and its params to the result's JSON text
    /// (nil: a method-not-found error).
    public convenience init(rpc result: @escaping @Sendable (_ method: String, _ params: JSONValue) -> String?) throws {
        try self.init { fd, body in
            let request = (try? JSONValue.parse(body)) ?? .null
            let method = request["method"]?.string ?? ""
            let json = result(method, request["params"] ?? .null).map { #"{"jsonrpc":"2.0","id":1,"result":\#($0)}"# }
                ?? #"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no method \#(method)"}}"#
            Self.write(fd, Self.answer(json))
        }
    }

    public var url: String { "http://127.0.0.1:\(self.port)" }

    public func stop() {
        shutdown(self.fd, Int32(SHUT_RDWR))
        close(self.fd)
    }

    /// A complete HTTP/1.1 answer with `json` as its body.
    public static func answer(_ json: String, status: String = "200 OK") -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\nConnection: close\r\n\r\n\(json)"
    }

    public static func write(_ fd: Int32, _ text: String) { write(fd, Array(text.utf8)) }

    public static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// The request's body (the client's requests are small and well formed).
    static func readRequest(_ c: Int32) -> [UInt8] {
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var bodyStart: Int?
        var length = 0
        while true {
            if let start = bodyStart, got.count - start >= length { return Array(got[start..<(start + length)]) }
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return bodyStart.map { Array(got[$0...]) } ?? [] }
            got += buf[0..<n]
            if bodyStart == nil, got.count >= 4,
               let i = (0...(got.count - 4)).first(where: { got[$0] == 13 && got[$0 + 1] == 10 && got[$0 + 2] == 13 && got[$0 + 3] == 10 }) {
                bodyStart = i + 4
                let head = String(decoding: got[0..<i], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
    }
}
