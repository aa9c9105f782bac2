import Foundation

/// Why a test's HTTP exchange failed.
public struct HTTPExchangeFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { self.description = d }
}

/// A plain HTTP/1.0 GET on loopback (for /metrics); the body as text.
public func httpGet(port: UInt16, path: String) throws -> String {
    try httpExchange(port: port, "GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").body
}

/// One HTTP/1.0 exchange on loopback: the response head (status line and headers) and body.
public func httpExchange(port: UInt16, _ raw: String) throws -> (head: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPExchangeFailure("socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = port.bigEndian
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { throw HTTPExchangeFailure("cannot connect to port \(port)") }
    let request = Array(raw.utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { throw HTTPExchangeFailure("send failed") }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    let text = String(decoding: out, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw HTTPExchangeFailure("no HTTP answer from port \(port)") }
    return (String(text[..<split.lowerBound]), String(text[split.upperBound...]))
}

/// One HTTP/1.0 POST of a JSON body to loopback.
public func httpPost(port: UInt16, _ body: String) throws -> (head: String, body: String) {
    try httpExchange(port: port, "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
}
