import Foundation
import MeshChain
import MeshClient
import MeshCrypto
import MeshQuery
import MeshSockets
import Synchronization

/// A subnet validator: each step it samples miners, queries them through a dendrite, scores
/// the answers, keeps a moving average per miner, and sets (or commits and later reveals)
/// weights whenever the chain's rate limit allows.
///
///     let v = try await SubnetValidator(context, stake: 100 * Token.tao)
///     try await v.run { step in Twice(x: step) } score: { request, results in
///         results.map { $0.response?.y == request.x * 2 ? 1 : 0 }
///     }
public final class SubnetValidator: @unchecked Sendable {
    // Safety: the mutable state (book, pending commit, cached metagraph) is touched only by
    // the task running `run`/`step`, one step at a time.
    public let context: SubnetContext
    public let dendrite: Dendrite
    let loop: EventLoop
    public var sampleSize: Int
    /// Per-query deadline, seconds.
    public var timeout: Double
    public private(set) var book: ScoreBook
    public private(set) var metagraph: Metagraph?
    public private(set) var weightsSet = 0
    /// How many times the run loop read the metagraph (at start, then on the node's reports).
    public private(set) var metagraphReads = 0
    var pendingReveal: ValidatorState.PendingReveal?
    let stake: Rao
    /// Where the state is kept across restarts (nil: in memory only).
    public let statePath: String?

    /// - Parameters:
    ///   - alpha: the weight of a round in the moving averages.
    ///   - averaging: how round scores are averaged (``ScoreBook/Averaging``).
    ///   - statePath: a file to keep the moving averages and a pending weight commit in; what
    ///     it holds for this subnet and hotkey is restored now (moving averages kept another
    ///     way than `averaging` are not: they start over).
    public init(_ context: SubnetContext, stake: Rao = 0, sampleSize: Int = 32, timeout: Double = 6, alpha: Double = 0.1,
                averaging: ScoreBook.Averaging = .arithmetic, statePath: String? = nil) async throws {
        self.context = context
        self.sampleSize = sampleSize
        self.timeout = timeout
        self.book = ScoreBook(alpha: alpha, averaging: averaging)
        self.stake = stake
        self.statePath = statePath
        if let statePath, let saved = ValidatorState.load(from: statePath, netuid: context.netuid, hotkey: context.hotkey.publicKey.hex) {
            if saved.book.averaging == averaging {
                self.book = saved.book
                self.book.alpha = alpha
            } else {
                context.log("the moving averages in \(statePath) are kept another way (\(saved.book.averaging)); they start over")
            }
            self.pendingReveal = saved.pendingReveal
            self.weightsSet = saved.weightsSet
            context.log("restored \(self.book.scores.count) moving averages\(saved.pendingReveal == nil ? "" : " and a pending weight commit") from \(statePath)")
        }
        try await context.waitForChain()
        let genesis = try await context.genesis()
        self.loop = try EventLoop(name: "tensormesh.validator")
        self.dendrite = Dendrite(hotkey: context.hotkey, genesisHash: genesis, loop: self.loop)
    }

    /// The miners worth querying: neurons other than us with a reachable axon.
    public func miners() -> [Metagraph.Neuron] {
        (self.metagraph?.neurons ?? []).filter { $0.hotkey != self.context.hotkey.publicKey && $0.axon?.nodeId != nil && ($0.axon?.port ?? 0) != 0 }
    }

    /// Queries `uids` (default: a random sample) with one synapse and one deadline.
    public func query<S: Synapse>(_ synapse: S, uids: [UInt16]? = nil) async -> [SynapseResult<S.Response>] {
        let all = self.miners()
        let chosen: [Metagraph.Neuron]
        if let uids {
            let set = Set(uids)
            chosen = all.filter { set.contains($0.uid) }
        } else {
            chosen = Array(all.shuffled().prefix(max(0, self.sampleSize))).sorted { $0.uid < $1.uid }
        }
        guard let body = try? synapse.encodeRequest() else { return [] }
        let (targets, endpoints) = Self.endpoints(chosen)
        let results = await self.dendrite.query(endpoints, netuid: self.context.netuid, synapse: S.name, body: body, timeout: self.timeout)
        return zip(targets, results).map { n, r in
            var response: S.Response?
            var failure = r.failure
            var status = r.status
            if r.isSuccess {
                do { response = try S.decodeResponse(r.body) } catch {
                    failure = .badResponse("undecodable \(S.name) response")
                    status = .badResponse
                }
            }
            return SynapseResult(uid: n.uid, response: response, status: status, failure: failure, latencyMs: r.latencyMs, receipt: r.receipt)
        }
    }

    /// Queries one miner with a streaming synapse: `onItem` gets each value as its chunk
    /// arrives (before the miner's signed trailer covers the whole stream, so treat items as
    /// provisional until the result says `.ok`); the result holds every item in order.
    public func queryStream<S: StreamingSynapse>(_ synapse: S, uid: UInt16,
                                                 onItem: @escaping @Sendable (S.Response) -> Void = { _ in }) async -> SynapseResult<[S.Response]> {
        let (targets, endpoints) = Self.endpoints(self.miners().filter { $0.uid == uid })
        guard let n = targets.first, let e = endpoints.first, let body = try? synapse.encodeRequest() else {
            return SynapseResult(uid: uid, response: nil, status: .notFound, failure: .unreachable("uid \(uid) has no reachable axon"), latencyMs: 0)
        }
        let items = Mutex<(values: [S.Response], undecodable: Bool)>(([], false))
        let r = await self.dendrite.call(e, netuid: self.context.netuid, synapse: S.name, body: body, timeout: self.timeout) { chunk in
            guard let v = try? S.decodeResponse(chunk) else {
                items.withLock { $0.undecodable = true }
                return
            }
            items.withLock { $0.values.append(v) }
            onItem(v)
        }
        let (values, bad) = items.withLock { ($0.values, $0.undecodable) }
        guard r.isSuccess else { return SynapseResult(uid: n.uid, response: nil, status: r.status, failure: r.failure, latencyMs: r.latencyMs, receipt: r.receipt) }
        guard !bad else {
            return SynapseResult(uid: n.uid, response: nil, status: .badResponse, failure: .badResponse("undecodable \(S.name) chunk"),
                                 latencyMs: r.latencyMs, receipt: r.receipt)
        }
        return SynapseResult(uid: n.uid, response: values, status: .ok, failure: nil, latencyMs: r.latencyMs, receipt: r.receipt)
    }

    /// The dialable endpoints of `neurons` (those with a node id and a numeric address).
    static func endpoints(_ neurons: [Metagraph.Neuron]) -> ([Metagraph.Neuron], [AxonEndpoint]) {
        var endpoints: [AxonEndpoint] = []
        var targets: [Metagraph.Neuron] = []
        for n in neurons {
            guard let a = n.axon, let id = a.nodeId, let addr = SocketAddress(numericHost: a.host, port: a.port) else { continue }
            endpoints.append(AxonEndpoint(hotkey: n.hotkey, nodeId: id, address: addr))
            targets.append(n)
        }
        return (targets, endpoints)
    }

    /// Saves the state when a file was given (a failure is logged, not fatal).
    func persist() {
        guard let path = self.statePath else { return }
        let state = ValidatorState(netuid: self.context.netuid, hotkey: self.context.hotkey.publicKey.hex, book: self.book,
                                   pendingReveal: self.pendingReveal, weightsSet: self.weightsSet)
        do { try state.save(to: path) } catch { self.context.log("cannot save the validator state to \(path): \(error)") }
    }

    /// Registers, stakes, then runs `step` every `stepSeconds` until cancelled. `step` returns
    /// scores in [0, 1] for the uids it judged (it may judge earlier queries, e.g. once ground
    /// truth is known); the validator folds them into its moving averages and sets weights.
    ///
    /// The chain is followed through the node's subscriptions (``ChainWatcher``): the metagraph
    /// is read again when the node reports a change, and weights are considered when the head
    /// reaches the block the chain's rate limit allows (or an epoch ran, for a commit waiting
    /// for its reveal), not by asking the node every step. Where subscriptions cannot be used
    /// (an `https://` RPC URL) both are read again every step.
    public func run(stepSeconds: Double = 5, _ step: @escaping @Sendable (Int, SubnetValidator) async throws -> [UInt16: Double]) async throws {
        try await self.context.ensureRegistered()
        if self.stake > 0 { try await self.context.ensureStake(self.stake) }
        try await self.context.ensureHotkeyFees()
        let feed = ChainFeed()
        let watcher = self.context.watcher(pollSeconds: max(stepSeconds, 1))
        await withDiscardingTaskGroup { group in
            group.addTask { await watcher.run { feed.merge($0) } }
            await self.steps(stepSeconds: stepSeconds, feed: feed, step)
            group.cancelAll()
        }
        self.dendrite.close()
        self.loop.shutdown()
    }

    /// What the chain watcher reported since the last step.
    final class ChainFeed: Sendable {
        let pending = Mutex(ChainWatcher.Update())
        func merge(_ u: ChainWatcher.Update) { self.pending.withLock { $0.merge(u) } }
        func take() -> ChainWatcher.Update { self.pending.withLock { p in defer { p = ChainWatcher.Update() }; return p } }
    }

    func steps(stepSeconds: Double, feed: ChainFeed, _ step: @escaping @Sendable (Int, SubnetValidator) async throws -> [UInt16: Double]) async {
        let netuid = self.context.netuid
        var n = 0
        var head: UInt64 = 0
        var nextWeightsCheck: UInt64?
        while !Task.isCancelled {
            let started = Date()
            let update = feed.take()
            if let h = update.head { head = max(head, h) }
            do {
                if update.touches(netuid) || self.metagraph == nil {
                    try await self.refreshMetagraph()
                    self.metagraphReads += 1
                }
                let scores = try await step(n, self)
                self.fold(scores)
                if !scores.isEmpty { self.persist() }
                if n % 10 == 0 {
                    let shown = self.book.scores.sorted { $0.key < $1.key }.map { "\($0.key):\(String(format: "%.3f", $0.value))" }.joined(separator: " ")
                    self.context.log("step \(n): \(self.miners().count) miners, \(scores.count) scored this step; moving averages \(shown)")
                }
                let due = update.resync || (self.pendingReveal != nil ? update.epochRun.contains(netuid) : head >= (nextWeightsCheck ?? 0))
                if due { nextWeightsCheck = try await self.maybeSetWeights() }
            } catch {
                self.context.log("step \(n) failed: \(error)")
                // Read the chain again at the next step.
                feed.merge(ChainWatcher.Update(resync: true))
            }
            n += 1
            let wait = stepSeconds - Date().timeIntervalSince(started)
            if wait > 0 { try? await Task.sleep(nanoseconds: sleepNanos(seconds: wait)) }
        }
    }

    /// The simple form: one synapse per step to a sample of miners, each answer scored.
    public func run<S: Synapse>(stepSeconds: Double = 5, request: @escaping @Sendable (Int) -> S,
                                score: @escaping @Sendable (S, [SynapseResult<S.Response>]) -> [Double]) async throws {
        try await self.run(stepSeconds: stepSeconds) { step, v in
            let req = request(step)
            let results = await v.query(req)
            let s = score(req, results)
            var out: [UInt16: Double] = [:]
            for (r, x) in zip(results, s) { out[r.uid] = x }
            return out
        }
    }

    public func refreshMetagraph() async throws {
        let mg = try await self.context.metagraph()
        self.metagraph = mg
        self.book.prune(n: mg.neurons.count, hotkeys: mg.neurons.map { $0.hotkey.bytes })
    }

    func fold(_ scores: [UInt16: Double]) {
        guard let mg = self.metagraph else { return }
        for (uid, s) in scores where Int(uid) < mg.neurons.count {
            self.book.update(uid: uid, hotkey: mg.neurons[Int(uid)].hotkey.bytes, score: s)
        }
    }

    /// Sets weights when the rate limit allows (commit-reveal when the subnet requires it).
    /// Returns the block from which another call is worth making: the next block the rate
    /// limit allows, `UInt64.max` while a commit waits for its epoch (call again when one has
    /// run), nil when it cannot tell (not registered yet).
    @discardableResult
    public func maybeSetWeights() async throws -> UInt64? {
        guard let mg = self.metagraph, let me = mg.uid(of: self.context.hotkey.publicKey) else { return nil }
        let netuid = self.context.netuid
        let hot = self.context.hotkey.publicKey
        let (next, head, subnet) = try await self.context.rpc { c in
            (try c.nextWeightsBlock(netuid: netuid, hotkey: hot), try c.head(), try c.subnet(netuid: netuid))
        }
        guard let subnet else { return nil }
        let hp = subnet.hyperparameters
        let rateLimit = max(1, hp["weights_rate_limit"] ?? 1)
        let version = hp["weights_version_key"] ?? 0
        // A pending reveal goes first, once its epoch has passed.
        if let p = self.pendingReveal {
            if subnet.epochs > p.epoch {
                self.pendingReveal = nil
                self.persist()
                try await self.context.submit(.revealWeights(netuid: netuid, uids: p.uids, values: p.values, salt: p.salt, versionKey: version), signer: self.context.hotkey)
                self.weightsSet += 1
                self.persist()
                self.context.log("revealed weights for \(p.uids.count) miners")
                return head
            }
            return UInt64.max
        }
        guard let next else { return nil }
        guard head >= next else { return next }
        let minWeights = hp["min_allowed_weights"] ?? 1
        guard let minAllowed = Int(exactly: minWeights) else { throw SubnetError("the node reports min_allowed_weights = \(minWeights), out of range") }
        let (uids, values) = self.book.weights(n: mg.neurons.count, maxWeightsLimit: hp["max_weights_limit"] ?? 65535,
                                              minAllowedWeights: minAllowed, exclude: me)
        guard !uids.isEmpty else { return head &+ 1 }
        if (hp["commit_reveal_enabled"] ?? 0) != 0 {
            let salt = (0..<8).map { _ in UInt8.random(in: 0...255) }
            let hash = ChainState.commitHash(hotkey: hot, netuid: netuid, uids: uids, values: values, salt: salt, versionKey: version)
            try await self.context.submit(.commitWeights(netuid: netuid, commitHash: hash), signer: self.context.hotkey)
            self.pendingReveal = ValidatorState.PendingReveal(uids: uids, values: values, salt: salt, epoch: subnet.epochs)
            self.persist()
            self.context.log("committed weights for \(uids.count) miners")
            return UInt64.max
        } else {
            try await self.context.submit(.setWeights(netuid: netuid, uids: uids, values: values, versionKey: version), signer: self.context.hotkey)
            self.weightsSet += 1
            self.persist()
            let shown = zip(uids, values).map { "\($0):\($1)" }.joined(separator: " ")
            self.context.log("set weights \(shown)")
            return head.addingReportingOverflow(rateLimit).overflow ? UInt64.max : head + rateLimit
        }
    }
}
