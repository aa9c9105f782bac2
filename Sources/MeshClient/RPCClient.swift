import Dispatch
import Foundation
import MeshCodec
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A blocking JSON-RPC 2.0 client over HTTP(S) (for the CLI, the SDK and tools), through
/// FoundationNetworking's URLSession: `http://` and `https://` URLs with any host (names,
/// IPv4, `[IPv6]`), an optional port (the scheme's default otherwise: 80, 443) and an optional
/// path (a node behind a reverse proxy). `ws://`/`wss://` URLs of the same port are taken too.
/// A bare `host:port` means `http://host:port`. Answers are bounded (``maxAnswerBytes``) and
/// every call has one deadline.
public struct RPCClient: Sendable {
    /// The endpoint calls are posted to.
    public let url: URL
    /// The host as given (without brackets) and the port in use, for messages.
    public let host: String
    public let port: UInt16
    public var timeoutSeconds: Int = 10
    /// Largest answer accepted; a bigger one is cut off with an error.
    public static let maxAnswerBytes = 64 << 20

    /// Parses the node's URL (default for the tools: http://127.0.0.1:9944).
    public init(url text: String) throws(Failure) {
        var t = text.trimmingCharacters(in: .whitespaces)
        if !t.contains("://") { t = "http://" + t }
        guard var c = URLComponents(string: t), let scheme = c.scheme?.lowercased(), let host = c.host, !host.isEmpty else {
            throw .connection("the RPC URL must look like http://127.0.0.1:9944 or https://node.example/rpc, got \(text)")
        }
        switch scheme {
        case "http", "ws": c.scheme = "http"
        case "https", "wss": c.scheme = "https"
        default: throw .connection("the RPC URL's scheme must be http or https, got \(scheme)")
        }
        guard c.user == nil, c.password == nil, c.query == nil, c.fragment == nil else {
            throw .connection("the RPC URL takes no credentials, query or fragment: \(text)")
        }
        if let p = c.port, UInt16(exactly: p) == nil || p == 0 { throw .connection("port \(p) is out of range in \(text)") }
        if c.path.isEmpty { c.path = "/" }
        guard let url = c.url else { throw .connection("cannot use the RPC URL \(text)") }
        self.url = url
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = c.port.flatMap { UInt16(exactly: $0) } ?? (c.scheme == "https" ? 443 : 80)
    }

    /// Why a call failed.
    public enum Failure: Error, CustomStringConvertible {
        case connection(String)
        case http(String)
        case rpc(code: Int, message: String, data: JSONValue?)

        public var description: String {
            switch self {
            case .connection(let s): return "cannot reach the node: \(s)"
            case .http(let s): return "bad answer from the node: \(s)"
            case .rpc(_, let m, _): return m
            }
        }
    }

    /// Calls `method` and returns its result.
    public func call(_ method: String, _ params: JSONValue = .array([])) throws(Failure) -> JSONValue {
        let request: JSONValue = .object([("jsonrpc", "2.0"), ("id", 1), ("method", .string(method)), ("params", params)])
        let raw = try self.post(Array(request.serialized().utf8))
        let reply: JSONValue
        do { reply = try JSONValue.parse(raw) } catch { throw .http("not JSON: \(error)") }
        if let err = reply["error"] {
            throw .rpc(code: Int(err["code"]?.int64 ?? 0), message: err["message"]?.string ?? "error", data: err["data"])
        }
        return reply["result"] ?? .null
    }

    /// Posts a body and returns the answer's body (empty for 204: a JSON-RPC notification).
    func post(_ body: [UInt8]) throws(Failure) -> [UInt8] {
        var request = URLRequest(url: self.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: TimeInterval(max(1, self.timeoutSeconds)))
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (status, data, error) = HTTPTransport.shared.run(request, limit: Self.maxAnswerBytes, timeout: Double(max(1, self.timeoutSeconds)))
        if let error { throw .connection("\(self.url.absoluteString): \(error)") }
        return try Self.answer(status: status, body: data)
    }

    /// What an HTTP answer means for a JSON-RPC call: its body, or why not.
    package static func answer(status: Int, body: [UInt8]) throws(Failure) -> [UInt8] {
        if status == 204 { return [] }
        guard status == 200 else {
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            let message = (try? JSONValue.parse(body))?["error"]?["message"]?.string ?? text
            throw .http("HTTP status \(status)\(message.isEmpty ? "" : ": \(message)")")
        }
        return body
    }
}

/// The URLSession the RPC client posts through, with a delegate that stops answers past
/// their limit as they arrive (URLSession would otherwise buffer whatever a server sends).
final class HTTPTransport: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Safety: `tasks` is guarded by `lock`; `session` is set once in init.
    static let shared = HTTPTransport()
    private let lock = NSLock()
    private var tasks: [Int: Exchange] = [:]
    private var session: URLSession!

    final class Exchange: @unchecked Sendable {
        // Safety: written by the session's delegate queue (serial) before `done` is signalled,
        // read by the caller only after it waited for `done`.
        var data: [UInt8] = []
        var status = 0
        var error: String?
        let limit: Int
        let done = DispatchSemaphore(value: 0)
        init(limit: Int) { self.limit = limit }
    }

    override init() {
        super.init()
        let config = URLSessionConfiguration.ephemeral
        config.httpMaximumConnectionsPerHost = 8
        config.urlCache = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        self.session = URLSession(configuration: config, delegate: self, delegateQueue: queue)
    }

    /// Runs one request to completion; the status, the body, or an error.
    func run(_ request: URLRequest, limit: Int, timeout: Double) -> (Int, [UInt8], String?) {
        let exchange = Exchange(limit: limit)
        let task = self.session.dataTask(with: request)
        self.lock.withLock { self.tasks[task.taskIdentifier] = exchange }
        task.resume()
        if exchange.done.wait(timeout: .now() + timeout) == .timedOut {
            task.cancel()
            self.lock.withLock { self.tasks[task.taskIdentifier] = nil }
            return (0, [], "no complete answer within \(Int(timeout)) s")
        }
        return (exchange.status, exchange.data, exchange.error)
    }

    private func exchange(_ task: URLSessionTask) -> Exchange? { self.lock.withLock { self.tasks[task.taskIdentifier] } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let e = self.exchange(dataTask) else { return completionHandler(.cancel) }
        let http = response as? HTTPURLResponse
        e.status = http?.statusCode ?? 0
        // A length that is not plain digits (signed, overflowing, or two conflicting values
        // folded into one field) is refused, whatever the transport made of it.
        if let length = http?.value(forHTTPHeaderField: "Content-Length"),
           length.isEmpty || length.utf8.count > 12 || !length.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            e.error = "bad Content-Length \(length.prefix(40))"
            return completionHandler(.cancel)
        }
        if response.expectedContentLength > Int64(e.limit) {
            e.error = "the answer announces \(response.expectedContentLength) bytes, more than \(e.limit)"
            return completionHandler(.cancel)
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let e = self.exchange(dataTask), e.error == nil else { return }
        if e.data.count + data.count > e.limit {
            e.error = "the answer is larger than \(e.limit) bytes"
            dataTask.cancel()
            return
        }
        e.data.append(contentsOf: data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let e = self.lock.withLock({ self.tasks.removeValue(forKey: task.taskIdentifier) }) else { return }
        if e.error == nil, let error { e.error = error.localizedDescription }
        e.done.signal()
    }
}

