import Foundation
import Synchronization

/// Log levels, as operators know them.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case trace = 0, debug, info, warn, error

    public init?(name: String) {
        switch name.lowercased() {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "warn", "warning": self = .warn
        case "error": self = .error
        default: return nil
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    var label: String { ["TRACE", "DEBUG", " INFO", " WARN", "ERROR"][self.rawValue] }
}

/// A small structured logger writing lines to standard error:
/// `2026-11-25 17:00:00.123  INFO tensormesh: message key=value`.
/// Nothing secret is ever passed to it (keys and passwords never reach the logger).
public final class Log: Sendable {
    public let level: LogLevel
    let component: String
    private let lock = Mutex(0)

    public init(level: LogLevel, component: String = "tensormesh") {
        self.level = level
        self.component = component
    }

    public func child(_ component: String) -> Log { Log(level: self.level, component: component) }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String> = [:]) {
        guard level >= self.level else { return }
        var line = "\(Log.timestamp()) \(level.label) \(self.component): \(message())"
        for (k, v) in metadata { line += " \(k)=\(v)" }
        line += "\n"
        self.lock.withLock { _ in
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    public func trace(_ m: @autoclosure () -> String, _ md: KeyValuePairs<String, String> = [:]) { self.log(.trace, m(), md) }
    public func debug(_ m: @autoclosure () -> String, _ md: KeyValuePairs<String, String> = [:]) { self.log(.debug, m(), md) }
    public func info(_ m: @autoclosure () -> String, _ md: KeyValuePairs<String, String> = [:]) { self.log(.info, m(), md) }
    public func warn(_ m: @autoclosure () -> String, _ md: KeyValuePairs<String, String> = [:]) { self.log(.warn, m(), md) }
    public func error(_ m: @autoclosure () -> String, _ md: KeyValuePairs<String, String> = [:]) { self.log(.error, m(), md) }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                      tmv.tm_hour, tmv.tm_min, tmv.tm_sec, Int(ts.tv_nsec / 1_000_000))
    }
}
