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

    /// ANSI colour of the level's label on a terminal.
    var colour: String { ["\u{1B}[2m", "\u{1B}[34m", "\u{1B}[32m", "\u{1B}[33m", "\u{1B}[1;31m"][self.rawValue] }
}

/// Which lines are written: a default level and levels per target, from directives as
/// Substrate's `--log` takes them — `info`, `sync=debug`, `info,sync=trace,finality=debug`.
/// The node's targets: `sync`, `gossip`, `finality`, `discovery`, `peers`, `rpc`, `subnet`, and
/// `tensormesh` for the rest.
public struct LogFilter: Sendable, Equatable {
    public var defaultLevel: LogLevel
    public var targets: [String: LogLevel]

    public init(defaultLevel: LogLevel = .info, targets: [String: LogLevel] = [:]) {
        self.defaultLevel = defaultLevel
        self.targets = targets
    }

    /// Parses comma-separated directives; nil (with the reason) when one is not `LEVEL` or
    /// `TARGET=LEVEL`.
    public init(directives: String) throws(LogFilterError) {
        self.init()
        try self.add(directives)
    }

    /// Adds directives to the filter (later ones win).
    public mutating func add(_ directives: String) throws(LogFilterError) {
        for part in directives.split(separator: ",") {
            let d = part.trimmingCharacters(in: .whitespaces)
            if d.isEmpty { continue }
            if let eq = d.firstIndex(of: "=") {
                let target = String(d[..<eq])
                guard !target.isEmpty, target.count <= 64, target.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ":" }) else {
                    throw LogFilterError(directive: d)
                }
                guard let level = LogLevel(name: String(d[d.index(after: eq)...])) else { throw LogFilterError(directive: d) }
                guard self.targets[target] != nil || self.targets.count < 64 else { throw LogFilterError(directive: d) }
                self.targets[target] = level
            } else {
                guard let level = LogLevel(name: d) else { throw LogFilterError(directive: d) }
                self.defaultLevel = level
            }
        }
    }

    /// The level below which a target's lines are dropped.
    public func level(for target: String) -> LogLevel { self.targets[target] ?? self.defaultLevel }

    /// The most detailed level any target writes (for cheap checks).
    public var lowest: LogLevel { self.targets.values.reduce(self.defaultLevel) { min($0, $1) } }
}

/// A `--log` directive that is not `LEVEL` or `TARGET=LEVEL`.
public struct LogFilterError: Error, Equatable, CustomStringConvertible {
    public var directive: String
    public var description: String {
        "log directive \"\(self.directive)\": expected a level (error, warn, info, debug, trace) or TARGET=LEVEL, e.g. info,sync=debug"
    }
}

/// A small structured logger writing lines to standard error:
/// `2026-11-25 17:00:00.123  INFO sync: message key=value`.
/// The filter (``LogFilter``) is shared by a logger and its targets and may change while the
/// node runs (`system_addLogFilter`). Levels are coloured only when standard error is a
/// terminal (and `NO_COLOR` is unset), never in files or pipes.
/// Nothing secret is ever passed to it (keys and passwords never reach the logger).
public final class Log: Sendable {
    /// The target this logger writes as.
    let component: String
    private let shared: Shared

    final class Shared: Sendable {
        let state: Mutex<(filter: LogFilter, children: [String: Log])>
        let colour: Bool
        init(filter: LogFilter, colour: Bool) {
            self.state = Mutex((filter, [:]))
            self.colour = colour
        }
    }

    /// A logger writing lines at `level` and above.
    public convenience init(level: LogLevel, component: String = "tensormesh") {
        self.init(filter: LogFilter(defaultLevel: level), component: component)
    }

    /// A logger with per-target levels; colour `nil` decides by whether standard error is a terminal.
    public init(filter: LogFilter, component: String = "tensormesh", colour: Bool? = nil) {
        self.component = component
        self.shared = Shared(filter: filter, colour: colour ?? Log.isColourTerminal())
    }

    private init(component: String, shared: Shared) {
        self.component = component
        self.shared = shared
    }

    /// Whether standard error is a terminal that takes colour.
    public static func isColourTerminal() -> Bool {
        let env = ProcessInfo.processInfo.environment
        return isatty(2) == 1 && env["NO_COLOR"] == nil && env["TERM"] != "dumb"
    }

    /// The logger of a target (cached; it shares this logger's filter).
    public func child(_ component: String) -> Log {
        self.shared.state.withLock { s in
            if let c = s.children[component] { return c }
            let c = Log(component: component, shared: self.shared)
            if s.children.count < 256 { s.children[component] = c }
            return c
        }
    }

    /// The filter in force.
    public var filter: LogFilter { self.shared.state.withLock { $0.filter } }

    /// The default level in force.
    public var level: LogLevel { self.filter.defaultLevel }

    /// Replaces the filter (for every target of this logger).
    public func setFilter(_ filter: LogFilter) { self.shared.state.withLock { $0.filter = filter } }

    /// Whether a line of `level` from this target would be written.
    public func enabled(_ level: LogLevel) -> Bool { level >= self.filter.level(for: self.component) }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String, _ metadata: KeyValuePairs<String, String> = [:]) {
        guard self.enabled(level) else { return }
        let label = self.shared.colour ? "\(level.colour)\(level.label)\u{1B}[0m" : level.label
        var line = "\(Log.timestamp()) \(label) \(self.component): \(message())"
        for (k, v) in metadata { line += " \(k)=\(v)" }
        line += "\n"
        self.shared.state.withLock { _ in
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
