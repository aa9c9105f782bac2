import MeshCodec

/// Per-key admission, sans-IO: the rate limit (a token bucket per key) and the quota (requests
/// per window), with what to tell a refused caller. Time is an input (Unix milliseconds).
public struct AccessControl: Sendable {
    /// The outcome for one request.
    public enum Decision: Equatable, Sendable {
        case admit
        /// Refused with 429; retry after this many seconds (at least 1).
        case limited(retryAfter: UInt64, reason: String)
    }

    struct State: Sendable {
        var bucket: TokenBucket
        var windowStart: UInt64
        var used: UInt64
    }

    var states: [String: State] = [:]

    public init() {}

    /// Admits a request of `key` at `now`, or says when to retry.
    public mutating func admit(_ key: APIKeys.Entry, now: UInt64) -> Decision {
        var s = self.states[key.name] ?? State(bucket: TokenBucket(tokens: key.burst, updatedAt: now), windowStart: now, used: 0)
        defer { self.states[key.name] = s }
        let window = key.quotaWindowSeconds.multipliedSaturated(by: 1000)
        if now.subtractingSaturated(s.windowStart) >= window {
            s.windowStart = now
            s.used = 0
        }
        if key.quota > 0 && s.used >= key.quota {
            let left = s.windowStart.addingSaturated(window).subtractingSaturated(now)
            return .limited(retryAfter: max(1, (left + 999) / 1000), reason: "quota of \(key.quota) requests per \(key.quotaWindowSeconds) s used up")
        }
        guard s.bucket.take(now: now, rate: key.ratePerSecond, burst: key.burst, ticksPerSecond: 1000) else {
            let missing = max(0, 1 - s.bucket.tokens)
            let seconds = (missing / key.ratePerSecond).rounded(.up)
            return .limited(retryAfter: max(1, UInt64(min(seconds, 86_400))), reason: "rate limit of \(key.ratePerSecond) requests per second")
        }
        s.used += 1
        return .admit
    }

    /// Requests counted against the key's quota in its current window.
    public func used(_ name: String) -> UInt64 { self.states[name]?.used ?? 0 }
}
