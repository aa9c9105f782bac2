import Foundation

/// The memory of this process, as the benchmark and simulator tools report it (Linux).
public enum ProcessMemory {
    /// Peak resident set size in bytes (from /proc/self/status VmHWM).
    public static func peakBytes() -> Int { self.fromStatus(key: "VmHWM:") }

    /// Current resident set size in bytes.
    public static func currentBytes() -> Int { self.fromStatus(key: "VmRSS:") }

    /// Resets the peak resident set size to the current one (Linux: `5` to
    /// /proc/self/clear_refs), so that ``peakBytes()`` reports the peak of what runs next.
    public static func resetPeak() {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return }
        fputs("5", f)
        fclose(f)
    }

    private static func fromStatus(key: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            if let kb = line.split(separator: " ").compactMap({ Int($0) }).first { return kb * 1024 }
        }
        return 0
    }
}
