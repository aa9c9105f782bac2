import Foundation
import MeshCodec
import MeshCrypto
@testable import MeshClient
import MeshChain
@testable import MeshSubnet
import MeshTestSupport
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

extension HostileRPCTests {
    static func answer(_ json: String, status: String = "200 OK") -> String { HostileHTTPServer.answer(json, status: status) }

    @Test("RPC client: a negative, signed, huge or conflicting Content-Length, a bad status line and an endless header are errors")
    func hostileHeaders() throws {
        let ok = #"{"jsonrpc":"2.0","id":1,"result":{"number":42}}"#
        let cases: [(String, String)] = [
            ("negative length", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n\(ok)"),
            ("signed length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n\(ok)"),
            ("huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n\(ok)"),
            ("length over the cap", "HTTP/1.1 200 OK\r\nContent-Length: \(RPCClient.maxAnswerBytes + 1)\r\n\r\n\(ok)"),
            ("conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: \(ok.utf8.count)\r\n\r\n\(ok)"),
            ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(ok)"),
            ("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n\(ok)"),
            ("server error", Self.answer(#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"too big"}}"#, status: "413 Payload Too Large")),
            ("endless header", "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 200_000)),
            ("short body", "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n\(ok)"),
        ]
        for (name, response) in cases {
            let server = try HostileHTTPServer { fd, _ in HostileHTTPServer.write(fd, response) }
            defer { server.stop() }
            let client = try ChainClient(url: server.url)
            #expect(throws: RPCClient.Failure.self, "\(name)") { try client.head() }
        }
        // The same server with an honest answer works (the harness is not what fails).
        let honest = try HostileHTTPServer { fd, _ in HostileHTTPServer.write(fd, Self.answer(ok)) }
        defer { honest.stop() }
        #expect(try ChainClient(url: honest.url).head() == 42)
    }

    @Test("RPC client: one deadline per call, so a server dribbling its answer cannot hold the caller")
    func dribble() throws {
        let response = Array(Self.answer(#"{"jsonrpc":"2.0","id":1,"result":{"number":42}}"#).utf8)
        let server = try HostileHTTPServer { fd, _ in
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

    @Test("RPC client: URLs with https, IPv6, paths and default ports are taken; others are refused")
    func urls() throws {
        let cases: [(String, String, String, UInt16)] = [
            ("http://127.0.0.1:9944", "http://127.0.0.1:9944/", "127.0.0.1", 9944),
            ("127.0.0.1:9944", "http://127.0.0.1:9944/", "127.0.0.1", 9944),
            ("https://node.example.org/rpc", "https://node.example.org/rpc", "node.example.org", 443),
            ("http://node.example.org", "http://node.example.org/", "node.example.org", 80),
            ("http://[::1]:9944", "http://[::1]:9944/", "::1", 9944),
            ("ws://127.0.0.1:9944", "http://127.0.0.1:9944/", "127.0.0.1", 9944),
            ("wss://node.example.org:8443/ws", "https://node.example.org:8443/ws", "node.example.org", 8443),
        ]
        for (text, url, host, port) in cases {
            let c = try RPCClient(url: text)
            #expect(c.url.absoluteString == url && c.host == host && c.port == port, "\(text) -> \(c.url) \(c.host) \(c.port)")
        }
        for bad in ["ftp://x:1", "http://:9944", "http://127.0.0.1:70000", "http://user:pw@127.0.0.1:9944", "http://127.0.0.1:9944/?q=1", ""] {
            #expect(throws: RPCClient.Failure.self, "\(bad)") { try RPCClient(url: bad) }
        }
    }

    @Test("RPC client: an answer is its body on 200, nothing on 204, an error naming the status otherwise")
    func answers() throws {
        #expect(try RPCClient.answer(status: 200, body: [1, 2]) == [1, 2])
        #expect(try RPCClient.answer(status: 204, body: [1]) == [])
        #expect { try RPCClient.answer(status: 413, body: Array(#"{"error":{"message":"too big"}}"#.utf8)) } throws: { "\($0)".contains("413: too big") }
        #expect { try RPCClient.answer(status: 500, body: []) } throws: { "\($0)".contains("HTTP status 500") }
    }
}

extension HostileRPCTests {
    static let genesisHex = String(repeating: "ab", count: 32)

    @Test("chain client: a stake netuid past 65535 and a head near 2^64 are errors, not traps")
    func chainClientRanges() throws {
        let server = try HostileHTTPServer(rpc: { method, _ in
            switch method {
            case "state_getAccount": return #"{"balance":1,"nonce":0,"stakes":[{"hotkey":"aa","netuid":70000,"amount":5,"coldkey":"bb"}]}"#
            case "chain_getGenesis": return "\"\(Self.genesisHex)\""
            case "chain_getHead": return #"{"number":18446744073709551615}"#
            case "state_getParams": return #"{"baseFee":1}"#
            default: return nil
            }
        })
        defer { server.stop() }
        let client = try ChainClient(url: server.url)
        let key = Ed25519.PrivateKey()
        #expect { try client.account(key.publicKey) } throws: { "\($0)".contains("netuid 70000 is out of range") }
        // head + lifetime overflowed in submit; now refused before anything is signed or sent.
        #expect { try client.submit(.transfer(to: key.publicKey, amount: 1), key: key, nonce: 0) } throws: { "\($0)".contains("too close to 2^64") }
    }

    @Test("subnet SDK: stake sums saturate, and min_allowed_weights past Int is an error, not a trap")
    func sdkRanges() async throws {
        let hot = Ed25519.PrivateKey()
        let cold = Ed25519.PrivateKey()
        let metagraph = metagraphJSON(n: 1, entries: 1)
        guard case .object(var members) = metagraph else { return }
        members = members.map { $0.0 == "hotkeys" ? ($0.0, .array([.string(hot.publicKey.hex)])) : $0 }
        let mgText = JSONValue.object(members).serialized()
        let max = "18446744073709551615"
        let server = try HostileHTTPServer(rpc: { method, _ in
            switch method {
            case "state_getAccount":
                let stake = #"{"hotkey":"\#(hot.publicKey.hex)","netuid":1,"amount":\#(max),"coldkey":"\#(cold.publicKey.hex)"}"#
                return #"{"balance":\#(max),"nonce":0,"stakes":[\#(stake),\#(stake)]}"#
            case "chain_getGenesis": return "\"\(Self.genesisHex)\""
            case "chain_getHead": return #"{"number":100}"#
            case "subnet_getMetagraph": return mgText
            case "weights_nextAllowedBlock": return "1"
            case "subnet_list": return #"[{"netuid":1,"hyperparameters":{"min_allowed_weights":\#(max)},"epochs":0,"burn":0}]"#
            default: return nil
            }
        })
        defer { server.stop() }
        let ctx = try SubnetContext(rpcURL: server.url, netuid: 1, hotkey: hot, coldkey: cold, log: { _ in })
        // Two stakes of 2^64 - 1 each: the sum saturates, which is "enough", so nothing is submitted.
        try await ctx.ensureStake(10)
        let v = try await SubnetValidator(ctx, stake: 0)
        try await v.refreshMetagraph()
        await #expect { try await v.maybeSetWeights() } throws: { "\($0)".contains("min_allowed_weights = \(max), out of range") }
        v.dendrite.close()
    }

    @Test("durations from options or chain data: NaN, negatives, infinity and 1e20 s sleep a bounded time")
    func sleeps() {
        #expect(sleepNanos(seconds: .nan) == 0)
        #expect(sleepNanos(seconds: -5) == 0)
        #expect(sleepNanos(seconds: 0.5) == 500_000_000)
        #expect(sleepNanos(seconds: .infinity) == 86_400_000_000_000)
        #expect(sleepNanos(seconds: 1e20) == 86_400_000_000_000)
    }
}
