/// Types whose bytes can be lent as a contiguous raw buffer without copying.
///
/// Lets the primitives accept `[UInt8]`, `ArraySlice<UInt8>` and raw buffers alike. The
/// closure may throw a typed error, which is passed through unchanged.
public protocol ContiguousBytesView {
    /// Calls `body` with the bytes. The pointer must not escape.
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
}

extension Array: ContiguousBytesView where Element == UInt8 {
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = self.withUnsafeBytes { buf in Result { () throws(E) -> R in try body(buf) } }
        return try result.get()
    }
}

extension ArraySlice: ContiguousBytesView where Element == UInt8 {
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = self.withUnsafeBytes { buf in Result { () throws(E) -> R in try body(buf) } }
        return try result.get()
    }
}

extension UnsafeRawBufferPointer: ContiguousBytesView {
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(self)
    }
}

extension SecureBytes: ContiguousBytesView {
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = self.withUnsafeBytes { buf in Result { () throws(E) -> R in try body(buf) } }
        return try result.get()
    }
}

extension Array where Element == UInt8 {
    /// Typed-throws access to the mutable bytes.
    @inlinable
    public mutating func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = self.withUnsafeMutableBytes { buf in Result { () throws(E) -> R in try body(buf) } }
        return try result.get()
    }
}
