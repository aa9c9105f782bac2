import ArgumentParser
import Dispatch
import Foundation
import MeshChannel
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshNetwork
import MeshNode
import MeshNodeCore
import MeshSockets
import Synchronization

/// A crawl's findings, shared by its workers.
struct CrawlState {
    var queue: [(Ed25519.PublicKey, Endpoint)] = []
    var seen: Set<Ed25519.PublicKey> = []
    var busy = 0
    var records: [Ed25519.PublicKey: NodeRecord] = [:]
    /// Discovery: whom each node lists in its table.
    var neighbours: [Ed25519.PublicKey: [Ed25519.PublicKey]] = [:]
    var unanswered: Set<Ed25519.PublicKey> = []
    /// Secure channel: what each node says of itself, and whom it is connected to.
    var agents: [Ed25519.PublicKey: String] = [:]
    var genesis: [Ed25519.PublicKey: String] = [:]
    var best: [Ed25519.PublicKey: UInt64] = [:]
    var connections: [Ed25519.PublicKey: [Ed25519.PublicKey]] = [:]
    var dialErrors: [Ed25519.PublicKey: String] = [:]
}

/// Shared by the crawl's worker threads.
final class CrawlBox: Sendable {
    let state: Mutex<CrawlState>
    let next = Mutex(0)
    init(_ s: CrawlState) { self.state = Mutex(s) }
}

extension MeshProbe {
    struct Crawl: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk the network from bootnodes: discovery tables, then a secure channel to every node found (agent, genesis, its actual connections).",
            discussion: """
                Discovery tables are walked by --concurrency workers at once; then each node with a TCP port is dialled \
                (its record's genesis) and asked for its peers (/tm/peers/1). The table shows each node's agent, genesis, \
                table size and connections, and why dials failed. --dot/--svg draw two pictures side by side: the discovery \
                neighbours and the connections nodes actually hold.
                """)
        @Option(help: ArgumentHelp("Where to start: NODEID@HOST:PORT (repeatable).", valueName: "ADDR"))
        var bootnodes: [String]
        @Option(help: ArgumentHelp("Write the two pictures as a Graphviz file.", valueName: "FILE"))
        var dot: String?
        @Option(help: ArgumentHelp("Write the two pictures as SVG (needs Graphviz's dot: TENSORMESH_WITH_GRAPHVIZ=1 Bootstrap/setup).", valueName: "FILE"))
        var svg: String?
        @Option(help: "Seconds to wait for each answer.")
        var timeout: Double = 2
        @Option(help: "Most nodes to visit.")
        var limit: Int = 5000
        @Option(help: "Nodes probed at once.")
        var concurrency: Int = 16
        @Flag(help: "Only walk discovery tables (no secure channels).")
        var discoveryOnly = false
        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard (1...256).contains(self.concurrency) else { throw ValidationError("--concurrency must be 1...256") }
            guard self.timeout > 0, self.timeout <= 60 else { throw ValidationError("--timeout must be in (0, 60] seconds") }
        }

        func run() async throws {
            var start = CrawlState()
            for b in self.bootnodes {
                guard let a = NodeAddress(b) else { throw ValidationError("--bootnodes \(b): expected NODEID@HOST:PORT") }
                start.queue.append((a.nodeId, try DiscoveryProbe.endpoint(a)))
                start.seen.insert(a.nodeId)
            }
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let probe = try DiscoveryProbe(loop: loop)
            defer { probe.close() }
            let box = CrawlBox(start)
            let began = Date()
            let (timeout, limit, workers) = (self.timeout, self.limit, self.concurrency)
            // 1. Discovery tables, `workers` at a time.
            Self.parallel(workers) {
                while let (id, e) = Self.take(box, limit: limit) {
                    let table = probe.table(of: id, at: e, timeout: timeout)
                    var own: NodeRecord?
                    if table != nil {
                        let s = probe.service
                        let rid = probe.onLoop { s.findNode(id: id, endpoint: e, distances: [0]) }
                        own = probe.answer(rid, timeout: timeout)?.records.first { $0.nodeId == id }
                    }
                    box.state.withLock { st in
                        st.busy -= 1
                        guard let table else {
                            st.unanswered.insert(id)
                            return
                        }
                        if let own { st.records[id] = own }
                        st.neighbours[id] = table.map(\.nodeId)
                        for r in table {
                            if st.records[r.nodeId].map({ $0.seq < r.seq }) ?? true { st.records[r.nodeId] = r }
                            if !st.seen.contains(r.nodeId), let ue = r.udpEndpoint {
                                st.seen.insert(r.nodeId)
                                st.queue.append((r.nodeId, ue))
                            }
                        }
                    }
                }
            }
            let discoverySeconds = Date().timeIntervalSince(began)
            // 2. A secure channel to each node with a TCP port: hello (agent, genesis, best) and peers.
            if !self.discoveryOnly {
                let targets: [(Ed25519.PublicKey, NodeAddress, [UInt8])] = box.state.withLock { st in
                    st.records.values.sorted { $0.nodeId < $1.nodeId }.compactMap { r in
                        guard let ue = r.udpEndpoint, r.tcpPort > 0 else { return nil }
                        let host = SocketAddress(ip: ue.ip, port: r.tcpPort).host
                        return (r.nodeId, NodeAddress(nodeId: r.nodeId, host: host, port: r.tcpPort), r.genesis)
                    }
                }
                Self.parallel(workers) {
                    while true {
                        let i = box.next.withLock { n -> Int in defer { n += 1 }; return n }
                        guard i < targets.count else { return }
                        let (id, address, genesis) = targets[i]
                        do {
                            let session = try ProbeSession.open(address, genesis: genesis, loop: loop, timeout: timeout)
                            defer { session.close() }
                            let hello = session.state.withLock { $0.hello }
                            let me = session.identity
                            let peers = try? PeerList.decode(try session.request(ProtocolName.peers, [], timeout: timeout))
                            box.state.withLock { st in
                                st.agents[id] = hello?.agent ?? "?"
                                st.genesis[id] = hello.map { "0x" + Hex.encode($0.genesisHash) } ?? "?"
                                st.best[id] = hello?.best.number
                                // The node lists our own probing connection too: not one of its connections.
                                if let peers { st.connections[id] = peers.peers.map(\.nodeId).filter { $0 != me } } else { st.dialErrors[id] = "no peers answer" }
                            }
                        } catch {
                            box.state.withLock { $0.dialErrors[id] = Self.classify("\(error)") }
                        }
                    }
                }
            }
            let st = box.state.withLock { $0 }
            try self.report(st, discoverySeconds: discoverySeconds, totalSeconds: Date().timeIntervalSince(began))
        }

        /// The next node to walk, or nil when the queue is empty and no worker may add to it.
        static func take(_ box: CrawlBox, limit: Int) -> (Ed25519.PublicKey, Endpoint)? {
            while true {
                let (item, done) = box.state.withLock { st -> ((Ed25519.PublicKey, Endpoint)?, Bool) in
                    if st.neighbours.count + st.unanswered.count + st.busy >= limit { return (nil, true) }
                    if !st.queue.isEmpty {
                        st.busy += 1
                        return (st.queue.removeFirst(), false)
                    }
                    return (nil, st.busy == 0)
                }
                if let item { return item }
                if done { return nil }
                usleep(5000)  // another worker may still find nodes
            }
        }

        /// Runs `body` on `n` threads and waits for all.
        static func parallel(_ n: Int, _ body: @escaping @Sendable () -> Void) {
            let group = DispatchGroup()
            for _ in 0..<n {
                group.enter()
                Thread.detachNewThread {
                    body()
                    group.leave()
                }
            }
            group.wait()
        }

        /// A dial's failure in a few words, for the breakdown.
        static func classify(_ error: String) -> String {
            let e = error.lowercased()
            if e.contains("refused") { return "connection refused" }
            if e.contains("no handshake within") || e.contains("timed out") || e.contains("timeout") { return "timeout" }
            if e.contains("unreachable") { return "unreachable" }
            if e.contains(", not ") && e.contains("is node") { return "another identity" }
            if e.contains("genesis") { return "other chain" }
            if e.contains("cannot resolve") || e.contains("cannot connect") { return "cannot connect" }
            return "handshake failed"
        }

        func report(_ st: CrawlState, discoverySeconds: Double, totalSeconds: Double) throws {
            let nodes = st.seen.sorted { $0.hex < $1.hex }
            func count(_ values: some Sequence<String>) -> [(String, Int)] {
                Dictionary(values.map { ($0, 1) }, uniquingKeysWith: +).sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            }
            let agents = count(st.agents.values)
            let geneses = count(st.genesis.values)
            let errors = count(st.dialErrors.values)
            // Connections as nodes report them, once per pair.
            var pairs = Set<[String]>()
            for (a, list) in st.connections { for b in list { pairs.insert([a.hex, b.hex].sorted()) } }
            if let path = self.dot ?? (self.svg != nil ? NSTemporaryDirectory() + "meshprobe-\(getpid()).dot" : nil) {
                try self.picture(st, nodes: nodes, pairs: pairs).write(toFile: path, atomically: true, encoding: .utf8)
                if let svg = self.svg {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    p.arguments = ["dot", "-Tsvg", path, "-o", svg]
                    do { try p.run() } catch { throw ProbeError("cannot run Graphviz's dot (TENSORMESH_WITH_GRAPHVIZ=1 Bootstrap/setup): \(error)") }
                    p.waitUntilExit()
                    guard p.terminationStatus == 0 else { throw ProbeError("dot failed with status \(p.terminationStatus) (is Graphviz installed?)") }
                }
            }
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("nodes", .array(nodes.map { id in
                        var o: [(String, JSONValue)] = [("nodeId", .string(id.hex)), ("reachable", .bool(st.neighbours[id] != nil)),
                                                        ("tableSize", st.neighbours[id].map { .int($0.count) } ?? .null),
                                                        ("agent", st.agents[id].map { .string($0) } ?? .null),
                                                        ("genesis", st.genesis[id].map { .string($0) } ?? .null),
                                                        ("best", st.best[id].map { .int($0) } ?? .null),
                                                        ("connections", st.connections[id].map { .int($0.count) } ?? .null),
                                                        ("dialError", st.dialErrors[id].map { .string($0) } ?? .null)]
                        if let r = st.records[id] { o.append(("record", recordJSON(r))) }
                        return .object(o)
                    })),
                    ("edges", .array(st.neighbours.sorted { $0.key.hex < $1.key.hex }.flatMap { from, tos in
                        tos.map { JSONValue.array([.string(from.hex), .string($0.hex)]) }
                    })),
                    ("connections", .array(pairs.sorted { $0.lexicographicallyPrecedes($1) }.map { .array($0.map { .string($0) }) })),
                    ("agents", .object(agents.map { ($0.0, .int($0.1)) })),
                    ("genesis", .object(geneses.map { ($0.0, .int($0.1)) })),
                    ("dialErrors", .object(errors.map { ($0.0, .int($0.1)) })),
                    ("seconds", .object([("discovery", .double((discoverySeconds * 100).rounded() / 100)), ("total", .double((totalSeconds * 100).rounded() / 100))])),
                ]).serialized(pretty: true))
                return
            }
            StandardOutput.line("\(nodes.count) nodes, \(st.neighbours.count) answered discovery, \(st.unanswered.count) did not, \(st.connections.count) answered a channel; \(pairs.count) connections; \(String(format: "%.1f", totalSeconds)) s")
            StandardOutput.line("NODE ID           ADDRESS                 ROLES             TABLE  CONNS  AGENT")
            for id in nodes {
                let r = st.records[id]
                let table = st.neighbours[id].map { String($0.count) } ?? "-"
                let conns = st.connections[id].map { String($0.count) } ?? "-"
                let agent = st.agents[id] ?? st.dialErrors[id].map { "(\($0))" } ?? ""
                StandardOutput.line("\(id.hex.prefix(16))  \((r?.udpEndpoint?.description ?? "?").padding(toLength: 22, withPad: " ", startingAt: 0))  \(NodeRolesNames.names(r?.roles ?? 0).joined(separator: ",").padding(toLength: 16, withPad: " ", startingAt: 0))  \(table.padding(toLength: 5, withPad: " ", startingAt: 0))  \(conns.padding(toLength: 5, withPad: " ", startingAt: 0))  \(agent)")
            }
            if !agents.isEmpty { StandardOutput.line("agents: " + agents.map { "\($0.0) ×\($0.1)" }.joined(separator: ", ")) }
            if !geneses.isEmpty { StandardOutput.line("genesis: " + geneses.map { "\($0.0.prefix(18))… ×\($0.1)" }.joined(separator: ", ")) }
            if !errors.isEmpty { StandardOutput.line("dial errors: " + errors.map { "\($0.0) ×\($0.1)" }.joined(separator: ", ")) }
            if let d = self.dot { StandardOutput.line("wrote \(d)") }
            if let s = self.svg { StandardOutput.line("wrote \(s)") }
        }

        /// Two pictures in one graph: discovery neighbours (directed: who lists whom) and the
        /// connections nodes report (undirected).
        func picture(_ st: CrawlState, nodes: [Ed25519.PublicKey], pairs: Set<[String]>) -> String {
            func node(_ prefix: String, _ id: Ed25519.PublicKey) -> String {
                let r = st.records[id]
                let label = "\(id.hex.prefix(8))\\n\(r?.udpEndpoint?.description ?? "?")\\n\(NodeRolesNames.names(r?.roles ?? 0).joined(separator: ","))"
                let color = st.unanswered.contains(id) || st.dialErrors[id] != nil ? "red" : ((r?.roles ?? 0) & 1 != 0 ? "blue" : "black")
                return "    \"\(prefix)\(id.hex.prefix(8))\" [label=\"\(label)\", color=\(color)];\n"
            }
            var g = "digraph tensormesh {\n  graph [overlap=false, splines=true, compound=true];\n  node [shape=box, fontsize=10];\n"
            g += "  subgraph cluster_discovery {\n    label=\"discovery neighbours\";\n"
            for id in nodes { g += node("d", id) }
            for (from, tos) in st.neighbours.sorted(by: { $0.key.hex < $1.key.hex }) {
                for to in tos { g += "    \"d\(from.hex.prefix(8))\" -> \"d\(to.hex.prefix(8))\";\n" }
            }
            g += "  }\n  subgraph cluster_connections {\n    label=\"connections (peers protocol)\";\n"
            for id in nodes { g += node("c", id) }
            for p in pairs.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                g += "    \"c\(p[0].prefix(8))\" -> \"c\(p[1].prefix(8))\" [dir=none];\n"
            }
            g += "  }\n}\n"
            return g
        }
    }
}
