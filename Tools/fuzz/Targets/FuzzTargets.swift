/// The fuzz targets: one per decoder family and one per stateful handler (docs/fuzzing.md).
/// Each takes the fuzzer's bytes and must never trap, hang or grow without bound; a target
/// that finds a broken invariant traps on purpose (`check`), so libFuzzer records the input.
public struct FuzzTarget: Sendable {
    public let name: String
    /// What it exercises, for `meshfuzz --list` and the docs.
    public let summary: String
    public let run: @Sendable ([UInt8]) -> Void
    /// A few valid inputs to start from (written to the seed corpus).
    public let seeds: @Sendable () -> [[UInt8]]

    public init(_ name: String, _ summary: String, seeds: @escaping @Sendable () -> [[UInt8]] = { [] }, run: @escaping @Sendable ([UInt8]) -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
        self.seeds = seeds
    }
}

/// A property the target's code must keep; a violation is a finding (traps on purpose).
@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant broken: \(message())") }
}

public enum FuzzTargets {
    /// Every target, by name.
    public static let all: [FuzzTarget] = DecoderTargets.all + StatefulTargets.all + FileTargets.all + [RPCWireTarget.target]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}
