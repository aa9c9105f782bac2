import Foundation

/// A long-running child process (a node, a miner) for end-to-end tests: output goes to a log
/// file, and the process is stopped (SIGTERM, then SIGKILL) when the test is done with it.
public final class BackgroundProcess: @unchecked Sendable {
    // Safety: `process` is created in init and only read afterwards.
    public let process: Process
    public let logPath: String

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], log: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : TestPaths.productsDirectory + "/" + executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        self.process = p
        self.logPath = log
    }

    public var isRunning: Bool { self.process.isRunning }

    /// The log so far (for failure messages).
    public var output: String { (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? "" }

    /// Stops the process: SIGTERM, then SIGKILL after `grace` seconds.
    public func stop(grace: Double = 5) {
        guard self.process.isRunning else { return }
        self.process.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while self.process.isRunning && Date() < deadline { usleep(20_000) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        self.process.waitUntilExit()
    }

    /// Sends a signal (SIGSTOP to freeze, SIGCONT to resume).
    public func signal(_ sig: Int32) { if self.process.isRunning { kill(self.process.processIdentifier, sig) } }

    /// kill -9: no chance to clean up; waits until the process is gone.
    public func kill9() {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    deinit {
        self.signal(SIGCONT)
        self.stop(grace: 2)
    }
}

/// A TCP port nothing listens on right now (bind to port 0, read it back, close).
public func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

