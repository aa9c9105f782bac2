import MeshChain
import MeshCodec
import MeshSockets

/// The JSON-RPC subscriptions of every WebSocket connection, on the node's loop.
///
/// What a subscriber sees is derived from the chain, not from where the node happens to be
/// in its import code: every ``pollInterval`` while anyone subscribes, the hub compares the
/// best and finalized heads with those it last reported and reports the blocks in between,
/// parent before child, each once:
/// - new heads: every block that joins the best chain (after a reorganisation, the new
///   branch from the fork point; at most ``maxBlocksPerPoll`` per poll during a long sync);
/// - finalized heads: every finalized block, in number order;
/// - watched transactions: `ready`, then `{"inBlock": hash}` (and `{"retracted": hash}` when
///   that block leaves the best chain), then `{"finalized": hash}` or `"dropped"`, which end
///   the subscription (Substrate's transaction status names);
/// - subnet events: `epochRun` and `metagraphChanged`, per best block.
///
/// Notifications are produced once per poll and handed to the server in one batch; the
/// server writes them to each connection's bounded send queue or drops a connection that
/// does not keep up. Each connection holds at most ``maxPerConnection`` subscriptions.
final class SubscriptionHub {
    enum Kind: Equatable {
        case newHeads
        case finalizedHeads
        case transaction(Hash32)
        case subnetEvents(UInt16?)

        var method: String {
            switch self {
            case .newHeads: return "chain_newHead"
            case .finalizedHeads: return "chain_finalizedHead"
            case .transaction: return "author_transactionUpdate"
            case .subnetEvents: return "subnet_event"
            }
        }
    }

    struct Subscription {
        let id: String
        let connection: UInt64
        let kind: Kind
    }

    enum TransactionStatus: Equatable {
        case ready
        case inBlock(Hash32)
    }

    static let pollInterval: UInt64 = 100_000_000
    static let maxBlocksPerPoll = 256
    /// Subscriptions one connection may hold.
    let maxPerConnection: Int
    /// Transactions watched across all connections.
    static let maxWatchedTransactions = 16_384

    let node: Node
    /// Hands a poll's notifications, per connection, to the server (it runs them on its loop).
    let deliver: @Sendable ([(UInt64, [String])]) -> Void
    private(set) var subscriptions: [String: Subscription] = [:]
    private var byConnection: [UInt64: Set<String>] = [:]
    private var transactions: [Hash32: TransactionStatus] = [:]
    /// The heads last reported, and the recent blocks reported as new heads.
    private var lastBest: ChainPointer?
    private var lastFinalized: ChainPointer?
    private var reported = RecentSet<Hash32>(capacity: 2048)
    private var timer: TimerID?
    /// Notifications handed over since start (for metrics).
    private(set) var notificationsSent = 0

    init(node: Node, maxPerConnection: Int, deliver: @escaping @Sendable ([(UInt64, [String])]) -> Void) {
        self.node = node
        self.maxPerConnection = maxPerConnection
        self.deliver = deliver
    }

    var count: Int { self.subscriptions.count }

    /// Whether `connection` may add one more subscription.
    func canAdd(connection: UInt64) -> Bool { (self.byConnection[connection]?.count ?? 0) < self.maxPerConnection }

    /// Adds a subscription for `connection` and returns its id and the notifications it gets
    /// at once (the current head for head subscriptions, `ready` for a transaction). Reports
    /// what is due to the existing subscribers first, so the new one starts from now.
    func add(_ kind: Kind, connection: UInt64) throws(RPCError) -> (id: String, initial: [String]) {
        guard self.canAdd(connection: connection) else {
            throw RPCError(RPCError.limitExceeded, "this connection holds \(self.maxPerConnection) subscriptions already; unsubscribe first")
        }
        if case .transaction(let hash) = kind {
            guard self.transactions.count < Self.maxWatchedTransactions || self.transactions[hash] != nil else {
                throw RPCError(RPCError.limitExceeded, "the node watches \(Self.maxWatchedTransactions) transactions already")
            }
        }
        if self.subscriptions.isEmpty {
            self.startTracking()
        } else {
            self.poll()
        }
        var id = Self.newID()
        while self.subscriptions[id] != nil { id = Self.newID() }
        let sub = Subscription(id: id, connection: connection, kind: kind)
        self.subscriptions[id] = sub
        self.byConnection[connection, default: []].insert(id)
        var initial: [String] = []
        let chain = self.node.chain
        switch kind {
        case .newHeads:
            if let h = chain.header(chain.best.hash) { initial.append(Self.notification(sub, Self.headerJSON(h, hash: chain.best.hash).serialized())) }
        case .finalizedHeads:
            if let h = chain.header(chain.finalized.hash) {
                initial.append(Self.notification(sub, Self.headerJSON(h, hash: chain.finalized.hash).serialized()))
            }
        case .transaction(let hash):
            if self.transactions[hash] == nil { self.transactions[hash] = .ready }
            initial.append(Self.notification(sub, JSONValue.string("ready").serialized()))
        case .subnetEvents:
            break
        }
        self.notificationsSent += initial.count
        self.scheduleTimer()
        return (id, initial)
    }

    /// Removes a subscription of `connection` whose kind matches; false when there is none.
    func remove(_ id: String, connection: UInt64, matching: (Kind) -> Bool) -> Bool {
        guard let sub = self.subscriptions[id], sub.connection == connection, matching(sub.kind) else { return false }
        self.drop(sub)
        return true
    }

    /// Forgets every subscription of a closed connection.
    func removeAll(connection: UInt64) {
        for id in self.byConnection[connection] ?? [] {
            if let sub = self.subscriptions[id] { self.drop(sub) }
        }
        self.byConnection[connection] = nil
    }

    private func drop(_ sub: Subscription) {
        self.subscriptions[sub.id] = nil
        self.byConnection[sub.connection]?.remove(sub.id)
        if self.byConnection[sub.connection]?.isEmpty == true { self.byConnection[sub.connection] = nil }
        if case .transaction(let hash) = sub.kind,
           !self.subscriptions.values.contains(where: { $0.kind == .transaction(hash) }) {
            self.transactions[hash] = nil
        }
        if self.subscriptions.isEmpty, let t = self.timer {
            self.node.loop.cancel(t)
            self.timer = nil
        }
    }

    private func startTracking() {
        let chain = self.node.chain
        self.lastBest = chain.best
        self.lastFinalized = chain.finalized
        self.reported = RecentSet(capacity: 2048)
        // The best block and its ancestors are what a subscriber starts from (its first
        // notification is the best header): history, never reported as new heads. A later
        // reorganisation reports only the blocks of the new branch.
        var cursor = chain.best.hash
        for _ in 0..<1024 {
            _ = self.reported.insert(cursor)
            guard let h = chain.header(cursor), h.number > 0 else { break }
            cursor = h.parentHash
        }
    }

    private func scheduleTimer() {
        guard self.timer == nil, !self.subscriptions.isEmpty else { return }
        self.timer = self.node.loop.schedule(after: Self.pollInterval) { [weak self] in
            guard let self else { return }
            self.timer = nil
            guard !self.node.stopping else { return }
            self.poll()
            self.scheduleTimer()
        }
    }

    /// Reports what changed since the last poll to every subscriber.
    func poll() {
        guard !self.subscriptions.isEmpty else { return }
        let chain = self.node.chain
        var out: [UInt64: [String]] = [:]
        func send(_ sub: Subscription, _ result: String) {
            out[sub.connection, default: []].append(Self.notification(sub, result))
        }
        let subs = self.subscriptions.values.sorted { $0.id < $1.id }
        // New best blocks, parent first.
        let wantsHeads = subs.contains { if case .newHeads = $0.kind { return true }; if case .subnetEvents = $0.kind { return true }; return false }
        if wantsHeads, chain.best.hash != self.lastBest?.hash {
            var path: [(Hash32, BlockHeader)] = []
            var cursor = chain.best.hash
            while path.count < Self.maxBlocksPerPoll, !self.reported.contains(cursor), let h = chain.header(cursor) {
                path.append((cursor, h))
                if h.number == 0 { break }
                cursor = h.parentHash
            }
            path.reverse()
            let headSubs = subs.filter { $0.kind == .newHeads }
            for (hash, header) in path {
                _ = self.reported.insert(hash)
                if !headSubs.isEmpty {
                    let text = Self.headerJSON(header, hash: hash).serialized()
                    for s in headSubs { send(s, text) }
                }
                self.subnetEvents(block: hash, header: header, subs: subs, send: send)
            }
        }
        self.lastBest = chain.best
        // Newly finalized blocks, in order.
        if let last = self.lastFinalized, chain.finalized.number > last.number {
            let finSubs = subs.filter { $0.kind == .finalizedHeads }
            if !finSubs.isEmpty {
                let from = max(last.number + 1, chain.finalized.number.subtractingSaturated(UInt64(Self.maxBlocksPerPoll - 1)))
                for n in from...chain.finalized.number {
                    guard let hash = n == chain.finalized.number ? chain.finalized.hash : chain.canonicalHash(n), let h = chain.header(hash) else { continue }
                    let text = Self.headerJSON(h, hash: hash).serialized()
                    for s in finSubs { send(s, text) }
                }
            }
        }
        self.lastFinalized = chain.finalized
        // Watched transactions.
        var ended: [Subscription] = []
        for (hash, status) in self.transactions.sorted(by: { $0.key < $1.key }) {
            let watchers = subs.filter { $0.kind == .transaction(hash) }
            var updates: [JSONValue] = []
            var final = false
            let receipt = chain.receipts[hash].flatMap { r in chain.canonicalHash(r.number) == r.block ? r : nil }
            if case .inBlock(let old) = status, receipt?.block != old {
                updates.append(.object([("retracted", .string(old.hex))]))
                self.transactions[hash] = .ready
            }
            if let r = receipt {
                if self.transactions[hash] != .inBlock(r.block) {
                    updates.append(.object([("inBlock", .string(r.block.hex))]))
                    self.transactions[hash] = .inBlock(r.block)
                }
                if r.number <= chain.finalized.number {
                    updates.append(.object([("finalized", .string(r.block.hex))]))
                    final = true
                }
            } else if !self.node.mempool.contains(hash) {
                updates.append(.string("dropped"))
                final = true
            }
            for u in updates {
                let text = u.serialized()
                for s in watchers { send(s, text) }
            }
            if final { ended += watchers }
        }
        for s in ended { self.drop(s) }
        guard !out.isEmpty else { return }
        let batch = out.sorted { $0.key < $1.key }
        self.notificationsSent += batch.reduce(0) { $0 + $1.1.count }
        self.deliver(batch)
    }

    /// Epochs run and metagraph changes in `block` (against its parent), for subnet subscribers.
    private func subnetEvents(block hash: Hash32, header: BlockHeader, subs: [Subscription], send: (Subscription, String) -> Void) {
        let subnetSubs = subs.filter { if case .subnetEvents = $0.kind { return true }; return false }
        guard !subnetSubs.isEmpty, let state = self.node.chain.state(at: hash), let parent = self.node.chain.state(at: header.parentHash) else { return }
        for (netuid, s) in state.subnets.sorted(by: { $0.key < $1.key }) {
            let interested = subnetSubs.filter { if case .subnetEvents(let n) = $0.kind { return n == nil || n == netuid }; return false }
            guard !interested.isEmpty else { continue }
            let before = parent.subnets[netuid]
            var events: [JSONValue] = []
            if s.epochCount > (before?.epochCount ?? 0) {
                events.append(.object([("type", "epochRun"), ("netuid", .int(netuid)), ("block", .int(header.number)), ("hash", .string(hash.hex)),
                                       ("epoch", .int(s.epochCount))]))
            }
            if before?.neurons != s.neurons || parent.stakeByHotkey(netuid: netuid) != state.stakeByHotkey(netuid: netuid) {
                events.append(.object([("type", "metagraphChanged"), ("netuid", .int(netuid)), ("block", .int(header.number)),
                                       ("hash", .string(hash.hex)), ("n", .int(s.neurons.count))]))
            }
            for e in events {
                let text = e.serialized()
                for sub in interested { send(sub, text) }
            }
        }
    }

    /// `{"jsonrpc":"2.0","method":…,"params":{"subscription":id,"result":…}}` with the result
    /// already serialized (ids are alphanumeric: nothing to escape).
    static func notification(_ sub: Subscription, _ result: String) -> String {
        "{\"jsonrpc\":\"2.0\",\"method\":\"\(sub.kind.method)\",\"params\":{\"subscription\":\"\(sub.id)\",\"result\":\(result)}}"
    }

    /// A header in Substrate's shape (number in hex, `extrinsicsRoot`), with its hash.
    static func headerJSON(_ h: BlockHeader, hash: Hash32) -> JSONValue {
        .object([("parentHash", .string(h.parentHash.hex)), ("number", .string("0x" + String(h.number, radix: 16))),
                 ("stateRoot", .string(h.stateRoot.hex)), ("extrinsicsRoot", .string(h.transactionsRoot.hex)),
                 ("digest", .object([("logs", .array([]))])), ("hash", .string(hash.hex))])
    }

    static let idAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<16).map { _ in Self.idAlphabet[Int(rng.next() % UInt64(Self.idAlphabet.count))] })
    }
}

/// A set that forgets its oldest members past a capacity (the blocks reported lately).
struct RecentSet<T: Hashable> {
    private var members: Set<T> = []
    private var order: [T] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Inserts; false when it was there already.
    mutating func insert(_ v: T) -> Bool {
        guard self.members.insert(v).inserted else { return false }
        self.order.append(v)
        if self.members.count > self.capacity {
            self.members.remove(self.order[self.head])
            self.head += 1
            if self.head > self.capacity {
                self.order.removeFirst(self.head)
                self.head = 0
            }
        }
        return true
    }

    func contains(_ v: T) -> Bool { self.members.contains(v) }
}
