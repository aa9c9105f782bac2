import ArgumentParser
import Dispatch
import Foundation
import MeshChain
import MeshChannel
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshKeystore
import MeshNode
import MeshNodeCore
import MeshQuery
import MeshSockets
import Synchronization

extension Tensormesh {
    /// `tensormesh run`: runs a node.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a node: join a mesh, sync, relay blocks, and (with --validator) produce and finalize blocks.",
            discussion: """
                Join a network:   tensormesh run --chain Bootstrap/chains/public.json --bootnodes NODEID@HOST:30333
                Development:      tensormesh run --dev
                Flags may also come from a JSON config file (--config FILE) with the same names in camelCase \
                (dev, basePath, chain, port, listenAddr, bootnodes, rpcPort, prometheusPort, rpcExternal, rpcCors, rpcMethods, rpcMaxConnections, \
                rpcRateLimit, rpcMaxSubscriptionsPerConnection, validator, key, disableLogColor, \
                passwordEnv, name, log, outPeers, inPeers, subnetTopic, blocksOnly, queryRelayPort); an unknown key is an error. \
                Flags win, and --no-validator, --no-rpc-external and --no-blocks-only turn off what the file turns on. \
                SIGINT and SIGTERM shut the node down cleanly.
                """)

        @Flag(help: "A one-node development chain (generated genesis and key, one subnet).")
        var dev = false
        @Option(help: ArgumentHelp("Where the node keeps its database and keys.", valueName: "DIR"))
        var basePath: String?
        @Option(help: ArgumentHelp("The chain spec file (or \"dev\").", valueName: "FILE"))
        var chain: String?
        @Option(help: "p2p TCP port (default 30333).")
        var port: UInt16?
        @Option(help: "Listen address (default 0.0.0.0).")
        var listenAddr: String?
        @Option(help: ArgumentHelp("A peer to connect to: NODEID@HOST:PORT (repeatable).", valueName: "ADDR"))
        var bootnodes: [String] = []
        @Option(help: "JSON-RPC port, HTTP and WebSocket (default 9944; 0 disables).")
        var rpcPort: UInt16?
        @Option(help: "Prometheus metrics port (default 9615; 0 disables).")
        var prometheusPort: UInt16?
        @Flag(inversion: .prefixedNo, help: "Serve JSON-RPC and metrics on all interfaces, not only 127.0.0.1 (default: no).")
        var rpcExternal: Bool?
        @Option(help: ArgumentHelp("Browser origins allowed to call JSON-RPC: localhost (default: http(s)://localhost:* and 127.0.0.1:*), all, or a comma-separated list of origins.", valueName: "ORIGINS"))
        var rpcCors: String?
        @Option(help: ArgumentHelp("JSON-RPC methods to serve: safe (not those revealing peers and network), unsafe (all), or auto (default: unsafe on loopback, safe with --rpc-external).", valueName: "POLICY"))
        var rpcMethods: String?
        @Option(help: "Most open JSON-RPC connections, HTTP and WebSocket (default 100).")
        var rpcMaxConnections: Int?
        @Option(help: "JSON-RPC calls per second from one address, heavy calls counting more (default 1000; 0: no limit).")
        var rpcRateLimit: Int?
        @Option(help: "Most subscriptions one WebSocket connection may hold (default 1024).")
        var rpcMaxSubscriptionsPerConnection: Int?
        @Flag(inversion: .prefixedNo, help: "Produce blocks and vote on finality (the key must be in the validator set; default: no, yes with --dev).")
        var validator: Bool?
        @Option(help: ArgumentHelp("The node's key file (identity and validator key).", valueName: "FILE"))
        var key: String?
        @Option(help: ArgumentHelp("Read the key file's password from this environment variable.", valueName: "VAR"))
        var passwordEnv: String?
        @Option(help: "A name for this node (logs, RPC).")
        var name: String?
        @Option(help: ArgumentHelp("Log level, and levels per target: info, or info,sync=debug,finality=trace (targets: sync, gossip, finality, discovery, peers, rpc, tensormesh).", valueName: "DIRECTIVES"))
        var log: String?
        @Flag(help: "Never colour log levels (they are coloured only when standard error is a terminal).")
        var disableLogColor = false
        @Option(help: ArgumentHelp("A JSON config file.", valueName: "FILE"))
        var config: String?
        @Option(help: "Target outbound peers (default 8).")
        var outPeers: Int?
        @Option(help: "Most inbound peers (default 32).")
        var inPeers: Int?
        @Option(help: ArgumentHelp("Join and relay this subnet's gossip topic subnet/N (repeatable).", valueName: "NETUID"))
        var subnetTopic: [UInt16] = []
        @Flag(inversion: .prefixedNo, help: "Relay blocks and finality only, not transactions (less bandwidth; block bodies are completed from peers; default: no).")
        var blocksOnly: Bool?
        @Option(help: ArgumentHelp("Also relay subnet queries on this port, for miners that cannot accept connections (0: off).", valueName: "N"))
        var queryRelayPort: UInt16?

        func validate() throws {
            if self.dev && self.chain != nil && self.chain != "dev" { throw ValidationError("--dev and --chain FILE cannot be combined") }
            if let l = self.log {
                do { _ = try LogFilter(directives: l) } catch { throw ValidationError("--log: \(error.description)") }
            }
            if let m = self.rpcMethods, m != "auto" && RPCMethodPolicy(rawValue: m) == nil { throw ValidationError("--rpc-methods must be safe, unsafe or auto") }
            if let n = self.rpcMaxConnections, n < 1 || n > 100_000 { throw ValidationError("--rpc-max-connections must be 1 to 100000") }
            if let n = self.rpcRateLimit, n < 0 { throw ValidationError("--rpc-rate-limit must be 0 (no limit) or more") }
            if let n = self.rpcMaxSubscriptionsPerConnection, n < 1 || n > 1 << 20 { throw ValidationError("--rpc-max-subscriptions-per-connection must be 1 to 1048576") }
            for b in self.bootnodes where NodeAddress(b) == nil {
                throw ValidationError("--bootnodes \(b): expected NODEID@HOST:PORT with a 64-hex-digit node id")
            }
        }

        func run() async throws {
            let file = try self.config.map { try ConfigFile.load($0) } ?? ConfigFile(values: .object([]))
            let queryRelayPort = self.queryRelayPort ?? file.uint16("queryRelayPort") ?? 0
            let filter: LogFilter
            do { filter = try LogFilter(directives: self.log ?? file.string("log") ?? "info") } catch {
                throw CommandFailure.usage("--log: \(error.description)")
            }
            let level = filter.defaultLevel
            let log = Log(filter: filter, colour: (self.disableLogColor || file.flag("disableLogColor") == true) ? false : nil)
            let isDev = self.dev || file.flag("dev") == true || self.chain == "dev" || file.string("chain") == "dev"
            var basePath = self.basePath ?? file.string("basePath")
            if basePath == nil {
                if isDev {
                    basePath = NSTemporaryDirectory() + "tensormesh-dev-\(getpid())"
                } else {
                    basePath = FileManager.default.homeDirectoryForCurrentUser.path + "/.tensormesh/node"
                }
            }
            let base = basePath!
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            // Keys and chain spec.
            let spec: ChainSpec
            let key: Ed25519.PrivateKey
            if isDev {
                (spec, key) = try DevChain.prepare(basePath: base)
            } else {
                guard let chainPath = self.chain ?? file.string("chain") else {
                    throw CommandFailure.usage("give --chain FILE (a chain spec, e.g. from `tensormesh genesis new`), or --dev")
                }
                spec = try Self.loadSpec(chainPath)
                if let keyPath = self.key ?? file.string("key") {
                    key = try Self.loadKey(keyPath, passwordEnv: self.passwordEnv ?? file.string("passwordEnv"))
                } else {
                    key = try Self.networkKey(basePath: base)
                }
            }
            var config = NodeConfig(basePath: base, spec: spec)
            config.port = self.port ?? file.uint16("port") ?? 30333
            let listen = self.listenAddr ?? file.string("listenAddr") ?? "0.0.0.0"
            // An address to bind, never a name silently widened to every interface.
            if listen == "localhost" {
                config.listenHost = "127.0.0.1"
            } else if SocketAddress(numericHost: listen, port: 0) != nil {
                config.listenHost = listen
            } else {
                throw CommandFailure.usage("--listen-addr must be an IP address such as 0.0.0.0, 127.0.0.1 or ::, not \(listen)")
            }
            config.bootnodes = (self.bootnodes + (file.strings("bootnodes") ?? []) + spec.bootnodes).compactMap { NodeAddress($0) }
            let rpc = self.rpcPort ?? file.uint16("rpcPort") ?? 9944
            config.rpcPort = rpc == 0 ? nil : rpc
            if let c = self.rpcCors ?? file.string("rpcCors") {
                guard let policy = CORSPolicy(flag: c) else {
                    throw CommandFailure.usage("--rpc-cors takes localhost, all, or origins such as https://example.org,http://localhost:3000 (got \(c))")
                }
                config.rpcCors = policy
            }
            let methods = self.rpcMethods ?? file.string("rpcMethods") ?? "auto"
            var rpcConfig = RPCServerConfig()
            if methods == "auto" {
                rpcConfig.methods = (self.rpcExternal ?? file.flag("rpcExternal") ?? false) ? .safe : .unsafe
            } else if let m = RPCMethodPolicy(rawValue: methods) {
                rpcConfig.methods = m
            } else {
                throw CommandFailure.usage("rpcMethods must be safe, unsafe or auto (got \(methods))")
            }
            rpcConfig.maxConnections = max(1, self.rpcMaxConnections ?? file.int("rpcMaxConnections") ?? 100)
            rpcConfig.rateLimit = Double(self.rpcRateLimit ?? file.int("rpcRateLimit") ?? 1000)
            rpcConfig.maxSubscriptionsPerConnection = max(1, self.rpcMaxSubscriptionsPerConnection ?? file.int("rpcMaxSubscriptionsPerConnection") ?? 1024)
            let prom = self.prometheusPort ?? file.uint16("prometheusPort") ?? 9615
            config.prometheusPort = prom == 0 ? nil : prom
            if self.rpcExternal ?? file.flag("rpcExternal") ?? false {
                config.rpcHost = "0.0.0.0"
                config.prometheusHost = "0.0.0.0"
            }
            config.validator = self.validator ?? file.flag("validator") ?? isDev
            config.name = self.name ?? file.string("name") ?? "tensormesh-\(key.publicKey.hex.prefix(8))"
            config.logLevel = level
            config.targetOutbound = self.outPeers ?? file.int("outPeers") ?? 8
            config.maxInbound = self.inPeers ?? file.int("inPeers") ?? 32
            config.roles = config.validator ? [.validator, .full] : .full
            config.blocksOnly = self.blocksOnly ?? file.flag("blocksOnly") ?? false
            config.subnetTopics = self.subnetTopic + (file.uint16s("subnetTopic") ?? [])

            let loop = try EventLoop(name: "tensormesh.node")
            let node: Node
            let finalConfig = config
            do {
                node = try await loop.submit { try Node(config: finalConfig, key: key, loop: loop, log: log) }
                try await loop.submit { try node.start() }
            } catch let e as SocketError {
                loop.shutdown()
                throw CommandFailure("cannot listen on port \(config.port): \(e.reason)")
            } catch {
                loop.shutdown()
                throw CommandFailure("cannot start the node: \(error)")
            }
            var tasks: [Task<Void, any Error>] = []
            var rpcServer: RPCServer?
            if let p = config.rpcPort {
                rpcConfig.host = config.rpcHost
                rpcConfig.port = p
                rpcConfig.cors = config.rpcCors
                rpcConfig.maxRequestBody = config.maxRequestBody
                do { rpcServer = try await RPCServer.start(node: node, config: rpcConfig) } catch {
                    try? await loop.submit { node.stop() }
                    loop.shutdown()
                    throw CommandFailure("cannot serve JSON-RPC on \(config.rpcHost):\(p): \(error)")
                }
                log.info("JSON-RPC on http://\(config.rpcHost):\(p) and ws://\(config.rpcHost):\(p) (methods: \(rpcConfig.methods.rawValue))")
            }
            var relay: (QueryRelay, EventLoop)?
            if queryRelayPort != 0 {
                let relayLoop = try EventLoop(name: "tensormesh.relay")
                let r = QueryRelay(identity: key, genesisHash: try await loop.submit { node.chain.genesisHash.bytes }, loop: relayLoop)
                guard let addr = SocketAddress(numericHost: config.listenHost, port: queryRelayPort) else {
                    throw CommandFailure.usage("--listen-addr must be an IP address for the query relay")
                }
                let bound = try await r.start(listen: addr)
                relay = (r, relayLoop)
                log.info("Query relay on \(key.publicKey.hex)@\(config.listenHost):\(bound.port)")
            }
            if let p = config.prometheusPort {
                let server = rpcServer, queryRelay = relay?.0
                tasks.append(try HTTPServices.startMetrics(node: node, host: config.prometheusHost, port: p, extra: {
                    (await server?.metrics() ?? "") + (await queryRelay?.metrics() ?? "")
                }))
                log.info("Prometheus metrics on http://\(config.prometheusHost):\(p)/metrics")
            }
            if isDev { log.info("Development chain; state in \(base)") }
            let signal = await SignalWaiter.wait(for: [SIGINT, SIGTERM])
            log.info("Received \(signal == SIGINT ? "SIGINT" : "SIGTERM"), shutting down")
            try? await loop.submit { node.stop() }
            if let (r, l) = relay {
                r.stop()
                l.shutdown()
            }
            for t in tasks { t.cancel() }
            rpcServer?.stop()
            loop.shutdown()
        }

        static func loadSpec(_ path: String) throws -> ChainSpec {
            let bytes: [UInt8]
            do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
                throw CommandFailure("cannot read the chain spec \(path): \(error.localizedDescription)")
            }
            do { return try ChainSpec.parse(bytes) } catch { throw CommandFailure("bad chain spec \(path): \(error)") }
        }

        static func loadKey(_ path: String, passwordEnv: String?) throws -> Ed25519.PrivateKey {
            do {
                let bytes = try AtomicFile.read(path, limit: KeyFile.maximumFileSize)
                let pw = try PasswordSource.obtain(environmentVariable: passwordEnv, prompt: "Password for \(path): ", confirm: false)
                return try KeyFile.open(bytes, password: pw)
            } catch let e as KeystoreError {
                throw CommandFailure(e.description)
            }
        }

        /// The node's own network key under the base path, created on first start (no password:
        /// the node must restart unattended; the file is 0600).
        static func networkKey(basePath: String) throws -> Ed25519.PrivateKey {
            let dir = basePath + "/network"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = dir + "/node.key"
            let empty = SecureBytes(copying: [UInt8]())
            if FileManager.default.fileExists(atPath: path) {
                do throws(KeystoreError) { return try KeyFile.open(try AtomicFile.read(path, limit: KeyFile.maximumFileSize), password: empty) } catch {
                    throw CommandFailure("\(path): \(error.description)")
                }
            }
            let key = Ed25519.PrivateKey()
            do { try AtomicFile.write(try KeyFile.seal(key, password: empty), to: path) } catch let e as KeystoreError {
                throw CommandFailure(e.description)
            }
            return key
        }
    }
}

/// Values from `--config FILE`.
struct ConfigFile {
    let values: JSONValue

    static func load(_ path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read config file \(path)") }
        do {
            let v = try JSONValue.parse(Array(data))
            guard case .object(let fields) = v else { throw CommandFailure.usage("config file \(path) must hold a JSON object") }
            // A typo must not be ignored silently.
            if let unknown = fields.map({ $0.0 }).first(where: { !Self.keys.contains($0) }) {
                throw CommandFailure.usage("config file \(path): unknown key \"\(unknown)\" (known: \(Self.keys.sorted().joined(separator: ", ")))")
            }
            return ConfigFile(values: v)
        } catch let e as JSONError {
            throw CommandFailure.usage("config file \(path): \(e)")
        }
    }

    /// Every key a config file may hold: the long options of `run`, in camelCase.
    static let keys: Set<String> = ["dev", "basePath", "chain", "port", "listenAddr", "bootnodes", "rpcPort", "prometheusPort", "rpcExternal", "rpcCors",
                                    "rpcMethods", "rpcMaxConnections", "rpcRateLimit", "rpcMaxSubscriptionsPerConnection", "disableLogColor",
                                    "validator", "key", "passwordEnv", "name", "log", "outPeers", "inPeers", "subnetTopic", "blocksOnly",
                                    "queryRelayPort"]

    func string(_ k: String) -> String? { self.values[k]?.string }
    func int(_ k: String) -> Int? { self.values[k]?.uint64.flatMap { Int(exactly: $0) } }
    func uint16s(_ k: String) -> [UInt16]? { self.values[k]?.array?.compactMap { $0.uint64.flatMap { UInt16(exactly: $0) } } }
    func uint16(_ k: String) -> UInt16? { self.values[k]?.uint64.flatMap { UInt16(exactly: $0) } }
    func bool(_ k: String) -> Bool { self.values[k]?.bool ?? false }
    /// A boolean the file sets, or nil (so `--no-…` on the command line can turn it off).
    func flag(_ k: String) -> Bool? { self.values[k]?.bool }
    func strings(_ k: String) -> [String]? { self.values[k]?.array?.compactMap { $0.string } }
}

/// Waits for a Unix signal.
enum SignalWaiter {
    static func wait(for signals: [Int32]) async -> Int32 {
        await withCheckedContinuation { (cont: CheckedContinuation<Int32, Never>) in
            let once = Mutex(false)
            let queue = DispatchQueue(label: "tensormesh.signals")
            var sources: [any DispatchSourceSignal] = []
            for s in signals {
                Glibc.signal(s, SIG_IGN)
                let src = DispatchSource.makeSignalSource(signal: s, queue: queue)
                src.setEventHandler { @Sendable in
                    let first = once.withLock { done -> Bool in
                        if done { return false }
                        done = true
                        return true
                    }
                    if first { cont.resume(returning: s) }
                }
                src.resume()
                sources.append(src)
            }
            SignalSources.keep(sources)
        }
    }
}

/// Keeps signal sources alive for the process lifetime.
enum SignalSources {
    nonisolated(unsafe) static var kept: [any DispatchSourceSignal] = []
    // Safety: written once from the main task before any signal can arrive, never read.
    static func keep(_ s: [any DispatchSourceSignal]) { kept = s }
}

/// The `--dev` chain: one validator (a key generated under the base path), one subnet.
enum DevChain {
    static func prepare(basePath: String) throws -> (ChainSpec, Ed25519.PrivateKey) {
        let key = try Tensormesh.Run.networkKey(basePath: basePath)
        let specPath = basePath + "/dev-spec.json"
        if let data = FileManager.default.contents(atPath: specPath) {
            do { return (try ChainSpec.parse(Array(data)), key) } catch { throw CommandFailure("\(specPath): \(error.description)") }
        }
        var p = ChainParams()
        p.slotDurationMs = 1000
        p.authorityEpochLength = 50
        p.minLockCost = 10 * Token.tao
        var spec = ChainSpec(name: "Development", id: "dev", params: p)
        spec.genesisTimestamp = (UInt64(Date().timeIntervalSince1970 * 1000) / 1000) * 1000
        spec.sudo = key.publicKey
        spec.balances = [(key.publicKey, 1_000_000 * Token.tao)]
        spec.validators = [ChainSpec.Validator(hotkey: key.publicKey, coldkey: key.publicKey, stake: 1000 * Token.tao)]
        var sp = SubnetParams()
        _ = sp.set(.tempo, 20)
        _ = sp.set(.weightsRateLimit, 5)
        _ = sp.set(.minBurn, Token.tao / 10)
        spec.subnets = [ChainSpec.SubnetSpec(netuid: 1, name: "dev subnet", owner: key.publicKey, ownerHotkey: key.publicKey, params: sp,
                                             poolTao: 1000 * Token.tao)]
        try Data(spec.json().serialized(pretty: true).utf8).write(to: URL(fileURLWithPath: specPath))
        return (spec, key)
    }
}
