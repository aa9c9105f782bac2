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
            await server.appendRoute("*") { request in
                if request.method == .GET { return HTTPResponse(statusCode: .ok, body: Data("tensormesh JSON-RPC: POST a JSON-RPC 2.0 request\n".utf8)) }
                guard request.method == .POST else { return HTTPResponse(statusCode: .methodNotAllowed) }
                guard let lengthText = request.headers[.contentLength], let length = Int(lengthText) else {
                    return HTTPResponse(statusCode: .lengthRequired, body: Data("Content-Length required\n".utf8))
                }
                guard length <= limit else {
                    return HTTPResponse(statusCode: .payloadTooLarge, headers: [.connection: "close"],
                                        body: Data(rpcError(nil, -32600, "request body of \(length) bytes exceeds \(limit)").serialized().utf8))
                }
                let body = try await request.bodyData
                let reply = await Self.handle(Array(body), node: node)
                return HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: Data(reply.utf8))
            }
            try await server.run()
        }
    }

    static func rpcError(_ id: JSON?, _ code: Int, _ message: String, data: JSON? = nil) -> JSON {
        var err: [(String, JSON)] = [("code", .int(code)), ("message", .string(message))]
        if let data { err.append(("data", data)) }
        return .object([("jsonrpc", "2.0"), ("error", .object(err)), ("id", id ?? .null)])
    }

    /// Handles a request body (one call or a batch) and returns the response text.
    static func handle(_ body: [UInt8], node: Node) async -> String {
        let parsed: JSON
        do { parsed = try JSON.parse(body, limits: .init(maxBytes: 1 << 20, maxDepth: 32)) } catch {
            return rpcError(nil, RPCError.parseError, "parse error: \(error.description)").serialized()
        }
        if let batch = parsed.array {
            guard !batch.isEmpty, batch.count <= 100 else { return rpcError(nil, RPCError.invalidRequest, "a batch holds 1 to 100 calls").serialized() }
            var replies: [JSON] = []
            for call in batch { replies.append(await Self.call(call, node: node)) }
            return JSON.array(replies).serialized()
        }
        return await Self.call(parsed, node: node).serialized()
    }

    static func call(_ request: JSON, node: Node) async -> JSON {
        guard case .object = request else { return rpcError(nil, RPCError.invalidRequest, "a request is a JSON object") }
        let id = request["id"]
        guard request["jsonrpc"]?.string == "2.0", let method = request["method"]?.string else {
            return rpcError(id, RPCError.invalidRequest, "need \"jsonrpc\": \"2.0\" and a method name")
        }
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
