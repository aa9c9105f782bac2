import ArgumentParser
import Foundation
import MeshChannel
import MeshChain
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshNode
import MeshNodeCore
import MeshSockets
import Synchronization

/// `meshprobe`: diagnostics for Tensormesh peers.
struct MeshProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshprobe",
        abstract: "Probe Tensormesh peers: discovery ping, secure-channel handshake, peers, head, crawl.",
        discussion: """
            Addresses are NODEID@HOST:PORT (the 64-hex-digit node id, as `tensormesh key inspect` and the node's log print it).
            Every command takes --json. Exit codes: 0 success, 1 the peer failed or did not answer, 2 usage error.
            """,
        version: "0.1.0",
        subcommands: [Ping.self, Handshake.self, Peers.self, Head.self, Crawl.self])
}

/// Options shared by the channel commands.
struct ChannelTarget: ParsableArguments {
    @Argument(help: ArgumentHelp("The peer: NODEID@HOST:PORT.", valueName: "ADDR"))
    var address: String
    @Option(help: ArgumentHelp("Seconds to wait for the peer.", valueName: "S"))
    var timeout: Double = 5
    @Flag(help: "Print JSON.")
    var json = false

    func parsed() throws -> NodeAddress {
        guard let a = NodeAddress(self.address) else { throw ValidationError("\(self.address): expected NODEID@HOST:PORT with a 64-hex-digit node id") }
        return a
    }

    /// Learns the peer's genesis from its hello, then opens a channel on that genesis.
    func session(loop: EventLoop) throws -> (ProbeSession, Hello) {
        let a = try self.parsed()
        let first = try ProbeSession.open(a, genesis: nil, loop: loop, timeout: self.timeout)
        let hello = first.state.withLock { $0.hello! }
        first.close()
        return (try ProbeSession.open(a, genesis: hello.genesisHash, loop: loop, timeout: self.timeout), hello)
    }
}

func helloJSON(_ h: Hello) -> [(String, JSONValue)] {
    [("version", .int(h.version)), ("genesis", .string("0x" + Hex.encode(h.genesisHash))),
     ("best", .object([("number", .int(h.best.number)), ("hash", .string("0x" + Hex.encode(h.best.hash)))])),
     ("finalized", .object([("number", .int(h.finalized.number)), ("hash", .string("0x" + Hex.encode(h.finalized.hash)))])),
     ("roles", .array(h.roles.names.map { .string($0) })), ("listenPort", .int(h.listenPort)), ("agent", .string(h.agent))]
}

extension MeshProbe {
    struct Handshake: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a secure channel: protocol version, node id, genesis, best and finalized head, and the time of each step.")
        @OptionGroup var target: ChannelTarget

        func run() async throws {
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let (s, _) = try self.target.session(loop: loop)
            defer { s.close() }
            let st = s.state.withLock { $0 }
            let h = st.hello!
            let m = st.milestones
            if self.target.json {
                StandardOutput.line(JSONValue.object([("nodeId", .string(st.nodeId!.hex)), ("address", .string(self.target.address)),
                                                      ("protocol", .string("Noise_XX_25519_ChaChaPoly_SHA256"))] + helloJSON(h) + [
                    ("timing", .object([("tcpConnectMs", .double(m.connectMs)), ("noiseHandshakeMs", .double(m.handshakeMs)),
                                        ("helloMs", .double(m.helloMs))])),
                ]).serialized(pretty: true))
                return
            }
            StandardOutput.line("node id     \(st.nodeId!.hex)")
            StandardOutput.line("protocol    Noise_XX_25519_ChaChaPoly_SHA256, tensormesh/\(h.version), agent \(h.agent)")
            StandardOutput.line("roles       \(h.roles.names.joined(separator: ", ")), listening on port \(h.listenPort)")
            StandardOutput.line("genesis     0x\(Hex.encode(h.genesisHash))")
            StandardOutput.line("best        #\(h.best.number) 0x\(Hex.encode(h.best.hash))")
            StandardOutput.line("finalized   #\(h.finalized.number) 0x\(Hex.encode(h.finalized.hash))")
            StandardOutput.line(String(format: "timing      tcp connect %.2f ms, noise handshake %.2f ms, hello %.2f ms (from the start)", m.connectMs, m.handshakeMs, m.helloMs))
        }
    }

    struct Peers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The peer's current peers, with bytes exchanged per message type, through the secure channel.")
        @OptionGroup var target: ChannelTarget

        func run() async throws {
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let (s, _) = try self.target.session(loop: loop)
            defer { s.close() }
            let list: PeerList
            do { list = try PeerList.decode(try s.request(ProtocolName.peers, [], timeout: self.target.timeout)) } catch let e as CodecError {
                throw ProbeError("malformed peer list: \(e)")
            }
            if self.target.json {
                StandardOutput.line(JSONValue.array(list.peers.map { p in
                    .object([("nodeId", .string(p.nodeId.hex)), ("address", .string("\(p.nodeId.hex)@\(p.address)")), ("bestNumber", .int(p.bestNumber)),
                             ("roles", .array(NodeRoles(rawValue: p.roles).names.map { .string($0) })), ("inbound", .bool(p.inbound)),
                             ("traffic", .object(p.traffic.map { ($0.protocolName, .object([("in", .int($0.bytesIn)), ("out", .int($0.bytesOut))])) }))])
                }).serialized(pretty: true))
                return
            }
            StandardOutput.line("\(list.peers.count) peers")
            for p in list.peers {
                StandardOutput.line("\(p.nodeId.hex.prefix(16))…  \(p.address.padding(toLength: 22, withPad: " ", startingAt: 0)) best #\(p.bestNumber)  \(p.inbound ? "in " : "out")  \(NodeRoles(rawValue: p.roles).names.joined(separator: ","))")
                for t in p.traffic { StandardOutput.line("      \(t.protocolName.padding(toLength: 16, withPad: " ", startingAt: 0)) in \(t.bytesIn) B  out \(t.bytesOut) B") }
            }
        }
    }

    struct Head: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The peer's best and finalized block.")
        @OptionGroup var target: ChannelTarget

        func run() async throws {
            let loop = try EventLoop(name: "meshprobe")
            defer { loop.shutdown() }
            let (s, _) = try self.target.session(loop: loop)
            defer { s.close() }
            let info: HeadInfo
            do { info = try HeadInfo.decode(try s.request(ProtocolName.head, [], timeout: self.target.timeout)) } catch let e as CodecError {
                throw ProbeError("malformed head answer: \(e)")
            }
            if self.target.json {
                StandardOutput.line(JSONValue.object([
                    ("best", .object([("number", .int(info.best.number)), ("hash", .string(info.best.hash.hex))])),
                    ("finalized", .object([("number", .int(info.finalized.number)), ("hash", .string(info.finalized.hash.hex))])),
                    ("round", .int(info.round)), ("setId", .int(info.setId)),
                ]).serialized(pretty: true))
                return
            }
            StandardOutput.line("best        #\(info.best.number) \(info.best.hash.hex)")
            StandardOutput.line("finalized   #\(info.finalized.number) \(info.finalized.hash.hex)")
            StandardOutput.line("finality    round \(info.round), set \(info.setId)")
        }
    }
}
