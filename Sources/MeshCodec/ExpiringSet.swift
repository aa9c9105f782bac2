/// A set whose members expire in insertion order and that never holds more than `capacity`:
/// for caches filled by others (seen message ids, served requests). Every member lives
/// `ttl`, so expiry order is insertion order and both bounds cost O(1) amortised — no sweep
/// over the whole set, however an attacker fills it.
public struct ExpiringSet<Member: Hashable> {
    // Inlinable (with its storage visible to the optimizer) so that other modules get it
    // specialized for their member type: generic, every insert cost metadata lookups and
    // value-witness calls (3-4 % of a whole-node simulation, in the gossip seen table).
    @usableFromInline var expiry: [Member: UInt64] = [:]
    @usableFromInline var order: [(Member, UInt64)] = []
    @usableFromInline var head = 0
    public let capacity: Int
    public let ttl: UInt64

    @inlinable
    public init(capacity: Int, ttl: UInt64) {
        precondition(capacity > 0, "an ExpiringSet needs room for one member")
        self.capacity = capacity
        self.ttl = ttl
    }

    @inlinable
    public var count: Int { self.expiry.count }

    /// Whether `m` is a member at `now`.
    @inlinable
    public func contains(_ m: Member, now: UInt64) -> Bool { !self.expiry.isEmpty && (self.expiry[m] ?? 0) > now }

    /// Adds `m` (or renews it); returns false if it was a member already. Expired members and,
    /// past the capacity, the oldest ones make room.
    @inlinable @discardableResult
    public mutating func insert(_ m: Member, now: UInt64) -> Bool {
        self.expire(now: now)
        let fresh = !self.contains(m, now: now)
        let until = now.addingSaturated(self.ttl)
        self.expiry[m] = until
        self.order.append((m, until))
        // Renewals leave stale entries behind; the queue stays within twice the capacity.
        while self.expiry.count > self.capacity || self.order.count - self.head > 2 * self.capacity { self.dropOldest() }
        self.compact()
        return fresh
    }

    /// Forgets members whose time is up.
    @inlinable
    public mutating func expire(now: UInt64) {
        while self.head < self.order.count, self.order[self.head].1 <= now { self.dropOldest() }
        self.compact()
    }

    @inlinable
    mutating func dropOldest() {
        let (m, until) = self.order[self.head]
        self.head += 1
        // A renewed member has a later entry further on; only its last entry removes it.
        if self.expiry[m] == until { self.expiry[m] = nil }
    }

    @inlinable
    mutating func compact() {
        if self.head > 1024 && self.head * 2 > self.order.count {
            self.order.removeFirst(self.head)
            self.head = 0
        }
    }
}
