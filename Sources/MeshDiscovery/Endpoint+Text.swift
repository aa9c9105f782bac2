extension Endpoint {
    /// Parses a numeric IPv4 (`a.b.c.d`) or IPv6 (RFC 4291 text, with `::` and an embedded
    /// IPv4 tail; optional brackets) address. Host names, zone ids and anything else are nil:
    /// this never resolves a name, so protocol cores can use it without I/O.
    public init?(numericHost host: String, port: UInt16) {
        var text = Substring(host)
        if text.hasPrefix("[") && text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let v4 = Self.parseIPv4(text) {
            self.init(ip: v4, port: port)
        } else if let v6 = Self.parseIPv6(text) {
            self.init(ip: v6, port: port)
        } else {
            return nil
        }
    }

    static func parseIPv4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            // Decimal only, no leading zeros (inet_pton refuses octal-looking forms too).
            guard (1...3).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), !(p.count > 1 && p.first == "0"),
                  let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func parseIPv6(_ s: Substring) -> [UInt8]? {
        guard s.count >= 2, s.count <= 45, s.contains(":") else { return nil }
        // Split at "::" (at most once).
        var halves: [Substring] = []
        var rest = s
        while let r = rest.firstRange(of: "::") {
            halves.append(rest[rest.startIndex..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        halves.append(rest)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowV4Tail: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            var out: [UInt8] = []
            for (i, f) in fields.enumerated() {
                if i == fields.count - 1, allowV4Tail, f.contains(".") {
                    guard let v4 = parseIPv4(f) else { return nil }
                    out += v4
                    continue
                }
                guard (1...4).contains(f.count), f.allSatisfy({ $0.isHexDigit }), let v = UInt16(f, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return out
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], allowV4Tail: true), all.count == 16 else { return nil }
            return all
        }
        guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true),
              head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}
