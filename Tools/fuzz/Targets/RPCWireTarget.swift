import MeshHTTP

/// The RPC server's readers of what a client sends: HTTP/1.x requests and, after an
/// upgrade, WebSocket frames — bytes split into chunks anywhere.
enum RPCWireTarget {
    static let maxBody = 4096
    static let maxHeader = 2048

    static let target = FuzzTarget("rpc-wire", "the RPC server's HTTP request and WebSocket frame readers, bytes split anywhere", seeds: {
        [[0] + Array("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".utf8),
         [1] + WebSocketFrameWriter.frame(opcode: 1, Array("{\"id\":1}".utf8), mask: [1, 2, 3, 4])
            + WebSocketFrameWriter.frame(opcode: 9, [1], mask: [0, 0, 0, 0])]
    }) { b in
        var input = FuzzInput(b)
        let websocket = input.bool()
        let body = input.rest()
        var i = 0
        if websocket {
            var r = WebSocketFrameReader(maxMessageBytes: Self.maxBody, requireMask: true)
            while i < body.count {
                let n = max(1, Int(body[i] % 97))
                let chunk = body[i..<min(body.count, i + n)]
                r.append(chunk)
                i += n
                do {
                    while let e = try r.next() {
                        switch e {
                        case .text(let m), .binary(let m):
                            check(m.count <= Self.maxBody, "a WebSocket message over the bound")
                            // What was read is what a client's frame of it carries.
                            var again = WebSocketFrameReader(maxMessageBytes: Self.maxBody, requireMask: true)
                            again.append(WebSocketFrameWriter.frame(opcode: { if case .text = e { return 1 } else { return 2 } }(), m, mask: [9, 9, 9, 9]))
                            check((try? again.next()) == e, "a WebSocket message does not survive a round trip")
                        case .ping(let p), .pong(let p): check(p.count <= 125, "a control frame over 125 bytes")
                        case .close: break
                        }
                    }
                } catch { return }
                // Held bytes: at most one frame header, one bounded message and one chunk.
                check(r.bufferedCount <= 2 * Self.maxBody + 14 + 97, "the frame reader holds \(r.bufferedCount) bytes")
            }
        } else {
            var p = HTTPRequestParser(maxHeaderBytes: Self.maxHeader, maxBodyBytes: Self.maxBody)
            while i < body.count {
                let n = max(1, Int(body[i] % 97))
                p.append(body[i..<min(body.count, i + n)])
                i += n
                do {
                    while let request = try p.next() {
                        check(request.body.count <= Self.maxBody, "a request body over the bound")
                        check(request.headers.allSatisfy { $0.name == $0.name.lowercased() }, "a header name not in lower case")
                    }
                } catch { return }
                check(p.bufferedCount <= Self.maxHeader + Self.maxBody + 4 + 97, "the request parser holds \(p.bufferedCount) bytes")
            }
        }
    }
}
