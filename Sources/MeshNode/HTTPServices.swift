import FlyingFox
import FlyingSocks
import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshIncentive
import MeshNetwork
import MeshNodeCore
import MeshSockets
import MeshStore
/// JSON-RPC 2.0 call handling (the server is ``RPCServer``, HTTP and WebSocket on one port), and
/// Prometheus text on `GET /metrics`, served by FlyingFox (a SwiftNIO-free HTTP server).
/// Calls run on the node's loop.
public enum HTTPServices {
    typealias JSON = MeshCodec.JSONValue

    static func rpcError(_ id: JSON?, _ code: Int, _ message: String, data: JSON? = nil) -> JSON {
        var err: [(String, JSON)] = [("code", .int(code)), ("message", .string(message))]
        if let data { err.append(("data", data)) }
        return .object([("jsonrpc", "2.0"), ("error", .object(err)), ("id", id ?? .null)])
    }

    /// The work one batch may ask for, in ``cost(of:)`` units: a hundred cheap calls, or one
    /// full metagraph and some cheap calls, but not a hundred full metagraphs built on the
    /// node's loop and held in memory at once.
    static let batchBudget = 100

    /// What a call costs a batch: heavy methods weigh more (they run on the node's loop and
    /// build large answers).
    static func cost(of request: JSON) -> Int {
        let params = RPCParams(value: request["params"] ?? .array([]))
        switch request["method"]?.string ?? "" {
        case "subnet_getMetagraph": return params.bool(1, "full") || params.bool(1, "weights") ? 60 : 10
        case "author_pendingTransactions": return 10
        case "state_getAccount", "subnet_list", "subnet_getMessages": return 5
        case "chain_getBlock": return 2
        default: return 1
        }
    }

    /// Which calls of a batch fit its budget, in order (the rest are answered with an error).
    static func admitted(_ batch: [JSON], budget: Int = batchBudget) -> [Bool] {
        var spent = 0
        return batch.map { call in
            let c = Self.cost(of: call)
            guard spent + c <= budget else { return false }
            spent += c
            return true
        }
    }

    /// Handles a request body (one call or a batch) and returns the response text: empty when
    /// there is nothing to answer (JSON-RPC 2.0: a notification — a valid call without an
    /// `id` member — gets no reply, and a batch of only notifications none at all). `limit` is
    /// the body limit the server enforces, so the parser accepts what the server read. As over
    /// HTTP: every method allowed, no subscriptions.
    package static func handle(_ body: [UInt8], node: Node, limit: Int = 1 << 20) async -> String {
        let parsed: JSON
        do { parsed = try Self.parse(body, limit: limit) } catch {
            return rpcError(nil, RPCError.parseError, "parse error: \(error.description)").serialized()
        }
        let context = RPCCallContext(methods: .unsafe, connection: nil, server: nil)
        do {
            return try await node.loop.submit {
                var followUps: [String] = []
                return Self.respond(parsed, node: node, context: context, followUps: &followUps)
            }
        } catch {
            return Self.isNotification(parsed) ? "" : rpcError(parsed["id"], RPCError.internalError, "node is shutting down").serialized()
        }
    }

    /// Answers a parsed body on the node's loop (see ``handle(_:node:limit:)``); notifications a
    /// subscription owes at once (the current head) go to `followUps`, to be sent after the answer.
    static func respond(_ parsed: JSON, node: Node, context: RPCCallContext, followUps: inout [String]) -> String {
        if let batch = parsed.array {
            guard !batch.isEmpty, batch.count <= 100 else { return rpcError(nil, RPCError.invalidRequest, "a batch holds 1 to 100 calls").serialized() }
            var replies: [JSON] = []
            for (call, ok) in zip(batch, Self.admitted(batch)) {
                if ok {
                    if let reply = Self.call(call, node: node, context: context, followUps: &followUps) { replies.append(reply) }
                } else if !Self.isNotification(call) {
                    replies.append(rpcError(call["id"], RPCError.limitExceeded,
                                            "the batch exceeds its cost budget of \(Self.batchBudget) (a full metagraph costs 60); send this call separately"))
                }
            }
            return replies.isEmpty ? "" : JSON.array(replies).serialized()
        }
        return Self.call(parsed, node: node, context: context, followUps: &followUps)?.serialized() ?? ""
    }

    /// A well-formed call without an `id` member: run, never answered.
    package static func isNotification(_ request: MeshCodec.JSONValue) -> Bool {
        guard case .object = request, request["jsonrpc"]?.string == "2.0", request["method"]?.string != nil else { return false }
        return request["id"] == nil
    }

    /// Parses a request body of at most `limit` bytes.
    static func parse(_ body: [UInt8], limit: Int) throws(JSONError) -> JSON {
        try JSON.parse(body, limits: .init(maxBytes: max(0, limit), maxDepth: 32))
    }

    /// Runs one call on the node's loop; nil for a notification (nothing is sent back,
    /// whatever the outcome).
    static func call(_ request: JSON, node: Node, context: RPCCallContext, followUps: inout [String]) -> JSON? {
        guard case .object = request else { return rpcError(nil, RPCError.invalidRequest, "a request is a JSON object") }
        var id = request["id"]
        // Ids are strings, numbers or null; anything else is not echoed.
        if let v = id {
            switch v {
            case .string, .number, .null: break
            default: return rpcError(nil, RPCError.invalidRequest, "an id is a string, a number or null")
            }
        }
        guard request["jsonrpc"]?.string == "2.0", let method = request["method"]?.string else {
            return rpcError(id, RPCError.invalidRequest, "need \"jsonrpc\": \"2.0\" and a method name")
        }
        let notification = id == nil
        if notification { id = .null }
        let params = request["params"] ?? .array([])
        guard params.array != nil || params.object != nil else { return rpcError(id, RPCError.invalidParams, "params must be an array or an object") }
        let result: Result<JSON, RPCError>
        if !context.methods.allows(method) {
            result = .failure(RPCError(RPCError.methodNotFound, "RPC call is unsafe to be called externally (the node runs with --rpc-methods safe)"))
        } else if let f = Self.logFilterMethod(method, params: RPCParams(value: params), node: node, context: context) {
            result = f
        } else if Self.subscriptionMethods.contains(method) {
            do throws(RPCError) {
                result = .success(try Self.subscription(method, params: RPCParams(value: params), node: node, context: context, followUps: &followUps))
            } catch { result = .failure(error) }
        } else {
            do throws(RPCError) { result = .success(try node.rpc(method: method, params: params)) } catch { result = .failure(error) }
        }
        if notification { return nil }
        switch result {
        case .success(let v): return .object([("jsonrpc", "2.0"), ("result", v), ("id", id ?? .null)])
        case .failure(let e): return rpcError(id, e.code, e.message, data: e.data)
        }
    }

    /// Starts the Prometheus endpoint.
    /// `extra` adds lines to the node's (the RPC server's metrics).
    public static func startMetrics(node: Node, host: String, port: UInt16,
                                    extra: (@Sendable () async -> String)? = nil) throws -> Task<Void, any Error> {
        let server = HTTPServer(address: try .inet(ip4: host, port: port), timeout: 15, logger: .disabled)
        return Task {
            await server.appendRoute("GET /metrics") { _ in
                var text = (try? await node.loop.submit { node.prometheusText() }) ?? ""
                if let extra { text += await extra() }
                return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: Data(text.utf8))
            }
            await server.appendRoute("*") { _ in HTTPResponse(statusCode: .notFound, body: Data("metrics are at /metrics\n".utf8)) }
            try await server.run()
        }
    }
}
