import Foundation
import MeshFuzz
import MeshTestSupport
import Testing

/// Every fuzz target over its seed corpus and its regressions (inputs that once crashed,
/// kept in Tools/fuzz/regressions/<target>/): what libFuzzer found stays fixed, in the
/// normal test run and build.
@Suite("Fuzz corpora and regressions")
struct FuzzRegressionTests {
    static let root = TestPaths.repositoryRoot + "/Tools/fuzz"

    static func inputs(_ dir: String) -> [[UInt8]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().compactMap { FileManager.default.contents(atPath: dir + "/" + $0).map { Array($0) } }
    }

    @Test("each target runs its seeds, its checked-in corpus and its regressions without a finding", arguments: FuzzTargets.all.map(\.name))
    func target(_ name: String) {
        let t = FuzzTargets.named(name)!
        let corpus = Self.inputs(Self.root + "/corpus/\(name)") + Self.inputs(Self.root + "/regressions/\(name)")
        for input in t.seeds() + corpus { t.run(input) }
        // A little of what the fuzzer does, so a broken target shows up here first: each
        // seed with bytes flipped and cut short.
        var rng = SeededRNG(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        for seed in t.seeds() + corpus.prefix(16) where !seed.isEmpty {
            for _ in 0..<20 {
                var b = seed
                b[Int(rng.next() % UInt64(b.count))] ^= UInt8(truncatingIfNeeded: rng.next())
                t.run(Array(b.prefix(Int(rng.next() % UInt64(b.count + 1)))))
            }
        }
    }

    @Test("every target has a seed corpus in the repository")
    func corporaExist() {
        for t in FuzzTargets.all {
            #expect(!(Self.inputs(Self.root + "/corpus/\(t.name)").isEmpty && t.seeds().isEmpty), "no seeds for \(t.name)")
        }
    }
}
