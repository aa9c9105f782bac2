import Foundation
import MeshChain
import MeshCodec
import MeshHTTP
import MeshNodeCore
import MeshSockets

/// How fast the best block climbs and when it should reach a target (sans-IO: the informant
/// feeds it samples of `now` and the best number; nothing here reads a clock). The speed is
/// measured over the last ``window`` of samples, so a stall shows within half a minute.
struct SyncProgress: Sendable, Equatable {
    /// Nanoseconds of history the speed is measured over.
    static let window: UInt64 = 30_000_000_000
    private(set) var samples: [(at: UInt64, best: UInt64)] = []

    static func == (a: SyncProgress, b: SyncProgress) -> Bool {
        a.samples.count == b.samples.count && zip(a.samples, b.samples).allSatisfy { $0.at == $1.at && $0.best == $1.best }
    }

    /// Records the best block number at `now` (monotonic nanoseconds).
    mutating func record(now: UInt64, best: UInt64) {
        if let last = self.samples.last, now < last.at { self.samples.removeAll() }  // a clock that went back: start over
        self.samples.append((now, best))
        while let first = self.samples.first, self.samples.count > 2, now &- first.at > Self.window { self.samples.removeFirst() }
        if self.samples.count > 64 { self.samples.removeFirst(self.samples.count - 64) }
    }

    /// Blocks per second over the window (0 until two samples, or when the best went back).
    var blocksPerSecond: Double {
        guard let first = self.samples.first, let last = self.samples.last, last.at > first.at, last.best > first.best else { return 0 }
        return Double(last.best - first.best) / (Double(last.at - first.at) / 1e9)
    }

    /// Seconds until `target` at the current speed; nil when there is no progress to measure.
    func eta(best: UInt64, target: UInt64) -> Double? {
        let speed = self.blocksPerSecond
        guard target > best, speed > 0 else { return nil }
        return Double(target - best) / speed
    }

    /// `45s`, `3m 12s`, `2h 05m`.
    static func format(seconds: Double) -> String {
        let s = Int(min(seconds, 8_640_000).rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m \(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h \(String(format: "%02d", s % 3600 / 60))m"
    }
}

extension Node {
    /// The best block any peer claims, or ours when it is higher (claims are hints: a peer
    /// that cannot show its blocks is corrected to our best, see `importSynced`).
    var syncTarget: UInt64 { max(self.chain.best.number, self.core.peers.connected.values.map { $0.best.number }.max() ?? 0) }
}

/// The node's histograms (metrics).
struct NodeHistograms {
    /// Seconds the node spent on a peer's message until each block it carried was imported.
    var importSeconds = Histogram.seconds()
    /// A block's age (since its timestamp) when it was finalized here.
    var finalityLagSeconds = Histogram(bounds: [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600])
}

extension Node {
    /// Measures what the core reports: a block imported from a peer (the time since the
    /// message carrying it, or the previous import from it, arrived), a block finalized (its age).
    func observe(_ e: NodeEvent) {
        switch e {
        case .imported(_, _, let produced):
            guard !produced, let mark = self.importMark else { return }
            let now = EventLoop.now()
            self.histograms.importSeconds.observe(Double(now &- mark) / 1e9)
            self.importMark = now
        case .finalized(let p):
            if let h = self.chain.header(p.hash) {
                self.histograms.finalityLagSeconds.observe(Double(SystemTimeSource.wallMillis().subtractingSaturated(h.timestamp)) / 1000)
            }
        case .epoch:
            break
        }
    }
}
