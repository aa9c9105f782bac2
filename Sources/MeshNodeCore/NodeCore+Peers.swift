import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Connections, streams and requests: what a peer may ask of us and what we ask of peers.
extension NodeCore {
    /// Protocols that take exactly one request per stream.
    static let requestProtocols: Set<String> = [ProtocolName.sync, ProtocolName.peers, ProtocolName.head,
                                                ProtocolName.blockTransactions, ProtocolName.ancestry]
    /// The mark of a request stream whose request was served.
    static let servedMarker = ""

    /// What a stream's protocol is to the node.
    enum InboundKind { case streamed, request, unknown }

    /// Gossip and finality frames are nearly all traffic: known by two string compares,
    /// without hashing the name.
    static func kind(of proto: String) -> InboundKind {
        if proto == ProtocolName.gossip || proto == ProtocolName.finality { return .streamed }
        return Self.requestProtocols.contains(proto) ? .request : .unknown
    }

    // MARK: Connections

    /// A connection finished its handshake and hello. Returns false when the core refused it
    /// (a `.disconnect` action is queued).
    @discardableResult
    public func peerConnected(_ id: PeerID, info: PeerInfo, now: NodeTime) -> Bool {
        let maxHeight = self.maxPlausibleHeight(now: now)
        if let refusal = self.peers.connect(id, info: info, ours: self.chain.best, maxHeight: maxHeight) {
            switch refusal {
            case .unexpectedIdentity:
                self.logPeers.warn("peer at a bootnode address has another identity; dropping",
                              ["expected": String(info.expected?.hex.prefix(16) ?? ""), "got": String(info.nodeId.hex.prefix(16))])
                self.emit(.disconnect(id, code: ChannelCode.refused, reason: "unexpected identity"))
            case .alreadyConnected:
                // One connection per peer.
                self.emit(.disconnect(id, code: ChannelCode.refused, reason: "already connected"))
            }
            return false
        }
        if info.hello.best.number > maxHeight { self.countInvalid("implausible best in hello") }
        self.logPeers.debug("peer connected", ["peer": String(info.nodeId.hex.prefix(16)), "address": "\(info.remoteHost):\(info.remotePort)",
                                          "best": "#\(info.hello.best.number)", "inbound": "\(info.inbound)"])
        self.gossip.addPeer(id, outbound: !info.inbound)
        self.flushGossip(now: now)
        self.maybeSync(id, now: now)
        return true
    }

    /// A connection closed.
    public func peerDisconnected(_ id: PeerID, now: NodeTime) {
        guard let p = self.peers.disconnect(id) else { return }
        self.gossip.removePeer(id, now: now.instant)
        self.logPeers.debug("peer disconnected", ["peer": String(p.nodeId.hex.prefix(16))])
        self.flushGossip(now: now)
    }

    /// The peer opened a stream of `protocolName`.
    public func streamOpened(_ id: PeerID, _ stream: StreamID, protocolName: String) {
        self.peers.update(id) { $0.incoming[stream] = protocolName }
    }

    /// A stream the peer opened ended (finished or reset).
    public func streamEnded(_ id: PeerID, _ stream: StreamID) {
        self.peers.update(id) { $0.incoming[stream] = nil }
    }

    /// A message on a stream the peer opened (`protocolName` as the channel knows it).
    public func received(_ id: PeerID, _ stream: StreamID, protocolName: String, _ message: [UInt8], now: NodeTime) {
        // The peer is looked up once per frame: the stream's protocol, and the budget taken.
        guard let (proto, kind, verdict) = self.peers.update(id, { r -> (String, InboundKind, RequestBudget.Verdict) in
            let proto = r.incoming[stream] ?? protocolName
            let kind = Self.kind(of: proto)
            if proto == Self.servedMarker { return (proto, kind, .within) }
            return (proto, kind, r.takeBudget(kind == .unknown ? PeerManager.unknownSlot : PeerManager.budgetSlot(proto), now: now.instant))
        }) else { return }
        if proto == Self.servedMarker {
            // Request/response streams carry one request: a second one on the same stream
            // would make us do the work again with nowhere to send the answer.
            self.penalize(id, "second request on a stream", by: 20, now: now)
            self.resetIncoming(id, stream, code: ChannelCode.protocolError)
            return
        }
        let isRequest = kind == .request
        let known = kind != .unknown
        guard verdict == .within, known else {
            if verdict == .charged {
                self.logPeers.debug("peer over its request budget", ["peer": "\(id)", "protocol": known ? proto : "?"])
                self.penalize(id, known ? "over its request budget" : "streams of unknown protocols over budget", by: 5, now: now)
            }
            // A protocol we do not speak is refused; so is a request over budget.
            if !known || isRequest { self.resetIncoming(id, stream, code: ChannelCode.refused) }
            return
        }
        if (proto == ProtocolName.sync || proto == ProtocolName.ancestry) && !self.peers.mayServeBlocks(id, now: now.instant) {
            // The block answers it had lately spent its byte budget: refused, not charged (an
            // honest node catching up on large blocks gets here and asks again later).
            self.resetIncoming(id, stream, code: ChannelCode.refused)
            return
        }
        if isRequest { self.peers.update(id) { $0.incoming[stream] = Self.servedMarker } }
        switch proto {
        case ProtocolName.finality: self.receiveFinality(message, from: id, now: now)
        case ProtocolName.gossip: self.receiveGossipFrame(message, from: id, now: now)
        case ProtocolName.sync: self.serveSync(message, to: id, stream: stream, now: now)
        case ProtocolName.peers: self.servePeers(to: id, stream: stream)
        case ProtocolName.head: self.serveHead(to: id, stream: stream)
        case ProtocolName.blockTransactions: self.serveBlockTransactions(message, to: id, stream: stream, now: now)
        case ProtocolName.ancestry: self.serveAncestry(message, to: id, stream: stream, now: now)
        default: break
        }
        self.flushGossip(now: now)
    }

    /// Resets a stream the peer opened and forgets it (a reset of our own raises no
    /// `streamEnded`, so the entry would otherwise stay until the peer leaves).
    func resetIncoming(_ id: PeerID, _ stream: StreamID, code: UInt16) {
        self.peers.update(id) { $0.incoming[stream] = nil }
        self.emit(.reset(id, stream, code: code))
    }

    /// Answers a request; the stream stays marked as served until the peer ends it, so a
    /// second request on it is caught.
    func reply(_ id: PeerID, _ stream: StreamID, _ bytes: [UInt8]) {
        self.emit(.reply(id, stream, bytes))
    }

    // MARK: Our requests

    func request(_ id: PeerID, protocol name: String, body: [UInt8], hash: Hash32? = nil, now: NodeTime) {
        guard let rid = self.peers.startRequest(id, kind: name, hash: hash, now: now.instant) else { return }
        self.emit(.request(id, rid, protocol: name, body))
    }

    /// The answer to one of our requests.
    public func response(_ id: PeerID, _ rid: RequestID, _ message: [UInt8], now: NodeTime) {
        guard let r = self.peers.finishRequest(id, rid) else { return }
        switch r.kind {
        case ProtocolName.sync:
            self.receiveRange(message, rid, from: id, now: now)
        case ProtocolName.ancestry:
            guard let hash = r.hash else { return }
            self.receiveAncestry(message, asked: hash, from: id, now: now)
        case ProtocolName.peers:
            guard let list = try? PeerList.decode(message) else {
                self.penalize(id, "bad peers response", now: now)
                return
            }
            _ = self.peers.learn(list)
        case ProtocolName.blockTransactions:
            self.receiveBlockTransactions(message, from: id, now: now)
        default:
            break
        }
        self.flushGossip(now: now)
    }

    /// One of our requests failed (its stream was reset, or the connection closed) before
    /// an answer came.
    public func requestFailed(_ id: PeerID, _ rid: RequestID, now: NodeTime) {
        guard let r = self.peers.finishRequest(id, rid) else { return }
        if r.kind == ProtocolName.sync, let i = self.peers[id]?.syncRanges.firstIndex(where: { $0.rid == rid }) {
            // Refused, reset or the connection went: the ranges above it go with it; the ones
            // below are applied when they come.
            self.endSyncPipeline(id, at: i)
        }
    }

    func checkRequestTimeouts(now: NodeTime) {
        for (id, rid, r) in self.peers.expiredRequests(now: now.instant) {
            self.emit(.cancel(id, rid))
            // Ranges above one that timed out were dropped with it (their cancels are here
            // too when they expired at once): the peer is penalized once.
            if r.kind == ProtocolName.sync, let i = self.peers[id]?.syncRanges.firstIndex(where: { $0.rid == rid }) {
                self.endSyncPipeline(id, at: i)
                let ours = self.chain.best
                self.peers.update(id) { p in
                    // A claim the peer would not back with blocks is dropped.
                    if p.best.number > ours.number { p.best = ours }
                }
                self.penalize(id, "sync timeout", by: 5, now: now)
            }
        }
    }

    // MARK: Standing

    /// Scores a peer down for bad input (`reason`: a fixed string of ours, never peer text);
    /// drops and bans it past the threshold.
    func penalize(_ id: PeerID, _ reason: String, by amount: Int = 10, now: NodeTime) {
        self.countInvalid(reason)
        guard let outcome = self.peers.penalize(id, by: amount, now: now.instant) else { return }
        let peer = self.peers[id].map { String($0.nodeId.hex.prefix(16)) } ?? "?"
        switch outcome {
        case .noted(let score):
            self.logPeers.debug("peer misbehaved", ["peer": peer, "reason": reason, "score": "\(score)"])
        case .banned(let nodeId, let until):
            self.logPeers.info("dropping peer for bad behaviour", ["peer": peer, "reason": reason])
            self.emit(.ban(nodeId, until: until))
            self.emit(.disconnect(id, code: ChannelCode.banned, reason: reason))
        }
    }

    // MARK: Peer maintenance

    /// Keeps `targetOutbound` outbound peers: dials known addresses not connected yet (with a
    /// back-off per address), asks connected peers for more addresses.
    func maintainPeers(now: NodeTime) {
        for a in self.peers.dialCandidates(now: now.instant) { self.emit(.dial(a)) }
        for id in self.peers.addressSources(now: now.instant) { self.request(id, protocol: ProtocolName.peers, body: [1], now: now) }
    }

    /// A node discovery verified (its record signed by itself, seen answering at `seen`).
    public func discovered(_ address: NodeAddress, now: NodeTime) {
        let (added, updated) = self.peers.recordAddress(address, now: now.instant)
        if added { self.counters.discovered += 1 }
        if updated { self.logPeers.debug("peer address updated from its record", ["node": String(address.nodeId.hex.prefix(16)), "address": address.description]) }
    }

    /// A peer (`reporter`, at `reporterIP`) saw us at `observed`. Once reporters on two
    /// networks (or one bootnode) agree, the address is advertised.
    public func addressObserved(_ observed: [UInt8], reporterIP: [UInt8], reporter: AccountID) {
        guard let ip = self.peers.observed(observed, reporterIP: reporterIP, reporter: reporter) else { return }
        self.logPeers.info("Public address learned from peers", ["ip": Endpoint(ip: ip, port: self.config.listenPort).description])
        self.emit(.advertise(ip: ip))
    }

    // MARK: Serving small requests

    func servePeers(to id: PeerID, stream: StreamID) {
        let entries = self.peers.ordered.map { q in
            let port = q.info.inbound ? q.info.hello.listenPort : q.info.remotePort
            return PeerEntry(nodeId: q.nodeId, address: Self.hostPort(q.info.remoteHost, port), bestNumber: q.best.number,
                             roles: q.info.hello.roles.rawValue, inbound: q.info.inbound, traffic: self.trafficOf?(q.id) ?? [])
        }
        self.reply(id, stream, PeerList(peers: entries).encoded)
    }

    static func hostPort(_ host: String, _ port: UInt16) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func serveHead(to id: PeerID, stream: StreamID) {
        let info = HeadInfo(best: self.chain.best, finalized: self.chain.finalized, round: self.finality.round, setId: self.finality.setId)
        self.reply(id, stream, info.encoded)
    }
}
