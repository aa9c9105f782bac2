internal import CSodium

/// Comparisons whose running time does not depend on the data.
public enum ConstantTime {
    /// Whether two buffers are equal, in time that depends only on their length.
    /// The corresponding C function is `sodium_memcmp`.
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.count == 0 { return true }
        return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }

    /// Whether two byte arrays are equal, in constant time for equal lengths.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in equals(pa, pb) } }
    }
}
