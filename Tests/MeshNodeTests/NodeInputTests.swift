import MeshChain
import MeshCodec
import MeshCrypto
@testable import MeshNode
@testable import MeshNodeCore
import Testing

/// The node's own decisions on what peers send, as pure functions (the wire-level attacks
/// against node processes are in EndToEndTests/HostilePeerTests).
@Suite("Node input")
struct NodeInputTests {
    static func encoded(_ build: (inout ByteWriter) -> Void) -> [UInt8] {
        var w = ByteWriter()
        build(&w)
        return w.bytes
    }

    @Test("a sync request whose range ends past 2^64 is a typed error, never a trap")
    func syncRange() throws {
        for (from, count): (UInt64, UInt64) in [(.max, 1), (.max - 1, 2), (.max - 127, 128), (1 << 63, 0), (0, 129), (0, .max)] {
            let bytes = Self.encoded { w in w.u8(1); w.u64(from); w.u64(count) }
            #expect(throws: CodecError.self, "from \(from) count \(count)") { try BlocksRequest.decode(bytes) }
        }
        let edge = Self.encoded { w in w.u8(1); w.u64(.max - 128); w.u64(128) }
        #expect(try BlocksRequest.decode(edge) == BlocksRequest(from: .max - 128, count: 128))
        #expect(throws: CodecError.self) { try BlocksRequest.decode([2] + Array(edge.dropFirst())) }
    }

    @Test("ancestry requests carry 1...128 blocks")
    func ancestryCount() throws {
        for count: UInt16 in [0, 129, .max] {
            let bytes = Self.encoded { w in Hash32([UInt8](repeating: 7, count: 32)).encode(to: &w); w.u16(count) }
            #expect(throws: CodecError.self) { try AncestryRequest.decode(bytes) }
        }
        let ok = AncestryRequest(hash: Hash32([UInt8](repeating: 7, count: 32)), count: 128)
        #expect(try AncestryRequest.decode(ok.encoded) == ok)
    }

    @Test("a block-transactions request names each transaction once, in order: its answer is never larger than the block")
    func blockTransactionIndexes() throws {
        let block = Hash32([UInt8](repeating: 3, count: 32))
        let ok = BlockTransactionsRequest(block: block, indexes: [0, 5, 9_999])
        #expect(try BlockTransactionsRequest.decode(ok.encoded) == ok)
        for bad: [UInt32] in [[7, 7], [3, 2], [0] + [UInt32](repeating: 1, count: 9_999)] {
            #expect(throws: CodecError.self, "\(bad.prefix(3))") { try BlockTransactionsRequest.decode(BlockTransactionsRequest(block: block, indexes: bad).encoded) }
        }
    }

    @Test("list lengths in answers are checked against the bytes present before anything is allocated")
    func lyingLengths() {
        // A sync answer claiming 2^62 blocks in 10 bytes, and a peer list claiming 2^32 entries.
        let blocks = Self.encoded { w in w.varint(1 << 62); w.raw([UInt8](repeating: 0, count: 10)) }
        #expect(throws: CodecError.self) { try BlocksResponse.decode(blocks) }
        let peers = Self.encoded { w in w.varint(1 << 32) }
        #expect(throws: CodecError.self) { try PeerList.decode(peers) }
        // An over-long address in an otherwise valid entry.
        let entry = Self.encoded { w in
            w.raw([UInt8](repeating: 1, count: 32)); w.string(String(repeating: "a", count: 129)); w.u64(0); w.u8(0); w.bool(false); w.varint(0)
        }
        #expect(throws: CodecError.self) { try PeerEntry.decode(entry) }
    }

    @Test("our public address needs two reporter networks, or a bootnode")
    func addressVotes() {
        var votes = AddressVotes()
        let ours: [UInt8] = [203, 0, 113, 7]
        // One reporter repeating itself, and many ids behind one address, prove nothing.
        for _ in 0..<50 { let r1 = votes.observe(ours, reporterIP: [198, 51, 100, 1], fromBootnode: false); #expect(r1 == nil) }
        #expect(votes.reporters(of: ours) == 1)
        // IPv6 reporters inside one /64 count once.
        var v6 = AddressVotes()
        let net: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]
        let r2 = v6.observe(ours, reporterIP: net + [0, 0, 0, 0, 0, 0, 0, 1], fromBootnode: false)
        #expect(r2 == nil)
        let r3 = v6.observe(ours, reporterIP: net + [9, 9, 9, 9, 9, 9, 9, 9], fromBootnode: false)
        #expect(r3 == nil)
        #expect(v6.reporters(of: ours) == 1)
        // A second network agrees: learned, and the table is forgotten.
        let r4 = votes.observe(ours, reporterIP: [192, 0, 2, 1], fromBootnode: false)
        #expect(r4 == ours)
        #expect(votes.reporters(of: ours) == 0)
        // A bootnode's word is enough.
        var boot = AddressVotes()
        let r5 = boot.observe(ours, reporterIP: [192, 0, 2, 1], fromBootnode: true)
        #expect(r5 == ours)
        // Malformed observations are ignored.
        let r6 = boot.observe([1, 2, 3], reporterIP: [192, 0, 2, 1], fromBootnode: true)
        #expect(r6 == nil)
    }

    @Test("a spray of candidate addresses keeps the table bounded")
    func addressVotesBounded() {
        var votes = AddressVotes()
        for i in 0..<10_000 {
            let ip: [UInt8] = [10, UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)]
            let r7 = votes.observe(ip, reporterIP: [198, 51, 100, UInt8(i & 0xff)], fromBootnode: false)
            #expect(r7 == nil)
            #expect(votes.candidates.count <= AddressVotes.maxCandidates)
        }
    }

    @Test("a peer's address answer: numeric hosts only (no DNS for a peer), never our own id, the first 64 entries")
    func peerAnswers() throws {
        func id(_ i: Int) -> AccountID { try! AccountID(bytes: [UInt8](repeating: UInt8(i), count: 32)) }
        let ours = id(200)
        var entries = [
            PeerEntry(nodeId: id(1), address: "192.0.2.1:30333", bestNumber: 0, roles: 0, inbound: false),
            PeerEntry(nodeId: id(2), address: "evil.example.com:30333", bestNumber: 0, roles: 0, inbound: false),
            PeerEntry(nodeId: ours, address: "192.0.2.9:30333", bestNumber: 0, roles: 0, inbound: false),
            PeerEntry(nodeId: id(3), address: "[2001:db8::1]:30333", bestNumber: 0, roles: 0, inbound: false),
            PeerEntry(nodeId: id(4), address: "192.0.2.4:0", bestNumber: 0, roles: 0, inbound: false),
            PeerEntry(nodeId: id(5), address: "not an address", bestNumber: .max, roles: .max, inbound: true),
            PeerEntry(nodeId: id(6), address: "192.0.2.6:30333", bestNumber: 0, roles: 0, inbound: false),
        ]
        var manager = PeerManager(config: PeerManagerConfig(), ownId: ours, bootnodes: [], random: { _ in 0 })
        manager.remember(NodeAddress(nodeId: id(6), host: "192.0.2.6", port: 30333))
        let learned = manager.learnable(PeerList(peers: entries))
        #expect(learned.map { $0.nodeId } == [id(1), id(3)])
        // Past the 64th entry nothing is looked at, whatever it holds.
        entries = (0..<64).map { _ in PeerEntry(nodeId: ours, address: "192.0.2.1:1", bestNumber: 0, roles: 0, inbound: false) }
            + (10..<100).map { PeerEntry(nodeId: id($0), address: "192.0.2.1:1", bestNumber: 0, roles: 0, inbound: false) }
        let empty = PeerManager(config: PeerManagerConfig(), ownId: ours, bootnodes: [], random: { _ in 0 })
        #expect(empty.learnable(PeerList(peers: entries)).isEmpty)
        #expect(PeerManagerConfig().maxLearnedPerAnswer == 16)
    }

    @Test("the address book counts entries per network as they come and go")
    func addressBookNetworks() throws {
        func id(_ i: Int) -> AccountID { try! AccountID(bytes: [UInt8(i & 0xff), UInt8(i >> 8)] + [UInt8](repeating: 9, count: 30)) }
        var book = AddressBook()
        for i in 0..<40 { book[id(i)] = NodeAddress(nodeId: id(i), host: "198.51.100.\(i)", port: 30333) }
        book[id(100)] = NodeAddress(nodeId: id(100), host: "2001:db8:1:2::5", port: 30333)
        book[id(101)] = NodeAddress(nodeId: id(101), host: "127.0.0.1", port: 30333)
        book[id(102)] = NodeAddress(nodeId: id(102), host: "boot.example.org", port: 30333)
        let probe = NodeAddress(nodeId: id(500), host: "198.51.100.250", port: 1)
        #expect(book.countInNetwork(of: probe) == 40)
        #expect(book.countInNetwork(of: NodeAddress(nodeId: id(501), host: "2001:db8:1:ffff::1", port: 1)) == 1)
        #expect(book.countInNetwork(of: NodeAddress(nodeId: id(502), host: "127.0.0.2", port: 1)) == 0)
        #expect(book.networks == 2)
        // Moving an entry to another network and removing entries keep the counts right.
        book[id(0)] = NodeAddress(nodeId: id(0), host: "203.0.113.1", port: 30333)
        for i in 1..<10 { book[id(i)] = nil }
        #expect(book.countInNetwork(of: probe) == 30)
        #expect(book.count == 34)
        for i in 10..<40 { book[id(i)] = nil }
        #expect(book.countInNetwork(of: probe) == 0 && book.networks == 2)
        #expect(PeerManagerConfig().maxAddressesPerNetwork == 32)
    }

    @Test("metric label values are escaped as the Prometheus text format requires")
    func labelEscaping() {
        #expect(Node.label("topic", "plain") == #"topic="plain""#)
        #expect(Node.label("topic", "a\"b\\c\nd") == #"topic="a\"b\\c\nd""#)
        // A value cannot end the label set or start a new sample line.
        let hostile = Node.label("reason", "x\"} 1\ntensormesh_fake 1")
        #expect(!hostile.dropLast().dropFirst(#"reason=""#.count).contains { $0 == "\n" })
        #expect(hostile.hasSuffix("\""))
    }

    @Test("every node protocol with a request budget is one of ours, and the budgets are sane")
    func budgets() {
        for (name, b) in PeerManager.budgets {
            #expect(ProtocolName.all.contains(name) || name == PeerManager.unknownProtocols, "\(name)")
            #expect(b.rate > 0 && b.burst >= b.rate, "\(name)")
        }
        // A sync request every 20 ms at most, sustained: above an honest node's one in flight
        // (a round trip and 128 imports apart); bytes served are budgeted apart.
        #expect(PeerManager.budgets[ProtocolName.sync]?.rate == 50)
        // Every protocol the node speaks has a budget of its own: one without would share the
        // budget of unknown protocols (budgets are kept by slot).
        for name in NodeCore.requestProtocols.union([ProtocolName.gossip, ProtocolName.finality]) {
            #expect(PeerManager.budgets[name] != nil, "\(name)")
            #expect(PeerManager.budgetSlot(name) != PeerManager.unknownSlot, "\(name)")
        }
        #expect(PeerManagerConfig().servedBlockBytesPerSecond == 32 * 1024 * 1024)
    }

    @Test("a backlog read at once after a stall is refused but not charged; only a sustained excess is charged")
    func budgetGrace() {
        let rate = 1.0, burst = 5.0, second: UInt64 = 1_000_000_000
        // Forty seconds of one request every 3 s, read in one go (the node was paused): the
        // burst is served, the rest refused, nothing charged.
        var b = RequestBudget(burst: burst, now: 0)
        let backlog = (0..<14).map { _ in b.take(now: 40 * second, rate: rate, burst: burst) }
        #expect(backlog.filter { $0 == .within }.count == 5)
        #expect(!backlog.contains(.charged), "\(backlog)")
        // At the rate, sustained for ten minutes: always served.
        var honest = RequestBudget(burst: burst, now: 0)
        #expect((1...600).allSatisfy { honest.take(now: UInt64($0) * second, rate: rate, burst: burst) == .within })
        // At twice the rate: refused at first, then charged for what exceeds 1.25 × the rate.
        var greedy = RequestBudget(burst: burst, now: 0)
        let verdicts = (1...1200).map { greedy.take(now: UInt64($0) * second / 2, rate: rate, burst: burst) }
        let charged = verdicts.filter { $0 == .charged }.count
        #expect(charged > 400 && charged < 460, "charged \(charged) of 1200")
        #expect(verdicts.prefix(20).allSatisfy { $0 != .charged })
    }

    @Test("scores heal toward 0 each tick: an occasional fault is forgotten, steady misbehaviour still bans")
    func reputationHeals() {
        #expect(Reputation.healed(0) == 0 && Reputation.healed(-1) == 0 && Reputation.healed(-50) == -45)
        func worst(chargedPerTick: Int, ticks: Int = 200) -> Int {
            var score = 0, low = 0
            for _ in 0..<ticks {
                score -= chargedPerTick
                low = min(low, score)
                score = Reputation.healed(score)
            }
            return low
        }
        // Five points a tick (a timeout every 3 s) settles near -55, above the threshold.
        #expect(worst(chargedPerTick: 5) > Reputation.banThreshold)
        // Fifteen a tick does not.
        #expect(worst(chargedPerTick: 15) <= Reputation.banThreshold)
        // And a ban-worthy burst still bans at once.
        #expect(-100 <= Reputation.banThreshold)
    }
}
