import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCrypto
import MeshKeystore
import MeshQuery
import MeshSockets

/// Options every subnet process takes: where the chain is, which subnet, which wallet.
public struct SubnetOptions: ParsableArguments, Sendable {
    @Option(help: ArgumentHelp("A node's JSON-RPC endpoint.", valueName: "URL"))
    public var rpcURL: String = "http://127.0.0.1:9944"
    @Option(help: "The subnet.")
    public var netuid: UInt16 = 1
    @Option(help: "Wallet name (coldkey pays registration and stake).")
    public var wallet: String = "default"
    @Option(help: "Hotkey name within the wallet (the identity on the subnet).")
    public var hotkey: String = "default"
    @Option(help: ArgumentHelp("Directory of wallets (default $TENSORMESH_WALLETS or ~/.tensormesh/wallets).", valueName: "DIR"))
    public var walletPath: String?
    @Option(help: ArgumentHelp("Read the wallet password from this environment variable (else a prompt).", valueName: "VAR"))
    public var passwordEnv: String?
    @Option(help: "Name used in logs.")
    public var name: String?

    public init() {}

    /// Opens the wallet's coldkey and hotkey and connects to the node.
    public func context(role: String) throws -> SubnetContext {
        let w = Wallet(name: self.wallet, root: self.walletPath)
        let password = try PasswordSource.obtain(environmentVariable: self.passwordEnv, prompt: "Password for wallet \(self.wallet): ", confirm: false)
        let cold: Ed25519.PrivateKey
        let hot: Ed25519.PrivateKey
        do {
            cold = try w.coldkey(password: password)
            hot = try w.hotkey(self.hotkey, password: password)
        } catch let e as KeystoreError {
            throw CommandFailure("wallet \(self.wallet): \(e.description) (create one with `tensormesh wallet create --name \(self.wallet) --hotkey \(self.hotkey)`)")
        }
        return try SubnetContext(rpcURL: self.rpcURL, netuid: self.netuid, hotkey: hot, coldkey: cold,
                                 name: self.name ?? "\(role)[\(self.wallet)/\(self.hotkey)]")
    }
}

/// Options of miners.
public struct MinerOptions: ParsableArguments, Sendable {
    @Option(help: "Axon port (0 picks a free one).")
    public var port: UInt16 = 8091
    @Option(help: "Address to listen on.")
    public var listen: String = "0.0.0.0"
    @Option(help: ArgumentHelp("""
        Address to publish on chain, IP or IP:PORT (default: the listen address; for 0.0.0.0, the local address \
        of the route to the node).
        """, valueName: "ADDR"))
    public var externalAddress: String?
    @Option(help: ArgumentHelp("Same as --external-address without a port (kept for older scripts).", valueName: "IP"))
    public var externalIP: String?
    @Option(help: ArgumentHelp("Be reached through this relay instead of accepting connections: NODEID@IP:PORT.", valueName: "ADDR"))
    public var relay: String?
    @Flag(help: "Cheat or idle (for testing that honest miners out-earn lazy ones).")
    public var lazy = false

    public init() {}

    public func validate() throws { _ = try self.published() }

    /// The relay to use, parsed.
    public func relayTarget() throws -> (host: String, port: UInt16, nodeId: Ed25519.PublicKey)? {
        guard let r = self.relay else { return nil }
        let parts = r.split(separator: "@")
        guard parts.count == 2, let id = Ed25519.PublicKey(hex: String(parts[0])), let a = SocketAddress(String(parts[1])) else {
            throw ValidationError("--relay \(r): expected NODEID@IP:PORT")
        }
        return (a.host, a.port, id)
    }

    /// The published host and port (nil port: the bound one), when given.
    public func published() throws -> (host: String, port: UInt16?)? {
        if let a = self.externalAddress {
            if let s = SocketAddress(a) { return (s.host, s.port) }
            if SocketAddress(numericHost: a, port: 1) != nil { return (a, nil) }
            throw ValidationError("--external-address \(a): expected an IP address or IP:PORT")
        }
        if let ip = self.externalIP {
            guard SocketAddress(numericHost: ip, port: 1) != nil else { throw ValidationError("--external-ip \(ip) is not an IP address") }
            return (ip, nil)
        }
        return nil
    }

    /// A miner with these options (connects to the chain; nothing is served until `run`).
    public func miner(_ context: SubnetContext, limits: AxonLimits = AxonLimits()) async throws -> Miner {
        let p = try self.published()
        return try await Miner(context, port: self.port, listenHost: self.listen, externalHost: p?.host, externalPort: p?.port,
                               relay: try self.relayTarget(), limits: limits)
    }
}

/// Options of validators.
public struct ValidatorOptions: ParsableArguments, Sendable {
    @Option(help: ArgumentHelp("Keep at least this much stake (TAO) on the hotkey, from the coldkey.", valueName: "TAO"))
    public var stake: String = "100"
    @Option(help: "Seconds between query rounds.")
    public var stepSeconds: Double = 4
    @Option(help: "Miners queried per round.")
    public var sample: Int = 32
    @Option(help: "Per-query deadline in seconds.")
    public var timeout: Double = 3
    @Option(help: ArgumentHelp("""
        Keep the validator's state (moving averages, pending weight commits) in this file, restored on the next start.
        """, valueName: "FILE"))
    public var state: String?

    public init() {}

    public func validate() throws {
        // Axons refuse deadlines further ahead than their window (120 s by default).
        let window = Double(AxonLimits().maxDeadlineAheadMs) / 1000
        guard self.timeout.isFinite, self.timeout > 0, self.timeout <= window else {
            throw ValidationError("--timeout must be a number of seconds in (0, \(window)] (axons refuse deadlines further ahead)")
        }
        guard self.stepSeconds.isFinite, self.stepSeconds >= 0, self.stepSeconds <= 86_400 else {
            throw ValidationError("--step-seconds must be a number of seconds in [0, 86400]")
        }
        guard (0...Metagraph.maxNeurons).contains(self.sample) else { throw ValidationError("--sample must be 0...\(Metagraph.maxNeurons)") }
        _ = try self.stakeRao()
    }

    public func stakeRao() throws -> Rao {
        guard let r = Token.parse(self.stake) else { throw ValidationError("--stake \(self.stake) is not an amount of TAO") }
        return r
    }

    /// A validator with these options; `alpha` and `averaging` are the subnet's choice of
    /// moving average (``ScoreBook``).
    public func validator(_ context: SubnetContext, alpha: Double = 0.1, averaging: ScoreBook.Averaging = .arithmetic) async throws -> SubnetValidator {
        try await SubnetValidator(context, stake: try self.stakeRao(), sampleSize: self.sample, timeout: self.timeout, alpha: alpha,
                                  averaging: averaging, statePath: self.state)
    }
}

/// The entry point of a subnet executable: parses the arguments, runs the command, and exits
/// with the contract's codes (0 success, 1 runtime failure, 2 usage error).
public enum SubnetMain {
    public static func run<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) async -> Never {
        await CommandLineEntry.main(root, arguments: arguments)
    }
}

/// Runs `body` until SIGINT or SIGTERM, then cancels it and waits for it to wind down.
public func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let signals = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler { @Sendable in task.cancel() }
        s.resume()
        return s
    }
    defer { signals.forEach { $0.cancel() } }
    do { try await task.value } catch is CancellationError {}
}
