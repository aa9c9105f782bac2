import MeshCodec
import MeshTestSupport
import Testing

struct Sample: BinaryCodable, Equatable {
    var a: UInt8
    var b: UInt16
    var c: UInt32
    var d: UInt64
    var e: Int64
    var v: UInt64
    var bytes: [UInt8]
    var text: String
    var list: [UInt32]
    var opt: UInt64?
    var flag: Bool

    func encode(to w: inout ByteWriter) {
        w.u8(a); w.u16(b); w.u32(c); w.u64(d); w.i64(e); w.varint(v)
        w.bytes(bytes); w.string(text)
        w.list(list) { w, x in w.u32(x) }
        w.optional(opt) { w, x in w.u64(x) }
        w.bool(flag)
    }

    init(a: UInt8, b: UInt16, c: UInt32, d: UInt64, e: Int64, v: UInt64, bytes: [UInt8], text: String, list: [UInt32], opt: UInt64?, flag: Bool) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.e = e; self.v = v
        self.bytes = bytes; self.text = text; self.list = list; self.opt = opt; self.flag = flag
    }

    init(from r: inout ByteReader) throws(CodecError) {
        a = try r.u8(); b = try r.u16(); c = try r.u32(); d = try r.u64(); e = try r.i64(); v = try r.varint()
        bytes = try r.bytes(field: "bytes", limit: 1024)
        text = try r.string(field: "text", limit: 256)
        list = try r.list(field: "list", limit: 64, minElementSize: 4) { (r: inout ByteReader) throws(CodecError) in try r.u32() }
        opt = try r.optional { (r: inout ByteReader) throws(CodecError) in try r.u64() }
        flag = try r.bool()
    }

    static func random(_ rng: inout SeededRNG) -> Sample {
        Sample(a: .random(in: 0...255, using: &rng), b: .random(in: 0...UInt16.max, using: &rng),
               c: .random(in: 0...UInt32.max, using: &rng), d: .random(in: 0...UInt64.max, using: &rng),
               e: .random(in: Int64.min...Int64.max, using: &rng), v: UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng),
               bytes: rng.bytes(Int.random(in: 0...100, using: &rng)), text: "héllo \(rng.next())",
               list: (0..<Int.random(in: 0...10, using: &rng)).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) },
               opt: Bool.random(using: &rng) ? rng.next() : nil, flag: Bool.random(using: &rng))
    }
}

@Suite("Binary codec")
struct CodecTests {
    @Test("round trips of random values")
    func roundTrip() throws {
        var rng = SeededRNG(seed: 1)
        for _ in 0..<500 {
            let s = Sample.random(&rng)
            #expect(try Sample.decode(s.encoded) == s)
        }
    }

    @Test("fixed-width integers are big-endian")
    func endianness() {
        var w = ByteWriter()
        w.u16(0x0102); w.u32(0x0304_0506); w.u64(0x0708_090a_0b0c_0d0e)
        #expect(w.bytes == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    }

    static let varintCases: [(UInt64, [UInt8])] = [
        (0, [0]), (127, [0x7f]), (128, [0x80, 0x01]), (300, [0xac, 0x02]),
        (UInt64.max, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ]

    @Test("varints are minimal and canonical", arguments: varintCases)
    func varints(value: UInt64, encoding: [UInt8]) throws {
        var w = ByteWriter()
        w.varint(value)
        #expect(w.bytes == encoding)
        var r = ByteReader(encoding)
        #expect(try r.varint() == value)
        #expect(r.isAtEnd)
    }

    @Test("non-canonical and overflowing varints are refused")
    func badVarints() {
        var r1 = ByteReader([0x80, 0x00])
        #expect(throws: CodecError.nonCanonicalVarint) { try r1.varint() }
        var r2 = ByteReader([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
        #expect(throws: CodecError.varintOverflow) { try r2.varint() }
        var r3 = ByteReader([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01])
        #expect(throws: CodecError.varintOverflow) { try r3.varint() }
        var r4 = ByteReader([0x80])
        #expect(throws: CodecError.self) { try r4.varint() }
    }

    @Test("declared lengths over the limit are refused before allocation")
    func bounds() {
        var w = ByteWriter()
        w.varint(UInt64(1) << 40)
        var r = ByteReader(w.bytes)
        #expect(throws: CodecError.lengthExceedsLimit(field: "bytes", length: 1 << 40, limit: 1024)) {
            try r.bytes(field: "bytes", limit: 1024)
        }
        // A list count within the limit but larger than the bytes present.
        var w2 = ByteWriter()
        w2.varint(60)
        var r2 = ByteReader(w2.bytes)
        #expect(throws: CodecError.self) {
            try r2.list(limit: 64, minElementSize: 4) { (r: inout ByteReader) throws(CodecError) in try r.u32() }
        }
    }

    @Test("trailing bytes, bad booleans and invalid UTF-8 are errors")
    func strictness() {
        var rng = SeededRNG(seed: 2)
        let s = Sample.random(&rng)
        #expect(throws: CodecError.trailingBytes(count: 1)) { try Sample.decode(s.encoded + [0]) }
        var r = ByteReader([2])
        #expect(throws: CodecError.self) { try r.bool() }
        var w = ByteWriter()
        w.bytes([0xff, 0xfe])
        var r2 = ByteReader(w.bytes)
        #expect(throws: CodecError.invalidUTF8(field: "s")) { try r2.string(field: "s", limit: 10) }
    }

    @Test("truncation at every position is a typed error")
    func truncation() {
        var rng = SeededRNG(seed: 3)
        let bytes = Sample.random(&rng).encoded
        for cut in 0..<bytes.count {
            #expect(throws: CodecError.self) { try Sample.decode(Array(bytes.prefix(cut))) }
        }
    }

    @Test("random and bit-flipped input never traps")
    func fuzz() {
        var rng = SeededRNG(seed: 4)
        let good = Sample.random(&rng).encoded
        for _ in 0..<20_000 {
            var input: [UInt8]
            if Bool.random(using: &rng) {
                input = rng.bytes(Int.random(in: 0...200, using: &rng))
            } else {
                input = good
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<input.count, using: &rng)
                    input[i] ^= UInt8.random(in: 1...255, using: &rng)
                }
            }
            _ = try? Sample.decode(input)
            _ = try? Envelope.decode(input)
        }
    }

    @Test("envelopes carry version and kind")
    func envelope() throws {
        let env = Envelope(kind: 42, payload: [1, 2, 3])
        let decoded = try Envelope.decode(env.encoded)
        #expect(decoded == env)
        var bad = env.encoded
        bad[0] = 9
        #expect(throws: CodecError.unsupportedVersion(9)) { try Envelope.decode(bad) }
    }

    @Test("hex")
    func hexCoding() {
        #expect(Hex.encode([0x00, 0xab, 0xff]) == "00abff")
        #expect(Hex.decode("0x00ABff") == [0x00, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("aabb", count: 3) == nil)
    }
}
