import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Runs a root command with the contract's exit codes: 0 success, 1 runtime failure,
/// 2 usage error (swift-argument-parser's own default for usage errors is 64).
public enum CommandLineEntry {
    /// Parses the process arguments, runs the command and exits.
    public static func main<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) async -> Never {
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            let code = root.exitCode(for: error)
            if code == .success {
                // --help and --version print to stdout and succeed.
                root.exit(withError: error)
            }
            if let failure = error as? CommandFailure {
                StandardError.write("error: \(failure.message)\n")
                exit(failure.exitCode)
            }
            let message = root.fullMessage(for: error)
            if !message.isEmpty { StandardError.write(message + "\n") }
            if code == .validationFailure || error is ValidationError { exit(2) }
            if code.rawValue == 64 { exit(2) }
            exit(code == .failure ? 1 : code.rawValue)
        }
    }
}

/// A runtime failure with a message for the user and the contract's exit code.
public struct CommandFailure: Error, CustomStringConvertible {
    /// What went wrong, in words for the operator.
    public var message: String
    /// 1 for runtime failures, 2 for usage errors.
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    /// A usage error (exit code 2).
    public static func usage(_ message: String) -> CommandFailure { CommandFailure(message, exitCode: 2) }

    public var description: String { self.message }
}

/// Writes to the standard error stream without touching C's global `stderr`.
public enum StandardError {
    /// Writes `text` to file descriptor 2.
    public static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buf in
                Glibc.write(2, buf.baseAddress! + offset, buf.count - offset)
            }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            offset += n
        }
        bytes.removeAll()
    }
}

/// Writes to the standard output stream, unbuffered, as whole lines.
public enum StandardOutput {
    /// Writes `text` (plus a newline) to file descriptor 1.
    public static func line(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buf in Glibc.write(1, buf.baseAddress! + offset, buf.count - offset) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            offset += n
        }
    }
}
