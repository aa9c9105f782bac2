import Foundation
import MeshCodec
import MeshCrypto
@testable import MeshClient
import MeshSubnet
import Testing

/// A metagraph answer with `entries` neurons that claims `n` of them.
func metagraphJSON(n: UInt64, entries: Int, netuid: UInt64 = 1, port: UInt64 = 8091) -> JSONValue {
    let key = JSONValue.string(Ed25519.PrivateKey().publicKey.hex)
    func vec(_ v: JSONValue) -> JSONValue { .array([JSONValue](repeating: v, count: entries)) }
    let axon = JSONValue.object([("ip", "127.0.0.1"), ("port", .int(port)), ("nodeId", key)])
    return .object([
        ("netuid", .int(netuid)), ("n", .int(n)), ("block", 7),
        ("hotkeys", vec(key)), ("coldkeys", vec(key)), ("S", vec(.int(1))), ("C", vec(.double(0.5))), ("I", vec(.double(0.5))),
        ("D", vec(.double(0.5))), ("E", vec(.int(1))), ("Tv", vec(.double(0.5))), ("last_update", vec(.int(1))),
        ("validator_permit", vec(.bool(true))), ("axons", vec(axon)),
    ])
}

@Suite("Hostile RPC answers")
struct HostileRPCTests {
    @Test("metagraph: n beyond Int or beyond 65536 neurons, and out-of-range netuids and ports, are errors, not traps")
    func metagraphBounds() throws {
        let ok = try Metagraph.parse(metagraphJSON(n: 3, entries: 3))
        #expect(ok.neurons.map(\.uid) == [0, 1, 2])
        #expect(ok.neurons[2].axon?.port == 8091)
        // 2^64 - 1 neurons (Int(UInt64) trapped).
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(metagraphJSON(n: .max, entries: 0)) }
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(metagraphJSON(n: UInt64(Int.max) + 1, entries: 0)) }
        // 65537 consistent entries: uid 65536 does not fit in a u16 (UInt16(u) trapped).
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(metagraphJSON(n: 65_537, entries: 65_537)) }
        // The largest subnet still parses, up to uid 65535.
        let full = try Metagraph.parse(metagraphJSON(n: 65_536, entries: 65_536))
        #expect(full.neurons.last?.uid == 65_535)
        // netuid and ports are refused, not clamped (clamping misreported subnet 70000 as 65535).
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(metagraphJSON(n: 1, entries: 1, netuid: 70_000)) }
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(metagraphJSON(n: 1, entries: 1, port: 65_536)) }
        // A missing count is an error too.
        guard case .object(let members) = metagraphJSON(n: 0, entries: 0) else { return }
        #expect(throws: RPCClient.Failure.self) { try Metagraph.parse(.object(members.filter { $0.0 != "n" })) }
    }
}

/// A one-shot-per-connection HTTP server on 127.0.0.1 that answers whatever a test tells it
/// to (for hostile answers the node's server would never send). Each accepted connection
/// reads the request head, then runs `respond` with the socket.
final class HostileHTTPServer: @unchecked Sendable {
    // Safety: `fd` and `port` are set in init and read-only afterwards.
    let fd: Int32
    let port: UInt16

    init(_ respond: @escaping @Sendable (_ fd: Int32) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw RPCClient.Failure.connection("test server cannot listen") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }  // closed by stop()
                Thread.detachNewThread {
                    // Read the request head (the client's requests are small).
                    var got: [UInt8] = []
                    var buf = [UInt8](repeating: 0, count: 4096)
                    while !got.containsTerminator {
                        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        got += buf[0..<n]
                    }
                    respond(c)
                    close(c)
                }
            }
        }
    }

    var url: String { "http://127.0.0.1:\(self.port)" }

    func stop() {
        shutdown(self.fd, Int32(SHUT_RDWR))
        close(self.fd)
    }

    /// Writes all of `text`.
    static func write(_ fd: Int32, _ text: String) { write(fd, Array(text.utf8)) }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}

extension Array where Element == UInt8 {
    var containsTerminator: Bool {
        guard self.count >= 4 else { return false }
        return (0...(self.count - 4)).contains { self[$0] == 13 && self[$0 + 1] == 10 && self[$0 + 2] == 13 && self[$0 + 3] == 10 }
    }
}

extension HostileRPCTests {
    static func answer(_ json: String, status: String = "200 OK", extra: String = "") -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(json)"
    }

    @Test("RPC client: a negative, signed, huge or conflicting Content-Length, a bad status line and an endless header are errors")
    func hostileHeaders() throws {
        let ok = #"{"jsonrpc":"2.0","id":1,"result":{"number":42}}"#
        let cases: [(String, String)] = [
            ("negative length", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n\(ok)"),
            ("signed length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n\(ok)"),
            ("huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n\(ok)"),
            ("length over the cap", "HTTP/1.1 200 OK\r\nContent-Length: \(HTTPResponseReader.maxBodyBytes + 1)\r\n\r\n\(ok)"),
            ("conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: \(ok.utf8.count)\r\n\r\n\(ok)"),
            ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(ok)"),
            ("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n\(ok)"),
            ("server error", Self.answer(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"too big"}}"#, status: "413 Payload Too Large")),
            ("endless header", "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 200_000)),
            ("short body", "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n\(ok)"),
        ]
        for (name, response) in cases {
            let server = try HostileHTTPServer { fd in HostileHTTPServer.write(fd, response) }
            defer { server.stop() }
            let client = try ChainClient(url: server.url)
            #expect(throws: RPCClient.Failure.self, "\(name)") { try client.head() }
        }
        // The same server with an honest answer works (the harness is not what fails).
        let honest = try HostileHTTPServer { fd in HostileHTTPServer.write(fd, Self.answer(ok)) }
        defer { honest.stop() }
        #expect(try ChainClient(url: honest.url).head() == 42)
    }

    @Test("RPC client: one deadline per call, so a server dribbling its answer cannot hold the caller")
    func dribble() throws {
        let response = Array(Self.answer(#"{"jsonrpc":"2.0","id":1,"result":{"number":42}}"#).utf8)
        let server = try HostileHTTPServer { fd in
            for b in response {
                HostileHTTPServer.write(fd, [b])
                Thread.sleep(forTimeInterval: 0.05)  // each byte well within any per-read timeout
            }
        }
        defer { server.stop() }
        var client = try RPCClient(url: server.url)
        client.timeoutSeconds = 1
        let started = Date()
        #expect(throws: RPCClient.Failure.self) { try client.call("chain_getHead") }
        let took = Date().timeIntervalSince(started)
        #expect(took < 2.5, "the call took \(took) s")
    }

    @Test("HTTP reader: the header is searched once, byte by byte feeding is linear, the body is cut at Content-Length")
    func reader() throws {
        var r = HTTPResponseReader()
        let text = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA".utf8)
        var out: HTTPResponseReader.Response?
        for b in text where out == nil { out = try r.feed([b][...]) }
        #expect(out == .init(status: 200, body: Array("hello".utf8)))
        // A header without end: refused once it passes 64 KiB, after linear work.
        var endless = HTTPResponseReader()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        let started = Date()
        var failed = false
        for _ in 0..<100 {
            do { _ = try endless.feed(chunk[...]) } catch {
                failed = true
                break
            }
        }
        #expect(failed)
        #expect(Date().timeIntervalSince(started) < 1)
        // No length: the body runs to the end of the connection.
        var eof = HTTPResponseReader()
        #expect(try eof.feed(Array("HTTP/1.0 200 OK\r\n\r\nabc".utf8)[...]) == nil)
        #expect(try eof.finish() == .init(status: 200, body: Array("abc".utf8)))
    }
}
