internal import CSodium

// Why this file exists: every secure-channel handshake draws a fresh ephemeral X25519 key on
// each side, and libsodium derives its public key with the Montgomery ladder on the base
// point, as slow as a Diffie-Hellman (about 28 us here). The same point comes from libsodium's
// fixed-base Edwards multiplication (precomputed table, about 15 us), which clamps the scalar
// exactly as X25519 does, followed by the birational map to the Montgomery curve,
// u = (1 + y) / (1 - y) (RFC 7748, section 4.1): one field inversion. The map works on the
// public point only (y is what the public key encodes), so it need not run in constant time;
// the secret scalar is only ever handed to libsodium.

extension X25519 {
    /// The X25519 public key of the 32-byte scalar at `secret` (clamped as X25519 clamps):
    /// the fixed-base Edwards multiplication mapped to the Montgomery u-coordinate, or the
    /// Montgomery ladder when the Edwards result is the identity (a scalar that is a
    /// multiple of the group order) or not canonical.
    /// The corresponding C functions are `crypto_scalarmult_ed25519_base` and
    /// `crypto_scalarmult_base`.
    static func publicKey(of secret: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(secret.count == 32 && out.count == 32)
        let s = secret.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var edwards = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let rc = withUnsafeMutableBytes(of: &edwards) { e in
            crypto_scalarmult_ed25519_base(e.baseAddress!.assumingMemoryBound(to: UInt8.self), s)
        }
        if rc == 0, let u = Self.montgomeryU(edwardsY: edwards) {
            withUnsafeBytes(of: u.littleEndianLimbs) { o.update(from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 32) }
        } else {
            _ = crypto_scalarmult_base(o, s)
        }
    }

    /// The public key by the Montgomery ladder alone (what ``publicKey(of:into:)`` must equal).
    /// The corresponding C function is `crypto_scalarmult_base`.
    static func ladderPublicKey(of secret: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(secret.count == 32)
        var pk = [UInt8](repeating: 0, count: 32)
        pk.withUnsafeMutableBytes { p in
            _ = crypto_scalarmult_base(p.baseAddress!.assumingMemoryBound(to: UInt8.self), secret.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return pk
    }

    /// u = (1 + y) / (1 - y) for the encoded Edwards point (little-endian words; the top bit is
    /// the sign of x, which the map does not need). Nil for y = 1 (the identity) and for a
    /// non-canonical y (at least p).
    static func montgomeryU(edwardsY encoded: (UInt64, UInt64, UInt64, UInt64)) -> FieldElement? {
        let y = FieldElement(
            UInt64(littleEndian: encoded.0), UInt64(littleEndian: encoded.1), UInt64(littleEndian: encoded.2),
            UInt64(littleEndian: encoded.3) & 0x7fff_ffff_ffff_ffff)
        guard y.isBelowPrime, y != FieldElement(1, 0, 0, 0) else { return nil }
        // 1 + y <= p and p + 1 - y >= 2: neither overflows nor borrows for y < p.
        let numerator = y.adding(1)
        let denominator = FieldElement.primePlusOne.subtracting(y)
        return numerator.multiplied(by: denominator.inverse()).reduced()
    }

    /// An element of the field of p = 2^255 - 19, as four 64-bit words (least significant
    /// first) holding any value below 2^256; ``reduced()`` gives the value below p.
    struct FieldElement: Equatable {
        var w0: UInt64
        var w1: UInt64
        var w2: UInt64
        var w3: UInt64

        init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) {
            self.w0 = w0
            self.w1 = w1
            self.w2 = w2
            self.w3 = w3
        }

        static let prime = FieldElement(0xffff_ffff_ffff_ffed, .max, .max, 0x7fff_ffff_ffff_ffff)
        static let primePlusOne = FieldElement(0xffff_ffff_ffff_ffee, .max, .max, 0x7fff_ffff_ffff_ffff)

        /// The 32 little-endian bytes of the value as held.
        var littleEndianLimbs: (UInt64, UInt64, UInt64, UInt64) {
            (self.w0.littleEndian, self.w1.littleEndian, self.w2.littleEndian, self.w3.littleEndian)
        }

        /// Whether the value as held is below p.
        var isBelowPrime: Bool { self.subtractingPrime() == nil }

        /// The value minus p, or nil when it is below p.
        func subtractingPrime() -> FieldElement? {
            let p = Self.prime
            let (d0, b0) = self.w0.subtractingReportingOverflow(p.w0)
            let (d1, b1) = Self.subtract(self.w1, p.w1, borrow: b0)
            let (d2, b2) = Self.subtract(self.w2, p.w2, borrow: b1)
            let (d3, b3) = Self.subtract(self.w3, p.w3, borrow: b2)
            return b3 ? nil : FieldElement(d0, d1, d2, d3)
        }

        static func subtract(_ a: UInt64, _ b: UInt64, borrow: Bool) -> (UInt64, Bool) {
            let (d, o1) = a.subtractingReportingOverflow(b)
            let (e, o2) = d.subtractingReportingOverflow(borrow ? 1 : 0)
            return (e, o1 || o2)
        }

        /// The value below p (values held are below 2^256 = 2p + 38: at most two subtractions).
        func reduced() -> FieldElement {
            var v = self
            while let d = v.subtractingPrime() { v = d }
            return v
        }

        /// self + k for a value and k small enough that the sum stays below 2^256.
        func adding(_ k: UInt64) -> FieldElement {
            let (s0, c0) = self.w0.addingReportingOverflow(k)
            let (s1, c1) = self.w1.addingReportingOverflow(c0 ? 1 : 0)
            let (s2, c2) = self.w2.addingReportingOverflow(c1 ? 1 : 0)
            let s3 = self.w3 &+ (c2 ? 1 : 0)
            return FieldElement(s0, s1, s2, s3)
        }

        /// self - other for other at most self (no borrow out).
        func subtracting(_ other: FieldElement) -> FieldElement {
            let (d0, b0) = self.w0.subtractingReportingOverflow(other.w0)
            let (d1, b1) = Self.subtract(self.w1, other.w1, borrow: b0)
            let (d2, b2) = Self.subtract(self.w2, other.w2, borrow: b1)
            let (d3, _) = Self.subtract(self.w3, other.w3, borrow: b2)
            return FieldElement(d0, d1, d2, d3)
        }

        /// r += a * b + carry, carry = the high word.
        @inline(__always)
        static func multiplyAdd(_ a: UInt64, _ b: UInt64, _ r: inout UInt64, _ carry: inout UInt64) {
            let t = UInt128(a) * UInt128(b) + UInt128(r) + UInt128(carry)
            r = UInt64(truncatingIfNeeded: t)
            carry = UInt64(truncatingIfNeeded: t >> 64)
        }

        /// The product modulo p (below 2^256, not necessarily below p).
        func multiplied(by b: FieldElement) -> FieldElement {
            let a = self
            var r0: UInt64 = 0, r1: UInt64 = 0, r2: UInt64 = 0, r3: UInt64 = 0
            var r4: UInt64 = 0, r5: UInt64 = 0, r6: UInt64 = 0, r7: UInt64 = 0
            var c: UInt64 = 0
            Self.multiplyAdd(a.w0, b.w0, &r0, &c); Self.multiplyAdd(a.w0, b.w1, &r1, &c)
            Self.multiplyAdd(a.w0, b.w2, &r2, &c); Self.multiplyAdd(a.w0, b.w3, &r3, &c)
            r4 = c
            c = 0
            Self.multiplyAdd(a.w1, b.w0, &r1, &c); Self.multiplyAdd(a.w1, b.w1, &r2, &c)
            Self.multiplyAdd(a.w1, b.w2, &r3, &c); Self.multiplyAdd(a.w1, b.w3, &r4, &c)
            r5 = c
            c = 0
            Self.multiplyAdd(a.w2, b.w0, &r2, &c); Self.multiplyAdd(a.w2, b.w1, &r3, &c)
            Self.multiplyAdd(a.w2, b.w2, &r4, &c); Self.multiplyAdd(a.w2, b.w3, &r5, &c)
            r6 = c
            c = 0
            Self.multiplyAdd(a.w3, b.w0, &r3, &c); Self.multiplyAdd(a.w3, b.w1, &r4, &c)
            Self.multiplyAdd(a.w3, b.w2, &r5, &c); Self.multiplyAdd(a.w3, b.w3, &r6, &c)
            r7 = c
            // 2^256 = 38 (mod p): fold the high half into the low one.
            c = 0
            Self.multiplyAdd(r4, 38, &r0, &c); Self.multiplyAdd(r5, 38, &r1, &c)
            Self.multiplyAdd(r6, 38, &r2, &c); Self.multiplyAdd(r7, 38, &r3, &c)
            // What is left above 2^256 is c < 39: fold it once more. A carry out of the top
            // leaves the low word small, so adding 38 for it cannot carry again.
            let (s0, o0) = r0.addingReportingOverflow(c &* 38)
            let (s1, o1) = r1.addingReportingOverflow(o0 ? 1 : 0)
            let (s2, o2) = r2.addingReportingOverflow(o1 ? 1 : 0)
            let (s3, o3) = r3.addingReportingOverflow(o2 ? 1 : 0)
            return FieldElement(o3 ? s0 &+ 38 : s0, s1, s2, s3)
        }

        func squared() -> FieldElement { self.multiplied(by: self) }

        func squared(times n: Int) -> FieldElement {
            var v = self
            for _ in 0..<n { v = v.squared() }
            return v
        }

        /// self^(p - 2) = 1 / self for a non-zero value (Fermat), by the usual chain of 254
        /// squarings and 11 multiplications: p - 2 = 2^255 - 21.
        func inverse() -> FieldElement {
            let z2 = self.squared()  // 2
            let z9 = z2.squared(times: 2).multiplied(by: self)  // 9
            let z11 = z9.multiplied(by: z2)  // 11
            let z2_5_0 = z11.squared().multiplied(by: z9)  // 2^5 - 1
            let z2_10_0 = z2_5_0.squared(times: 5).multiplied(by: z2_5_0)  // 2^10 - 1
            let z2_20_0 = z2_10_0.squared(times: 10).multiplied(by: z2_10_0)  // 2^20 - 1
            let z2_40_0 = z2_20_0.squared(times: 20).multiplied(by: z2_20_0)  // 2^40 - 1
            let z2_50_0 = z2_40_0.squared(times: 10).multiplied(by: z2_10_0)  // 2^50 - 1
            let z2_100_0 = z2_50_0.squared(times: 50).multiplied(by: z2_50_0)  // 2^100 - 1
            let z2_200_0 = z2_100_0.squared(times: 100).multiplied(by: z2_100_0)  // 2^200 - 1
            let z2_250_0 = z2_200_0.squared(times: 50).multiplied(by: z2_50_0)  // 2^250 - 1
            return z2_250_0.squared(times: 5).multiplied(by: z11)  // 2^255 - 32 + 11
        }
    }
}
