import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip
import MeshIncentive
import MeshNetwork
import MeshSockets
import MeshStore
/// One connected peer, as the node tracks it.
final class PeerState {
    let peer: SecurePeer
    let tag: Int
    var finalityStream: StreamID?
    /// Our stream for gossip frames to this peer (theirs to us arrive on their own stream).
    var gossipStream: StreamID?
    var best: ChainPointer
    var finalized: ChainPointer
    var incoming: [StreamID: String] = [:]
    var requests: [StreamID: (kind: String, sentAt: UInt64, hash: Hash32?)] = [:]
    var score = 0
    var syncing = false
    /// Budgets per inbound message kind (bounded: the node's own protocol names).
    var budgets: [String: RequestBudget] = [:]
    /// When we last asked this peer for addresses.
    var addressesAskedAt: UInt64?

    init(peer: SecurePeer, tag: Int, hello: Hello) {
        self.peer = peer
        self.tag = tag
        self.best = ChainPointer(number: hello.best.number, hash: Hash32(hello.best.hash))
        self.finalized = ChainPointer(number: hello.finalized.number, hash: Hash32(hello.finalized.hash))
    }
}

/// Counters the metrics endpoint and the informant read.
struct NodeCounters {
    /// Finality messages on the direct stream (gossip counts its own per topic).
    var finalityMessages = 0
    var finalityDuplicates = 0
    /// Invalid messages from peers by reason: fixed strings chosen by the node, never text
    /// from a peer, so the metric's label set stays small.
    var invalidMessages: [String: Int] = [:]
    /// Application bytes of connections that closed, by protocol (the node's names or "other").
    var closedBytesIn: [String: Int] = [:]
    var closedBytesOut: [String: Int] = [:]
    var discovered = 0
    var blocksProduced = 0
    var epochsRun = 0
    var syncedBlocks = 0
    var reorgs = 0
    /// Compact blocks rebuilt from the pool alone, with fetched transactions, or abandoned
    /// for a full-block sync.
    var compactFromPool = 0
    var compactFetched = 0
    var compactFallbacks = 0
    var compactTransactionsFetched = 0
    var bytesIn = 0
    var bytesOut = 0
}

/// The node: socket layer, secure peers, chain and store, mempool, sync, block production,
/// finality and the subnet engine, wired together on one event loop. All methods run on the
/// loop thread; other threads reach the node through ``EventLoop/submit(_:)``.
public final class Node: SecurePeerDelegate, @unchecked Sendable {
    // Safety: every stored property is touched only on `loop` (entry points are called from
    // loop tasks), except the immutable ones.
    public let config: NodeConfig
    public let loop: EventLoop
    public let log: Log
    let key: Ed25519.PrivateKey
    public let identity: NodeIdentity
    public let store: SQLiteStore
    public let chain: ChainCore
    let mempool = Mempool()
    public private(set) var host: SecureHost!
    var finality: FinalityCore!
    let signatures = SignatureCache()
    var finalityEnv: ChainFinalityEnvironment!
    var peers: [Int: PeerState] = [:]
    var peerByObject: [ObjectIdentifier: Int] = [:]
    var nextTag = 1
    /// When recent blocks were imported here (wall-clock ms), for propagation measurements.
    var importedAt: [Hash32: UInt64] = [:]
    var importedOrder: [Hash32] = []

    func noteImported(_ hash: Hash32) {
        guard self.importedAt[hash] == nil else { return }
        self.importedAt[hash] = Node.wallClockMillis()
        self.importedOrder.append(hash)
        if self.importedOrder.count > 4096 { self.importedAt[self.importedOrder.removeFirst()] = nil }
    }
    /// Gossip for blocks, transactions and finality votes (peers by tag).
    let gossip = GossipCore<Int>(config: GossipTopic.config, random: { bound in UInt64.random(in: 0..<max(1, bound)) })
    /// Compact blocks waiting for missing transactions, by block hash.
    var compactPending: [Hash32: CompactPending] = [:]
    /// Recent messages per subnet topic (newest last, at most 256 each), for `subnet_getMessages`.
    var subnetMessages: [UInt16: [SubnetGossipMessage]] = [:]
    /// The best block when the node started (`system_syncState`'s `startingBlock`).
    var startingBlock: UInt64 = 0
    /// Blocks being fetched by hash, and when the fetch may be retried.
    var blockFetches: [Hash32: UInt64] = [:]
    var seenFinality = LRUSet<Hash32>(capacity: 16384)
    var counters = NodeCounters()
    /// Whether `flushGossip` is running (it is not re-entrant).
    var flushingGossip = false
    var lastProducedSlot: UInt64 = 0
    /// When sync last imported a block (monotonic ns).
    var lastSyncProgress: UInt64 = 0
    var finalityTimer: TimerID?
    var slotTimer: TimerID?
    var knownAddresses = AddressBook()
    /// Encrypted discovery on the p2p port (UDP).
    public internal(set) var discovery: DiscoveryService?
    /// Our address as peers report it (a quorum of distinct reporter networks, or a bootnode).
    var addressVotes = AddressVotes()
    var dialing: [AccountID: UInt64] = [:]
    var started = false
    var stopping = false
    /// Host names of operator-given bootnodes, resolved on a background thread (DNS blocks;
    /// the loop never waits for it). Addresses learned from peers must be numeric.
    var resolvedNames: [String: SocketAddress] = [:]
    var lastInformant = (bytesIn: 0, bytesOut: 0, at: UInt64(0))
    /// The address peers can dial us at (listen port).
    public private(set) var listenAddress: SocketAddress?
    /// Extra protocols (query routing) handled by plug-ins.
    var protocolHandlers: [String: any NodeProtocolHandler] = [:]
    /// Protocol names that metrics label as themselves: the node's and the plug-ins'.
    var knownProtocols: Set<String> { Set(ProtocolName.all).union(self.protocolHandlers.keys) }

    /// Opens the store under the base path and the chain. Call on the loop.
    public init(config: NodeConfig, key: Ed25519.PrivateKey, loop: EventLoop, log: Log) throws {
        self.config = config
        self.loop = loop
        self.log = log
        self.key = key
        self.identity = NodeIdentity(signingKey: key)
        try FileManager.default.createDirectory(atPath: config.basePath, withIntermediateDirectories: true)
        self.store = try SQLiteStore(path: config.basePath + "/chain.db")
        self.chain = try ChainCore(spec: config.spec, store: self.store)
        self.chain.context.verifyEquivocation = { bytes, authorities in Equivocation.verify(bytes, authorities: authorities) }
        self.finalityEnv = ChainFinalityEnvironment(chain: self.chain)
        let persisted = try self.store.meta("grandpa.voter").flatMap { try? VoterState.decode($0) }
        let setInfo = try self.store.meta("grandpa.set").flatMap { try? FinalitySetInfo.decode($0) }
        let authorities = setInfo?.authorities ?? self.chain.finalizedState.authorities
        let setId = setInfo?.setId ?? 0
        var fc = FinalityConfig()
        fc.gossipDuration = 333_000_000
        let fin = self.chain.finalized
        self.finality = FinalityCore(config: fc, key: key, authorities: authorities, setId: setId,
                                     finalized: VoteTarget(hash: fin.hash, number: fin.number),
                                     persisted: persisted, now: EventLoop.now(), env: self.finalityEnv, signatures: self.signatures)
        var limits = ConnectionLimits()
        limits.maxInbound = config.maxInbound
        limits.maxOutbound = max(config.targetOutbound * 2, 16)
        limits.maxTotal = limits.maxInbound + limits.maxOutbound
        self.host = SecureHost(loop: loop, identity: self.identity, limits: limits) { [unowned self] in self.localHello() }
        self.host.delegate = self
        // Pending finality changes from headers above the finalized block.
        for hash in self.chain.ancestry(of: self.chain.best.hash, downTo: fin.number).reversed() {
            if let h = self.chain.header(hash) { _ = self.finality.blockImported(hash: hash, number: h.number, digest: h.digest, now: EventLoop.now()) }
        }
    }

    public var nodeId: AccountID { self.key.publicKey }
    public var isValidator: Bool { self.chain.bestState.authorities.contains { $0.id == self.key.publicKey } }

    func localHello() -> Hello {
        Hello(genesisHash: self.chain.genesisHash.bytes,
              best: BlockRef(number: self.chain.best.number, hash: self.chain.best.hash.bytes),
              finalized: BlockRef(number: self.chain.finalized.number, hash: self.chain.finalized.hash.bytes),
              roles: self.config.roles, listenPort: self.config.port, agent: "tensormesh/0.1.0 (\(self.config.name))")
    }

    // MARK: Lifecycle

    /// Listens, dials bootnodes and known peers, and starts the timers.
    public func start() throws {
        guard let addr = SocketAddress(numericHost: self.config.listenHost, port: self.config.port) else {
            throw SocketError("listen address \(self.config.listenHost) (not an IP address)", errno: EINVAL)
        }
        self.listenAddress = try self.host.listen(on: addr)
        self.started = true
        for b in self.config.bootnodes where b.nodeId != self.nodeId { self.knownAddresses[b.nodeId] = b }
        if let cached = try? self.store.meta("peers"), let list = try? PeerCache.decode(cached) {
            for a in list.addresses where a.nodeId != self.nodeId && self.knownAddresses[a.nodeId] == nil { self.rememberAddress(a) }
        }
        self.log.info("Local node identity", ["nodeId": self.nodeId.hex])
        self.log.info("Listening", ["address": "\(self.nodeId.hex)@\(self.config.listenHost):\(self.listenAddress!.port)"])
        self.log.info("Chain", ["name": self.config.spec.name, "genesis": self.chain.genesisHash.hex,
                                "best": "#\(self.chain.best.number)", "finalized": "#\(self.chain.finalized.number)"])
        if self.config.validator && !self.isValidator {
            self.log.warn("--validator given but this key is not in the validator set; producing and voting only when it joins")
        }
        self.startingBlock = self.chain.best.number
        self.resolveBootnodeNames()
        try self.startDiscovery()
        self.startGossip()
        self.maintainPeers()
        self.scheduleSlot()
        self.process(self.finality.start(now: EventLoop.now()))
        self.scheduleInformant()
        self.schedulePeerMaintenance()
    }

    /// Graceful shutdown: closes peers, snapshots state, closes the store.
    public func stop() {
        guard !self.stopping else { return }
        self.stopping = true
        if let t = self.slotTimer { self.loop.cancel(t) }
        if let t = self.finalityTimer { self.loop.cancel(t) }
        self.savePeerCache()
        self.discovery?.stop()
        self.host.shutdown()
        try? self.chain.snapshotFinalized()
        try? self.store.checkpoint()
        self.log.info("Shut down", ["best": "#\(self.chain.best.number)", "finalized": "#\(self.chain.finalized.number)"])
    }

    /// Resolves the bootnodes' host names off the loop; retries the ones that fail every 30 s.
    func resolveBootnodeNames() {
        let names = Set(self.config.bootnodes.filter { SocketAddress(numericHost: $0.host, port: $0.port) == nil && self.resolvedNames[$0.host] == nil }
            .map { NodeAddress(nodeId: $0.nodeId, host: $0.host, port: $0.port) })
        guard !names.isEmpty else { return }
        let loop = self.loop
        DispatchQueue.global().async { [weak self] in
            var found: [(NodeAddress, SocketAddress)] = []
            for b in names.sorted(by: { $0.description < $1.description }) {
                if let a = try? SocketAddress.resolve(host: b.host, port: b.port).first { found.append((b, a)) }
            }
            let results = found
            loop.execute { [weak self] in
                guard let self, !self.stopping else { return }
                for (b, a) in results {
                    self.resolvedNames[b.host] = a
                    self.discovery?.addBootnode(id: b.nodeId, endpoint: Endpoint(a))
                    self.log.debug("bootnode resolved", ["bootnode": b.description, "address": a.description])
                }
                for b in names where !results.contains(where: { $0.0 == b }) {
                    self.log.warn("cannot resolve bootnode; retrying in 30 s", ["bootnode": b.description])
                }
                if results.count < names.count {
                    self.loop.schedule(after: 30_000_000_000) { [weak self] in self?.resolveBootnodeNames() }
                }
            }
        }
    }

    func savePeerCache() {
        let list = PeerCache(addresses: Array(self.knownAddresses.values.sorted { $0.nodeId < $1.nodeId }.prefix(256)))
        try? self.store.putMeta("peers", list.encoded, durable: false)
    }

    // MARK: Peers

    func schedulePeerMaintenance() {
        self.loop.schedule(after: 3_000_000_000) { [weak self] in
            guard let self, !self.stopping else { return }
            self.maintainPeers()
            self.checkRequestTimeouts()
            for p in self.peers.values { p.score = Reputation.healed(p.score) }
            self.schedulePeerMaintenance()
        }
    }

    /// Keeps `targetOutbound` outbound peers: dials known addresses not connected yet, with
    /// a back-off per address; asks connected peers for more addresses.
    func maintainPeers() {
        let now = EventLoop.now()
        // Dial back-offs and bans that ran out are forgotten (a ban per fresh identity would
        // otherwise stay forever); the host keeps its own bounded ban list.
        self.dialing = self.dialing.filter { $0.value > now }
        let connected = Set(self.peers.values.compactMap { $0.peer.remoteNodeId })
        let outbound = self.host.peers.values.filter { !$0.isInbound }.count
        let budget = self.config.targetOutbound - outbound
        for addr in self.dialCandidates(connected: connected, now: now, budget: budget) {
            self.dialing[addr.nodeId] = now + 10_000_000_000
            self.dial(addr)
        }
        if outbound < self.config.targetOutbound {
            // Each peer is asked at most every 30 s (its budget is 1/s): a small network never
            // reaches the target, and would otherwise ask on every tick for ever.
            for p in self.peers.values.filter({ $0.addressesAskedAt.map { now &- $0 >= Self.addressRequestInterval } ?? true }).prefix(4) {
                p.addressesAskedAt = now
                self.request(p, protocol: ProtocolName.peers, body: [1])
            }
        }
    }

    /// Dials a numeric address, or a bootnode's name once it was resolved (off the loop).
    func dial(_ addr: NodeAddress) {
        guard let sa = SocketAddress(numericHost: addr.host, port: addr.port) ?? self.resolvedNames[addr.host].map({ SocketAddress(ip: $0.ip, port: addr.port) }) else {
            self.log.debug("peer address not resolved yet", ["address": addr.description])
            return
        }
        do {
            if let p = try self.host.dial(sa) { p.userInfo["expect"] = addr.nodeId.hex }
        } catch {
            self.log.debug("dial failed", ["address": addr.description, "error": "\(error)"])
        }
    }

    public func peerReady(_ peer: SecurePeer) {
        guard let hello = peer.remoteHello, let id = peer.remoteNodeId else { return }
        if let expected = peer.userInfo["expect"], expected != id.hex {
            self.log.warn("peer at a bootnode address has another identity; dropping", ["expected": String(expected.prefix(16)), "got": String(id.hex.prefix(16))])
            peer.close(code: ChannelCode.refused, reason: "unexpected identity")
            return
        }
        if self.peers.values.contains(where: { $0.peer.remoteNodeId == id }) {
            // One connection per peer: keep the one dialled by the lower node id.
            peer.close(code: ChannelCode.refused, reason: "already connected")
            return
        }
        let tag = self.nextTag
        self.nextTag += 1
        let state = PeerState(peer: peer, tag: tag, hello: hello)
        if state.best.number > self.maxPlausibleHeight {
            // More blocks than there were slots: a lie, remembered as our own height.
            state.best = self.chain.best
            self.counters.invalidMessages["implausible best in hello", default: 0] += 1
        }
        self.peers[tag] = state
        self.peerByObject[ObjectIdentifier(peer)] = tag
        if !peer.isInbound || hello.listenPort > 0 {
            let host = peer.socket.remoteAddress.host
            let port = peer.isInbound ? hello.listenPort : peer.socket.remoteAddress.port
            self.rememberAddress(NodeAddress(nodeId: id, host: host, port: port))
        }
        self.dialing[id] = nil
        state.finalityStream = try? peer.openStream(ProtocolName.finality)
        self.log.debug("peer connected", ["peer": id.hex.prefix(16).description, "address": peer.socket.remoteAddress.description,
                                          "best": "#\(hello.best.number)", "inbound": "\(peer.isInbound)"])
        self.gossip.addPeer(tag, outbound: !peer.isInbound)
        self.flushGossip()
        self.maybeSync(state)
        for h in self.protocolHandlers.values { h.peerConnected(state.peer, node: self) }
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        // What a connection carried stays in the byte counters after it closes (counters only
        // go up), under the node's protocol names or "other".
        let known = self.knownProtocols
        for (k, v) in peer.bytesInByProtocol { self.counters.closedBytesIn[known.contains(k) ? k : "other", default: 0] += v }
        for (k, v) in peer.bytesOutByProtocol { self.counters.closedBytesOut[known.contains(k) ? k : "other", default: 0] += v }
        guard let tag = self.peerByObject.removeValue(forKey: ObjectIdentifier(peer)) else { return }
        self.peers[tag] = nil
        self.gossip.removePeer(tag, now: EventLoop.now())
        self.log.debug("peer disconnected", ["peer": peer.remoteNodeId?.hex.prefix(16).description ?? "?",
                                             "reason": error.map { "\($0)" } ?? socket.map { "\($0)" } ?? "?"])
        for h in self.protocolHandlers.values { h.peerDisconnected(peer, node: self) }
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        guard let tag = self.peerByObject[ObjectIdentifier(peer)], let p = self.peers[tag] else { return }
        p.incoming[stream] = protocolName
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        guard let tag = self.peerByObject[ObjectIdentifier(peer)], let p = self.peers[tag] else { return }
        p.incoming[stream] = nil
        if p.requests.removeValue(forKey: stream) != nil, reset != nil { p.syncing = false }
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        guard let tag = self.peerByObject[ObjectIdentifier(peer)], let p = self.peers[tag] else {
            // Plug-in protocols may speak to peers that are not (yet) full chain peers.
            return
        }
        self.counters.bytesIn += message.count
        if let r = p.requests[stream] {
            p.requests[stream] = nil
            if r.kind == ProtocolName.ancestry, let hash = r.hash {
                self.receiveAncestry(message, asked: hash, from: p)
            } else {
                self.handleResponse(r.kind, message, from: p, stream: stream)
            }
            return
        }
        guard let proto = p.incoming[stream] ?? peer.channel.protocolName(of: stream) else { return }
        if proto == Self.servedMarker {
            // Request/response streams carry one request: a second one on the same stream
            // would make us do the work again with nowhere to send the answer.
            self.penalize(p, "second request on a stream", by: 20)
            self.resetIncoming(p, stream, code: ChannelCode.protocolError)
            return
        }
        let verdict = self.budgetVerdict(p, proto)
        guard verdict == .within else {
            if verdict == .charged {
                self.log.debug("peer over its request budget", ["peer": p.peer.description, "protocol": proto])
                self.penalize(p, "over its request budget", by: 5)
            }
            if Self.requestProtocols.contains(proto) { self.resetIncoming(p, stream, code: ChannelCode.refused) }
            return
        }
        if Self.requestProtocols.contains(proto) { p.incoming[stream] = Self.servedMarker }
        switch proto {
        case ProtocolName.finality: self.handleFinalityMessage(message, from: p)
        case ProtocolName.sync: self.serveSync(message, to: p, stream: stream)
        case ProtocolName.peers: self.servePeers(to: p, stream: stream)
        case ProtocolName.head: self.serveHead(to: p, stream: stream)
        case ProtocolName.gossip: self.handleGossipFrame(message, from: p)
        case ProtocolName.blockTransactions: self.serveBlockTransactions(message, to: p, stream: stream)
        case ProtocolName.ancestry: self.serveAncestry(message, to: p, stream: stream)
        default:
            if let h = self.protocolHandlers[proto] {
                h.received(message, from: peer, stream: stream, node: self)
            } else {
                // A protocol we do not speak: refused. Honest peers with plug-ins we lack
                // try now and then; a stream of them is charged.
                if self.budgetVerdict(p, Self.unknownProtocols) == .charged { self.penalize(p, "streams of unknown protocols over budget", by: 5) }
                self.resetIncoming(p, stream, code: ChannelCode.refused)
            }
        }
    }

    /// Protocols that take exactly one request per stream.
    static let requestProtocols: Set<String> = [ProtocolName.sync, ProtocolName.peers, ProtocolName.head,
                                                ProtocolName.blockTransactions, ProtocolName.ancestry]
    static let servedMarker = ""
    /// The budget key for streams of protocols the node does not speak.
    static let unknownProtocols = "?"

    /// Resets a stream the peer opened and forgets it (a reset of our own raises no
    /// `streamEnded`, so the entry would otherwise stay until the peer leaves).
    func resetIncoming(_ p: PeerState, _ stream: StreamID, code: UInt16) {
        p.incoming[stream] = nil
        p.peer.reset(stream, code: code)
    }

    /// Per-peer budgets (sustained per second, burst) for each kind of inbound message. An
    /// honest node stays far below them: one sync or ancestry request in flight at a time,
    /// a peers request every few seconds, gossip frames at the network's message rate.
    static let budgets: [String: (rate: Double, burst: Double)] = [
        ProtocolName.sync: (10, 30), ProtocolName.ancestry: (20, 60), ProtocolName.blockTransactions: (20, 60),
        ProtocolName.peers: (1, 5), ProtocolName.head: (2, 10), ProtocolName.gossip: (2_000, 6_000),
        ProtocolName.finality: (200, 600), Node.unknownProtocols: (5, 20),
    ]

    /// Takes one message from the peer's budget for `proto` (see `RequestBudget`); protocols
    /// without a budget here (plug-ins) keep their own.
    func budgetVerdict(_ p: PeerState, _ proto: String) -> RequestBudget.Verdict {
        guard let b = Self.budgets[proto] else { return .within }
        let now = EventLoop.now()
        var budget = p.budgets[proto] ?? RequestBudget(burst: b.burst, now: now)
        let verdict = budget.take(now: now, rate: b.rate, burst: b.burst)
        p.budgets[proto] = budget
        return verdict
    }

    static let maxKnownAddresses = 2048
    /// How often one peer is asked for addresses while we are short of outbound peers.
    static let addressRequestInterval: UInt64 = 30_000_000_000
    /// Address-book entries from one /24 (IPv4) or /48 (IPv6) network.
    static let maxAddressesPerNetwork = 32
    /// New addresses taken from one `/tm/peers/1` answer.
    static let maxLearnedPerAnswer = 16

    /// The addresses worth remembering from a peer's `/tm/peers/1` answer, in its order: only
    /// the first 64 entries are looked at, only numeric hosts (a peer's host names would make
    /// us resolve DNS for it), never our own id, nothing already known.
    static func learnableAddresses(_ list: PeerList, ours: AccountID, isKnown: (AccountID) -> Bool) -> [NodeAddress] {
        list.peers.prefix(64).compactMap { e in
            guard e.nodeId != ours, !isKnown(e.nodeId), let a = NodeAddress("\(e.nodeId.hex)@\(e.address)"),
                  SocketAddress(numericHost: a.host, port: a.port) != nil else { return nil }
            return a
        }
    }

    /// Adds an address to the bounded address book; when full, an address we are not
    /// connected to and that is no bootnode makes room. Returns false when nothing could be
    /// evicted.
    @discardableResult
    func rememberAddress(_ a: NodeAddress) -> Bool {
        // Eclipse resistance: one network (/24, /48) holds at most `maxAddressesPerNetwork`
        // entries, however many ids it makes up (loopback exempt, for local networks).
        if self.knownAddresses[a.nodeId] == nil, self.knownAddresses.countInNetwork(of: a) >= Self.maxAddressesPerNetwork,
           !self.config.bootnodes.contains(where: { $0.nodeId == a.nodeId }) {
            return false
        }
        if self.knownAddresses[a.nodeId] == nil && self.knownAddresses.count >= Self.maxKnownAddresses {
            let connected = Set(self.peers.values.compactMap { $0.peer.remoteNodeId })
            let bootnodes = Set(self.config.bootnodes.map { $0.nodeId })
            guard let victim = self.knownAddresses.keys.filter({ !connected.contains($0) && !bootnodes.contains($0) }).randomElement() else { return false }
            self.knownAddresses[victim] = nil
            self.dialing[victim] = nil
        }
        self.knownAddresses[a.nodeId] = a
        return true
    }

    /// Scores a peer down for bad input; drops it past the threshold.
    func penalize(_ p: PeerState, _ reason: String, by amount: Int = 10) {
        p.score -= amount
        self.counters.invalidMessages[reason, default: 0] += 1
        self.log.debug("peer misbehaved", ["peer": p.peer.description, "reason": reason, "score": "\(p.score)"])
        if p.score <= Reputation.banThreshold {
            self.log.info("dropping peer for bad behaviour", ["peer": p.peer.description, "reason": reason])
            if let id = p.peer.remoteNodeId {
                // Banned both ways for ten minutes: the host refuses it inbound too.
                let until = EventLoop.now() + 600_000_000_000
                // (Dial back-offs matter only for the bounded address book; the cap keeps a
                // stream of fresh banned identities from growing the map between sweeps.)
                if self.dialing.count < 8192 || self.dialing[id] != nil { self.dialing[id] = until }
                self.host.ban(id, until: until)
            }
            p.peer.close(code: ChannelCode.banned, reason: reason)
        }
    }

    // MARK: Requests

    func request(_ p: PeerState, protocol name: String, body: [UInt8], hash: Hash32? = nil) {
        guard let s = try? p.peer.openStream(name) else { return }
        p.requests[s] = (name, EventLoop.now(), hash)
        try? p.peer.send(body, on: s, finish: true)
    }

    func checkRequestTimeouts() {
        let now = EventLoop.now()
        for p in self.peers.values {
            for (s, r) in p.requests where now - r.sentAt > 15_000_000_000 {
                p.requests[s] = nil
                p.peer.reset(s)
                if r.kind == ProtocolName.sync {
                    p.syncing = false
                    // A claim the peer would not back with blocks is dropped.
                    if p.best.number > self.chain.best.number { p.best = self.chain.best }
                    self.penalize(p, "sync timeout", by: 5)
                }
            }
        }
    }

    func handleResponse(_ kind: String, _ message: [UInt8], from p: PeerState, stream: StreamID) {
        switch kind {
        case ProtocolName.sync:
            p.syncing = false
            guard let resp = try? BlocksResponse.decode(message) else {
                self.penalize(p, "bad sync response", by: 30)
                return
            }
            self.importSynced(resp, from: p)
        case ProtocolName.peers:
            guard let list = try? PeerList.decode(message) else {
                self.penalize(p, "bad peers response")
                return
            }
            var added = 0
            for a in Self.learnableAddresses(list, ours: self.nodeId, isKnown: { self.knownAddresses[$0] != nil }) where added < Self.maxLearnedPerAnswer {
                if self.rememberAddress(a) { added += 1 }
            }
        case ProtocolName.head:
            break
        case ProtocolName.blockTransactions:
            self.receiveBlockTransactions(message, from: p)
        case ProtocolName.ancestry:
            self.penalize(p, "ancestry answer to no request", by: 10)
        default:
            if let h = self.protocolHandlers[kind] { h.response(message, from: p.peer, node: self) }
        }
    }

    // MARK: Blocks

    /// Imports a block; the gossip verdict: accept when imported, ignore when its parent is
    /// unknown (a sync is started), reject when invalid.
    func importBlock(_ block: Block, from p: PeerState?) -> ValidationResult {
        do {
            let hashes = block.transactions.map { $0.hash }
            let outcome = try self.chain.importBlock(block, now: Node.wallClockMillis(), preverified: self.mempool.verifiedAmong(hashes))
            if case .imported(let newBest, let depth) = outcome {
                if depth > 0 {
                    self.counters.reorgs += 1
                    self.log.info("reorganised", ["depth": "\(depth)", "best": "#\(block.number)"])
                }
                self.noteImported(block.hash)
                for h in hashes { self.mempool.remove(h) }
                if newBest { self.mempool.prune(state: self.chain.bestState) }
                self.process(self.finality.blockImported(hash: block.hash, number: block.number, digest: block.header.digest, now: EventLoop.now()))
                self.noteEpochs(block)
                return .accept
            }
            return .ignore
        } catch BlockError.unknownParent {
            if let p { self.requestSync(from: p) }
            return .ignore
        } catch BlockError.conflictsWithFinalized {
            // Stale (built beside what we finalized), e.g. by a peer that was paused: dropped.
            self.counters.invalidMessages["stale block", default: 0] += 1
            return .ignore
        } catch where error.isLocal {
            self.log.error("cannot store a block", ["number": "#\(block.number)", "error": "\(error)"])
            return .ignore
        } catch {
            if let p { self.penalize(p, "invalid block", by: 50) }
            self.log.debug("rejected block", ["number": "#\(block.number)", "reason": "\(error)"])
            return .reject
        }
    }

    func noteEpochs(_ block: Block) {
        guard let parent = self.chain.state(at: block.header.parentHash) ?? nil, let state = self.chain.state(at: block.hash) else { return }
        for (id, s) in state.subnets where s.epochCount > (parent.subnets[id]?.epochCount ?? 0) {
            self.counters.epochsRun += 1
            self.log.info("epoch ran", ["netuid": "\(id)", "block": "#\(block.number)", "uids": "\(s.neurons.count)"])
        }
    }

    /// Announces a block we produced (gossip, flood publish).
    func relayBlock(_ block: Block, except: Int?) {
        self.publish(GossipTopic.blocks, CompactBlock(block).encoded)
    }

    // MARK: Sync

    /// How far above our best a block may be fetched by hash (forks near the tip).
    static let maxFetchAhead: UInt64 = 256

    /// The highest block number that can exist now: one block per slot since genesis (Aura).
    /// A peer claiming more is lying. Unbounded for chains without a genesis time (dev).
    var maxPlausibleHeight: UInt64 {
        let genesis = self.chain.spec.genesisTimestamp
        guard genesis > 0 else { return .max }
        return Node.wallClockMillis().subtractingSaturated(genesis) / self.chain.spec.params.slotDurationMs + 1
    }

    /// Whether the node is catching up: a peer claims to be ahead by more than a slot or two
    /// *and* sync imported blocks within the last two seconds (or two slots). A peer's claimed
    /// best is only a hint — one that claims 2^64 − 1 and delivers nothing never stops block
    /// production.
    public var isSyncing: Bool {
        let best = self.chain.best.number
        let window = max(2_000_000_000, 2 * self.chain.spec.params.slotDurationMs * 1_000_000)
        guard EventLoop.now() &- self.lastSyncProgress < window else { return false }
        return self.peers.values.contains { $0.best.number > best &+ 2 }
    }

    func maybeSync(_ p: PeerState) {
        if p.best.number > self.chain.best.number { self.requestSync(from: p) }
    }

    func requestSync(from p: PeerState) {
        guard !p.syncing else { return }
        p.syncing = true
        // From just above our best. When the peer's chain forks below it, the first block does
        // not attach (unknown parent) and the fork is fetched back by hash (importSynced).
        self.request(p, protocol: ProtocolName.sync, body: BlocksRequest(from: self.chain.best.number + 1, count: BlocksRequest.maxCount).encoded)
    }

    func serveSync(_ message: [UInt8], to p: PeerState, stream: StreamID) {
        guard let req = try? BlocksRequest.decode(message) else {
            self.penalize(p, "bad sync request")
            self.resetIncoming(p, stream, code: ChannelCode.protocolError)
            return
        }
        var blocks: [Block] = []
        var justifications: [(UInt64, [UInt8])] = []
        var size = 0
        var n = req.from
        let end = req.from.addingReportingOverflow(req.count).overflow ? UInt64.max : req.from + req.count
        while n < end, let b = self.chain.block(number: n) {
            blocks.append(b)
            size += b.encoded.count
            if let j = try? self.store.justification(n) { justifications.append((n, j)) }
            n += 1
            if size > 8 << 20 { break }
        }
        try? p.peer.send(BlocksResponse(blocks: blocks, justifications: justifications).encoded, on: stream, finish: true)
    }

    func importSynced(_ resp: BlocksResponse, from p: PeerState) {
        var imported = 0
        for block in resp.blocks {
            if self.chain.contains(block.hash) { continue }
            do {
                try self.chain.importBlock(block, now: Node.wallClockMillis())
                imported += 1
                for tx in block.transactions { self.mempool.remove(tx.hash) }
                self.process(self.finality.blockImported(hash: block.hash, number: block.number, digest: block.header.digest, now: EventLoop.now()))
            } catch BlockError.unknownParent(let parent) {
                // The peer's chain forks below our best: fetch its branch back by hash.
                self.fetchBlock(parent, voter: nil, from: p)
                break
            } catch where error.isLocal {
                self.log.error("cannot store a synced block", ["number": "#\(block.number)", "error": "\(error)"])
                break
            } catch {
                self.log.debug("invalid synced block", ["number": "#\(block.number)", "error": "\(error)"])
                self.penalize(p, "invalid synced block", by: 50)
                break
            }
        }
        self.counters.syncedBlocks += imported
        if imported > 0 { self.lastSyncProgress = EventLoop.now() }
        if resp.blocks.isEmpty && p.best.number > self.chain.best.number {
            // The peer claimed more than it could show: its claim is disproven.
            p.best = self.chain.best
            self.penalize(p, "sync answer below the claimed best", by: 5)
        }
        self.mempool.prune(state: self.chain.bestState)
        for (_, j) in resp.justifications {
            if let c = try? Commit.decode(j) { _ = self.applyFinality(.commit(c), from: p) }
        }
        if imported > 0 {
            let best = self.chain.best.number
            if p.best.number > best {
                self.log.info("syncing", ["best": "#\(best)", "target": "#\(p.best.number)", "imported": "\(imported)"])
                self.requestSync(from: p)
            }
        }
    }

    /// Fetches a block we lack by hash (and the ancestors we lack), e.g. the fork block a
    /// finality vote points at: range sync only follows the peer's canonical chain. Asks the
    /// voter's own node when connected (it holds its votes' targets), and the sender.
    func fetchBlock(_ hash: Hash32, voter: AccountID?, from p: PeerState?) {
        let now = EventLoop.now()
        if self.chain.contains(hash) { return }
        if let t = self.blockFetches[hash], now < t { return }
        if self.blockFetches.count >= 1024 {
            self.blockFetches = self.blockFetches.filter { $0.value > now }
            if self.blockFetches.count >= 1024 { return }  // enough in flight; sync covers the rest
        }
        self.blockFetches[hash] = now + 5_000_000_000
        var asked = Set<Int>()
        let owner = voter.flatMap { v in self.peers.values.first { $0.peer.remoteNodeId == v } }
        for q in [owner, p].compactMap({ $0 }) where asked.insert(q.tag).inserted {
            self.log.debug("fetching block by hash", ["hash": hash.hex.prefix(18).description, "peer": q.peer.description])
            self.request(q, protocol: ProtocolName.ancestry, body: AncestryRequest(hash: hash, count: 32).encoded, hash: hash)
        }
    }

    func serveAncestry(_ message: [UInt8], to p: PeerState, stream: StreamID) {
        guard let req = try? AncestryRequest.decode(message) else {
            self.penalize(p, "bad ancestry request")
            self.resetIncoming(p, stream, code: ChannelCode.protocolError)
            return
        }
        var blocks: [Block] = []
        var cursor = req.hash
        var size = 0
        while blocks.count < Int(req.count), size < 8 << 20, let b = self.chain.block(cursor) {
            blocks.append(b)
            size += b.encoded.count
            if b.number <= self.chain.finalized.number { break }
            cursor = b.header.parentHash
        }
        guard !blocks.isEmpty else {
            self.resetIncoming(p, stream, code: ChannelCode.refused)
            return
        }
        try? p.peer.send(BlocksResponse(blocks: blocks.reversed(), justifications: []).encoded, on: stream, finish: true)
    }

    /// An answer to our request for `asked` and its ancestors: it must end with that block and
    /// be a parent-linked run of consecutive numbers; anything else is the peer's fault.
    func receiveAncestry(_ message: [UInt8], asked: Hash32, from p: PeerState) {
        guard let resp = try? BlocksResponse.decode(message), let last = resp.blocks.last, last.hash == asked,
              zip(resp.blocks, resp.blocks.dropFirst()).allSatisfy({ $0.hash == $1.header.parentHash && $0.number &+ 1 == $1.number }) else {
            self.penalize(p, "ancestry answer not the chain asked for", by: 30)
            return
        }
        self.importAncestry(resp, from: p)
    }

    /// Imports a block and its ancestors (oldest first); asks for more ancestry when the
    /// oldest's parent is still unknown.
    func importAncestry(_ resp: BlocksResponse, from p: PeerState) {
        // Blocks we hold already (the common ancestor, typically) are skipped.
        let missing = resp.blocks.drop { self.chain.contains($0.hash) }
        guard let first = missing.first else { return }
        self.log.debug("blocks by hash received", ["count": "\(missing.count)", "from": "#\(first.number)",
                                                   "parentKnown": "\(self.chain.contains(first.header.parentHash))"])
        if !self.chain.contains(first.header.parentHash) {
            if first.number > self.chain.finalized.number + 1, first.number <= self.chain.best.number.addingSaturated(Node.maxFetchAhead) {
                self.blockFetches[first.header.parentHash] = nil
                self.fetchBlock(first.header.parentHash, voter: nil, from: p)
            }
            return
        }
        for block in missing where !self.chain.contains(block.hash) {
            guard self.chain.contains(block.header.parentHash) else { break }
            if self.importBlock(block, from: p) == .reject { break }
        }
        self.maybeSync(p)
    }

    // MARK: Transactions

    /// Submits a transaction from RPC; returns its hash or the refusal.
    public func submit(_ tx: Transaction) throws(MempoolError) -> Hash32 {
        let hash = try self.mempool.submit(tx, state: self.chain.bestState, context: self.chain.context)
        self.publish(GossipTopic.transactions, tx.encoded)
        return hash
    }

    // MARK: Production

    static func wallClockMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }

    func scheduleSlot() {
        let slotMs = self.chain.spec.params.slotDurationMs
        let now = Node.wallClockMillis()
        let next = (now / slotMs + 1) * slotMs
        self.slotTimer = self.loop.schedule(after: (next - now) * 1_000_000 + 1_000_000) { [weak self] in
            guard let self, !self.stopping else { return }
            self.onSlot()
            self.scheduleSlot()
        }
    }

    func onSlot() {
        guard self.config.validator else { return }
        let slotMs = self.chain.spec.params.slotDurationMs
        let now = Node.wallClockMillis()
        let slot = now / slotMs
        // A slot we are late for by more than half its length is skipped, not produced late.
        guard slot > self.lastProducedSlot, now - slot * slotMs < slotMs / 2 else { return }
        if self.isSyncing { return }
        do {
            let candidates = self.mempool.ready(state: self.chain.bestState, limit: 1000)
            if let block = try self.chain.produce(slot: slot, timestamp: now, key: self.key, candidates: candidates) {
                self.lastProducedSlot = slot
                self.counters.blocksProduced += 1
                self.noteImported(block.hash)
                for tx in block.transactions { self.mempool.remove(tx.hash) }
                self.mempool.prune(state: self.chain.bestState)
                self.log.info("Prepared block", ["number": "#\(block.number)", "hash": block.hash.hex.prefix(18).description,
                                                 "transactions": "\(block.transactions.count)"])
                self.relayBlock(block, except: nil)
                self.process(self.finality.blockImported(hash: block.hash, number: block.number, digest: block.header.digest, now: EventLoop.now()))
                self.noteEpochs(block)
            }
        } catch {
            self.log.error("block production failed", ["error": "\(error)"])
        }
    }

    // MARK: Finality

    func handleFinalityMessage(_ message: [UInt8], from p: PeerState) {
        guard let m = try? FinalityMessage.decode(message) else {
            self.penalize(p, "undecodable finality message")
            return
        }
        let id = Hash32.of(message)
        var relay = false
        switch m {
        case .vote, .commit, .equivocation:
            guard self.seenFinality.insert(id) else {
                self.counters.finalityDuplicates += 1
                return
            }
            relay = true
        default: break
        }
        self.counters.finalityMessages += 1
        switch self.applyFinality(m, from: p).verdict {
        case .invalid:
            self.penalize(p, "invalid finality message", by: 20)
        case .valid:
            if relay { self.broadcastFinality(message, except: p.tag) }
        case .irrelevant, .needsBlock:
            break
        }
    }

    func broadcastFinality(_ bytes: [UInt8], except: Int?) {
        self.publish(GossipTopic.finality, bytes)
    }

    /// Performs the gadget's actions in order; a persist is durable before anything after it.
    func process(_ actions: [FinalityAction]) {
        for a in actions {
            switch a {
            case .persist(let state):
                do { try self.store.putMeta("grandpa.voter", state.encoded, durable: true) } catch {
                    self.log.error("cannot persist finality vote; not sending it", ["error": "\(error)"])
                    return
                }
            case .broadcast(let m):
                let bytes = m.encoded
                switch m {
                case .vote, .commit, .equivocation:
                    _ = self.seenFinality.insert(Hash32.of(bytes))
                    self.broadcastFinality(bytes, except: nil)
                case .voteRequest, .catchUpRequest, .catchUp:
                    // Requests go to each peer directly: gossip would deduplicate a repeated
                    // request, and its validation accepts only votes, commits and evidence.
                    for p in self.peers.values {
                        if let s = p.finalityStream { try? p.peer.send(bytes, on: s) }
                    }
                }
            case .send(let tag, let m):
                if let p = self.peers[tag], let s = p.finalityStream { try? p.peer.send(m.encoded, on: s) }
            case .finalize(let target, let commit):
                do {
                    try self.chain.finalize(target.hash, justification: commit.encoded)
                    self.log.debug("finalized", ["number": "#\(target.number)", "round": "\(commit.round)"])
                } catch {
                    self.log.warn("finalization not applied", ["target": "#\(target.number)", "error": "\(error)"])
                }
            case .equivocation(let e):
                self.log.warn("finality equivocation detected", ["voter": e.first.voter.hex.prefix(16).description, "round": "\(e.first.round)"])
                self.reportEquivocation(e)
            case .authoritySetChanged(let setId, let authorities):
                try? self.store.putMeta("grandpa.set", FinalitySetInfo(setId: setId, authorities: authorities).encoded, durable: true)
                self.log.info("validator set changed", ["setId": "\(setId)", "validators": "\(authorities.count)"])
            }
        }
        self.scheduleFinalityTimer()
    }

    func reportEquivocation(_ e: Equivocation) {
        guard self.isValidator else { return }
        let state = self.chain.bestState
        let tx = Transaction(signer: self.key, nonce: state.nonce(self.key.publicKey), validUntil: state.number + 64,
                             fee: state.params.baseFee, call: .reportEquivocation(evidence: e.encoded), genesis: self.chain.genesisHash)
        _ = try? self.submit(tx)
    }

    func scheduleFinalityTimer() {
        if let t = self.finalityTimer { self.loop.cancel(t) }
        let now = EventLoop.now()
        let at = self.finality.nextDeadline(after: now)
        self.finalityTimer = self.loop.schedule(after: at - now) { [weak self] in
            guard let self, !self.stopping else { return }
            self.finalityTimer = nil
            self.process(self.finality.tick(now: EventLoop.now()))
        }
    }

    // MARK: Serving small requests

    func servePeers(to p: PeerState, stream: StreamID) {
        let entries = self.peers.values.sorted { $0.tag < $1.tag }.compactMap { q -> PeerEntry? in
            guard let id = q.peer.remoteNodeId, let hello = q.peer.remoteHello else { return nil }
            let port = q.peer.isInbound ? hello.listenPort : q.peer.socket.remoteAddress.port
            let names = Set(q.peer.bytesInByProtocol.keys).union(q.peer.bytesOutByProtocol.keys).sorted()
            let traffic = names.prefix(64).map { PeerEntry.Traffic(protocolName: $0, bytesIn: UInt64(q.peer.bytesInByProtocol[$0] ?? 0),
                                                                   bytesOut: UInt64(q.peer.bytesOutByProtocol[$0] ?? 0)) }
            return PeerEntry(nodeId: id, address: "\(q.peer.socket.remoteAddress.host):\(port)", bestNumber: q.best.number,
                             roles: hello.roles.rawValue, inbound: q.peer.isInbound, traffic: traffic)
        }
        try? p.peer.send(PeerList(peers: entries).encoded, on: stream, finish: true)
    }

    func serveHead(to p: PeerState, stream: StreamID) {
        let info = HeadInfo(best: self.chain.best, finalized: self.chain.finalized, round: self.finality.round, setId: self.finality.setId)
        try? p.peer.send(info.encoded, on: stream, finish: true)
    }

    // MARK: Informant

    func scheduleInformant() {
        self.loop.schedule(after: UInt64(self.config.informantInterval * 1e9)) { [weak self] in
            guard let self, !self.stopping else { return }
            self.informant()
            self.scheduleInformant()
        }
    }

    func informant() {
        let now = EventLoop.now()
        var bytesIn = 0
        var bytesOut = 0
        for p in self.host.peers.values {
            bytesIn += p.socket.bytesRead
            bytesOut += p.socket.bytesWritten
        }
        let elapsed = max(1.0, Double(now - self.lastInformant.at) / 1e9)
        let inRate = Double(max(0, bytesIn - self.lastInformant.bytesIn)) / elapsed / 1024
        let outRate = Double(max(0, bytesOut - self.lastInformant.bytesOut)) / elapsed / 1024
        self.lastInformant = (bytesIn, bytesOut, now)
        let status = self.isSyncing ? "⚙️  Syncing" : "💤 Idle"
        let best = self.chain.best
        let fin = self.chain.finalized
        let found = self.discovery.map { ", \($0.core.table.count) discovered" } ?? ""
        self.log.info("\(status) (\(self.peers.count) peers\(found)), best: #\(best.number) (\(best.hash.hex.prefix(10))…), finalized #\(fin.number) (\(fin.hash.hex.prefix(10))…), ⬇ \(String(format: "%.1f", inRate))kiB/s ⬆ \(String(format: "%.1f", outRate))kiB/s")
    }
}

/// Handlers for extra stream protocols (query routing).
public protocol NodeProtocolHandler: AnyObject {
    func peerConnected(_ peer: SecurePeer, node: Node)
    func peerDisconnected(_ peer: SecurePeer, node: Node)
    func received(_ message: [UInt8], from peer: SecurePeer, stream: StreamID, node: Node)
    func response(_ message: [UInt8], from peer: SecurePeer, node: Node)
}

extension Node {
    /// Registers a handler for a stream protocol.
    public func register(protocol name: String, handler: any NodeProtocolHandler) { self.protocolHandlers[name] = handler }
}

/// The finality set the node last enacted (persisted).
struct FinalitySetInfo: BinaryCodable {
    var setId: UInt64
    var authorities: [WeightedAuthority]

    init(setId: UInt64, authorities: [WeightedAuthority]) {
        self.setId = setId
        self.authorities = authorities
    }

    func encode(to w: inout ByteWriter) { w.u64(self.setId); w.list(self.authorities) }
    init(from r: inout ByteReader) throws(CodecError) {
        self.setId = try r.u64()
        self.authorities = try r.list(of: WeightedAuthority.self, limit: 1024, minElementSize: 40)
    }
}

/// The peers answer.
public struct PeerList: BinaryCodable, Sendable, Equatable {
    public var peers: [PeerEntry]
    public init(peers: [PeerEntry]) { self.peers = peers }
    public func encode(to w: inout ByteWriter) { w.list(self.peers) }
    public init(from r: inout ByteReader) throws(CodecError) { self.peers = try r.list(of: PeerEntry.self, limit: 1024, minElementSize: 40) }
}

/// Addresses of peers, persisted across restarts.
struct PeerCache: BinaryCodable {
    var addresses: [NodeAddress]
    init(addresses: [NodeAddress]) { self.addresses = addresses }
    func encode(to w: inout ByteWriter) { w.list(self.addresses) { w, a in w.string(a.description) } }
    init(from r: inout ByteReader) throws(CodecError) {
        self.addresses = try r.list(limit: 4096) { (r: inout ByteReader) throws(CodecError) in
            let s = try r.string(limit: 200)
            guard let a = NodeAddress(s) else { throw .invalidValue(field: "peer", reason: s) }
            return a
        }
    }
}

/// A set that forgets its oldest members past a capacity.
struct LRUSet<T: Hashable> {
    var set: Set<T> = []
    var order: [T] = []
    var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Inserts; returns false if already present.
    mutating func insert(_ v: T) -> Bool {
        guard self.set.insert(v).inserted else { return false }
        self.order.append(v)
        if self.set.count > self.capacity {
            self.set.remove(self.order[self.head])
            self.head += 1
            if self.head > self.capacity {
                self.order.removeFirst(self.head)
                self.head = 0
            }
        }
        return true
    }

    func contains(_ v: T) -> Bool { self.set.contains(v) }
}
