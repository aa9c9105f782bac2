/// Why a byte string could not be decoded.
///
/// Every decoder in Tensormesh reports malformed input with one of these values instead of
/// trapping: bad input from the network is a normal event (ARCHITECTURE.md, principle 5).
public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before `needed` more bytes could be read.
    case truncated(needed: Int, available: Int)
    /// A declared length is larger than the limit the caller allowed; nothing was allocated.
    case lengthExceedsLimit(field: String, length: UInt64, limit: Int)
    /// A variable-length integer used more bytes than its minimal encoding.
    case nonCanonicalVarint
    /// A variable-length integer does not fit in 64 bits.
    case varintOverflow
    /// The input has bytes left over after the value was decoded.
    case trailingBytes(count: Int)
    /// A field holds a value outside its domain (an unknown enum tag, a bad flag, ...).
    case invalidValue(field: String, reason: String)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// An envelope carries a version this build does not understand.
    case unsupportedVersion(UInt8)

    public var description: String {
        switch self {
        case .truncated(let needed, let available):
            return "input truncated: needed \(needed) more bytes, \(available) available"
        case .lengthExceedsLimit(let field, let length, let limit):
            return "\(field): declared length \(length) exceeds the limit \(limit)"
        case .nonCanonicalVarint:
            return "non-canonical variable-length integer"
        case .varintOverflow:
            return "variable-length integer overflows 64 bits"
        case .trailingBytes(let count):
            return "\(count) unexpected trailing bytes"
        case .invalidValue(let field, let reason):
            return "\(field): \(reason)"
        case .invalidUTF8(let field):
            return "\(field): not valid UTF-8"
        case .unsupportedVersion(let version):
            return "unsupported envelope version \(version)"
        }
    }
}
