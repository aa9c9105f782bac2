import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// A compact block waiting for the transactions the pool did not have.
struct CompactPending {
    var compact: CompactBlock
    var body: [Transaction?]
    var messageID: MessageID
    var from: PeerID
    var asked: [Int]
    var deadline: Instant
}

/// Compact-block relay's bounded state (sans-IO): blocks waiting for transactions fetched
/// from the peer that announced them, each with a deadline after which it falls back to
/// sync. Decisions on what to fetch are `NodeCore+Relay`'s.
struct BlockRelay {
    static let fetchTimeout: Duration = .seconds(3)
    static let maxPending = 64

    private(set) var pending: [Hash32: CompactPending] = [:]

    func isPending(_ hash: Hash32) -> Bool { self.pending[hash] != nil }
    var hasRoom: Bool { self.pending.count < Self.maxPending }

    mutating func hold(_ hash: Hash32, _ p: CompactPending) { self.pending[hash] = p }

    /// The pending block `hash` when `peer` is the one we asked, taken off the table.
    mutating func take(_ hash: Hash32, from peer: PeerID) -> CompactPending? {
        guard let p = self.pending[hash], p.from == peer else { return nil }
        self.pending[hash] = nil
        return p
    }

    /// Pending blocks past their deadline, taken off the table (oldest deadline first).
    mutating func expired(now: Instant) -> [CompactPending] {
        let due = self.pending.filter { $0.value.deadline <= now }.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }
        for (h, _) in due { self.pending[h] = nil }
        return due.map { $0.value }
    }
}
