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
/// JSON-RPC 2.0 over HTTP POST and Prometheus text on `GET /metrics`, served by FlyingFox
/// (a SwiftNIO-free HTTP server). Handlers hop onto the node's loop with `submit`.
public enum HTTPServices {
    typealias JSON = MeshCodec.JSONValue

    /// Starts the JSON-RPC server; returns the task running it.
    public static func startRPC(node: Node, host: String, port: UInt16) throws -> Task<Void, any Error> {
        let server = HTTPServer(address: try .inet(ip4: host, port: port), timeout: 30, logger: .disabled)
        let limit = node.config.maxRequestBody
        return Task {
            let cors = node.config.rpcCors
            await server.appendRoute("*") { request in
                let origin = request.headers[HTTPHeader("Origin")]
                // Browsers: a page from an origin --rpc-cors does not allow is refused, its
                // preflight too; allowed origins get the headers that let the page read us.
                guard cors.allows(origin) else {
                    return HTTPResponse(statusCode: .forbidden, body: Data("origin not allowed (see --rpc-cors)\n".utf8))
                }
                var allow: HTTPHeaders = [:]
                if let origin {
                    allow[HTTPHeader("Access-Control-Allow-Origin")] = origin
                    allow[HTTPHeader("Vary")] = "Origin"
                }
                if request.method == .OPTIONS {
                    allow[HTTPHeader("Access-Control-Allow-Methods")] = "POST, GET, OPTIONS"
                    allow[HTTPHeader("Access-Control-Allow-Headers")] = "content-type"
                    allow[HTTPHeader("Access-Control-Max-Age")] = "600"
                    return HTTPResponse(statusCode: .noContent, headers: allow)
                }
                if request.method == .GET { return HTTPResponse(statusCode: .ok, headers: allow, body: Data("tensormesh JSON-RPC: POST a JSON-RPC 2.0 request\n".utf8)) }
                guard request.method == .POST else { return HTTPResponse(statusCode: .methodNotAllowed, headers: allow) }
                guard let lengthText = request.headers[.contentLength], let length = Int(lengthText) else {
                    return HTTPResponse(statusCode: .lengthRequired, body: Data("Content-Length required\n".utf8))
                }
                guard length <= limit else {
                    return HTTPResponse(statusCode: .payloadTooLarge, headers: [.connection: "close"],
                                        body: Data(rpcError(nil, -32600, "request body of \(length) bytes exceeds \(limit)").serialized().utf8))
                }
                let body = try await request.bodyData
                let reply = await Self.handle(Array(body), node: node, limit: limit)
                // Notifications (calls without an id) are answered with nothing at all.
                if reply.isEmpty { return HTTPResponse(statusCode: .noContent, headers: allow) }
                allow[.contentType] = "application/json"
                return HTTPResponse(statusCode: .ok, headers: allow, body: Data(reply.utf8))
            }
            try await server.run()
        }
    }

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
    /// the body limit the server enforces, so the parser accepts what the server read.
    package static func handle(_ body: [UInt8], node: Node, limit: Int = 1 << 20) async -> String {
        let parsed: JSON
        do { parsed = try Self.parse(body, limit: limit) } catch {
            return rpcError(nil, RPCError.parseError, "parse error: \(error.description)").serialized()
        }
        if let batch = parsed.array {
            guard !batch.isEmpty, batch.count <= 100 else { return rpcError(nil, RPCError.invalidRequest, "a batch holds 1 to 100 calls").serialized() }
            var replies: [JSON] = []
            for (call, ok) in zip(batch, Self.admitted(batch)) {
                if ok {
                    if let reply = await Self.call(call, node: node) { replies.append(reply) }
                } else if !Self.isNotification(call) {
                    replies.append(rpcError(call["id"], RPCError.limitExceeded,
                                            "the batch exceeds its cost budget of \(Self.batchBudget) (a full metagraph costs 60); send this call separately"))
                }
            }
            return replies.isEmpty ? "" : JSON.array(replies).serialized()
        }
        return await Self.call(parsed, node: node)?.serialized() ?? ""
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

    /// Runs one call; nil for a notification (nothing is sent back, whatever the outcome).
    static func call(_ request: JSON, node: Node) async -> JSON? {
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
        do {
            result = try await node.loop.submit { () -> Result<JSON, RPCError> in
                do throws(RPCError) { return .success(try node.rpc(method: method, params: params)) } catch { return .failure(error) }
            }
        } catch {
            return rpcError(id, RPCError.internalError, "node is shutting down")
        }
        if notification { return nil }
        switch result {
        case .success(let v): return .object([("jsonrpc", "2.0"), ("result", v), ("id", id ?? .null)])
        case .failure(let e): return rpcError(id, e.code, e.message, data: e.data)
        }
    }

    /// Starts the Prometheus endpoint.
    public static func startMetrics(node: Node, host: String, port: UInt16) throws -> Task<Void, any Error> {
        let server = HTTPServer(address: try .inet(ip4: host, port: port), timeout: 15, logger: .disabled)
        return Task {
            await server.appendRoute("GET /metrics") { _ in
                let text = (try? await node.loop.submit { node.prometheusText() }) ?? ""
                return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: Data(text.utf8))
            }
            await server.appendRoute("*") { _ in HTTPResponse(statusCode: .notFound, body: Data("metrics are at /metrics\n".utf8)) }
            try await server.run()
        }
    }
}
