/// Reads a fuzzer's bytes as structured choices — integers, flags, lengths, picks — so a
/// target can build valid envelopes (signed votes, sealed frames, well-formed headers) around
/// hostile fields. Reading past the end yields zeros: every input is a complete program.
public struct FuzzInput {
    let bytes: [UInt8]
    var offset = 0
    /// Draws made as a random source (see `next()`).
    var draws: UInt64 = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isEmpty: Bool { self.offset >= self.bytes.count }
    public var remaining: Int { max(0, self.bytes.count - self.offset) }

    public mutating func u8() -> UInt8 {
        guard self.offset < self.bytes.count else { return 0 }
        defer { self.offset += 1 }
        return self.bytes[self.offset]
    }

    public mutating func bool() -> Bool { self.u8() & 1 == 1 }
    public mutating func u16() -> UInt16 { UInt16(self.u8()) << 8 | UInt16(self.u8()) }
    public mutating func u32() -> UInt32 { UInt32(self.u16()) << 16 | UInt32(self.u16()) }
    public mutating func u64() -> UInt64 { UInt64(self.u32()) << 32 | UInt64(self.u32()) }

    /// An integer that is usually small, sometimes at the edges (0, near 2^64) — where
    /// overflow bugs live.
    public mutating func interesting() -> UInt64 {
        switch self.u8() % 8 {
        case 0: return 0
        case 1: return UInt64.max &- UInt64(self.u8())
        case 2: return UInt64(1) << (self.u8() % 64)
        case 3: return self.u64()
        default: return UInt64(self.u16())
        }
    }

    /// Up to `max` bytes, length chosen by the input.
    public mutating func bytes(max: Int) -> [UInt8] {
        let n = min(Int(self.u16()) % (max + 1), self.remaining)
        defer { self.offset += n }
        return Array(self.bytes[self.offset..<(self.offset + n)])
    }

    /// Exactly `n` bytes (zero-padded at the end of the input).
    public mutating func fixed(_ n: Int) -> [UInt8] { (0..<n).map { _ in self.u8() } }

    /// The rest of the input.
    public mutating func rest() -> [UInt8] {
        defer { self.offset = self.bytes.count }
        return self.offset < self.bytes.count ? Array(self.bytes[self.offset...]) : []
    }

    /// One of `options` (non-empty).
    public mutating func pick<T>(_ options: [T]) -> T { options[Int(self.u8()) % options.count] }
}
