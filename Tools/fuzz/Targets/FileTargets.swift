import Foundation
import MeshChain
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshNode
import MeshSockets

/// Text a client, an operator or a server hands us: JSON, RPC bodies, chain specs, key files,
/// and the answers of a hostile RPC server.
enum FileTargets {
    static let all: [FuzzTarget] = [json, rpc, chainSpec, keyFile, rpcClient]

    static let json = FuzzTarget("json", "the JSON parser: depth, numbers, escapes; what parses survives a round trip",
                                 seeds: { [Array(#"{"a":[1,-2.5e3,"x\u00e9",true,null,{"b":{}}]}"#.utf8)] }) { b in
        guard let v = try? JSONValue.parse(b) else { return }
        let text = v.serialized()
        check((try? JSONValue.parse(Array(text.utf8)))?.serialized() == text, "JSON does not survive a round trip")
    }

    /// A node on a development chain, created once (no sockets are opened); every input is
    /// one JSON-RPC body, answered as the HTTP server would.
    static let node: Node = {
        let dir = NSTemporaryDirectory() + "meshfuzz-rpc-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let loop = try! EventLoop(name: "fuzz.rpc")
        let config = NodeConfig(basePath: dir, spec: StatefulTargets.chainSpec)
        let box = NodeBox()
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            box.node = try! Node(config: config, key: Seeds.validators[0], loop: loop, log: Log(level: .error))
            done.signal()
        }
        done.wait()
        return box.node!
    }()

    final class NodeBox: @unchecked Sendable {
        // Safety: written once on the loop, read after the semaphore.
        var node: Node?
    }

    static let rpc = FuzzTarget("rpc", "JSON-RPC bodies (single and batch) against a development node",
                                seeds: { [Array(#"{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":[1]}"#.utf8),
                                          Array(#"[{"jsonrpc":"2.0","id":1,"method":"subnet_getMetagraph","params":{"netuid":1,"full":true}}]"#.utf8)] }) { b in
        let node = Self.node
        let done = DispatchSemaphore(value: 0)
        let body = b
        Task {
            let reply = await HTTPServices.handle(body, node: node, limit: 1 << 16)
            // Only notifications go unanswered: a body that parses as one, or as a batch of
            // only notifications.
            if reply.isEmpty {
                let calls = (try? JSONValue.parse(body)).map { $0.array ?? [$0] } ?? []
                check(!calls.isEmpty && calls.allSatisfy { HTTPServices.isNotification($0) }, "an RPC body got no answer")
            }
            done.signal()
        }
        done.wait()
    }

    static let chainSpec = FuzzTarget("chain-spec", "chain-spec files: parsed, genesis built, written out and read back",
                                      seeds: { [Array(StatefulTargets.chainSpec.json().serialized().utf8)] }) { b in
        guard let spec = try? ChainSpec.parse(b) else { return }
        var state = spec.genesisState()
        _ = state.stateRoot()
        check((try? ChainSpec.parse(Array(spec.json().serialized().utf8))) != nil, "a spec that parsed does not parse again once written")
    }

    static let keyFile = FuzzTarget("key-file", "key files: parsed, costs checked before any hashing, wrong passwords refused") { b in
        _ = try? KeyFile.publicKey(of: b)
        // Opening runs Argon2 only within the cost cap; inputs asking for more are refused
        // before hashing (cheap), inputs within it are opened with a wrong password, which
        // must fail — only for the cheapest costs, so the target stays fast.
        guard let v = try? JSONValue.parse(b), let kdf = v["kdf"], let ops = kdf["opsLimit"]?.uint64, let mem = kdf["memLimit"]?.uint64 else { return }
        if ops > 2 || mem > (1 << 20) {
            if ops > 8 || mem > (256 << 20) { check((try? KeyFile.open(b, password: SecureBytes(copying: [1]))) == nil, "a key file past the cost cap opened") }
            return
        }
        check((try? KeyFile.open(b, password: SecureBytes(copying: Array("not the password".utf8)))) == nil, "a key file opened with a wrong password")
    }

    static let rpcClient = FuzzTarget("rpc-client", "a hostile RPC server's answers: status, JSON-RPC body and metagraph JSON",
                                      seeds: { [[0, 200] + Array(#"{"jsonrpc":"2.0","id":1,"result":{"number":1}}"#.utf8)] }) { b in
        var input = FuzzInput(b)
        let status = Int(input.u16() % 600)
        let body = input.rest()
        guard let raw = try? RPCClient.answer(status: status, body: body) else { return }
        check(status == 200 || (status == 204 && raw.isEmpty), "an HTTP \(status) answer was taken as a result")
        if let v = try? JSONValue.parse(raw) {
            _ = try? Metagraph.parse(v)
            if let r = v["result"] { _ = try? Metagraph.parse(r) }
        }
    }
}
