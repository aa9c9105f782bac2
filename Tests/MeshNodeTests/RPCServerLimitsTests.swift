import Foundation
import MeshCodec
@testable import MeshNode
import Testing

/// The RPC server's input handling, as pure functions of the request (the live server is
/// exercised by the subnet end-to-end test).
@Suite("RPC server limits")
struct RPCServerLimitsTests {
    @Test("netuids past 65535 are invalid params, not clamped to subnet 65535")
    func netuids() throws {
        #expect(try RPCParams(value: .array([.int(65_535)])).netuid(0) == 65_535)
        #expect(try RPCParams(value: .object([("netuid", .int(7))])).netuid(0) == 7)
        for bad: JSONValue in [.int(70_000), .int(UInt64.max), .int(-1), .string("1")] {
            #expect { try RPCParams(value: .array([bad])).netuid(0) } throws: { ($0 as? RPCError)?.code == RPCError.invalidParams }
        }
    }

    @Test("the JSON parser accepts what the configured body limit lets in, and no more")
    func parseLimit() throws {
        let big = Array(("[" + String(repeating: "1,", count: 750_000) + "1]").utf8)  // 1.5 MB
        #expect(big.count > 1 << 20)
        #expect(try HTTPServices.parse(big, limit: 2 << 20).array?.count == 750_001)
        #expect(throws: JSONError.self) { try HTTPServices.parse(big, limit: 1 << 20) }
    }

    @Test("a batch has a cost budget: one full metagraph per batch, a hundred cheap calls")
    func batchBudget() {
        func call(_ method: String, _ params: JSONValue = .array([])) -> JSONValue {
            .object([("jsonrpc", "2.0"), ("id", 1), ("method", .string(method)), ("params", params)])
        }
        let full = call("subnet_getMetagraph", .object([("netuid", 1), ("full", true)]))
        #expect(HTTPServices.admitted([full, full, full]) == [true, false, false])
        #expect(HTTPServices.admitted([JSONValue](repeating: call("chain_getHead"), count: 100)).allSatisfy { $0 })
        let mixed = [full] + [JSONValue](repeating: call("chain_getHead"), count: 41)
        #expect(HTTPServices.admitted(mixed) == [Bool](repeating: true, count: 41) + [false])
        #expect(HTTPServices.admitted([JSONValue](repeating: call("subnet_getMetagraph", .array([1])), count: 11)).filter { $0 }.count == 10)
    }

    @Test("--rpc-cors: localhost origins by default, all, or an exact list; requests without an Origin always pass")
    func cors() {
        let local = CORSPolicy()
        for o in ["http://localhost", "http://localhost:3000", "https://127.0.0.1:8443", "http://[::1]:80"] { #expect(local.allows(o), "\(o)") }
        for o in ["http://localhost.evil.org", "http://localhost:0", "http://localhost:x", "https://evil.example", "null", "http://127.0.0.1.evil:1"] {
            #expect(!local.allows(o), "\(o)")
        }
        #expect(local.allows(nil))
        #expect(CORSPolicy(flag: "all")?.allows("https://evil.example") == true)
        let list = CORSPolicy(flag: "https://polkadot.js.org, http://localhost:3000")
        #expect(list?.allows("https://polkadot.js.org") == true && list?.allows("http://localhost:3001") == false)
        #expect(CORSPolicy(flag: "polkadot.js.org") == nil && CORSPolicy(flag: "https://a.org/") == nil)
    }
}
