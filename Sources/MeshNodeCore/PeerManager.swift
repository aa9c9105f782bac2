import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// The driver's handle for one connection (its tag). Chosen by the driver, never by a peer.
public typealias PeerID = Int

/// One of our requests to a peer (a stream we opened), named by the core.
public typealias RequestID = UInt64

/// What the driver knows of a connection once its handshake and hello are done.
public struct PeerInfo: Sendable, Equatable {
    public var nodeId: AccountID
    public var hello: Hello
    public var inbound: Bool
    /// The remote address of the connection (numeric).
    public var remoteHost: String
    public var remotePort: UInt16
    /// The identity we dialled this address for, if we dialled it.
    public var expected: AccountID?

    public init(nodeId: AccountID, hello: Hello, inbound: Bool, remoteHost: String, remotePort: UInt16, expected: AccountID? = nil) {
        self.nodeId = nodeId
        self.hello = hello
        self.inbound = inbound
        self.remoteHost = remoteHost
        self.remotePort = remotePort
        self.expected = expected
    }

    /// Where the peer can be dialled: its listen port (inbound) or the port we dialled.
    public var dialAddress: NodeAddress? {
        let port = self.inbound ? self.hello.listenPort : self.remotePort
        guard port > 0 else { return nil }
        return NodeAddress(nodeId: self.nodeId, host: self.remoteHost, port: port)
    }
}

/// A connected peer as the node core tracks it. Everything a peer claims here (best,
/// finalized) is a hint until blocks prove it.
public struct PeerRecord: Sendable {
    public let id: PeerID
    public let info: PeerInfo
    /// The best and finalized blocks the peer claims (clamped to what can exist).
    public internal(set) var best: ChainPointer
    public internal(set) var finalized: ChainPointer
    public internal(set) var score = 0
    /// Range-sync requests to this peer in flight (or answered ahead of the ones before
    /// them), lowest range first: at most `NodeCoreConfig.syncRangesInFlight`.
    var syncRanges: [SyncRange] = []
    /// A range-sync request to this peer is in flight.
    var syncing: Bool { !self.syncRanges.isEmpty }
    /// Streams the peer opened that we still track: protocol name, or "" once served.
    var incoming: [StreamID: String] = [:]
    /// Our requests in flight to this peer.
    var requests: [RequestID: PendingRequest] = [:]
    /// Budgets per inbound message kind, by the protocol's slot in `PeerManager.budgetNames`
    /// (bounded: the node's own protocol names and one for all others).
    var budgets = [RequestBudget?](repeating: nil, count: PeerManager.budgetNames.count)
    /// Bytes of block answers (sync, ancestry) we may still serve the peer; may run below 0
    /// by one answer, and the peer is refused until it refills (see `PeerManagerConfig`).
    var servedBlockBytes: TokenBucket?
    /// When we last asked this peer for addresses.
    var addressesAskedAt: Instant?

    public var nodeId: AccountID { self.info.nodeId }

    /// Takes one message from the budget in `slot` (see `RequestBudget`, `PeerManager.budgetSlot`).
    mutating func takeBudget(_ slot: Int, now: Instant) -> RequestBudget.Verdict {
        let limit = PeerManager.budgetLimits[slot]
        var budget = self.budgets[slot] ?? RequestBudget(burst: limit.burst, now: now.nanoseconds)
        let verdict = budget.take(now: now.nanoseconds, rate: limit.rate, burst: limit.burst)
        self.budgets[slot] = budget
        return verdict
    }
    public var inbound: Bool { self.info.inbound }
    /// Streams the peer opened that the node still tracks (a metric).
    public var trackedStreams: Int { self.incoming.count }
}

/// A request we sent and wait for.
struct PendingRequest: Sendable {
    var kind: String
    var sentAt: Instant
    /// The block asked for (ancestry requests).
    var hash: Hash32?
}

/// Tunables of the peer manager.
public struct PeerManagerConfig: Sendable {
    /// Outbound connections to keep.
    public var targetOutbound = 8
    /// Addresses remembered at most.
    public var maxKnownAddresses = 2048
    /// Address-book entries from one /24 (IPv4) or /48 (IPv6) network.
    public var maxAddressesPerNetwork = 32
    /// New addresses taken from one `/tm/peers/1` answer.
    public var maxLearnedPerAnswer = 16
    /// How often one peer is asked for addresses while we are short of outbound peers.
    public var addressRequestInterval: Duration = .seconds(30)
    /// How long an address is not dialled again after a dial.
    public var dialBackoff: Duration = .seconds(10)
    /// How long a misbehaving peer is banned (inbound and outbound).
    public var banDuration: Duration = .seconds(600)
    /// A request unanswered for this long is cancelled.
    public var requestTimeout: Duration = .seconds(15)
    /// Bytes of block answers (range sync and ancestry) served to one peer, sustained per
    /// second and in a burst. Requests are budgeted by count (`PeerManager.budgets`), and what
    /// one costs us grows with its answer (up to 8 MiB): past this the peer's block requests
    /// are refused, uncharged, until the bucket refills.
    public var servedBlockBytesPerSecond: Double = 32 * 1024 * 1024
    public var servedBlockBytesBurst: Double = 64 * 1024 * 1024
    public init() {}
}

/// The peer manager (sans-IO): connected peers and their standing, the address book, whom
/// to dial, budgets per request kind, scores, bans and request timeouts. It decides; the
/// node core turns its decisions into actions.
public struct PeerManager {
    public let config: PeerManagerConfig
    let ownId: AccountID
    let bootnodes: Set<AccountID>
    public private(set) var connected: [PeerID: PeerRecord] = [:]
    private(set) var book = AddressBook()
    /// Dial back-offs and bans by node id (until when).
    private(set) var dialing: [AccountID: Instant] = [:]
    private(set) var votes = AddressVotes()
    private var nextRequest: RequestID = 1
    /// Randomness (bound → value in 0..<bound), injected.
    let random: (UInt64) -> UInt64

    /// Per-peer budgets (sustained per second, burst) for each kind of inbound message. An
    /// honest node stays below them: one sync or ancestry request in flight at a time, a
    /// peers request every few seconds, gossip frames at the network's message rate. A node
    /// catching up on small blocks asks for the next range as soon as one is imported (one
    /// round trip and 128 imports apart, about 25 ms at 5,000 blocks/s), so the sync budget
    /// is counted in requests here and in bytes served by `servedBlockBytesPerSecond`.
    public static let budgets: [String: (rate: Double, burst: Double)] = [
        ProtocolName.sync: (50, 100), ProtocolName.ancestry: (20, 60), ProtocolName.blockTransactions: (20, 60),
        ProtocolName.peers: (1, 5), ProtocolName.head: (2, 10), ProtocolName.gossip: (2_000, 6_000),
        ProtocolName.finality: (200, 600), PeerManager.unknownProtocols: (5, 20),
    ]
    /// The budget key for streams of protocols the node does not speak.
    public static let unknownProtocols = "?"
    /// The protocols with a budget in a fixed order: a peer's budgets are kept by index, so a
    /// frame's budget is found by a few short string compares instead of two hashings of its
    /// protocol name (this runs for every frame a node receives).
    static let budgetNames: [String] = budgets.keys.sorted()
    static let budgetLimits: [(rate: Double, burst: Double)] = budgetNames.map { budgets[$0]! }
    static let unknownSlot = budgetNames.firstIndex(of: unknownProtocols)!

    /// The budget slot of a protocol (`unknownSlot` for one without a budget of its own).
    static func budgetSlot(_ proto: String) -> Int {
        budgetNames.firstIndex(of: proto) ?? unknownSlot
    }

    public init(config: PeerManagerConfig, ownId: AccountID, bootnodes: [NodeAddress], random: @escaping (UInt64) -> UInt64) {
        self.config = config
        self.ownId = ownId
        self.bootnodes = Set(bootnodes.map { $0.nodeId })
        self.random = random
        for b in bootnodes where b.nodeId != ownId { self.book[b.nodeId] = b }
    }

    // MARK: Connections

    /// Why a connection is refused once its hello is known.
    public enum Refusal: Equatable, Sendable {
        case unexpectedIdentity
        case alreadyConnected
    }

    /// A connection finished its hello: refused (the address we dialled answered with another
    /// identity, or the peer is connected already) or recorded, its claimed best clamped to
    /// `maxHeight` (more blocks than there were slots is a lie, remembered as `ours`).
    /// Returns the refusal, or nil when the peer was recorded.
    mutating func connect(_ id: PeerID, info: PeerInfo, ours: ChainPointer, maxHeight: UInt64) -> Refusal? {
        if let expected = info.expected, expected != info.nodeId { return .unexpectedIdentity }
        if self.connected.values.contains(where: { $0.info.nodeId == info.nodeId }) { return .alreadyConnected }
        let h = info.hello
        var record = PeerRecord(id: id, info: info, best: ChainPointer(number: h.best.number, hash: Hash32(h.best.hash)),
                                finalized: ChainPointer(number: h.finalized.number, hash: Hash32(h.finalized.hash)))
        if record.best.number > maxHeight { record.best = ours }
        self.connected[id] = record
        if let a = info.dialAddress { self.remember(a) }
        self.dialing[info.nodeId] = nil
        return nil
    }

    mutating func disconnect(_ id: PeerID) -> PeerRecord? { self.connected.removeValue(forKey: id) }

    subscript(id: PeerID) -> PeerRecord? {
        get { self.connected[id] }
        set { if let v = newValue, self.connected[id] != nil { self.connected[id] = v } }
    }

    /// Changes a peer's record in place (no copy of its tables); nil when not connected.
    @discardableResult
    mutating func update<R>(_ id: PeerID, _ change: (inout PeerRecord) -> R) -> R? {
        guard let i = self.connected.index(forKey: id) else { return nil }
        return change(&self.connected.values[i])
    }

    func isConnected(_ id: PeerID) -> Bool { self.connected.index(forKey: id) != nil }


    /// The peer connected with this node id, if any.
    func peer(nodeId: AccountID) -> PeerID? { self.connected.first { $0.value.info.nodeId == nodeId }?.key }

    /// Connected peers in a stable order (by handle).
    var ordered: [PeerRecord] { self.connected.values.sorted { $0.id < $1.id } }

    // MARK: Standing

    /// What a penalty led to.
    enum Penalty: Equatable {
        case noted(score: Int)
        /// The score reached the ban threshold: drop the peer and refuse it until `until`.
        case banned(AccountID, until: Instant)
    }

    /// Scores a peer down; past the threshold it is banned both ways for `banDuration`.
    mutating func penalize(_ id: PeerID, by amount: Int, now: Instant) -> Penalty? {
        guard self.isConnected(id) else { return nil }
        self.connected[id]!.score = self.connected[id]!.score.subtractingSaturated(amount)
        let score = self.connected[id]!.score
        guard score <= Reputation.banThreshold else { return .noted(score: score) }
        let nodeId = self.connected[id]!.info.nodeId
        let until = now + self.config.banDuration
        // (Dial back-offs matter only for the bounded address book; the cap keeps a stream of
        // fresh banned identities from growing the map between sweeps.)
        if self.dialing.count < 8192 || self.dialing[nodeId] != nil { self.dialing[nodeId] = until }
        return .banned(nodeId, until: until)
    }

    /// Scores heal with time (every maintenance tick).
    mutating func heal() {
        for id in self.connected.keys { self.connected[id]!.score = Reputation.healed(self.connected[id]!.score) }
    }


    /// Whether the peer's block-answer byte budget has anything left (refilled to `now`).
    mutating func mayServeBlocks(_ id: PeerID, now: Instant) -> Bool {
        guard self.isConnected(id) else { return false }
        return self.refilledServedBytes(id, now: now) > 0
    }

    /// Charges an answer of `bytes` to the peer's block-answer byte budget.
    mutating func chargeServedBlocks(_ id: PeerID, bytes: Int, now: Instant) {
        guard self.isConnected(id) else { return }
        _ = self.refilledServedBytes(id, now: now)
        self.connected[id]!.servedBlockBytes!.tokens -= Double(bytes)
    }

    private mutating func refilledServedBytes(_ id: PeerID, now: Instant) -> Double {
        let burst = self.config.servedBlockBytesBurst
        var bucket = self.connected[id]!.servedBlockBytes ?? TokenBucket(tokens: burst, updatedAt: now.nanoseconds)
        _ = bucket.take(now: now.nanoseconds, rate: self.config.servedBlockBytesPerSecond, burst: burst, cost: 0)
        self.connected[id]!.servedBlockBytes = bucket
        return bucket.tokens
    }

    // MARK: Requests

    /// Records a request to `id` and names it.
    mutating func startRequest(_ id: PeerID, kind: String, hash: Hash32?, now: Instant) -> RequestID? {
        guard self.isConnected(id) else { return nil }
        let rid = self.nextRequest
        self.nextRequest += 1
        self.connected[id]!.requests[rid] = PendingRequest(kind: kind, sentAt: now, hash: hash)
        return rid
    }

    /// Restarts the timeout of a request still in flight (one queued behind another at the
    /// peer: its time starts when the one before it is answered).
    mutating func restartRequest(_ id: PeerID, _ rid: RequestID, now: Instant) {
        self.update(id) { $0.requests[rid]?.sentAt = now }
    }

    /// Takes a request off the books (answered, failed or cancelled).
    mutating func finishRequest(_ id: PeerID, _ rid: RequestID) -> PendingRequest? {
        guard self.isConnected(id) else { return nil }
        return self.connected[id]!.requests.removeValue(forKey: rid)
    }

    /// Requests older than the timeout, taken off the books.
    mutating func expiredRequests(now: Instant) -> [(PeerID, RequestID, PendingRequest)] {
        var out: [(PeerID, RequestID, PendingRequest)] = []
        for p in self.ordered {
            for (rid, r) in p.requests.sorted(by: { $0.key < $1.key }) where now.since(r.sentAt) > self.config.requestTimeout {
                self.connected[p.id]!.requests[rid] = nil
                out.append((p.id, rid, r))
            }
        }
        return out
    }

    // MARK: Addresses

    /// Adds an address to the bounded address book; when full, an address we are not
    /// connected to and that is no bootnode makes room. Returns false when nothing could be
    /// evicted (or the address's network holds its share already).
    @discardableResult
    mutating func remember(_ a: NodeAddress) -> Bool {
        guard a.nodeId != self.ownId else { return false }
        // Eclipse resistance: one network (/24, /48) holds at most `maxAddressesPerNetwork`
        // entries, however many ids it makes up (loopback exempt, for local networks).
        if self.book[a.nodeId] == nil, self.book.countInNetwork(of: a) >= self.config.maxAddressesPerNetwork,
           !self.bootnodes.contains(a.nodeId) {
            return false
        }
        if self.book[a.nodeId] == nil && self.book.count >= self.config.maxKnownAddresses {
            let connected = Set(self.connected.values.map { $0.info.nodeId })
            let candidates = self.book.keys.filter { !connected.contains($0) && !self.bootnodes.contains($0) }.sorted()
            guard !candidates.isEmpty else { return false }
            let victim = candidates[Int(self.random(UInt64(candidates.count)))]
            self.book[victim] = nil
            self.dialing[victim] = nil
        }
        self.book[a.nodeId] = a
        return true
    }

    /// A verified discovery record names the node's address: it replaces a stale one from a
    /// bootnode list, a peer exchange or the peer cache. Returns whether the book changed.
    mutating func recordAddress(_ a: NodeAddress, now: Instant) -> (added: Bool, updated: Bool) {
        if let old = self.book[a.nodeId] {
            guard old != a else { return (false, false) }
            self.book[a.nodeId] = a
            // A ban (a long back-off) is not lifted by a new address.
            if let until = self.dialing[a.nodeId], until <= now + self.config.dialBackoff { self.dialing[a.nodeId] = nil }
            return (false, true)
        }
        return (self.remember(a), false)
    }

    /// The addresses worth remembering from a peer's `/tm/peers/1` answer, in its order: only
    /// the first 64 entries are looked at, only numeric hosts (a peer's host names would make
    /// us resolve DNS for it), never our own id, nothing already known.
    func learnable(_ list: PeerList) -> [NodeAddress] {
        list.peers.prefix(64).compactMap { e in
            guard e.nodeId != self.ownId, self.book[e.nodeId] == nil, let a = NodeAddress("\(e.nodeId.hex)@\(e.address)"),
                  Endpoint(numericHost: a.host, port: a.port) != nil else { return nil }
            return a
        }
    }

    /// Remembers up to `maxLearnedPerAnswer` new addresses from an answer; returns how many.
    mutating func learn(_ list: PeerList) -> Int {
        var added = 0
        for a in self.learnable(list) where added < self.config.maxLearnedPerAnswer {
            if self.remember(a) { added += 1 }
        }
        return added
    }

    var knownAddresses: [NodeAddress] { self.book.values.sorted { $0.nodeId < $1.nodeId } }
    func address(of id: AccountID) -> NodeAddress? { self.book[id] }
    var addressCount: Int { self.book.count }

    /// Whether `id` is banned (or backing off) at `now`.
    func isBackingOff(_ id: AccountID, now: Instant) -> Bool { self.dialing[id].map { now < $0 } ?? false }

    /// Picks addresses to dial (and starts their back-off): random order, and for eclipse
    /// resistance at most one outbound peer per /24 (IPv4) or /48 until every other candidate
    /// is used. `outboundNetworks` are the networks of the outbound peers we hold.
    mutating func dialCandidates(now: Instant) -> [NodeAddress] {
        // Back-offs and bans that ran out are forgotten (a ban per fresh identity would
        // otherwise stay forever); the driver's host keeps its own bounded ban list.
        self.dialing = self.dialing.filter { $0.value > now }
        let outbound = self.connected.values.filter { !$0.info.inbound }
        let budget = self.config.targetOutbound - outbound.count
        guard budget > 0 else { return [] }
        let connected = Set(self.connected.values.map { $0.info.nodeId })
        var usedNets = Set(outbound.compactMap { Endpoint(numericHost: $0.info.remoteHost, port: 1)?.subnet })
        var pool = self.book.values.filter { a in !connected.contains(a.nodeId) && self.dialing[a.nodeId] == nil }
            .sorted { $0.nodeId < $1.nodeId }
        // Fisher-Yates with the injected randomness (replayable).
        if pool.count > 1 {
            for i in stride(from: pool.count - 1, to: 0, by: -1) { pool.swapAt(i, Int(self.random(UInt64(i + 1)))) }
        }
        var picked: [NodeAddress] = []
        var later: [NodeAddress] = []
        for a in pool {
            guard picked.count < budget else { break }
            let e = Endpoint(numericHost: a.host, port: a.port)
            if let e, !e.isLocal, usedNets.contains(e.subnet) {
                later.append(a)
                continue
            }
            if let e { usedNets.insert(e.subnet) }
            picked.append(a)
        }
        for a in later where picked.count < budget { picked.append(a) }
        for a in picked { self.dialing[a.nodeId] = now + self.config.dialBackoff }
        return picked
    }

    /// Peers to ask for addresses while short of outbound peers: each at most every
    /// `addressRequestInterval` (a small network never reaches the target and would
    /// otherwise ask on every tick for ever), four at a time.
    mutating func addressSources(now: Instant) -> [PeerID] {
        let outbound = self.connected.values.filter { !$0.info.inbound }.count
        guard outbound < self.config.targetOutbound else { return [] }
        let due = self.ordered.filter { p in p.addressesAskedAt.map { now.since($0) >= self.config.addressRequestInterval } ?? true }.prefix(4)
        for p in due { self.connected[p.id]!.addressesAskedAt = now }
        return due.map { $0.id }
    }

    /// A peer reported where it sees us (discovery PONG): see `AddressVotes`.
    mutating func observed(_ ip: [UInt8], reporterIP: [UInt8], reporter: AccountID) -> [UInt8]? {
        self.votes.observe(ip, reporterIP: reporterIP, fromBootnode: self.bootnodes.contains(reporter))
    }

    func reporters(of ip: [UInt8]) -> Int { self.votes.reporters(of: ip) }
}
