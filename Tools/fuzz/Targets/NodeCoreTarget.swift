import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshGossip
import MeshNodeCore

/// The node core — what the binary and the simulator run — driven by a program of peer
/// events: connections with hostile hellos, every node protocol with valid envelopes around
/// hostile fields (sync ranges, ancestry, block transactions, gossip frames of every topic,
/// finality messages signed or forged), answers to the core's own requests (real blocks of a
/// real chain, mutated), stream ends, time jumps. It must never trap; its tables stay
/// bounded; best and finalized never go back.
enum NodeCoreTarget {
    /// A real chain on `StatefulTargets.chainSpec`: blocks by the slot's author, some with
    /// transactions, and a fork at #3.
    static let chain: (blocks: [Block], fork: [Block]) = {
        let core = try! ChainCore(spec: StatefulTargets.chainSpec, store: MemoryStore())
        let start = StatefulTargets.chainSpec.genesisTimestamp / 1000 + 1
        func produce(_ slot: UInt64, _ txs: [Transaction]) -> Block? {
            for k in Seeds.validators {
                if let b = try? core.produce(slot: slot, timestamp: slot * 1000, key: k, candidates: txs) { return b }
            }
            return nil
        }
        var blocks: [Block] = []
        var slot = start
        while blocks.count < 6 {
            if let b = produce(slot, blocks.count == 2 ? Array(StatefulTargets.poolTransactions.prefix(4)) : []) { blocks.append(b) }
            slot += 1
        }
        // A fork: two blocks on #2, in later slots.
        let forkCore = try! ChainCore(spec: StatefulTargets.chainSpec, store: MemoryStore())
        for b in blocks.prefix(2) { try! forkCore.importBlock(b, now: nil) }
        var fork: [Block] = []
        var fslot = slot + 3
        while fork.count < 2 {
            for k in Seeds.validators where fork.count < 2 {
                if let b = try? forkCore.produce(slot: fslot, timestamp: fslot * 1000, key: k, candidates: []) { fork.append(b) }
            }
            fslot += 1
        }
        return (blocks, fork)
    }()

    /// Votes on the chain's blocks by the real validators (signed once, reused).
    static let votes: [SignedVote] = {
        let blocks = chain.blocks
        var out: [SignedVote] = []
        for (i, b) in blocks.enumerated() {
            for v in 0..<4 {
                out.append(SignedVote(phase: i % 2 == 0 ? .prevote : .precommit, target: VoteTarget(hash: b.hash, number: b.number),
                                      round: UInt64(1 + i / 2), setId: 0, key: Seeds.validators[v]))
            }
        }
        return out
    }()

    /// One signature cache across executions, as the node shares one across all messages.
    static let signatures = SignatureCache(capacity: 1 << 16)

    static let protocols = [ProtocolName.sync, ProtocolName.ancestry, ProtocolName.blockTransactions, ProtocolName.peers,
                            ProtocolName.head, ProtocolName.gossip, ProtocolName.finality, "/evil/1", ""]

    static let target = FuzzTarget("node-core", "the node core: peers, every node protocol with hostile fields, answers to its requests, time") { b in
        var input = FuzzInput(b)
        let spec = StatefulTargets.chainSpec
        var time: UInt64 = 10_000_000_000
        var now: NodeTime { NodeTime(instant: Instant(nanoseconds: time), wallMillis: spec.genesisTimestamp + time / 1_000_000) }
        var config = NodeCoreConfig()
        config.validator = input.bool()
        let key = input.bool() ? Seeds.validators[0] : Seeds.key(30)
        var draws = input
        guard let core = try? NodeCore(config: config, spec: spec, key: key, store: MemoryStore(), now: now,
                                       random: { bound in bound <= 1 ? 0 : draws.u64() % bound }, log: SilentLog(), signatures: signatures) else {
            check(false, "a core does not open on a fresh store")
            return
        }
        core.start(now: now)
        var requests: [(PeerID, RequestID, String)] = []
        var best = core.chain.best.number
        var finalized = core.chain.finalized.number
        func drain() {
            for a in core.drain() {
                if case .request(let p, let rid, let proto, _) = a { requests.append((p, rid, proto)) }
            }
            if requests.count > 64 { requests.removeFirst(requests.count - 64) }
        }
        drain()
        var steps = 0
        while !input.isEmpty && steps < 96 {
            steps += 1
            let peer = PeerID(input.u8() % 6)
            switch input.u8() % 10 {
            case 0:
                let hello = Hello(genesisHash: core.chain.genesisHash.bytes, best: BlockRef(number: input.interesting(), hash: input.fixed(32)),
                                  finalized: BlockRef(number: input.interesting(), hash: input.fixed(32)), roles: NodeRoles(rawValue: input.u8()),
                                  listenPort: input.u16(), agent: "fuzz")
                let host = input.pick(["192.0.2.\(peer)", "10.0.\(input.u8()).1", "::1", "2001:db8::\(peer)", "not a host", ""])
                var info = PeerInfo(nodeId: Seeds.key(40 + UInt8(peer)).publicKey, hello: hello, inbound: input.bool(), remoteHost: host, remotePort: input.u16())
                if input.u8() % 8 == 0 { info.expected = Seeds.key(50).publicKey }
                core.peerConnected(peer, info: info, now: now)
            case 1:
                core.peerDisconnected(peer, now: now)
            case 2, 3, 4:
                let proto = input.pick(protocols)
                let stream = StreamID(input.u8() % 16)
                if input.bool() { core.streamOpened(peer, stream, protocolName: proto) }
                core.received(peer, stream, protocolName: proto, message(for: proto, &input, core: core), now: now)
            case 5:
                guard !requests.isEmpty else { break }
                let (p, rid, proto) = requests[Int(input.u8()) % requests.count]
                core.response(input.u8() % 8 == 0 ? peer : p, rid, answer(to: proto, &input), now: now)
            case 6:
                guard !requests.isEmpty else { break }
                let (p, rid, _) = requests[Int(input.u8()) % requests.count]
                core.requestFailed(p, rid, now: now)
            case 7:
                core.streamEnded(peer, StreamID(input.u8() % 16))
            case 8:
                time = time.addingSaturated(UInt64(input.u16()) * 1_000_000 % 60_000_000_000)
                core.tick(now: now)
            default:
                let address = NodeAddress(nodeId: Seeds.key(40 + input.u8() % 12).publicKey, host: "198.51.100.\(input.u8())", port: input.u16() | 1)
                if input.bool() {
                    core.discovered(address, now: now)
                } else {
                    core.addressObserved(input.fixed(input.bool() ? 4 : 16), reporterIP: input.fixed(4), reporter: address.nodeId)
                }
            }
            drain()
            check(core.chain.best.number >= best, "the best block went back")
            check(core.chain.finalized.number >= finalized, "finality went back")
            best = core.chain.best.number
            finalized = core.chain.finalized.number
            check(core.peers.connected.count <= 6, "more peers than connections")
            for p in core.peers.connected.values { check(p.trackedStreams <= 16, "stream table past the streams opened") }
        }
    }

    /// A message for `proto`: valid envelopes with hostile fields, or raw bytes.
    static func message(for proto: String, _ input: inout FuzzInput, core: NodeCore) -> [UInt8] {
        if input.u8() % 8 == 0 { return input.bytes(max: 256) }
        let blocks = chain.blocks + chain.fork
        switch proto {
        case ProtocolName.sync:
            var w = ByteWriter()
            w.u8(1); w.u64(input.interesting()); w.u64(input.pick([1, 128, 129, 0, input.interesting()]))
            return w.bytes
        case ProtocolName.ancestry:
            let hash = input.bool() ? input.pick(blocks).hash : Hash32(input.fixed(32))
            var w = ByteWriter()
            hash.encode(to: &w); w.u16(input.u16())
            return w.bytes
        case ProtocolName.blockTransactions:
            let block = input.bool() ? input.pick(blocks).hash : core.chain.best.hash
            return BlockTransactionsRequest(block: block, indexes: (0..<Int(input.u8() % 6)).map { _ in UInt32(truncatingIfNeeded: input.interesting()) }).encoded
        case ProtocolName.gossip:
            return gossipFrame(&input, core: core).encoded
        case ProtocolName.finality:
            return finalityMessage(&input).encoded
        default:
            return [input.u8()]
        }
    }

    static func gossipFrame(_ input: inout FuzzInput, core: NodeCore) -> GossipFrame {
        let topic = input.pick([GossipTopic.blocks, GossipTopic.transactions, GossipTopic.finality, "subnet/1", "subnet/70000", "junk"])
        let id = MessageID(bytes: input.fixed(20))
        switch input.u8() % 8 {
        case 0: return .subscribe((0..<Int(input.u8() % 4)).map { _ in input.pick([topic, "t\(input.u8())"]) })
        case 1: return .ihave(topic, (0..<Int(input.u8() % 8)).map { _ in id })
        case 2: return .iwant([MessageID](repeating: id, count: Int(input.u8())))
        case 3: return .idontwant((0..<Int(input.u8() % 8)).map { _ in MessageID(bytes: input.fixed(20)) })
        case 4: return .preamble(topic, id, size: input.u32())
        case 5: return input.bool() ? .graft(topic) : .prune(topic, backoffSeconds: input.u16())
        default:
            let data: [UInt8]
            switch topic {
            case GossipTopic.blocks:
                var compact = CompactBlock(input.pick(chain.blocks + chain.fork))
                switch input.u8() % 6 {
                case 0: compact.header.number = input.interesting()
                case 1: compact.header.slot = input.interesting()
                case 2: compact.header.timestamp = input.interesting()
                case 3: compact.shortIDs = (0..<Int(input.u8() % 8)).map { _ in input.u64() }
                default: break
                }
                data = compact.encoded
            case GossipTopic.transactions:
                data = input.pick(StatefulTargets.poolTransactions).encoded
            case GossipTopic.finality:
                data = finalityMessage(&input).encoded
            default:
                data = input.bytes(max: 128)
            }
            return .message(GossipMessage(topic: topic, data: data))
        }
    }

    static func finalityMessage(_ input: inout FuzzInput) -> FinalityMessage {
        var v = input.pick(votes)
        switch input.u8() % 6 {
        case 0: v.round = input.interesting()  // forged: the signature no longer matches
        case 1: v.setId = input.interesting()
        case 2: v.target.number = input.interesting()
        default: break
        }
        switch input.u8() % 6 {
        case 0:
            let target = v.target
            let pcs = (0..<Int(input.u8() % 5)).map { _ in input.pick(votes) }
            return .commit(Commit(target: target, round: input.pick([1, 2, 3, input.interesting()]), setId: input.pick([0, input.interesting()]),
                                  precommits: pcs, ancestry: []))
        case 1: return .voteRequest(round: input.interesting(), setId: input.pick([0, input.interesting()]))
        case 2: return .catchUpRequest(round: input.interesting(), setId: input.pick([0, input.interesting()]))
        case 3: return .catchUp(CatchUp(round: input.interesting(), setId: 0, prevotes: [input.pick(votes)], precommits: [input.pick(votes)]))
        default: return .vote(v)
        }
    }

    /// An answer to one of the core's requests: the right kind or not, real blocks or not.
    static func answer(to proto: String, _ input: inout FuzzInput) -> [UInt8] {
        if input.u8() % 8 == 0 { return input.bytes(max: 256) }
        let all = chain.blocks + chain.fork
        switch input.u8() % 4 {
        case 0:
            // A run of real blocks (in order, or not), with justifications of any bytes.
            let from = Int(input.u8()) % all.count
            var run = Array(all[from..<min(all.count, from + Int(input.u8() % 4) + 1)])
            if input.u8() % 4 == 0 { run.reverse() }
            return BlocksResponse(blocks: run, justifications: (0..<Int(input.u8() % 2)).map { _ in (input.interesting(), input.bytes(max: 64)) }).encoded
        case 1:
            let entries = (0..<Int(input.u8() % 8)).map { i in
                PeerEntry(nodeId: Seeds.key(60 + UInt8(i)).publicKey, address: input.pick(["198.51.100.\(i):30333", "[2001:db8::\(i)]:1", "evil.example:1", "x"]),
                          bestNumber: input.interesting(), roles: input.u8(), inbound: input.bool())
            }
            return PeerList(peers: entries).encoded
        case 2:
            let b = input.pick(all)
            return BlockTransactionsResponse(block: b.hash, transactions: input.bool() ? b.transactions : [input.pick(StatefulTargets.poolTransactions)]).encoded
        default:
            return BlocksResponse(blocks: [], justifications: []).encoded
        }
    }
}
