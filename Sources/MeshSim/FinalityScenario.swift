import Foundation
import MeshChain
import MeshCodec
import MeshCrypto
import MeshFinality

/// Settings of the finality and twins scenarios.
public struct FinalityScenarioConfig: Sendable {
    public var nodes = 16
    /// Validators among the nodes (the rest follow commits).
    public var validators = 16
    /// Finality: silent validators. Twins: validators run as two instances with one key.
    public var byzantine = 0
    public var twins = false
    /// Validators that are offline (crashed) for the whole run, or from `silentFrom` to
    /// `silentUntil` seconds. Unlike Byzantine ones they may hold any share of the stake.
    public var silentValidators = 0
    public var silentFrom: Double = 0
    public var silentUntil: Double = .infinity
    /// Crashed validators restart at `silentUntil`: a new gadget from what their disk kept
    /// (the vote state each vote was persisted with before it was sent; everything else —
    /// votes received, round timers — is lost). The block tree survives (it is in the store).
    public var restartAfterCrash = false
    /// A planted fault: restarted validators lost their vote state too (a disk that dropped
    /// the synced writes), to show that the conflicting-vote checker catches what follows.
    public var restartLosesVotes = false
    /// Each node's clock is off by a uniform amount in ±clockSkewMs (its timers run on it).
    public var clockSkewMs: UInt64 = 0
    /// What Byzantine validators of the finality scenario do: stay silent (withhold), or
    /// vote and also replay observed messages later and send mutated copies of them.
    public enum ByzantineMode: String, Sendable { case silent, replay }
    public var byzantineMode = ByzantineMode.silent
    public var seconds: Double = 60
    public var slotMs: UInt64 = 2000
    public var network = NetworkModel()
    public var finality = FinalityConfig()
    /// Twins: random partitions (and twin routing) change every `partitionPeriod` until GST.
    public var gstSeconds: Double = 20
    public var partitionPeriodSeconds: Double = 3
    public var stakeRange: ClosedRange<UInt64> = 1...100
    public init() {}
}

/// What a simulation run reports (CONTRACT.md, meshsim `--json`).
public struct SimSummary: Sendable {
    public var scenario: String
    public var nodes: Int
    public var seed: UInt64
    public var virtualSeconds: Double
    public var traceHash: String
    public var safetyViolations: Int
    public var violations: [String] = []
    public var delivered: Double?
    public var latencyP50Ms: Double?
    public var latencyP99Ms: Double?
    public var events: UInt64
    public var wallSeconds: Double = 0
    public var extra: [(String, JSONValue)] = []

    public var eventsPerSecond: Double { self.wallSeconds > 0 ? Double(self.events) / self.wallSeconds : 0 }

    public func json() -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("scenario", .string(self.scenario)), ("nodes", .int(self.nodes)), ("seed", .int(self.seed)),
            ("virtualSeconds", .double(self.virtualSeconds)), ("traceHash", .string(self.traceHash)),
            ("safetyViolations", .int(self.safetyViolations)),
            ("delivered", self.delivered.map { .double($0) } ?? .null),
            ("latencyP50Ms", self.latencyP50Ms.map { .double($0) } ?? .null),
            ("latencyP99Ms", self.latencyP99Ms.map { .double($0) } ?? .null),
            ("events", .int(self.events)), ("wallSeconds", .double(self.wallSeconds)),
            ("eventsPerSecond", .double(self.eventsPerSecond)),
        ]
        if !self.violations.isEmpty { members.append(("violations", .array(self.violations.prefix(20).map { .string($0) }))) }
        members += self.extra
        return .object(members)
    }
}

/// Many validators' finality gadgets and a slot-based block producer, in one process, under
/// virtual time; checks safety (no conflicting finalized blocks), monotonic finality and that
/// no honest node signs conflicting votes, and measures finality lag.
public final class FinalityScenario {
    enum Message {
        case block(hash: Hash32, number: UInt64, parent: Hash32)
        case blockRequest(Hash32)
        case finality(FinalityMessage)

        var kind: UInt8 {
            switch self {
            case .block: return 1
            case .blockRequest: return 10
            case .finality(let m):
                switch m {
                case .vote: return 2
                case .commit: return 3
                case .catchUpRequest: return 4
                case .catchUp: return 5
                case .voteRequest: return 6
                case .equivocation: return 7
                }
            }
        }

        var size: Int {
            switch self {
            case .block: return 300
            case .blockRequest: return 40
            case .finality(let m):
                switch m {
                case .vote: return 160
                case .commit(let c): return 80 + 150 * c.precommits.count
                default: return 200
                }
            }
        }
    }

    final class Node {
        let index: Int
        let validator: Int?
        let instance: Int
        let honest: Bool
        let silent: Bool
        let tree: SimBlockTree
        var core: FinalityCore
        var orphans: [Hash32: [(Hash32, UInt64)]] = [:]
        var requested: [Hash32: UInt64] = [:]
        var finalized: VoteTarget
        var tickAt: UInt64 = .max
        var sentCount: UInt64 = 0
        var persisted: VoterState?
        var key: Ed25519.PrivateKey?
        /// Clock offset (ns) of this node.
        var skew: Int64 = 0
        var restarts = 0

        init(index: Int, validator: Int?, instance: Int, honest: Bool, silent: Bool, tree: SimBlockTree, core: FinalityCore) {
            self.index = index
            self.validator = validator
            self.instance = instance
            self.honest = honest
            self.silent = silent
            self.tree = tree
            self.core = core
            self.finalized = tree.genesis
        }
    }

    public let config: FinalityScenarioConfig
    let sim: Simulator
    var nodes: [Node] = []
    var keys: [Ed25519.PrivateKey] = []
    var authorities: [WeightedAuthority] = []
    let signatures = SignatureCache()
    let genesis: Hash32
    // Checkers.
    var finalizedByNumber: [UInt64: Hash32] = [:]
    var honestVotes: [String: VoteTarget] = [:]
    public private(set) var violations: [String] = []
    // Metrics.
    var createdAt: [Hash32: UInt64] = [:]
    var lags: [Double] = []
    var blocksProduced = 0
    var messagesSent = 0
    var messagesDropped = 0
    var equivocations = 0
    var twinView: [Int: [Int: Int]] = [:]
    var groupOf: [Int: Int] = [:]

    public init(config: FinalityScenarioConfig, seed: UInt64) {
        self.config = config
        self.sim = Simulator(seed: seed)
        self.genesis = Hash32.of(Array("tensormesh-sim-genesis".utf8) + [UInt8(truncatingIfNeeded: seed)])
        self.build()
    }

    func build() {
        var rng = self.sim.rng.fork()
        let v = min(self.config.validators, self.config.nodes)
        self.keys = (0..<v).map { _ in try! Ed25519.PrivateKey(seedBytes: rng.bytes(32)) }
        var stakes = (0..<v).map { _ in UInt64.random(in: self.config.stakeRange, using: &rng) }
        // Byzantine validators are the lowest-stake ones, kept below one third of the weight.
        let order = (0..<v).sorted { stakes[$0] < stakes[$1] || (stakes[$0] == stakes[$1] && $0 < $1) }
        var byzantine: Set<Int> = []
        let total = stakes.reduce(0, +)
        var byzWeight: UInt64 = 0
        for i in order.prefix(self.config.byzantine) where (byzWeight + stakes[i]) * 3 < total {
            byzantine.insert(i)
            byzWeight += stakes[i]
        }
        if stakes.isEmpty { stakes = [] }
        self.authorities = (0..<v).map { WeightedAuthority(id: self.keys[$0].publicKey, weight: stakes[$0]) }
        var index = 0
        func add(validator: Int?, instance: Int, honest: Bool, silent: Bool) {
            let tree = SimBlockTree(genesis: self.genesis)
            let key = validator.map { self.keys[$0] }
            let core = FinalityCore(config: self.config.finality, key: key, authorities: self.authorities, setId: 0,
                                    finalized: tree.genesis, persisted: nil, now: .zero, env: tree, signatures: self.signatures)
            let node = Node(index: index, validator: validator, instance: instance, honest: honest, silent: silent, tree: tree, core: core)
            node.key = key
            if self.config.clockSkewMs > 0 {
                let span = self.config.clockSkewMs * 2_000_000
                node.skew = Int64(rng.next() % (span + 1)) - Int64(span / 2)
            }
            self.nodes.append(node)
            index += 1
        }
        for i in 0..<v {
            let byz = byzantine.contains(i)
            if byz && self.config.twins {
                add(validator: i, instance: 0, honest: false, silent: false)
                add(validator: i, instance: 1, honest: false, silent: false)
            } else {
                add(validator: i, instance: 0, honest: !byz, silent: byz && self.config.byzantineMode == .silent)
            }
        }
        for _ in v..<self.config.nodes { add(validator: nil, instance: 0, honest: true, silent: false) }
        // Crash faults: the last honest validators go offline during the configured window.
        let crashed = self.nodes.filter { $0.honest && $0.validator != nil }.suffix(self.config.silentValidators)
        for node in crashed { self.crashed.insert(node.index) }
    }

    var crashed: Set<Int> = []

    /// The node's own clock (skewed), as its gadget sees time.
    func now(_ node: Node) -> UInt64 { UInt64(max(0, Int64(self.sim.now) + node.skew)) }

    /// A time on the node's clock, on the simulator's.
    func global(_ node: Node, _ t: UInt64) -> UInt64 {
        if t == .max { return .max }
        return UInt64(max(Int64(self.sim.now), Int64(t) - node.skew))
    }

    /// Crashed validators come back with only what their disk kept.
    func restartCrashed() {
        for i in self.crashed.sorted() {
            let node = self.nodes[i]
            guard !node.silent else { continue }
            node.restarts += 1
            node.core = FinalityCore(config: self.config.finality, key: node.key, authorities: self.authorities,
                                     setId: node.persisted?.setId ?? 0, finalized: node.finalized,
                                     persisted: self.config.restartLosesVotes ? nil : node.persisted,
                                     now: Instant(nanoseconds: self.now(node)), env: node.tree, signatures: self.signatures)
            node.tickAt = .max
            self.sim.trace(250, UInt64(i), node.persisted?.round ?? 0, 0)
            self.process(node, node.core.start(now: Instant(nanoseconds: self.now(node))))
        }
    }

    func isOffline(_ i: Int) -> Bool {
        guard self.crashed.contains(i) else { return false }
        let t = Double(self.sim.now) / 1e9
        return t >= self.config.silentFrom && t < self.config.silentUntil
    }

    // MARK: Network

    /// Whether `from` can reach `to` now (partitions, and twins' routing before GST).
    func reachable(_ from: Int, _ to: Int) -> Bool {
        let n = self.nodes.count
        if self.config.network.blocked(from, to, nodes: n, at: self.sim.now) { return false }
        if self.config.twins && Double(self.sim.now) < self.config.gstSeconds * 1e9 {
            let fHonest = self.nodes[from].honest
            let tHonest = self.nodes[to].honest
            if fHonest && tHonest {
                // Honest nodes: a random bipartition.
                if let gf = self.groupOf[from], let gt = self.groupOf[to], gf != gt { return false }
            } else {
                // A twin reaches the honest nodes (and they it) that the simulator chose for it
                // in this window; twins of one validator never talk to each other.
                let twin = fHonest ? to : from
                let other = fHonest ? from : to
                if !fHonest && !tHonest { return self.nodes[from].validator != self.nodes[to].validator }
                return self.twinView[twin]?[other] == 1
            }
        }
        return true
    }

    func send(_ m: Message, from: Int, to: Int) {
        if self.isOffline(from) { return }
        let net = self.config.network
        self.messagesSent += 1
        let sender = self.nodes[from]
        sender.sentCount += 1
        self.sim.trace(m.kind, UInt64(from), UInt64(to), sender.sentCount)
        if !self.reachable(from, to) || self.sim.rng.chance(net.loss) {
            self.messagesDropped += 1
            return
        }
        var delay = net.latency
        if net.jitter > 0 { delay += self.sim.rng.next() % (net.jitter + 1) }
        if net.bandwidth > 0 { delay += UInt64(m.size) * 1_000_000_000 / net.bandwidth }
        let copies = self.sim.rng.chance(net.duplication) ? 2 : 1
        for c in 0..<copies {
            self.sim.schedule(after: delay + UInt64(c) * 1_000_000) { [unowned self] in self.deliver(m, from: from, to: to) }
        }
    }

    /// A Byzantine node replays what it observed, later, and sends bit-flipped copies (which
    /// decode but no longer verify, or name other blocks and rounds).
    func attack(with m: FinalityMessage, from i: Int) {
        guard self.sim.rng.chance(0.2) else { return }
        let delay = self.sim.rng.next() % 10_000_000_000
        self.sim.schedule(after: delay) { [unowned self] in self.broadcast(.finality(m), from: i) }
        var bytes = m.encoded
        guard !bytes.isEmpty else { return }
        bytes[Int(self.sim.rng.next() % UInt64(bytes.count))] ^= UInt8(1 + self.sim.rng.next() % 255)
        if let mutated = try? FinalityMessage.decode(bytes) { self.broadcast(.finality(mutated), from: i) }
    }

    func broadcast(_ m: Message, from: Int) {
        for j in self.nodes.indices where j != from { self.send(m, from: from, to: j) }
    }

    // MARK: Events

    func deliver(_ m: Message, from: Int, to: Int) {
        let node = self.nodes[to]
        if node.silent || self.isOffline(to) { return }
        switch m {
        case .block(let hash, let number, let parent):
            if !node.tree.contains(parent) && self.shouldRequest(node, parent) {
                self.send(.blockRequest(parent), from: to, to: from)
            }
            self.receiveBlock(node, hash: hash, number: number, parent: parent)
        case .blockRequest(let hash):
            if let h = node.tree.header(hash) { self.send(.block(hash: hash, number: h.number, parent: h.parent), from: to, to: from) }
        case .finality(let fm):
            if !node.honest && self.config.byzantineMode == .replay { self.attack(with: fm, from: to) }
            // Fetch blocks that votes and commits refer to but we have not seen (sync).
            var wanted: [Hash32] = []
            switch fm {
            case .vote(let v): wanted = [v.target.hash]
            case .commit(let c): wanted = [c.target.hash] + c.precommits.map { $0.target.hash }
            case .catchUp(let c): wanted = (c.prevotes + c.precommits).map { $0.target.hash }
            default: break
            }
            for h in wanted where !node.tree.contains(h) && self.shouldRequest(node, h) {
                self.send(.blockRequest(h), from: to, to: from)
            }
            var (verdict, actions) = node.core.receive(fm, from: from, now: Instant(nanoseconds: self.now(node)))
            // Relay what the gadget checked, as gossip does in the node: a commit goes on to
            // everyone (votes reach all nodes directly in this scenario).
            if verdict == .valid, case .commit = fm { actions.append(.broadcast(fm)) }
            self.process(node, actions)
        }
    }

    /// Requests a missing block again if the last request is older than a second (it or its
    /// answer may have been lost).
    func shouldRequest(_ node: Node, _ hash: Hash32) -> Bool {
        if let t = node.requested[hash], self.sim.now < t + 1_000_000_000 { return false }
        node.requested[hash] = self.sim.now
        return true
    }

    func receiveBlock(_ node: Node, hash: Hash32, number: UInt64, parent: Hash32) {
        guard !node.tree.contains(hash) else { return }
        if !node.tree.contains(parent) {
            node.orphans[parent, default: []].append((hash, number))
            return
        }
        var queue = [(hash, number, parent)]
        while let (h, n, p) = queue.popLast() {
            guard node.tree.add(hash: h, number: n, parent: p) else { continue }
            node.requested[h] = nil
            self.process(node, node.core.blockImported(hash: h, number: n, digest: [], now: Instant(nanoseconds: self.now(node))))
            for (ch, cn) in node.orphans.removeValue(forKey: h) ?? [] { queue.append((ch, cn, h)) }
        }
    }

    func process(_ node: Node, _ actions: [FinalityAction]) {
        for a in actions {
            switch a {
            case .persist(let state):
                node.persisted = state
            case .broadcast(let m):
                if case .vote(let v) = m, node.honest { self.checkHonestVote(v) }
                self.broadcast(.finality(m), from: node.index)
            case .send(let peer, let m):
                if peer >= 0 && peer < self.nodes.count { self.send(.finality(m), from: node.index, to: peer) }
            case .finalize(let target, _):
                self.onFinalized(node, target)
            case .equivocation:
                if node.honest { self.equivocations += 1 }
            case .authoritySetChanged:
                break
            }
        }
        self.scheduleTick(node)
    }

    func scheduleTick(_ node: Node, notBefore: UInt64 = 0) {
        let at = max(notBefore, self.global(node, node.core.nextDeadline(after: Instant(nanoseconds: self.now(node))).nanoseconds))
        guard at < node.tickAt || node.tickAt <= self.sim.now else { return }
        node.tickAt = at
        self.sim.schedule(at: at) { [unowned self, unowned node] in
            guard node.tickAt == at else { return }
            node.tickAt = .max
            if !node.silent && !self.isOffline(node.index) {
                self.process(node, node.core.tick(now: Instant(nanoseconds: self.now(node))))
            } else if !node.silent {
                // Offline: its gadget does not run, and a timer that is already due stays
                // due; look again one gossip period later.
                self.scheduleTick(node, notBefore: self.sim.now + self.config.finality.gossipDuration.nanoseconds)
            }
        }
    }

    // MARK: Checkers

    func checkHonestVote(_ v: SignedVote) {
        let key = "\(v.voter.hex)/\(v.setId)/\(v.round)/\(v.phase.rawValue)"
        if let t = self.honestVotes[key], t != v.target {
            self.violations.append("honest validator \(v.voter.hex.prefix(8)) signed two \(v.phase) votes in round \(v.round)")
        }
        self.honestVotes[key] = v.target
    }

    func onFinalized(_ node: Node, _ target: VoteTarget) {
        guard node.honest else { return }
        if target.number < node.finalized.number || !node.tree.isDescendantPublic(target, of: node.finalized) {
            self.violations.append("node \(node.index) finality moved from \(node.finalized) to \(target)")
        }
        for (n, h) in node.tree.path(from: target, downTo: node.finalized.number) {
            if let existing = self.finalizedByNumber[n], existing != h {
                self.violations.append("conflicting finalized blocks at #\(n): \(existing) and \(h) (node \(node.index))")
            } else {
                self.finalizedByNumber[n] = h
            }
            if let c = self.createdAt[h] { self.lags.append(Double(self.sim.now - c) / 1e6) }
        }
        node.finalized = target
        self.sim.trace(9, UInt64(node.index), target.number)
    }

    // MARK: Run

    func produce(slot: UInt64) {
        let v = self.keys.count
        guard v > 0 else { return }
        let author = Int(slot % UInt64(v))
        for node in self.nodes where node.validator == author && !node.silent && !self.isOffline(node.index) {
            let head = node.tree.head(respecting: node.core.finalized)
            let hash = SimBlockTree.blockHash(parent: head.hash, number: head.number + 1, slot: slot, producer: author, instance: node.instance)
            self.createdAt[hash] = self.createdAt[hash] ?? self.sim.now
            self.blocksProduced += 1
            self.receiveBlock(node, hash: hash, number: head.number + 1, parent: head.hash)
            self.broadcast(.block(hash: hash, number: head.number + 1, parent: head.hash), from: node.index)
        }
    }

    func repartitionTwins() {
        guard self.config.twins, Double(self.sim.now) < self.config.gstSeconds * 1e9 else {
            self.groupOf.removeAll()
            return
        }
        for node in self.nodes where node.honest || node.silent {
            self.groupOf[node.index] = Int(self.sim.rng.next() % 2)
        }
        for twin in self.nodes where !twin.honest && !twin.silent {
            var view: [Int: Int] = [:]
            for node in self.nodes where node.honest { view[node.index] = Int(self.sim.rng.next() % 2) }
            self.twinView[twin.index] = view
        }
        let period = UInt64(self.config.partitionPeriodSeconds * 1e9)
        self.sim.schedule(after: period) { [unowned self] in self.repartitionTwins() }
    }

    /// Runs the scenario and returns its summary.
    public func run(clock: () -> UInt64) -> SimSummary {
        let start = clock()
        let end = UInt64(self.config.seconds * 1e9)
        let slotNs = self.config.slotMs * 1_000_000
        var slot: UInt64 = 1
        while slot * slotNs <= end {
            let s = slot
            self.sim.schedule(at: s * slotNs) { [unowned self] in self.produce(slot: s) }
            slot += 1
        }
        for node in self.nodes where !node.silent {
            self.sim.schedule(at: 0) { [unowned self, unowned node] in self.process(node, node.core.start(now: Instant(nanoseconds: self.now(node)))) }
        }
        if self.config.restartAfterCrash && self.config.silentUntil.isFinite && !self.crashed.isEmpty {
            self.sim.schedule(at: UInt64(self.config.silentUntil * 1e9)) { [unowned self] in self.restartCrashed() }
        }
        self.repartitionTwins()
        self.sim.run(until: end)
        let wall = Double(clock() - start) / 1e9
        // Crashed nodes still offline at the end are not expected to finalize.
        let honestFinal = self.nodes.filter { $0.honest && !self.isOffline($0.index) }.map { $0.finalized.number }
        let pct = Percentiles.of(self.lags, [50, 99])
        var s = SimSummary(scenario: self.config.twins ? "twins" : "finality", nodes: self.nodes.count, seed: self.sim.seed,
                           virtualSeconds: self.config.seconds, traceHash: self.sim.traceHash(),
                           safetyViolations: self.violations.count, violations: self.violations,
                           delivered: nil, latencyP50Ms: self.lags.isEmpty ? nil : pct[0], latencyP99Ms: self.lags.isEmpty ? nil : pct[1],
                           events: self.sim.eventCount, wallSeconds: wall)
        s.extra = [
            ("validators", .int(self.keys.count)),
            ("byzantine", .int(self.nodes.filter { !$0.honest }.map { $0.validator }.compactMap { $0 }.count)),
            ("blocksProduced", .int(self.blocksProduced)),
            ("bestHeight", .int(self.nodes.map { $0.tree.best.number }.max() ?? 0)),
            ("finalizedMin", .int(honestFinal.min() ?? 0)),
            ("finalizedMax", .int(honestFinal.max() ?? 0)),
            ("finalityLagP50Ms", self.lags.isEmpty ? .null : .double(pct[0])),
            ("finalityLagP99Ms", self.lags.isEmpty ? .null : .double(pct[1])),
            ("messages", .int(self.messagesSent)), ("dropped", .int(self.messagesDropped)),
            ("equivocationsDetected", .int(self.equivocations)),
            ("invalidMessages", .int(self.nodes.filter { $0.honest }.map { $0.core.invalidMessages }.reduce(0, +))),
            ("signatureVerifications", .int(self.signatures.verifications)),
            ("rounds", .int(self.nodes.filter { $0.honest }.map { $0.core.round }.max() ?? 0)),
        ]
        if ProcessInfo.processInfo.environment["MESHSIM_DEBUG"] != nil {
            s.extra.append(("nodeStates", .array(self.nodes.map { .string("\($0.index)\($0.honest ? "" : "*") best=\($0.tree.best.number) \($0.core.debugDescription)") })))
        }
        return s
    }
}

extension SimBlockTree {
    /// Whether `d` descends from `a` (for the checkers).
    func isDescendantPublic(_ d: VoteTarget, of a: VoteTarget) -> Bool {
        if d.number < a.number { return false }
        var cursor = d.hash
        var n = d.number
        while n > a.number {
            guard let h = self.header(cursor) else { return false }
            cursor = h.parent
            n -= 1
        }
        return cursor == a.hash
    }
}
