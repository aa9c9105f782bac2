import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCrypto
import MeshKeystore
import MeshSockets
import MeshSubnet

/// Options every subnet process takes: where the chain is, which subnet, which wallet.
struct SubnetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A node's JSON-RPC endpoint.", valueName: "URL"))
    var rpcURL: String = "http://127.0.0.1:9944"
    @Option(help: "The subnet.")
    var netuid: UInt16 = 1
    @Option(help: "Wallet name (coldkey pays registration and stake).")
    var wallet: String = "default"
    @Option(help: "Hotkey name within the wallet (the identity on the subnet).")
    var hotkey: String = "default"
    @Option(help: ArgumentHelp("Directory of wallets (default $TENSORMESH_WALLETS or ~/.tensormesh/wallets).", valueName: "DIR"))
    var walletPath: String?
    @Option(help: ArgumentHelp("Read the wallet password from this environment variable (else a prompt).", valueName: "VAR"))
    var passwordEnv: String?
    @Option(help: "Name used in logs.")
    var name: String?

    func context(role: String) throws -> SubnetContext {
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
struct MinerOptions: ParsableArguments {
    @Option(help: "Axon port (0 picks a free one).")
    var port: UInt16 = 8091
    @Option(help: "Address to listen on.")
    var listen: String = "0.0.0.0"
    @Option(help: ArgumentHelp("Address to publish on chain (default: the listen address, or 127.0.0.1).", valueName: "IP"))
    var externalIP: String?
    @Option(help: ArgumentHelp("Be reached through this relay instead of accepting connections: NODEID@IP:PORT.", valueName: "ADDR"))
    var relay: String?
    @Flag(help: "Cheat or idle (for testing that honest miners out-earn lazy ones).")
    var lazy = false

    func relayTarget() throws -> (host: String, port: UInt16, nodeId: Ed25519.PublicKey)? {
        guard let r = self.relay else { return nil }
        let parts = r.split(separator: "@")
        guard parts.count == 2, let id = Ed25519.PublicKey(hex: String(parts[0])), let a = SocketAddress(String(parts[1])) else {
            throw ValidationError("--relay \(r): expected NODEID@IP:PORT")
        }
        return (a.host, a.port, id)
    }
}

/// Options of validators.
struct ValidatorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Keep at least this much stake (TAO) on the hotkey, from the coldkey.", valueName: "TAO"))
    var stake: String = "100"
    @Option(help: "Seconds between query rounds.")
    var stepSeconds: Double = 4
    @Option(help: "Miners queried per round.")
    var sample: Int = 32
    @Option(help: "Per-query deadline in seconds.")
    var timeout: Double = 3

    func validate() throws {
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

    func stakeRao() throws -> Rao {
        guard let r = Token.parse(self.stake) else { throw ValidationError("--stake \(self.stake) is not an amount of TAO") }
        return r
    }
}

/// Runs until SIGINT or SIGTERM, then cancels `body`.
func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let signals = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler { task.cancel() }
        s.resume()
        return s
    }
    defer { signals.forEach { $0.cancel() } }
    do { try await task.value } catch is CancellationError {}
}
