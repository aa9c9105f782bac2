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
