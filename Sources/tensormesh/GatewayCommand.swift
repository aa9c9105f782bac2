import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCrypto
import MeshGateway
import MeshSockets
import MeshSubnet

/// `tensormesh gateway`: end users' keyed HTTP API in front of subnets' best miners (a thin
/// command over MeshGateway).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Serve end users' queries to subnets' top miners over HTTP, with API keys and limits.",
        discussion: """
            POST /v1/subnets/{netuid}/{synapse} (JSON body), GET /v1/subnets, PUT|GET /v1/storage/{key}, GET /v1/usage, \
            GET /v1/organic/{netuid}, GET /metrics. Callers send Authorization: Bearer KEY; the keys file is \
            {"keys": [{"name", "key", "ratePerSecond", "burst", "quota", "quotaWindowSeconds", "organic"}]}. The wallet's \
            hotkey registers (and stakes) on each subnet, so miners answer it as a validator. See docs/gateway.md.
            """)
    @Option(help: ArgumentHelp("A node's JSON-RPC endpoint.", valueName: "URL"))
    var rpcURL: String = "http://127.0.0.1:9944"
    @Option(name: .customLong("netuid"), help: "A subnet to serve (repeatable).")
    var netuids: [UInt16] = []
    @Option(help: "The storage subnet behind /v1/storage.")
    var storageNetuid: UInt16?
    @Option(help: ArgumentHelp("Address to serve HTTP on.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8080"
    @Option(help: ArgumentHelp("The API keys file (JSON).", valueName: "FILE"))
    var apiKeys: String
    @OptionGroup var wallet: GatewayWalletOptions
    @Option(help: ArgumentHelp("Stake (TAO) the hotkey keeps on each subnet, from the coldkey.", valueName: "TAO"))
    var stake: String = "0"
    @Option(help: "Miners asked per request (the top by incentive).")
    var topK: Int = 3
    @Option(help: "Miners holding each stored object.")
    var replication: Int = 3
    @Option(help: "Deadline of each miner query, seconds.")
    var timeout: Double = 10
    @Option(help: ArgumentHelp("Where the stored objects' index is kept.", valueName: "DIR"))
    var stateDir: String?
    @Option(help: "Fraction of answered queries kept for validators (0...1).")
    var organicSample: Double = 0

    func validate() throws {
        guard !self.netuids.isEmpty || self.storageNetuid != nil else { throw ValidationError("name at least one --netuid or a --storage-netuid") }
        guard let a = MeshSockets.SocketAddress(self.listen), a.ip.count == 4 else { throw ValidationError("--listen must be IPv4:PORT") }
        guard (1...64).contains(self.topK), (1...16).contains(self.replication) else { throw ValidationError("--top-k must be 1...64 and --replication 1...16") }
        guard self.timeout.isFinite, self.timeout > 0, self.timeout <= 120 else { throw ValidationError("--timeout must be in (0, 120]") }
        guard self.organicSample.isFinite, (0...1).contains(self.organicSample) else { throw ValidationError("--organic-sample must be in [0, 1]") }
        guard Token.parse(self.stake) != nil else { throw ValidationError("--stake \(self.stake) is not an amount of TAO") }
    }

    func run() async throws {
        let keys: APIKeys
        do { keys = try APIKeys.load(path: self.apiKeys) } catch { throw CommandFailure(error.description) }
        let listen = MeshSockets.SocketAddress(self.listen)!
        var config = GatewayConfig(rpcURL: self.rpcURL, netuids: self.netuids, storageNetuid: self.storageNetuid)
        config.listenHost = listen.host
        config.listenPort = listen.port
        config.topK = self.topK
        config.replication = self.replication
        config.timeoutSeconds = self.timeout
        config.stateDirectory = self.stateDir
        config.organicSampleRate = self.organicSample
        config.stake = Token.parse(self.stake) ?? 0
        let gateway = try Gateway(config: config, keys: keys, hotkey: try self.wallet.hotkeyKey(), coldkey: try self.wallet.coldkey())
        try await runUntilSignalled { try await gateway.run() }
    }
}

/// The gateway's wallet (its hotkey is its identity towards miners).
struct GatewayWalletOptions: ParsableArguments {
    @Option(help: "Wallet name.")
    var wallet: String = "default"
    @Option(help: "Hotkey name within the wallet.")
    var hotkey: String = "default"
    @Option(help: ArgumentHelp("Directory of wallets (default $TENSORMESH_WALLETS or ~/.tensormesh/wallets).", valueName: "DIR"))
    var walletPath: String?
    @Option(help: ArgumentHelp("Read the wallet password from this environment variable (else a prompt).", valueName: "VAR"))
    var passwordEnv: String?

    var options: WalletOptions {
        var w = WalletOptions()
        w.wallet = self.wallet
        w.hotkey = self.hotkey
        w.walletPath = self.walletPath
        w.passwordEnv = self.passwordEnv
        return w
    }

    func coldkey() throws -> Ed25519.PrivateKey { try self.options.coldkey() }
    func hotkeyKey() throws -> Ed25519.PrivateKey { try self.options.hotkeyKey() }
}
