import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshGossip
@testable import MeshNodeCore
import MeshTestSupport
import Testing

/// A node core on a small chain with its clock in the test's hands: events in, actions out.
final class CoreHarness {
    static let genesisTime: UInt64 = 1_700_000_000_000
    let keys: [Ed25519.PrivateKey]
    let spec: ChainSpec
    let core: NodeCore
    var time: UInt64 = 0  // ns since genesis

    /// `validators` keys; the core runs the first one's key (a validator when `validator`).
    init(validators: Int = 1, validator: Bool = true, seed: UInt64 = 1, peers: PeerManagerConfig = PeerManagerConfig(),
         configure: (inout NodeCoreConfig) -> Void = { _ in }) throws {
        var rng = SeededRNG(seed: seed)
        self.keys = (0..<validators).map { _ in try! Ed25519.PrivateKey(seedBytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        var p = ChainParams()
        p.slotDurationMs = 1000
        var spec = ChainSpec(name: "Core test", id: "core", params: p)
        spec.genesisTimestamp = Self.genesisTime
        spec.validators = self.keys.map { ChainSpec.Validator(hotkey: $0.publicKey, coldkey: $0.publicKey, stake: 100 * Token.tao) }
        self.spec = spec
        var c = NodeCoreConfig()
        c.validator = validator
        c.peers = peers
        configure(&c)
        var r = SeededRNG(seed: seed &+ 99)
        self.core = try NodeCore(config: c, spec: spec, key: self.keys[0], store: MemoryStore(), now: NodeTime(instant: .zero, wallMillis: Self.genesisTime),
                                 random: { bound in bound <= 1 ? 0 : r.next() % bound }, log: SilentLog())
    }

    var now: NodeTime { NodeTime(instant: Instant(nanoseconds: self.time), wallMillis: Self.genesisTime + self.time / 1_000_000) }

    /// Moves the clock on by `seconds`, firing the core's timer at each deadline on the way,
    /// as a driver does.
    func advance(_ seconds: Double) {
        let end = self.time + UInt64(seconds * 1e9)
        while true {
            let at = self.core.nextDeadline(after: self.now).nanoseconds
            if at > end { break }
            self.time = max(self.time, at)
            self.core.tick(now: self.now)
        }
        self.time = end
    }

    /// Runs what is due now.
    func tickUntilNow() { self.core.tick(now: self.now) }

    func hello(best: UInt64, bestHash: [UInt8] = [UInt8](repeating: 7, count: 32)) -> Hello {
        Hello(genesisHash: self.core.chain.genesisHash.bytes, best: BlockRef(number: best, hash: bestHash),
              finalized: BlockRef(number: 0, hash: self.core.chain.genesisHash.bytes), roles: .full, listenPort: 30333, agent: "test")
    }

    static func peerKey(_ i: UInt8) -> AccountID { try! Ed25519.PrivateKey(seedBytes: [UInt8](repeating: i, count: 32)).publicKey }

    func info(_ i: UInt8, best: UInt64 = 0, inbound: Bool = true, host: String? = nil) -> PeerInfo {
        PeerInfo(nodeId: Self.peerKey(i), hello: self.hello(best: best), inbound: inbound, remoteHost: host ?? "192.0.2.\(i)", remotePort: 30333)
    }
}

@Suite("Node core: events in, actions out")
struct NodeCoreTests {
    @Test("a lone validator produces at each slot boundary and finalizes its own blocks")
    func producesAndFinalizes() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        _ = h.core.drain()
        for _ in 0..<10 {
            h.advance(1)
            h.tickUntilNow()
        }
        let actions = h.core.drain()
        let produced = actions.filter { if case .event(.imported(_, _, true)) = $0 { return true } else { return false } }
        #expect(produced.count >= 9 && produced.count <= 10, "\(produced.count) blocks")
        #expect(h.core.chain.best.number == UInt64(produced.count))
        #expect(h.core.chain.finalized.number >= h.core.chain.best.number - 2, "finalized #\(h.core.chain.finalized.number)")
        // The next deadline is never in the past and never further than a slot away.
        let next = h.core.nextDeadline(after: h.now)
        #expect(next > h.now.instant && next.since(h.now.instant) <= .seconds(1))
    }

    @Test("a sync request whose range ends past 2^64 is answered (empty), never a trap")
    func hostileSyncRange() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        let accepted = h.core.peerConnected(1, info: h.info(1), now: h.now)
        #expect(accepted)
        _ = h.core.drain()
        var w = ByteWriter()
        w.u8(1); w.u64(.max - 128); w.u64(128)
        h.core.streamOpened(1, 5, protocolName: ProtocolName.sync)
        h.core.received(1, 5, protocolName: ProtocolName.sync, w.bytes, now: h.now)
        let replies = h.core.drain().compactMap { a -> [UInt8]? in if case .reply(1, 5, let b) = a { return b } else { return nil } }
        #expect(replies.count == 1)
        #expect(try BlocksResponse.decode(replies[0]).blocks.isEmpty)
    }

    @Test("a hello claiming best = 2^64 - 1 is clamped; the peer's claim never stops production")
    func lyingHello() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        h.advance(3)
        h.tickUntilNow()
        let accepted = h.core.peerConnected(1, info: h.info(1, best: .max), now: h.now)
        #expect(accepted)
        #expect(h.core.peers[1]?.best.number == h.core.chain.best.number)
        #expect(h.core.counters.invalidMessages["implausible best in hello"] == 1)
        let before = h.core.chain.best.number
        for _ in 0..<5 {
            h.advance(1)
            h.tickUntilNow()
        }
        #expect(!h.core.isSyncing(now: h.now))
        #expect(h.core.chain.best.number >= before + 4)
    }

    @Test("a second request on a served stream is charged and reset; a request over budget is refused")
    func requestStreams() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        h.core.peerConnected(1, info: h.info(1), now: h.now)
        _ = h.core.drain()
        h.core.streamOpened(1, 9, protocolName: ProtocolName.head)
        h.core.received(1, 9, protocolName: ProtocolName.head, [1], now: h.now)
        h.core.received(1, 9, protocolName: ProtocolName.head, [1], now: h.now)
        let actions = h.core.drain()
        #expect(actions.contains { if case .reply(1, 9, _) = $0 { return true } else { return false } })
        #expect(h.core.counters.invalidMessages["second request on a stream"] == 1)
        // Head requests: the rest of the burst of 10 (one went to stream 9), then refused
        // (reset) without being served.
        var served = 0, refused = 0
        for s in 100..<140 as Range<StreamID> {
            h.core.streamOpened(1, s, protocolName: ProtocolName.head)
            h.core.received(1, s, protocolName: ProtocolName.head, [1], now: h.now)
            for a in h.core.drain() {
                if case .reply = a { served += 1 }
                if case .reset(_, _, ChannelCode.refused) = a { refused += 1 }
            }
            h.core.streamEnded(1, s)  // the peer finished its side
        }
        #expect(served == 9 && refused == 31, "served \(served), refused \(refused)")
        // The tracked streams stay bounded: ended, reset and refused ones are forgotten.
        #expect(h.core.peers[1]?.trackedStreams == 0)
    }

    @Test("streams of unknown protocols are refused; a stream of them past the budget bans the peer both ways")
    func unknownProtocolsBan() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        h.core.peerConnected(1, info: h.info(1), now: h.now)
        _ = h.core.drain()
        var banned: (AccountID, Instant)?
        for s in 0..<2000 as Range<StreamID> where banned == nil {
            h.core.received(1, s, protocolName: "/evil/\(s)", [0], now: h.now)
            for a in h.core.drain() { if case .ban(let id, let until) = a { banned = (id, until) } }
        }
        let ban = try #require(banned)
        #expect(ban.0 == CoreHarness.peerKey(1))
        #expect(ban.1 == h.now.instant + .seconds(600))
        // Banned identities are not dialled while the ban lasts, even when their address is known.
        h.core.peerDisconnected(1, now: h.now)
        h.core.discovered(NodeAddress(nodeId: CoreHarness.peerKey(1), host: "192.0.2.1", port: 30333), now: h.now)
        h.advance(3)
        h.tickUntilNow()
        #expect(!h.core.drain().contains { if case .dial(let a) = $0 { return a.nodeId == CoreHarness.peerKey(1) } else { return false } })
    }

    @Test("a connection from an identity we already hold, or not the one we dialled, is refused")
    func duplicateAndUnexpected() throws {
        let h = try CoreHarness()
        h.core.start(now: h.now)
        let first = h.core.peerConnected(1, info: h.info(1), now: h.now)
        let duplicate = h.core.peerConnected(2, info: h.info(1), now: h.now)
        var wrong = h.info(3, inbound: false)
        wrong.expected = CoreHarness.peerKey(4)
        let unexpected = h.core.peerConnected(3, info: wrong, now: h.now)
        #expect(first && !duplicate && !unexpected)
        let disconnects = h.core.drain().compactMap { a -> PeerID? in if case .disconnect(let id, _, _) = a { return id } else { return nil } }
        #expect(disconnects == [2, 3])
        #expect(h.core.peers.connected.count == 1)
    }

    @Test("a peer ahead is asked for blocks once at a time; an empty answer disproves its claim")
    func rangeSync() throws {
        let h = try CoreHarness(validator: false)
        h.core.start(now: h.now)
        h.advance(10)
        h.tickUntilNow()
        _ = h.core.drain()
        h.core.peerConnected(1, info: h.info(1, best: 5), now: h.now)
        let requests = h.core.drain().compactMap { a -> (RequestID, [UInt8])? in
            if case .request(1, let rid, ProtocolName.sync, let body) = a { return (rid, body) } else { return nil }
        }
        #expect(requests.count == 1)
        #expect(try BlocksRequest.decode(requests[0].1) == BlocksRequest(from: 1, count: BlocksRequest.maxCount))
        h.core.response(1, requests[0].0, BlocksResponse(blocks: [], justifications: []).encoded, now: h.now)
        #expect(h.core.peers[1]?.best.number == 0)
        #expect(h.core.counters.invalidMessages["sync answer below the claimed best"] == 1)
    }

    @Test("block answers are budgeted in bytes too: past the budget sync and ancestry requests are refused uncharged until it refills")
    func servedBlockBytes() throws {
        var peers = PeerManagerConfig()
        peers.servedBlockBytesBurst = 1000
        peers.servedBlockBytesPerSecond = 1000
        let h = try CoreHarness(peers: peers)
        h.core.start(now: h.now)
        h.advance(10)
        h.tickUntilNow()
        #expect(h.core.chain.best.number >= 8)
        h.core.peerConnected(1, info: h.info(1), now: h.now)
        _ = h.core.drain()
        var stream: StreamID = 10
        /// Sends one request; the size of the answer, or nil when refused.
        func ask(_ proto: String, _ body: [UInt8]) -> Int? {
            stream += 2
            h.core.streamOpened(1, stream, protocolName: proto)
            h.core.received(1, stream, protocolName: proto, body, now: h.now)
            defer { h.core.streamEnded(1, stream) }
            for a in h.core.drain() {
                if case .reply(1, stream, let b) = a { return b.count }
                if case .reset(1, stream, ChannelCode.refused) = a { return nil }
            }
            Issue.record("neither answered nor refused")
            return nil
        }
        let range = BlocksRequest(from: 1, count: 128).encoded
        let first = try #require(ask(ProtocolName.sync, range))
        #expect(first > 1000, "eight blocks and more are over the 1,000-byte burst")
        // The budget is spent (below 0): range and ancestry requests are refused, though the
        // request count budget has room, and nothing is charged.
        #expect(ask(ProtocolName.sync, range) == nil)
        #expect(ask(ProtocolName.ancestry, AncestryRequest(hash: h.core.chain.best.hash, count: 4).encoded) == nil)
        #expect(h.core.counters.invalidMessages.isEmpty, "\(h.core.counters.invalidMessages)")
        #expect(h.core.peers[1]?.score == 0)
        // Other requests are not held back by it.
        #expect(ask(ProtocolName.head, [1]) != nil)
        // Once the bucket has refilled above 0 the peer is served again.
        h.time += UInt64(Double(first) / 1000 * 1e9) + 1_000_000
        #expect(ask(ProtocolName.sync, range) != nil)
    }

    @Test("a refused sync request is retried at a later heartbeat, from the peer that claims most, one at a time")
    func refusedSyncResumes() throws {
        // A serving node refuses range requests past its budget (the stream is reset). Sync
        // stalled for good after a refusal when no new block came to restart it.
        let h = try CoreHarness(validator: false)
        h.core.start(now: h.now)
        h.advance(10)
        h.tickUntilNow()
        h.core.peerConnected(1, info: h.info(1, best: 5), now: h.now)
        h.core.peerConnected(2, info: h.info(2, best: 9), now: h.now)
        func syncRequests() -> [(PeerID, RequestID)] {
            h.core.drain().compactMap { a -> (PeerID, RequestID)? in
                if case .request(let id, let rid, ProtocolName.sync, _) = a { return (id, rid) } else { return nil }
            }
        }
        let first = syncRequests()
        #expect(first.count == 2, "each peer ahead asked once on connecting")
        for (id, rid) in first { h.core.requestFailed(id, rid, now: h.now) }
        #expect(syncRequests().isEmpty, "not retried at once (the refusing peer's budget needs time)")
        h.advance(1.5)
        let again = syncRequests()
        #expect(again.count == 1 && again.first?.0 == 2, "retried from the peer claiming most: \(again)")
        h.advance(3)
        #expect(syncRequests().isEmpty, "one range request in flight at a time")
    }

    @Test("requests unanswered past the timeout are cancelled; a sync timeout drops the peer's claim")
    func requestTimeouts() throws {
        let h = try CoreHarness(validator: false)
        h.core.start(now: h.now)
        h.advance(10)
        h.tickUntilNow()
        h.core.peerConnected(1, info: h.info(1, best: 5), now: h.now)
        _ = h.core.drain()
        h.advance(20)
        h.tickUntilNow()
        let cancels = h.core.drain().filter { if case .cancel(1, _) = $0 { return true } else { return false } }
        #expect(cancels.count >= 1)
        #expect(h.core.peers[1]?.best.number == 0)
        #expect(h.core.counters.invalidMessages["sync timeout"] == 1)
    }
}

/// A syncing core (ranges of 4 blocks, 2 in flight) and a producer's chain of `blocks`
/// blocks to answer its range requests from.
final class SyncHarness {
    let h: CoreHarness
    let source: CoreHarness

    init(blocks: UInt64, inFlight: Int = 2) throws {
        self.source = try CoreHarness()
        self.source.core.start(now: self.source.now)
        while self.source.core.chain.best.number < blocks { self.source.advance(1) }
        self.h = try CoreHarness(validator: false) { c in
            c.syncRangeBlocks = 4
            c.syncRangesInFlight = inFlight
        }
        self.h.core.start(now: self.h.now)
        self.h.time = self.source.time
        self.h.tickUntilNow()
        _ = self.h.core.drain()
    }

    /// Peer 1 connects claiming `best`; returns the range requests the core sends it.
    func connectSource(best: UInt64) -> [(RequestID, BlocksRequest)] {
        self.h.core.peerConnected(1, info: self.h.info(1, best: best), now: self.h.now)
        return self.actions().requests
    }

    /// The range requests (and cancels) among the core's actions since the last call.
    func actions() -> (requests: [(RequestID, BlocksRequest)], cancels: [RequestID]) {
        var requests: [(RequestID, BlocksRequest)] = [], cancels: [RequestID] = []
        for a in self.h.core.drain() {
            if case .request(1, let rid, ProtocolName.sync, let body) = a { requests.append((rid, try! BlocksRequest.decode(body))) }
            if case .cancel(1, let rid) = a { cancels.append(rid) }
        }
        return (requests, cancels)
    }

    /// The producer's blocks `from ..< from + count` (those it has).
    func blocks(_ from: UInt64, _ count: UInt64) -> [Block] {
        (from..<from + count).compactMap { self.source.core.chain.block(number: $0) }
    }

    func answer(_ rid: RequestID, _ blocks: [Block]) {
        self.h.core.response(1, rid, BlocksResponse(blocks: blocks, justifications: []).encoded, now: self.h.now)
    }

    var best: UInt64 { self.h.core.chain.best.number }
}

@Suite("Range sync pipeline: events in, actions out")
struct SyncPipelineTests {
    @Test("the next range is in flight before the one in hand is imported; ranges follow one another up to the peer's best")
    func pipelined() throws {
        let s = try SyncHarness(blocks: 10)
        let first = s.connectSource(best: 10)
        #expect(first.map(\.1) == [BlocksRequest(from: 1, count: 4), BlocksRequest(from: 5, count: 4)])
        s.answer(first[0].0, s.blocks(1, 4))
        #expect(s.best == 4)
        let second = s.actions().requests
        #expect(second.map(\.1) == [BlocksRequest(from: 9, count: 4)], "topped up above the range still in flight")
        s.answer(first[1].0, s.blocks(5, 4))
        #expect(s.best == 8)
        #expect(s.actions().requests.isEmpty, "the peer claims nothing past 12")
        s.answer(second[0].0, s.blocks(9, 4))
        #expect(s.best == 10)
        #expect(s.actions().requests.isEmpty)
        #expect(s.h.core.peers[1]?.syncing == false)
        #expect(s.h.core.counters.syncedBlocks == 10)
        #expect(s.h.core.counters.invalidMessages.isEmpty)
    }

    @Test("with one range in flight, a range is asked only after the one before was imported")
    func unpipelined() throws {
        let s = try SyncHarness(blocks: 10, inFlight: 1)
        let first = s.connectSource(best: 10)
        #expect(first.map(\.1) == [BlocksRequest(from: 1, count: 4)])
        s.answer(first[0].0, s.blocks(1, 4))
        #expect(s.actions().requests.map(\.1) == [BlocksRequest(from: 5, count: 4)])
    }

    @Test("an answer that comes before the range below it is held, and applied in order after it")
    func outOfOrder() throws {
        let s = try SyncHarness(blocks: 8)
        let r = s.connectSource(best: 8)
        s.answer(r[1].0, s.blocks(5, 4))
        #expect(s.best == 0, "not imported out of order")
        #expect(s.h.core.counters.invalidMessages.isEmpty, "not the peer's fault")
        s.answer(r[0].0, s.blocks(1, 4))
        #expect(s.best == 8)
        #expect(s.h.core.peers[1]?.syncing == false)
    }

    @Test("an invalid block ends the pipeline: the range above is cancelled, unapplied, and sync goes on from our best as before")
    func invalidBlock() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        var bad = s.blocks(1, 4)
        bad[2].header.stateRoot = Hash32([UInt8](repeating: 0xee, count: 32))
        s.answer(r[0].0, bad)
        #expect(s.best == 2, "the blocks below the invalid one are imported, not the rest")
        #expect(s.h.core.counters.invalidMessages["invalid synced block"] == 1)
        let after = s.actions()
        #expect(after.cancels == [r[1].0], "the range above it is cancelled")
        // As with one range in flight: blocks were imported and the peer is still ahead, so it
        // is asked again from our best.
        #expect(after.requests.map(\.1).first == BlocksRequest(from: 3, count: 4))
        // A late answer to the cancelled range is ignored.
        s.answer(r[1].0, s.blocks(5, 4))
        #expect(s.best == 2)
    }

    @Test("an answer shorter than its range drops the range above (it would leave a gap) and asks again from our best")
    func shortAnswer() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        s.answer(r[1].0, s.blocks(5, 4))  // held
        s.answer(r[0].0, s.blocks(1, 3))
        #expect(s.best == 3, "the held answer above the gap is not applied")
        let after = s.actions()
        #expect(after.cancels.isEmpty, "nothing in flight to cancel: the range above was answered")
        #expect(after.requests.map(\.1) == [BlocksRequest(from: 4, count: 4), BlocksRequest(from: 8, count: 4)])
        #expect(s.h.core.counters.invalidMessages.isEmpty)
    }

    @Test("a refused range ends the pipeline there: the range above is cancelled, nothing is asked until a heartbeat")
    func refused() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        s.h.core.requestFailed(1, r[0].0, now: s.h.now)
        let after = s.actions()
        #expect(after.cancels == [r[1].0])
        #expect(after.requests.isEmpty)
        #expect(s.h.core.peers[1]?.syncing == false)
        s.answer(r[1].0, s.blocks(5, 4))
        #expect(s.best == 0, "a cancelled range's answer is never applied")
        s.h.advance(1.5)
        #expect(s.actions().requests.map(\.1).first == BlocksRequest(from: 1, count: 4), "resumed at a heartbeat")
    }

    @Test("a refused upper range leaves the lower one to be applied; the pipeline is topped up after it")
    func refusedUpper() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        s.h.core.requestFailed(1, r[1].0, now: s.h.now)
        #expect(s.actions().requests.isEmpty)
        s.answer(r[0].0, s.blocks(1, 4))
        #expect(s.best == 4)
        #expect(s.actions().requests.map(\.1) == [BlocksRequest(from: 5, count: 4), BlocksRequest(from: 9, count: 4)])
    }

    @Test("ranges that time out are cancelled and the peer penalized once, its claim dropped")
    func timeout() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        s.h.advance(20)
        let after = s.actions()
        #expect(Set(after.cancels) == Set(r.map(\.0)))
        #expect(after.requests.isEmpty)
        #expect(s.h.core.counters.invalidMessages["sync timeout"] == 1)
        #expect(s.h.core.peers[1]?.best.number == 0)
    }

    @Test("an undecodable answer is penalized and ends the pipeline")
    func undecodable() throws {
        let s = try SyncHarness(blocks: 10)
        let r = s.connectSource(best: 10)
        s.h.core.response(1, r[0].0, [0xff, 0xff, 0xff], now: s.h.now)
        #expect(s.h.core.counters.invalidMessages["bad sync response"] == 1)
        #expect(s.actions().cancels == [r[1].0])
        #expect(s.h.core.peers[1]?.syncing == false)
    }

    @Test("a range's timeout runs from the answer below it: a peer sending its answers one after the other is not blamed, one that withholds still is")
    func pipelinedTimeout() throws {
        let s = try SyncHarness(blocks: 14)
        let r = s.connectSource(best: 14)
        #expect(r.count == 2)
        // A slow link: the lower answer takes 10 s, the upper one 10 s more behind it.
        s.h.advance(10)
        s.answer(r[0].0, s.blocks(1, 4))
        let topUp = s.actions().requests
        #expect(topUp.map(\.1) == [BlocksRequest(from: 9, count: 4)])
        s.h.advance(10)
        #expect(s.h.core.counters.invalidMessages["sync timeout"] == nil, "20 s after it was sent, 10 s after the range below landed")
        s.answer(r[1].0, s.blocks(5, 4))
        #expect(s.best == 8)
        #expect(s.h.core.peers[1]?.best.number == 14, "the claim stands")
        // Withheld: the range above times out 15 s after the last answer, and costs the peer.
        _ = s.actions()
        s.h.advance(20)
        #expect(s.h.core.counters.invalidMessages["sync timeout"] == 1)
        #expect(s.actions().cancels.contains(topUp[0].0))
    }

    /// The bytes of an answer held out of order, whatever form the core keeps it in.
    static func size(_ held: BlocksResponse) -> Int { held.encoded.count }
    static func size(_ held: [UInt8]) -> Int { held.count }

    @Test("answers held out of order are bounded in bytes across peers, not only in count")
    func heldBytes() throws {
        let s = try SyncHarness(blocks: 8)
        for p in 1...4 { s.h.core.peerConnected(p, info: s.h.info(UInt8(p), best: 8), now: s.h.now) }
        var ranges: [PeerID: [RequestID]] = [:]
        for a in s.h.core.drain() {
            if case .request(let p, let rid, ProtocolName.sync, _) = a { ranges[p, default: []].append(rid) }
        }
        #expect(ranges.count == 4 && ranges.values.allSatisfy { $0.count == 2 })
        // Each hostile peer answers its upper range first: the right blocks, padded to 5 MiB
        // with justifications that are never decoded before the answer is applied.
        let padding = (0..<5).map { (UInt64($0), [UInt8](repeating: 0xa5, count: 1 << 20)) }
        let upper = BlocksResponse(blocks: s.blocks(5, 4), justifications: padding).encoded
        for p in 1...4 { s.h.core.response(p, ranges[p]![1], upper, now: s.h.now) }
        let held = s.h.core.peers.connected.values.flatMap { $0.syncRanges.compactMap { $0.answer.map(Self.size) } }
        #expect(!held.isEmpty, "answers are still held while they fit")
        #expect(held.reduce(0, +) <= 16 << 20, "\(held.count) answers, \(held.reduce(0, +)) bytes held")
        #expect(s.best == 0 && s.h.core.counters.invalidMessages.isEmpty)
        // A peer whose held answer was dropped still gets its range asked again after the one below.
        let dropped = (1...4).first { p in s.h.core.peers[p]?.syncRanges.count == 1 } ?? 4
        _ = s.h.core.drain()
        s.h.core.response(dropped, ranges[dropped]![0], BlocksResponse(blocks: s.blocks(1, 4), justifications: []).encoded, now: s.h.now)
        #expect(s.best == 4)
        let again = s.h.core.drain().compactMap { a -> BlocksRequest? in
            if case .request(dropped, _, ProtocolName.sync, let body) = a { return try? BlocksRequest.decode(body) } else { return nil }
        }
        #expect(again == [BlocksRequest(from: 5, count: 4)])
    }
}

@Suite("Peer manager")
struct PeerManagerTests {
    func manager(target: Int = 4, bootnodes: [NodeAddress] = []) -> PeerManager {
        var c = PeerManagerConfig()
        c.targetOutbound = target
        var r = SeededRNG(seed: 3)
        return PeerManager(config: c, ownId: CoreHarness.peerKey(200), bootnodes: bootnodes, random: { b in b <= 1 ? 0 : r.next() % b })
    }

    @Test("dials at most one address per /24 while others remain, backs off, and forgets back-offs that ran out")
    func dialDiversity() {
        var m = self.manager(target: 4)
        for i in 1...6 as ClosedRange<UInt8> { m.remember(NodeAddress(nodeId: CoreHarness.peerKey(i), host: "198.51.100.\(i)", port: 30333)) }
        for i in 7...8 as ClosedRange<UInt8> { m.remember(NodeAddress(nodeId: CoreHarness.peerKey(i), host: "203.0.113.\(i)", port: 30333)) }
        let now = Instant(nanoseconds: 1_000_000_000)
        let picked = m.dialCandidates(now: now)
        #expect(picked.count == 4)
        let nets = picked.map { $0.host.split(separator: ".").prefix(3).joined(separator: ".") }
        // Two networks: one from each first, then the rest from either.
        #expect(Set(nets.prefix(2)).count == 2)
        // Within the back-off nothing picked is dialled again; after it, they are.
        let again = m.dialCandidates(now: now + .seconds(5))
        #expect(Set(again.map { $0.nodeId }).isDisjoint(with: picked.map { $0.nodeId }))
        let third = m.dialCandidates(now: now + .seconds(11))
        #expect(third.count == 4)
    }

    @Test("the address book is bounded: per network, and in total with eviction of unconnected non-bootnodes")
    func addressBounds() {
        var m = self.manager()
        var added = 0
        for i in 0..<100 {
            let id = try! AccountID(bytes: [UInt8(i), 1] + [UInt8](repeating: 5, count: 30))
            if m.remember(NodeAddress(nodeId: id, host: "198.51.100.\(i)", port: 1)) { added += 1 }
        }
        #expect(added == PeerManagerConfig().maxAddressesPerNetwork)
        var c = PeerManagerConfig()
        c.maxKnownAddresses = 50
        let boot = NodeAddress(nodeId: CoreHarness.peerKey(9), host: "192.0.2.9", port: 1)
        var small = PeerManager(config: c, ownId: CoreHarness.peerKey(200), bootnodes: [boot], random: { _ in 0 })
        for i in 0..<200 {
            let id = try! AccountID(bytes: [UInt8(i), 2] + [UInt8](repeating: 6, count: 30))
            small.remember(NodeAddress(nodeId: id, host: "10.\(i).0.1", port: 1))
        }
        #expect(small.addressCount == 50)
        #expect(small.address(of: boot.nodeId) == boot)
    }

    @Test("penalties accumulate to a ban; scores heal between them")
    func penalties() {
        var m = self.manager()
        let h = Hello(genesisHash: [UInt8](repeating: 0, count: 32), best: .zero, finalized: .zero, roles: .full, listenPort: 1, agent: "")
        let now = Instant(nanoseconds: 5)
        let refusal = m.connect(1, info: PeerInfo(nodeId: CoreHarness.peerKey(1), hello: h, inbound: true, remoteHost: "192.0.2.1", remotePort: 2),
                                ours: ChainPointer(number: 0, hash: Hash32([UInt8](repeating: 0, count: 32))), maxHeight: 10)
        #expect(refusal == nil)
        for _ in 0..<9 {
            let p = m.penalize(1, by: 10, now: now)
            #expect(p != nil)
        }
        m.heal()
        #expect(m[1]!.score == -81)
        if case .banned(let id, let until)? = m.penalize(1, by: 20, now: now) {
            #expect(id == CoreHarness.peerKey(1) && until == now + .seconds(600))
        } else {
            Issue.record("no ban at -101")
        }
        #expect(m.isBackingOff(CoreHarness.peerKey(1), now: now + .seconds(599)))
        #expect(!m.isBackingOff(CoreHarness.peerKey(1), now: now + .seconds(601)))
    }
}

@Suite("Sync, relay and slot state")
struct CoreStateTests {
    @Test("a block is fetched by hash once per retry interval, and at most 1,024 at once")
    func fetches() {
        var s = SyncState()
        let h = Hash32([UInt8](repeating: 1, count: 32))
        let t = Instant(nanoseconds: 1)
        let first = s.beginFetch(h, now: t), early = s.beginFetch(h, now: t + .seconds(4)), retry = s.beginFetch(h, now: t + .seconds(5))
        #expect(first && !early && retry)
        for i in 0..<2000 {
            _ = s.beginFetch(Hash32([UInt8(i & 0xff), UInt8(i >> 8)] + [UInt8](repeating: 2, count: 30)), now: t + .seconds(5))
        }
        #expect(s.fetches.count == SyncState.maxFetches)
        // Once they expire, room is made.
        let later = s.beginFetch(Hash32([UInt8](repeating: 9, count: 32)), now: t + .seconds(11))
        #expect(later)
    }

    @Test("syncing needs a peer ahead and recent progress: a claim alone never counts")
    func syncingRule() {
        var s = SyncState()
        let t = Instant(nanoseconds: 10_000_000_000)
        #expect(!s.isSyncing(now: t, ourBest: 5, peerBests: [.max], slotMillis: 1000))
        s.noteProgress(t)
        #expect(s.isSyncing(now: t + .seconds(1), ourBest: 5, peerBests: [100], slotMillis: 1000))
        #expect(!s.isSyncing(now: t + .seconds(1), ourBest: 5, peerBests: [7], slotMillis: 1000))
        #expect(!s.isSyncing(now: t + .seconds(3), ourBest: 5, peerBests: [100], slotMillis: 1000))
    }

    @Test("a slot is produced once, and not when more than half of it is gone")
    func slots() {
        var s = SlotSchedule(slotMillis: 1000)
        s.arm(wallMillis: 5_300)
        #expect(s.nextAt == 6_001)
        #expect(s.due(wallMillis: 6_001) == 6)
        s.produced(6)
        #expect(s.due(wallMillis: 6_200) == nil)
        #expect(s.due(wallMillis: 7_600) == nil)
        #expect(s.due(wallMillis: 8_499) == 8)
        s.arm(wallMillis: .max - 10)
        #expect(s.nextAt == .max)
    }
}

/// A sink that records (target, level, message).
final class RecordingLog: NodeLogSink {
    let name: String
    let lines: LinesBox
    final class LinesBox { var all: [(String, String, String)] = [] }
    init(name: String = "tensormesh", lines: LinesBox = LinesBox()) {
        self.name = name
        self.lines = lines
    }
    func target(_ name: String) -> any NodeLogSink { RecordingLog(name: name, lines: self.lines) }
    func debug(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) { self.lines.all.append((self.name, "debug", message())) }
    func info(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) { self.lines.all.append((self.name, "info", message())) }
    func warn(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) { self.lines.all.append((self.name, "warn", message())) }
    func error(_ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String>) { self.lines.all.append((self.name, "error", message())) }
}

@Suite("Node core logs")
struct NodeCoreLogTests {
    @Test("lines carry their target: sync, peers, gossip, finality (so --log sync=debug selects them)")
    func targets() throws {
        let log = RecordingLog()
        var c = NodeCoreConfig()
        c.validator = false
        let spec = try CoreHarness(validator: false).spec
        let core = try NodeCore(config: c, spec: spec, key: try Ed25519.PrivateKey(seedBytes: [UInt8](repeating: 3, count: 32)), store: MemoryStore(),
                                now: NodeTime(instant: .zero, wallMillis: CoreHarness.genesisTime + 10_000), random: { _ in 0 }, log: log)
        let now = NodeTime(instant: Instant(nanoseconds: 10_000_000_000), wallMillis: CoreHarness.genesisTime + 10_000)
        core.start(now: now)
        let hello = Hello(genesisHash: core.chain.genesisHash.bytes, best: BlockRef(number: 3, hash: [UInt8](repeating: 1, count: 32)),
                          finalized: BlockRef(number: 0, hash: core.chain.genesisHash.bytes), roles: .full, listenPort: 1, agent: "t")
        core.peerConnected(1, info: PeerInfo(nodeId: CoreHarness.peerKey(1), hello: hello, inbound: true, remoteHost: "192.0.2.1", remotePort: 1), now: now)
        core.received(1, 1, protocolName: ProtocolName.sync, [9, 9], now: now)  // undecodable: a peers-target debug line
        let rid = core.drain().compactMap { a -> RequestID? in if case .request(_, let r, ProtocolName.sync, _) = a { return r } else { return nil } }.first
        core.response(1, try #require(rid), [1, 2, 3], now: now)
        let targets = Set(log.lines.all.map { $0.0 })
        #expect(targets.contains("peers"), "\(log.lines.all)")
        #expect(log.lines.all.contains { $0.0 == "peers" && $0.2.contains("misbehaved") })
    }
}
