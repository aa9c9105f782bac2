import Foundation
import MeshHTTP

/// The standard `process_*` metrics of the running process, read from Linux's /proc (the
/// names and meanings of Prometheus's client libraries), and `tensormesh_build_info`.
public enum ProcessMetrics {
    /// What this binary is.
    public static let version = "0.1.0"

    /// The exposition lines (empty where /proc is not there).
    public static func text() -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        if let stat = Self.read("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after the command name, which may hold spaces and parentheses: field 3 is first.
            let f = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ n: Int) -> Double? { n - 3 < f.count ? Double(f[n - 3]) : nil }
            if let user = field(14), let system = field(15) {
                metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", Histogram.format((user + system) / ticks))
            }
            if let vsize = field(23) { metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", Histogram.format(vsize)) }
            if let rss = field(24) {
                metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", Histogram.format(rss * Double(sysconf(Int32(_SC_PAGESIZE)))))
            }
            if let start = field(22), let boot = Self.bootTime() {
                metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", Histogram.format(boot + start / ticks))
            }
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            metric("process_open_fds", "gauge", "Number of open file descriptors.", String(fds.count))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", String(limit.rlim_cur))
        }
        out += "# HELP tensormesh_build_info The running build (always 1).\n# TYPE tensormesh_build_info gauge\n"
        out += "tensormesh_build_info{version=\"\(Self.version)\",os=\"linux\"} 1\n"
        return out
    }

    static func read(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: d, as: UTF8.self)
    }

    /// Seconds since the epoch when the machine booted (`btime` in /proc/stat).
    static func bootTime() -> Double? {
        guard let stat = Self.read("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
