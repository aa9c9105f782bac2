internal import CSodium

/// A heap buffer for secrets that is zeroed when released.
///
/// Keys, seeds and passwords live here rather than in `[UInt8]`, whose storage may be
/// copied and freed without being wiped. The contents are fixed at creation.
public final class SecureBytes: @unchecked Sendable {
    // Safety: `storage` is written only inside the initialisers, before the instance is
    // shared, and freed only in deinit; all later access is read-only.
    private let storage: UnsafeMutableRawBufferPointer

    /// The number of bytes held.
    public var count: Int { self.countStored }

    /// Allocates `count` bytes and lets `initializer` fill them.
    public init(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        self.storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        let view = UnsafeMutableRawBufferPointer(rebasing: self.storage[0..<count])
        do {
            try initializer(view)
        } catch {
            Self.wipe(self.storage)
            self.storage.deallocate()
            throw error
        }
        self.countStored = count
    }

    private let countStored: Int

    /// Copies `bytes` into a new secure buffer. The caller should wipe its own copy.
    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: bytes.count) { buf in
            var i = 0
            for b in bytes {
                buf[i] = b
                i += 1
            }
        }
    }

    /// Copies `bytes` and then zeroes the caller's array in place.
    public convenience init(consuming bytes: inout [UInt8]) {
        self.init(copying: bytes)
        Memory.zero(&bytes)
    }

    /// `count` random bytes.
    public static func random(count: Int) -> SecureBytes {
        SecureBytes(count: count) { buf in SecureRandom.fill(buf) }
    }

    deinit {
        Self.wipe(self.storage)
        self.storage.deallocate()
    }

    private static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }

    /// Lends the bytes for reading. The pointer must not escape the closure.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: self.storage[0..<self.countStored]))
    }

    /// Constant-time equality with another secret.
    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        self.withUnsafeBytes { a in other.withUnsafeBytes { b in ConstantTime.equals(a, b) } }
    }
}

/// Zeroing of ordinary buffers that held secrets.
public enum Memory {
    /// Overwrites the array's bytes with zeros in a way the optimiser cannot remove.
    /// The corresponding C function is `sodium_memzero`.
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buf in
            if let base = buf.baseAddress { sodium_memzero(base, buf.count) }
        }
    }

    /// Zeroes a raw buffer.
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }
}
