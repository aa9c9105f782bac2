import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto
import MeshKeystore

extension Tensormesh {
    struct WalletCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wallet", abstract: "Create wallets (a coldkey and hotkeys) and show balances.",
            subcommands: [Create.self, List.self, Balance.self])
    }

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send TAO from the wallet's coldkey to another account.")
        @Option(help: ArgumentHelp("Receiving account (public key, hex).", valueName: "PUBKEY"))
        var dest: String
        @Option(help: ArgumentHelp("Amount in TAO.", valueName: "TAO"))
        var amount: String
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let to = try Submit.account(self.dest, "--dest")
            let amount = try Submit.amount(self.amount, "--amount")
            let key = try self.wallet.coldkey()
            try Submit.run(.transfer(to: to, amount: amount), signer: key, summary: "Transfer \(Token.format(amount)) to \(to.hex.prefix(16))…",
                           rpc: self.rpc, options: self.submit)
        }
    }
}

extension Tensormesh.WalletCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a wallet's coldkey (if missing) and a hotkey, encrypted at rest.",
            discussion: "Files: <wallet-path>/<wallet>/coldkey and <wallet-path>/<wallet>/hotkeys/<hotkey>, mode 0600.")
        @OptionGroup var wallet: WalletOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let w = self.wallet.handle
            let exists = FileManager.default.fileExists(atPath: w.coldkeyPath)
            let password = try PasswordSource.obtain(environmentVariable: self.wallet.passwordEnv,
                                                     prompt: exists ? "Password for wallet \(w.name): " : "Password for the new wallet: ", confirm: !exists)
            if exists {
                // The same password must open the existing coldkey.
                do { _ = try w.coldkey(password: password) } catch let e as KeystoreError { throw CommandFailure("wallet \(w.name): \(e.description)") }
            }
            let keys: (coldkey: Ed25519.PublicKey, hotkey: Ed25519.PublicKey)
            do { keys = try w.create(hotkey: self.wallet.hotkey, password: password) } catch let e as KeystoreError {
                throw CommandFailure(e.description)
            }
            if self.json {
                StandardOutput.line(JSONValue.object([("wallet", .string(w.name)), ("path", .string(w.directory)),
                                                      ("coldkey", .string(keys.coldkey.hex)), ("hotkey", .string(self.wallet.hotkey)),
                                                      ("hotkeyPublic", .string(keys.hotkey.hex))]).serialized(pretty: true))
            } else {
                StandardOutput.line("Wallet \(w.name) at \(w.directory)")
                StandardOutput.line("  coldkey        \(keys.coldkey.hex)")
                StandardOutput.line("  hotkey \(self.wallet.hotkey.padding(toLength: 8, withPad: " ", startingAt: 0)) \(keys.hotkey.hex)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List wallets and their keys (public parts only).")
        @Option(help: ArgumentHelp("Directory of wallets.", valueName: "DIR"))
        var walletPath: String?
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let wallets = Wallet.all(root: self.walletPath)
            var items: [JSONValue] = []
            var rows: [[String]] = []
            for w in wallets {
                let cold = (try? w.coldkeyPublic())?.hex ?? "?"
                let hot = w.hotkeyNames().map { ($0, (try? w.hotkeyPublic($0))?.hex ?? "?") }
                items.append(.object([("wallet", .string(w.name)), ("coldkey", .string(cold)),
                                      ("hotkeys", .object(hot.map { ($0.0, .string($0.1)) }))]))
                rows.append([w.name, "coldkey", cold])
                for (n, k) in hot { rows.append(["", "hotkey \(n)", k]) }
            }
            if self.json { StandardOutput.line(JSONValue.array(items).serialized(pretty: true)) } else if rows.isEmpty {
                StandardOutput.line("No wallets under \(self.walletPath ?? Wallet.defaultRoot); create one with `tensormesh wallet create`.")
            } else {
                StandardOutput.line(Table.render(["WALLET", "KEY", "PUBLIC KEY"], rows))
            }
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Free balance and stakes of a wallet's coldkey.")
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let cold = try self.wallet.coldkeyPublic()
            let a = try self.rpc.client().account(cold)
            let staked = a.stakes.filter { $0.coldkey == cold.hex }
            // Saturating: the amounts come from the node, which may be hostile.
            let total = staked.reduce(Rao(0)) { $0.addingSaturated($1.amount) }
            let sum = a.balance.addingSaturated(total)
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("coldkey", .string(cold.hex)), ("free", .int(a.balance)), ("staked", .int(total)), ("total", .int(sum)),
                    ("stakes", .array(staked.map { .object([("hotkey", .string($0.hotkey)), ("netuid", .int($0.netuid)), ("amount", .int($0.amount))]) })),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("Coldkey \(cold.hex)")
                StandardOutput.line("  free    \(Token.format(a.balance))")
                StandardOutput.line("  staked  \(Token.format(total))")
                StandardOutput.line("  total   \(Token.format(sum))")
            }
        }
    }
}
