import Foundation

/// Prints values as JSON for `--json` output: sorted keys, one document per call.
public enum JSONOutput {
    /// Encodes `value` and writes it to standard output.
    public static func print<T: Encodable>(_ value: T, pretty: Bool = true) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        StandardOutput.line(String(decoding: data, as: UTF8.self))
    }

    /// Writes an already-serialised JSON object (from `JSONSerialization`).
    public static func printObject(_ object: Any, pretty: Bool = true) throws {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        let data = try JSONSerialization.data(withJSONObject: object, options: options)
        StandardOutput.line(String(decoding: data, as: UTF8.self))
    }
}
