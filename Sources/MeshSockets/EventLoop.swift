import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
internal import CSystemShims

/// Something registered with an ``EventLoop`` for readiness events.
protocol Selectable: AnyObject {
    func handleEvents(readable: Bool, writable: Bool, hangup: Bool)
}

/// A timer's handle; cancel it with ``EventLoop/cancel(_:)``.
public struct TimerID: Hashable, Sendable {
    let raw: UInt64
}

/// One epoll loop on its own Dispatch queue (thread).
///
/// Everything a socket does happens on the loop's thread: readiness handling, timers, and the
/// sans-IO protocol state machines the node drives from those callbacks. Other threads hand
/// work to the loop with ``execute(_:)`` or ``submit(_:)``. Writes are batched with `writev`;
/// back-pressure and limits live in ``TCPConnection`` and ``TCPListener``.
///
/// Why epoll rather than one DispatchSource per socket: one thread wakes once per batch of
/// ready sockets instead of once per socket, write interest is switched on only while bytes
/// are pending (a Dispatch write source fires continuously), and close is a single point.
public final class EventLoop: @unchecked Sendable {
    // Safety: `pending` is guarded by its Mutex. Every other stored `var` is confined to the
    // loop thread (checked with `assertInLoop()` at entry points that touch it).
    private struct Pending {
        var tasks: [@Sendable () -> Void] = []
        var stopping = false
    }

    private let pending = Mutex(Pending())
    private let epfd: Int32
    private let wakeFd: Int32
    private let queue: DispatchQueue
    private let name: String
    private let loopThread = Mutex<pthread_t?>(nil)
    private let finished = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)

    // Loop-confined.
    private var handlers: [Int32: (generation: UInt32, handler: any Selectable)] = [:]
    private var nextGeneration: UInt32 = 1
    private var timers = TimerHeap()
    private var timerActions: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1
    private var events = [csys_event](repeating: csys_event(), count: 256)
    private var deferred: [() -> Void] = []
    /// A read buffer shared by every socket of this loop (so idle sockets hold none).
    var readBuffer = [UInt8](repeating: 0, count: 256 * 1024)

    /// Creates and starts a loop.
    public init(name: String = "tensormesh.loop") throws(SocketError) {
        _ = csys_ignore_sigpipe()
        let e = csys_epoll_create()
        guard e >= 0 else { throw SocketError("epoll_create1", errno: Glibc.errno) }
        let w = csys_eventfd()
        guard w >= 0 else {
            Posix.close(e)
            throw SocketError("eventfd", errno: Glibc.errno)
        }
        // The wake-up fd's event carries its own fd with generation 0 (sockets start at 1).
        guard csys_epoll_add(e, w, CSYS_EPOLLIN, UInt64(UInt32(bitPattern: w))) == 0 else {
            Posix.close(e)
            Posix.close(w)
            throw SocketError("epoll_ctl(eventfd)", errno: Glibc.errno)
        }
        self.epfd = e
        self.wakeFd = w
        self.name = name
        self.queue = DispatchQueue(label: name, qos: .userInitiated)
        self.running.store(true, ordering: .releasing)
        self.queue.async { [self] in self.loop() }
    }

    deinit {
        Posix.close(self.epfd)
        Posix.close(self.wakeFd)
    }

    /// Monotonic time in nanoseconds.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Whether the caller runs on this loop's thread.
    public var inLoop: Bool {
        self.loopThread.withLock { t in t.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    func assertInLoop(_ function: StaticString = #function) {
        assert(self.inLoop, "\(function) called off the event loop")
    }

    /// CPU time the loop's thread has used, in nanoseconds (for metrics and for tests that
    /// check an idle loop really sleeps).
    public func threadCPUNanos() -> UInt64? {
        guard let t = self.loopThread.withLock({ $0 }) else { return nil }
        var clock = clockid_t()
        guard pthread_getcpuclockid(t, &clock) == 0 else { return nil }
        var ts = timespec()
        guard clock_gettime(clock, &ts) == 0 else { return nil }
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Runs `task` on the loop thread (soon, in order).
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let accepted = self.pending.withLock { p -> Bool in
            if p.stopping { return false }
            p.tasks.append(task)
            return true
        }
        if accepted { _ = csys_eventfd_signal(self.wakeFd) }
    }

    /// Runs `body` on the loop and returns its result.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if !self.running.load(ordering: .acquiring) { throw SocketError("submit", errno: ESHUTDOWN) }
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let accepted = self.pending.withLock { p -> Bool in
                if p.stopping { return false }
                p.tasks.append { cont.resume(with: Result { try body() }) }
                return true
            }
            if accepted {
                _ = csys_eventfd_signal(self.wakeFd)
            } else {
                cont.resume(throwing: SocketError("submit", errno: ESHUTDOWN))
            }
        }
    }

    /// Runs `action` on the loop after `delay` nanoseconds. Loop thread only.
    @discardableResult
    public func schedule(after delay: UInt64, _ action: @escaping () -> Void) -> TimerID {
        self.assertInLoop()
        let id = self.nextTimerID
        self.nextTimerID += 1
        self.timerActions[id] = action
        self.timers.push(deadline: EventLoop.now() &+ delay, id: id)
        return TimerID(raw: id)
    }

    /// Runs `action` on the loop after the current batch of events, before the loop waits
    /// again. Producers use it to coalesce many small writes into one system call.
    /// Loop thread only.
    public func deferUntilIdle(_ action: @escaping () -> Void) {
        self.assertInLoop()
        self.deferred.append(action)
    }

    /// Cancels a timer (no effect if it already ran). Loop thread only.
    public func cancel(_ timer: TimerID) {
        self.assertInLoop()
        self.timerActions[timer.raw] = nil
        // Cancelled entries stay in the heap until their deadline; churn (connections that
        // come and go with their timers) must not grow it without bound.
        if self.timers.count > 1024 && self.timers.count > 2 * self.timerActions.count {
            self.timers.retain { self.timerActions[$0] != nil }
        }
    }

    /// Stops the loop: pending tasks run, registered sockets are told `.shutdown` and closed.
    /// Blocks until the loop thread has finished (call it from outside the loop).
    public func shutdown() {
        let first = self.pending.withLock { p -> Bool in
            if p.stopping { return false }
            p.stopping = true
            return true
        }
        guard first else { return }
        _ = csys_eventfd_signal(self.wakeFd)
        if !self.inLoop { self.finished.wait() }
    }

    private func runDeferred() {
        var rounds = 0
        while !self.deferred.isEmpty && rounds < 16 {
            rounds += 1
            let batch = self.deferred
            self.deferred.removeAll(keepingCapacity: true)
            for action in batch { action() }
        }
    }

    // MARK: Registration (loop thread)

    func register(fd: Int32, handler: any Selectable, read: Bool, write: Bool) throws(SocketError) {
        self.assertInLoop()
        let gen = self.nextGeneration
        self.nextGeneration &+= 1
        self.handlers[fd] = (gen, handler)
        if csys_epoll_add(self.epfd, fd, Self.mask(read: read, write: write), UInt64(gen) << 32 | UInt64(UInt32(bitPattern: fd))) != 0 {
            self.handlers[fd] = nil
            throw SocketError("epoll_ctl(ADD)", errno: Glibc.errno)
        }
    }

    func reregister(fd: Int32, read: Bool, write: Bool) {
        guard let entry = self.handlers[fd] else { return }
        _ = csys_epoll_mod(self.epfd, fd, Self.mask(read: read, write: write), UInt64(entry.generation) << 32 | UInt64(UInt32(bitPattern: fd)))
    }

    func deregister(fd: Int32) {
        guard self.handlers.removeValue(forKey: fd) != nil else { return }
        _ = csys_epoll_del(self.epfd, fd)
    }

    static func mask(read: Bool, write: Bool) -> UInt32 {
        var m = CSYS_EPOLLRDHUP
        if read { m |= CSYS_EPOLLIN }
        if write { m |= CSYS_EPOLLOUT }
        return m
    }

    // MARK: The loop

    private func loop() {
        self.loopThread.withLock { $0 = pthread_self() }
        while true {
            // Tasks from other threads.
            let (tasks, stopping) = self.pending.withLock { p -> ([@Sendable () -> Void], Bool) in
                let t = p.tasks
                p.tasks.removeAll()
                return (t, p.stopping)
            }
            for t in tasks { t() }
            if stopping { break }
            // Due timers.
            let now = EventLoop.now()
            var timeout: Int32 = -1
            while let next = self.timers.peek() {
                if next.deadline <= now {
                    self.timers.pop()
                    if let action = self.timerActions.removeValue(forKey: next.id) { action() }
                } else {
                    let ms = (next.deadline - now + 999_999) / 1_000_000
                    timeout = Int32(min(ms, 60_000))
                    break
                }
            }
            self.runDeferred()
            if self.pending.withLock({ !$0.tasks.isEmpty || $0.stopping }) || !self.deferred.isEmpty { timeout = 0 }
            let n = self.events.withUnsafeMutableBufferPointer { buf in
                csys_epoll_wait(self.epfd, buf.baseAddress!, Int32(buf.count), timeout)
            }
            if n < 0 { continue }  // EINTR
            for i in 0..<Int(n) {
                let ev = self.events[i]
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: ev.data))
                let gen = UInt32(truncatingIfNeeded: ev.data >> 32)
                if fd == self.wakeFd && gen == 0 {
                    _ = csys_eventfd_drain(self.wakeFd)
                    continue
                }
                guard let entry = self.handlers[fd], entry.generation == gen else { continue }
                let hangup = ev.events & (CSYS_EPOLLERR | CSYS_EPOLLHUP) != 0
                entry.handler.handleEvents(
                    readable: ev.events & (CSYS_EPOLLIN | CSYS_EPOLLRDHUP) != 0 || hangup,
                    writable: ev.events & CSYS_EPOLLOUT != 0, hangup: hangup)
            }
        }
        // Shutdown: tell every socket, then close them.
        self.running.store(false, ordering: .releasing)
        let all = self.handlers.values.map { $0.handler }
        for h in all { (h as? any LoopShutdownAware)?.loopDidShutdown() }
        self.handlers.removeAll()
        self.timerActions.removeAll()
        let leftover = self.pending.withLock { p -> [@Sendable () -> Void] in
            let t = p.tasks
            p.tasks.removeAll()
            return t
        }
        for t in leftover { t() }
        self.finished.signal()
    }
}

/// Sockets that must release their descriptor when the loop stops.
protocol LoopShutdownAware: AnyObject {
    func loopDidShutdown()
}

/// A binary min-heap of timer deadlines (lazy deletion through the action table).
struct TimerHeap {
    struct Entry {
        var deadline: UInt64
        var id: UInt64
    }

    private var heap: [Entry] = []

    func peek() -> Entry? { self.heap.first }

    mutating func push(deadline: UInt64, id: UInt64) {
        self.heap.append(Entry(deadline: deadline, id: id))
        var i = self.heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if self.heap[parent].deadline <= self.heap[i].deadline { break }
            self.heap.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() {
        guard !self.heap.isEmpty else { return }
        self.heap.swapAt(0, self.heap.count - 1)
        self.heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < self.heap.count && self.heap[l].deadline < self.heap[smallest].deadline { smallest = l }
            if r < self.heap.count && self.heap[r].deadline < self.heap[smallest].deadline { smallest = r }
            if smallest == i { break }
            self.heap.swapAt(i, smallest)
            i = smallest
        }
    }

    var count: Int { self.heap.count }

    /// Keeps only the entries whose id passes `keep`, and restores the heap order.
    mutating func retain(_ keep: (UInt64) -> Bool) {
        let kept = self.heap.filter { keep($0.id) }
        self.heap = []
        self.heap.reserveCapacity(kept.count)
        for e in kept { self.push(deadline: e.deadline, id: e.id) }
    }
}
