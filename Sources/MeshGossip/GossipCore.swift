import MeshCodec

/// Tunables of gossip (gossipsub v1.1/1.2 names). Times are nanoseconds.
public struct GossipConfig: Sendable {
    public var d = 8
    public var dLow = 6
    public var dHigh = 12
    /// Peers (outside the mesh) that get IHAVE at each heartbeat.
    public var dLazy = 6
    /// Outbound peers kept in each mesh (eclipse resistance).
    public var dOut = 2
    public var heartbeat: Duration = .seconds(1)
    /// Heartbeats a message stays in the cache for IWANT; the last `historyGossip` are announced.
    public var historyLength = 5
    public var historyGossip = 3
    public var seenTTL: Duration = .seconds(120)
    /// Messages at least this large are announced (preamble) and trigger IDONTWANT.
    public var idontwantThreshold = 1024
    /// Publish our own messages to every subscribed peer, not only the mesh.
    public var floodPublish = true
    /// Relayed messages at least `idontwantThreshold` bytes are announced to every subscribed
    /// peer and sent only to the first that asks (one copy per node); smaller ones are pushed
    /// to the mesh.
    public var lazyLargeMessages = true
    /// How long to wait for a requested large message before asking the next announcer.
    public var largeRequestTimeout: Duration = .seconds(2)
    /// An IWANT must be answered within this time or counts as a broken promise.
    public var iwantTimeout: Duration = .seconds(3)
    public var pruneBackoff: Duration = .seconds(60)
    // Scores: below 0 a peer is pruned and not grafted; below `gossipThreshold` no IHAVE is
    // exchanged; below `graylistThreshold` its frames are ignored; at `banThreshold` it is
    // disconnected.
    public var gossipThreshold = -10.0
    public var graylistThreshold = -80.0
    public var banThreshold = -100.0
    public var invalidPenalty = -20.0
    public var brokenPromisePenalty = -5.0
    public var firstDeliveryReward = 1.0
    public var firstDeliveryCap = 20.0
    /// Each heartbeat, scores move this fraction of the way back to 0.
    public var decay = 0.05
    /// Messages awaiting the application's verdict, at most, and for how long.
    public var maxPending = 256
    public var pendingTimeout: Duration = .seconds(5)
    /// Bounds on what peers fill (gossipsub's `max_ihave_messages`, `max_ihave_length`,
    /// `gossip_retransmission` and friends): seen ids kept, topics and IDONTWANT ids remembered
    /// per peer, IHAVE/ANNOUNCE frames and ids accepted per peer per heartbeat, copies of one
    /// message sent to one peer on IWANT, large messages announced to us at once.
    public var maxSeen = 200_000
    public var maxTopicsPerPeer = 128
    public var maxDontWantPerPeer = 4096
    public var maxIHavePerHeartbeat = 10
    public var maxIHaveIDsPerHeartbeat = 2048
    /// Ids a peer may name in IWANT and IDONTWANT frames per heartbeat (each costs a lookup
    /// or an insert); past it the frames are ignored.
    public var maxControlIDsPerHeartbeat = 8192
    public var maxIWantServesPerMessage = 3
    public var maxIncoming = 1024
    public var maxIncomingPerPeer = 32
    public var maxPromises = 8192
    /// Largest message accepted per topic (others: `GossipFrame.maxMessage`). Set by the
    /// application: a vote is small, a compact block larger.
    public var maxMessageSize: [String: Int] = [:]
    public var defaultMaxMessageSize = GossipFrame.maxMessage
    /// Penalty for frames that break the protocol's rules without harming anyone yet
    /// (messages on topics we never subscribed to, IWANT floods).
    public var protocolPenalty = -2.0
    public init() {}
}

/// What the application says about a message before it is forwarded
/// (``GossipCore/validated(_:_:now:)``).
public enum ValidationResult: Sendable, Equatable {
    case accept
    /// Invalid: dropped, and the sender is penalised.
    case reject
    /// Not forwarded, no penalty (e.g. already known to the application).
    case ignore
}

/// What the core asks its driver to do.
/// How the gossip core names peers: the driver's connection handle (a plain integer, so the
/// core compiles to concrete code across modules: no generic dispatch on the hot path).
public typealias GossipPeer = Int

public enum GossipOutput: Sendable {
    public typealias Peer = GossipPeer
    case send(Peer, GossipFrame)
    /// A new message to check before anything else happens to it: answer with
    /// ``GossipCore/validated(_:_:now:)`` — at once, or later when the application needs more
    /// data first (a compact block missing transactions). Until then the message counts as
    /// seen and is not forwarded; without a verdict within `pendingTimeout` it is ignored.
    case validate(GossipMessage, from: Peer)
    /// Stop sending this message to this peer if it is still queued or in flight.
    case cancel(Peer, MessageID)
    /// A new valid message for the application.
    case deliver(GossipMessage, from: Peer?)
    /// The peer's score fell to the ban threshold.
    case disconnect(Peer, reason: String)
}

/// Counters for metrics and tests.
public struct GossipCounters: Sendable, Equatable {
    public var received = 0
    public var duplicates = 0
    public var delivered = 0
    public var invalid = 0
    public var forwarded = 0
    public var ihaveSent = 0
    public var iwantSent = 0
    public var idontwantSent = 0
    public var cancelled = 0
    public var brokenPromises = 0
    /// Per subscribed topic (a bounded set: topics we chose to join).
    public var byTopic: [String: (messages: Int, duplicates: Int)] = [:]
    /// Messages on topics we do not subscribe to (dropped, counted together).
    public var unsubscribed = 0

    public static func == (a: GossipCounters, b: GossipCounters) -> Bool {
        a.received == b.received && a.duplicates == b.duplicates && a.delivered == b.delivered && a.invalid == b.invalid
    }
}

/// Gossipsub-style pub/sub, sans-IO: frames, peers, heartbeats and "now" in; frames to send,
/// messages to deliver and penalties out. Generic over the driver's peer handle. Randomness
/// (mesh selection) comes from `random`, so the simulator replays runs from a seed.
public final class GossipCore {
    public typealias Peer = GossipPeer
    public let config: GossipConfig
    /// The counters as counted; `counters` adds the per-topic ones.
    var tallies = GossipCounters()
    public var counters: GossipCounters {
        var c = self.tallies
        for s in self.subscribed where s.messages > 0 || s.duplicates > 0 { c.byTopic[s.topic] = (s.messages, s.duplicates) }
        return c
    }
    let random: (UInt64) -> UInt64

    /// A peer's state. A class, so a frame updates it in place (a struct in the table would
    /// copy its dictionaries on every write).
    final class PeerState {
        var outbound: Bool
        var topics: Set<String> = []
        var score = 0.0
        var firstDeliveries = 0.0
        /// Message ids this peer said it does not want, for a while (bounded).
        var dontWant: ExpiringSet<MessageID>
        /// PRUNE back-off per topic (only topics we subscribe to).
        var backoff: [String: UInt64] = [:]
        /// This heartbeat's IHAVE/ANNOUNCE frames and ids from the peer.
        var ihaveFrames = 0
        var ihaveIDs = 0
        var controlIDs = 0
        /// Copies of each cached message sent to this peer on IWANT.
        var iwantServes: [MessageID: Int] = [:]
        /// Large messages this peer announced (PREAMBLE) and we wait for.
        var incoming = 0

        init(outbound: Bool, config: GossipConfig) {
            self.outbound = outbound
            self.dontWant = ExpiringSet(capacity: config.maxDontWantPerPeer, ttl: config.seenTTL.nanoseconds / 4)
        }
    }

    public private(set) var subscriptions: Set<String> = []
    /// A topic we subscribe to: its UTF-8 (to recognise a frame's topic without decoding it),
    /// its size limit and its counters. Found by a short scan of string compares (a node is
    /// in a handful of topics), not by hashing the topic on every frame.
    struct Subscription {
        let topic: String
        let utf8: [UInt8]
        let maxSize: Int
        var messages = 0
        var duplicates = 0
    }
    var subscribed: [Subscription] = []
    func subscription(_ topic: String) -> Int? { self.subscribed.firstIndex { $0.topic == topic } }
    var peers: [Peer: PeerState] = [:]
    var peerOrder: [Peer] = [] {
        didSet { if !self.orderedMeshes.isEmpty { self.orderedMeshes.removeAll() } }
    }
    public private(set) var mesh: [String: Set<Peer>] = [:] {
        didSet { if !self.orderedMeshes.isEmpty { self.orderedMeshes.removeAll() } }
    }
    /// Each topic's mesh in `peerOrder`, as `orderedMesh` last computed it: every accepted
    /// message is forwarded in that order, while the mesh and the peers change only at
    /// heartbeats, grafts, prunes and connections (any change clears it).
    var orderedMeshes: [String: [Peer]] = [:]
    /// Seen message ids (delivered, invalid, ignored or awaiting a verdict), bounded.
    var seen: ExpiringSet<MessageID>
    /// Message cache for IWANT: windows of ids, newest first, and the messages.
    var windows: [[(MessageID, String)]] = [[]]
    var cache: [MessageID: GossipMessage] = [:]
    /// Large messages being received: who announced them first, and until when we wait.
    var incoming: [MessageID: (peer: Peer, until: UInt64)] = [:]
    /// IWANTs we sent: id → (peer, deadline). At most one outstanding per message.
    var promises: [MessageID: (peer: Peer, deadline: UInt64)] = [:]
    /// Peers that announced a large message we have not got yet (fallbacks, in order).
    var announcers: [MessageID: [Peer]] = [:]
    /// Messages whose validation was deferred: the message, its sender, the expiry.
    var pending: [MessageID: (message: GossipMessage, from: Peer, deadline: UInt64)] = [:]
    var outputs: [GossipOutput] = []

    public init(config: GossipConfig = GossipConfig(), random: @escaping (UInt64) -> UInt64) {
        self.config = config
        self.random = random
        self.seen = ExpiringSet(capacity: config.maxSeen, ttl: config.seenTTL.nanoseconds)
    }

    /// Takes what the core produced since the last call.
    public func drain() -> [GossipOutput] {
        guard !self.outputs.isEmpty else { return [] }
        defer { self.outputs = [] }  // (emptying "keeping capacity" would copy: the caller shares the buffer)
        return self.outputs
    }

    /// Moves what the core asked for into `buffer` (emptied first) without allocating: the two
    /// arrays swap storage, so a caller that empties its buffer keeping its capacity and passes
    /// it back runs without allocation in the steady state.
    public func drain(into buffer: inout [GossipOutput]) {
        buffer.removeAll(keepingCapacity: true)
        swap(&self.outputs, &buffer)
    }

    public func score(of p: Peer) -> Double? {
        guard let i = self.peers.index(forKey: p) else { return nil }
        return self.peers.values[i].score  // in place: `peers[p]?.score` copies the peer's state
    }

    /// Sizes of every table peers fill, for fuzzing and diagnostics: each has a bound in
    /// ``GossipConfig`` (package only).
    package var tableSizes: [String: Int] {
        ["seen": self.seen.count, "cache": self.cache.count, "promises": self.promises.count, "incoming": self.incoming.count,
         "announcers": self.announcers.count, "pending": self.pending.count,
         "maxTopics": self.peers.values.map { $0.topics.count }.max() ?? 0,
         "maxDontWant": self.peers.values.map { $0.dontWant.count }.max() ?? 0,
         "maxBackoff": self.peers.values.map { $0.backoff.count }.max() ?? 0]
    }
    public func meshPeers(_ topic: String) -> Set<Peer> { self.mesh[topic] ?? [] }

    /// The mesh of a topic in connection order (deterministic: Set order varies per process).
    func orderedMesh(_ topic: String) -> [Peer] {
        if let ordered = self.orderedMeshes[topic] { return ordered }
        guard let m = self.mesh[topic], !m.isEmpty else { return [] }
        let ordered = self.peerOrder.filter { m.contains($0) }
        self.orderedMeshes[topic] = ordered
        return ordered
    }

    // MARK: Peers and topics

    public func addPeer(_ p: Peer, outbound: Bool) {
        guard self.peers[p] == nil else { return }
        self.peers[p] = PeerState(outbound: outbound, config: self.config)
        self.peerOrder.append(p)
        if !self.subscriptions.isEmpty { self.outputs.append(.send(p, .subscribe(self.subscriptions.sorted()))) }
    }

    /// Forgets a peer; large messages it promised are asked of the next announcer (their
    /// deadlines start at `now`).
    public func removePeer(_ p: Peer, now: Instant) {
        self.removePeer(p, at: now.nanoseconds)
    }

    func removePeer(_ p: Peer, at now: UInt64) {
        guard self.peers.removeValue(forKey: p) != nil else { return }
        self.peerOrder.removeAll { $0 == p }
        for t in self.mesh.keys { self.mesh[t]?.remove(p) }
        for (id, pr) in self.promises.sorted(by: { $0.key < $1.key }) where pr.peer == p {
            self.promises[id] = nil
            self.requestNext(id, now: now)
        }
        for id in self.announcers.keys { self.announcers[id]?.removeAll { $0 == p } }
        // Bodies it had promised with a PREAMBLE: asked of the next announcer, as a broken
        // promise would be.
        for (id, e) in self.incoming.sorted(by: { $0.key < $1.key }) where e.peer == p {
            self.incoming[id] = nil
            if self.promises[id] == nil { self.requestNext(id, now: now) }
        }
        self.pruneAnnouncers()
    }

    /// Announcers matter only while a message is promised or on its way.
    func pruneAnnouncers() {
        self.announcers = self.announcers.filter { self.promises[$0.key] != nil || self.incoming[$0.key] != nil }
    }

    public func subscribe(_ topic: String, now: Instant) {
        self.subscribe(topic, at: now.nanoseconds)
    }

    func subscribe(_ topic: String, at now: UInt64) {
        guard self.subscriptions.insert(topic).inserted else { return }
        self.subscribed.append(Subscription(topic: topic, utf8: Array(topic.utf8), maxSize: self.maxSize(topic)))
        for p in self.peerOrder { self.outputs.append(.send(p, .subscribe([topic]))) }
        self.mesh[topic] = []
        self.fillMesh(topic, now: now)
    }

    // MARK: Publishing

    /// Publishes our own message: to every subscribed peer (flood publish) or to the mesh.
    @discardableResult
    public func publish(topic: String, data: [UInt8], now: Instant) -> MessageID {
        self.publish(topic: topic, data: data, at: now.nanoseconds)
    }

    @discardableResult
    func publish(topic: String, data: [UInt8], at now: UInt64) -> MessageID {
        let m = GossipMessage(topic: topic, data: data)
        guard !self.seen.contains(m.id, now: now) else { return m.id }
        self.remember(m, now: now)
        let targets: [Peer]
        if self.config.floodPublish {
            targets = self.peerOrder.filter { self.peers[$0]!.topics.contains(topic) && self.peers[$0]!.score >= self.config.gossipThreshold }
        } else {
            targets = Array(self.mesh[topic] ?? [])
        }
        for p in targets { self.push(m, to: p) }
        return m.id
    }

    func push(_ m: GossipMessage, to p: Peer) {
        if m.data.count >= self.config.idontwantThreshold {
            self.outputs.append(.send(p, .preamble(m.topic, m.id, size: UInt32(m.data.count))))
        }
        self.outputs.append(.send(p, .message(m)))
    }

    func remember(_ m: GossipMessage, now: UInt64) {
        self.seen.insert(m.id, now: now)
        self.cache[m.id] = m
        self.windows[0].append((m.id, m.topic))
    }

    // MARK: Receiving

    /// Handles one frame from a peer. Every table a frame can fill is bounded, and every
    /// kind of frame is budgeted (per heartbeat) or answered at most a few times.
    public func receive(_ f: GossipFrame, from p: Peer, now: Instant) {
        self.receive(f, from: p, at: now.nanoseconds)
    }

    func receive(_ f: GossipFrame, from p: Peer, at now: UInt64) {
        guard let st = self.peers[p] else { return }
        if st.score < self.config.graylistThreshold { return }
        switch f {
        case .subscribe(let topics):
            for t in topics where st.topics.count < self.config.maxTopicsPerPeer { st.topics.insert(t) }
        case .unsubscribe(let topics):
            st.topics.subtract(topics)
            for t in topics where self.subscriptions.contains(t) { self.mesh[t]?.remove(p) }
        case .graft(let t):
            let backedOff = (st.backoff[t] ?? 0) > now
            // Inbound peers may fill the mesh to `dHigh - dOut` only (the rest is kept for
            // peers we chose), and only for topics they said they subscribe to; a GRAFT during
            // back-off costs score.
            let limit = st.outbound ? self.config.dHigh : self.config.dHigh - self.config.dOut
            if !self.subscriptions.contains(t) {
                return  // nothing to prune: we never had a mesh for it
            } else if st.score < 0 || backedOff || !st.topics.contains(t) || (self.mesh[t]?.count ?? 0) >= limit {
                if backedOff { self.penalize(p, self.config.protocolPenalty, "GRAFT during back-off") }
                self.outputs.append(.send(p, .prune(t, backoffSeconds: UInt16(self.config.pruneBackoff.nanoseconds / 1_000_000_000))))
            } else {
                self.mesh[t, default: []].insert(p)
            }
        case .prune(let t, let backoff):
            guard self.subscriptions.contains(t) else { return }
            self.mesh[t]?.remove(p)
            st.backoff[t] = now.addingSaturated(UInt64(backoff) * 1_000_000_000)
        case .ihave(let t, let ids):
            guard self.subscriptions.contains(t), st.score >= self.config.gossipThreshold, self.takeIHave(st, ids: ids.count) else { return }
            // Most announced ids were seen already (they came through the mesh): that lookup
            // comes first and decides alone. The others become promises as they are taken, so
            // an id named twice is asked for once; at most `maxPromises` outstanding requests
            // in all, so a flood of IHAVEs for ids that never come cannot grow the table.
            var want: [MessageID] = []
            let deadline = now + self.config.iwantTimeout.nanoseconds
            for id in ids.prefix(GossipFrame.maxIDs) where !self.seen.contains(id, now: now) {
                guard self.promises.count < self.config.maxPromises else { break }
                if self.promises[id] == nil && self.incoming[id] == nil {
                    want.append(id)
                    self.promises[id] = (p, deadline)
                }
            }
            guard !want.isEmpty else { return }
            self.tallies.iwantSent += 1
            self.outputs.append(.send(p, .iwant(want)))
        case .iwant(let ids):
            guard st.score >= self.config.gossipThreshold, self.takeControlIDs(st, ids.count) else { return }
            var served = Set<MessageID>()
            for id in ids.prefix(GossipFrame.maxIDs) where served.insert(id).inserted {
                guard let m = self.cache[id], st.topics.contains(m.topic) else { continue }
                // Each cached message goes to one peer a few times at most: asking for 512
                // copies of a block gets one.
                let n = st.iwantServes[id, default: 0]
                guard n < self.config.maxIWantServesPerMessage else { continue }
                st.iwantServes[id] = n + 1
                self.push(m, to: p)
            }
            if served.count < ids.count { self.penalize(p, self.config.protocolPenalty, "repeated ids in IWANT") }
        case .idontwant(let ids):
            guard self.takeControlIDs(st, ids.count) else { return }
            for id in ids.prefix(GossipFrame.maxIDs) {
                st.dontWant.insert(id, now: now)
                self.outputs.append(.cancel(p, id))
            }
        case .preamble(let t, let id, let size):
            guard self.subscriptions.contains(t), Int(size) >= self.config.idontwantThreshold, Int(size) <= self.maxSize(t) else { return }
            if self.promises[id]?.peer == p {
                self.incoming[id] = (p, now + self.config.largeRequestTimeout.nanoseconds)  // the body we asked for
                return
            }
            if self.seen.contains(id, now: now) || self.incoming[id] != nil {
                // Already have it (or it is on its way from someone else): tell this peer to stop.
                self.outputs.append(.send(p, .idontwant([id])))
                self.tallies.idontwantSent += 1
                return
            }
            // A preamble is a promise of a body; unkept ones expire, and one peer (or all of
            // them) can hold only a few at a time.
            guard st.incoming < self.config.maxIncomingPerPeer, self.incoming.count < self.config.maxIncoming else { return }
            st.incoming += 1
            self.incoming[id] = (p, now + self.config.largeRequestTimeout.nanoseconds)
            // Tell the rest of the mesh not to send it to us.
            for q in self.orderedMesh(t) where q != p {
                self.outputs.append(.send(q, .idontwant([id])))
                self.tallies.idontwantSent += 1
            }
        case .message(let m):
            self.receiveMessage(m, from: p, now: now)
        case .announce(let t, let id, let size):
            guard self.subscriptions.contains(t), st.score >= self.config.gossipThreshold, Int(size) <= self.maxSize(t),
                  !self.seen.contains(id, now: now), self.takeIHave(st, ids: 1) else { return }
            if self.promises[id] != nil || self.incoming[id] != nil {
                if (self.announcers[id]?.count ?? 0) < 8 { self.announcers[id, default: []].append(p) }
                return
            }
            self.announcers[id] = []
            self.promises[id] = (p, now + self.config.largeRequestTimeout.nanoseconds)
            self.tallies.iwantSent += 1
            self.outputs.append(.send(p, .iwant([id])))
        }
    }

    func maxSize(_ topic: String) -> Int { self.config.maxMessageSize[topic] ?? self.config.defaultMaxMessageSize }

    /// Takes one IHAVE/ANNOUNCE frame carrying `ids` ids from the peer's budget for this
    /// heartbeat; past it the frame is ignored.
    func takeIHave(_ st: PeerState, ids: Int) -> Bool {
        guard st.ihaveFrames < self.config.maxIHavePerHeartbeat, st.ihaveIDs + ids <= self.config.maxIHaveIDsPerHeartbeat else { return false }
        st.ihaveFrames += 1
        st.ihaveIDs += ids
        return true
    }

    /// Charges the ids of one IWANT or IDONTWANT frame to the peer's budget for this heartbeat.
    func takeControlIDs(_ st: PeerState, _ n: Int) -> Bool {
        let n = min(n, GossipFrame.maxIDs)
        guard st.controlIDs + n <= self.config.maxControlIDsPerHeartbeat else { return false }
        st.controlIDs += n
        return true
    }

    /// The large message from `p` arrived or was given up: its preamble slot is free again.
    func releaseIncoming(_ id: MessageID) {
        guard let e = self.incoming.removeValue(forKey: id), let st = self.peers[e.peer] else { return }
        st.incoming = max(0, st.incoming - 1)
    }

    /// Asks the next announcer of a large message whose request failed.
    func requestNext(_ id: MessageID, now: UInt64) {
        guard !self.seen.contains(id, now: now), var list = self.announcers[id], !list.isEmpty else {
            self.announcers[id] = nil
            return
        }
        let p = list.removeFirst()
        self.announcers[id] = list
        self.promises[id] = (p, now + self.config.largeRequestTimeout.nanoseconds)
        self.tallies.iwantSent += 1
        self.outputs.append(.send(p, .iwant([id])))
    }

    /// Handles a message frame whose id was seen before straight from its bytes — no decoding,
    /// no copy of its topic or data — as `receive` would (counted received and duplicate);
    /// returns true if it did. Most frames are such duplicates (each message comes from several
    /// mesh peers). Anything else returns false having changed nothing: not a message frame or
    /// not one `decode` accepts, a topic we are not in, data over the topic's size, an id not
    /// seen, a graylisted or unknown peer; the caller decodes it and calls `receive`.
    public func receiveDuplicate(_ frame: [UInt8], from p: Peer, now: Instant) -> Bool {
        guard let st = self.peers[p], st.score >= self.config.graylistThreshold else { return false }
        return self.takeDuplicate(frame, now: now.nanoseconds)
    }

    /// What became of an encoded frame (`receive(encoded:from:now:)`).
    public enum EncodedFrame: Equatable, Sendable {
        /// Taken as a copy of a message seen before, without decoding it.
        case duplicate
        /// Decoded and received.
        case received
        /// Not a frame: the caller scores the peer down.
        case undecodable
        /// From a graylisted peer: not even decoded.
        case ignored
    }

    /// Receives an encoded frame: a graylisted peer's frames are dropped undecoded, copies of
    /// seen messages are taken by `receiveDuplicate`'s fast path, the rest is decoded and
    /// received. The peer is looked up once for the first two (nearly every frame).
    public func receive(encoded frame: [UInt8], from p: Peer, now: Instant) -> EncodedFrame {
        if let st = self.peers[p] {
            if st.score < self.config.graylistThreshold { return .ignored }
            if self.takeDuplicate(frame, now: now.nanoseconds) { return .duplicate }
        }
        guard let f = try? GossipFrame.decode(frame) else { return .undecodable }
        self.receive(f, from: p, at: now.nanoseconds)
        return .received
    }

    /// `receiveDuplicate` after the peer's checks.
    func takeDuplicate(_ frame: [UInt8], now: UInt64) -> Bool {
        guard let layout = GossipFrame.messageLayout(frame) else { return false }
        let found: (Int, MessageID)? = frame.withUnsafeBytes { raw in
            let t = UnsafeRawBufferPointer(rebasing: raw[layout.topic])
            guard let i = self.subscribed.firstIndex(where: { $0.utf8.elementsEqual(t) }),
                  layout.data.count <= self.subscribed[i].maxSize else { return nil }
            return (i, MessageID(topicUTF8: t, data: UnsafeRawBufferPointer(rebasing: raw[layout.data])))
        }
        guard let (topic, id) = found, self.seen.contains(id, now: now) else { return false }
        // What `receiveMessage` does with a copy of a seen message.
        if !self.promises.isEmpty { self.promises[id] = nil }
        if !self.incoming.isEmpty { self.releaseIncoming(id) }
        if !self.announcers.isEmpty { self.announcers[id] = nil }
        self.tallies.received += 1
        self.tallies.duplicates += 1
        self.subscribed[topic].duplicates += 1
        return true
    }

    func receiveMessage(_ m: GossipMessage, from p: Peer, now: UInt64) {
        self.tallies.received += 1
        guard let topic = self.subscription(m.topic) else {
            // Nothing to validate, remember or forward: dropped, counted in one bucket, and a
            // peer that keeps sending them is scored down.
            self.tallies.unsubscribed += 1
            self.penalize(p, self.config.protocolPenalty / 4, "messages on a topic we do not subscribe to")
            return
        }
        guard m.data.count <= self.subscribed[topic].maxSize else {
            self.tallies.invalid += 1
            self.penalize(p, self.config.invalidPenalty, "message larger than its topic allows")
            return
        }
        // (Each of these tables is usually empty: checking first saves three hashings of the
        // id on every frame, most of which are duplicates.)
        if !self.promises.isEmpty { self.promises[m.id] = nil }
        if !self.incoming.isEmpty { self.releaseIncoming(m.id) }
        if !self.announcers.isEmpty { self.announcers[m.id] = nil }
        if self.seen.contains(m.id, now: now) {
            self.tallies.duplicates += 1
            self.subscribed[topic].duplicates += 1
            return
        }
        self.subscribed[topic].messages += 1
        // Seen from now on (a second copy is a duplicate, not a second validation); held for
        // the verdict, which decides everything else.
        self.seen.insert(m.id, now: now)
        guard self.pending.count < self.config.maxPending else { return }
        self.pending[m.id] = (m, p, now + self.config.pendingTimeout.nanoseconds)
        self.outputs.append(.validate(m, from: p))
    }

    /// The application's verdict on a message the core asked it to validate. Returns false
    /// when the message is unknown (never asked, already decided, or expired).
    @discardableResult
    public func validated(_ id: MessageID, _ result: ValidationResult, now: Instant) -> Bool {
        self.validated(id, result, at: now.nanoseconds)
    }

    @discardableResult
    func validated(_ id: MessageID, _ result: ValidationResult, at now: UInt64) -> Bool {
        guard let (m, p, _) = self.pending.removeValue(forKey: id) else { return false }
        switch result {
        case .accept:
            self.accepted(m, from: p, now: now)
        case .reject:
            self.tallies.invalid += 1
            self.penalize(p, self.config.invalidPenalty, "invalid message on \(m.topic)")
        case .ignore:
            break
        }
        return true
    }

    /// Messages awaiting a verdict.
    public var pendingCount: Int { self.pending.count }

    /// A valid new message: cache it, deliver it, forward it.
    func accepted(_ m: GossipMessage, from p: Peer, now: UInt64) {
        self.remember(m, now: now)
        self.tallies.delivered += 1
        if let st = self.peers[p], st.firstDeliveries < self.config.firstDeliveryCap {
            st.firstDeliveries += 1
            st.score += self.config.firstDeliveryReward
        }
        self.outputs.append(.deliver(m, from: p))
        if self.config.lazyLargeMessages && m.data.count >= self.config.idontwantThreshold {
            // Announce to every subscribed peer; each asks one announcer for the body.
            for q in self.peerOrder where q != p {
                guard let st = self.peers[q], st.topics.contains(m.topic), st.score >= self.config.gossipThreshold else { continue }
                if st.dontWant.contains(m.id, now: now) { continue }
                self.tallies.forwarded += 1
                self.outputs.append(.send(q, .announce(m.topic, m.id, size: UInt32(m.data.count))))
            }
            return
        }
        // Forward to the mesh, except the sender and those who said they do not want it.
        for q in self.orderedMesh(m.topic) where q != p {
            if self.peers[q]?.dontWant.contains(m.id, now: now) == true { continue }
            self.tallies.forwarded += 1
            self.push(m, to: q)
        }
    }

    func penalize(_ p: Peer, _ amount: Double, _ reason: String) {
        guard let st = self.peers[p] else { return }
        st.score += amount
        if st.score < 0 { for t in self.mesh.keys.sorted() where self.mesh[t]!.contains(p) {
            self.mesh[t]!.remove(p)
            self.outputs.append(.send(p, .prune(t, backoffSeconds: UInt16(self.config.pruneBackoff.nanoseconds / 1_000_000_000))))
        } }
        if st.score <= self.config.banThreshold { self.outputs.append(.disconnect(p, reason: reason)) }
    }

    // MARK: Heartbeat

    /// Mesh maintenance, gossip emission, promise checks, cache shifting and score decay.
    public func heartbeat(now: Instant) {
        self.heartbeat(at: now.nanoseconds)
    }

    func heartbeat(at now: UInt64) {
        self.checkPromises(at: now)
        for (id, e) in self.pending where e.deadline <= now { self.pending[id] = nil }
        for t in self.subscriptions.sorted() {
            // Drop peers with negative scores, then fill or trim.
            for p in (self.mesh[t] ?? []).sorted(by: { self.order(of: $0) < self.order(of: $1) }) where (self.peers[p]?.score ?? -1) < 0 || self.peers[p] == nil {
                self.mesh[t]?.remove(p)
                if self.peers[p] != nil { self.outputs.append(.send(p, .prune(t, backoffSeconds: UInt16(self.config.pruneBackoff.nanoseconds / 1_000_000_000)))) }
            }
            let n = self.mesh[t]?.count ?? 0
            if n < self.config.dLow { self.fillMesh(t, now: now) }
            // Keep `dOut` peers we dialled in every mesh, so inbound peers cannot own it.
            let outbound = (self.mesh[t] ?? []).filter { self.peers[$0]?.outbound == true }.count
            if outbound < self.config.dOut {
                let picks = self.shuffled(self.candidates(t, now: now).filter { self.peers[$0]?.outbound == true })
                for p in picks.prefix(self.config.dOut - outbound) {
                    self.mesh[t, default: []].insert(p)
                    self.outputs.append(.send(p, .graft(t)))
                }
            }
            if n > self.config.dHigh { self.trimMesh(t) }
            self.emitGossip(t)
        }
        // Shift the message cache.
        self.windows.insert([], at: 0)
        if self.windows.count > self.config.historyLength {
            for (id, _) in self.windows.removeLast() { self.cache[id] = nil }
        }
        self.seen.expire(now: now)
        // A PREAMBLE whose body never came: the announcer broke its promise, and the message
        // is asked of the next peer that announced it (a peer must not censor by announcing).
        for (id, e) in self.incoming.sorted(by: { $0.key < $1.key }) where e.until <= now {
            self.releaseIncoming(id)
            guard self.promises[id] == nil, !self.seen.contains(id, now: now) else { continue }
            self.tallies.brokenPromises += 1
            self.penalize(e.peer, self.config.brokenPromisePenalty, "PREAMBLE without a body")
            self.requestNext(id, now: now)
        }
        self.pruneAnnouncers()
        for p in self.peerOrder {
            guard let st = self.peers[p] else { continue }
            st.score -= st.score * self.config.decay
            st.firstDeliveries -= st.firstDeliveries * self.config.decay
            st.ihaveFrames = 0
            st.ihaveIDs = 0
            st.controlIDs = 0
            st.dontWant.expire(now: now)
            // Serve counts only matter while the message is cached.
            if !st.iwantServes.isEmpty { st.iwantServes = st.iwantServes.filter { self.cache[$0.key] != nil } }
        }
    }

    /// Broken promises: penalise, and for large messages ask the next announcer. The driver
    /// may call this more often than the heartbeat.
    public func checkPromises(now: Instant) {
        self.checkPromises(at: now.nanoseconds)
    }

    func checkPromises(at now: UInt64) {
        for (id, pr) in self.promises.sorted(by: { $0.key < $1.key }) where pr.deadline <= now {
            self.promises[id] = nil
            self.releaseIncoming(id)
            if !self.seen.contains(id, now: now) {
                self.tallies.brokenPromises += 1
                self.penalize(pr.peer, self.config.brokenPromisePenalty, "IWANT not answered")
                self.requestNext(id, now: now)
            } else {
                self.announcers[id] = nil
            }
        }
    }

    func candidates(_ t: String, now: UInt64) -> [Peer] {
        self.peerOrder.filter { p in
            guard let st = self.peers[p] else { return false }
            return st.topics.contains(t) && st.score >= 0 && (st.backoff[t] ?? 0) <= now && !(self.mesh[t]?.contains(p) ?? false)
        }
    }

    func order(of p: Peer) -> Int { self.peerOrder.firstIndex(of: p) ?? Int.max }

    func shuffled(_ a: [Peer]) -> [Peer] {
        var a = a
        if a.count > 1 {
            for i in stride(from: a.count - 1, to: 0, by: -1) {
                let j = Int(self.random(UInt64(i + 1)))
                a.swapAt(i, j)
            }
        }
        return a
    }

    func fillMesh(_ t: String, now: UInt64) {
        let have = self.mesh[t]?.count ?? 0
        guard have < self.config.d else { return }
        for p in self.shuffled(self.candidates(t, now: now)).prefix(self.config.d - have) {
            self.mesh[t, default: []].insert(p)
            self.outputs.append(.send(p, .graft(t)))
        }
    }

    func trimMesh(_ t: String) {
        guard let members = self.mesh[t] else { return }
        // Keep the best-scoring, with at least dOut outbound peers.
        let ordered = self.shuffled(self.peerOrder.filter { members.contains($0) })
            .sorted { (self.peers[$0]?.score ?? 0) > (self.peers[$1]?.score ?? 0) }
        var keep: [Peer] = []
        for p in ordered where self.peers[p]?.outbound == true && keep.count < self.config.dOut { keep.append(p) }
        for p in ordered where !keep.contains(p) && keep.count < self.config.d { keep.append(p) }
        for p in ordered where !keep.contains(p) {
            self.mesh[t]?.remove(p)
            self.outputs.append(.send(p, .prune(t, backoffSeconds: UInt16(self.config.pruneBackoff.nanoseconds / 1_000_000_000))))
        }
    }

    func emitGossip(_ t: String) {
        let ids = self.windows.prefix(self.config.historyGossip).flatMap { $0 }.filter { $0.1 == t }.map { $0.0 }
        guard !ids.isEmpty else { return }
        let members = self.mesh[t] ?? []
        let targets = self.peerOrder.filter { p in
            guard let st = self.peers[p] else { return false }
            return st.topics.contains(t) && !members.contains(p) && st.score >= self.config.gossipThreshold
        }
        // One list for every target: the driver encodes the frame once for all of them.
        let announced = Array(ids.suffix(GossipFrame.maxIDs))
        for p in self.shuffled(targets).prefix(self.config.dLazy) {
            self.tallies.ihaveSent += 1
            self.outputs.append(.send(p, .ihave(t, announced)))
        }
    }
}
