import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore
#if canImport(Glibc)
import Glibc
#endif

/// `--rpc-url`: the node the btcli-like commands talk to.
struct RPCOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The node's JSON-RPC endpoint.", valueName: "URL"))
    var rpcURL: String = "http://127.0.0.1:9944"

    func client() throws -> ChainClient {
        do { return try ChainClient(url: self.rpcURL) } catch { throw ValidationError("--rpc-url: \(error)") }
    }
}

/// Which wallet (and hotkey) signs.
struct WalletOptions: ParsableArguments {
    @Option(help: "Wallet name.")
    var wallet: String = "default"
    @Option(help: "Hotkey name within the wallet.")
    var hotkey: String = "default"
    @Option(help: ArgumentHelp("Directory of wallets (default $TENSORMESH_WALLETS or ~/.tensormesh/wallets).", valueName: "DIR"))
    var walletPath: String?
    @Option(help: ArgumentHelp("Read the wallet password from this environment variable (else a prompt).", valueName: "VAR"))
    var passwordEnv: String?

    var handle: Wallet { Wallet(name: self.wallet, root: self.walletPath) }

    func password() throws -> SecureBytes {
        try PasswordSource.obtain(environmentVariable: self.passwordEnv, prompt: "Password for wallet \(self.wallet): ", confirm: false)
    }

    func coldkey() throws -> Ed25519.PrivateKey {
        do { return try self.handle.coldkey(password: try self.password()) } catch let e as KeystoreError {
            throw CommandFailure("wallet \(self.wallet): \(e.description)")
        }
    }

    /// The hotkey; asks for the password only when the hotkey file is encrypted.
    func hotkeyKey() throws -> Ed25519.PrivateKey {
        do {
            let encrypted = try self.handle.hotkeyIsEncrypted(self.hotkey)
            return try self.handle.hotkey(self.hotkey, password: encrypted ? try self.password() : SecureBytes(copying: [UInt8]()))
        } catch let e as KeystoreError {
            throw CommandFailure("hotkey \(self.wallet)/\(self.hotkey): \(e.description)")
        }
    }

    func coldkeyPublic() throws -> Ed25519.PublicKey {
        do { return try self.handle.coldkeyPublic() } catch let e as KeystoreError { throw CommandFailure("wallet \(self.wallet): \(e.description)") }
    }

    func hotkeyPublic() throws -> Ed25519.PublicKey {
        do { return try self.handle.hotkeyPublic(self.hotkey) } catch let e as KeystoreError {
            throw CommandFailure("hotkey \(self.wallet)/\(self.hotkey): \(e.description)")
        }
    }

    /// The hotkey an `--hotkey-address` option names, or the wallet's own when it is absent.
    func hotkeyPublic(or address: String?) throws -> Ed25519.PublicKey {
        try address.map { try Submit.account($0, "--hotkey-address") } ?? self.hotkeyPublic()
    }
}

/// `--yes` and `--json` for commands that submit transactions.
struct SubmitOptions: ParsableArguments {
    @Flag(help: "Do not ask for confirmation.")
    var yes = false
    @Flag(help: "Print the result as JSON.")
    var json = false
    @Option(help: "Seconds to wait for inclusion.")
    var wait: Double = 60

    func validate() throws {
        guard self.wait.isFinite, self.wait >= 0, self.wait <= 86_400 else { throw ValidationError("--wait must be a number of seconds in [0, 86400]") }
    }
}

enum Submit {
    /// Confirms (on a terminal, unless --yes), submits, waits, and reports the outcome.
    static func run(_ call: Call, signer: Ed25519.PrivateKey, summary: String, rpc: RPCOptions, options: SubmitOptions) throws {
        if !options.yes && isatty(0) == 1 && !options.json {
            StandardError.write("\(summary)\nProceed? [y/N] ")
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else { throw CommandFailure("cancelled") }
        }
        let client = try rpc.client()
        // Followed over the node's WebSocket (a subscription), not polled.
        let (hash, outcome): (Hash32, ChainClient.Outcome)
        do { (hash, outcome) = try client.submitAndWatch(call, key: signer, timeout: options.wait) } catch let e as RPCClient.Failure {
            throw CommandFailure("\(call.name) refused: \(e)")
        }
        let object: JSONValue
        switch outcome {
        case .included(let block, _):
            object = .object([("transaction", .string(hash.hex)), ("call", .string(call.name)), ("status", "included"), ("block", .int(block))])
            if !options.json { StandardOutput.line("\(summary): included in block #\(block) (transaction \(hash.hex))") }
        case .failed(let block, let code, let message):
            if options.json {
                StandardOutput.line(JSONValue.object([("transaction", .string(hash.hex)), ("call", .string(call.name)), ("status", "failed"),
                                                      ("block", .int(block)), ("error", .string(code)), ("message", .string(message))]).serialized(pretty: true))
            }
            throw CommandFailure("\(call.name) failed in block #\(block): \(message)")
        case .pending, .unknown:
            throw CommandFailure("transaction \(hash.hex) not included within \(options.wait) s (still \(outcome == .pending ? "pending" : "unknown"))")
        }
        if options.json { StandardOutput.line(object.serialized(pretty: true)) }
    }

    static func amount(_ text: String, _ flag: String) throws -> Rao {
        guard let r = Token.parse(text) else { throw ValidationError("\(flag) \(text) is not an amount of TAO (e.g. 1.5)") }
        return r
    }

    static func account(_ text: String, _ flag: String) throws -> AccountID {
        guard let a = AccountID(address: text) else { throw ValidationError("\(flag) must be an SS58 address (5…) or a 64-hex-digit public key") }
        return a
    }
}

/// A fixed-width text table.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map { $0.count }
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
