import MeshChain
import MeshCodec
import MeshHTTP
import MeshSockets

/// Which JSON-RPC methods the server lets callers use (`--rpc-methods`, as Substrate's):
/// `safe` refuses the methods that reveal the node's peers and network or change its
/// settings; `unsafe` allows everything. `auto` (the command line's default) is `unsafe` when
/// RPC listens on loopback only and `safe` with `--rpc-external`.
public enum RPCMethodPolicy: String, Sendable, CaseIterable {
    case safe, unsafe

    /// Methods refused under `safe`.
    public static let unsafeMethods: Set<String> = [
        "system_peers", "system_networkState", "system_localListenAddresses", "system_addLogFilter", "system_resetLogFilter",
    ]

    public func allows(_ method: String) -> Bool { self == .unsafe || !Self.unsafeMethods.contains(method) }
}

/// Everything the JSON-RPC server is told.
public struct RPCServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port: UInt16 = 9944
    public var cors = CORSPolicy()
    public var methods = RPCMethodPolicy.unsafe
    /// Open connections at most (`--rpc-max-connections`); more are closed at once.
    public var maxConnections = 100
    /// Connections from one address (loopback exempt).
    public var maxConnectionsPerIP = 32
    /// Calls per second from one address, in cost units (a heavy call counts more); 0 turns
    /// the limit off (`--rpc-rate-limit`).
    public var rateLimit: Double = 1000
    /// Largest request body or WebSocket message.
    public var maxRequestBody = 1 << 20
    public var maxSubscriptionsPerConnection = 1024
    /// A WebSocket client with more than this many bytes waiting to be sent when a
    /// notification is due is too slow and is disconnected.
    public var maxSendQueue = 16 << 20
    /// Calls of one WebSocket connection being answered at once; past it the server stops
    /// reading that connection until answers leave.
    public var maxCallsInFlight = 16
    /// Seconds an HTTP connection may stay without sending a complete request.
    public var idleTimeout: Double = 60

    public init() {}
}

/// JSON-RPC 2.0 over HTTP and WebSocket on one port (as Substrate serves them), on its own
/// event loop and over the project's socket layer: `POST /` for calls, `GET` with an
/// `Upgrade: websocket` handshake for a connection that carries calls and subscriptions
/// (``SubscriptionHub``). Calls run on the node's loop; parsing, framing and sending stay
/// here. Every buffer is bounded: request headers and bodies (``HTTPRequestParser``),
/// WebSocket messages (``WebSocketFrameReader``), calls in flight per connection, each
/// connection's send queue (a slow subscriber is dropped), connections in all and per
/// address, and calls per second per address.
public final class RPCServer: @unchecked Sendable {
    // Safety: every mutable property is confined to `loop` (all entry points run there),
    // except `hub`, which is confined to the node's loop; `config`, `node` and `loop` are
    // immutable.
    public let config: RPCServerConfig
    public let loop: EventLoop
    let node: Node
    private var listener: TCPListener?
    private var connections: [UInt64: RPCConnection] = [:]
    private var nextConnection: UInt64 = 1
    private var buckets: [[UInt8]: TokenBucket] = [:]
    /// Confined to the node's loop.
    var hub: SubscriptionHub!
    /// The node's log filter when the server started (`system_resetLogFilter`).
    let initialLogFilter: LogFilter
    /// Counters for metrics (loop-confined; read through ``metrics()``).
    private var counters = Counters()

    struct Counters: Sendable {
        var connections = 0
        var webSockets = 0
        var calls = 0
        var rateLimited = 0
        var slowClientsDropped = 0
        var malformed = 0
        var callSeconds = Histogram.seconds()
    }

    /// Starts listening; returns the server once it accepts connections.
    public static func start(node: Node, config: RPCServerConfig) async throws -> RPCServer {
        let loop = try EventLoop(name: "tensormesh.rpc")
        let server = RPCServer(node: node, config: config, loop: loop)
        try await node.loop.submit {
            server.hub = SubscriptionHub(node: node, maxPerConnection: config.maxSubscriptionsPerConnection) { [weak server] batch in
                guard let server else { return }
                server.loop.execute { server.deliver(batch) }
            }
        }
        do {
            try await loop.submit { try server.listen() }
        } catch {
            loop.shutdown()
            throw error
        }
        return server
    }

    init(node: Node, config: RPCServerConfig, loop: EventLoop) {
        self.node = node
        self.initialLogFilter = node.log.filter
        self.config = config
        self.loop = loop
    }

    /// The bound address (with the real port when asked for port 0).
    public private(set) var localAddress: SocketAddress?

    private func listen() throws {
        guard let address = SocketAddress(numericHost: self.config.host, port: self.config.port) else {
            throw SocketError("RPC listen address \(self.config.host) (not an IP address)", errno: 22)
        }
        var limits = ConnectionLimits(maxTotal: self.config.maxConnections, maxInbound: self.config.maxConnections, maxOutbound: 0,
                                      maxPerIP: self.config.maxConnectionsPerIP, exemptLoopback: true)
        limits.maxOutbound = 0
        let listener = try TCPListener(loop: self.loop, address: address, tracker: ConnectionTracker(limits: limits)) { [unowned self] tcp in
            self.accept(tcp)
        }
        self.listener = listener
        self.localAddress = listener.localAddress
    }

    /// Stops listening and closes every connection; shuts the loop down.
    public func stop() {
        self.loop.execute { [self] in
            self.listener?.close()
            for c in self.connections.values { c.tcp.close() }
        }
        self.loop.shutdown()
    }

    private func accept(_ tcp: TCPConnection) {
        let id = self.nextConnection
        self.nextConnection += 1
        tcp.highWatermark = self.config.maxSendQueue
        tcp.lowWatermark = self.config.maxSendQueue / 4
        tcp.hardLimit = self.config.maxSendQueue * 4
        let c = RPCConnection(id: id, tcp: tcp, server: self)
        tcp.delegate = c
        self.connections[id] = c
        self.counters.connections += 1
        c.armIdleTimer()
    }

    func closed(_ c: RPCConnection, reason: CloseReason) {
        self.connections[c.id] = nil
        if reason == .sendQueueOverflow { self.counters.slowClientsDropped += 1 }
        if c.isWebSocket {
            let id = c.id
            self.node.loop.execute { [self] in self.hub.removeAll(connection: id) }
        }
    }

    // MARK: Calls

    /// The rate-limit bucket of an address takes `cost`; false when it is empty.
    func admit(_ address: SocketAddress, cost: Int) -> Bool {
        guard self.config.rateLimit > 0 else { return true }
        let key = address.isIPv6 ? Array(address.ip.prefix(8)) : address.ip
        let now = EventLoop.now()
        let burst = self.config.rateLimit * 2
        var bucket = self.buckets[key] ?? TokenBucket(tokens: burst, updatedAt: now)
        let ok = bucket.take(now: now, rate: self.config.rateLimit, burst: burst, cost: Double(cost))
        self.buckets[key] = bucket
        if self.buckets.count > 4096 {
            // Forget the addresses that have been quiet longest (their buckets are full anyway).
            let keep = self.buckets.sorted { $0.value.updatedAt > $1.value.updatedAt }.prefix(2048)
            self.buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
        if !ok { self.counters.rateLimited += 1 }
        return ok
    }

    /// Answers a request body (one call or a batch) from `c`; `reply` runs on this loop with
    /// the answer text (empty: nothing to answer) and the notifications that must follow it.
    func dispatch(_ body: [UInt8], from c: RPCConnection, reply: @escaping (_ text: String, _ status: Int, _ followUps: [String]) -> Void) {
        let parsed: JSONValue
        do { parsed = try HTTPServices.parse(body, limit: self.config.maxRequestBody) } catch {
            self.counters.malformed += 1
            reply(HTTPServices.rpcError(nil, RPCError.parseError, "parse error: \(error.description)").serialized(), 200, [])
            return
        }
        let calls = parsed.array ?? [parsed]
        self.counters.calls += calls.count
        let cost = calls.reduce(0) { $0 + HTTPServices.cost(of: $1) }
        guard self.admit(c.tcp.remoteAddress, cost: cost) else {
            let message = "too many requests from \(c.tcp.remoteAddress.host): at most \(Int(self.config.rateLimit)) calls per second (--rpc-rate-limit)"
            let answers = calls.filter { !HTTPServices.isNotification($0) }.map { HTTPServices.rpcError($0["id"], RPCError.rateLimited, message) }
            let text = parsed.array != nil ? (answers.isEmpty ? "" : JSONValue.array(answers).serialized()) : (answers.first?.serialized() ?? "")
            reply(text, 429, [])
            return
        }
        let context = RPCCallContext(methods: self.config.methods, connection: c.isWebSocket ? c.id : nil, server: self)
        let node = self.node
        let back = LoopConfined(reply, loop: self.loop)
        let started = EventLoop.now()
        node.loop.execute { [self] in
            var followUps: [String] = []
            let text = HTTPServices.respond(parsed, node: node, context: context, followUps: &followUps)
            let notes = followUps
            self.loop.execute {
                self.counters.callSeconds.observe(Double(EventLoop.now() &- started) / 1e9)
                back.value(text, 200, notes)
            }
        }
    }

    /// Writes a poll's notifications; a connection that lets too much pile up is dropped.
    private func deliver(_ batch: [(UInt64, [String])]) {
        for (id, texts) in batch {
            guard let c = self.connections[id], c.isWebSocket else { continue }
            if c.tcp.queuedBytes > self.config.maxSendQueue {
                c.tcp.close(.sendQueueOverflow)
                continue
            }
            for t in texts { c.sendText(t) }
        }
    }

    /// Prometheus lines for the RPC server (appended to the node's).
    public func metrics() async -> String {
        let (c, open, ws) = (try? await self.loop.submit { () -> (Counters, Int, Int) in
            (self.counters, self.connections.count, self.connections.values.filter { $0.isWebSocket }.count)
        }) ?? (Counters(), 0, 0)
        let subs = (try? await self.node.loop.submit { self.hub.count }) ?? 0
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            out += "# HELP tensormesh_\(name) \(help)\n# TYPE tensormesh_\(name) \(type)\n"
            for (labels, v) in samples { out += "tensormesh_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(v)\n" }
        }
        metric("rpc_connections", "gauge", "Open JSON-RPC connections by transport.", [("transport=\"http\"", open - ws), ("transport=\"websocket\"", ws)])
        metric("rpc_connections_total", "counter", "JSON-RPC connections accepted since start.", [("", c.connections)])
        metric("rpc_calls_total", "counter", "JSON-RPC calls received since start.", [("", c.calls)])
        metric("rpc_rate_limited_total", "counter", "Requests refused by the per-address rate limit.", [("", c.rateLimited)])
        metric("rpc_malformed_total", "counter", "Requests that were not JSON.", [("", c.malformed)])
        metric("rpc_subscriptions", "gauge", "Live JSON-RPC subscriptions.", [("", subs)])
        metric("rpc_slow_clients_dropped_total", "counter", "WebSocket clients dropped for not reading their notifications.", [("", c.slowClientsDropped)])
        out += c.callSeconds.render("tensormesh_rpc_request_duration_seconds",
                                    help: "Time from a JSON-RPC request (one call or a batch) read to its answer ready, queueing on the node's loop included.")
        return out
    }
}

/// A value that may be touched only on one loop, carried through another (the answer
/// callback of a call, created and run on the server's loop).
struct LoopConfined<T>: @unchecked Sendable {
    // Safety: `value` is read only on `loop` (checked), where it was created.
    private let stored: T
    let loop: EventLoop

    init(_ value: T, loop: EventLoop) {
        self.stored = value
        self.loop = loop
    }

    var value: T {
        assert(self.loop.inLoop, "a loop-confined value read off its loop")
        return self.stored
    }
}

/// What a call may do, by where it came from.
struct RPCCallContext: @unchecked Sendable {
    // Safety: `server` is only used for its node-loop-confined `hub`, on the node's loop.
    var methods: RPCMethodPolicy
    /// The WebSocket connection the call came on (nil over HTTP: no subscriptions).
    var connection: UInt64?
    var server: RPCServer?
}

/// One client connection of the RPC server: HTTP requests until an upgrade, then WebSocket
/// frames. Loop thread of the server only.
final class RPCConnection: TCPConnectionDelegate {
    let id: UInt64
    let tcp: TCPConnection
    unowned let server: RPCServer
    private var http: HTTPRequestParser
    private var frames: WebSocketFrameReader?
    /// An HTTP request is being answered (requests are answered in order, one at a time).
    private var busy = false
    private var inFlight = 0
    private var idleTimer: TimerID?
    private var closing = false

    init(id: UInt64, tcp: TCPConnection, server: RPCServer) {
        self.id = id
        self.tcp = tcp
        self.server = server
        self.http = HTTPRequestParser(maxHeaderBytes: 16 << 10, maxBodyBytes: server.config.maxRequestBody)
    }

    var isWebSocket: Bool { self.frames != nil }

    func armIdleTimer() {
        if let t = self.idleTimer { self.tcp.loop.cancel(t) }
        guard !self.isWebSocket else {
            self.idleTimer = nil
            return
        }
        self.idleTimer = self.tcp.loop.schedule(after: UInt64(self.server.config.idleTimeout * 1e9)) { [weak self] in
            guard let self, !self.busy else { return }
            self.tcp.close()
        }
    }

    func connectionDidOpen(_ connection: TCPConnection) {}

    func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) {
        if self.frames != nil {
            self.frames!.append(bytes)
            self.readFrames()
        } else {
            self.http.append(bytes)
            self.readRequests()
        }
    }

    func connectionDidDrain(_ connection: TCPConnection) {}

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        if let t = self.idleTimer { self.tcp.loop.cancel(t) }
        self.server.closed(self, reason: reason)
    }

    // MARK: HTTP

    private func readRequests() {
        while !self.busy && !self.closing && self.frames == nil {
            let request: HTTPRequest
            do {
                guard let r = try self.http.next() else { return }
                request = r
            } catch {
                self.fail(status: error.status, error.message)
                return
            }
            self.armIdleTimer()
            self.handle(request)
        }
    }

    private func fail(status: Int, _ message: String) {
        self.closing = true
        self.tcp.write(HTTPResponseWriter.response(status: status, headers: [HTTPField("Connection", "close"), HTTPField("Content-Type", "text/plain")],
                                                   body: Array((message + "\n").utf8)))
        self.tcp.closeAfterFlush()
    }

    private func handle(_ request: HTTPRequest) {
        let origin = request.header("origin")
        // Browsers: a page from an origin --rpc-cors does not allow is refused, its preflight
        // and its WebSocket handshake too; allowed origins get the headers that let them read us.
        guard self.server.config.cors.allows(origin) else {
            self.respond(request, status: 403, body: Array("origin not allowed (see --rpc-cors)\n".utf8), contentType: "text/plain")
            return
        }
        var headers: [HTTPField] = []
        if let origin {
            headers.append(HTTPField("Access-Control-Allow-Origin", origin))
            headers.append(HTTPField("Vary", "Origin"))
        }
        switch request.method {
        case "OPTIONS":
            headers += [HTTPField("Access-Control-Allow-Methods", "POST, GET, OPTIONS"), HTTPField("Access-Control-Allow-Headers", "content-type"),
                        HTTPField("Access-Control-Max-Age", "600")]
            self.respond(request, status: 204, headers: headers)
        case "GET" where WebSocketHandshake.isUpgrade(request):
            switch WebSocketHandshake.validate(request) {
            case .failure(let e):
                self.respond(request, status: 400, body: Array((e.message + "\n").utf8), contentType: "text/plain")
            case .success(let key):
                let leftover = self.http.takeRemaining()
                self.tcp.write(HTTPResponseWriter.response(status: 101, headers: [
                    HTTPField("Upgrade", "websocket"), HTTPField("Connection", "Upgrade"),
                    HTTPField("Sec-WebSocket-Accept", WebSocketHandshake.accept(key: key)),
                ]))
                self.frames = WebSocketFrameReader(maxMessageBytes: self.server.config.maxRequestBody, requireMask: true)
                self.armIdleTimer()
                self.frames!.append(leftover)
                self.readFrames()
            }
        case "GET":
            self.respond(request, status: 200, headers: headers,
                         body: Array("tensormesh JSON-RPC: POST a JSON-RPC 2.0 request, or open a WebSocket here\n".utf8), contentType: "text/plain")
        case "POST":
            self.busy = true
            self.server.dispatch(request.body, from: self) { [weak self] text, status, _ in
                guard let self, !self.tcp.isClosed else { return }
                self.busy = false
                if text.isEmpty {
                    self.respond(request, status: status == 200 ? 204 : status, headers: headers)
                } else {
                    var h = headers
                    if status == 429 { h.append(HTTPField("Retry-After", "1")) }
                    self.respond(request, status: status, headers: h, body: Array(text.utf8), contentType: "application/json")
                }
                self.readRequests()
            }
        default:
            self.respond(request, status: 405, headers: headers + [HTTPField("Allow", "GET, POST, OPTIONS")])
        }
    }

    private func respond(_ request: HTTPRequest, status: Int, headers: [HTTPField] = [], body: [UInt8] = [], contentType: String? = nil) {
        var h = headers
        if let contentType { h.append(HTTPField("Content-Type", contentType)) }
        let keep = request.keepAlive && status < 400
        h.append(HTTPField("Connection", keep ? "keep-alive" : "close"))
        self.tcp.write(HTTPResponseWriter.response(status: status, headers: h, body: body))
        if !keep {
            self.closing = true
            self.tcp.closeAfterFlush()
        }
    }

    // MARK: WebSocket

    private func readFrames() {
        while self.frames != nil && !self.closing && self.inFlight < self.server.config.maxCallsInFlight {
            let event: WebSocketEvent
            do {
                guard let e = try self.frames!.next() else { return }
                event = e
            } catch {
                self.closeWebSocket(code: error.closeCode, reason: error.message)
                return
            }
            switch event {
            case .text(let body), .binary(let body):
                self.inFlight += 1
                if self.inFlight >= self.server.config.maxCallsInFlight { self.tcp.pauseReading() }
                self.server.dispatch(body, from: self) { [weak self] text, _, followUps in
                    guard let self, !self.tcp.isClosed else { return }
                    self.inFlight -= 1
                    if !text.isEmpty { self.sendText(text) }
                    for f in followUps { self.sendText(f) }
                    if self.inFlight < self.server.config.maxCallsInFlight {
                        self.tcp.resumeReading()
                        self.readFrames()
                    }
                }
            case .ping(let payload):
                self.tcp.write(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.pong, payload))
            case .pong:
                break
            case .close(let code, _):
                self.closeWebSocket(code: code == 1005 ? 1000 : code, reason: "")
                return
            }
        }
    }

    func sendText(_ text: String) {
        guard !self.closing else { return }
        self.tcp.write(WebSocketFrameWriter.frame(opcode: WebSocketFrameWriter.text, Array(text.utf8)))
    }

    private func closeWebSocket(code: UInt16, reason: String) {
        guard !self.closing else { return }
        self.closing = true
        // Codes a peer may not send on the wire are answered with a normal closure.
        let valid = (1000...1003).contains(code) || (1007...1011).contains(code) || (3000...4999).contains(code)
        self.tcp.write(WebSocketFrameWriter.closeFrame(code: valid ? code : 1002, reason: reason))
        self.tcp.closeAfterFlush()
    }
}
