/// A point on a monotonic clock, in nanoseconds from an arbitrary origin: the one time type
/// the protocol cores take as input and their drivers pass in.
///
/// The node's driver reads it from the event loop's clock (`CLOCK_MONOTONIC`); the simulator
/// from its virtual clock. Cores never read a clock themselves, so a run under the simulator
/// replays exactly from its seed. Arithmetic saturates: a deadline computed from a hostile
/// or far-away instant never traps.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The clock's origin (virtual time zero in the simulator).
    public static let zero = Instant(nanoseconds: 0)
    /// Later than every real instant ("never").
    public static let distantFuture = Instant(nanoseconds: .max)

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    /// `self + d`, saturating at `distantFuture`.
    public static func + (a: Instant, d: Duration) -> Instant {
        Instant(nanoseconds: a.nanoseconds.addingSaturated(d.nanoseconds))
    }

    /// `self - d`, saturating at `zero`.
    public static func - (a: Instant, d: Duration) -> Instant {
        Instant(nanoseconds: a.nanoseconds.subtractingSaturated(d.nanoseconds))
    }

    /// The time from `earlier` to `self` (zero when `earlier` is later).
    public func since(_ earlier: Instant) -> Duration {
        .nanoseconds(Int64(clamping: self.nanoseconds.subtractingSaturated(earlier.nanoseconds)))
    }

    public var description: String { "\(Double(self.nanoseconds) / 1e9)s" }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to 0...UInt64.max (negative durations are 0).
    public var nanoseconds: UInt64 {
        let (s, atto) = self.components
        guard s >= 0 else { return 0 }
        let (ns, o1) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = ns.addingReportingOverflow(UInt64(atto / 1_000_000_000))
        return o1 || o2 ? .max : total
    }

    /// The duration in whole milliseconds (see `nanoseconds`).
    public var milliseconds: UInt64 { self.nanoseconds / 1_000_000 }
}
