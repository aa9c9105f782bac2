import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Gossip topics of the node.
public enum GossipTopic {
    /// The node's gossip tunables: sizes per topic, so anything larger is invalid before it is
    /// validated (subnet topics take the default: a signed message of at most 64 KiB).
    public static var config: GossipConfig {
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

/// The gossip core's outputs turned into actions, and validation: a message is forwarded only
/// once the chain, the pool or the finality gadget accepted it.
extension NodeCore {
    /// Performs what gossip produced — frames to send, messages to validate — until it has
    /// nothing more to say. Validation runs here, after the core returned (it never calls
    /// back into the node), and its verdict goes back in with `validated`. Not re-entrant:
    /// a publish made while validating is drained by the loop already running.
    func flushGossip(now: NodeTime) {
        guard !self.flushingGossip else { return }
        self.flushingGossip = true
        defer { self.flushingGossip = false }
        // A message forwarded to several peers, or an IHAVE to several, comes out as
        // consecutive sends of one frame: it is encoded once and the bytes shared.
        var last = EncodedFrames()
        var outputs = self.gossipBatch
        self.gossipBatch = []
        defer {
            outputs.removeAll(keepingCapacity: true)
            self.gossipBatch = outputs
        }
        while true {
            self.gossip.drain(into: &outputs)
            if outputs.isEmpty { return }
            for o in outputs { self.performGossip(o, now: now, lastEncoded: &last) }
        }
    }

    /// The last message and IHAVE frames encoded while flushing gossip.
    struct EncodedFrames {
        var message: (id: MessageID, bytes: [UInt8])?
        var ihave: (topic: String, ids: [MessageID], bytes: [UInt8])?
    }

    func performGossip(_ o: GossipOutput, now: NodeTime, lastEncoded: inout EncodedFrames) {
        switch o {
        case .send(let id, let frame):
            guard self.peers.isConnected(id) else { return }
            switch frame {
            case .message(let m):
                if let l = lastEncoded.message, l.id == m.id {
                    self.emit(.send(id, protocol: ProtocolName.gossip, l.bytes))
                    return
                }
                let bytes = frame.encoded
                lastEncoded.message = (m.id, bytes)
                self.emit(.send(id, protocol: ProtocolName.gossip, bytes))
            case .ihave(let topic, let ids):
                // (The same list for every target: `==` sees the shared storage at once.)
                if let l = lastEncoded.ihave, l.topic == topic, l.ids == ids {
                    self.emit(.send(id, protocol: ProtocolName.gossip, l.bytes))
                    return
                }
                let bytes = frame.encoded
                lastEncoded.ihave = (topic, ids, bytes)
                self.emit(.send(id, protocol: ProtocolName.gossip, bytes))
            default:
                self.emit(.send(id, protocol: ProtocolName.gossip, frame.encoded))
            }
        case .cancel, .deliver:
            break  // frames already handed to the channel go out; IDONTWANT stops later ones
        case .validate(let m, let from):
            if let verdict = self.validateGossip(m, from: from, now: now) { self.gossip.validated(m.id, verdict, now: now.instant) }
        case .disconnect(let id, let reason):
            guard self.peers.isConnected(id) else { return }
            self.logGossip.debug("gossip score at the ban threshold", ["peer": "\(id)", "reason": reason])
            self.penalize(id, "gossip score", by: 100, now: now)
        }
    }

    func receiveGossipFrame(_ bytes: [UInt8], from id: PeerID, now: NodeTime) {
        // A graylisted peer's frames are not even decoded; most frames are copies of a message
        // already seen, recognised without decoding.
        if self.gossip.receive(encoded: bytes, from: id, now: now.instant) == .undecodable {
            self.penalize(id, "undecodable gossip frame", by: 20, now: now)
        }
    }

    /// Validation before forwarding (gossipsub's validator): accept what the chain, the pool
    /// or the gadget took in, reject what is invalid (the sender is scored down), ignore the
    /// rest; nil when the verdict comes later (a compact block waiting for transactions).
    func validateGossip(_ m: GossipMessage, from id: PeerID?, now: NodeTime) -> ValidationResult? {
        switch m.topic {
        case GossipTopic.blocks:
            return self.validateCompactBlock(m, from: id, now: now)
        case GossipTopic.transactions:
            guard let tx = try? Transaction.decode(m.data) else {
                self.countInvalid("undecodable transaction")
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
            return self.applyFinality(fm, from: id, now: now)
        default:
            guard m.topic.hasPrefix("subnet/"), let netuid = UInt16(m.topic.dropFirst("subnet/".count)) else { return .reject }
            guard let message = try? SubnetGossipMessage.decode(m.data) else { return .reject }
            switch message.check(state: self.chain.bestState, genesis: self.chain.genesisHash, topic: netuid, nowMs: now.wallMillis) {
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

    /// Publishes a message of ours (flood publish to every subscribed peer).
    func publish(_ topic: String, _ bytes: [UInt8], now: NodeTime) {
        self.gossip.publish(topic: topic, data: bytes, now: now.instant)
        self.flushGossip(now: now)
    }
}
