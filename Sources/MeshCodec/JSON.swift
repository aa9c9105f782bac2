/// A JSON value with exact numbers.
///
/// Tensormesh parses JSON itself (JSON-RPC bodies, scenarios, genesis files) so that:
/// integers keep all 64 bits (rao amounts exceed 2^53), integers and floats stay distinct,
/// and hostile input meets explicit limits on size and nesting depth with a typed error.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number, kept as its text; read it with ``uint64``, ``int64`` or ``double``.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in input order; duplicate keys keep the last value on lookup.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y || (Double(x) != nil && Double(x) == Double(y))
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A JSON integer from a Swift integer.
    public static func int<I: BinaryInteger>(_ v: I) -> JSONValue { .number(String(v)) }
    /// A JSON number from a double (finite; NaN and infinities become null).
    public static func double(_ v: Double) -> JSONValue {
        guard v.isFinite else { return .null }
        if v == v.rounded() && abs(v) < 1e15 { return .number(String(Int64(v))) }
        return .number(String(v))
    }

    /// Member lookup on objects.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }

    /// Element lookup on arrays.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, index >= 0, index < items.count else { return nil }
        return items[index]
    }

    /// The value as a non-negative integer that fits in 64 bits (integers written as
    /// floats with no fraction, like `1e3`, are accepted).
    public var uint64: UInt64? {
        guard case .number(let text) = self else { return nil }
        if let v = UInt64(text) { return v }
        if let d = Double(text), d >= 0, d == d.rounded(), d < 18_446_744_073_709_551_616.0 { return UInt64(d) }
        return nil
    }

    /// The value as a signed 64-bit integer.
    public var int64: Int64? {
        guard case .number(let text) = self else { return nil }
        if let v = Int64(text) { return v }
        if let d = Double(text), d == d.rounded(), abs(d) < 9.2e18 { return Int64(d) }
        return nil
    }

    /// The value as a double.
    public var double: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }

    /// Whether the number was written with a fraction or exponent.
    public var isFloatLiteral: Bool {
        guard case .number(let text) = self else { return false }
        return text.contains(".") || text.contains("e") || text.contains("E")
    }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var object: [(String, JSONValue)]? { if case .object(let o) = self { return o } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }
}

/// Why JSON text could not be parsed.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Byte offset of the problem.
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(self.offset): \(self.reason)" }
}

extension JSONValue {
    /// Limits applied while parsing untrusted text.
    public struct Limits: Sendable {
        public var maxBytes: Int
        public var maxDepth: Int
        public init(maxBytes: Int = 64 << 20, maxDepth: Int = 64) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
        }
    }

    /// Parses one JSON document (surrounding whitespace allowed).
    public static func parse(_ bytes: [UInt8], limits: Limits = Limits()) throws(JSONError) -> JSONValue {
        guard bytes.count <= limits.maxBytes else { throw JSONError(offset: 0, reason: "document larger than \(limits.maxBytes) bytes") }
        var p = JSONParser(bytes: bytes, maxDepth: limits.maxDepth)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.i == bytes.count else { throw JSONError(offset: p.i, reason: "unexpected data after the document") }
        return v
    }

    /// Parses a string.
    public static func parse(_ text: String, limits: Limits = Limits()) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), limits: limits)
    }
}

struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var i = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func skipWhitespace() {
        while self.i < self.bytes.count {
            switch self.bytes[self.i] {
            case 0x20, 0x09, 0x0a, 0x0d: self.i += 1
            default: return
            }
        }
    }

    func fail(_ reason: String) -> JSONError { JSONError(offset: self.i, reason: reason) }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= self.maxDepth else { throw self.fail("nesting deeper than \(self.maxDepth)") }
        guard self.i < self.bytes.count else { throw self.fail("unexpected end of input") }
        switch self.bytes[self.i] {
        case UInt8(ascii: "{"): return try self.object(depth: depth)
        case UInt8(ascii: "["): return try self.array(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.string())
        case UInt8(ascii: "t"): try self.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try self.number()
        default: throw self.fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let w = word.withUTF8Buffer { Array($0) }
        guard self.i + w.count <= self.bytes.count, Array(self.bytes[self.i..<self.i + w.count]) == w else {
            throw self.fail("invalid literal")
        }
        self.i += w.count
    }

    mutating func number() throws(JSONError) -> JSONValue {
        let start = self.i
        if self.bytes[self.i] == UInt8(ascii: "-") { self.i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count, p.bytes[p.i] >= UInt8(ascii: "0"), p.bytes[p.i] <= UInt8(ascii: "9") { p.i += 1 }
            return p.i - s
        }
        let intStart = self.i
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw self.fail("number without digits") }
        if intDigits > 1 && self.bytes[intStart] == UInt8(ascii: "0") { throw self.fail("leading zero") }
        if self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: ".") {
            self.i += 1
            guard digits(&self) > 0 else { throw self.fail("fraction without digits") }
        }
        if self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: "e") || self.bytes[self.i] == UInt8(ascii: "E") {
            self.i += 1
            if self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: "+") || self.bytes[self.i] == UInt8(ascii: "-") { self.i += 1 }
            guard digits(&self) > 0 else { throw self.fail("exponent without digits") }
        }
        guard self.i - start <= 400 else { throw self.fail("number too long") }
        return .number(String(decoding: self.bytes[start..<self.i], as: UTF8.self))
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard self.i + 4 <= self.bytes.count else { throw self.fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw self.fail("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            self.i += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        self.i += 1
        var out: [UInt8] = []
        while true {
            guard self.i < self.bytes.count else { throw self.fail("unterminated string") }
            let c = self.bytes[self.i]
            if c == UInt8(ascii: "\"") {
                self.i += 1
                break
            }
            if c < 0x20 { throw self.fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                self.i += 1
                continue
            }
            self.i += 1
            guard self.i < self.bytes.count else { throw self.fail("unterminated escape") }
            let e = self.bytes[self.i]
            self.i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5c)
            case UInt8(ascii: "/"): out.append(0x2f)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try self.hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard self.i + 2 <= self.bytes.count, self.bytes[self.i] == UInt8(ascii: "\\"), self.bytes[self.i + 1] == UInt8(ascii: "u") else {
                        throw self.fail("unpaired surrogate")
                    }
                    self.i += 2
                    let low = try self.hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw self.fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw self.fail("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw self.fail("invalid code point") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw self.fail("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw self.fail("string is not valid UTF-8") }
        return s
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        self.i += 1
        var items: [JSONValue] = []
        self.skipWhitespace()
        if self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: "]") {
            self.i += 1
            return .array(items)
        }
        while true {
            self.skipWhitespace()
            items.append(try self.value(depth: depth + 1))
            self.skipWhitespace()
            guard self.i < self.bytes.count else { throw self.fail("unterminated array") }
            if self.bytes[self.i] == UInt8(ascii: ",") { self.i += 1; continue }
            if self.bytes[self.i] == UInt8(ascii: "]") { self.i += 1; return .array(items) }
            throw self.fail("expected ',' or ']'")
        }
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        self.i += 1
        var members: [(String, JSONValue)] = []
        self.skipWhitespace()
        if self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: "}") {
            self.i += 1
            return .object(members)
        }
        while true {
            self.skipWhitespace()
            guard self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: "\"") else { throw self.fail("expected a member name") }
            let key = try self.string()
            self.skipWhitespace()
            guard self.i < self.bytes.count, self.bytes[self.i] == UInt8(ascii: ":") else { throw self.fail("expected ':'") }
            self.i += 1
            self.skipWhitespace()
            members.append((key, try self.value(depth: depth + 1)))
            self.skipWhitespace()
            guard self.i < self.bytes.count else { throw self.fail("unterminated object") }
            if self.bytes[self.i] == UInt8(ascii: ",") { self.i += 1; continue }
            if self.bytes[self.i] == UInt8(ascii: "}") { self.i += 1; return .object(members) }
            throw self.fail("expected ',' or '}'")
        }
    }
}

// MARK: - Serialisation

extension JSONValue {
    /// Compact or indented JSON text. Object members keep their order unless `sortKeys`.
    public func serialized(pretty: Bool = false, sortKeys: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        self.write(into: &out, pretty: pretty, sortKeys: sortKeys, indent: 0)
        return String(decoding: out, as: UTF8.self)
    }

    func write(into out: inout [UInt8], pretty: Bool, sortKeys: Bool, indent: Int) {
        func newline(_ level: Int) {
            if pretty {
                out.append(0x0a)
                out.append(contentsOf: [UInt8](repeating: 0x20, count: level * 2))
            }
        }
        switch self {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .number(let n): out.append(contentsOf: Array(n.utf8))
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            // Arrays of scalars stay on one line even when pretty.
            let scalarOnly = items.allSatisfy { if case .array = $0 { return false }; if case .object = $0 { return false }; return true }
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")); if scalarOnly && pretty { out.append(0x20) } }
                if !scalarOnly { newline(indent + 1) }
                item.write(into: &out, pretty: pretty, sortKeys: sortKeys, indent: indent + 1)
            }
            if !scalarOnly && !items.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "]"))
        case .object(var members):
            if sortKeys { members.sort { $0.0 < $1.0 } }
            out.append(UInt8(ascii: "{"))
            for (k, (key, value)) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                JSONValue.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(0x20) }
                value.write(into: &out, pretty: pretty, sortKeys: sortKeys, indent: indent + 1)
            }
            if !members.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5c, 0x22])
            case 0x5c: out.append(contentsOf: [0x5c, 0x5c])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5c, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
    public init(nilLiteral: ()) { self = .null }
}
