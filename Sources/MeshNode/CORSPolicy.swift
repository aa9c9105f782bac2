/// Which browser origins may call the JSON-RPC server (`--rpc-cors`), as Substrate's
/// `--rpc-cors`: by default pages served from this machine (`http(s)://localhost:*` and
/// `http(s)://127.0.0.1:*`); `all` lets any origin in; otherwise a list of exact origins.
/// Requests without an `Origin` header (curl, SDKs, the CLI) are not browsers and always pass.
public struct CORSPolicy: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        case any
        case localhost
        case origins(Set<String>)
    }

    public var rule: Rule

    public init(_ rule: Rule = .localhost) { self.rule = rule }

    /// Parses the flag's value: `all`, `localhost`, or comma-separated origins.
    public init?(flag: String) {
        func trimmed<S: StringProtocol>(_ s: S) -> String { String(s.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
        let value = trimmed(flag)
        switch value {
        case "all", "*": self.rule = .any
        case "localhost", "": self.rule = .localhost
        default:
            let list = value.split(separator: ",").map { trimmed($0) }
            guard !list.isEmpty, list.allSatisfy({ ($0.hasPrefix("http://") || $0.hasPrefix("https://")) && !$0.hasSuffix("/") }) else { return nil }
            self.rule = .origins(Set(list))
        }
    }

    /// Whether a request with this `Origin` header (nil: none) may be served.
    public func allows(_ origin: String?) -> Bool {
        guard let origin else { return true }
        switch self.rule {
        case .any: return true
        case .origins(let set): return set.contains(origin)
        case .localhost:
            for scheme in ["http://", "https://"] {
                for host in ["localhost", "127.0.0.1", "[::1]"] {
                    let base = scheme + host
                    if origin == base { return true }
                    if origin.hasPrefix(base + ":"), let port = UInt16(origin.dropFirst(base.count + 1)), port > 0 { return true }
                }
            }
            return false
        }
    }
}
