import MeshHTTP
import Testing

/// The RPC server's HTTP and WebSocket readers: bounds, refusals and the handshake.
@Suite("HTTP and WebSocket codecs")
struct WebSocketCodecTests {
    static func masked(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        var f = WebSocketFrameWriter.frame(opcode: opcode, payload, mask: [1, 2, 3, 4])
        if !fin { f[0] &= 0x7F }
        return f
    }

    @Test("the handshake answer of RFC 6455's example key")
    func accept() {
        #expect(WebSocketHandshake.accept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(Base64.decode("dGhlIHNhbXBsZSBub25jZQ==").map { String(decoding: $0, as: UTF8.self) } == "the sample nonce")
        for bad in ["abc", "ab=c", "====", "a===", "dGhl!HNh"] { #expect(Base64.decode(bad) == nil, "\(bad)") }
        for n in 0..<8 {
            let bytes = (0..<n).map { UInt8($0 * 37 & 0xFF) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }

    @Test("requests: pipelined, split anywhere, keep-alive by version")
    func requests() throws {
        let raw = Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".utf8)
        for cut in 0...raw.count {
            var p = HTTPRequestParser()
            var got: [HTTPRequest] = []
            p.append(raw[0..<cut])
            while let r = try p.next() { got.append(r) }
            p.append(raw[cut...])
            while let r = try p.next() { got.append(r) }
            #expect(got.count == 2, "cut at \(cut)")
            #expect(got.first?.body == Array("hello".utf8) && got.first?.keepAlive == true)
            #expect(got.last?.target == "/a" && got.last?.keepAlive == true && got.last?.minorVersion == 0)
        }
    }

    @Test("hostile requests are refused before their bytes are kept", arguments: [
        ("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 400),
        ("get / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),
    ])
    func hostileRequests(raw: String, status: Int) {
        var p = HTTPRequestParser(maxBodyBytes: 1 << 20)
        p.append(Array(raw.utf8))
        #expect { _ = try p.next() } throws: { ($0 as? HTTPRequestError)?.status == status }
    }

    @Test("a header that never ends is refused at the header limit")
    func endlessHeader() {
        var p = HTTPRequestParser(maxHeaderBytes: 1024)
        p.append(Array("GET / HTTP/1.1\r\n".utf8))
        var refused = false
        for _ in 0..<100 {
            p.append(Array("X-A: bbbbbbbbbbbbbbbbbbbbbbbb\r\n".utf8))
            do { _ = try p.next() } catch {
                refused = error == .headerTooLarge
                break
            }
        }
        #expect(refused && p.bufferedCount < 4096)
    }

    @Test("frames: masked text, fragments, control frames between fragments")
    func frames() throws {
        var r = WebSocketFrameReader(maxMessageBytes: 64)
        let bytes = Self.masked(1, Array("hel".utf8), fin: false) + Self.masked(9, [7]) + Self.masked(0, Array("lo".utf8))
            + Self.masked(2, [0xFF, 0]) + Self.masked(8, [0x03, 0xE8] + Array("bye".utf8))
        var events: [WebSocketEvent] = []
        for b in bytes {  // one byte at a time
            r.append([b])
            while let e = try r.next() { events.append(e) }
        }
        #expect(events == [.ping([7]), .text(Array("hello".utf8)), .binary([0xFF, 0]), .close(code: 1000, reason: "bye")])
    }

    static let hostile: [([UInt8], UInt16)] = [
        ([0x81, 0x05, 104, 101, 108, 108, 111], 1002),  // unmasked from a client
        ([0x81, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0], 1009),  // 4 GiB announced: refused before any payload
        ([0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], 1002),  // top bit of the 64-bit length
        ([0x81, 0xFE, 0, 5, 1, 2, 3, 4], 1002),  // 16-bit length not in shortest form
        ([0xC1, 0x80, 1, 2, 3, 4], 1002),  // reserved bit (no extensions)
        ([0x83, 0x80, 1, 2, 3, 4], 1002),  // unknown opcode
        ([0x09, 0x80, 1, 2, 3, 4], 1002),  // fragmented ping
        ([0x89, 0xFE, 0, 126, 1, 2, 3, 4], 1002),  // ping over 125 bytes
        ([0x80, 0x80, 1, 2, 3, 4], 1002),  // continuation without a start
    ]

    @Test("hostile frames are refused by the header alone", arguments: Self.hostile)
    func hostileFrames(bytes: [UInt8], code: UInt16) {
        var r = WebSocketFrameReader(maxMessageBytes: 1 << 20)
        r.append(bytes)
        #expect { _ = try r.next() } throws: { ($0 as? WebSocketError)?.closeCode == code }
        #expect(r.bufferedCount <= bytes.count)
    }

    @Test("a fragmented message is bounded as a whole, and text must be UTF-8")
    func messageBounds() {
        var r = WebSocketFrameReader(maxMessageBytes: 10)
        r.append(Self.masked(1, [UInt8](repeating: 65, count: 6), fin: false) + Self.masked(0, [UInt8](repeating: 65, count: 6)))
        #expect { _ = try r.next() } throws: { ($0 as? WebSocketError) == .messageTooBig(12) }
        var t = WebSocketFrameReader()
        t.append(Self.masked(1, [0xC3, 0x28]))
        #expect { _ = try t.next() } throws: { ($0 as? WebSocketError) == .invalidText }
    }

    @Test("frames written and read back at each length encoding")
    func roundTrip() throws {
        for n in [0, 125, 126, 65_535, 65_536, 200_000] {
            let payload = (0..<n).map { UInt8($0 & 0xFF) }
            var server = WebSocketFrameReader(maxMessageBytes: 1 << 20, requireMask: false)
            server.append(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.binary, payload))
            #expect(try server.next() == .binary(payload), "\(n)")
            var client = WebSocketFrameReader(maxMessageBytes: 1 << 20, requireMask: true)
            client.append(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.binary, payload, mask: [9, 8, 7, 6]))
            #expect(try client.next() == .binary(payload), "\(n)")
        }
    }
}
