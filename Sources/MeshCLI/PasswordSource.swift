import MeshCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Where a command gets a key file's password: an environment variable named by
/// `--password-env`, or a prompt on the terminal. Passwords are held in ``SecureBytes``
/// and never echoed or logged.
public enum PasswordSource {
    /// Reads the password.
    ///
    /// - Parameters:
    ///   - environmentVariable: the variable named by `--password-env`, if any.
    ///   - confirm: ask twice (when creating a key).
    public static func obtain(environmentVariable: String?, prompt: String, confirm: Bool) throws -> SecureBytes {
        if let name = environmentVariable {
            guard let value = getenv(name) else {
                throw CommandFailure("environment variable \(name) (from --password-env) is not set")
            }
            let length = strlen(value)
            return SecureBytes(count: length) { buf in
                for i in 0..<length { buf[i] = UInt8(bitPattern: value[i]) }
            }
        }
        guard isatty(0) == 1 else {
            throw CommandFailure("no password: pass --password-env VAR, or run the command in a terminal to be prompted")
        }
        let first = try readHidden(prompt: prompt)
        if confirm {
            let second = try readHidden(prompt: "Repeat password: ")
            guard first.constantTimeEquals(second) else { throw CommandFailure("the two passwords differ") }
        }
        return first
    }

    /// Reads one line from the terminal with echo turned off.
    static func readHidden(prompt: String) throws -> SecureBytes {
        StandardError.write(prompt)
        var old = termios()
        let haveTerm = tcgetattr(0, &old) == 0
        if haveTerm {
            var noEcho = old
            noEcho.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSANOW, &noEcho)
        }
        defer {
            if haveTerm { tcsetattr(0, TCSANOW, &old) }
            StandardError.write("\n")
        }
        var line: [UInt8] = []
        defer { Memory.zero(&line) }
        var byte: UInt8 = 0
        while true {
            let n = read(0, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 0x0a { break }
            if byte != 0x0d { line.append(byte) }
            if line.count > 4096 { throw CommandFailure("password longer than 4096 bytes") }
        }
        return SecureBytes(copying: line)
    }
}
