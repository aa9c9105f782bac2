import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MeshChain
import MeshClient
import MeshCrypto
import MeshQuery
import MeshSockets

/// Who sent a request: the validator's hotkey (verified) and its metagraph entry.
public struct Caller: Sendable {
    public var hotkey: Ed25519.PublicKey
    public var info: CallerInfo?
}

/// A subnet miner: registers its hotkey, serves its synapses on an axon, publishes the axon
/// on chain, and keeps the axon's view of the metagraph (who may call, with what priority)
/// fresh.
///
///     let miner = Miner(context, port: 8091)
///     miner.serve(Twice.self) { request, caller in
///         let (y, overflow) = request.x.multipliedReportingOverflow(by: 2)
///         guard !overflow else { throw QueryError(.badRequest, "x is out of range") }
///         return .init(y: y)
///     }
///     try await miner.run()
public final class Miner: Sendable {
    public let context: SubnetContext
    public let port: UInt16
    public let listenHost: String
    /// The address published on chain (default: the listen host; for 0.0.0.0, the local
    /// address of the route to the node, see ``learnedHost()``).
    public let externalHost: String?
    /// The port published on chain (default: the bound port), for miners behind a port mapping.
    public let externalPort: UInt16?
    /// A relay to publish instead of our own address (for miners without inbound connectivity).
    public let relay: (host: String, port: UInt16, nodeId: Ed25519.PublicKey)?
    let loop: EventLoop
    public let axon: Axon
    let genesis: [UInt8]
    let catalog = Catalog()

    /// Connects to the chain and prepares the axon (nothing is served until ``run()``).
    public init(_ context: SubnetContext, port: UInt16 = 8091, listenHost: String = "0.0.0.0", externalHost: String? = nil,
                externalPort: UInt16? = nil, relay: (host: String, port: UInt16, nodeId: Ed25519.PublicKey)? = nil,
                limits: AxonLimits = AxonLimits()) async throws {
        self.context = context
        self.port = port
        self.listenHost = listenHost
        self.externalHost = externalHost
        self.externalPort = externalPort
        self.relay = relay
        try await context.waitForChain()
        self.genesis = try await context.genesis()
        self.loop = try EventLoop(name: "tensormesh.miner")
        self.axon = Axon(hotkey: context.hotkey, netuid: context.netuid, genesisHash: self.genesis, loop: self.loop, limits: limits)
        let catalog = self.catalog
        self.axon.attach(synapse: SynapseCatalog.synapseName) { _ in .body(try SynapseCoding.encodeJSON(catalog.snapshot())) }
    }

    /// Serves a synapse: decodes the request, runs `handler`, encodes the answer. A request
    /// that does not decode gets 400.
    ///
    /// The request is hostile input: any caller the blacklist lets through chooses every
    /// field. A trap in the handler (an integer overflow, an out-of-range index, a force
    /// unwrap) kills the whole miner process, axon included, so check ranges and throw
    /// `QueryError(.badRequest, …)` instead (use `multipliedReportingOverflow` and friends).
    public func serve<S: Synapse>(_ type: S.Type, _ handler: @escaping @Sendable (S, Caller) async throws -> S.Response) {
        self.catalog.add(S.self)
        self.axon.attach(synapse: S.name, handler: Self.handler(S.self, handler))
    }

    /// Serves a streaming synapse: each value the handler's stream yields is sent to the
    /// caller as one response chunk as soon as it is ready.
    public func serve<S: StreamingSynapse>(_ type: S.Type,
                                           stream handler: @escaping @Sendable (S, Caller) async throws -> AsyncThrowingStream<S.Response, any Error>) {
        self.catalog.add(S.self)
        self.axon.attach(synapse: S.name, handler: Self.streamHandler(S.self, handler))
    }

    /// The axon handler of a typed synapse.
    static func handler<S: Synapse>(_ type: S.Type, _ handler: @escaping @Sendable (S, Caller) async throws -> S.Response) -> QueryHandler {
        { req in
            let synapse = try Self.decode(S.self, req)
            return .body(try S.encodeResponse(try await handler(synapse, Caller(hotkey: req.header.caller, info: req.caller))))
        }
    }

    /// The axon handler of a streaming synapse: one response chunk per value.
    static func streamHandler<S: StreamingSynapse>(
        _ type: S.Type, _ handler: @escaping @Sendable (S, Caller) async throws -> AsyncThrowingStream<S.Response, any Error>
    ) -> QueryHandler {
        { req in
            let synapse = try Self.decode(S.self, req)
            let items = try await handler(synapse, Caller(hotkey: req.header.caller, info: req.caller))
            // The axon pulls the chunks as it sends them; encoding happens on that pull, so
            // nothing piles up between the handler and the wire.
            let box = IteratorBox(items.makeAsyncIterator())
            let encoded = AsyncThrowingStream<[UInt8], any Error>(unfolding: {
                guard let item = try await box.next() else { return nil }
                return try S.encodeResponse(item)
            })
            return .stream(encoded)
        }
    }

    /// Serves synapse `name` by forwarding each admitted, verified request body to a local
    /// model server (see ``HTTPForwarder``): the server's answer, streamed when it streams,
    /// is the miner's answer. `example` (JSON) is what the apps gateway shows end users.
    public func forward(synapse name: String, to forwarder: HTTPForwarder, example: String? = nil, policy: AnswerPolicy = .first) {
        self.catalog.add(SynapseCatalog.Entry(name: name, streaming: false, policy: policy, encoding: "json", example: example))
        self.axon.attach(synapse: name) { req in try await forwarder.forward(req) }
    }

    static func decode<S: Synapse>(_ type: S.Type, _ req: QueryRequest) throws -> S {
        do { return try S.decodeRequest(req.body) } catch {
            throw QueryError(.badRequest, "cannot decode \(S.name): \(error)")
        }
    }

    /// Replaces the default blacklist (unregistered callers and callers without a validator permit).
    public func blacklist(_ f: @escaping AxonPolicy.Blacklist) { self.axon.setBlacklist(f) }
    /// Replaces the default priority (the caller's stake).
    public func priority(_ f: @escaping AxonPolicy.Priority) { self.axon.setPriority(f) }

    /// The host published when none is configured: the listen host, or for 0.0.0.0 the local
    /// address of this machine's route to the node (a miner beside its node publishes the
    /// address the node's network reaches it on), or 127.0.0.1 when there is none.
    public func learnedHost() -> String {
        if let h = self.externalHost { return h }
        if self.listenHost != "0.0.0.0" { return self.listenHost }
        return Self.localAddress(toward: self.context.chain.rpc.host, port: self.context.chain.rpc.port) ?? "127.0.0.1"
    }

    /// The local IPv4 address the kernel would use to reach `host` (a UDP connect sends nothing).
    static func localAddress(toward host: String, port: UInt16) -> String? {
        guard let target = SocketAddress(numericHost: host == "localhost" ? "127.0.0.1" : host, port: port), target.ip.count == 4 else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: target.ip) }
        let connected = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let got = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard got == 0 else { return nil }
        let ip = withUnsafeBytes(of: local.sin_addr) { Array($0) }
        guard ip != [0, 0, 0, 0] else { return nil }
        return SocketAddress(ip: ip, port: 0).host
    }

    /// Registers, starts the axon, publishes it, then keeps the axon's view of the metagraph
    /// (who may call, with what priority) fresh until cancelled: read again whenever the node
    /// reports a change of the subnet's metagraph (``ChainWatcher``), or every `refreshSeconds`
    /// where the node's subscriptions cannot be used (an `https://` RPC URL).
    public func run(refreshSeconds: Double = 12) async throws {
        let uid = try await self.context.ensureRegistered()
        try await self.context.ensureHotkeyFees()
        let bound = try await self.axon.start(listen: SocketAddress(numericHost: self.listenHost, port: self.port)
            ?? SocketAddress(numericHost: "0.0.0.0", port: self.port)!)
        self.context.log("axon listening on \(bound) as uid \(uid) of subnet \(self.context.netuid)")
        let ip: [UInt8]
        let port: UInt16
        let nodeId: Ed25519.PublicKey
        if let r = self.relay {
            guard let a = SocketAddress(numericHost: r.host, port: r.port) else { throw SubnetError("relay host \(r.host) is not an IP address") }
            self.axon.useRelay(a, nodeId: r.nodeId)
            ip = a.ip
            port = r.port
            nodeId = r.nodeId
            self.context.log("reachable through the relay \(r.nodeId.hex.prefix(16))…@\(r.host):\(r.port)")
        } else {
            let host = self.learnedHost()
            guard let a = SocketAddress(numericHost: host, port: self.externalPort ?? bound.port) else {
                throw SubnetError("external host \(host) is not an IP address")
            }
            ip = a.ip
            port = a.port
            nodeId = self.context.hotkey.publicKey
        }
        try await self.publish(ip: ip, port: port, nodeId: nodeId)
        let netuid = self.context.netuid
        await self.context.watcher(pollSeconds: refreshSeconds).run { update in
            if update.touches(netuid) { await self.refresh() }
        }
        self.axon.stop()
        self.loop.shutdown()
    }
    func publish(ip: [UInt8], port: UInt16, nodeId: Ed25519.PublicKey) async throws {
        let mg = try await self.context.metagraph()
        let me = mg.neurons.first { $0.hotkey == self.context.hotkey.publicKey }
        let host = SocketAddress(ip: ip, port: port).host
        if let a = me?.axon, a.host == host, a.port == port, a.nodeId == nodeId { return }
        try await self.context.submit(.serveAxon(netuid: self.context.netuid, ip: ip, port: port, nodeId: nodeId), signer: self.context.hotkey)
        self.context.log("axon published on chain: \(host):\(port)")
    }

    func refresh() async {
        guard let mg = try? await self.context.metagraph() else { return }
        var d: [Ed25519.PublicKey: CallerInfo] = [:]
        for n in mg.neurons { d[n.hotkey] = CallerInfo(uid: n.uid, stake: n.stake, validatorPermit: n.validatorPermit) }
        self.axon.updateDirectory(d)
    }
}

/// The iterator of a handler's stream, pulled by one consumer (the axon's sending task).
final class IteratorBox<Element: Sendable>: @unchecked Sendable {
    // Safety: `AsyncThrowingStream(unfolding:)` calls its closure once at a time, the only
    // caller of `next()`.
    var iterator: AsyncThrowingStream<Element, any Error>.AsyncIterator
    init(_ iterator: AsyncThrowingStream<Element, any Error>.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> Element? { try await self.iterator.next() }
}
