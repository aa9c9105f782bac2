import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip
import MeshQuery
import Synchronization

/// Stateful handlers driven by a program the fuzzer writes: each input is a sequence of
/// operations (peers' frames with hostile fields inside valid envelopes, timers, our own
/// sends), run against a fresh core; afterwards every table a peer can fill is within its
/// bound.
enum StatefulTargets {
    static let all: [FuzzTarget] = [handshake, channel, gossipCore, discoveryCore, finalityCore, axon, compactBlock, stateMachine, NodeCoreTarget.target]

    // MARK: Secure channel

    static let handshake = FuzzTarget("handshake", "Noise XX handshake and hello from both roles, bytes split anywhere") { b in
        var input = FuzzInput(b)
        let role: SecureConnection.Role = input.bool() ? .initiator : .responder
        let c = SecureConnection(role: role, identity: Self.handshakeIdentity,
                                 hello: Seeds.hello, ephemeral: Seeds.x25519(41), now: .zero)
        if role == .initiator { try? c.start() }
        var now: UInt64 = 0
        while !input.isEmpty && !c.isClosed {
            now &+= UInt64(input.u8()) * 10_000_000
            do { try c.receive(input.bytes(max: 2048), now: Instant(nanoseconds: now)) } catch { check(c.isClosed, "an error leaves the connection closed") }
            _ = c.takeOutbound()
            _ = c.takeEvents()
            try? c.tick(now: Instant(nanoseconds: now))
        }
    }

    static let attackerIdentity = NodeIdentity(signingKey: Seeds.key(42), noiseStatic: Seeds.x25519(42))
    static let victimIdentity = NodeIdentity(signingKey: Seeds.key(43), noiseStatic: Seeds.x25519(43))
    static let handshakeIdentity = NodeIdentity(signingKey: Seeds.key(40), noiseStatic: Seeds.x25519(40))

    /// Two established ends with swapped keys: the attacker's end seals whatever frames the
    /// input describes, the victim receives them, and the victim's own sends and timers run
    /// in between.
    static let channel = FuzzTarget("channel", "established channel: hostile frames (DATA, WINDOW, RESET, OPEN, PING, unknown) sealed under the session keys",
                                    seeds: { [[1, 2, 0, 5, 47, 116, 47, 120, 3, 1, 0, 7, 7, 0, 0]] }) { b in
        var input = FuzzInput(b)
        var config = ChannelConfig()
        config.maxStreams = 8
        config.streamWindow = 4096
        config.maxReassemblyBytes = 64 << 10
        config.maxMessageSize = 32 << 10
        let k1 = [UInt8](repeating: 1, count: 32), k2 = [UInt8](repeating: 2, count: 32)
        let attacker = SecureConnection.established(role: .initiator, identity: Self.attackerIdentity,
                                                    hello: Seeds.hello, config: config, sendKey: k1, receiveKey: k2, remote: Self.victimIdentity.signingKey.publicKey,
                                                    ephemeral: Seeds.x25519(44), now: .zero)
        let victim = SecureConnection.established(role: .responder, identity: Self.victimIdentity,
                                                  hello: Seeds.hello, config: config, sendKey: k2, receiveKey: k1, remote: Self.attackerIdentity.signingKey.publicKey,
                                                  ephemeral: Seeds.x25519(45), now: .zero)
        var now: UInt64 = 0
        // The attacker's hello goes first unless the input says otherwise.
        if !input.bool() { try? victim.receive(attacker.takeOutbound(), now: Instant(nanoseconds: now)) }
        var ours: [StreamID] = []
        while !input.isEmpty && !victim.isClosed {
            switch input.u8() % 6 {
            case 0, 1, 2:
                // One transport message of frames: kind, stream, body (lengths may lie).
                var w = ByteWriter()
                for _ in 0..<Int(input.u8() % 8 + 1) {
                    w.u8(input.pick([1, 2, 3, 4, 5, 6, 7, 8, input.u8()]))
                    w.varint(input.pick([0, 1, 2, 3, 5, input.interesting()]))
                    let body = input.bytes(max: 600)
                    w.varint(input.bool() ? UInt64(body.count) : input.interesting())
                    w.raw(body)
                }
                if let sealed = attacker.sealTransport(w.bytes) { try? victim.receive(sealed, now: Instant(nanoseconds: now)) }
            case 3:
                // Our own traffic: streams, messages, resets (flow control on both sides).
                if ours.count < 4, let s = try? victim.openStream(protocolName: "/tm/x/1") { ours.append(s) }
                if let s = ours.randomElement(using: &input) { try? victim.send(input.bytes(max: 9000), on: s, finish: input.bool()) }
                if input.bool(), let s = ours.popLast() { victim.reset(stream: s) }
            case 4:
                now &+= input.interesting() % 200_000_000_000
                try? victim.tick(now: Instant(nanoseconds: now))
            default:
                // The attacker reads what we owe it (or not): back-pressure paths.
                if input.bool() { try? attacker.receive(victim.takeOutbound(maxBytes: Int(input.u16()) + 1), now: Instant(nanoseconds: now)) }
            }
            _ = victim.takeEvents()
            check(victim.queuedBytes >= 0 && victim.queuedBytes <= config.maxQueuedBytes, "queued bytes out of range: \(victim.queuedBytes)")
            check(victim.streamCount <= 2 * config.maxStreams, "streams past both sides' limits: \(victim.streamCount)")
            check(victim.controlBacklogBytes <= config.maxControlBytes + 70_000, "control backlog unbounded: \(victim.controlBacklogBytes)")
        }
    }

    // MARK: Gossip

    static let gossipCore = FuzzTarget("gossip-core", "gossip core with six peers: frames, heartbeats, verdicts, churn",
                                       seeds: { Seeds.gossipFrames.map { [0, 0] + $0.encoded } }) { b in
        var input = FuzzInput(b)
        var counter: UInt64 = 7
        var config = GossipConfig()
        config.maxSeen = 512
        config.maxPending = 16
        config.maxPromises = 256
        config.maxIncoming = 16
        config.maxIncomingPerPeer = 4
        config.maxDontWantPerPeer = 64
        config.maxTopicsPerPeer = 16
        let core = GossipCore(config: config, random: { bound in
            counter = counter &* 6364136223846793005 &+ 1442695040888963407
            return (counter >> 33) % max(1, bound)
        })
        core.subscribe("blocks", now: .zero)
        core.subscribe("tx", now: .zero)
        var now: UInt64 = 1_000_000_000
        var connected = Set<Int>()
        for p in 0..<3 {
            core.addPeer(p, outbound: p % 2 == 0)
            connected.insert(p)
        }
        while !input.isEmpty {
            let op = input.u8() % 8
            let p = Int(input.u8() % 6)
            switch op {
            case 0, 1, 2:
                if let f = try? GossipFrame.decode(input.bytes(max: 2048)) { core.receive(f, from: p, now: Instant(nanoseconds: now)) }
            case 3:
                let topic = input.pick(["blocks", "tx", "other"])
                let ids = (0..<Int(input.u8() % 8)).map { _ in MessageID(bytes: input.fixed(20)) }
                core.receive(input.pick([.ihave(topic, ids), .iwant(ids), .idontwant(ids),
                                         .preamble(topic, ids.first ?? MessageID(bytes: input.fixed(20)), size: input.u32()),
                                         .announce(topic, ids.first ?? MessageID(bytes: input.fixed(20)), size: input.u32()),
                                         .graft(topic), .prune(topic, backoffSeconds: input.u16()), .subscribe([topic])]), from: p, now: Instant(nanoseconds: now))
            case 4:
                now &+= UInt64(input.u16()) * 1_000_000
                core.heartbeat(now: Instant(nanoseconds: now))
            case 5:
                if connected.contains(p) {
                    core.removePeer(p, now: Instant(nanoseconds: now))
                    connected.remove(p)
                } else {
                    core.addPeer(p, outbound: input.bool())
                    connected.insert(p)
                }
            case 6:
                core.publish(topic: input.pick(["blocks", "tx"]), data: input.bytes(max: 3000), now: Instant(nanoseconds: now))
            default:
                core.checkPromises(now: Instant(nanoseconds: now))
            }
            for o in core.drain() {
                if case .validate(let m, _) = o, input.bool() {
                    core.validated(m.id, input.pick([.accept, .reject, .ignore]), now: Instant(nanoseconds: now))
                }
            }
            let sizes = core.tableSizes
            check(sizes["seen"]! <= config.maxSeen, "seen \(sizes)")
            check(sizes["pending"]! <= config.maxPending, "pending \(sizes)")
            check(sizes["announcers"]! <= config.maxPromises + config.maxIncoming, "announcers \(sizes)")
            check(sizes["promises"]! <= config.maxPromises, "promises \(sizes)")
            check(sizes["incoming"]! <= config.maxIncoming, "incoming \(sizes)")
            check(sizes["maxTopics"]! <= config.maxTopicsPerPeer, "topics \(sizes)")
            check(sizes["maxDontWant"]! <= config.maxDontWantPerPeer, "IDONTWANT \(sizes)")
            check(sizes["maxBackoff"]! <= 2, "back-off entries only for subscribed topics \(sizes)")
        }
    }

    // MARK: Discovery

    static let discoveryRecords: [NodeRecord] = (50..<58).map { i in
        NodeRecord(key: Seeds.key(UInt8(i)), seq: UInt64(i), ip: [10, 0, 0, UInt8(i)], tcpPort: 30333, udpPort: 30333, roles: 2, genesis: Seeds.genesis.bytes)
    }

    static let discoveryKey = Seeds.key(49)
    static let discoveryRecord = NodeRecord(key: discoveryKey, seq: 1, ip: [10, 0, 0, 49], tcpPort: 30333, udpPort: 30333, roles: 2, genesis: Seeds.genesis.bytes)

    static let discoveryCore = FuzzTarget("discovery-core", "discovery core: raw packets, and decrypted messages from known and unknown nodes",
                                          seeds: { Seeds.discoveryMessages.map { [1, 0] + $0.encoded } }) { b in
        var input = FuzzInput(b)
        var counter: UInt8 = 0
        let me = Self.discoveryKey
        let record = Self.discoveryRecord
        var config = DiscoveryConfig(genesis: Seeds.genesis.bytes)
        config.maxSessions = 8
        config.maxRequests = 32
        let core = DiscoveryCore(key: me, record: record, config: config, random: { n in
            counter &+= 1
            return [UInt8](repeating: counter, count: n)
        })
        var now: UInt64 = 1_000_000_000
        let peers = Self.discoveryRecords
        core.addBootnode(id: peers[0].nodeId, endpoint: peers[0].udpEndpoint!, now: Instant(nanoseconds: now))
        while !input.isEmpty {
            let op = input.u8() % 5
            let peer = input.pick(peers)
            let from = input.bool() ? peer.udpEndpoint! : Endpoint(ip: input.fixed(input.bool() ? 4 : 16), port: input.u16())
            switch op {
            case 0:
                core.receive(input.bytes(max: 1300), from: from, now: Instant(nanoseconds: now))
            case 1:
                if let m = try? DiscoveryMessage.decode(input.bytes(max: 1300)) { core.fuzzHandle(m, from: peer.nodeId, at: from, now: Instant(nanoseconds: now)) }
            case 2:
                let rid = input.interesting()
                let m: DiscoveryMessage = input.pick([
                    .ping(requestId: rid, recordSeq: input.interesting()),
                    .pong(requestId: rid, recordSeq: input.interesting(), observed: from),
                    .findNode(requestId: rid, distances: (0..<Int(input.u8() % 4)).map { _ in input.u16() }),
                    .nodes(requestId: rid, total: input.u8(), records: (0..<Int(input.u8() % 4)).map { _ in input.pick(peers) }),
                ])
                core.fuzzHandle(m, from: peer.nodeId, at: from, now: Instant(nanoseconds: now))
            case 3:
                now &+= UInt64(input.u16()) * 1_000_000
                core.tick(now: Instant(nanoseconds: now))
            default:
                if input.bool() { core.lookup(target: input.pick(peers).nodeId, now: Instant(nanoseconds: now)) } else { core.ping(id: peer.nodeId, endpoint: from, now: Instant(nanoseconds: now)) }
            }
            _ = core.drain()
            check(core.table.count <= 257 * config.k, "table past its buckets")
        }
    }

    // MARK: Finality

    final class Tree: FinalityEnvironment {
        var headers: [Hash32: (number: UInt64, parent: Hash32)] = [:]
        var children: [Hash32: [Hash32]] = [:]
        init(genesis: Hash32) { self.headers[genesis] = (0, .zero) }
        func header(_ hash: Hash32) -> (number: UInt64, parent: Hash32)? { self.headers[hash] }
        func bestChain(containing base: VoteTarget) -> VoteTarget? {
            guard self.headers[base.hash] != nil else { return nil }
            var best = base
            var frontier = [base]
            while let t = frontier.popLast() {
                if t.number > best.number || (t.number == best.number && t.hash < best.hash) { best = t }
                for c in self.children[t.hash] ?? [] { frontier.append(VoteTarget(hash: c, number: t.number + 1)) }
            }
            return best
        }
        func add(parent: Hash32, salt: UInt8) -> VoteTarget? {
            guard let p = self.headers[parent], p.number < 64 else { return nil }
            let h = Hash32.of(parent.bytes + [salt])
            guard self.headers[h] == nil else { return nil }
            self.headers[h] = (p.number + 1, parent)
            self.children[parent, default: []].append(h)
            return VoteTarget(hash: h, number: p.number + 1)
        }
    }

    struct VoteKey: Hashable {
        var phase: VotePhase, target: VoteTarget, round: UInt64, setId: UInt64, voter: AccountID
    }
    /// Votes the finality program signs, memoised across executions (see `SignedMemo`).
    static let votes = SignedMemo<VoteKey, SignedVote>()
    static func vote(_ phase: VotePhase, _ target: VoteTarget, round: UInt64, setId: UInt64, key: Ed25519.PrivateKey) -> SignedVote {
        Self.votes.value(for: VoteKey(phase: phase, target: target, round: round, setId: setId, voter: key.publicKey)) {
            SignedVote(phase: phase, target: target, round: round, setId: setId, key: key)
        }
    }

    /// One signature cache for every execution, as the node shares one across all messages:
    /// the memoised votes are then verified once per process instead of once per execution
    /// (libsodium was 70 % of the target's time). Forged votes are never cached (the cache
    /// remembers only valid signatures), so every forgery is still verified and refused.
    static let finalitySignatures = SignatureCache(capacity: 1 << 16)

    static let finalityCore = FuzzTarget("finality-core", "finality gadget (a voter of four): blocks, votes signed or forged, commits, catch-ups, timers") { b in
        var input = FuzzInput(b)
        let genesis = Seeds.genesis
        let tree = Tree(genesis: genesis)
        let core = FinalityCore(key: Seeds.validators[0], authorities: Seeds.authorities, setId: 0,
                                finalized: VoteTarget(hash: genesis, number: 0), persisted: nil, now: .zero, env: tree, signatures: Self.finalitySignatures)
        var now: UInt64 = 0
        var known = [VoteTarget(hash: genesis, number: 0)]
        var finalized: UInt64 = 0
        _ = core.start(now: .zero)
        func apply(_ actions: [FinalityAction]) {
            for a in actions {
                if case .finalize(let t, _) = a {
                    check(t.number >= finalized, "finality went back from #\(finalized) to #\(t.number)")
                    finalized = t.number
                }
            }
        }
        while !input.isEmpty {
            switch input.u8() % 6 {
            case 0:
                if let t = tree.add(parent: input.pick(known).hash, salt: input.u8()) {
                    known.append(t)
                    apply(core.blockImported(hash: t.hash, number: t.number, digest: [], now: Instant(nanoseconds: now)))
                }
            case 1, 2:
                // A vote from a real voter (signed), or a forgery claiming one.
                var target = input.pick(known)
                if input.u8() % 8 == 0 { target = VoteTarget(hash: Hash32(input.fixed(32)), number: input.interesting()) }
                let round = input.pick([core.round, core.round &+ 1, core.round &- 1, core.round &+ 2, input.interesting()])
                var v = Self.vote(input.pick([.prevote, .precommit, .primaryPropose]), target, round: round,
                                  setId: input.u8() % 8 == 0 ? input.interesting() : 0, key: input.pick(Seeds.validators))
                if input.u8() % 4 == 0 { v.voter = input.pick(Seeds.validators).publicKey }
                apply(core.receive(.vote(v), from: Int(input.u8() % 4), now: Instant(nanoseconds: now)).actions)
            case 3:
                if let m = try? FinalityMessage.decode(input.bytes(max: 4096)) { apply(core.receive(m, from: Int(input.u8() % 4), now: Instant(nanoseconds: now)).actions) }
            case 4:
                let t = input.pick(known)
                let round = input.pick([core.round, core.round &- 1, input.interesting()])
                let voters = Seeds.validators.prefix(Int(input.u8() % 5))
                let pcs = voters.map { Self.vote(.precommit, input.bool() ? t : input.pick(known), round: round, setId: 0, key: $0) }
                // Ancestry headers that prove nothing (they do not link to the tree's blocks).
                let ancestry: [BlockHeader] = (0..<Int(input.u8() % 3)).map { _ in
                    BlockHeader(parentHash: input.pick(known).hash, number: input.interesting(), slot: 0, timestamp: 0, stateRoot: .zero,
                                transactionsRoot: .zero, producer: Seeds.validators[0].publicKey)
                }
                let msg: FinalityMessage = input.bool() ? .commit(Commit(target: t, round: round, setId: 0, precommits: Array(pcs), ancestry: ancestry))
                    : .catchUp(CatchUp(round: round, setId: 0, prevotes: voters.map { Self.vote(.prevote, t, round: round, setId: 0, key: $0) },
                                       precommits: Array(pcs)))
                apply(core.receive(msg, from: Int(input.u8() % 4), now: Instant(nanoseconds: now)).actions)
            default:
                now &+= UInt64(input.u16()) * 1_000_000
                apply(core.tick(now: Instant(nanoseconds: now)))
            }
        }
    }

    // MARK: Query routing

    static let axonCaller = Seeds.key(60)
    static let axonMiner = Seeds.key(61)
    static let axonStranger = Seeds.key(62).publicKey

    struct HeaderKey: Hashable {
        var netuid: UInt16, synapse: String, target: AccountID, nonce: UInt64, deadline: UInt64, body: [UInt8]
    }
    /// Headers the axon program signs, memoised across executions (see `SignedMemo`).
    static let headers = SignedMemo<HeaderKey, QueryRequestHeader>()
    static func signedHeader(netuid: UInt16, synapse: String, target: AccountID, nonce: UInt64, deadline: UInt64, body: [UInt8]) -> QueryRequestHeader {
        Self.headers.value(for: HeaderKey(netuid: netuid, synapse: synapse, target: target, nonce: nonce, deadline: deadline, body: body)) {
            QueryRequestHeader(netuid: netuid, synapse: synapse, caller: axonCaller, target: target, nonce: nonce, deadline: deadline, body: body)
        }
    }

    static let axon = FuzzTarget("axon", "the axon's admission path: headers signed or forged, hostile deadlines, lengths, nonces, rates") { b in
        var input = FuzzInput(b)
        var limits = AxonLimits()
        limits.maxNoncesPerCaller = 64
        var policy = AxonPolicy(served: [axonMiner.publicKey], netuid: 1, synapses: ["Twice"], limits: limits)
        policy.directory[axonCaller.publicKey] = CallerInfo(uid: 0, stake: 1000, validatorPermit: true)
        var now: UInt64 = 1_000_000
        while !input.isEmpty {
            let header: QueryRequestHeader
            if input.u8() % 4 == 0, let h = try? QueryRequestHeader.decode(input.bytes(max: 600)) {
                header = h
            } else {
                var h = Self.signedHeader(netuid: input.pick([1, input.u16()]), synapse: input.pick(["Twice", "Other"]),
                                          target: input.bool() ? axonMiner.publicKey : axonStranger,
                                          nonce: input.interesting(), deadline: input.pick([now + 1000, input.interesting()]), body: input.bytes(max: 64))
                if input.u8() % 4 == 0 { h.bodyLength = input.u32() }
                if input.u8() % 4 == 0 { h.deadline = input.interesting() }  // changed after signing: forged
                header = h
            }
            let channel: AxonPolicy.Channel = input.bool() ? .relayed : .direct(input.bool() ? axonCaller.publicKey : nil)
            if case .admit = policy.screen(header, now: now, channel: channel) {
                check(header.target == axonMiner.publicKey && header.netuid == 1, "admitted a header not addressed to us")
                check(header.deadline.addingSaturated(limits.clockSkewMs) > now, "admitted a header past its deadline")
                switch channel {
                case .relayed: check(header.hasValidSignature, "admitted a relayed header with a bad signature")
                case .direct(let peer): check(header.caller == peer, "admitted a direct header from someone other than the channel's identity")
                }
            }
            now &+= UInt64(input.u16())
        }
    }

    // MARK: Chain

    static let poolTransactions: [Transaction] = (0..<32).map { (i: Int) -> Transaction in
        let to: AccountID = Seeds.key(UInt8(100 + i % 8)).publicKey
        let from: Ed25519.PrivateKey = Seeds.key(UInt8(70 + i % 4))
        return Seeds.transaction(.transfer(to: to, amount: UInt64(i) + 1), nonce: UInt64(i / 4), by: from)
    }

    static let strangerTransaction = Seeds.transaction(.transfer(to: Seeds.key(9).publicKey, amount: 1))

    static let compactBlock = FuzzTarget("compact-block", "compact-block reconstruction from a pool and completion with fetched transactions") { b in
        var input = FuzzInput(b)
        let pool = input.bool() ? Array(poolTransactions.prefix(Int(input.u8() % 33))) : poolTransactions
        var body = (0..<Int(input.u8() % 12)).map { _ in input.pick(poolTransactions) }
        if input.u8() % 4 == 0 { var tx = strangerTransaction; tx.call = .transfer(to: tx.signer, amount: input.u64()); body.append(tx) }  // not in the pool
        var header = Seeds.block.header
        header.transactionsRoot = input.u8() % 8 == 0 ? Hash32(input.fixed(32)) : Block.transactionsRoot(body)
        var compact = CompactBlock(Block(header: header, transactions: body))
        if input.u8() % 4 == 0, let c = try? CompactBlock.decode(input.bytes(max: 2000)) { compact = c }
        if input.u8() % 4 == 0 { compact.shortIDs = (0..<Int(input.u8() % 16)).map { _ in input.u64() } }
        let (partial, result) = compact.reconstruct(from: pool)
        switch result {
        case .complete(let block):
            check(Block.transactionsRoot(block.transactions) == compact.header.transactionsRoot, "a rebuilt body that does not match its root")
        case .missing(let indexes):
            let fetched = (0..<Int(input.u8() % 12)).map { _ in input.pick(poolTransactions + body) }
            let hostile = input.bool() ? indexes.map { _ in input.pick(poolTransactions) } : fetched
            if case .complete(let block) = compact.fill(partial, indexes: input.bool() ? indexes : indexes.shuffled(using: &input), with: hostile).result {
                check(Block.transactionsRoot(block.transactions) == compact.header.transactionsRoot, "a filled body that does not match its root")
            }
        case .rootMismatch:
            break
        }
    }

    static let chainSpec: ChainSpec = {
        var p = ChainParams()
        p.slotDurationMs = 1000
        p.baseFee = 1000
        p.minLockCost = 10 * Token.tao
        var spec = ChainSpec(name: "Fuzz", id: "fuzz", params: p)
        spec.genesisTimestamp = 1_000_000
        spec.sudo = Seeds.key(80).publicKey
        spec.balances = (70..<84).map { (Seeds.key(UInt8($0)).publicKey, 1000 * Token.tao) }
        spec.validators = Seeds.validators.map { ChainSpec.Validator(hotkey: $0.publicKey, coldkey: $0.publicKey, stake: 100 * Token.tao) }
        var sp = SubnetParams()
        _ = sp.set(.tempo, 3)
        _ = sp.set(.weightsRateLimit, 0)
        spec.subnets = [ChainSpec.SubnetSpec(netuid: 1, name: "fuzz", owner: Seeds.key(81).publicKey, ownerHotkey: Seeds.key(82).publicKey, params: sp)]
        return spec
    }()
    static let genesisState = chainSpec.genesisState()

    /// A call with hostile fields (amounts, uids, netuids, delays at the edges).
    static func call(_ input: inout FuzzInput) -> Call {
        let who = accounts[Int(input.u8() % 14)]
        let netuid = input.pick([0, 1, 2, input.u16()])
        switch input.u8() % 21 {
        case 0: return .transfer(to: who, amount: input.interesting())
        case 1: return .createSubnet(ownerHotkey: who, maxLockCost: input.interesting())
        case 2: return .register(netuid: netuid, hotkey: who, maxBurn: input.interesting())
        case 3: return .addStake(hotkey: who, netuid: netuid, amount: input.interesting())
        case 4: return .removeStake(hotkey: who, netuid: netuid, amount: input.interesting())
        case 5:
            let n = Int(input.u8() % 8)
            return .setWeights(netuid: netuid, uids: (0..<n).map { _ in input.u16() % 8 }, values: (0..<n).map { _ in input.u16() }, versionKey: input.interesting())
        case 6: return .sudoSetBalance(account: who, amount: input.interesting())
        case 7: return .sudoForceValidators(validators: (0..<Int(input.u8() % 3)).map { _ in input.pick(Seeds.validators).publicKey }, delay: input.interesting())
        case 8: return .sudoAs(account: who, call: .transfer(to: who, amount: input.interesting()))
        case 9: return .reportEquivocation(evidence: input.bytes(max: 400))
        case 10, 11:
            return .addStakeLimit(hotkey: who, netuid: netuid, amount: input.interesting(), limitPrice: input.interesting(), allowPartial: input.u8() % 2 == 0)
        case 12: return .removeStakeLimit(hotkey: who, netuid: netuid, amount: input.interesting(), limitPrice: input.interesting(), allowPartial: input.u8() % 2 == 0)
        case 13:
            return .moveStake(originHotkey: who, destinationHotkey: accounts[Int(input.u8() % 14)], originNetuid: netuid,
                              destinationNetuid: input.pick([0, 1, 2]), amount: input.interesting())
        case 14:
            return .swapStake(hotkey: who, originNetuid: netuid, destinationNetuid: input.pick([0, 1, 2]), amount: input.interesting(),
                              limitPrice: input.u8() % 2 == 0 ? nil : input.interesting(), allowPartial: input.u8() % 2 == 0)
        case 15: return .startCall(netuid: netuid)
        case 16:
            return .setChildren(hotkey: who, netuid: netuid, children: (0..<Int(input.u8() % 7)).map { _ in
                ChildLink(proportion: input.interesting(), hotkey: accounts[Int(input.u8() % 14)])
            })
        case 17: return .setChildkeyTake(hotkey: who, netuid: netuid, take: input.u16())
        case 18: return input.u8() % 2 == 0 ? .increaseTake(hotkey: who, take: input.u16()) : .decreaseTake(hotkey: who, take: input.u16())
        default:
            if let c = try? Call.decode(input.bytes(max: 400)) { return c }
            return .transfer(to: who, amount: 0)
        }
    }

    static let accounts: [AccountID] = (70..<84).map { Seeds.key(UInt8($0)).publicKey }
    static let signerTemplates: [Transaction] = (0..<14).map { (i: Int) -> Transaction in
        Transaction(signer: Seeds.key(UInt8(70 + i)), nonce: 0, validUntil: 0, fee: 0, call: .transfer(to: Seeds.key(9).publicKey, amount: 0), genesis: Seeds.genesis)
    }
    static let sudoTemplate = Transaction(signer: Seeds.key(80), nonce: 0, validUntil: 0, fee: 0, call: .transfer(to: Seeds.key(9).publicKey, amount: 0), genesis: Seeds.genesis)

    static let stateMachine = FuzzTarget("state-machine", "transactions with hostile calls through the state machine and block building; supply conserved") { b in
        var input = FuzzInput(b)
        var state = genesisState
        let context = ExecutionContext(genesis: Seeds.genesis, checkSignatures: false)
        var number: UInt64 = 1
        var timestamp: UInt64 = chainSpec.genesisTimestamp + 1000
        state.beginBlock(number: number, timestamp: timestamp)
        while !input.isEmpty {
            if input.u8() % 16 == 0 {
                _ = state.endBlock()
                number += 1
                timestamp += 1000 * UInt64(input.u8() % 4 + 1)
                state.beginBlock(number: number, timestamp: timestamp)
                continue
            }
            let sudo = input.u8() % 8 == 0
            // Signatures are off in this context, so one signed template per signer stands in
            // for signing every transaction (Ed25519 would dominate the run).
            var tx = sudo ? sudoTemplate : signerTemplates[Int(input.u8() % 14)]
            let nonce = input.u8() % 8 == 0 ? input.interesting() : state.nonce(tx.signer)
            let fee = input.u8() % 8 == 0 ? input.interesting() : chainSpec.params.baseFee
            tx.nonce = nonce
            tx.validUntil = input.pick([number + 10, input.interesting()])
            tx.fee = fee
            tx.call = Self.call(&input)
            _ = try? state.apply(tx, at: number, producer: Seeds.validators[0].publicKey, context: context)
            check(state.totalIssuance >= state.totalBurned && state.totalIssuance - state.totalBurned == state.accountedSupply,
                  "supply not conserved: issued \(state.totalIssuance) burned \(state.totalBurned) accounted \(state.accountedSupply)")
            for id in state.subnets.keys {
                check(state.accountedAlpha(id) == state.subnets[id]!.pool.alphaOut,
                      "alpha not conserved on subnet \(id): accounted \(state.accountedAlpha(id)), outstanding \(state.subnets[id]!.pool.alphaOut)")
            }
        }
        var copy = state
        let root = copy.stateRoot()
        var decoded = try? ChainState.decode(copy.encoded)
        check(decoded?.stateRoot() == root, "a state that does not survive its snapshot")
    }
}

extension FuzzInput: RandomNumberGenerator {
    /// Lets the input drive `shuffled`, `randomElement` and friends deterministically; past
    /// the end of the input a counter keeps it from repeating (rejection sampling on a
    /// constant would never end).
    public mutating func next() -> UInt64 {
        self.draws &+= 0x9E37_79B9_7F4A_7C15
        var z = self.draws
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return self.u64() ^ z ^ (z >> 31)
    }
}

/// Signed envelopes a fuzz program builds from fuzzer-chosen fields, remembered across
/// executions: Ed25519 signatures are deterministic, so a remembered envelope is byte for
/// byte the one the run would sign, and the run's time goes to the code under test (which
/// still verifies every signature) instead of to signing. Forgotten wholesale at 2^16 entries.
final class SignedMemo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let table = Mutex<[Key: Value]>([:])

    func value(for key: Key, sign: () -> Value) -> Value {
        if let v = self.table.withLock({ $0[key] }) { return v }
        let v = sign()
        self.table.withLock { m in
            if m.count >= 1 << 16 { m.removeAll(keepingCapacity: true) }
            m[key] = v
        }
        return v
    }
}
