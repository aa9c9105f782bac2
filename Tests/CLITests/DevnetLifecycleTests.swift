import Foundation
import MeshTestSupport
import Testing

/// Bootstrap/devnet's own housekeeping (no network is started): what `down` may delete and
/// how it finds processes a failed `up` left behind.
@Suite("Devnet lifecycle")
struct DevnetLifecycleTests {
    static let script = TestPaths.repositoryRoot + "/Bootstrap/devnet.py"

    func devnet(_ args: [String]) throws -> ProcessResult {
        try ProcessRunner.run("/usr/bin/env", ["python3", Self.script] + args, timeout: 60)
    }

    @Test("down refuses a folder that is not a devnet's (and not empty), and leaves it alone")
    func foreignFolder() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: dir + "/thesis.tex"))
        for cmd in ["down", "up"] {
            let r = try self.devnet([cmd, "--dir", dir])
            #expect(r.status == 2 && r.stderr.contains("not a devnet folder"), "\(cmd): \(r.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/thesis.tex"))
    }

    @Test("down finds processes through pid files when the manifest is gone, and never kills a pid that is not the devnet's")
    func leftovers() throws {
        let dir = URL(fileURLWithPath: TestPaths.temporaryDirectory()).resolvingSymlinksInPath().path
        try FileManager.default.createDirectory(atPath: dir + "/pids", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: dir + "/.tensormesh-devnet"))
        // A child a failed `up` left running in the devnet's folder.
        // (SIGTERM unblocked and back to its default: a test runner may start children with it blocked.)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = ["python3", "-c", "import signal, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); signal.signal(signal.SIGTERM, signal.SIG_DFL); time.sleep(600)"]
        child.currentDirectoryURL = URL(fileURLWithPath: dir)
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        let sleeper = child.processIdentifier
        usleep(300_000)  // the interpreter has set its handler
        try "\(sleeper)\n".write(toFile: dir + "/pids/miner.pid", atomically: true, encoding: .utf8)
        // A stale pid file naming a process that is not the devnet's (this test): left alone.
        try "\(getpid())\n".write(toFile: dir + "/pids/stale.pid", atomically: true, encoding: .utf8)
        let started = Date()
        let r = try self.devnet(["down", "--dir", dir])
        #expect(Date().timeIntervalSince(started) < 10, "down waited for the grace period: SIGTERM did not stop the leftover")
        #expect(r.status == 0 && r.stderr.contains("stopped 1 processes"), "\(r.stderr)")
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGTERM, "the leftover was not stopped")
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}
