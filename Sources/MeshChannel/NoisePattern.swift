/// A Noise handshake pattern (Noise spec sections 7.4-7.5, 9 for PSK modifiers).
public struct NoisePattern: Sendable, Equatable {
    /// A token in a message pattern.
    public enum Token: String, Sendable {
        case e, s, ee, es, se, ss, psk
    }

    public var name: String
    /// Pre-message keys: the initiator's and the responder's (each empty, "s", "e" or "e, s").
    public var initiatorPreMessage: [Token]
    public var responderPreMessage: [Token]
    /// Message patterns, alternating initiator → responder.
    public var messages: [[Token]]

    /// Whether this is a one-way pattern (N, K, X): only the initiator sends.
    public var isOneWay: Bool { self.messages.count == 1 }

    /// Whether the pattern uses a PSK.
    public var usesPSK: Bool { self.messages.contains { $0.contains(.psk) } }

    static let fundamental: [String: ([NoisePattern.Token], [NoisePattern.Token], [[NoisePattern.Token]])] = [
        "N": ([], [.s], [[.e, .es]]),
        "K": ([.s], [.s], [[.e, .es, .ss]]),
        "X": ([], [.s], [[.e, .es, .s, .ss]]),
        "NN": ([], [], [[.e], [.e, .ee]]),
        "NK": ([], [.s], [[.e, .es], [.e, .ee]]),
        "NX": ([], [], [[.e], [.e, .ee, .s, .es]]),
        "XN": ([], [], [[.e], [.e, .ee], [.s, .se]]),
        "XK": ([], [.s], [[.e, .es], [.e, .ee], [.s, .se]]),
        "XX": ([], [], [[.e], [.e, .ee, .s, .es], [.s, .se]]),
        "KN": ([.s], [], [[.e], [.e, .ee, .se]]),
        "KK": ([.s], [.s], [[.e, .es, .ss], [.e, .ee, .se]]),
        "KX": ([.s], [], [[.e], [.e, .ee, .se, .s, .es]]),
        "IN": ([], [], [[.e, .s], [.e, .ee, .se]]),
        "IK": ([], [.s], [[.e, .es, .s, .ss], [.e, .ee, .se]]),
        "IX": ([], [], [[.e, .s], [.e, .ee, .se, .s, .es]]),
    ]

    /// Parses a pattern name with optional PSK modifiers, such as "XX", "IKpsk2", "NNpsk0+psk2".
    public init?(name: String) {
        var base = name
        var pskPositions: [Int] = []
        let chars = Array(name)
        var cut: Int?
        if chars.count >= 3 {
            for i in 0...(chars.count - 3) where chars[i] == "p" && chars[i + 1] == "s" && chars[i + 2] == "k" {
                cut = i
                break
            }
        }
        if let cut {
            base = String(chars[0..<cut])
            let mods = String(chars[cut...]).split(separator: "+")
            for m in mods {
                guard m.hasPrefix("psk"), let k = Int(m.dropFirst(3)) else { return nil }
                pskPositions.append(k)
            }
        }
        guard let (ip, rp, msgs) = Self.fundamental[base] else { return nil }
        var messages = msgs
        for k in pskPositions {
            if k == 0 {
                messages[0].insert(.psk, at: 0)
            } else {
                guard k <= messages.count else { return nil }
                messages[k - 1].append(.psk)
            }
        }
        self.name = name
        self.initiatorPreMessage = ip
        self.responderPreMessage = rp
        self.messages = messages
    }
}
