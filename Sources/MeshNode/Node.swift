import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip
import MeshNetwork
import MeshNodeCore
import MeshSockets
import MeshStore

/// The node's clocks: the event loop's monotonic clock for timers, the system's wall clock
/// for slots and timestamps.
public struct SystemTimeSource: TimeSource {
    public init() {}
    public func now() -> NodeTime { NodeTime(instant: Instant(nanoseconds: EventLoop.now()), wallMillis: Self.wallMillis()) }

    public static func wallMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}

extension Log: NodeLogSink {
    public func target(_ name: String) -> any NodeLogSink { self.child(name) }
}

/// The node: a thin driver around `NodeCore`. It owns the sockets (secure peers, discovery
/// over UDP), the store, one timer, JSON-RPC, metrics and the informant, and maps them to
/// the core's events and actions; every protocol decision is the core's. All methods run on
/// the loop thread; other threads reach the node through ``EventLoop/submit(_:)``.
public final class Node: SecurePeerDelegate, @unchecked Sendable {
    // Safety: every stored property is touched only on `loop` (entry points are called from
    // loop tasks), except the immutable ones.
    public let config: NodeConfig
    public let loop: EventLoop
    public let log: Log
    public let identity: NodeIdentity
    public let store: SQLiteStore
    public let core: NodeCore
    /// Verifies blocks' signatures on every core ahead of import (nil: `signatureWorkers` 0).
    public let signaturePool: SignatureWorkerPool?
    let clock: any TimeSource
    public let host: SecureHost
    /// Encrypted discovery on the p2p port (UDP).
    public internal(set) var discovery: DiscoveryService?
    /// Connections by the tag the core knows them by.
    var connections: [PeerID: Connection] = [:]
    var tagOf: [ObjectIdentifier: PeerID] = [:]
    var nextTag = 1
    /// The core's one timer, and when it fires.
    var timer: TimerID?
    var timerAt = Instant.distantFuture
    var stopping = false
    var performing = false
    /// `perform`'s buffer, kept between calls.
    var actionBuffer: [NodeAction] = []
    /// Host names of operator-given bootnodes, resolved on a background thread (DNS blocks;
    /// the loop never waits for it). Addresses learned from peers must be numeric.
    var resolvedNames: [String: SocketAddress] = [:]
    /// Application bytes of connections that closed, by protocol (the node's names or "other").
    var closedBytesIn: [String: Int] = [:]
    var closedBytesOut: [String: Int] = [:]
    var lastInformant = (bytesIn: 0, bytesOut: 0, at: UInt64(0))
    /// Histograms of block import time and finality lag (metrics), and the best block's speed
    /// (the informant, `system_syncState`).
    var histograms = NodeHistograms()
    var syncProgress = SyncProgress()
    /// When the core call now running started, or its last import (import-time histogram).
    var importMark: UInt64?
    /// The address peers can dial us at (listen port).
    public private(set) var listenAddress: SocketAddress?
    /// Called with what the core reports (imports, finality, epochs), on the loop.
    public var onEvent: ((NodeEvent) -> Void)?

    /// One connection as the driver tracks it: the secure peer, our long-lived streams by
    /// protocol, and our request streams.
    final class Connection {
        let peer: SecurePeer
        var streams: [String: StreamID] = [:]
        var requests: [StreamID: RequestID] = [:]
        var requestStreams: [RequestID: StreamID] = [:]
        init(peer: SecurePeer) { self.peer = peer }
    }

    /// Opens the store under the base path and the core. Call on the loop.
    public init(config: NodeConfig, key: Ed25519.PrivateKey, loop: EventLoop, log: Log, clock: any TimeSource = SystemTimeSource()) throws {
        self.config = config
        self.loop = loop
        self.log = log
        self.clock = clock
        self.identity = NodeIdentity(signingKey: key, noiseStatic: X25519.PrivateKey())
        try FileManager.default.createDirectory(atPath: config.basePath, withIntermediateDirectories: true)
        self.store = try SQLiteStore(path: config.basePath + "/chain.db")
        var cc = NodeCoreConfig()
        cc.roles = config.roles
        cc.validator = config.validator
        cc.blocksOnly = config.blocksOnly
        cc.subnetTopics = config.subnetTopics
        cc.bootnodes = config.bootnodes
        cc.listenPort = config.port
        cc.agent = "tensormesh/0.1.0 (\(config.name))"
        cc.peers.targetOutbound = config.targetOutbound
        self.core = try NodeCore(config: cc, spec: config.spec, key: key, store: self.store, now: clock.now(),
                                 random: { bound in UInt64.random(in: 0..<max(1, bound)) }, log: log)
        self.signaturePool = config.signatureWorkers > 0 ? SignatureWorkerPool(workers: config.signatureWorkers) : nil
        self.core.chain.signatureVerifier = self.signaturePool
        var limits = ConnectionLimits()
        limits.maxInbound = config.maxInbound
        limits.maxOutbound = max(config.targetOutbound * 2, 16)
        limits.maxTotal = limits.maxInbound + limits.maxOutbound
        let core = self.core
        self.host = SecureHost(loop: loop, identity: self.identity, limits: limits) { core.localHello() }
        self.host.delegate = self
        self.core.trafficOf = { [unowned self] id in
            guard let peer = self.connections[id]?.peer else { return [] }
            let names = Set(peer.bytesInByProtocol.keys).union(peer.bytesOutByProtocol.keys).sorted()
            return names.prefix(64).map { PeerEntry.Traffic(protocolName: $0, bytesIn: UInt64(peer.bytesInByProtocol[$0] ?? 0),
                                                            bytesOut: UInt64(peer.bytesOutByProtocol[$0] ?? 0)) }
        }
    }

    public var nodeId: AccountID { self.identity.signingKey.publicKey }
    public var isValidator: Bool { self.core.isValidator }
    // The core's state, as RPC and metrics read it.
    public var chain: ChainCore { self.core.chain }
    public var mempool: Mempool { self.core.mempool }
    public var finality: FinalityCore { self.core.finality }
    public var gossip: GossipCore { self.core.gossip }
    var signatures: SignatureCache { self.core.signatures }
    public var counters: NodeCounters { self.core.counters }
    public var isSyncing: Bool { self.core.isSyncing(now: self.clock.now()) }

    // MARK: Lifecycle

    /// Listens, starts discovery and the core (which dials bootnodes and known peers).
    public func start() throws {
        guard let addr = SocketAddress(numericHost: self.config.listenHost, port: self.config.port) else {
            throw SocketError("listen address \(self.config.listenHost) (not an IP address)", errno: EINVAL)
        }
        let listening = try self.host.listen(on: addr)
        self.listenAddress = listening
        self.log.info("Local node identity", ["nodeId": self.nodeId.hex])
        self.log.info("Listening", ["address": "\(self.nodeId.hex)@\(self.config.listenHost):\(listening.port)"])
        self.log.info("Chain", ["name": self.config.spec.name, "genesis": self.chain.genesisHash.hex,
                                "best": "#\(self.chain.best.number)", "finalized": "#\(self.chain.finalized.number)"])
        self.resolveBootnodeNames()
        try self.startDiscovery()
        self.core.start(now: self.clock.now())
        self.perform()
        self.scheduleInformant()
    }

    /// Graceful shutdown: closes peers, snapshots state, closes the store.
    public func stop() {
        guard !self.stopping else { return }
        self.stopping = true
        if let t = self.timer { self.loop.cancel(t) }
        self.core.stop()
        self.signaturePool?.shutdown()
        self.discovery?.stop()
        self.host.shutdown()
        do { try self.store.checkpoint() } catch { self.log.warn("store checkpoint failed", ["error": "\(error)"]) }
        self.log.info("Shut down", ["best": "#\(self.chain.best.number)", "finalized": "#\(self.chain.finalized.number)"])
    }

    // MARK: Actions and the timer

    /// Performs what the core asked for, then re-arms its timer. Not re-entrant: an action
    /// whose socket call reports back (a peer closing) is drained by the loop already running.
    func perform() {
        guard !self.performing else { return }
        self.performing = true
        defer { self.performing = false }
        // One buffer swapped with the core's on every drain (`NodeCore.drain(into:)`): no
        // allocation per batch of actions.
        var actions = self.actionBuffer
        self.actionBuffer = []
        while true {
            self.core.drain(into: &actions)
            if actions.isEmpty { break }
            for a in actions { self.perform(a) }
        }
        self.actionBuffer = actions
        self.armTimer()
    }

    func perform(_ a: NodeAction) {
        switch a {
        case .send(let id, let proto, let bytes):
            guard let c = self.connections[id] else { return }
            if c.streams[proto] == nil { c.streams[proto] = try? c.peer.openStream(proto) }
            guard let s = c.streams[proto] else { return }
            try? c.peer.send(bytes, on: s)
        case .request(let id, let rid, let proto, let body):
            guard let c = self.connections[id] else {
                self.core.requestFailed(id, rid, now: self.clock.now())
                return
            }
            guard let s = try? c.peer.openStream(proto) else {
                self.core.requestFailed(id, rid, now: self.clock.now())
                return
            }
            c.requests[s] = rid
            c.requestStreams[rid] = s
            try? c.peer.send(body, on: s, finish: true)
        case .reply(let id, let stream, let bytes):
            try? self.connections[id]?.peer.send(bytes, on: stream, finish: true)
        case .reset(let id, let stream, let code):
            self.connections[id]?.peer.reset(stream, code: code)
        case .cancel(let id, let rid):
            guard let c = self.connections[id], let s = c.requestStreams.removeValue(forKey: rid) else { return }
            c.requests[s] = nil
            c.peer.reset(s, code: ChannelCode.timeout)
        case .dial(let addr):
            self.dial(addr)
        case .disconnect(let id, let code, let reason):
            self.connections[id]?.peer.close(code: code, reason: reason)
        case .ban(let nodeId, let until):
            self.host.ban(nodeId, until: until.nanoseconds)
        case .advertise(let ip):
            guard let d = self.discovery else { return }
            let key = self.identity.signingKey
            let old = d.core.record
            d.core.updateRecord { seq in
                NodeRecord(key: key, seq: seq, ip: ip, tcpPort: old.tcpPort, udpPort: old.udpPort, roles: old.roles, genesis: old.genesis)
            }
        case .event(let e):
            self.observe(e)
            self.onEvent?(e)
        }
    }

    /// One loop timer at the core's next deadline (moved earlier when the deadline does).
    func armTimer() {
        guard !self.stopping else { return }
        let now = self.clock.now()
        let at = self.core.nextDeadline(after: now)
        guard self.timer == nil || at < self.timerAt else { return }
        if let t = self.timer { self.loop.cancel(t) }
        self.timerAt = at
        self.timer = self.loop.schedule(after: at.since(now.instant).nanoseconds) { [weak self] in
            guard let self, !self.stopping else { return }
            self.timer = nil
            self.timerAt = .distantFuture
            self.core.tick(now: self.clock.now())
            self.perform()
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

    // MARK: Secure peers

    public func peerReady(_ peer: SecurePeer) {
        guard let hello = peer.remoteHello, let id = peer.remoteNodeId else { return }
        let tag = self.nextTag
        self.nextTag += 1
        self.connections[tag] = Connection(peer: peer)
        self.tagOf[ObjectIdentifier(peer)] = tag
        let info = PeerInfo(nodeId: id, hello: hello, inbound: peer.isInbound, remoteHost: peer.socket.remoteAddress.host,
                            remotePort: peer.socket.remoteAddress.port, expected: peer.userInfo["expect"].flatMap { AccountID(hex: $0) })
        self.core.peerConnected(tag, info: info, now: self.clock.now())
        self.perform()
    }

    public func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {
        // What a connection carried stays in the byte counters after it closes (counters only
        // go up), under the node's protocol names or "other".
        let known = Set(ProtocolName.all)
        for (k, v) in peer.bytesInByProtocol { self.closedBytesIn[known.contains(k) ? k : "other", default: 0] += v }
        for (k, v) in peer.bytesOutByProtocol { self.closedBytesOut[known.contains(k) ? k : "other", default: 0] += v }
        guard let tag = self.tagOf.removeValue(forKey: ObjectIdentifier(peer)) else { return }
        self.connections[tag] = nil
        self.log.debug("connection closed", ["peer": peer.description, "reason": error.map { "\($0)" } ?? socket.map { "\($0)" } ?? "?"])
        self.core.peerDisconnected(tag, now: self.clock.now())
        self.perform()
    }

    public func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {
        guard let tag = self.tagOf[ObjectIdentifier(peer)] else { return }
        self.core.streamOpened(tag, stream, protocolName: protocolName)
    }

    public func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {
        guard let tag = self.tagOf[ObjectIdentifier(peer)], let c = self.connections[tag] else { return }
        if let rid = c.requests.removeValue(forKey: stream) {
            // Ended without an answer (reset, or finished empty).
            c.requestStreams[rid] = nil
            self.core.requestFailed(tag, rid, now: self.clock.now())
        } else if let proto = c.streams.first(where: { $0.value == stream })?.key {
            // The peer ended one of our long-lived streams: the next send opens a new one.
            c.streams[proto] = nil
        } else {
            self.core.streamEnded(tag, stream)
        }
        self.perform()
    }

    public func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        guard let tag = self.tagOf[ObjectIdentifier(peer)], let c = self.connections[tag] else { return }
        let now = self.clock.now()
        self.importMark = EventLoop.now()
        defer { self.importMark = nil }
        if let rid = c.requests.removeValue(forKey: stream) {
            c.requestStreams[rid] = nil
            self.core.response(tag, rid, message, now: now)
        } else {
            self.core.received(tag, stream, protocolName: peer.channel.protocolName(of: stream) ?? PeerManager.unknownProtocols, message, now: now)
        }
        self.perform()
    }

    // MARK: Transactions and messages from clients

    /// Submits a transaction from RPC; returns its hash or the refusal.
    public func submit(_ tx: Transaction) throws(MempoolError) -> Hash32 {
        defer { self.perform() }
        return try self.core.submit(tx, now: self.clock.now())
    }

    /// Publishes a signed subnet message after the same checks a relay applies.
    public func publishSubnetMessage(_ m: SubnetGossipMessage) throws(SubnetGossipMessage.Refusal) {
        defer { self.perform() }
        try self.core.publishSubnetMessage(m, now: self.clock.now())
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
        let best = self.chain.best
        let fin = self.chain.finalized
        self.syncProgress.record(now: now, best: best.number)
        self.core.logFinalityState(now: self.clock.now())
        let peers = self.core.peers.connected.count
        let found = self.discovery.map { ", \($0.core.table.count) discovered" } ?? ""
        let rates = "⬇ \(String(format: "%.1f", inRate))kiB/s ⬆ \(String(format: "%.1f", outRate))kiB/s"
        let heads = "best: #\(best.number) (\(best.hash.hex.prefix(10))…), finalized #\(fin.number) (\(fin.hash.hex.prefix(10))…)"
        if self.isSyncing {
            // Substrate's shape: speed, target, then the heads; and how long until the target.
            let target = self.syncTarget
            let eta = self.syncProgress.eta(best: best.number, target: target).map { ", ETA \(SyncProgress.format(seconds: $0))" } ?? ""
            self.log.info("⚙️  Syncing \(String(format: "%.1f", self.syncProgress.blocksPerSecond)) bps, target=#\(target) (\(peers) peers\(found)), \(heads), \(rates)\(eta)")
        } else {
            self.log.info("💤 Idle (\(peers) peers\(found)), \(heads), \(rates)")
        }
    }
}
