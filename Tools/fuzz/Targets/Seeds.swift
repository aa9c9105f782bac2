import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip
import MeshNode
import MeshNodeCore
import MeshQuery

/// Fixed keys and valid messages: the seed corpora, and the honest parties stateful targets
/// talk to. Deterministic, so a crash replays exactly.
enum Seeds {
    static func key(_ i: UInt8) -> Ed25519.PrivateKey { try! Ed25519.PrivateKey(seedBytes: [UInt8](repeating: i, count: 32)) }
    static func x25519(_ i: UInt8) -> X25519.PrivateKey { try! X25519.PrivateKey(secretBytes: [UInt8](repeating: i &+ 100, count: 32)) }

    static let genesis = Hash32([UInt8](repeating: 0x6e, count: 32))
    static let validators: [Ed25519.PrivateKey] = (1...4).map { key($0) }
    static var authorities: [WeightedAuthority] { validators.map { WeightedAuthority(id: $0.publicKey, weight: 100) } }

    static var hello: Hello {
        Hello(genesisHash: genesis.bytes, best: BlockRef(number: 7, hash: [UInt8](repeating: 1, count: 32)),
              finalized: BlockRef(number: 5, hash: [UInt8](repeating: 2, count: 32)), roles: .full, listenPort: 30333, agent: "seed/1")
    }

    static var gossipFrames: [GossipFrame] {
        let id = MessageID(topic: "blocks", data: [1, 2, 3])
        return [.subscribe(["blocks", "tx"]), .unsubscribe(["tx"]), .graft("blocks"), .prune("blocks", backoffSeconds: 60),
                .ihave("blocks", [id]), .iwant([id]), .idontwant([id]), .preamble("blocks", id, size: 2048),
                .message(GossipMessage(topic: "blocks", data: [1, 2, 3])), .announce("blocks", id, size: 4096)]
    }

    static func vote(_ phase: VotePhase, round: UInt64, by v: Int, target: VoteTarget) -> SignedVote {
        SignedVote(phase: phase, target: target, round: round, setId: 0, key: validators[v])
    }

    static var finalityMessages: [FinalityMessage] {
        let t = VoteTarget(hash: Hash32([UInt8](repeating: 3, count: 32)), number: 3)
        let pc = (0..<3).map { vote(.precommit, round: 1, by: $0, target: t) }
        let other = vote(.precommit, round: 1, by: 0, target: VoteTarget(hash: Hash32([UInt8](repeating: 4, count: 32)), number: 3))
        return [.vote(vote(.prevote, round: 1, by: 0, target: t)), .commit(Commit(target: t, round: 1, setId: 0, precommits: pc, ancestry: [])),
                .catchUpRequest(round: 1, setId: 0), .voteRequest(round: 1, setId: 0),
                .catchUp(CatchUp(round: 1, setId: 0, prevotes: [], precommits: pc)),
                .equivocation(Equivocation(first: pc[0], second: other))]
    }

    static var record: NodeRecord {
        NodeRecord(key: key(9), seq: 3, ip: [10, 0, 0, 9], tcpPort: 30333, udpPort: 30333, roles: 2, genesis: genesis.bytes)
    }

    static var discoveryMessages: [DiscoveryMessage] {
        [.ping(requestId: 1, recordSeq: 3), .pong(requestId: 1, recordSeq: 3, observed: Endpoint(ip: [10, 0, 0, 1], port: 9)),
         .findNode(requestId: 2, distances: [0, 255, 256]), .nodes(requestId: 2, total: 1, records: [record])]
    }

    static func transaction(_ call: Call, nonce: UInt64 = 0, by k: Ed25519.PrivateKey = key(20)) -> Transaction {
        Transaction(signer: k, nonce: nonce, validUntil: 1000, fee: 100_000, call: call, genesis: genesis)
    }

    static let block: Block = {
        var h = BlockHeader(parentHash: genesis, number: 1, slot: 5, timestamp: 10_000, stateRoot: genesis, transactionsRoot: genesis,
                            producer: validators[0].publicKey)
        let txs = [transaction(.transfer(to: key(21).publicKey, amount: 5))]
        h.transactionsRoot = Block.transactionsRoot(txs)
        h.sign(with: validators[0])
        return Block(header: h, transactions: txs)
    }()

    static var nodeProtocols: [[UInt8]] {
        let b = block
        return [[0] + BlocksRequest(from: 1, count: 16).encoded, [1] + AncestryRequest(hash: b.hash, count: 8).encoded,
                [2] + BlocksResponse(blocks: [b], justifications: [(1, [1, 2])]).encoded,
                [3] + PeerList(peers: [PeerEntry(nodeId: key(9).publicKey, address: "10.0.0.9:30333", bestNumber: 3, roles: 2, inbound: false)]).encoded,
                [4] + HeadInfo(best: ChainPointer(number: 1, hash: b.hash), finalized: ChainPointer(number: 0, hash: genesis), round: 2, setId: 0).encoded,
                [5] + BlockTransactionsRequest(block: b.hash, indexes: [0]).encoded,
                [6] + BlockTransactionsResponse(block: b.hash, transactions: b.transactions).encoded]
    }

    static var chainCodec: [[UInt8]] {
        let b = block
        return [[0] + b.encoded, [1] + b.transactions[0].encoded, [2] + Call.addStake(hotkey: key(22).publicKey, netuid: 1, amount: 9).encoded,
                [3] + CompactBlock(b).encoded,
                [4] + SubnetGossipMessage(netuid: 1, key: key(23), timestamp: 1, payload: [1, 2], genesis: genesis).encoded]
    }

    static var queryMessages: [[UInt8]] {
        [QueryRequestHeader(netuid: 1, synapse: "Twice", caller: key(30), target: key(31).publicKey, nonce: 1, deadline: 5000, body: [1]).encoded,
         QueryResponseFrame.chunk([1, 2, 3]).encoded]
    }
}
