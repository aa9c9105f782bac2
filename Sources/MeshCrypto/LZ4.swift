internal import CLZ4
import MeshCodec

/// LZ4 block compression with bounded decompression.
///
/// Compressed data on the wire always travels with its declared decompressed size, and the
/// receiver checks that size against its own limit *before* allocating, so a decompression
/// bomb is an error and never an allocation.
public enum LZ4 {
    static var versionString: String { String(cString: LZ4_versionString()) }

    /// The largest input LZ4 accepts in one block (about 2 GB).
    public static let maxInputSize = 0x7E00_0000

    /// Compresses `input` as one raw LZ4 block. The corresponding C function is
    /// `LZ4_compress_default`.
    public static func compress(_ input: some ContiguousBytesView) throws(CryptoError) -> [UInt8] {
        try input.withBytes { (src: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] in
            guard src.count <= maxInputSize else { throw .compressionFailed }
            if src.count == 0 { return [] }
            let bound = Int(LZ4_compressBound(Int32(src.count)))
            var written = 0
            let out = [UInt8](unsafeUninitializedCapacity: bound) { buf, count in
                let n = LZ4_compress_default(
                    src.baseAddress!.assumingMemoryBound(to: CChar.self),
                    UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                    Int32(src.count), Int32(bound))
                written = Int(n)
                count = max(0, written)
            }
            guard written > 0 else { throw .compressionFailed }
            return out
        }
    }

    /// Decompresses a raw block that must expand to exactly `originalSize` bytes, which
    /// must not exceed `limit`. The corresponding C function is `LZ4_decompress_safe`.
    public static func decompress(
        _ block: some ContiguousBytesView, originalSize: Int, limit: Int
    ) throws(CryptoError) -> [UInt8] {
        guard originalSize >= 0 else { throw .decompressionFailed }
        guard originalSize <= limit else { throw .decompressedSizeExceedsLimit(declared: originalSize, limit: limit) }
        return try block.withBytes { (src: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] in
            if originalSize == 0 {
                guard src.count == 0 else { throw .decompressionFailed }
                return []
            }
            guard src.count > 0, src.count <= maxInputSize else { throw .decompressionFailed }
            var produced = -1
            let out = [UInt8](unsafeUninitializedCapacity: originalSize) { buf, count in
                let n = LZ4_decompress_safe(
                    src.baseAddress!.assumingMemoryBound(to: CChar.self),
                    UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self),
                    Int32(src.count), Int32(originalSize))
                produced = Int(n)
                count = produced == originalSize ? originalSize : 0
            }
            guard produced == originalSize else { throw .decompressionFailed }
            return out
        }
    }

    /// Compresses with the original size in front (varint), a self-describing form.
    public static func compressSized(_ input: [UInt8]) throws(CryptoError) -> [UInt8] {
        var w = ByteWriter(capacity: input.count / 2 + 16)
        w.varint(input.count)
        w.raw(try compress(input))
        return w.bytes
    }

    /// Reverses ``compressSized(_:)``, refusing declared sizes above `limit`.
    public static func decompressSized(_ data: [UInt8], limit: Int) throws(CryptoError) -> [UInt8] {
        var r = ByteReader(data)
        let declared: UInt64
        do { declared = try r.varint() } catch { throw .decompressionFailed }
        guard declared <= UInt64(limit) else {
            throw .decompressedSizeExceedsLimit(declared: declared > UInt64(Int.max) ? Int.max : Int(declared), limit: limit)
        }
        return try data.withBytes { (all: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] in
            try decompress(UnsafeRawBufferPointer(rebasing: all[r.offset...]), originalSize: Int(declared), limit: limit)
        }
    }
}
