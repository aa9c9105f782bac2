/// The simulator's only source of randomness: xoshiro256** seeded through SplitMix64.
/// The same seed gives the same stream on every machine.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        self.s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always)
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(self.s.1 &* 5, 7) &* 9
        let t = self.s.1 << 17
        self.s.2 ^= self.s.0
        self.s.3 ^= self.s.1
        self.s.1 ^= self.s.2
        self.s.0 ^= self.s.3
        self.s.2 ^= t
        self.s.3 = Self.rotl(self.s.3, 45)
        return result
    }

    /// A double in [0, 1).
    public mutating func unit() -> Double { Double(self.next() >> 11) * 0x1.0p-53 }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { p > 0 && self.unit() < p }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            var v = self.next()
            for _ in 0..<8 where out.count < count {
                out.append(UInt8(truncatingIfNeeded: v))
                v >>= 8
            }
        }
        return out
    }

    /// A child generator for an independent stream (per node), derived deterministically.
    public mutating func fork() -> SimRandom { SimRandom(seed: self.next()) }
}
