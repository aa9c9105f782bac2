import Foundation
import MeshCodec
import MeshSubnet

/// Turns several miners' answers into one by a subnet's ``AnswerPolicy`` (pure).
public enum AnswerCombiner {
    /// One miner's verified answer.
    public struct Answer: Sendable {
        public var uid: UInt16
        public var incentive: Double
        public var body: [UInt8]
        public var arrivedNs: UInt64

        public init(uid: UInt16, incentive: Double, body: [UInt8], arrivedNs: UInt64) {
            self.uid = uid
            self.incentive = incentive
            self.body = body
            self.arrivedNs = arrivedNs
        }
    }

    /// The combined answer and the uids it came from.
    public static func combine(_ answers: [Answer], policy: AnswerPolicy) -> (body: [UInt8], uids: [UInt16])? {
        guard !answers.isEmpty else { return nil }
        switch policy {
        case .first:
            let a = answers.min { ($0.arrivedNs, $0.uid) < ($1.arrivedNs, $1.uid) }!
            return (a.body, [a.uid])
        case .best:
            let a = answers.max { ($0.incentive, -Int($0.uid)) < ($1.incentive, -Int($1.uid)) }!
            return (a.body, [a.uid])
        case .aggregate:
            let parsed = answers.map { try? JSONValue.parse($0.body, limits: .init(maxBytes: 8 << 20, maxDepth: 32)) }
            if parsed.allSatisfy({ $0 != nil }), let merged = median(parsed.map { $0! }) {
                return (Array(merged.serialized().utf8), answers.map(\.uid).sorted())
            }
            // Otherwise the answer most miners gave (ties: the highest incentive among them).
            var groups: [[UInt8]: [Answer]] = [:]
            for a in answers { groups[a.body, default: []].append(a) }
            let top = groups.values.max { l, r in
                (l.count, l.map(\.incentive).max()!) < (r.count, r.map(\.incentive).max()!)
            }!
            return (top[0].body, top.map(\.uid).sorted())
        }
    }

    /// Element-wise medians: numbers become their median, arrays and objects of the same
    /// shape are combined member by member, and anything else must be equal everywhere.
    static func median(_ values: [JSONValue]) -> JSONValue? {
        guard let first = values.first else { return nil }
        if values.allSatisfy({ $0.double != nil && $0.string == nil }) {
            let xs = values.compactMap(\.double).sorted()
            let m = xs.count % 2 == 1 ? xs[xs.count / 2] : (xs[xs.count / 2 - 1] + xs[xs.count / 2]) / 2
            return .double(m)
        }
        if let a = first.array {
            guard values.allSatisfy({ $0.array?.count == a.count }) else { return nil }
            var out: [JSONValue] = []
            for i in 0..<a.count {
                guard let m = median(values.map { $0.array![i] }) else { return nil }
                out.append(m)
            }
            return .array(out)
        }
        if let o = first.object {
            let keys = o.map(\.0)
            guard values.allSatisfy({ $0.object?.map(\.0) == keys }) else { return nil }
            var out: [(String, JSONValue)] = []
            for k in keys {
                guard let m = median(values.map { $0[k]! }) else { return nil }
                out.append((k, m))
            }
            return .object(out)
        }
        return values.allSatisfy({ $0 == first }) ? first : nil
    }
}
