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
        config.revalidateInterval = .max / 2
        config.refreshInterval = .max / 2
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
            s.onEvent = { e in events.events.withLock { $0.append(e) } }
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
            guard let (records, complete) = self.wait(timeout: timeout, { ev -> ([NodeRecord], Bool)? in
                if case .nodesAnswered(rid, _, let r, let c) = ev { return (r, c) } else { return nil }
            }), complete || !records.isEmpty else { return answered ? out : nil }
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
                guard let (rtt, obs) = probe.wait(timeout: self.target.timeout, { ev -> (UInt64, Endpoint)? in
                    if case .pong(a.nodeId, _, let rtt, let o, _) = ev { return (rtt, o) } else { return nil }
                }) else { throw ProbeError("no answer from \(a) within \(self.target.timeout) s") }
                probe.box.events.withLock { $0.removeSubrange(0..<min(before + 1, $0.count)) }
                rtts.append(Double(rtt) / 1e6)
                observed = obs
            }
            let s = probe.service
            let rid = probe.onLoop { s.findNode(id: a.nodeId, endpoint: e, distances: [0]) }
            let record = probe.wait(timeout: self.target.timeout) { ev -> NodeRecord? in
                if case .nodesAnswered(rid, _, let r, _) = ev { return r.first { $0.nodeId == a.nodeId } } else { return nil }
            }
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

    struct Crawl: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk the discovery tables of the whole network from bootnodes: a table, --json, and a picture of the mesh.")
        @Option(help: ArgumentHelp("Where to start: NODEID@HOST:PORT (repeatable).", valueName: "ADDR"))
        var bootnodes: [String]
        @Option(help: ArgumentHelp("Write the mesh as a Graphviz file.", valueName: "FILE"))
        var dot: String?
        @Option(help: ArgumentHelp("Write the mesh as an SVG picture (needs Graphviz's dot).", valueName: "FILE"))
        var svg: String?
        @Option(help: "Seconds to wait for each answer.")
        var timeout: Double = 2
        @Option(help: "Most nodes to visit.")
        var limit: Int = 5000
        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            var queue: [(Ed25519.PublicKey, Endpoint)] = []
            for b in self.bootnodes {
                guard let a = NodeAddress(b) else { throw ValidationError("--bootnodes \(b): expected NODEID@HOST:PORT") }
                queue.append((a.nodeId, try DiscoveryProbe.endpoint(a)))
            }
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let probe = try DiscoveryProbe(loop: loop)
            defer { probe.close() }
            var records: [Ed25519.PublicKey: NodeRecord] = [:]
            var edges: [Ed25519.PublicKey: [Ed25519.PublicKey]] = [:]
            var unreachable: Set<Ed25519.PublicKey> = []
            var seen = Set(queue.map(\.0))
            while !queue.isEmpty && edges.count + unreachable.count < self.limit {
                let (id, e) = queue.removeFirst()
                guard let table = probe.table(of: id, at: e, timeout: self.timeout) else {
                    unreachable.insert(id)
                    continue
                }
                if records[id] == nil {
                    let s = probe.service
                    let rid = probe.onLoop { s.findNode(id: id, endpoint: e, distances: [0]) }
                    if let r = probe.wait(timeout: self.timeout, { ev -> NodeRecord? in
                        if case .nodesAnswered(rid, _, let r, _) = ev { return r.first { $0.nodeId == id } } else { return nil }
                    }) { records[id] = r }
                }
                edges[id] = table.map(\.nodeId)
                for r in table {
                    if records[r.nodeId].map({ $0.seq < r.seq }) ?? true { records[r.nodeId] = r }
                    if !seen.contains(r.nodeId), let ue = r.udpEndpoint {
                        seen.insert(r.nodeId)
                        queue.append((r.nodeId, ue))
                    }
                }
            }
            let nodes = seen.sorted { $0.hex < $1.hex }
            if let path = self.dot ?? (self.svg != nil ? NSTemporaryDirectory() + "meshprobe-\(getpid()).dot" : nil) {
                var g = "digraph tensormesh {\n  graph [overlap=false, splines=true];\n  node [shape=box, fontsize=10];\n"
                for id in nodes {
                    let r = records[id]
                    let label = "\(id.hex.prefix(8))\\n\(r?.udpEndpoint?.description ?? "?")\\n\(NodeRolesNames.names(r?.roles ?? 0).joined(separator: ","))"
                    let color = unreachable.contains(id) ? "red" : ((r?.roles ?? 0) & 1 != 0 ? "blue" : "black")
                    g += "  \"\(id.hex.prefix(8))\" [label=\"\(label)\", color=\(color)];\n"
                }
                for (from, tos) in edges.sorted(by: { $0.key.hex < $1.key.hex }) {
                    for to in tos { g += "  \"\(from.hex.prefix(8))\" -> \"\(to.hex.prefix(8))\";\n" }
                }
                g += "}\n"
                try g.write(toFile: path, atomically: true, encoding: .utf8)
                if let svg = self.svg {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    p.arguments = ["dot", "-Tsvg", path, "-o", svg]
                    do { try p.run() } catch { throw ProbeError("cannot run Graphviz's dot (install graphviz): \(error)") }
                    p.waitUntilExit()
                    guard p.terminationStatus == 0 else { throw ProbeError("dot failed with status \(p.terminationStatus)") }
                }
            }
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("nodes", .array(nodes.map { id in
                        var o: [(String, JSONValue)] = [("nodeId", .string(id.hex)), ("reachable", .bool(edges[id] != nil)),
                                                        ("tableSize", edges[id].map { .int($0.count) } ?? .null)]
                        if let r = records[id] { o.append(("record", recordJSON(r))) }
                        return .object(o)
                    })),
                    ("edges", .array(edges.sorted { $0.key.hex < $1.key.hex }.flatMap { from, tos in
                        tos.map { JSONValue.array([.string(from.hex), .string($0.hex)]) }
                    })),
                ]).serialized(pretty: true))
                return
            }
            StandardOutput.line("\(nodes.count) nodes, \(edges.count) answered, \(unreachable.count) unreachable")
            StandardOutput.line("NODE ID           ADDRESS                 ROLES                  TABLE")
            for id in nodes {
                let r = records[id]
                StandardOutput.line("\(id.hex.prefix(16))  \((r?.udpEndpoint?.description ?? "?").padding(toLength: 22, withPad: " ", startingAt: 0))  \(NodeRolesNames.names(r?.roles ?? 0).joined(separator: ",").padding(toLength: 21, withPad: " ", startingAt: 0))  \(edges[id].map { String($0.count) } ?? "unreachable")")
            }
            if let d = self.dot { StandardOutput.line("wrote \(d)") }
            if let s = self.svg { StandardOutput.line("wrote \(s)") }
        }
    }
}
