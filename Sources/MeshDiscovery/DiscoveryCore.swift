import MeshCodec
import MeshCrypto

/// Tunables of discovery.
public struct DiscoveryConfig: Sendable {
    public var k = 16
    public var alpha = 8
    public var requestTimeout: Duration = .milliseconds(500)
    public var handshakeTimeout: Duration = .seconds(1)
    /// A random table entry is pinged this often; two missed answers remove it.
    public var revalidateInterval: Duration = .seconds(5)
    /// A random lookup refreshes the table this often.
    public var refreshInterval: Duration = .seconds(30)
    /// Challenges (WHOAREYOU) per source IP: sustained per second, burst.
    public var challengesPerSecond: Double = 50
    public var challengeBurst: Double = 100
    /// Requests a peer may make of us: sustained per second, burst.
    public var requestsPerSecond: Double = 30
    public var requestBurst: Double = 60
    public var maxSessions = 4096
    public var maxLookupNodes = 16
    /// Requests of ours in flight, at most (more are not sent until some finish).
    public var maxRequests = 4096
    /// A peer's record is fetched again (FINDNODE [0]) at most this often, one at a time.
    public var recordRefreshInterval: Duration = .seconds(30)
    /// Nodes a lookup queries, at most (a peer that keeps inventing closer ids cannot keep it
    /// running), and candidates it keeps (the closest).
    public var maxLookupQueries = 48
    public var maxLookupCandidates = 64
    /// The chain: records of another genesis are never kept.
    public var genesis: [UInt8]
    /// Keep records of any chain (diagnostic crawlers only).
    public var acceptAnyGenesis = false

    public init(genesis: [UInt8]) { self.genesis = genesis }
}

/// What discovery reports to its driver.
public enum DiscoveryEvent: Sendable, Equatable {
    /// A node answered at `endpoint` and entered the table. Dial it there (with the record's
    /// TCP port): the record's own IP is only the node's claim.
    case nodeAdded(NodeRecord, at: Endpoint)
    case nodeRemoved(Ed25519.PublicKey)
    /// A PONG to our PING: who answered and from where, the round trip, and our endpoint as
    /// the peer saw it.
    case pong(from: Ed25519.PublicKey, source: Endpoint, rtt: Duration, observed: Endpoint, recordSeq: UInt64)
    /// A FINDNODE we sent was answered (all packets in) or timed out (`complete` false).
    case nodesAnswered(requestId: UInt64, from: Ed25519.PublicKey, records: [NodeRecord], complete: Bool)
    case requestFailed(requestId: UInt64, to: Ed25519.PublicKey)
    case lookupFinished(LookupResult)
}

public struct LookupResult: Sendable, Equatable {
    public var id: UInt64
    public var target: Ed25519.PublicKey
    /// The closest nodes that answered, nearest first.
    public var closest: [NodeRecord]
    public var rounds: Int
    public var elapsed: Duration
    public var queried: Int
    /// The nodes asked, in the order asked: the round each was asked in (1: from our table,
    /// n + 1: named by a node asked in round n) and whether it answered.
    public var path: [LookupStep] = []
}

/// One node a lookup asked.
public struct LookupStep: Sendable, Equatable {
    public var id: Ed25519.PublicKey
    public var round: Int
    public var answered: Bool
}

/// A datagram to send.
public struct OutgoingPacket: Sendable, Equatable {
    public var bytes: [UInt8]
    public var to: Endpoint
}

/// Counters for metrics and tests.
public struct DiscoveryCounters: Sendable, Equatable {
    public var packetsIn = 0
    public var packetsOut = 0
    public var bytesIn = 0
    public var bytesOut = 0
    public var dropped: [String: Int] = [:]
    public var handshakes = 0
    public var challengesSent = 0
    /// Bytes sent to, and received from, addresses that never completed a handshake with us
    /// (the amplification check).
    public var unverifiedBytesOut = 0
    public var unverifiedBytesIn = 0
    public var requestsTimedOut = 0
}

/// Encrypted peer discovery, sans-IO: packets, timers and "now" in; packets and events out.
/// The design follows discv5 (masked headers, WHOAREYOU challenge, ephemeral ECDH sessions,
/// PING/PONG/FINDNODE/NODES, Kademlia table); the encoding is ours (docs/discovery.md).
/// All randomness comes from `random`, so the simulator can replay a run from its seed.
public final class DiscoveryCore {
    public let key: Ed25519.PrivateKey
    public var id: Ed25519.PublicKey { self.key.publicKey }
    public private(set) var record: NodeRecord
    public private(set) var table: RoutingTable
    public let config: DiscoveryConfig
    public private(set) var counters = DiscoveryCounters()
    let staticKey: X25519.PrivateKey
    let random: (Int) -> [UInt8]

    struct PeerKey: Hashable, Comparable {
        let id: Ed25519.PublicKey
        let endpoint: Endpoint

        static func < (a: PeerKey, b: PeerKey) -> Bool {
            a.id != b.id ? a.id < b.id : (a.endpoint.ip.lexicographicallyPrecedes(b.endpoint.ip) || (a.endpoint.ip == b.endpoint.ip && a.endpoint.port < b.endpoint.port))
        }
    }

    struct Session {
        var keys: SessionKeys
        var counter: UInt32 = 0
        var seen: Set<[UInt8]> = []
        var seenOrder: [[UInt8]] = []
        var lastUsed: UInt64
        /// Our last few packets, so a challenge to one (the peer lost the session) can resend it.
        var recent: [(nonce: [UInt8], message: DiscoveryMessage)] = []
    }

    /// A first contact in progress: the packet we sent to provoke a challenge and what waits.
    struct Contact {
        var nonce: [UInt8]
        var sentAt: UInt64
        var queued: [DiscoveryMessage]
    }

    /// A challenge we issued.
    struct Challenge {
        var data: [UInt8]
        var sentAt: UInt64
    }

    enum RequestKind { case ping, revalidate, verify, refresh, findNode, lookup(UInt64, generation: Int) }

    struct Request {
        var kind: RequestKind
        var to: PeerKey
        var sentAt: UInt64
        /// For FINDNODE: the distances asked (records at others are refused).
        var distances: [UInt16] = []
        var records: [NodeRecord] = []
        var packets = 0
        var total = 1
    }

    final class Lookup {
        let id: UInt64
        let target: Ed25519.PublicKey
        let started: UInt64
        var candidates: [Ed25519.PublicKey: (record: NodeRecord, endpoint: Endpoint, generation: Int)] = [:]
        var asked: Set<Ed25519.PublicKey> = []
        var answered: Set<Ed25519.PublicKey> = []
        var path: [(id: Ed25519.PublicKey, round: Int)] = []
        var inFlight = 0
        var rounds = 0

        init(id: UInt64, target: Ed25519.PublicKey, started: UInt64) {
            self.id = id
            self.target = target
            self.started = started
        }
    }

    var sessions: [PeerKey: Session] = [:]
    var contacts: [PeerKey: Contact] = [:]
    /// Messages waiting for a handshake the peer owes us.
    var awaiting: [PeerKey: [DiscoveryMessage]] = [:]
    /// Packets from a peer that arrived before its handshake did.
    var early: [PeerKey: [(iv: [UInt8], header: PacketHeader, headerBytes: [UInt8], body: [UInt8])]] = [:]
    var challenges: [PeerKey: Challenge] = [:]
    var requests: [UInt64: Request] = [:]
    var lookups: [UInt64: Lookup] = [:]
    /// Records we know but have not verified (learned from NODES answers).
    var known: [Ed25519.PublicKey: NodeRecord] = [:]
    /// Endpoints that proved they receive at their address (for the unverified-bytes
    /// counters): bounded like the sessions, and forgotten after an hour.
    var verifiedEndpoints = ExpiringSet<Endpoint>(capacity: 4096, ttl: 3_600_000_000_000)
    /// The latest `now` given to the core (for the counters above, read when emitting).
    var clock: UInt64 = 0
    var challengeBuckets: [[UInt8]: TokenBucket] = [:]
    var requestBuckets: [Ed25519.PublicKey: TokenBucket] = [:]
    /// Requests per source network (/24, /64): ids are free, addresses are not.
    var netRequestBuckets: [[UInt8]: TokenBucket] = [:]
    /// When we last fetched each peer's record (bounded; see `recordRefreshInterval`).
    var recordRefreshed: [Ed25519.PublicKey: UInt64] = [:]
    /// First contacts by the nonce of the packet that provoked the challenge, and our recent
    /// packets' nonces by peer (answering a WHOAREYOU is a lookup, not a scan).
    var contactByNonce: [[UInt8]: PeerKey] = [:]
    var sentNonces: [[UInt8]: PeerKey] = [:]
    var nextRequestId: UInt64 = 1
    /// Nodes being pinged before they may enter the table.
    var verifying: Set<Ed25519.PublicKey> = []
    var nextRevalidate: UInt64 = 0
    var nextRefresh: UInt64 = 0
    var bootnodes: [PeerKey] = []
    var nextBootstrap: UInt64 = .max
    var revalidateCursor = 0
    public private(set) var outbox: [OutgoingPacket] = []
    public private(set) var events: [DiscoveryEvent] = []

    /// - Parameters:
    ///   - random: a source of random bytes (seeded in the simulator, the OS's otherwise).
    public init(key: Ed25519.PrivateKey, record: NodeRecord, config: DiscoveryConfig, random: @escaping (Int) -> [UInt8]) {
        self.key = key
        self.record = record
        self.config = config
        self.random = random
        self.staticKey = key.curve25519PrivateKey()
        self.table = RoutingTable(localId: key.publicKey, k: config.k)
    }

    /// Takes the packets to send and the events since the last call.
    public func drain() -> (packets: [OutgoingPacket], events: [DiscoveryEvent]) {
        defer {
            self.outbox.removeAll(keepingCapacity: true)
            self.events.removeAll(keepingCapacity: true)
        }
        return (self.outbox, self.events)
    }

    /// Replaces our record (a new address or role); the sequence number goes up.
    public func updateRecord(_ make: (UInt64) -> NodeRecord) {
        self.record = make(self.record.seq + 1)
    }

    // MARK: Commands

    /// Adds a bootnode: known id and endpoint, verified by pinging it. Bootnodes are pinged
    /// again every few seconds while the table is empty (they may start after us).
    public func addBootnode(id: Ed25519.PublicKey, endpoint: Endpoint, now: Instant) {
        self.addBootnode(id: id, endpoint: endpoint, at: now.nanoseconds)
    }

    func addBootnode(id: Ed25519.PublicKey, endpoint: Endpoint, at now: UInt64) {
        guard id != self.id else { return }
        self.bootnodes.append(PeerKey(id: id, endpoint: endpoint))
        _ = self.ping(id: id, endpoint: endpoint, at: now)
        self.nextBootstrap = now + 5_000_000_000
    }

    /// Pings a node; the answer arrives as `.pong`.
    @discardableResult
    public func ping(id: Ed25519.PublicKey, endpoint: Endpoint, now: Instant) -> UInt64 {
        self.ping(id: id, endpoint: endpoint, at: now.nanoseconds)
    }

    @discardableResult
    func ping(id: Ed25519.PublicKey, endpoint: Endpoint, at now: UInt64) -> UInt64 {
        self.request(.ping, to: PeerKey(id: id, endpoint: endpoint), now: now) { .ping(requestId: $0, recordSeq: self.record.seq) }
    }

    /// Asks a node for its table entries at `distances` (0: its own record).
    @discardableResult
    public func findNode(id: Ed25519.PublicKey, endpoint: Endpoint, distances: [UInt16], now: Instant) -> UInt64 {
        let now = now.nanoseconds
        return self.request(.findNode, to: PeerKey(id: id, endpoint: endpoint), now: now) {
            .findNode(requestId: $0, distances: Array(distances.prefix(DiscoveryMessage.maxDistances)))
        }
    }

    /// Starts an iterative lookup of the nodes closest to `target`.
    @discardableResult
    public func lookup(target: Ed25519.PublicKey, now: Instant) -> UInt64 {
        self.lookup(target: target, at: now.nanoseconds)
    }

    @discardableResult
    func lookup(target: Ed25519.PublicKey, at now: UInt64) -> UInt64 {
        let id = self.nextRequestId
        self.nextRequestId += 1
        let l = Lookup(id: id, target: target, started: now)
        for e in self.table.closest(to: target, count: self.config.k) {
            l.candidates[e.record.nodeId] = (e.record, e.endpoint, 1)
        }
        self.lookups[id] = l
        self.advance(l, now: now)
        return id
    }

    /// Timers: request timeouts, revalidation and refresh. Call at least every 100 ms.
    public func tick(now: Instant) {
        let now = now.nanoseconds
        self.clock = max(self.clock, now)
        // (Sorted: dictionary order varies between processes, and the simulator must replay.)
        for (rid, r) in self.requests.sorted(by: { $0.key < $1.key })
        where now.subtractingSaturated(r.sentAt) > self.config.requestTimeout.nanoseconds.addingSaturated(self.sessions[r.to] == nil ? self.config.handshakeTimeout.nanoseconds : 0) {
            self.fail(rid, now: now)
        }
        for (k, c) in self.contacts where now.subtractingSaturated(c.sentAt) > self.config.handshakeTimeout.nanoseconds { self.removeContact(k) }
        for (k, c) in self.challenges.sorted(by: { $0.key < $1.key }) where now.subtractingSaturated(c.sentAt) > self.config.handshakeTimeout.nanoseconds {
            self.challenges[k] = nil
            self.early[k] = nil
            for m in self.awaiting.removeValue(forKey: k) ?? [] { self.send(m, to: k, now: now) }
        }
        if now >= self.nextBootstrap {
            self.nextBootstrap = now + 5_000_000_000
            if self.table.count == 0 {
                for b in self.bootnodes { _ = self.ping(id: b.id, endpoint: b.endpoint, at: now) }
                if !self.bootnodes.isEmpty { self.nextRefresh = now + 1_000_000_000 }
            }
        }
        if now >= self.nextRevalidate {
            self.nextRevalidate = now.addingSaturated(self.config.revalidateInterval.nanoseconds)
            self.revalidateCursor &+= 1
            if let e = self.table.stalest(nonEmptyIndex: self.revalidateCursor) {
                _ = self.request(.revalidate, to: PeerKey(id: e.record.nodeId, endpoint: e.endpoint), now: now) {
                    .ping(requestId: $0, recordSeq: self.record.seq)
                }
            }
        }
        if now >= self.nextRefresh {
            self.nextRefresh = now.addingSaturated(self.config.refreshInterval.nanoseconds)
            if self.table.count > 0 {
                let bytes = self.random(32)
                if let t = try? Ed25519.PublicKey(bytes: bytes) { self.lookup(target: t, at: now) }
                self.lookup(target: self.id, at: now)
            }
        }
    }

    // MARK: Sending

    func request(_ kind: RequestKind, to peer: PeerKey, now: UInt64, _ make: (UInt64) -> DiscoveryMessage) -> UInt64 {
        let rid = self.nextRequestId
        self.nextRequestId += 1
        let m = make(rid)
        var r = Request(kind: kind, to: peer, sentAt: now)
        if case .findNode(_, let d) = m { r.distances = d }
        guard self.requests.count < self.config.maxRequests else {
            // Too much in flight already: fail this one at once rather than grow the table.
            self.counters.requestsTimedOut += 1
            self.complete(rid, r, now: now, ok: false)
            return rid
        }
        self.requests[rid] = r
        self.send(m, to: peer, now: now)
        return rid
    }

    func removeContact(_ k: PeerKey) {
        guard let c = self.contacts.removeValue(forKey: k) else { return }
        if self.contactByNonce[c.nonce] == k { self.contactByNonce[c.nonce] = nil }
    }

    func send(_ m: DiscoveryMessage, to peer: PeerKey, now: UInt64) {
        if var s = self.sessions[peer] {
            s.lastUsed = now
            let nonce = self.nonce(&s)
            s.recent.append((nonce, m))
            self.sentNonces[nonce] = peer
            if s.recent.count > 8 {
                let old = s.recent.removeFirst()
                if self.sentNonces[old.nonce] == peer { self.sentNonces[old.nonce] = nil }
            }
            self.sessions[peer] = s
            let header = PacketHeader(flag: .message, nonce: nonce, authdata: self.id.bytes)
            let iv = self.random(PacketCodec.ivSize)
            let keys = s.keys
            if let p = try? PacketCodec.build(iv: iv, header: header, recipient: peer.id, seal: { ad in
                try ChaChaPoly(keyBytes: keys.writeKey).seal(nonce: nonce, ad: ad, plaintext: m.encoded)
            }) { self.emit(p, to: peer.endpoint) }
            return
        }
        if var c = self.contacts[peer] {
            c.queued.append(m)
            self.contacts[peer] = c
            return
        }
        if self.challenges[peer] != nil {
            // The peer is answering our challenge: its handshake will give us a session.
            self.awaiting[peer, default: []].append(m)
            return
        }
        // First contact: random bytes where the message would be, to provoke a challenge.
        let nonce = self.random(12)
        let header = PacketHeader(flag: .message, nonce: nonce, authdata: self.id.bytes)
        let iv = self.random(PacketCodec.ivSize)
        let p = PacketCodec.build(iv: iv, header: header, recipient: peer.id, seal: { _ in self.random(44) })
        self.removeContact(peer)
        self.contacts[peer] = Contact(nonce: nonce, sentAt: now, queued: [m])
        self.contactByNonce[nonce] = peer
        self.emit(p, to: peer.endpoint)
    }

    func nonce(_ s: inout Session) -> [UInt8] {
        s.counter &+= 1
        return [UInt8(s.counter >> 24), UInt8(truncatingIfNeeded: s.counter >> 16), UInt8(truncatingIfNeeded: s.counter >> 8), UInt8(truncatingIfNeeded: s.counter)] + self.random(8)
    }

    func emit(_ bytes: [UInt8], to e: Endpoint) {
        self.counters.packetsOut += 1
        self.counters.bytesOut += bytes.count
        if !self.verifiedEndpoints.contains(e, now: self.clock) { self.counters.unverifiedBytesOut += bytes.count }
        self.outbox.append(OutgoingPacket(bytes: bytes, to: e))
    }

    func drop(_ reason: String) { self.counters.dropped[reason, default: 0] += 1 }

    // MARK: Receiving

    /// Handles one datagram from `from`.
    public func receive(_ packet: [UInt8], from: Endpoint, now: Instant) {
        let now = now.nanoseconds
        self.clock = max(self.clock, now)
        self.counters.packetsIn += 1
        self.counters.bytesIn += packet.count
        if !self.verifiedEndpoints.contains(from, now: now) { self.counters.unverifiedBytesIn += packet.count }
        guard let (iv, header, headerBytes, body) = PacketCodec.parse(packet, me: self.id) else { return self.drop("malformed") }
        switch header.flag {
        case .message: self.receiveMessage(iv: iv, header: header, headerBytes: headerBytes, body: body, from: from, size: packet.count, now: now)
        case .whoareyou: self.receiveChallenge(iv: iv, header: header, headerBytes: headerBytes, from: from, now: now)
        case .handshake: self.receiveHandshake(iv: iv, header: header, headerBytes: headerBytes, body: body, from: from, now: now)
        }
    }

    func receiveMessage(iv: [UInt8], header: PacketHeader, headerBytes: [UInt8], body: [UInt8], from: Endpoint, size: Int, now: UInt64) {
        guard header.authdata.count == 32, let src = try? Ed25519.PublicKey(bytes: header.authdata) else { return self.drop("bad authdata") }
        let peer = PeerKey(id: src, endpoint: from)
        if var s = self.sessions[peer] {
            if let plain = try? ChaChaPoly(keyBytes: s.keys.readKey).open(nonce: header.nonce, ad: iv + headerBytes, ciphertext: body) {
                guard !s.seen.contains(header.nonce) else { return self.drop("replay") }
                s.seen.insert(header.nonce)
                s.seenOrder.append(header.nonce)
                if s.seenOrder.count > 512 { s.seen.remove(s.seenOrder.removeFirst()) }
                s.lastUsed = now
                self.sessions[peer] = s
                guard let m = try? DiscoveryMessage.decode(plain) else { return self.drop("bad message") }
                self.handle(m, from: peer, now: now)
                return
            }
        }
        // A challenge to this peer is outstanding: this packet overtook its handshake (or was
        // sent just after it). Keep it to decrypt once the session exists, rather than issuing
        // a second challenge that would invalidate the first.
        if let c = self.challenges[peer], now.subtractingSaturated(c.sentAt) < self.config.handshakeTimeout.nanoseconds {
            if self.early[peer, default: []].count < 4 { self.early[peer, default: []].append((iv, header, headerBytes, body)) }
            return
        }
        // Both sides reaching out at once: the smaller id hand-shakes, the larger answers.
        if self.contacts[peer] != nil && self.sessions[peer] == nil && self.id < src { return self.drop("crossed contact") }
        // No session (or stale keys): challenge, at most as large as what we got, rate-limited per IP.
        // Sources can be spoofed, and each address has its own rate: the table has a global cap.
        guard self.challenges[peer] != nil || self.challenges.count < self.config.maxSessions else { return self.drop("challenge table full") }
        guard self.allowChallenge(from, now: now) else { return self.drop("challenge rate") }
        let idNonce = self.random(16)
        let knownSeq = self.table.entry(src)?.record.seq ?? self.known[src]?.seq ?? 0
        var auth = ByteWriter(capacity: 24)
        auth.raw(idNonce)
        auth.u64(knownSeq)
        let h = PacketHeader(flag: .whoareyou, nonce: header.nonce, authdata: auth.bytes)
        let civ = self.random(PacketCodec.ivSize)
        let packet = civ + PacketCodec.mask(h.encoded, recipient: src, iv: civ)
        guard packet.count <= size else { return self.drop("amplification") }
        self.challenges[peer] = Challenge(data: civ + h.encoded, sentAt: now)
        self.counters.challengesSent += 1
        self.emit(packet, to: from)
    }

    /// The network a source address belongs to for rate limits: one IPv4 address, an IPv6
    /// /64 (what one host commonly holds).
    static func sourceNet(_ e: Endpoint) -> [UInt8] { e.ip.count == 16 ? Array(e.ip.prefix(8)) : e.ip }

    func allowChallenge(_ from: Endpoint, now: UInt64) -> Bool {
        Self.take(&self.challengeBuckets, Self.sourceNet(from), now: now, rate: self.config.challengesPerSecond, burst: self.config.challengeBurst)
    }

    /// Takes a token from `key`'s bucket in `table`. The table is bounded: when full, buckets
    /// that refilled (as good as absent) are dropped, and only if all are busy is it reset.
    static func take<K: Hashable>(_ table: inout [K: TokenBucket], _ key: K, now: UInt64, rate: Double, burst: Double) -> Bool {
        var b = table[key] ?? TokenBucket(tokens: burst, updatedAt: now)
        let ok = b.take(now: now, rate: rate, burst: burst)
        if table[key] == nil && table.count >= 65_536 {
            table = table.filter { var probe = $0.value; _ = probe.take(now: now, rate: rate, burst: burst, cost: 0); return probe.tokens < burst }
            if table.count >= 65_536 { table.removeAll() }
        }
        table[key] = b
        return ok
    }

    func receiveChallenge(iv: [UInt8], header: PacketHeader, headerBytes: [UInt8], from: Endpoint, now: UInt64) {
        guard header.authdata.count == 24 else { return self.drop("bad challenge") }
        // Only a challenge to a packet we sent to that address counts (found by its nonce).
        let contact = self.contactByNonce[header.nonce].flatMap { k in k.endpoint == from ? self.contacts[k].map { (k, $0) } : nil }
        guard let (peer, contact) = contact ?? self.staleSessionChallenge(from: from, nonce: header.nonce) else {
            return self.drop("unsolicited challenge")
        }
        self.removeContact(peer)
        var r = ByteReader(Array(header.authdata[16...]))
        let theirSeqOfUs = (try? r.u64()) ?? 0
        let challenge = iv + headerBytes
        guard let theirStatic = try? peer.id.curve25519PublicKey() else { return self.drop("bad peer key") }
        guard let eph = try? X25519.PrivateKey(secretBytes: self.random(32)) else { return self.drop("ephemeral key") }
        guard let secret = try? eph.sharedSecret(with: theirStatic) else { return self.drop("ecdh") }
        let keys = SessionKeys.derive(secret: secret, challenge: challenge, initiator: self.id, recipient: peer.id, weAreInitiator: true)
        let proof = self.key.sign(SessionKeys.identityProof(challenge: challenge, ephemeral: eph.publicKey.bytes, recipient: peer.id))
        var auth = ByteWriter(capacity: 300)
        auth.raw(self.id.bytes)
        proof.encode(to: &auth)
        auth.raw(eph.publicKey.bytes)
        let rec = theirSeqOfUs < self.record.seq ? self.record.encoded : []
        auth.u16(UInt16(rec.count))
        auth.raw(rec)
        var session = Session(keys: keys, lastUsed: now)
        var queued = contact.queued
        let first = queued.isEmpty ? nil : queued.removeFirst()
        let nonce = self.nonce(&session)
        let h = PacketHeader(flag: .handshake, nonce: nonce, authdata: auth.bytes)
        let piv = self.random(PacketCodec.ivSize)
        let plain = first?.encoded ?? DiscoveryMessage.ping(requestId: 0, recordSeq: self.record.seq).encoded
        guard let packet = try? PacketCodec.build(iv: piv, header: h, recipient: peer.id, seal: { ad in
            try ChaChaPoly(keyBytes: keys.writeKey).seal(nonce: nonce, ad: ad, plaintext: plain)
        }) else { return }
        self.storeSession(peer, session, now: now)
        self.verifiedEndpoints.insert(from, now: now)  // it answered at the address we wrote to
        self.counters.handshakes += 1
        self.emit(packet, to: from)
        for m in queued { self.send(m, to: peer, now: now) }
    }

    /// A challenge to a packet sent under a session the peer no longer has (it restarted):
    /// forget the session and hand-shake again, re-sending that packet's message.
    func staleSessionChallenge(from: Endpoint, nonce: [UInt8]) -> (PeerKey, Contact)? {
        guard let k = self.sentNonces[nonce], k.endpoint == from, let s = self.sessions[k],
              let m = s.recent.first(where: { $0.nonce == nonce })?.message else { return nil }
        self.removeSession(k)
        return (k, Contact(nonce: nonce, sentAt: 0, queued: [m]))
    }

    func removeSession(_ k: PeerKey) {
        guard let s = self.sessions.removeValue(forKey: k) else { return }
        for r in s.recent where self.sentNonces[r.nonce] == k { self.sentNonces[r.nonce] = nil }
    }

    func receiveHandshake(iv: [UInt8], header: PacketHeader, headerBytes: [UInt8], body: [UInt8], from: Endpoint, now: UInt64) {
        let a = header.authdata
        guard a.count >= 32 + 64 + 32 + 2, let src = try? Ed25519.PublicKey(bytes: Array(a[0..<32])),
              let sig = try? Ed25519.Signature(bytes: Array(a[32..<96])), let ephPub = try? X25519.PublicKey(bytes: Array(a[96..<128])) else {
            return self.drop("bad handshake")
        }
        let recLen = Int(a[128]) << 8 | Int(a[129])
        guard a.count == 130 + recLen else { return self.drop("bad handshake") }
        let peer = PeerKey(id: src, endpoint: from)
        guard let challenge = self.challenges.removeValue(forKey: peer) else { return self.drop("handshake without challenge") }
        guard src.isValidSignature(sig, for: SessionKeys.identityProof(challenge: challenge.data, ephemeral: ephPub.bytes, recipient: self.id)) else {
            return self.drop("bad identity proof")
        }
        var record: NodeRecord?
        if recLen > 0 {
            guard let r = try? NodeRecord.decode(Array(a[130...])), r.nodeId == src, r.hasValidSignature else { return self.drop("bad record") }
            guard r.genesis == self.config.genesis || self.config.acceptAnyGenesis else { return self.drop("other genesis") }
            record = r
        }
        guard let secret = try? self.staticKey.sharedSecret(with: ephPub) else { return self.drop("ecdh") }
        let keys = SessionKeys.derive(secret: secret, challenge: challenge.data, initiator: src, recipient: self.id, weAreInitiator: false)
        guard let plain = try? ChaChaPoly(keyBytes: keys.readKey).open(nonce: header.nonce, ad: iv + headerBytes, ciphertext: body),
              let m = try? DiscoveryMessage.decode(plain) else { return self.drop("bad handshake message") }
        var s = Session(keys: keys, lastUsed: now)
        s.seen.insert(header.nonce)
        s.seenOrder.append(header.nonce)
        self.storeSession(peer, s, now: now)
        self.verifiedEndpoints.insert(from, now: now)  // it answered the challenge we sent there
        self.counters.handshakes += 1
        if let record { self.learn(record) }
        if let r = record ?? self.known[src] ?? self.table.entry(src)?.record { self.verified(r, at: from, now: now) }
        // What we meant to send this peer goes out under the new session.
        var pending = self.awaiting.removeValue(forKey: peer) ?? []
        if let c = self.contacts[peer] {
            pending += c.queued
            self.removeContact(peer)
        }
        for q in pending { self.send(q, to: peer, now: now) }
        // Packets that overtook the handshake can be read now.
        for e in self.early.removeValue(forKey: peer) ?? [] {
            self.receiveMessage(iv: e.iv, header: e.header, headerBytes: e.headerBytes, body: e.body, from: from, size: 0, now: now)
        }
        if case .ping(0, _) = m { return }  // the filler of a handshake with nothing queued
        self.handle(m, from: peer, now: now)
    }

    func storeSession(_ peer: PeerKey, _ s: Session, now: UInt64) {
        if self.sessions[peer] == nil, self.sessions.count >= self.config.maxSessions,
           let oldest = self.sessions.min(by: { $0.value.lastUsed < $1.value.lastUsed || ($0.value.lastUsed == $1.value.lastUsed && $0.key.id < $1.key.id) })?.key {
            self.removeSession(oldest)
        }
        self.removeSession(peer)
        self.sessions[peer] = s
    }

    // MARK: Messages

    /// Hands a decrypted message to the core as if it came from `id` at `endpoint` over an
    /// established session: structure-aware fuzzing of the message handlers (package only).
    package func fuzzHandle(_ m: DiscoveryMessage, from id: Ed25519.PublicKey, at endpoint: Endpoint, now: Instant) {
        self.handle(m, from: PeerKey(id: id, endpoint: endpoint), now: now.nanoseconds)
    }

    func handle(_ m: DiscoveryMessage, from peer: PeerKey, now: UInt64) {
        switch m {
        case .ping(let rid, let seq):
            guard self.allowRequest(peer, now: now) else { return self.drop("request rate") }
            self.send(.pong(requestId: rid, recordSeq: self.record.seq, observed: peer.endpoint), to: peer, now: now)
            self.refreshRecordIfStale(peer, seq: seq, now: now)
        case .findNode(let rid, let distances):
            guard self.allowRequest(peer, now: now) else { return self.drop("request rate") }
            var records: [NodeRecord] = []
            if distances.contains(0) { records.append(self.record) }
            records += self.table.entries(atDistances: distances.filter { $0 > 0 }, limit: self.config.maxLookupNodes - records.count).map { $0.record }
            // At most 6 records per packet keeps each packet under 1,280 bytes. An answer is
            // larger than the question: each packet past the first costs the asker one more
            // request from its budgets, and what the budgets do not cover is not sent (only
            // peers with a session, i.e. that receive at their address, get answers at all).
            let packets = (records.count + 5) / 6
            var extra = 0
            while extra + 1 < packets && self.allowRequest(peer, now: now) { extra += 1 }
            records = Array(records.prefix((extra + 1) * 6))
            let chunks = stride(from: 0, to: max(records.count, 1), by: 6).map { Array(records[$0..<min($0 + 6, records.count)]) }
            for c in chunks { self.send(.nodes(requestId: rid, total: UInt8(chunks.count), records: c), to: peer, now: now) }
        case .pong(let rid, let seq, let observed):
            guard let r = self.requests.removeValue(forKey: rid), r.to.id == peer.id else { return self.drop("unsolicited pong") }
            if case .verify = r.kind { self.verifying.remove(peer.id) } else {
                self.events.append(.pong(from: peer.id, source: peer.endpoint, rtt: .nanoseconds(Int64(clamping: now.subtractingSaturated(r.sentAt))), observed: observed, recordSeq: seq))
            }
            if let rec = self.known[peer.id] ?? self.table.entry(peer.id)?.record { self.verified(rec, at: peer.endpoint, now: now) }
            self.refreshRecordIfStale(peer, seq: seq, now: now)
        case .nodes(let rid, let total, let records):
            guard var r = self.requests[rid], r.to.id == peer.id else { return self.drop("unsolicited nodes") }
            switch r.kind {
            case .findNode, .lookup, .refresh: break
            case .ping, .revalidate, .verify: return self.drop("nodes answering a ping")
            }
            r.packets += 1
            let refresh: Bool = { if case .refresh = r.kind { return true } else { return false } }()
            r.total = refresh ? 1 : max(1, min(Int(total), 3))
            for rec in records {
                // Only what we asked for: records at the requested distances from the node that
                // answers (its own record for a refresh), with usable addresses, a few in all.
                let d = rec.nodeId == peer.id ? 0 : UInt16(Distance.log2(peer.id, rec.nodeId))
                guard r.distances.contains(d), r.records.count < self.config.maxLookupNodes + 1,
                      rec.udpEndpoint.map({ $0.canBeRelayed(by: peer.endpoint) }) ?? true else {
                    self.drop("record not asked for")
                    continue
                }
                // A record we already hold, byte for byte, was verified when it arrived.
                let known = self.known[rec.nodeId].map { $0.seq == rec.seq && $0.signature == rec.signature && $0 == rec } ?? false
                guard known || rec.hasValidSignature, rec.genesis == self.config.genesis || self.config.acceptAnyGenesis else {
                    self.drop("bad record")
                    continue
                }
                r.records.append(rec)
                self.learn(rec, now: now)
            }
            if let rec = self.known[peer.id] ?? self.table.entry(peer.id)?.record { self.verified(rec, at: peer.endpoint, now: now) }
            if r.packets >= r.total {
                self.requests[rid] = nil
                self.complete(rid, r, now: now, ok: true)
            } else {
                self.requests[rid] = r
            }
        }
    }

    /// A request's budget: the node's own, and its network's (four nodes' worth: ids are free).
    /// The node's own is taken first: a request past it must not spend the network's, or one
    /// node flooding past its budget would starve every other node at its address.
    func allowRequest(_ peer: PeerKey, now: UInt64) -> Bool {
        let c = self.config
        guard Self.take(&self.requestBuckets, peer.id, now: now, rate: c.requestsPerSecond, burst: c.requestBurst) else { return false }
        return Self.take(&self.netRequestBuckets, Self.sourceNet(peer.endpoint), now: now, rate: 4 * c.requestsPerSecond, burst: 4 * c.requestBurst)
    }

    /// Fetches the peer's record when it says it has a newer one: one fetch at a time per
    /// peer and at most every `recordRefreshInterval` (a peer announcing seq 2^64 − 1 in
    /// every PING gets one FINDNODE, not one per PING).
    func refreshRecordIfStale(_ peer: PeerKey, seq: UInt64, now: UInt64) {
        let have = self.known[peer.id]?.seq ?? self.table.entry(peer.id)?.record.seq
        guard have == nil || have! < seq else { return }
        if let last = self.recordRefreshed[peer.id], now.subtractingSaturated(last) < self.config.recordRefreshInterval.nanoseconds { return }
        if self.recordRefreshed.count >= 4096 {
            self.recordRefreshed = self.recordRefreshed.filter { now.subtractingSaturated($0.value) < self.config.recordRefreshInterval.nanoseconds }
            if self.recordRefreshed.count >= 4096 { return }
        }
        self.recordRefreshed[peer.id] = now
        _ = self.request(.refresh, to: peer, now: now) { .findNode(requestId: $0, distances: [0]) }
    }

    func learn(_ r: NodeRecord, now: UInt64? = nil) {
        guard r.nodeId != self.id else { return }
        if let old = self.known[r.nodeId], old.seq > r.seq { return }
        if self.known[r.nodeId] == nil && self.known.count >= 65_536 {
            // Keep what the table and pending verifications rely on; forget the rest.
            self.known = self.known.filter { self.table.entry($0.key) != nil || self.verifying.contains($0.key) }
        }
        self.known[r.nodeId] = r
        // A node heard of (not yet verified) whose bucket has room: ping it, so that it can
        // enter the table once it answers at its address.
        if let now, let e = r.udpEndpoint, self.table.entry(r.nodeId) == nil, self.verifying.count < 64, !self.verifying.contains(r.nodeId) {
            let d = Distance.log2(self.id, r.nodeId)
            if self.table.buckets[d].count < self.table.k {
                self.verifying.insert(r.nodeId)
                _ = self.request(.verify, to: PeerKey(id: r.nodeId, endpoint: e), now: now) { .ping(requestId: $0, recordSeq: self.record.seq) }
            }
        }
    }

    /// A node answered us at `endpoint`: it may enter the table.
    func verified(_ r: NodeRecord, at endpoint: Endpoint, now: UInt64) {
        let had = self.table.entry(r.nodeId) != nil
        if case .added = self.table.add(r, endpoint: endpoint, now: Instant(nanoseconds: now)), !had { self.events.append(.nodeAdded(r, at: endpoint)) }
    }

    func fail(_ rid: UInt64, now: UInt64) {
        guard let r = self.requests.removeValue(forKey: rid) else { return }
        self.counters.requestsTimedOut += 1
        if case .revalidate = r.kind {
            let was = self.table.entry(r.to.id) != nil
            self.table.failed(r.to.id)
            if was && self.table.entry(r.to.id) == nil { self.events.append(.nodeRemoved(r.to.id)) }
        }
        self.complete(rid, r, now: now, ok: false)
    }

    func complete(_ rid: UInt64, _ r: Request, now: UInt64, ok: Bool) {
        switch r.kind {
        case .verify:
            self.verifying.remove(r.to.id)
        case .ping, .revalidate:
            if !ok { self.events.append(.requestFailed(requestId: rid, to: r.to.id)) }
        case .refresh:
            break
        case .findNode:
            self.events.append(.nodesAnswered(requestId: rid, from: r.to.id, records: r.records, complete: ok))
        case .lookup(let lid, let generation):
            guard let l = self.lookups[lid] else { return }
            l.inFlight -= 1
            if ok {
                l.answered.insert(r.to.id)
                for rec in r.records where rec.nodeId != self.id {
                    if let had = l.candidates[rec.nodeId] {
                        // Named again by a node asked in an earlier round: not yet asked, it is
                        // that many hops from our table (answers arrive out of round order).
                        if had.generation > generation + 1 && !l.asked.contains(rec.nodeId) { l.candidates[rec.nodeId]?.generation = generation + 1 }
                        continue
                    }
                    guard let e = rec.udpEndpoint else { continue }
                    l.candidates[rec.nodeId] = (rec, e, generation + 1)
                }
                // Keep the closest candidates only (and those already asked, for the result).
                if l.candidates.count > self.config.maxLookupCandidates {
                    let keep = Set(l.candidates.keys.sorted { Distance.closer($0, $1, to: l.target) }.prefix(self.config.maxLookupCandidates))
                    for id in l.candidates.keys where !keep.contains(id) && !l.asked.contains(id) { l.candidates[id] = nil }
                }
            } else {
                l.candidates[r.to.id] = nil
            }
            self.advance(l, now: now)
        }
    }

    func advance(_ l: Lookup, now: UInt64) {
        let k = self.config.k
        let sorted = l.candidates.keys.sorted { Distance.closer($0, $1, to: l.target) }
        let top = sorted.prefix(k)
        // The k-th candidate's distance bounds the neighbourhood still to search.
        let horizon = top.count == k ? Distance.xor(top.last!, l.target) : nil
        // Buckets deeper than the network's size allows are empty: not worth a slot. Until our
        // table gives an estimate, the asked node's buckets more than two below its own
        // distance to the target are left out (a newcomer does not know the network's size).
        let floor = self.table.densityFloor()
        for id in top where l.inFlight < self.config.alpha && !l.asked.contains(id) && l.asked.count < self.config.maxLookupQueries {
            guard let c = l.candidates[id] else { continue }
            l.asked.insert(id)
            l.path.append((id, c.generation))
            l.inFlight += 1
            l.rounds = max(l.rounds, c.generation)
            // The buckets of its table that can hold nodes inside the horizon, nearest first.
            let distances = Distance.bucketsToAsk(peer: id, target: l.target, horizon: horizon,
                                                  floor: floor ?? (Distance.log2(id, l.target) - 2), limit: DiscoveryMessage.maxDistances)
            _ = self.request(.lookup(l.id, generation: c.generation), to: PeerKey(id: id, endpoint: c.endpoint), now: now) {
                .findNode(requestId: $0, distances: distances)
            }
        }
        if l.inFlight == 0 && (top.allSatisfy({ l.asked.contains($0) }) || l.asked.count >= self.config.maxLookupQueries) {
            self.lookups[l.id] = nil
            let closest = top.filter { l.answered.contains($0) }.compactMap { l.candidates[$0]?.record }
            self.events.append(.lookupFinished(LookupResult(id: l.id, target: l.target, closest: closest, rounds: l.rounds,
                                                            elapsed: .nanoseconds(Int64(clamping: now.subtractingSaturated(l.started))), queried: l.asked.count,
                                                            path: l.path.map { LookupStep(id: $0.id, round: $0.round, answered: l.answered.contains($0.id)) })))
        }
    }
}

