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

/// Decoders of everything a peer sends: each must refuse garbage with a typed error, and what
/// it accepts must survive a round trip (decode ∘ encode is the identity), or two nodes could
/// read one message two ways.
enum DecoderTargets {
    static func roundTrip<T: BinaryCodable & Equatable>(_ type: T.Type, _ bytes: [UInt8]) {
        guard let v = try? T.decode(bytes) else { return }
        let again = try? T.decode(v.encoded)
        check(again == v, "\(T.self) does not survive a round trip")
    }

    static let all: [FuzzTarget] = [
        FuzzTarget("hello", "the hello every peer sends first (secure channel)", seeds: { [Seeds.hello.encoded] }) { b in
            roundTrip(Hello.self, b)
        },
        FuzzTarget("gossip-frame", "gossip frames: SUBSCRIBE … ANNOUNCE (docs/gossip.md)", seeds: { Seeds.gossipFrames.map(\.encoded) }) { b in
            guard let f = try? GossipFrame.decode(b) else { return }
            check((try? GossipFrame.decode(f.encoded)) == f, "GossipFrame round trip")
        },
        FuzzTarget("finality-message", "votes, commits, catch-ups, requests and evidence", seeds: { Seeds.finalityMessages.map(\.encoded) }) { b in
            roundTrip(FinalityMessage.self, b)
        },
        FuzzTarget("discovery-packet", "discovery packets, messages and signed node records", seeds: { Seeds.discoveryMessages.map(\.encoded) + [Seeds.record.encoded] }) { b in
            if let m = try? DiscoveryMessage.decode(b) { check((try? DiscoveryMessage.decode(m.encoded)) == m, "DiscoveryMessage round trip") }
            if let r = try? NodeRecord.decode(b) {
                check((try? NodeRecord.decode(r.encoded)) == r, "NodeRecord round trip")
                _ = r.hasValidSignature
            }
        },
        FuzzTarget("node-protocols", "every node stream protocol: sync, ancestry, peers, head, block transactions", seeds: { Seeds.nodeProtocols }) { b in
            var input = FuzzInput(b)
            let kind = input.u8() % 7
            let body = input.rest()
            switch kind {
            case 0: roundTrip(BlocksRequest.self, body)
            case 1: roundTrip(AncestryRequest.self, body)
            case 2: roundTrip(BlocksResponse.self, body)
            case 3: roundTrip(PeerList.self, body)
            case 4: roundTrip(HeadInfo.self, body)
            case 5: roundTrip(BlockTransactionsRequest.self, body)
            default: roundTrip(BlockTransactionsResponse.self, body)
            }
        },
        FuzzTarget("chain-codec", "blocks, transactions, calls, compact blocks and subnet messages", seeds: { Seeds.chainCodec }) { b in
            var input = FuzzInput(b)
            let kind = input.u8() % 5
            let body = input.rest()
            switch kind {
            case 0: roundTrip(Block.self, body)
            case 1: roundTrip(Transaction.self, body)
            case 2: roundTrip(Call.self, body)
            case 3: roundTrip(CompactBlock.self, body)
            default: roundTrip(SubnetGossipMessage.self, body)
            }
        },
        FuzzTarget("query-messages", "query request headers and response frames (axon/dendrite)", seeds: { Seeds.queryMessages }) { b in
            roundTrip(QueryRequestHeader.self, b)
            if let f = try? QueryResponseFrame.decode(b) { check((try? QueryResponseFrame.decode(f.encoded)) == f, "QueryResponseFrame round trip") }
        },
    ]
}
