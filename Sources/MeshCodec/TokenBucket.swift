/// A token bucket: `burst` tokens at most, refilled at `rate` per second; each request takes
/// one (or `cost`). The per-peer and per-caller budget of every request type, in every module.
/// Time comes in as a value (any monotonic tick; `ticksPerSecond` says which), so the
/// simulator replays it.
public struct TokenBucket: Sendable, Equatable {
    public var tokens: Double
    public var updatedAt: UInt64

    public init(tokens: Double, updatedAt: UInt64) {
        self.tokens = tokens
        self.updatedAt = updatedAt
    }

    /// Refills for the time since the last call, then takes `cost` tokens if there are that many.
    public mutating func take(now: UInt64, rate: Double, burst: Double, cost: Double = 1, ticksPerSecond: Double = 1e9) -> Bool {
        let elapsed = Double(now &- min(now, self.updatedAt)) / ticksPerSecond
        self.tokens = min(burst, self.tokens + elapsed * rate)
        self.updatedAt = max(self.updatedAt, now)
        guard self.tokens >= cost else { return false }
        self.tokens -= cost
        return true
    }
}
