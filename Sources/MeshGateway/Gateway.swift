import ExampleSubnets
import FlyingFox
import FlyingSocks
import Foundation
import MeshChain
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
import MeshQuery
import MeshSockets
import MeshSubnet
import Synchronization

/// How a gateway runs.
public struct GatewayConfig: Sendable {
    public var rpcURL: String
    /// Subnets whose synapses end users may call.
    public var netuids: [UInt16]
    /// The storage market behind `PUT|GET /v1/storage/{key}` (nil: no storage routes).
    public var storageNetuid: UInt16?
    public var listenHost = "127.0.0.1"
    public var listenPort: UInt16 = 8080
    /// Miners asked per request (the top by incentive).
    public var topK = 3
    /// Miners holding each stored object.
    public var replication = 3
    /// Deadline of a miner query, seconds.
    public var timeoutSeconds = 10.0
    /// How often the metagraphs are read again, seconds, where the node's subscriptions cannot
    /// be used (an `https://` RPC URL); otherwise they are read when the node reports a change.
    public var refreshSeconds = 6.0
    /// Largest request body accepted from an end user.
    public var maxBodyBytes = 1 << 20
    /// Where the stored objects' index is kept (nil: in memory only).
    public var stateDirectory: String?
    /// Fraction of answered queries kept for validators (`GET /v1/organic/{netuid}`).
    public var organicSampleRate = 0.0
    /// Stake the gateway's hotkey keeps on each subnet (miners answer callers with a validator permit).
    public var stake: Rao = 0
    /// How often stored objects' holders are challenged and lost replicas copied again, seconds.
    public var repairSeconds = 30.0
    /// Objects checked per repair pass.
    public var repairBatch = 64

    public init(rpcURL: String, netuids: [UInt16], storageNetuid: UInt16? = nil) {
        self.rpcURL = rpcURL
        self.netuids = netuids
        self.storageNetuid = storageNetuid
    }
}

/// The apps gateway: end users' keyed HTTP API, routed to a subnet's best miners over the
/// encrypted, signed query path (docs/gateway.md).
///
/// - `POST /v1/subnets/{netuid}/{synapse}`: the JSON body goes to the top-k miners by
///   incentive; the answer follows the synapse's policy (first, best, aggregate), with each
///   miner's hotkey, signed receipt and latency. Streaming synapses (or `Accept:
///   text/event-stream`) answer as server-sent events.
/// - `GET /v1/subnets`: the subnets, their synapses (with an example request) and top miners.
/// - `PUT|GET /v1/storage/{key}`: objects kept by several top storage miners, checked against
///   their Merkle root on the way back.
/// - `GET /v1/usage`: the caller's usage; `GET /v1/organic/{netuid}`: sampled organic queries
///   (keys marked `organic`); `GET /metrics`: Prometheus text.
///
/// Every header, body and number from an end user or a miner is hostile: bodies are bounded
/// before they are read, keys checked before any work, each key rate-limited with a quota,
/// and miners' answers verified (signature, body hash, Merkle root) before they are passed on.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    let keys: APIKeys
    let hotkey: Ed25519.PrivateKey
    let coldkey: Ed25519.PrivateKey
    let chain: ChainClient
    let logLine: @Sendable (String) -> Void
    let state = Mutex(State())
    let dendrite = Mutex<Dendrite?>(nil)

    struct State {
        var access = AccessControl()
        var metrics = GatewayMetrics()
        var metagraphs: [UInt16: (graph: Metagraph, at: Date)] = [:]
        var catalogs: [UInt16: (list: SynapseCatalog.List, at: Date)] = [:]
        var objects = ObjectIndex()
        var organic: [UInt16: [JSON]] = [:]
        /// The last object id the previous repair pass checked.
        var repairCursor = ""
    }

    public init(config: GatewayConfig, keys: APIKeys, hotkey: Ed25519.PrivateKey, coldkey: Ed25519.PrivateKey,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws {
        self.config = config
        self.keys = keys
        self.hotkey = hotkey
        self.coldkey = coldkey
        self.chain = try ChainClient(url: config.rpcURL)
        self.logLine = log
        if let dir = config.stateDirectory {
            let loaded = ObjectIndex.load(path: dir + "/objects.json")
            self.state.withLock { $0.objects = loaded }
        }
    }

    func log(_ message: String) { self.logLine("\(ISO8601DateFormatter().string(from: Date())) gateway \(message)") }

    var allNetuids: [UInt16] { Array(Set(self.config.netuids + (self.config.storageNetuid.map { [$0] } ?? []))).sorted() }

    // MARK: Running

    /// Connects to the chain, registers the gateway's hotkey where needed (in the
    /// background), keeps the metagraphs fresh and serves HTTP until cancelled.
    public func run() async throws {
        let context = try SubnetContext(rpcURL: self.config.rpcURL, netuid: self.allNetuids.first ?? 0, hotkey: self.hotkey, coldkey: self.coldkey,
                                        name: "gateway", log: self.logLine)
        try await context.waitForChain()
        let genesis = try await context.genesis()
        let loop = try EventLoop(name: "tensormesh.gateway")
        let dendrite = Dendrite(hotkey: self.hotkey, genesisHash: genesis, loop: loop)
        self.dendrite.withLock { $0 = dendrite }
        defer {
            dendrite.close()
            loop.shutdown()
        }
        let server = HTTPServer(address: try .inet(ip4: self.config.listenHost, port: self.config.listenPort), timeout: 60, logger: .disabled)
        await server.appendRoute("*") { [self] request in await self.handle(request) }
        self.log("serving http://\(self.config.listenHost):\(self.config.listenPort) for subnets \(self.allNetuids.map(String.init).joined(separator: ", ")) as \(self.hotkey.publicKey.hex.prefix(16))…")
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.run() }
            group.addTask { await self.register() }
            group.addTask {
                // Metagraphs are read again when the node reports a change (its subscriptions),
                // or every refreshSeconds where they cannot be used (an https:// RPC URL).
                let watcher = ChainWatcher(url: self.config.rpcURL, netuids: self.allNetuids, pollSeconds: max(0.5, min(self.config.refreshSeconds, 3600)),
                                           log: { [self] in self.log($0) })
                await watcher.run { update in await self.refresh(self.allNetuids.filter { update.touches($0) }) }
            }
            if self.config.storageNetuid != nil {
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(nanoseconds: UInt64(max(0.1, min(self.config.repairSeconds, 3600)) * 1e9))
                        _ = await self.repairObjects(limit: self.config.repairBatch)
                    }
                }
            }
        }
    }

    /// Registers (and stakes) the gateway's hotkey on every subnet it serves, so miners'
    /// default blacklist lets its queries through once it holds a validator permit.
    func register() async {
        for netuid in self.allNetuids {
            do {
                let c = try SubnetContext(rpcURL: self.config.rpcURL, netuid: netuid, hotkey: self.hotkey, coldkey: self.coldkey, name: "gateway", log: self.logLine)
                try await c.ensureRegistered()
                if self.config.stake > 0 { try await c.ensureStake(self.config.stake) }
                try await c.ensureHotkeyFees()
            } catch {
                self.log("cannot register on subnet \(netuid): \(error)")
            }
        }
    }

    /// Reads served subnets' metagraphs again (all of them by default).
    func refresh(_ netuids: [UInt16]? = nil) async {
        for netuid in netuids ?? self.allNetuids {
            let chain = self.chain
            let mg: Metagraph? = await withCheckedContinuation { cont in
                DispatchQueue.global().async { cont.resume(returning: try? chain.metagraphInfo(netuid: netuid)) }
            }
            if let mg { self.state.withLock { $0.metagraphs[netuid] = (mg, Date()) } }
        }
    }

    // MARK: Miners

    /// A miner chosen for a request.
    struct Target: Sendable {
        var neuron: Metagraph.Neuron
        var endpoint: AxonEndpoint
    }

    /// The `k` miners with the most incentive that publish a reachable axon (not ourselves).
    func top(_ netuid: UInt16, k: Int) -> [Target] {
        guard let mg = self.state.withLock({ $0.metagraphs[netuid]?.graph }) else { return [] }
        let me = self.hotkey.publicKey
        let ranked = mg.neurons.filter { $0.hotkey != me }.sorted { ($0.incentive, -Int($0.uid)) > ($1.incentive, -Int($1.uid)) }
        var out: [Target] = []
        for n in ranked where out.count < k {
            guard let a = n.axon, let id = a.nodeId, a.port != 0, let addr = SocketAddress(numericHost: a.host, port: a.port) else { continue }
            out.append(Target(neuron: n, endpoint: AxonEndpoint(hotkey: n.hotkey, nodeId: id, address: addr)))
        }
        return out
    }

    func call(_ t: Target, netuid: UInt16, synapse: String, body: [UInt8], onChunk: (@Sendable ([UInt8]) -> Void)? = nil) async -> QueryResult {
        guard let d = self.dendrite.withLock({ $0 }) else {
            return QueryResult(target: t.neuron.hotkey, status: .unavailable, body: [], failure: .unreachable("the gateway is starting"),
                               latencyMs: 0, processingMicros: 0)
        }
        let r = await d.call(t.endpoint, netuid: netuid, synapse: synapse, body: body, timeout: self.config.timeoutSeconds, onChunk: onChunk)
        self.state.withLock { $0.metrics.minerQuery(r.isSuccess ? "ok" : "\(r.status.rawValue)", seconds: r.latencyMs / 1000) }
        return r
    }

    /// The synapses a subnet's miners serve, asked of its top miners (cached for a minute).
    func catalog(_ netuid: UInt16) async -> SynapseCatalog.List? {
        if let c = self.state.withLock({ $0.catalogs[netuid] }), Date().timeIntervalSince(c.at) < 60 { return c.list }
        for t in self.top(netuid, k: self.config.topK) {
            let r = await self.call(t, netuid: netuid, synapse: SynapseCatalog.synapseName, body: [])
            guard r.isSuccess, r.body.count <= 1 << 20, var list = try? SynapseCatalog.List.decode(r.body) else { continue }
            list.synapses = Array(list.synapses.filter { !$0.name.isEmpty && $0.name.utf8.count <= 64 }.prefix(64))
            self.state.withLock { $0.catalogs[netuid] = (list, Date()) }
            return list
        }
        return self.state.withLock { $0.catalogs[netuid]?.list }
    }
}

extension SynapseCatalog.List {
    static func decode(_ bytes: [UInt8]) throws -> SynapseCatalog.List { try SynapseCoding.decodeJSON(SynapseCatalog.List.self, bytes) }
}
