import ArgumentParser
import Foundation
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshNetwork
import MeshNode
import MeshNodeCore
import MeshSockets
import Synchronization

/// A throwaway discovery endpoint for probing (accepts records of any chain).
final class DiscoveryProbe: @unchecked Sendable {
    // Safety: `service` is used on `loop` only; results cross threads through `events`.
    let loop: EventLoop
    let service: DiscoveryService
    let box = EventBox()

    init(loop: EventLoop) throws {
        self.loop = loop
        let key = Ed25519.PrivateKey()
        var config = DiscoveryConfig(genesis: [UInt8](repeating: 0, count: 32))
        config.acceptAnyGenesis = true
        config.revalidateInterval = .seconds(Int64.max / 4)
        config.refreshInterval = .seconds(Int64.max / 4)
        config.requestsPerSecond = 1000
        config.requestBurst = 1000
        // Sequence 0: the record is never sent, so nodes of any chain accept our handshakes.
        let record = NodeRecord(key: key, seq: 0, ip: [], tcpPort: 0, udpPort: 0, roles: 16, genesis: config.genesis)
        let core = DiscoveryCore(key: key, record: record, config: config, random: { SecureRandom.bytes($0) })
        self.service = DiscoveryService(loop: loop, core: core)
        let events = self.box
        let s = self.service
        let box = Mutex<(any Error)?>(nil)
        let sem = DispatchSemaphore(value: 0)
        loop.execute {
            s.onEvent = { e in
                if case .nodesAnswered(let rid, _, _, _) = e {
                    // By request, for the waiter that asked (a crawl has many in flight).
                    events.answers.withLock { a in if a.count < 100_000 { a[rid] = e } }
                } else {
                    events.events.withLock { if $0.count < 100_000 { $0.append(e) } }
                }
            }
            do { try s.start(on: SocketAddress("0.0.0.0:0")!) } catch { box.withLock { $0 = error } }
            sem.signal()
        }
        sem.wait()
        if let e = box.withLock({ $0 }) { throw ProbeError("cannot open a UDP socket: \(e)") }
    }

    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let out = Mutex<T?>(nil)
        let sem = DispatchSemaphore(value: 0)
        self.loop.execute {
            let v = body()
            out.withLock { $0 = v }
            sem.signal()
        }
        sem.wait()
        return out.withLock { $0! }
    }

    /// Waits for the answer to request `rid` (and forgets it), up to `timeout` seconds.
    func answer(_ rid: UInt64, timeout: Double) -> (records: [NodeRecord], complete: Bool)? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let e = self.box.answers.withLock({ $0.removeValue(forKey: rid) }), case .nodesAnswered(_, _, let r, let c) = e { return (r, c) }
            usleep(2000)
        }
        return nil
    }

    /// Waits for an event matching `match`, up to `timeout` seconds.
    func wait<T>(timeout: Double, _ match: (DiscoveryEvent) -> T?) -> T? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let snapshot = self.box.events.withLock { $0 }
            if let v = snapshot.lazy.compactMap(match).first { return v }
            usleep(2000)
        }
        return nil
    }

    static func endpoint(_ a: NodeAddress) throws -> Endpoint {
        guard let s = try SocketAddress.resolve(host: a.host, port: a.port).first else { throw ProbeError("cannot resolve \(a.host)") }
        return Endpoint(s)
    }

    /// The node's table entries at all distances (batches of 8 from the far end, stopping after
    /// two empty batches below the last non-empty one).
    func table(of id: Ed25519.PublicKey, at e: Endpoint, timeout: Double) -> [NodeRecord]? {
        var out: [NodeRecord] = []
        var empty = 0
        var d = 256
        var answered = false
        while d >= 1 && empty < 3 {
            let distances = (max(1, d - 7)...d).reversed().map { UInt16($0) }
            let s = self.service
            let rid = self.onLoop { s.findNode(id: id, endpoint: e, distances: distances) }
            guard let (records, complete) = self.answer(rid, timeout: timeout), complete || !records.isEmpty else { return answered ? out : nil }
            answered = true
            out += records
            empty = records.isEmpty ? empty + 1 : 0
            d -= 8
        }
        return out
    }

    func close() {
        let s = self.service
        self.onLoop { s.stop() }
    }
}

final class EventBox: Sendable {
    let events = Mutex<[DiscoveryEvent]>([])
    let answers = Mutex<[UInt64: DiscoveryEvent]>([:])
}

func recordJSON(_ r: NodeRecord) -> JSONValue {
    .object([("nodeId", .string(r.nodeId.hex)), ("seq", .int(r.seq)),
             ("ip", r.udpEndpoint.map { .string(String($0.description.split(separator: ":").dropLast().joined(separator: ":"))) } ?? .null),
             ("tcpPort", .int(r.tcpPort)), ("udpPort", .int(r.udpPort)),
             ("roles", .array(NodeRolesNames.names(r.roles).map { .string($0) })), ("netuids", .array(r.netuids.map { .int($0) })),
             ("genesis", .string("0x" + Hex.encode(r.genesis)))])
}

enum NodeRolesNames {
    static func names(_ bits: UInt8) -> [String] {
        var out: [String] = []
        if bits & 1 != 0 { out.append("validator") }
        if bits & 2 != 0 { out.append("full") }
        if bits & 4 != 0 { out.append("miner") }
        if bits & 8 != 0 { out.append("subnet-validator") }
        if bits & 16 != 0 { out.append("light") }
        return out
    }
}

extension MeshProbe {
    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Discovery-level ping over UDP (encrypted): round-trip time, the address the peer sees, and its signed node record.")
        @OptionGroup var target: ChannelTarget
        @Option(help: "Pings to send.")
        var count: Int = 3

        func run() async throws {
            let a = try self.target.parsed()
            let e = try DiscoveryProbe.endpoint(a)
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let probe = try DiscoveryProbe(loop: loop)
            defer { probe.close() }
            var rtts: [Double] = []
            var observed: Endpoint?
            for _ in 0..<max(1, self.count) {
                let s = probe.service
                let rid = probe.onLoop { s.ping(id: a.nodeId, endpoint: e) }
                _ = rid
                let before = probe.box.events.withLock { $0.count }
                guard let (rtt, obs) = probe.wait(timeout: self.target.timeout, { ev -> (Duration, Endpoint)? in
                    if case .pong(a.nodeId, _, let rtt, let o, _) = ev { return (rtt, o) } else { return nil }
                }) else { throw ProbeError("no answer from \(a) within \(self.target.timeout) s") }
                probe.box.events.withLock { $0.removeSubrange(0..<min(before + 1, $0.count)) }
                rtts.append(Double(rtt.nanoseconds) / 1e6)
                observed = obs
            }
            let s = probe.service
            let rid = probe.onLoop { s.findNode(id: a.nodeId, endpoint: e, distances: [0]) }
            let record = probe.answer(rid, timeout: self.target.timeout)?.records.first { $0.nodeId == a.nodeId }
            if self.target.json {
                StandardOutput.line(JSONValue.object([
                    ("nodeId", .string(a.nodeId.hex)), ("rttMs", .array(rtts.map { .double($0) })),
                    ("observedAddress", .string(observed?.description ?? "")), ("record", record.map(recordJSON) ?? .null),
                ]).serialized(pretty: true))
                return
            }
            StandardOutput.line("pong from \(a.nodeId.hex.prefix(16))… at \(e): " + rtts.map { String(format: "%.2f ms", $0) }.joined(separator: ", ")
                + " (first includes the handshake)")
            StandardOutput.line("it sees us at \(observed?.description ?? "?")")
            if let r = record {
                StandardOutput.line("record seq \(r.seq): \(r.udpEndpoint?.description ?? "no address") tcp \(r.tcpPort) udp \(r.udpPort), roles \(NodeRolesNames.names(r.roles).joined(separator: ",")), genesis 0x\(Hex.encode(r.genesis.prefix(8)))…, signature valid")
            } else {
                StandardOutput.line("record: no answer")
            }
        }
    }
}
