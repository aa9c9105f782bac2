import Foundation
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
    /// The address published on chain (default: the listen host, or 127.0.0.1 for 0.0.0.0).
    public let externalHost: String?
    /// A relay to publish instead of our own address (for miners without inbound connectivity).
    public let relay: (host: String, port: UInt16, nodeId: Ed25519.PublicKey)?
    let loop: EventLoop
    public let axon: Axon
    let genesis: [UInt8]

    /// Connects to the chain and prepares the axon (nothing is served until ``run()``).
    public init(_ context: SubnetContext, port: UInt16 = 8091, listenHost: String = "0.0.0.0", externalHost: String? = nil,
                relay: (host: String, port: UInt16, nodeId: Ed25519.PublicKey)? = nil, limits: AxonLimits = AxonLimits()) async throws {
        self.context = context
        self.port = port
        self.listenHost = listenHost
        self.externalHost = externalHost
        self.relay = relay
        try await context.waitForChain()
        self.genesis = try await context.genesis()
        self.loop = try EventLoop(name: "tensormesh.miner")
        self.axon = Axon(hotkey: context.hotkey, netuid: context.netuid, genesisHash: self.genesis, loop: self.loop, limits: limits)
    }

    /// Serves a synapse: decodes the request, runs `handler`, encodes the answer. A request
    /// that does not decode gets 400.
    ///
    /// The request is hostile input: any caller the blacklist lets through chooses every
    /// field. A trap in the handler (an integer overflow, an out-of-range index, a force
    /// unwrap) kills the whole miner process, axon included, so check ranges and throw
    /// `QueryError(.badRequest, …)` instead (use `multipliedReportingOverflow` and friends).
    public func serve<S: Synapse>(_ type: S.Type, _ handler: @escaping @Sendable (S, Caller) async throws -> S.Response) {
        self.axon.attach(synapse: S.name) { req in
            let synapse: S
            do { synapse = try SynapseCoding.decode(S.self, req.body) } catch {
                throw QueryError(.badRequest, "cannot decode \(S.name): \(error)")
            }
            return .body(try SynapseCoding.encode(try await handler(synapse, Caller(hotkey: req.header.caller, info: req.caller))))
        }
    }

    /// Replaces the default blacklist (unregistered callers and callers without a validator permit).
    public func blacklist(_ f: @escaping AxonPolicy.Blacklist) { self.axon.setBlacklist(f) }
    /// Replaces the default priority (the caller's stake).
    public func priority(_ f: @escaping AxonPolicy.Priority) { self.axon.setPriority(f) }

    /// Registers, starts the axon, publishes it, then refreshes the metagraph every
    /// `refreshSeconds` until cancelled.
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
            let host = self.externalHost ?? (self.listenHost == "0.0.0.0" ? "127.0.0.1" : self.listenHost)
            guard let a = SocketAddress(numericHost: host, port: bound.port) else { throw SubnetError("external host \(host) is not an IP address") }
            ip = a.ip
            port = bound.port
            nodeId = self.context.hotkey.publicKey
        }
        try await self.publish(ip: ip, port: port, nodeId: nodeId)
        while !Task.isCancelled {
            await self.refresh()
            try? await Task.sleep(nanoseconds: sleepNanos(seconds: refreshSeconds))
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
