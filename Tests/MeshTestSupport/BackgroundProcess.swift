import Foundation
import Synchronization

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

/// A port for a test node that nothing else in this run will take: below the kernel's ephemeral
/// range (32768–60999 on Linux), so no outgoing connection of a concurrently running test can
/// be given it between this call and the node's bind, handed out once per test process from a
/// random starting point, and checked free for TCP and UDP on all addresses right now.
///
/// (Binding port 0 and reading it back, the usual trick, gives an ephemeral port: on a busy
/// machine another test's outgoing connection took it before the node bound it, and the node
/// failed to start.)
public func freePort() -> UInt16 {
    portAllocator.withLock { next in
        for _ in 0..<portRange.count {
            let p = next
            next = p + 1 < portRange.upperBound ? p + 1 : portRange.lowerBound
            if portIsFree(UInt16(p), type: Int32(SOCK_STREAM.rawValue)) && portIsFree(UInt16(p), type: Int32(SOCK_DGRAM.rawValue)) {
                return UInt16(p)
            }
        }
        fatalError("no free port in \(portRange)")
    }
}

private let portRange = 20_000..<32_700
private let portAllocator = Mutex(Int.random(in: portRange))

private func portIsFree(_ port: UInt16, type: Int32) -> Bool {
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = INADDR_ANY
    addr.sin_port = port.bigEndian
    let len = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
}
