import MeshCodec
import MeshCrypto

/// The Kademlia table: 256 buckets by log2 distance, k live entries each plus a replacement
/// cache. Only verified nodes (they answered us at their address) enter; at most
/// ``bucketSubnetLimit`` entries per /24 in a bucket and ``tableSubnetLimit`` in the table
/// (local addresses exempt). Pure data structure: time is an input.
public struct RoutingTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var record: NodeRecord
        /// Where it answered from (may differ from the record, e.g. behind NAT).
        public var endpoint: Endpoint
        public var addedAt: Instant
        public var lastSeen: Instant
        public var failures: Int
    }

    public let localId: Ed25519.PublicKey
    public let k: Int
    public var bucketSubnetLimit = 2
    public var tableSubnetLimit = 10
    public private(set) var buckets: [[Entry]]
    public private(set) var replacements: [[Entry]]
    var subnetCounts: [[UInt8]: Int] = [:]

    public init(localId: Ed25519.PublicKey, k: Int = 16) {
        self.localId = localId
        self.k = k
        self.buckets = Array(repeating: [], count: 257)
        self.replacements = Array(repeating: [], count: 257)
    }

    public var count: Int { self.buckets.reduce(0) { $0 + $1.count } }
    public var all: [Entry] { self.buckets.flatMap { $0 } }

    public func entry(_ id: Ed25519.PublicKey) -> Entry? {
        let d = Distance.log2(self.localId, id)
        return self.buckets[d].first { $0.record.nodeId == id }
    }

    /// What happened to an offered node.
    public enum Outcome: Equatable { case added, updated, replacement, rejected(String) }

    /// Offers a verified node: updates it if present (a newer record replaces an older one),
    /// adds it if its bucket has room and the diversity limits allow, otherwise keeps it as
    /// a replacement.
    @discardableResult
    public mutating func add(_ record: NodeRecord, endpoint: Endpoint, now: Instant) -> Outcome {
        let id = record.nodeId
        guard id != self.localId else { return .rejected("self") }
        let d = Distance.log2(self.localId, id)
        if let i = self.buckets[d].firstIndex(where: { $0.record.nodeId == id }) {
            var e = self.buckets[d].remove(at: i)
            if record.seq >= e.record.seq { e.record = record }
            if e.endpoint != endpoint {
                self.unaccount(e.endpoint)
                e.endpoint = endpoint
                self.account(endpoint)
            }
            e.lastSeen = now
            e.failures = 0
            self.buckets[d].append(e)  // most recently seen last
            return .updated
        }
        let entry = Entry(record: record, endpoint: endpoint, addedAt: now, lastSeen: now, failures: 0)
        if !endpoint.isLocal {
            let sub = endpoint.subnet
            if self.buckets[d].filter({ $0.endpoint.subnet == sub && !$0.endpoint.isLocal }).count >= self.bucketSubnetLimit {
                return .rejected("/24 limit in bucket")
            }
            if (self.subnetCounts[sub] ?? 0) >= self.tableSubnetLimit { return .rejected("/24 limit in table") }
        }
        if self.buckets[d].count < self.k {
            self.buckets[d].append(entry)
            self.account(endpoint)
            self.replacements[d].removeAll { $0.record.nodeId == id }
            return .added
        }
        self.replacements[d].removeAll { $0.record.nodeId == id }
        self.replacements[d].append(entry)
        if self.replacements[d].count > self.k { self.replacements[d].removeFirst() }
        return .replacement
    }

    /// Removes a node that stopped answering; a replacement takes its place.
    public mutating func remove(_ id: Ed25519.PublicKey) {
        let d = Distance.log2(self.localId, id)
        guard let i = self.buckets[d].firstIndex(where: { $0.record.nodeId == id }) else {
            self.replacements[d].removeAll { $0.record.nodeId == id }
            return
        }
        let e = self.buckets[d].remove(at: i)
        self.unaccount(e.endpoint)
        while let r = self.replacements[d].popLast() {
            if case .added = self.add(r.record, endpoint: r.endpoint, now: r.lastSeen) { break }
        }
    }

    /// Marks a failed liveness check; after `limit` failures the node is removed.
    public mutating func failed(_ id: Ed25519.PublicKey, limit: Int = 2) {
        let d = Distance.log2(self.localId, id)
        guard let i = self.buckets[d].firstIndex(where: { $0.record.nodeId == id }) else { return }
        self.buckets[d][i].failures += 1
        if self.buckets[d][i].failures >= limit { self.remove(id) }
    }

    /// Entries at exactly these log2 distances, at most `limit`.
    public func entries(atDistances distances: [UInt16], limit: Int) -> [Entry] {
        var out: [Entry] = []
        for d in distances where d >= 1 && d <= 256 {
            for e in self.buckets[Int(d)] where out.count < limit { out.append(e) }
        }
        return out
    }

    /// The `n` entries closest to `target`.
    public func closest(to target: Ed25519.PublicKey, count n: Int) -> [Entry] {
        // Start from the target's bucket and widen; sort the candidates exactly.
        let all = self.all
        if all.count <= n { return all.sorted { Distance.closer($0.record.nodeId, $1.record.nodeId, to: target) } }
        return Array(all.sorted { Distance.closer($0.record.nodeId, $1.record.nodeId, to: target) }.prefix(n))
    }

    /// The lowest bucket a node of a network like ours is expected to have an entry in, or
    /// nil while we know fewer than k nodes. With s entries at distances up to j (a share
    /// 2^(j − 256) of the id space), the network holds about s · 2^(256 − j) nodes at least (a
    /// full bucket keeps only k); a table's bucket i holds about one eighth of a node when
    /// n · 2^(i − 257) = 1/8, i.e. i = 254 − log2 n (deeper buckets are rarely worth a slot;
    /// shallower ones often hold a node). The estimate is the largest over the distances j
    /// with at least k entries up to them (fewer are noise): an entry added, by anyone, can
    /// only raise it and so lower the floor (more buckets asked), never raise it.
    public func densityFloor() -> Int? {
        guard self.count >= self.k else { return nil }
        var s = 0, log2n = 0
        for j in 1...256 {
            s += self.buckets[j].count
            // log2 of s · 2^(256 − j), rounded up: the floor errs towards one bucket too deep.
            if s >= self.k { log2n = max(log2n, (256 - j) + (Int.bitWidth - (s - 1).leadingZeroBitCount)) }
        }
        return max(1, 254 - log2n)
    }

    /// The least recently seen entry of the `i`-th non-empty bucket (for revalidation).
    public func stalest(nonEmptyIndex i: Int) -> Entry? {
        let nonEmpty = self.buckets.filter { !$0.isEmpty }
        guard !nonEmpty.isEmpty else { return nil }
        return nonEmpty[i % nonEmpty.count].first
    }

    mutating func account(_ e: Endpoint) {
        guard !e.isLocal else { return }
        self.subnetCounts[e.subnet, default: 0] += 1
    }

    mutating func unaccount(_ e: Endpoint) {
        guard !e.isLocal else { return }
        let s = e.subnet
        self.subnetCounts[s] = max(0, (self.subnetCounts[s] ?? 1) - 1)
        if self.subnetCounts[s] == 0 { self.subnetCounts[s] = nil }
    }
}
