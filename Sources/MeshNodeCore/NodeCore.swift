import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// A reading of the node's clocks: the monotonic instant timers run on, and the wall clock
/// (Unix milliseconds) that slots and block timestamps follow.
public struct NodeTime: Sendable, Equatable {
    public var instant: Instant
    public var wallMillis: UInt64

    public init(instant: Instant, wallMillis: UInt64) {
        self.instant = instant
        self.wallMillis = wallMillis
    }
}

/// Where a driver reads the time it hands to the cores (the event loop's clocks in the node,
/// virtual time in the simulator).
public protocol TimeSource: Sendable {
    func now() -> NodeTime
}

/// Where the core's log lines go: the node's logger, or nowhere in the simulator. Nothing
/// secret is ever passed. Lines carry a target (`sync`, `peers`, `gossip`, `finality`) so an
/// operator's `--log sync=debug` selects them.
public protocol NodeLogSink: AnyObject {
    /// The sink for one target (its own level).
    func target(_ name: String) -> any NodeLogSink
    func debug(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>)
    func info(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>)
    func warn(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>)
    func error(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>)
}

/// A log sink that drops everything (simulator, fuzzing).
public final class SilentLog: NodeLogSink {
    public init() {}
    public func target(_ name: String) -> any NodeLogSink { self }
    public func debug(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) {}
    public func info(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) {}
    public func warn(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) {}
    public func error(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) {}
}

/// What the node core is told at start.
public struct NodeCoreConfig: Sendable {
    public var roles: NodeRoles = .full
    /// Produce blocks and vote when the key is in the validator set.
    public var validator = false
    /// Relay blocks (and finality) only: no transaction gossip.
    public var blocksOnly = false
    /// Subnets whose gossip topics (`subnet/<netuid>`) this node joins and relays.
    public var subnetTopics: [UInt16] = []
    public var bootnodes: [NodeAddress] = []
    /// The TCP port peers can dial us at (sent in the hello).
    public var listenPort: UInt16 = 30333
    /// The client name in the hello.
    public var agent = "tensormesh/0.1.0"
    public var peers = PeerManagerConfig()
    public var finality = FinalityConfig()
    /// How often peers are maintained (dials, request timeouts, score healing).
    public var maintenanceInterval: Duration = .seconds(3)
    /// Blocks asked for in one range-sync request (1 ... `BlocksRequest.maxCount`).
    public var syncRangeBlocks: UInt64 = BlocksRequest.maxCount
    /// Range-sync requests kept in flight to one peer (at least 1): the next range is asked
    /// for before the one in hand is imported, so the peer serves it and the network carries
    /// it while we import. 1 is strictly one request, one import, one request.
    public var syncRangesInFlight = 2

    public init() {}
}

/// What the node core asks its driver to do. Performed in order.
public enum NodeAction: Sendable {
    /// Send on our long-lived stream of `protocol` to the peer (the driver opens it on first use).
    case send(PeerID, protocol: String, [UInt8])
    /// Open a request stream of `protocol`, send `body` and finish our side; the answer comes
    /// back through `NodeCore.response`, a reset through `requestFailed`.
    case request(PeerID, RequestID, protocol: String, [UInt8])
    /// Answer the request the peer made on `stream`, and finish the stream.
    case reply(PeerID, StreamID, [UInt8])
    /// Reset a stream the peer opened.
    case reset(PeerID, StreamID, code: UInt16)
    /// Cancel one of our requests (reset its stream).
    case cancel(PeerID, RequestID)
    /// Open a connection to this address.
    case dial(NodeAddress)
    /// Close the connection.
    case disconnect(PeerID, code: UInt16, reason: String)
    /// Refuse this identity, inbound and outbound, until `until`.
    case ban(AccountID, until: Instant)
    /// Our public IP became known: publish it in the discovery record.
    case advertise(ip: [UInt8])
    /// Something happened that a driver may report (RPC subscriptions, metrics).
    case event(NodeEvent)
}

/// What happened, for drivers that report it.
public enum NodeEvent: Sendable, Equatable {
    /// A block was imported (by us: produced).
    case imported(ChainPointer, newBest: Bool, produced: Bool)
    case finalized(ChainPointer)
    case epoch(netuid: UInt16, block: UInt64)
}

/// Counters the metrics endpoint and the informant read.
public struct NodeCounters: Sendable {
    /// Finality messages on the direct stream (gossip counts its own per topic).
    public internal(set) var finalityMessages = 0
    /// Invalid messages from peers by reason: fixed strings chosen by the node, never text
    /// from a peer, so the metric's label set stays small.
    public internal(set) var invalidMessages: [String: Int] = [:]
    public internal(set) var discovered = 0
    public internal(set) var blocksProduced = 0
    public internal(set) var epochsRun = 0
    public internal(set) var syncedBlocks = 0
    public internal(set) var reorgs = 0
    /// Compact blocks rebuilt from the pool alone, with fetched transactions, or abandoned
    /// for a full-block sync.
    public internal(set) var compactFromPool = 0
    public internal(set) var compactFetched = 0
    public internal(set) var compactFallbacks = 0
    public internal(set) var compactTransactionsFetched = 0
}

/// The node's protocol logic as one sans-IO state machine: the chain and its pool, gossip,
/// finality, the peer manager, sync, compact-block relay and block production, glued
/// together. Drivers feed it events with the time as a value and perform the actions it
/// drains; it never touches a socket, a clock or a random source of its own. The node
/// binary (`MeshNode.Node`) and the simulator (`MeshSim.NodeScenario`) run this same code.
///
/// A block's path through it: `received` (gossip frame) → `GossipCore` asks for validation →
/// `validateCompactBlock` (header, body from the pool) → `importBlock` (ChainCore) →
/// `FinalityCore.blockImported` → votes out through gossip → `.finalize` → `ChainCore.finalize`.
public final class NodeCore {
    public let config: NodeCoreConfig
    let key: Ed25519.PrivateKey
    public let chain: ChainCore
    public let mempool = Mempool()
    public let gossip: GossipCore
    public internal(set) var finality: FinalityCore
    public let signatures: SignatureCache
    let finalityEnv: ChainFinalityEnvironment
    public internal(set) var peers: PeerManager
    var sync = SyncState()
    var relay = BlockRelay()
    var slots: SlotSchedule
    /// The core's log (block production, epochs) and its targets.
    let log: any NodeLogSink
    let logSync: any NodeLogSink
    let logPeers: any NodeLogSink
    let logGossip: any NodeLogSink
    let logFinality: any NodeLogSink
    public internal(set) var counters = NodeCounters()
    /// Recent messages per subnet topic (newest last, at most 256 each), for `subnet_getMessages`.
    public internal(set) var subnetMessages: [UInt16: [SubnetGossipMessage]] = [:]
    /// When recent blocks were imported here (wall-clock ms), for propagation measurements.
    var imported = RecentTimes(capacity: 4096)
    /// The best block when the node started (`system_syncState`'s `startingBlock`).
    public private(set) var startingBlock: UInt64 = 0
    /// Application bytes per protocol exchanged with a peer, as the driver counts them (shown
    /// in `/tm/peers/1` answers; at most 64 protocols).
    public var trafficOf: ((PeerID) -> [PeerEntry.Traffic])?
    var outbox: [NodeAction] = []
    var flushingGossip = false
    /// `flushGossip`'s buffer, kept between calls (see `GossipCore.drain(into:)`).
    var gossipBatch: [GossipOutput] = []
    /// When the gadget's timer is due (its deadlines are always after the time they were
    /// asked at, so the core remembers the last one: recomputed after every gadget call).
    var finalityAt = Instant.distantFuture
    var nextHeartbeat = Instant.zero
    var nextMaintenance = Instant.zero
    var started = false

    /// Opens the chain over `store` (durable state: blocks, snapshots, the gadget's votes) and
    /// the finality gadget from what the store kept.
    public init(config: NodeCoreConfig, spec: ChainSpec, key: Ed25519.PrivateKey, store: any BlockStore, now: NodeTime,
                random: @escaping (UInt64) -> UInt64, log: any NodeLogSink, signatures: SignatureCache = SignatureCache()) throws {
        self.config = config
        self.key = key
        self.log = log
        self.logSync = log.target("sync")
        self.logPeers = log.target("peers")
        self.logGossip = log.target("gossip")
        self.logFinality = log.target("finality")
        self.signatures = signatures
        self.chain = try ChainCore(spec: spec, store: store)
        self.chain.context.verifyEquivocation = { bytes, authorities in Equivocation.verify(bytes, authorities: authorities) }
        self.finalityEnv = ChainFinalityEnvironment(chain: self.chain)
        self.gossip = GossipCore(config: GossipTopic.config, random: random)
        self.peers = PeerManager(config: config.peers, ownId: key.publicKey, bootnodes: config.bootnodes, random: random)
        self.slots = SlotSchedule(slotMillis: spec.params.slotDurationMs)
        let persisted = try store.meta(MetaKey.voter).flatMap { try? VoterState.decode($0) }
        let setInfo = try store.meta(MetaKey.finalitySet).flatMap { try? FinalitySetInfo.decode($0) }
        let fin = self.chain.finalized
        self.finality = FinalityCore(config: config.finality, key: key, authorities: setInfo?.authorities ?? self.chain.finalizedState.authorities,
                                     setId: setInfo?.setId ?? 0, finalized: VoteTarget(hash: fin.hash, number: fin.number),
                                     persisted: persisted, now: now.instant, env: self.finalityEnv, signatures: signatures)
        // Pending finality changes from headers above the finalized block.
        for hash in self.chain.ancestry(of: self.chain.best.hash, downTo: fin.number).reversed() {
            if let h = self.chain.header(hash) { _ = self.finality.blockImported(hash: hash, number: h.number, digest: h.digest, now: now.instant) }
        }
    }

    /// Keys of the store's metadata the core owns.
    enum MetaKey {
        static let voter = "grandpa.voter"
        static let finalitySet = "grandpa.set"
        static let peers = "peers"
    }

    public var nodeId: AccountID { self.key.publicKey }
    /// Whether our key is in the validator set of the best block.
    public var isValidator: Bool { self.chain.bestState.authorities.contains { $0.id == self.key.publicKey } }

    /// The hello we send on every connection.
    public func localHello() -> Hello {
        Hello(genesisHash: self.chain.genesisHash.bytes,
              best: BlockRef(number: self.chain.best.number, hash: self.chain.best.hash.bytes),
              finalized: BlockRef(number: self.chain.finalized.number, hash: self.chain.finalized.hash.bytes),
              roles: self.config.roles, listenPort: self.config.listenPort, agent: self.config.agent)
    }

    /// Everything the core asked for since the last call, in order.
    public func drain() -> [NodeAction] {
        guard !self.outbox.isEmpty else { return [] }
        defer { self.outbox = [] }  // (emptying "keeping capacity" would copy: the caller shares the buffer)
        return self.outbox
    }

    /// Moves the pending actions into `buffer` (emptied first) without allocating: the two
    /// arrays swap storage (drivers keep one buffer and pass it back each time).
    public func drain(into buffer: inout [NodeAction]) {
        buffer.removeAll(keepingCapacity: true)
        swap(&self.outbox, &buffer)
    }

    func emit(_ a: NodeAction) { self.outbox.append(a) }

    // MARK: Lifecycle

    /// Joins the gossip topics, starts the gadget, remembers cached peer addresses and dials.
    public func start(now: NodeTime) {
        guard !self.started else { return }
        self.started = true
        self.startingBlock = self.chain.best.number
        if let cached = try? self.chain.store.meta(MetaKey.peers), let list = try? PeerCache.decode(cached) {
            for a in list.addresses where self.peers.address(of: a.nodeId) == nil { self.peers.remember(a) }
        }
        if self.config.validator && !self.isValidator {
            self.log.warn("--validator given but this key is not in the validator set; producing and voting only when it joins", [:])
        }
        for t in GossipTopic.all where !(self.config.blocksOnly && t == GossipTopic.transactions) {
            self.gossip.subscribe(t, now: now.instant)
        }
        for n in Set(self.config.subnetTopics).sorted() { self.gossip.subscribe(SubnetGossipMessage.topic(n), now: now.instant) }
        self.nextHeartbeat = now.instant + self.gossip.config.heartbeat
        self.nextMaintenance = now.instant + self.config.maintenanceInterval
        self.slots.arm(wallMillis: now.wallMillis)
        self.maintainPeers(now: now)
        self.process(self.finality.start(now: now.instant), now: now)
        self.flushGossip(now: now)
    }

    /// Saves what a restart needs beyond the store's durable writes (the peer cache, a state
    /// snapshot). Errors are logged: nothing here is needed for safety.
    public func stop() {
        let list = PeerCache(addresses: Array(self.peers.knownAddresses.prefix(256)))
        do {
            try self.chain.store.putMeta(MetaKey.peers, list.encoded, durable: false)
            try self.chain.snapshotFinalized()
        } catch {
            self.log.warn("cannot save state at shutdown", ["error": "\(error)"])
        }
    }

    /// When the core next needs `tick`: the gadget's next timer, the gossip heartbeat, peer
    /// maintenance or the next slot, whichever comes first.
    public func nextDeadline(after now: NodeTime) -> Instant {
        var at = min(self.nextHeartbeat, self.nextMaintenance)
        at = min(at, self.finalityAt)
        if self.config.validator {
            // The slot boundary is on the wall clock; timers run on the monotonic one.
            let wait = self.slots.nextAt.subtractingSaturated(now.wallMillis)
            at = min(at, now.instant + .milliseconds(Int64(clamping: wait)))
        }
        return at
    }

    /// Runs whatever is due at `now`.
    public func tick(now: NodeTime) {
        if now.instant >= self.nextHeartbeat {
            self.nextHeartbeat = now.instant + self.gossip.config.heartbeat
            self.gossip.heartbeat(now: now.instant)
            self.expireCompactFetches(now: now)
            self.resumeSync(now: now)
        }
        if now.instant >= self.nextMaintenance {
            self.nextMaintenance = now.instant + self.config.maintenanceInterval
            self.maintainPeers(now: now)
            self.checkRequestTimeouts(now: now)
            self.peers.heal()
        }
        if now.instant >= self.finalityAt {
            self.process(self.finality.tick(now: now.instant), now: now)
        }
        if now.wallMillis >= self.slots.nextAt {
            self.onSlot(now: now)
        }
        self.flushGossip(now: now)
    }

    // MARK: Transactions

    /// Submits a transaction from a client; returns its hash or the refusal.
    public func submit(_ tx: Transaction, now: NodeTime) throws(MempoolError) -> Hash32 {
        let hash = try self.mempool.submit(tx, state: self.chain.bestState, context: self.chain.context)
        self.publish(GossipTopic.transactions, tx.encoded, now: now)
        return hash
    }

    /// Publishes a signed subnet message after the same checks a relay applies.
    public func publishSubnetMessage(_ m: SubnetGossipMessage, now: NodeTime) throws(SubnetGossipMessage.Refusal) {
        if let refusal = m.check(state: self.chain.bestState, genesis: self.chain.genesisHash, topic: m.netuid, nowMs: now.wallMillis) {
            throw refusal
        }
        // Kept for `subnet_getMessages` only on the topics this node follows (like what it
        // receives); to the others it is published, not stored.
        if self.config.subnetTopics.contains(m.netuid) { self.keepSubnetMessage(m) }
        self.publish(SubnetGossipMessage.topic(m.netuid), m.encoded, now: now)
    }

    func keepSubnetMessage(_ m: SubnetGossipMessage) {
        var list = self.subnetMessages[m.netuid] ?? []
        list.append(m)
        if list.count > 256 { list.removeFirst(list.count - 256) }
        self.subnetMessages[m.netuid] = list
    }

    /// When a block was imported here (wall-clock ms), while it is among the recent ones.
    public func importedAt(_ hash: Hash32) -> UInt64? { self.imported[hash] }

    /// Whether the node is catching up (see `SyncState.isSyncing`).
    public func isSyncing(now: NodeTime) -> Bool {
        self.sync.isSyncing(now: now.instant, ourBest: self.chain.best.number, peerBests: self.peers.connected.values.map { $0.best.number },
                            slotMillis: self.chain.spec.params.slotDurationMs)
    }

    /// The highest block number that can exist at `now`: one block per slot since genesis
    /// (Aura). A peer claiming more is lying. Unbounded for chains without a genesis time (dev).
    func maxPlausibleHeight(now: NodeTime) -> UInt64 {
        let genesis = self.chain.spec.genesisTimestamp
        guard genesis > 0 else { return .max }
        return now.wallMillis.subtractingSaturated(genesis) / self.chain.spec.params.slotDurationMs + 1
    }

    /// Counts an invalid message by a fixed reason.
    func countInvalid(_ reason: String) { self.counters.invalidMessages[reason, default: 0] += 1 }
}

/// Recent (key → wall ms) entries, the oldest forgotten past a capacity (a ring, O(1) each).
struct RecentTimes {
    private var times: [Hash32: UInt64] = [:]
    private var ring: [Hash32?]
    private var head = 0

    init(capacity: Int) { self.ring = [Hash32?](repeating: nil, count: max(1, capacity)) }

    subscript(key: Hash32) -> UInt64? { self.times[key] }

    mutating func note(_ key: Hash32, at ms: UInt64) {
        guard self.times[key] == nil else { return }
        if let old = self.ring[self.head] { self.times[old] = nil }
        self.ring[self.head] = key
        self.head = (self.head + 1) % self.ring.count
        self.times[key] = ms
    }
}
