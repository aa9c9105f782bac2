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
            subcommands: [Create.self, RegenColdkey.self, List.self, Balance.self, Overview.self, Inspect.self])
    }

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send TAO from the wallet's coldkey to another account.")
        @Option(help: ArgumentHelp("Receiving account: an SS58 address (5…) or a public key in hex.", valueName: "ADDRESS"))
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
            try Submit.run(.transfer(to: to, amount: amount), signer: key, summary: "Transfer \(Token.format(amount)) to \(to.ss58)",
                           rpc: self.rpc, options: self.submit)
        }
    }
}

extension Tensormesh.WalletCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a wallet's coldkey (if missing, from a new mnemonic) and a hotkey.",
            discussion: """
                The coldkey is made from a new BIP-39 mnemonic, shown once: write it down, it is the only way to recover the \
                coldkey (`tensormesh wallet regen-coldkey --mnemonic "…"`). The coldkey is encrypted with the password; the \
                hotkey is written unencrypted (a miner restarts unattended, as with btcli) unless --encrypt-hotkey is given. \
                Files: <wallet-path>/<wallet>/coldkey and <wallet-path>/<wallet>/hotkeys/<hotkey>, mode 0600.
                """)
        @OptionGroup var wallet: WalletOptions
        @Flag(help: "Encrypt the hotkey with the wallet's password too.")
        var encryptHotkey = false
        @Option(help: "Words in a new coldkey's mnemonic: 12, 15, 18, 21 or 24.")
        var nWords: Int = 12
        @Flag(help: "Print the result as JSON (with the mnemonic of a new coldkey).")
        var json = false

        func validate() throws {
            guard Mnemonic.wordCounts.contains(self.nWords) else { throw ValidationError("--n-words must be 12, 15, 18, 21 or 24") }
        }

        func run() async throws {
            let w = self.wallet.handle
            let exists = FileManager.default.fileExists(atPath: w.coldkeyPath)
            // A password encrypts a new coldkey, or an encrypted hotkey (then the existing
            // coldkey's password, checked, so one password opens the wallet).
            var password = SecureBytes(copying: [UInt8]())
            if !exists || self.encryptHotkey {
                password = try PasswordSource.obtain(environmentVariable: self.wallet.passwordEnv,
                                                     prompt: exists ? "Password for wallet \(w.name): " : "Password for the new wallet: ", confirm: !exists)
            }
            if exists && self.encryptHotkey {
                do { _ = try w.coldkey(password: password) } catch let e as KeystoreError { throw CommandFailure("wallet \(w.name): \(e.description)") }
            }
            let keys: (coldkey: Ed25519.PublicKey, hotkey: Ed25519.PublicKey, mnemonic: String?)
            do { keys = try w.create(hotkey: self.wallet.hotkey, password: password, encryptHotkey: self.encryptHotkey, words: self.nWords) } catch let e as KeystoreError {
                throw CommandFailure(e.description)
            }
            if self.json {
                StandardOutput.line(JSONValue.object([("wallet", .string(w.name)), ("path", .string(w.directory)),
                                                      ("coldkey", .string(keys.coldkey.hex)), ("coldkeyAddress", .string(keys.coldkey.ss58)),
                                                      ("mnemonic", keys.mnemonic.map { .string($0) } ?? .null),
                                                      ("hotkey", .string(self.wallet.hotkey)), ("hotkeyPublic", .string(keys.hotkey.hex)),
                                                      ("hotkeyAddress", .string(keys.hotkey.ss58)), ("hotkeyEncrypted", .bool(self.encryptHotkey))])
                    .serialized(pretty: true))
            } else {
                StandardOutput.line("Wallet \(w.name) at \(w.directory)")
                StandardOutput.line("  coldkey        \(keys.coldkey.ss58)  (\(keys.coldkey.hex))")
                StandardOutput.line("  hotkey \(self.wallet.hotkey.padding(toLength: 8, withPad: " ", startingAt: 0)) \(keys.hotkey.ss58)  (\(keys.hotkey.hex))"
                                    + (self.encryptHotkey ? "" : ", unencrypted"))
                if let m = keys.mnemonic {
                    StandardOutput.line("")
                    StandardOutput.line("The coldkey's mnemonic (shown once; anyone who has it controls the coldkey):")
                    StandardOutput.line("  \(m)")
                    StandardOutput.line("Recover with: tensormesh wallet regen-coldkey --wallet \(w.name) --mnemonic \"<the words>\"")
                }
            }
        }
    }

    struct RegenColdkey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "regen-coldkey", abstract: "Recreate a wallet's coldkey from its mnemonic (the same key and address).")
        @OptionGroup var wallet: WalletOptions
        @Option(help: ArgumentHelp("The coldkey's BIP-39 mnemonic (12 to 24 words, in quotes).", valueName: "WORDS"))
        var mnemonic: String?
        @Option(help: ArgumentHelp("Read the mnemonic from this environment variable instead.", valueName: "VAR"))
        var mnemonicEnv: String?
        @Flag(help: "Replace an existing coldkey file.")
        var overwrite = false
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            var phrase = self.mnemonic
            if phrase == nil, let v = self.mnemonicEnv { phrase = ProcessInfo.processInfo.environment[v] }
            guard let phrase, !phrase.isEmpty else { throw CommandFailure.usage("give the words with --mnemonic \"…\" or --mnemonic-env VAR") }
            do { _ = try Mnemonic.entropy(of: phrase) } catch { throw CommandFailure.usage("--mnemonic: \(error.description)") }
            let w = self.wallet.handle
            if FileManager.default.fileExists(atPath: w.coldkeyPath) && !self.overwrite {
                throw CommandFailure("wallet \(w.name) has a coldkey already (\(w.coldkeyPath)); add --overwrite to replace it")
            }
            let password = try PasswordSource.obtain(environmentVariable: self.wallet.passwordEnv, prompt: "Password for the coldkey: ", confirm: true)
            let key: Ed25519.PublicKey
            do { key = try w.regenerateColdkey(mnemonic: phrase, password: password, overwrite: self.overwrite) } catch let e as KeystoreError {
                throw CommandFailure(e.description)
            }
            if self.json {
                StandardOutput.line(JSONValue.object([("wallet", .string(w.name)), ("coldkey", .string(key.hex)), ("coldkeyAddress", .string(key.ss58))])
                    .serialized(pretty: true))
            } else {
                StandardOutput.line("Wallet \(w.name): coldkey \(key.ss58)  (\(key.hex))")
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a wallet's keys (addresses, hex, which files are encrypted) without a password, or convert an address.",
            discussion: "With an ADDRESS (SS58 or hex) prints both forms of it instead.")
        @OptionGroup var wallet: WalletOptions
        @Argument(help: ArgumentHelp("An SS58 address or a hex public key to show in both forms.", valueName: "ADDRESS"))
        var address: String?
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            if let address {
                guard let k = AccountID(address: address) else { throw CommandFailure.usage("\(address) is neither an SS58 address nor 64 hex digits") }
                if self.json {
                    StandardOutput.line(JSONValue.object([("address", .string(k.ss58)), ("publicKey", .string(k.hex))]).serialized(pretty: true))
                } else {
                    StandardOutput.line("SS58 address (42)  \(k.ss58)\npublic key (hex)   \(k.hex)")
                }
                return
            }
            let w = self.wallet.handle
            let cold = try self.wallet.coldkeyPublic()
            var keys: [JSONValue] = []
            var rows: [[String]] = []
            func add(_ kind: String, _ name: String, _ k: Ed25519.PublicKey, _ path: String, _ encrypted: Bool?) {
                keys.append(.object([("kind", .string(kind)), ("name", .string(name)), ("address", .string(k.ss58)), ("publicKey", .string(k.hex)),
                                     ("path", .string(path)), ("encrypted", encrypted.map { .bool($0) } ?? .null)]))
                rows.append([kind == "coldkey" ? "coldkey" : "hotkey \(name)", k.ss58, k.hex, encrypted.map { $0 ? "yes" : "no" } ?? "?"])
            }
            let coldEncrypted = (try? AtomicFile.read(w.coldkeyPath, limit: KeyFile.maximumFileSize)).flatMap { try? KeyFile.isEncrypted($0) }
            add("coldkey", "coldkey", cold, w.coldkeyPath, coldEncrypted)
            for name in w.hotkeyNames() {
                guard let k = try? w.hotkeyPublic(name) else { continue }
                add("hotkey", name, k, w.hotkeyPath(name), try? w.hotkeyIsEncrypted(name))
            }
            if self.json {
                StandardOutput.line(JSONValue.object([("wallet", .string(w.name)), ("path", .string(w.directory)), ("keys", .array(keys))]).serialized(pretty: true))
            } else {
                StandardOutput.line("Wallet \(w.name) at \(w.directory)")
                StandardOutput.line(Table.render(["KEY", "ADDRESS (SS58)", "PUBLIC KEY (HEX)", "ENCRYPTED"], rows))
            }
        }
    }

    struct Overview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A wallet on chain: balance, stake, and each hotkey's registrations with their incentive and emission.")
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let w = self.wallet.handle
            let cold = try self.wallet.coldkeyPublic()
            let client = try self.rpc.client()
            let account = try client.account(cold)
            let hotkeys = w.hotkeyNames().compactMap { n in (try? w.hotkeyPublic(n)).map { (n, $0) } }
            let byKey = Dictionary(hotkeys.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
            let subnets = try client.rpc.call("subnet_list").array ?? []
            var registrations: [JSONValue] = []
            var rows: [[String]] = []
            for s in subnets {
                guard let n = s["netuid"]?.uint64, let netuid = UInt16(exactly: n) else { continue }
                let mg = try client.metagraphInfo(netuid: netuid)
                for neuron in mg.neurons {
                    guard let name = byKey[neuron.hotkey] else { continue }
                    registrations.append(.object([
                        ("netuid", .int(netuid)), ("uid", .int(neuron.uid)), ("hotkey", .string(name)), ("hotkeyAddress", .string(neuron.hotkey.ss58)),
                        ("stake", .int(neuron.stake)), ("incentive", .double(neuron.incentive)), ("dividends", .double(neuron.dividends)),
                        ("emission", .int(neuron.emission)), ("validatorPermit", .bool(neuron.validatorPermit)),
                        ("axon", neuron.axon.map { .string("\($0.host):\($0.port)") } ?? .null),
                    ]))
                    rows.append([String(netuid), String(neuron.uid), name, String(neuron.hotkey.ss58.prefix(12)) + "…", Token.format(neuron.stake),
                                 String(format: "%.4f", neuron.incentive), String(format: "%.4f", neuron.dividends), Token.format(neuron.emission),
                                 neuron.validatorPermit ? "yes" : "no", neuron.axon.map { "\($0.host):\($0.port)" } ?? "-"])
                }
            }
            let staked = account.stakes.filter { $0.coldkey == cold.hex }.reduce(Rao(0)) { $0.addingSaturated($1.amount) }
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("wallet", .string(w.name)), ("coldkey", .string(cold.hex)), ("coldkeyAddress", .string(cold.ss58)),
                    ("free", .int(account.balance)), ("staked", .int(staked)),
                    ("hotkeys", .array(hotkeys.map { .object([("name", .string($0.0)), ("address", .string($0.1.ss58)), ("publicKey", .string($0.1.hex))]) })),
                    ("registrations", .array(registrations)),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("Wallet \(w.name)  coldkey \(cold.ss58)")
                StandardOutput.line("  free \(Token.format(account.balance))  staked \(Token.format(staked))  hotkeys \(hotkeys.count)")
                if rows.isEmpty {
                    StandardOutput.line("  no hotkey of this wallet is registered on a subnet")
                } else {
                    StandardOutput.line(Table.render(["NETUID", "UID", "HOTKEY", "ADDRESS", "STAKE", "INCENTIVE", "DIVIDENDS", "EMISSION", "VPERMIT", "AXON"], rows))
                }
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
                let coldKey = try? w.coldkeyPublic()
                let cold = coldKey?.hex ?? "?"
                let hotKeys = w.hotkeyNames().map { ($0, try? w.hotkeyPublic($0)) }
                items.append(.object([("wallet", .string(w.name)), ("coldkey", .string(cold)), ("coldkeyAddress", .string(coldKey?.ss58 ?? "?")),
                                      ("hotkeys", .object(hotKeys.map { ($0.0, .string($0.1?.hex ?? "?")) })),
                                      ("hotkeyAddresses", .object(hotKeys.map { ($0.0, .string($0.1?.ss58 ?? "?")) }))]))
                rows.append([w.name, "coldkey", coldKey?.ss58 ?? "?", cold])
                for (n, k) in hotKeys { rows.append(["", "hotkey \(n)", k?.ss58 ?? "?", k?.hex ?? "?"]) }
            }
            if self.json { StandardOutput.line(JSONValue.array(items).serialized(pretty: true)) } else if rows.isEmpty {
                StandardOutput.line("No wallets under \(self.walletPath ?? Wallet.defaultRoot); create one with `tensormesh wallet create`.")
            } else {
                StandardOutput.line(Table.render(["WALLET", "KEY", "ADDRESS (SS58)", "PUBLIC KEY (HEX)"], rows))
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
                    ("coldkey", .string(cold.hex)), ("coldkeyAddress", .string(cold.ss58)), ("free", .int(a.balance)), ("staked", .int(total)), ("total", .int(sum)),
                    ("stakes", .array(staked.map { .object([("hotkey", .string($0.hotkey)), ("netuid", .int($0.netuid)), ("amount", .int($0.amount))]) })),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("Coldkey \(cold.ss58)  (\(cold.hex))")
                StandardOutput.line("  free    \(Token.format(a.balance))")
                StandardOutput.line("  staked  \(Token.format(total))")
                StandardOutput.line("  total   \(Token.format(sum))")
            }
        }
    }
}
