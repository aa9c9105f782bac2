import MeshChain
import MeshChannel
import MeshCodec
import MeshFinality
import MeshGossip
import MeshNetwork
import MeshSockets

/// Gossip topics of the node.
public enum GossipTopic {
    /// The node's gossip tunables: sizes per topic, so anything larger is invalid before it is
    /// validated (subnet topics take the default: a signed message of at most 64 KiB).
    static var config: GossipConfig {
        var c = GossipConfig()
        c.maxMessageSize = [blocks: 1 << 20, transactions: Transaction.maxSize, finality: 256 << 10]
        c.defaultMaxMessageSize = SubnetGossipMessage.maxPayload + 4096
        return c
    }

    public static let blocks = "blocks"
    public static let transactions = "tx"
    public static let finality = "finality"
    public static let all = [blocks, transactions, finality]
}

extension Node {
    /// Subscribes to the topics, installs validation (a message is forwarded only once the
    /// chain, the pool or the finality gadget accepted it) and starts the heartbeat.
    func startGossip() {
        for t in GossipTopic.all where !(self.config.blocksOnly && t == GossipTopic.transactions) {
            self.gossip.subscribe(t, now: EventLoop.now())
        }
        for n in Set(self.config.subnetTopics).sorted() { self.gossip.subscribe(SubnetGossipMessage.topic(n), now: EventLoop.now()) }
        self.flushGossip()
        self.scheduleGossipHeartbeat()
    }

    func scheduleGossipHeartbeat() {
        self.loop.schedule(after: self.gossip.config.heartbeat) { [weak self] in
            guard let self, !self.stopping else { return }
            self.gossip.heartbeat(now: EventLoop.now())
            self.expireCompactFetches()
            self.flushGossip()
            self.scheduleGossipHeartbeat()
        }
    }

    /// Performs what gossip produced — frames to send, messages to validate — until it has
    /// nothing more to say. Validation runs here, after the core returned (it never calls
    /// back into the node), and its verdict goes back in with `validated`. Not re-entrant:
    /// a publish made while validating is drained by the loop already running.
    func flushGossip() {
        guard !self.flushingGossip else { return }
        self.flushingGossip = true
        defer { self.flushingGossip = false }
        while true {
            let outputs = self.gossip.drain()
            if outputs.isEmpty { return }
            for o in outputs { self.performGossip(o) }
        }
    }

    func performGossip(_ o: GossipOutput<Int>) {
        switch o {
        case .send(let tag, let frame):
            guard let p = self.peers[tag] else { return }
            if p.gossipStream == nil { p.gossipStream = try? p.peer.openStream(ProtocolName.gossip) }
            guard let s = p.gossipStream else { return }
            let bytes = frame.encoded
            // Blocks compress well; the channel's LZ4 applies from 1 KiB.
            try? p.peer.send(bytes, on: s)
            self.counters.bytesOut += bytes.count
        case .cancel:
            break  // frames already handed to the channel go out; IDONTWANT stops later ones
        case .validate(let m, let from):
            if let verdict = self.validateGossip(m, from: from) { self.gossip.validated(m.id, verdict, now: EventLoop.now()) }
        case .deliver:
            break
        case .disconnect(let tag, let reason):
            if let p = self.peers[tag] {
                self.log.debug("gossip score at the ban threshold", ["peer": p.peer.description, "reason": reason])
                self.penalize(p, "gossip score", by: 100)
            }
        }
    }

    func handleGossipFrame(_ bytes: [UInt8], from p: PeerState) {
        // A graylisted peer's frames are not even decoded.
        if let score = self.gossip.score(of: p.tag), score < self.gossip.config.graylistThreshold { return }
        guard let f = try? GossipFrame.decode(bytes) else {
            self.penalize(p, "undecodable gossip frame", by: 20)
            return
        }
        self.gossip.receive(f, from: p.tag, now: EventLoop.now())
        self.flushGossip()
    }

    /// Validation before forwarding (gossipsub's validator): accept what the chain, the pool
    /// or the gadget took in, reject what is invalid (the sender is scored down), ignore the rest.
    func validateGossip(_ m: GossipMessage, from tag: Int?) -> ValidationResult? {
        let p = tag.flatMap { self.peers[$0] }
        switch m.topic {
        case GossipTopic.blocks:
            return self.validateCompactBlock(m, from: p)
        case GossipTopic.transactions:
            guard let tx = try? Transaction.decode(m.data) else {
                self.counters.invalidMessages["undecodable transaction", default: 0] += 1
                return .reject
            }
            do {
                _ = try self.mempool.submit(tx, state: self.chain.bestState, context: self.chain.context)
                return .accept
            } catch MempoolError.invalid(.badSignature) {
                return .reject
            } catch {
                return .ignore
            }
        case GossipTopic.finality:
            guard let fm = try? FinalityMessage.decode(m.data) else { return .reject }
            switch fm {
            case .vote, .commit, .equivocation: break
            default: return .reject  // requests travel directly, never by gossip
            }
            return self.applyFinality(fm, from: p).gossip
        default:
            guard m.topic.hasPrefix("subnet/"), let netuid = UInt16(m.topic.dropFirst("subnet/".count)) else { return .reject }
            guard let message = try? SubnetGossipMessage.decode(m.data) else { return .reject }
            switch message.check(state: self.chain.bestState, genesis: self.chain.genesisHash, topic: netuid, nowMs: Node.wallClockMillis()) {
            case nil:
                self.keepSubnetMessage(message)
                return .accept
            case .stale, .notRegistered, .unknownSubnet:
                return .ignore  // clocks and registrations differ a little between nodes
            case .wrongTopic, .badSignature:
                return .reject
            }
        }
    }

    func keepSubnetMessage(_ m: SubnetGossipMessage) {
        var list = self.subnetMessages[m.netuid] ?? []
        list.append(m)
        if list.count > 256 { list.removeFirst(list.count - 256) }
        self.subnetMessages[m.netuid] = list
    }

    /// Publishes a signed subnet message after the same checks a relay applies.
    public func publishSubnetMessage(_ m: SubnetGossipMessage) throws(SubnetGossipMessage.Refusal) {
        if let refusal = m.check(state: self.chain.bestState, genesis: self.chain.genesisHash, topic: m.netuid, nowMs: Node.wallClockMillis()) {
            throw refusal
        }
        // Kept for `subnet_getMessages` only on the topics this node follows (like what it
        // receives); to the others it is published, not stored.
        if self.config.subnetTopics.contains(m.netuid) { self.keepSubnetMessage(m) }
        self.publish(SubnetGossipMessage.topic(m.netuid), m.encoded)
    }

    /// Hands a finality message to the gadget and acts on its verdict: a checked vote may
    /// point at a block we lack (ahead of our best: sync; on a fork range sync does not
    /// follow: fetched by hash, from the voter's own node when connected); a commit with a
    /// supermajority of valid signatures on an unknown block makes us fetch that block. Only
    /// what the gadget checked is relayed; the gossip verdict says so.
    func applyFinality(_ m: FinalityMessage, from p: PeerState?) -> (verdict: FinalityVerdict, gossip: ValidationResult) {
        let (verdict, actions) = self.finality.receive(m, from: p?.tag ?? -1, now: EventLoop.now())
        self.process(actions)
        switch verdict {
        case .valid:
            if case .vote(let v) = m { self.fetchTarget(v.target, voter: v.voter, from: p) }
            return (verdict, .accept)
        case .needsBlock(let target):
            self.fetchTarget(target, voter: nil, from: p)
            return (verdict, .ignore)
        case .irrelevant:
            return (verdict, .ignore)
        case .invalid:
            return (verdict, .reject)
        }
    }

    func fetchTarget(_ target: VoteTarget, voter: AccountID?, from p: PeerState?) {
        guard !self.chain.contains(target.hash), target.number > self.chain.finalized.number else { return }
        if let p, target.number > self.chain.best.number { self.requestSync(from: p) }
        // By hash only near our chain (a fork a few blocks off); far ahead is range sync's job.
        if target.number <= self.chain.best.number.addingSaturated(Node.maxFetchAhead) { self.fetchBlock(target.hash, voter: voter, from: p) }
    }

    /// Publishes a message of ours (flood publish to every subscribed peer).
    func publish(_ topic: String, _ bytes: [UInt8]) {
        self.gossip.publish(topic: topic, data: bytes, now: EventLoop.now())
        self.flushGossip()
    }
}
