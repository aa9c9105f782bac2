import Foundation
import MeshSockets
import Synchronization
import Testing

@Suite("Event loop")
struct EventLoopTests {
    @Test("an idle loop sleeps: after wake-ups, timers and a listener, its thread uses almost no CPU")
    func idleLoopSleeps() async throws {
        let loop = try EventLoop(name: "test.idle")
        defer { loop.shutdown() }
        let ran = Mutex(0)
        // Wake it from outside several times, run a timer and hold a listening socket.
        for _ in 0..<5 { loop.execute { ran.withLock { $0 += 1 } } }
        let listener = LoopBox<TCPListener?>(nil)
        try await loop.submit {
            _ = loop.schedule(after: 1_000_000) { ran.withLock { $0 += 1 } }
            listener.value = try TCPListener(loop: loop, address: SocketAddress("127.0.0.1:0")!, tracker: ConnectionTracker()) { _ in }
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(ran.withLock { $0 } == 6)
        let before = try #require(loop.threadCPUNanos())
        try await Task.sleep(nanoseconds: 500_000_000)
        let used = try #require(loop.threadCPUNanos()) - before
        #expect(used < 50_000_000, "an idle loop used \(used / 1_000_000) ms of CPU in 500 ms")
        try await loop.submit { listener.value?.close() }
    }
}
