import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Monotonic and CPU clocks for benchmarks.
enum Clock {
    /// Monotonic nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CPU time of this process in nanoseconds (user + system, all threads).
    static func processCPU() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CPU time of the calling thread in nanoseconds.
    static func threadCPU() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Runs `body` repeatedly for at least `seconds` and returns (iterations, elapsed seconds).
    static func measure(seconds: Double, _ body: () -> Void) -> (Int, Double) {
        // Warm up.
        for _ in 0..<3 { body() }
        let start = now()
        let budget = UInt64(seconds * 1e9)
        var n = 0
        while true {
            body()
            n += 1
            if now() - start >= budget { break }
        }
        return (n, Double(now() - start) / 1e9)
    }
}

func fmt(_ x: Double, _ digits: Int = 2) -> String {
    var s = String(Double(Int((x * pow(10, Double(digits))).rounded())) / pow(10, Double(digits)))
    if s.hasSuffix(".0") && digits == 0 { s.removeLast(2) }
    return s
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

/// The Python for the anchors (numpy, python ssl): Bootstrap/setup's virtual environment
/// (.build/venv in the repository), else `python3` on PATH.
func benchPython() -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let venv = root.appendingPathComponent(".build/venv/bin/python3").path
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
}
