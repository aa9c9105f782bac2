import ArgumentParser
import Foundation
import MeshChannel
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshNetwork
import MeshSockets
import Synchronization

let benchGenesis = [UInt8](repeating: 0x42, count: 32)

/// CPU time of this process (user + system) in nanoseconds.
func processCPUNanos() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let u = UInt64(usage.ru_utime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec) * 1000
    let s = UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1000
    return u + s
}

extension MeshBench {
    /// The server half of `meshbench channel`, run in its own process.
    struct ChannelServer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "channel-server", abstract: "Benchmark server (started by `meshbench channel`).", shouldDisplay: false)

        @Option var mode: String = "secure"

        func run() async throws {
            let loop = try EventLoop(name: "bench.server")
            let server = BenchServer(loop: loop)
            let port: UInt16 = try await loop.submit { try server.start(raw: self.mode == "raw") }
            StandardOutput.line("PORT \(port)")
            // Serve until stdin closes (the client process exits); `cpu` asks for this
            // process's CPU time so far (the bulk figures' CPU per byte).
            while let line = readLine(), line != "quit" {
                if line == "cpu" { StandardOutput.line("CPU \(processCPUNanos())") }
            }
            loop.shutdown()
        }
    }

    /// Secure channel throughput, message rate, handshakes and idle memory vs raw TCP and TLS 1.3.
    struct Channel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Secure channel on loopback, two processes: bulk GB/s vs raw TCP and TLS 1.3, 1 KiB msg/s, handshakes/s, idle memory.")

        @Option(help: "MiB to transfer in the bulk tests.")
        var megabytes: Int = 1024
        @Option(help: "1 KiB messages to send in the message-rate test.")
        var messages: Int = 300_000
        @Option(help: "Handshakes to run.")
        var handshakes: Int = 4000
        @Option(help: "Idle connections to open for the memory test.")
        var idle: Int = 1000
        @Flag(help: "Skip the TLS anchor.")
        var noTLS = false
        @Option(help: "Handshakes for the handshake-only CPU figure (in memory, no TCP).")
        var handshakeOnly: Int = 4000
        @Flag(help: "Run only the handshake-only figure and the crypto floor (for profiling).")
        var onlyHandshake = false
        @Flag(help: ArgumentHelp("Run only the handshakes over TCP (32 concurrent, with both processes' CPU per handshake), then the handshake-only figure and the crypto floor (for profiling the connection path).",
                                 discussion: "Profile both processes with: perf record -g -- meshbench channel --only-tcp-handshakes"))
        var onlyTcpHandshakes = false
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            if self.onlyHandshake {
                let only = HandshakeOnlyBench.run(count: self.handshakeOnly)
                let floor = only.floorMicros
                if self.json {
                    StandardOutput.line(JSONValue.object([
                        Self.handshakeOnlyJSON(only), ("handshakeFloorMicros", .double(floor)), ("handshakesOnly", .int(only.handshakes)),
                    ]).serialized(pretty: true))
                } else {
                    StandardOutput.line(Self.handshakeOnlyLine(only))
                }
                return
            }
            if self.onlyTcpHandshakes {
                try await self.runTCPHandshakesOnly()
                return
            }
            var results: [(String, String, String)] = []
            let total = self.megabytes << 20

            // (b) raw TCP with the same harness; both processes' CPU time around the transfer.
            let raw = try ServerProcess(mode: "raw")
            let rawServer0 = try raw.cpuNanos()
            let rawClient0 = processCPUNanos()
            let rawGBs = try await BenchClient.rawBulk(port: raw.port, bytes: total)
            let rawClient1 = processCPUNanos()
            let rawServer1 = try raw.cpuNanos()
            raw.stop()
            // (a) secure bulk (CPU time as for raw, the handshake before it not counted),
            // (d) messages, (e) handshakes, (f) idle memory.
            let sec = try ServerProcess(mode: "secure")
            let client = try BenchClient(port: sec.port)
            try await client.connectOne("bulk-connect")
            let secServer0 = try sec.cpuNanos()
            let secClient0 = processCPUNanos()
            let bulk = try await client.bulk(bytes: total)
            let secClient1 = processCPUNanos()
            let secServer1 = try sec.cpuNanos()
            let secGBs = bulk.gbps
            // (g) The AEAD term of the CPU ceiling, at once (this shared machine's speed drifts
            // over seconds): one seal and one open of the secure run's mean record, on one core
            // through the channel's own calls.
            guard bulk.records > 0 else { throw CommandFailure("the secure bulk transfer sent no records") }
            let recordPlaintext = min(65_535 - 16, max(64, bulk.wireBytes / bulk.records - 2 - 16))
            let aead = try AEADRecordBench.run(recordPlaintext: recordPlaintext, bytes: total)
            let msgRate = try await client.messageRate(count: self.messages, size: 1024)
            let hs = try await client.handshakes(count: self.handshakes, concurrency: 32)
            let mem = try await client.idleMemory(count: self.idle)
            client.stop()
            sec.stop()
            // (c) TLS 1.3 with Python's ssl module over OpenSSL, in the same run.
            let tlsGBs = self.noTLS ? nil : Self.tls(megabytes: self.megabytes)
            // The handshake's own CPU per side (the same channel code without TCP, in memory)
            // and its crypto floor per side (three X25519, one Ed25519 signature and one
            // verification), measured in turns in the same run.
            let only = HandshakeOnlyBench.run(count: self.handshakeOnly)
            let floor = only.floorMicros
            // (g) The CPU ceiling: raw TCP's CPU per byte plus one seal and one open.
            guard let rawCPU = CPUPerByte(clientNanos: rawClient1 - rawClient0, serverNanos: rawServer1 - rawServer0, bytes: total),
                  let secCPU = CPUPerByte(clientNanos: secClient1 - secClient0, serverNanos: secServer1 - secServer0, bytes: total) else {
                throw CommandFailure("bulk transfers moved nothing")
            }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let ceiling = ChannelCeiling(cores: Double(cores), raw: rawCPU, sealNsPerByte: aead.sealNsPerByte, openNsPerByte: aead.openNsPerByte)
            let extra = ceiling.extra(secure: secCPU)

            results.append(("(a) bulk, secure channel", "\(fmt(secGBs, 3)) GB/s", "target >= 0.6 x raw and >= 3 x TLS"))
            results.append(("(b) bulk, raw TCP (same harness)", "\(fmt(rawGBs, 3)) GB/s", "ratio secure/raw = \(fmt(secGBs / rawGBs, 2))"))
            if let tlsGBs {
                results.append(("(c) bulk, TLS 1.3 (python ssl, OpenSSL)", "\(fmt(tlsGBs, 3)) GB/s", "ratio secure/TLS = \(fmt(secGBs / tlsGBs, 2))"))
            } else {
                results.append(("(c) bulk, TLS 1.3 (python ssl)", "unavailable", ""))
            }
            results.append(("(d) 1 KiB messages, one stream", "\(fmt(msgRate, 0)) msg/s", ""))
            results.append(("(e) handshakes (32 concurrent)", "\(fmt(hs.perSecond, 0)) /s", "target >= 2000 /s"))
            results.append(("(e) process CPU per handshake over TCP, client", "\(fmt(hs.clientMicros, 1)) us", "\(fmt(hs.clientMicros / floor, 2)) x floor"))
            results.append(("(e) process CPU per handshake over TCP, server", "\(fmt(hs.serverMicros, 1)) us", "\(fmt(hs.serverMicros / floor, 2)) x floor"))
            results.append(("(e) handshake-only CPU (in memory), client", "\(fmt(only.clientMicros, 1)) us", "\(fmt(only.clientMicros / floor, 2)) x floor; target <= 1.5 x"))
            results.append(("(e) handshake-only CPU (in memory), server", "\(fmt(only.serverMicros, 1)) us", "\(fmt(only.serverMicros / floor, 2)) x floor; target <= 1.5 x"))
            results.append(("(e) crypto floor per side (3 X25519, sign, verify)", "\(fmt(floor, 1)) us", "thread CPU, between the handshake-only batches"))
            results.append(("(f) server memory per idle connection (\(self.idle) open)", "\(fmt(mem / 1024, 1)) KiB", "target <= 64 KiB"))
            results.append(("(g) AEAD, one core: seal / open (\(aead.recordPlaintext) B records)",
                            "\(fmt(1 / aead.sealNsPerByte, 2)) / \(fmt(1 / aead.openNsPerByte, 2)) GB/s", "the channel's record calls, thread CPU"))
            results.append(("(g) CPU per byte, raw TCP: client / server", "\(fmt(rawCPU.client, 3)) / \(fmt(rawCPU.server, 3)) ns",
                            "\(fmt(rawCPU.coresBusy(gbps: rawGBs), 2)) cores busy"))
            results.append(("(g) CPU per byte, secure: client / server", "\(fmt(secCPU.client, 3)) / \(fmt(secCPU.server, 3)) ns",
                            "\(fmt(secCPU.coresBusy(gbps: secGBs), 2)) cores busy; model \(fmt(ceiling.modelNsPerByte, 3)) ns, "
                                + "beyond it: client \(fmt(extra.client, 3)), server \(fmt(extra.server, 3)) ns"))
            results.append(("(g) ceiling: \(cores) cores / (raw + seal + open)", "\(fmt(ceiling.ceilingGBps, 3)) GB/s",
                            "\(fmt(ceiling.ceilingRatio(rawGBps: rawGBs), 2)) x raw; secure = \(fmt(secGBs / ceiling.ceilingGBps, 2)) of it"))
            results.append(("(g) one thread per side: 1 / slower side", "\(fmt(ceiling.pipelineCeilingGBps, 3)) GB/s",
                            "secure = \(fmt(secGBs / ceiling.pipelineCeilingGBps, 2)) of it"))

            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("secureGBps", .double(secGBs)), ("rawGBps", .double(rawGBs)), ("tlsGBps", tlsGBs.map { .double($0) } ?? .null),
                    ("handshakesPerSecond", .double(hs.perSecond)),
                    ("handshakeCpuMicros", .object([("client", .double(hs.clientMicros)), ("server", .double(hs.serverMicros))])),
                    Self.handshakeOnlyJSON(only), ("handshakeFloorMicros", .double(floor)), ("messagesPerSecond", .double(msgRate)),
                    ("idleBytesPerConnection", .double(mem)), ("megabytes", .int(self.megabytes)), ("handshakes", .int(self.handshakes)),
                    ("cores", .int(cores)), ("aeadRecordBytes", .int(aead.recordPlaintext)),
                    ("aeadSealGBps", .double(1 / aead.sealNsPerByte)), ("aeadOpenGBps", .double(1 / aead.openNsPerByte)),
                    ("rawCpuNsPerByte", Self.sides(rawCPU)), ("secureCpuNsPerByte", Self.sides(secCPU)),
                    ("rawCoresBusy", .double(rawCPU.coresBusy(gbps: rawGBs))), ("secureCoresBusy", .double(secCPU.coresBusy(gbps: secGBs))),
                    ("modelCpuNsPerByte", .double(ceiling.modelNsPerByte)), ("secureExtraCpuNsPerByte", Self.sides(extra)),
                    ("ceilingGBps", .double(ceiling.ceilingGBps)), ("ceilingRatio", .double(ceiling.ceilingRatio(rawGBps: rawGBs))),
                    ("secureOfCeiling", .double(secGBs / ceiling.ceilingGBps)),
                    ("pipelineCeilingGBps", .double(ceiling.pipelineCeilingGBps)), ("secureOfPipelineCeiling", .double(secGBs / ceiling.pipelineCeilingGBps)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("secure channel benchmark, loopback, client and server in separate processes")
                for r in results { StandardOutput.line(pad(r.0, 52) + pad(r.1, 22) + r.2) }
            }
        }

        /// `--only-tcp-handshakes`: the handshakes over TCP exactly as in the full run (a fresh
        /// server process, one control connection, then `handshakes` at 32 concurrent), then
        /// the handshake-only figure and its floor for the ratios.
        func runTCPHandshakesOnly() async throws {
            let sec = try ServerProcess(mode: "secure")
            let client = try BenchClient(port: sec.port)
            try await client.connectOne("control-connect")
            let hs = try await client.handshakes(count: self.handshakes, concurrency: 32)
            client.stop()
            sec.stop()
            let only = HandshakeOnlyBench.run(count: self.handshakeOnly)
            let floor = only.floorMicros
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("handshakesPerSecond", .double(hs.perSecond)),
                    ("handshakeCpuMicros", .object([("client", .double(hs.clientMicros)), ("server", .double(hs.serverMicros))])),
                    Self.handshakeOnlyJSON(only), ("handshakeFloorMicros", .double(floor)), ("handshakes", .int(self.handshakes)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("handshakes over TCP (32 concurrent): \(fmt(hs.perSecond, 0)) /s; process CPU per handshake: client \(fmt(hs.clientMicros, 1)) us "
                    + "(\(fmt(hs.clientMicros / floor, 2)) x), server \(fmt(hs.serverMicros, 1)) us (\(fmt(hs.serverMicros / floor, 2)) x)")
                StandardOutput.line(Self.handshakeOnlyLine(only))
            }
        }

        typealias HandshakeOnly = (clientMicros: Double, serverMicros: Double, floorMicros: Double, handshakes: Int)

        /// The `handshakeOnlyCpuMicros` member of the JSON output.
        static func handshakeOnlyJSON(_ only: HandshakeOnly) -> (String, JSONValue) {
            ("handshakeOnlyCpuMicros", .object([("client", .double(only.clientMicros)), ("server", .double(only.serverMicros))]))
        }

        /// The handshake-only figures and the floor, as one line of text.
        static func handshakeOnlyLine(_ only: HandshakeOnly) -> String {
            let floor = only.floorMicros
            return "handshake only (in memory): client \(fmt(only.clientMicros, 1)) us (\(fmt(only.clientMicros / floor, 2)) x), "
                + "server \(fmt(only.serverMicros, 1)) us (\(fmt(only.serverMicros / floor, 2)) x); crypto floor \(fmt(floor, 1)) us"
        }

        static func sides(_ c: CPUPerByte) -> JSONValue {
            .object([("client", .double(c.client)), ("server", .double(c.server)), ("total", .double(c.total))])
        }

        static func tls(megabytes: Int) -> Double? {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("bench/tls_loopback.py").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [benchPython(), script, String(megabytes)]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return nil }
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { return nil }
            return Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// A `meshbench channel-server` child process.
final class ServerProcess {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let port: UInt16

    init(mode: String) throws {
        self.process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        self.process.arguments = ["channel-server", "--mode", mode]
        self.process.standardOutput = self.output
        self.process.standardInput = self.input
        try self.process.run()
        let line = Self.readLine(self.output.fileHandleForReading)
        guard line.hasPrefix("PORT "), let p = UInt16(line.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CommandFailure("benchmark server did not start")
        }
        self.port = p
    }

    static func readLine(_ handle: FileHandle) -> String {
        var line = ""
        while !line.hasSuffix("\n") {
            let d = handle.readData(ofLength: 1)
            if d.isEmpty { break }
            line += String(decoding: d, as: UTF8.self)
        }
        return line
    }

    /// The server process's CPU time so far (user + system, all threads), in nanoseconds.
    func cpuNanos() throws -> UInt64 {
        try self.input.fileHandleForWriting.write(contentsOf: Data("cpu\n".utf8))
        let line = Self.readLine(self.output.fileHandleForReading)
        guard line.hasPrefix("CPU "), let n = UInt64(line.dropFirst(4).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CommandFailure("benchmark server did not report its CPU time")
        }
        return n
    }

    func stop() {
        try? self.input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        try? self.input.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }
}

/// The server side: counts what arrives, acknowledges ends of transfers, reports stats.
final class BenchServer: SecurePeerDelegate, TCPConnectionDelegate, @unchecked Sendable {
    // Safety: confined to the server's event loop.
    let loop: EventLoop
    var host: SecureHost?
    var listener: TCPListener?
    var rawCounts: [ObjectIdentifier: Int] = [:]
    var rawExpect: [ObjectIdentifier: Int] = [:]
    var received = 0

    init(loop: EventLoop) { self.loop = loop }

    func start(raw: Bool) throws -> UInt16 {
        let any = SocketAddress("127.0.0.1:0")!
        if raw {
            let l = try TCPListener(loop: self.loop, address: any, tracker: ConnectionTracker()) { [unowned self] c in c.delegate = self }
            self.listener = l
            return l.localAddress.port
        }
        var limits = ConnectionLimits()
        limits.maxInbound = 5000
        limits.maxTotal = 6000
        let host = SecureHost(loop: self.loop, identity: NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey()), limits: limits) {
            Hello(genesisHash: benchGenesis)
        }
        host.delegate = self
        self.host = host
        return try host.listen(on: any).port
    }

    // Secure side.
    func peerReady(_ peer: SecurePeer) {}
    func peer(_ peer: SecurePeer, openedStream stream: StreamID, protocolName: String) {}
    func peer(_ peer: SecurePeer, received message: [UInt8], on stream: StreamID) {
        self.received += message.count
        if message == Array("stats".utf8) {
            let reply = "\(processCPUNanos()) \(ProcessMemory.currentBytes()) \(self.host?.peers.count ?? 0)"
            try? peer.send(Array(reply.utf8), on: stream)
        } else if message == Array("end".utf8) {
            try? peer.send(Array("\(self.received)".utf8), on: stream)
        }
    }
    func peer(_ peer: SecurePeer, streamEnded stream: StreamID, reset: UInt16?) {}
    func peerClosed(_ peer: SecurePeer, error: ChannelError?, socket: CloseReason?) {}

    // Raw side: the first 8 bytes say how many follow; one byte is echoed at the end.
    func connectionDidOpen(_ connection: TCPConnection) {}
    func connection(_ connection: TCPConnection, didRead bytes: [UInt8]) {
        let id = ObjectIdentifier(connection)
        var count = self.rawCounts[id, default: 0]
        if count == 0 && self.rawExpect[id] == nil && bytes.count >= 8 {
            var r = ByteReader(Array(bytes.prefix(8)))
            self.rawExpect[id] = Int(try! r.u64())
            count -= 8
        }
        count += bytes.count
        self.rawCounts[id] = count
        if let e = self.rawExpect[id], count >= e {
            connection.write([1])
            self.rawExpect[id] = Int.max
        }
    }
    func connectionDidDrain(_ connection: TCPConnection) {}
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) { self.rawCounts[ObjectIdentifier(connection)] = nil }
}
