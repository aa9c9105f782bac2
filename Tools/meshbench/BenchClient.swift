import Foundation
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import Synchronization

/// The client side of `meshbench channel`. Loop-confined state; the async methods set up
/// work on the loop and poll for completion, while timestamps are taken on the loop thread.
final class BenchClient: SecurePeerDelegate, @unchecked Sendable {
    // Safety: all `var`s are touched only on `loop`; `results` is thread-safe.
    let loop: EventLoop
    let port: UInt16
    var host: SecureHost!
    var control: SecurePeer?
    var controlStream: StreamID = 0
    let results = BenchResults()
    var readyPeers: [SecurePeer] = []
    var onReady: ((SecurePeer) -> Void)?
    var onMessage: ((SecurePeer, [UInt8], StreamID) -> Void)?

    init(port: UInt16) throws {
        self.loop = try EventLoop(name: "bench.client")
        self.port = port
        let box = self
        try self.loop.submitSync {
            var limits = ConnectionLimits()
            limits.maxOutbound = 5000
            limits.maxTotal = 6000
            box.host = SecureHost(loop: box.loop, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey()), limits: limits) {
                Hello(genesisHash: benchGenesis)
            }
            box.host.delegate = box
        }
    }

    func stop() {
        self.loop.execute { self.host.shutdown() }
        self.loop.shutdown()
    }

    var address: SocketAddress { SocketAddress(ip: [127, 0, 0, 1], port: self.port) }

    func wait(for key: String, timeout: Double = 600) async throws -> String {
        try await self.results.wait(for: key, timeout: timeout)
    }

    func set(_ key: String, _ value: String) { self.results.set(key, value) }

    /// One connected peer, ready.
    func connectOne(_ tag: String) async throws {
        self.loop.execute {
            self.onReady = { p in
                self.onReady = nil
                self.control = p
                self.set(tag, "ok")
            }
            _ = try? self.host.dial(self.address)
        }
        _ = try await self.wait(for: tag)
    }

    /// Server stats: CPU nanos, RSS bytes, peer count.
    func serverStats(_ tag: String) async throws -> (cpu: UInt64, rss: Int, peers: Int) {
        self.loop.execute {
            guard let c = self.control else { return }
            if self.controlStream == 0 { self.controlStream = (try? c.openStream("/bench/control")) ?? 0 }
            self.onMessage = { _, m, _ in
                self.onMessage = nil
                self.set(tag, String(decoding: m, as: UTF8.self))
            }
            try? c.send(Array("stats".utf8), on: self.controlStream)
        }
        let parts = try await self.wait(for: tag).split(separator: " ")
        return (UInt64(parts[0]) ?? 0, Int(parts[1]) ?? 0, Int(parts[2]) ?? 0)
    }

    /// Sends `bytes` in 1 MiB messages on one stream (over the connection ``connectOne(_:)``
    /// made); GB/s until the server acknowledges, and the transport messages (records) and
    /// their wire bytes the client sent meanwhile.
    func bulk(bytes: Int) async throws -> (gbps: Double, records: Int, wireBytes: Int) {
        let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
        self.loop.execute {
            guard let p = self.control else { return }
            let s = try! p.openStream("/bench/bulk")
            var sent = 0
            let start = EventLoop.now()
            let records0 = p.channel.messagesSent
            let wire0 = p.channel.bytesSent
            self.onMessage = { _, _, _ in
                self.onMessage = nil
                let gbps = Double(bytes) / Double(EventLoop.now() - start)
                self.set("bulk", "\(gbps) \(p.channel.messagesSent - records0) \(p.channel.bytesSent - wire0)")
            }
            func pump() {
                while sent < bytes && p.channel.queuedBytes < (16 << 20) {
                    try? p.send(chunk, on: s, compress: false)
                    sent += chunk.count
                }
                if sent < bytes {
                    self.loop.schedule(after: 500_000) { pump() }
                } else {
                    try? p.send(Array("end".utf8), on: s)
                }
            }
            pump()
        }
        let parts = try await self.wait(for: "bulk").split(separator: " ")
        return (Double(parts[0])!, Int(parts[1])!, Int(parts[2])!)
    }

    /// 1 KiB messages on one stream; messages per second until acknowledged.
    func messageRate(count: Int, size: Int) async throws -> Double {
        let msg = [UInt8](repeating: 0x33, count: size)
        self.loop.execute {
            guard let p = self.control else { return }
            let s = try! p.openStream("/bench/msgs")
            var sent = 0
            let start = EventLoop.now()
            self.onMessage = { _, _, _ in
                self.onMessage = nil
                self.set("msgs", String(Double(count) * 1e9 / Double(EventLoop.now() - start)))
            }
            func pump() {
                while sent < count && p.channel.queuedBytes < (4 << 20) {
                    try? p.send(msg, on: s, compress: false)
                    sent += 1
                }
                if sent < count {
                    self.loop.schedule(after: 200_000) { pump() }
                } else {
                    try? p.send(Array("end".utf8), on: s)
                }
            }
            pump()
        }
        return Double(try await self.wait(for: "msgs"))!
    }

    /// Full handshakes (with hellos), `concurrency` at a time.
    func handshakes(count: Int, concurrency: Int) async throws -> (perSecond: Double, clientMicros: Double, serverMicros: Double) {
        let before = try await self.serverStats("hs-before")
        self.loop.execute {
            var started = 0
            var finished = 0
            let start = EventLoop.now()
            let cpu0 = processCPUNanos()
            func dialNext() {
                guard started < count else { return }
                started += 1
                _ = try? self.host.dial(self.address)
            }
            self.onReady = { p in
                guard p !== self.control else { return }
                finished += 1
                p.close()
                if finished == count {
                    self.onReady = nil
                    let wall = Double(EventLoop.now() - start)
                    let cpu = Double(processCPUNanos() - cpu0)
                    self.set("hs", "\(Double(count) * 1e9 / wall) \(cpu / Double(count) / 1000)")
                } else {
                    dialNext()
                }
            }
            for _ in 0..<concurrency { dialNext() }
        }
        let parts = try await self.wait(for: "hs").split(separator: " ")
        let after = try await self.serverStats("hs-after")
        let serverMicros = Double(after.cpu - before.cpu) / Double(count) / 1000
        return (Double(parts[0])!, Double(parts[1])!, serverMicros)
    }

    /// Server RSS growth per idle secure connection.
    func idleMemory(count: Int) async throws -> Double {
        try await Task.sleep(nanoseconds: 300_000_000)
        let before = try await self.serverStats("mem-before")
        self.loop.execute {
            var ready = 0
            self.onReady = { p in
                guard p !== self.control else { return }
                self.readyPeers.append(p)
                ready += 1
                if ready == count {
                    self.onReady = nil
                    self.set("idle", "ok")
                }
            }
            for _ in 0..<count { _ = try? self.host.dial(self.address) }
        }
        _ = try await self.wait(for: "idle")
        try await Task.sleep(nanoseconds: 500_000_000)
        let after = try await self.serverStats("mem-after")
        self.loop.execute {
            for p in self.readyPeers { p.close() }
            self.readyPeers.removeAll()
        }
        guard after.peers >= count else { throw CommandFailureBox("server holds \(after.peers) peers, expected \(count)") }
        return Double(after.rss - before.rss) / Double(count)
    }

    // SecurePeerDelegate
    func peerReady(_ peer: SecurePeer) { self.onReady?(peer) }
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {}
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) { self.onMessage?(peer, message, stream) }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {}
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {}

    /// Raw TCP bulk with the same socket layer, no encryption.
    static func rawBulk(port: UInt16, bytes: Int) async throws -> Double {
        let loop = try EventLoop(name: "bench.raw")
        defer { loop.shutdown() }
        let sink = RawSender(loop: loop, total: bytes)
        try await loop.submit { try sink.start(SocketAddress(ip: [127, 0, 0, 1], port: port)) }
        return Double(try await sink.results.wait(for: "raw", timeout: 600))!
    }
}

/// Writes `total` bytes to the raw server as fast as the socket drains.
final class RawSender: TCPConnectionDelegate, @unchecked Sendable {
    // Safety: `conn`, `sent` and `start` are confined to the loop; `results` is thread-safe.
    let loop: EventLoop
    let total: Int
    var conn: TCPConnection?
    var sent = 0
    var start: UInt64 = 0
    let results = BenchResults()
    let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)

    init(loop: EventLoop, total: Int) {
        self.loop = loop
        self.total = total
    }

    func start(_ address: SocketAddress) throws {
        self.conn = try TCPConnection.connect(loop: self.loop, to: address, delegate: self)
    }

    func connectionDidOpen(_ connection: TCPConnection) {
        self.start = EventLoop.now()
        var w = ByteWriter()
        w.u64(UInt64(self.total))
        connection.write(w.bytes)
        self.pump(connection)
    }

    func pump(_ c: TCPConnection) {
        while self.sent < self.total && c.isWritable {
            c.write(self.chunk)
            self.sent += self.chunk.count
        }
    }

    func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) {
        let elapsed = Double(EventLoop.now() - self.start)
        self.results.set("raw", String(Double(self.total) / elapsed))
        connection.close()
    }

    func connectionDidDrain(_ connection: TCPConnection) { self.pump(connection) }
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}

/// Results the event loop hands to the waiting benchmark task, by key. The waiter sleeps
/// until its result is set (no polling: a 1 ms polling loop woke a timer thread and a pool
/// thread about a thousand times a second, CPU the client process was charged for and
/// took from the two loops).
final class BenchResults: Sendable {
    private struct State {
        var values: [String: String] = [:]
        var waiters: [String: CheckedContinuation<String, any Error>] = [:]
    }

    private let state = Mutex(State())

    /// Records `value` under `key` and wakes its waiter, if any.
    func set(_ key: String, _ value: String) {
        let waiter = self.state.withLock { s -> CheckedContinuation<String, any Error>? in
            if let w = s.waiters.removeValue(forKey: key) { return w }
            s.values[key] = value
            return nil
        }
        waiter?.resume(returning: value)
    }

    /// The value set under `key`, waiting up to `timeout` seconds for it.
    func wait(for key: String, timeout: Double) async throws -> String {
        let timer = Task {
            try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: key) }
            waiter?.resume(throwing: CommandFailureBox("timed out waiting for \(key)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<String, any Error>) in
            let ready = self.state.withLock { s -> String? in
                if let v = s.values[key] { return v }
                precondition(s.waiters[key] == nil, "two waiters for \(key)")
                s.waiters[key] = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

struct CommandFailureBox: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { self.description = d }
}

extension EventLoop {
    /// Runs `body` on the loop and waits (for setup from synchronous code).
    func submitSync(_ body: @escaping @Sendable () throws -> Void) throws {
        let sem = DispatchSemaphore(value: 0)
        let err = Mutex<(any Error)?>(nil)
        self.execute {
            do { try body() } catch { err.withLock { $0 = error } }
            sem.signal()
        }
        sem.wait()
        if let e = err.withLock({ $0 }) { throw e }
    }
}
