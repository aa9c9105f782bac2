import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshGossip
import MeshNodeCore

/// Settings of the whole-node scenario.
public struct NodeScenarioConfig: Sendable {
    public var nodes = 16
    /// Validators among the nodes (nodes 0..<validators; equal stake).
    public var validators = 4
    /// Hostile nodes: see `ByzantineBehaviour`. Validators among them stay below one third
    /// of the stake; the rest are full nodes.
    public var byzantine = 0
    public var seconds: Double = 60
    public var slotMs: UInt64 = 2000
    public var network = NetworkModel()
    /// Outbound peers each node keeps, and inbound it accepts.
    public var outPeers = 8
    public var maxInbound = 32
    /// How many nodes every node knows at start (the first ones, as a chain spec's bootnodes).
    public var bootnodes = 3
    /// Nodes a discovery lookup names (every 30 s per node).
    public var discoveredPerLookup = 8
    /// Churn: every `churnPeriod` seconds, `churnNodes` full nodes go offline for
    /// `churnDowntime` seconds and come back from their store.
    public var churnNodes = 0
    public var churnPeriod: Double = 20
    public var churnDowntime: Double = 5
    /// Honest validators that crash at `restartFrom` and restart from their store at
    /// `restartAt` (seconds).
    public var restartValidators = 0
    public var restartFrom: Double = 20
    public var restartAt: Double = 30
    /// Honest validators, counted from the last, that go offline at `stopAt` seconds for
    /// good (a paused or lost machine: its stake stays in the set).
    public var stopValidators = 0
    public var stopAt: Double = 15
    /// Each node's clock is off by a uniform amount in ±clockSkewMs.
    public var clockSkewMs: UInt64 = 0
    /// Transfers submitted per second across the network (a light production-like load).
    public var transactionsPerSecond: Double = 0
    public var finality = FinalityConfig()
    /// Threads that run the nodes (the run and its trace hash are the same for any number).
    public var workers = 1
    public init() {}
}

/// What a hostile node does (a mix, drawn from the seed, per node). Every behaviour is one of
/// the hostile-peer attacks the node must shrug off (docs/threat-model.md).
public struct ByzantineBehaviour: Sendable, Equatable {
    /// Claims best = 2^64 − 1 (or just ahead of what exists) in its hello.
    public var lyingHello = false
    /// Sends junk: undecodable frames, sync requests near 2^64, forged compact blocks,
    /// IWANT floods of one id, requests for blocks that do not exist.
    public var junk = false
    /// Re-sends gossip it saw, later (stale blocks and votes).
    public var replay = false
    /// A validator that signs a second, conflicting vote for each vote it casts.
    public var equivocate = false
    /// A validator that produces no blocks and casts no votes.
    public var withhold = false
}

/// Whole nodes under the simulator: every node is the `NodeCore` the binary runs (chain over
/// an in-memory `BlockStore`, mempool, gossip, finality, peer manager, sync, compact-block
/// relay, block production); only the driver is replaced by simulated connections with
/// latency, loss (as TCP retransmission delay), partitions (connections break), churn and
/// restarts. Checks safety (no conflicting finalized blocks among honest nodes) and reports
/// how far finality and the chain got.
///
/// Each node is a lane of a `LaneSimulator`: it touches other nodes only through messages
/// that take at least the link latency (the handshake too is three messages), so the nodes run
/// on `workers` threads at once. Crashes, restarts and submitted transactions are global
/// events; the cross-node safety check runs at the barriers between windows.
public final class NodeScenario {
    final class SimNode {
        let index: Int
        let key: Ed25519.PrivateKey
        let address: NodeAddress
        let store = MemoryStore()
        var core: NodeCore!
        let byzantine: ByzantineBehaviour?
        var online = true
        /// Bumped on every restart: events for an older incarnation are dropped. Changed only
        /// by global events, so other nodes may read it while a window runs.
        var incarnation = 0
        var skew: Int64 = 0
        var timerAt: UInt64 = .max
        var ends: [PeerID: End] = [:]
        var nextTag = 1
        var nextDial = 1
        var bans: [AccountID: Instant] = [:]
        var finalized: ChainPointer
        /// The core's randomness.
        var random: RandomBox
        /// The scenario's draws for this node (link jitter and loss, discovery, attacks).
        var rng: SimRandom
        /// Gossip frames seen (replaying nodes), bounded.
        var seen: [[UInt8]] = []
        var counters = Counters()
        /// `flush`'s buffer, kept between calls (`NodeCore.drain(into:)` swaps storage with it).
        var actions: [NodeAction] = []
        /// Blocks this node finalized since the last barrier (number, hash), for the
        /// cross-node safety check.
        var newlyFinal: [(UInt64, Hash32)] = []
        var violations: [String] = []

        init(index: Int, key: Ed25519.PrivateKey, address: NodeAddress, byzantine: ByzantineBehaviour?, genesis: ChainPointer,
             random: SimRandom, rng: SimRandom) {
            self.index = index
            self.key = key
            self.address = address
            self.byzantine = byzantine
            self.finalized = genesis
            self.random = RandomBox(random)
            self.rng = rng
        }

        var honest: Bool { self.byzantine == nil }
        var inbound: Int { self.ends.values.filter { $0.inbound }.count }
        var connectedPeers: Int { self.ends.values.filter { !$0.pending }.count }
    }

    /// Figures counted per node (each node's own thread writes them), summed at the end.
    struct Counters {
        var blocksProduced = 0
        var messages = 0
        var bytes = 0
        var connectionsMade = 0
        var connectionsBroken = 0
        var dialsFailed = 0
        var bans = 0
        var honestBans = 0
        /// Messages sent and requests made, by protocol (gossip frames apart: they are nearly
        /// every message, and a counter saves hashing the protocol name per frame).
        var byProtocol: [String: Int] = [:]
        var gossipFrames = 0
    }

    final class RandomBox {
        var rng: SimRandom
        init(_ rng: SimRandom) { self.rng = rng }
        func below(_ bound: UInt64) -> UInt64 { bound <= 1 ? 0 : self.rng.next() % bound }
    }

    /// One end of a simulated connection.
    final class End {
        let connection: Int
        let local: Int
        let remote: Int
        let tag: PeerID
        var remoteTag: PeerID = 0
        let inbound: Bool
        let incarnation: Int
        var open = true
        /// Accepted but the handshake's last message not in yet: the core does not know it.
        var pending = false
        /// Our long-lived streams by protocol; our request streams.
        var streams: [String: StreamID] = [:]
        /// `streams[ProtocolName.gossip]`, looked up on every frame.
        var gossipStream: StreamID?
        var requests: [StreamID: RequestID] = [:]
        var requestStreams: [RequestID: StreamID] = [:]
        var nextStream: StreamID = 1
        /// Deliveries to the remote keep their order (TCP).
        var lastDelivery: UInt64 = 0

        init(connection: Int, local: Int, remote: Int, tag: PeerID, inbound: Bool, incarnation: Int) {
            self.connection = connection
            self.local = local
            self.remote = remote
            self.tag = tag
            self.inbound = inbound
            self.incarnation = incarnation
        }

        /// A fresh stream (a request's).
        func newStream() -> StreamID {
            defer { self.nextStream += 1 }
            return self.nextStream
        }

        /// Our long-lived stream for `proto`, opened on first use.
        func stream(for proto: String) -> StreamID {
            let isGossip = proto == ProtocolName.gossip
            if isGossip, let s = self.gossipStream { return s }
            if let s = self.streams[proto] { return s }
            let s = self.newStream()
            self.streams[proto] = s
            if isGossip { self.gossipStream = s }
            return s
        }
    }

    public let config: NodeScenarioConfig
    let sim: LaneSimulator<Frame>
    let spec: ChainSpec
    var nodes: [SimNode] = []
    let signatures = SignatureCache()
    let log = SilentLog()
    var byId: [AccountID: Int] = [:]
    /// The shortest time a message between two nodes takes.
    let linkLatency: UInt64
    // Checkers and figures kept across nodes (global events and barriers only).
    var finalizedByNumber: [UInt64: Hash32] = [:]
    public private(set) var violations: [String] = []
    var restarts = 0
    var transactions = 0
    var accounts: [Ed25519.PrivateKey] = []
    var nonces: [Int] = []

    public init(config: NodeScenarioConfig, seed: UInt64) throws {
        self.config = config
        let n = max(1, config.nodes)
        // A link takes at least 1 µs: the lanes' lookahead must be positive.
        self.linkLatency = max(config.network.latency, 1_000)
        self.sim = LaneSimulator<Frame>(seed: seed, lanes: n, lookahead: self.linkLatency, workers: config.workers)
        var rng = self.sim.rng.fork()
        let v = min(max(1, config.validators), n)
        let keys = (0..<n).map { _ in try! Ed25519.PrivateKey(seedBytes: rng.bytes(32)) }
        self.accounts = (0..<8).map { _ in try! Ed25519.PrivateKey(seedBytes: rng.bytes(32)) }
        self.nonces = [Int](repeating: 0, count: self.accounts.count)
        var p = ChainParams()
        p.slotDurationMs = config.slotMs
        p.baseFee = 1000
        p.minLockCost = 10 * Token.tao
        var spec = ChainSpec(name: "Simulation", id: "sim", params: p)
        spec.genesisTimestamp = 1_700_000_000_000
        spec.sudo = keys[0].publicKey
        spec.balances = self.accounts.map { ($0.publicKey, 1_000 * Token.tao) }
        spec.validators = keys.prefix(v).map { ChainSpec.Validator(hotkey: $0.publicKey, coldkey: $0.publicKey, stake: 100 * Token.tao) }
        var sp = SubnetParams()
        _ = sp.set(.tempo, 50)
        spec.subnets = [ChainSpec.SubnetSpec(netuid: 1, name: "sim", owner: keys[0].publicKey, ownerHotkey: keys[0].publicKey, params: sp)]
        self.spec = spec
        let genesis = ChainPointer(number: 0, hash: spec.genesis().0.hash)
        // Hostile nodes: validators first while they stay below a third of the stake, then full nodes.
        let byzValidators = min(config.byzantine, (v - 1) / 3)
        var hostile = Set((0..<byzValidators).map { v - 1 - $0 })
        var i = n - 1
        while hostile.count < min(config.byzantine, n - 1), i >= v {
            hostile.insert(i)
            i -= 1
        }
        for k in 0..<n {
            var behaviour: ByzantineBehaviour?
            if hostile.contains(k) {
                var b = ByzantineBehaviour()
                let draw = rng.next()
                b.lyingHello = draw & 1 == 1
                b.junk = draw & 2 == 2 || !b.lyingHello
                b.replay = draw & 4 == 4
                if k < v { if draw & 8 == 8 { b.withhold = true } else { b.equivocate = true } }
                behaviour = b
            }
            let host = "10.\(k / 256 % 256).\(k % 256).1"
            let node = SimNode(index: k, key: keys[k], address: NodeAddress(nodeId: keys[k].publicKey, host: host, port: 30333),
                               byzantine: behaviour, genesis: genesis, random: rng.fork(), rng: rng.fork())
            if config.clockSkewMs > 0 {
                let span = config.clockSkewMs * 2_000_000
                node.skew = Int64(rng.next() % (span + 1)) - Int64(span / 2)
            }
            self.nodes.append(node)
            self.byId[keys[k].publicKey] = k
        }
        for node in self.nodes { try self.boot(node) }
    }

    // MARK: Time

    /// The node's clocks (skewed).
    func now(_ node: SimNode) -> NodeTime {
        let t = UInt64(max(0, Int64(self.sim.now(node.index)) + node.skew))
        return NodeTime(instant: Instant(nanoseconds: t), wallMillis: self.spec.genesisTimestamp + t / 1_000_000)
    }

    func global(_ node: SimNode, _ t: Instant) -> UInt64 {
        if t == .distantFuture { return .max }
        return UInt64(max(Int64(self.sim.now(node.index)), Int64(clamping: t.nanoseconds) - node.skew))
    }

    // MARK: Nodes

    /// Starts (or restarts) a node's core from its store (setup or a global event).
    func boot(_ node: SimNode) throws {
        var c = NodeCoreConfig()
        c.validator = node.index < self.config.validators && !(node.byzantine?.withhold ?? false)
        c.roles = c.validator ? [.validator, .full] : .full
        c.bootnodes = self.nodes.prefix(self.config.bootnodes).filter { $0.index != node.index }.map { $0.address }
        c.peers.targetOutbound = self.config.outPeers
        c.finality = self.config.finality
        c.agent = "meshsim"
        let random = node.random
        node.core = try NodeCore(config: c, spec: self.spec, key: node.key, store: node.store, now: self.now(node),
                                 random: { random.below($0) }, log: self.log, signatures: self.signatures)
        node.online = true
        node.timerAt = .max
        node.finalized = node.core.chain.finalized
        node.core.start(now: self.now(node))
        self.flush(node)
        self.discover(node, incarnation: node.incarnation)
    }

    /// Stands in for the discovery core (its own scenario measures lookups): every 30 s a
    /// node hears of `discoveredPerLookup` random nodes, as a lookup's answers would name
    /// them, at the address they really have.
    func discover(_ node: SimNode, incarnation: Int) {
        guard node.online, node.incarnation == incarnation else { return }
        let n = UInt64(self.nodes.count)
        for _ in 0..<min(self.config.discoveredPerLookup, self.nodes.count - 1) {
            let j = Int(node.rng.next() % n)
            guard j != node.index else { continue }
            node.core.discovered(self.nodes[j].address, now: self.now(node))
        }
        self.flush(node)
        self.sim.schedule(node.index, at: self.sim.now(node.index) + 30_000_000_000) { [unowned self, unowned node] in
            self.discover(node, incarnation: incarnation)
        }
    }

    /// Takes a node offline (a global event): its connections break, its in-memory state is
    /// lost (the store stays, as a disk does).
    func crash(_ node: SimNode) {
        guard node.online else { return }
        node.online = false
        node.incarnation += 1
        node.timerAt = .max
        for end in node.ends.values.sorted(by: { $0.tag < $1.tag }) { self.breakConnection(end, notifyLocal: false) }
        node.ends.removeAll()
        self.sim.trace(node.index, 30, UInt64(node.index), UInt64(node.incarnation))
    }

    func restart(_ node: SimNode) {
        guard !node.online else { return }
        self.restarts += 1
        self.sim.trace(node.index, 31, UInt64(node.index), UInt64(node.incarnation))
        do { try self.boot(node) } catch {
            self.violations.append("node \(node.index) cannot restart from its store: \(error)")
        }
    }

    /// Performs what a node's core asked for, then re-arms its timer.
    func flush(_ node: SimNode) {
        guard node.online else { return }
        var actions = node.actions
        node.actions = []
        while node.online {
            node.core.drain(into: &actions)
            if actions.isEmpty { break }
            for a in actions { self.perform(a, at: node) }
        }
        actions.removeAll(keepingCapacity: true)
        node.actions = actions
        self.arm(node)
    }

    func arm(_ node: SimNode) {
        guard node.online else { return }
        let at = self.global(node, node.core.nextDeadline(after: self.now(node)))
        guard at < node.timerAt || node.timerAt <= self.sim.now(node.index) else { return }
        node.timerAt = at
        let incarnation = node.incarnation
        self.sim.schedule(node.index, at: at) { [unowned self, unowned node] in
            guard node.online, node.incarnation == incarnation, node.timerAt == at else { return }
            node.timerAt = .max
            node.core.tick(now: self.now(node))
            self.flush(node)
        }
    }

    func perform(_ a: NodeAction, at node: SimNode) {
        switch a {
        case .send(let tag, let proto, let bytes):
            guard let end = node.ends[tag], end.open else { return }
            let isGossip = proto == ProtocolName.gossip
            if isGossip { node.counters.gossipFrames += 1 } else { node.counters.byProtocol[proto, default: 0] += 1 }
            let sid = end.stream(for: proto)
            if isGossip, node.byzantine?.equivocate == true { self.equivocate(bytes, from: node, end: end) }
            // The common case (gossip frames are nearly every message) travels as data: no
            // closure allocated per frame (`receive(_:)` runs it).
            guard let a = self.arrival(from: end, kind: 1, size: bytes.count) else { return }
            self.sim.send(from: node.index, to: end.remote, at: a.at, message: Frame(arrival: a, stream: sid, protocolName: proto, bytes: bytes))
        case .request(let tag, let rid, let proto, let body):
            node.counters.byProtocol[proto, default: 0] += 1
            guard let end = node.ends[tag], end.open else {
                node.core.requestFailed(tag, rid, now: self.now(node))
                return
            }
            let sid = end.newStream()
            end.requests[sid] = rid
            end.requestStreams[rid] = sid
            self.deliver(from: end, kind: 2, size: body.count) { remote, rtag, now in
                remote.core.streamOpened(rtag, sid, protocolName: proto)
                remote.core.received(rtag, sid, protocolName: proto, body, now: now)
            }
        case .reply(let tag, let sid, let bytes):
            guard let end = node.ends[tag], end.open else { return }
            self.deliver(from: end, kind: 3, size: bytes.count) { remote, rtag, now in
                guard let rend = remote.ends[rtag], let rid = rend.requests.removeValue(forKey: sid) else { return }
                rend.requestStreams[rid] = nil
                remote.core.response(rtag, rid, bytes, now: now)
            }
        case .reset(let tag, let sid, _):
            guard let end = node.ends[tag], end.open else { return }
            self.deliver(from: end, kind: 4, size: 8) { remote, rtag, now in
                guard let rend = remote.ends[rtag] else { return }
                if let rid = rend.requests.removeValue(forKey: sid) {
                    rend.requestStreams[rid] = nil
                    remote.core.requestFailed(rtag, rid, now: now)
                } else if let proto = rend.streams.first(where: { $0.value == sid })?.key {
                    rend.streams[proto] = nil
                    if proto == ProtocolName.gossip { rend.gossipStream = nil }
                }
            }
        case .cancel(let tag, let rid):
            guard let end = node.ends[tag], let sid = end.requestStreams.removeValue(forKey: rid) else { return }
            end.requests[sid] = nil
            self.deliver(from: end, kind: 5, size: 8) { remote, rtag, _ in remote.core.streamEnded(rtag, sid) }
        case .dial(let address):
            self.dial(from: node, to: address)
        case .disconnect(let tag, _, _):
            guard let end = node.ends[tag] else { return }
            self.breakConnection(end, notifyLocal: true)
        case .ban(let id, let until):
            node.counters.bans += 1
            if node.honest, let j = self.byId[id], self.nodes[j].honest { node.counters.honestBans += 1 }
            node.bans[id] = until
        case .advertise:
            break
        case .event(let e):
            self.observe(e, at: node)
        }
    }

    // MARK: Connections

    /// Whether `a` can reach `b` now (by `a`'s lane clock, the sender's).
    func reachable(_ a: Int, _ b: Int) -> Bool {
        !self.config.network.blocked(a, b, nodes: self.nodes.count, at: self.sim.now(a))
    }

    func banned(_ node: SimNode, _ id: AccountID) -> Bool {
        guard let until = node.bans[id] else { return false }
        return self.now(node).instant < until
    }

    func connected(_ node: SimNode, to j: Int) -> Bool { node.ends.values.contains { $0.remote == j } }

    /// A dial is a handshake of three messages, each one link latency: the dialer's first
    /// message, the target's answer (it accepts when online, reachable, not full and neither
    /// side bans the other), and the dialer's last; the dialer's core hears of the connection
    /// when the answer arrives, the target's when the last message does. A refused dial is
    /// counted and times out in the dialer's core, as a real one does.
    func dial(from node: SimNode, to address: NodeAddress) {
        guard let j = self.byId[address.nodeId], j != node.index else { return }
        guard !self.connected(node, to: j), !self.banned(node, address.nodeId) else {
            node.counters.dialsFailed += 1
            return
        }
        let i = node.index
        let connection = i << 32 | node.nextDial
        node.nextDial += 1
        let dialerIncarnation = node.incarnation
        self.sim.send(from: i, to: j, at: self.sim.now(i) + self.linkLatency) { [unowned self] in
            let target = self.nodes[j]
            let dialer = self.nodes[i]
            guard target.online, self.reachable(j, i), !self.banned(target, dialer.key.publicKey),
                  target.inbound < self.config.maxInbound, !self.connected(target, to: i) else {
                target.counters.dialsFailed += 1
                return
            }
            let eb = End(connection: connection, local: j, remote: i, tag: target.nextTag, inbound: true, incarnation: target.incarnation)
            target.nextTag += 1
            eb.pending = true
            target.ends[eb.tag] = eb
            let hello = self.hello(of: target)
            eb.lastDelivery = self.sim.now(j) + self.linkLatency
            self.sim.send(from: j, to: i, at: eb.lastDelivery) { [unowned self] in
                self.answered(self.nodes[i], incarnation: dialerIncarnation, target: j, remoteTag: eb.tag, connection: connection,
                              hello: hello, expected: address.nodeId)
            }
        }
    }

    /// The target's answer reached the dialer: connect, unless the dialer restarted, is
    /// already connected (a crossed dial won), or the two cannot reach each other any more.
    func answered(_ node: SimNode, incarnation: Int, target j: Int, remoteTag: PeerID, connection: Int, hello: Hello, expected: AccountID) {
        let i = node.index
        let target = self.nodes[j]
        // Crossed dials (each accepted the other's): the one the lower index dialed survives,
        // decided the same way on both sides.
        if node.online, node.incarnation == incarnation, i < j,
           let crossed = node.ends.values.first(where: { $0.remote == j && $0.pending }) {
            crossed.open = false
            node.ends[crossed.tag] = nil
        }
        guard node.online, node.incarnation == incarnation, !self.connected(node, to: j), self.reachable(i, j),
              !self.banned(node, target.key.publicKey) else {
            node.counters.dialsFailed += 1
            // The target drops its half-open end (as a TCP reset would).
            self.sim.send(from: i, to: j, at: self.sim.now(i) + self.linkLatency) { [unowned self] in
                let target = self.nodes[j]
                guard let eb = target.ends[remoteTag], eb.connection == connection, eb.pending else { return }
                target.ends[remoteTag] = nil
            }
            return
        }
        let ea = End(connection: connection, local: i, remote: j, tag: node.nextTag, inbound: false, incarnation: node.incarnation)
        node.nextTag += 1
        ea.remoteTag = remoteTag
        node.ends[ea.tag] = ea
        node.counters.connectionsMade += 1
        self.sim.trace(i, 20, UInt64(i), UInt64(j), UInt64(connection))
        // The last handshake message goes before anything the core sends on the connection.
        ea.lastDelivery = self.sim.now(i) + self.linkLatency
        let dialerHello = self.hello(of: node)
        let dialerTag = ea.tag
        self.sim.send(from: i, to: j, at: ea.lastDelivery) { [unowned self] in
            let target = self.nodes[j]
            let dialer = self.nodes[i]
            guard target.online, let eb = target.ends[remoteTag], eb.connection == connection, eb.pending else { return }
            eb.pending = false
            eb.remoteTag = dialerTag
            target.core.peerConnected(remoteTag, info: PeerInfo(nodeId: dialer.key.publicKey, hello: dialerHello, inbound: true,
                                                                remoteHost: dialer.address.host, remotePort: UInt16(40000 + i % 20000)),
                                      now: self.now(target))
            self.flush(target)
        }
        node.core.peerConnected(ea.tag, info: PeerInfo(nodeId: target.key.publicKey, hello: hello, inbound: false, remoteHost: target.address.host,
                                                       remotePort: 30333, expected: expected), now: self.now(node))
        self.flush(node)
    }

    /// The hello a node sends (a lying one from a hostile node).
    func hello(of node: SimNode) -> Hello {
        var h = node.core.localHello()
        if node.byzantine?.lyingHello == true {
            h.best = BlockRef(number: node.index % 2 == 0 ? .max : h.best.number + 1000, hash: [UInt8](repeating: 0xee, count: 32))
        }
        return h
    }

    /// Closes a connection: the local side hears of it now (when asked), the remote one a
    /// latency later, after what was sent before.
    func breakConnection(_ end: End, notifyLocal: Bool) {
        guard end.open else { return }
        end.open = false
        let local = self.nodes[end.local]
        local.counters.connectionsBroken += 1
        local.ends[end.tag] = nil
        if notifyLocal, local.online, !end.pending {
            local.core.peerDisconnected(end.tag, now: self.now(local))
            self.flush(local)
        }
        let connection = end.connection
        let r = end.remote
        let at = max(self.sim.now(end.local) + self.linkLatency, end.lastDelivery + 1)
        self.sim.send(from: end.local, to: r, at: at) { [unowned self] in
            let remote = self.nodes[r]
            // By connection: a half-open end's remote tag is not known to the side that closes.
            guard remote.online, let rend = remote.ends.values.first(where: { $0.connection == connection }), rend.open else { return }
            rend.open = false
            remote.ends[rend.tag] = nil
            guard !rend.pending else { return }
            remote.core.peerDisconnected(rend.tag, now: self.now(remote))
            self.flush(remote)
        }
    }

    /// Delivers a message over the connection, in order, after latency (and retransmissions
    /// for lost packets). Crossing an active partition breaks the connection instead.
    func deliver(from end: End, kind: UInt8, size: Int, _ action: @escaping (SimNode, PeerID, NodeTime) -> Void) {
        guard let a = self.arrival(from: end, kind: kind, size: size) else { return }
        self.sim.send(from: end.local, to: end.remote, at: a.at) { [unowned self] in
            guard let remote = a.live() else { return }
            action(remote, a.tag, self.now(remote))
            self.flush(remote)
        }
    }

    /// A frame on a stream, in flight to `arrival.remote`.
    struct Frame {
        let arrival: Arrival
        let stream: StreamID
        let protocolName: String
        let bytes: [UInt8]
    }

    /// A frame arrives (the lane simulator's `deliver`).
    func receive(_ f: Frame) {
        guard let remote = f.arrival.live() else { return }
        if f.protocolName == ProtocolName.gossip { self.remember(f.bytes, at: remote) }
        remote.core.received(f.arrival.tag, f.stream, protocolName: f.protocolName, f.bytes, now: self.now(remote))
        self.flush(remote)
    }

    /// Where and when a message sent on `end` arrives.
    struct Arrival {
        let at: UInt64
        unowned let remote: SimNode
        let tag: PeerID
        let connection: Int
        let incarnation: Int

        /// The receiving node, if the connection the message was sent on is still the one open
        /// at its end.
        func live() -> SimNode? {
            guard remote.online, remote.incarnation == incarnation, let rend = remote.ends[tag], rend.connection == connection, rend.open else {
                return nil
            }
            return remote
        }
    }

    /// Counts, delays and traces a message sent on `end`; nil (and the connection broken) when
    /// the two sides cannot reach each other.
    func arrival(from end: End, kind: UInt8, size: Int) -> Arrival? {
        let net = self.config.network
        guard self.reachable(end.local, end.remote) else {
            self.breakConnection(end, notifyLocal: true)
            return nil
        }
        let node = self.nodes[end.local]
        node.counters.messages += 1
        node.counters.bytes += size
        var delay = self.linkLatency
        if net.jitter > 0 { delay += node.rng.next() % (net.jitter + 1) }
        if net.bandwidth > 0 { delay += UInt64(size) * 1_000_000_000 / net.bandwidth }
        // A lost segment is sent again after a retransmission timeout (TCP: in order, late).
        var rto: UInt64 = 200_000_000
        while node.rng.chance(net.loss) && rto < 10_000_000_000 {
            delay += rto
            rto *= 2
        }
        let at = max(self.sim.now(end.local) + delay, end.lastDelivery + 1)
        end.lastDelivery = at
        let remote = self.nodes[end.remote]
        self.sim.trace(end.local, kind, UInt64(end.local), UInt64(end.remote), UInt64(size))
        return Arrival(at: at, remote: remote, tag: end.remoteTag, connection: end.connection, incarnation: remote.incarnation)
    }

    // MARK: Checkers

    func observe(_ e: NodeEvent, at node: SimNode) {
        switch e {
        case .imported(let ref, _, let produced):
            if produced { node.counters.blocksProduced += 1 }
            self.sim.trace(node.index, produced ? 11 : 10, UInt64(node.index), ref.number)
        case .finalized(let ref):
            self.sim.trace(node.index, 12, UInt64(node.index), ref.number)
            guard node.honest else { return }
            if ref.number <= node.finalized.number {
                node.violations.append("node \(node.index) finality moved from #\(node.finalized.number) to #\(ref.number)")
            }
            // Every block from the new finalized one down to the old is final: one hash per
            // height, compared across nodes at the next barrier.
            var cursor = ref.hash
            var number = ref.number
            while number > node.finalized.number, let h = node.core.chain.header(cursor) {
                node.newlyFinal.append((number, cursor))
                cursor = h.parentHash
                number -= 1
            }
            node.finalized = ref
        case .epoch:
            break
        }
    }

    /// At a barrier: what each node finalized since the last one, against every other node's
    /// (in node order, so the report is the same however many threads ran).
    func checkFinality() {
        for node in self.nodes {
            if !node.violations.isEmpty {
                self.violations += node.violations
                node.violations.removeAll()
            }
            guard !node.newlyFinal.isEmpty else { continue }
            for (number, hash) in node.newlyFinal {
                if let existing = self.finalizedByNumber[number], existing != hash {
                    self.violations.append("conflicting finalized blocks at #\(number): \(existing) and \(hash) (node \(node.index))")
                } else {
                    self.finalizedByNumber[number] = hash
                }
            }
            node.newlyFinal.removeAll(keepingCapacity: true)
        }
    }

    // MARK: Hostile behaviour

    /// For each vote a hostile validator publishes, a conflicting one (same round and phase,
    /// the target's parent or a made-up block) goes to the same peer.
    func equivocate(_ frameBytes: [UInt8], from node: SimNode, end: End) {
        guard let frame = try? GossipFrame.decode(frameBytes), case .message(let m) = frame, m.topic == GossipTopic.finality,
              let fm = try? FinalityMessage.decode(m.data), case .vote(let v) = fm, v.voter == node.key.publicKey else { return }
        let parent = v.target.number == 0 ? nil : node.core.chain.header(v.target.hash).map { VoteTarget(hash: $0.parentHash, number: v.target.number - 1) }
        let target = parent ?? VoteTarget(hash: Hash32.of(v.target.hash.bytes), number: v.target.number)
        let twin = SignedVote(phase: v.phase, target: target, round: v.round, setId: v.setId, key: node.key)
        let bytes = GossipFrame.message(GossipMessage(topic: GossipTopic.finality, data: FinalityMessage.vote(twin).encoded)).encoded
        let sid = end.streams[ProtocolName.gossip] ?? 0
        self.deliver(from: end, kind: 6, size: bytes.count) { remote, rtag, now in
            remote.core.received(rtag, sid, protocolName: ProtocolName.gossip, bytes, now: now)
        }
    }

    /// Every 250 ms each hostile node sends each peer something from its repertoire.
    func attack(_ node: SimNode, incarnation: Int) {
        guard let b = node.byzantine else { return }
        if node.online, node.incarnation == incarnation {
            for end in node.ends.values.sorted(by: { $0.tag < $1.tag }) where end.open && !end.pending {
                self.attack(end, from: node, behaviour: b)
            }
        }
        self.sim.schedule(node.index, at: self.sim.now(node.index) + 250_000_000) { [unowned self, unowned node] in
            self.attack(node, incarnation: node.incarnation)
        }
    }

    func attack(_ end: End, from node: SimNode, behaviour b: ByzantineBehaviour) {
        let r = node.rng.next()
        var sends: [(String, [UInt8], Bool)] = []  // protocol, bytes, as a request
        if b.junk {
            switch r % 6 {
            case 0: sends.append((ProtocolName.gossip, node.rng.bytes(Int(r >> 8 % 64) + 1), false))
            case 1: sends.append((ProtocolName.finality, node.rng.bytes(Int(r >> 8 % 64) + 1), false))
            case 2:
                var w = ByteWriter()
                w.u8(1); w.u64(.max - 5); w.u64(128)  // a range past 2^64
                sends.append((ProtocolName.sync, w.bytes, true))
            case 3:
                sends.append((ProtocolName.ancestry, AncestryRequest(hash: Hash32(node.rng.bytes(32)), count: 128).encoded, true))
            case 4:
                let id = MessageID(bytes: node.rng.bytes(20))
                sends.append((ProtocolName.gossip, GossipFrame.iwant([MessageID](repeating: id, count: 256)).encoded, false))
            default:
                // A compact block with a huge number whose signature cannot verify.
                var header = node.core.chain.bestHeader
                header.number = .max - 1
                header.parentHash = node.core.chain.best.hash
                let block = Block(header: header, transactions: [])
                let data = CompactBlock(block).encoded
                sends.append((ProtocolName.gossip, GossipFrame.message(GossipMessage(topic: GossipTopic.blocks, data: data)).encoded, false))
            }
        }
        if b.replay, !node.seen.isEmpty {
            sends.append((ProtocolName.gossip, node.seen[Int(r % UInt64(node.seen.count))], false))
        }
        for (proto, bytes, isRequest) in sends {
            let sid = isRequest ? end.newStream() : end.stream(for: proto)
            self.deliver(from: end, kind: 7, size: bytes.count) { remote, rtag, now in
                if isRequest { remote.core.streamOpened(rtag, sid, protocolName: proto) }
                remote.core.received(rtag, sid, protocolName: proto, bytes, now: now)
            }
        }
    }

    /// Replaying nodes keep some of what they are sent (gossip frames), bounded.
    func remember(_ bytes: [UInt8], at node: SimNode) {
        guard node.byzantine?.replay == true else { return }
        if node.seen.count < 64 { node.seen.append(bytes) } else { node.seen[Int(node.rng.next() % 64)] = bytes }
    }

    // MARK: Load

    /// Submits a transfer at a random honest online node (a global event).
    func submitTransaction() {
        let honest = self.nodes.filter { $0.honest && $0.online }
        guard !honest.isEmpty else { return }
        let node = honest[Int(self.sim.rng.next() % UInt64(honest.count))]
        let a = Int(self.sim.rng.next() % UInt64(self.accounts.count))
        let state = node.core.chain.bestState
        let nonce = max(UInt64(self.nonces[a]), state.nonce(self.accounts[a].publicKey))
        let to = self.accounts[(a + 1) % self.accounts.count].publicKey
        let tx = Transaction(signer: self.accounts[a], nonce: nonce, validUntil: state.number + 64, fee: state.params.baseFee,
                             call: .transfer(to: to, amount: 1), genesis: node.core.chain.genesisHash)
        if (try? node.core.submit(tx, now: self.now(node))) != nil {
            self.nonces[a] = Int(nonce + 1)
            self.transactions += 1
        }
        self.flush(node)
    }

    // MARK: Run

    /// Runs the scenario and returns its summary (`clock` reads wall time, for figures only).
    public func run(clock: () -> UInt64) -> SimSummary {
        let start = clock()
        let end = UInt64(self.config.seconds * 1e9)
        self.sim.onBarrier = { [unowned self] in self.checkFinality() }
        self.sim.deliver = { [unowned self] frame in self.receive(frame) }
        for node in self.nodes where node.byzantine?.junk == true || node.byzantine?.replay == true {
            let incarnation = node.incarnation
            self.sim.schedule(node.index, at: 1_000_000_000 + self.sim.rng.next() % 250_000_000) { [unowned self, unowned node] in
                self.attack(node, incarnation: incarnation)
            }
        }
        // Churn among honest full nodes.
        let fullNodes = self.nodes.filter { $0.honest && $0.index >= self.config.validators }
        if self.config.churnNodes > 0 && !fullNodes.isEmpty {
            var t = self.config.churnPeriod
            while t < self.config.seconds {
                let chosen = (0..<min(self.config.churnNodes, fullNodes.count)).map { _ in fullNodes[Int(self.sim.rng.next() % UInt64(fullNodes.count))] }
                for node in chosen {
                    self.sim.scheduleGlobal(at: UInt64(t * 1e9)) { [unowned self, unowned node] in self.crash(node) }
                    self.sim.scheduleGlobal(at: UInt64((t + self.config.churnDowntime) * 1e9)) { [unowned self, unowned node] in self.restart(node) }
                }
                t += self.config.churnPeriod
            }
        }
        // Validators that crash and restart from their store.
        let restarting = self.nodes.filter { $0.honest && $0.index < self.config.validators }.prefix(self.config.restartValidators)
        for node in restarting {
            self.sim.scheduleGlobal(at: UInt64(self.config.restartFrom * 1e9)) { [unowned self, unowned node] in self.crash(node) }
            self.sim.scheduleGlobal(at: UInt64(self.config.restartAt * 1e9)) { [unowned self, unowned node] in self.restart(node) }
        }
        let honestValidators = self.nodes.filter { $0.honest && $0.index < self.config.validators }
        for node in honestValidators.suffix(self.config.stopValidators) {
            self.sim.scheduleGlobal(at: UInt64(self.config.stopAt * 1e9)) { [unowned self, unowned node] in self.crash(node) }
        }
        if self.config.transactionsPerSecond > 0 {
            let gap = UInt64(1e9 / self.config.transactionsPerSecond)
            var t = 2_000_000_000 as UInt64
            while t < end {
                self.sim.scheduleGlobal(at: t) { [unowned self] in self.submitTransaction() }
                t += gap
            }
        }
        self.sim.run(until: end)
        self.checkFinality()
        let wall = Double(clock() - start) / 1e9
        let honest = self.nodes.filter { $0.honest }
        let honestOnline = honest.filter { $0.online }
        let finalized = honestOnline.map { $0.core.chain.finalized.number }
        let best = honestOnline.map { $0.core.chain.best.number }
        func total(_ f: (Counters) -> Int) -> Int { self.nodes.map { f($0.counters) }.reduce(0, +) }
        var byProtocol: [String: Int] = [:]
        for node in self.nodes { byProtocol.merge(node.counters.byProtocol, uniquingKeysWith: +) }
        let gossipFrames = total { $0.gossipFrames }
        if gossipFrames > 0 { byProtocol[ProtocolName.gossip, default: 0] += gossipFrames }
        var s = SimSummary(scenario: "node", nodes: self.nodes.count, seed: self.sim.seed, virtualSeconds: self.config.seconds,
                           traceHash: self.sim.traceHash(), safetyViolations: self.violations.count, violations: self.violations,
                           events: self.sim.eventCount, wallSeconds: wall)
        s.extra = [
            ("validators", .int(min(self.config.validators, self.nodes.count))),
            ("byzantine", .int(self.nodes.count - honest.count)),
            ("honestNodes", .int(honest.count)),
            ("finalizedHeight", .int(finalized.min() ?? 0)),
            ("finalizedHeightMax", .int(finalized.max() ?? 0)),
            ("bestHeight", .int(best.max() ?? 0)),
            ("blocksProduced", .int(total { $0.blocksProduced })),
            ("transactions", .int(self.transactions)),
            ("messages", .int(total { $0.messages })),
            ("megabytes", .double(Double(total { $0.bytes }) / 1e6)),
            ("connections", .int(total { $0.connectionsMade })),
            ("connectionsBroken", .int(total { $0.connectionsBroken })),
            ("dialsFailed", .int(total { $0.dialsFailed })),
            ("bans", .int(total { $0.bans })),
            ("honestBans", .int(total { $0.honestBans })),
            ("restarts", .int(self.restarts)),
            ("meanPeers", .double(honestOnline.isEmpty ? 0 : Double(honestOnline.map { $0.connectedPeers }.reduce(0, +)) / Double(honestOnline.count))),
            ("messagesByProtocol", .object(byProtocol.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("invalidMessages", .int(honest.map { $0.core.counters.invalidMessages.values.reduce(0, +) }.reduce(0, +))),
            ("workers", .int(self.sim.workers)),
            ("windows", .int(Int(self.sim.windows))),
        ]
        if ProcessInfo.processInfo.environment["MESHSIM_DEBUG"] != nil {
            let g = honest.map { $0.core.gossip.counters }
            func sum(_ f: (GossipCounters) -> Int) -> JSONValue { .int(g.map(f).reduce(0, +)) }
            var fields: [(String, JSONValue)] = [("received", sum { $0.received }), ("duplicates", sum { $0.duplicates }),
                                                 ("delivered", sum { $0.delivered }), ("forwarded", sum { $0.forwarded }),
                                                 ("ihaveSent", sum { $0.ihaveSent }), ("iwantSent", sum { $0.iwantSent }),
                                                 ("idontwantSent", sum { $0.idontwantSent })]
            for t in Set(g.flatMap { $0.byTopic.keys }).sorted() {
                let messages = g.map { $0.byTopic[t]?.messages ?? 0 }.reduce(0, +)
                let duplicates = g.map { $0.byTopic[t]?.duplicates ?? 0 }.reduce(0, +)
                fields.append((t, .string("messages \(messages) duplicates \(duplicates)")))
            }
            s.extra.append(("gossip", .object(fields)))
            s.extra.append(("nodeStates", .array(self.nodes.map { n in
                let c = n.core!
                return .string("\(n.index)\(n.honest ? "" : "*") best=\(c.chain.best.number) fin=\(c.chain.finalized.number) peers=\(n.ends.count) \(c.finality.debugDescription) leaves=\(c.chain.leaves.map { $0.number })")
            })))
        }
        return s
    }
}
