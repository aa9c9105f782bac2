import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto

extension Tensormesh {
    struct Subnets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, create and inspect subnets; register hotkeys.",
            subcommands: [List.self, Create.self, Register.self, Hyperparameters.self, SetHyperparameter.self, MetagraphCommand.self,
                          Price.self, Start.self, Identity.self])
    }
}

extension Tensormesh.Subnets {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The subnets, their size, burn cost and tempo.")
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let list = try self.rpc.client().rpc.call("subnet_list")
            if self.json { StandardOutput.line(list.serialized(pretty: true)); return }
            let rows = (list.array ?? []).map { s -> [String] in
                [String(s["netuid"]?.uint64 ?? 0), s["name"]?.string ?? "", String(s["n"]?.uint64 ?? 0),
                 String(s["hyperparameters"]?["max_allowed_uids"]?.uint64 ?? 0), Token.format(s["burn"]?.uint64 ?? 0),
                 String(s["hyperparameters"]?["tempo"]?.uint64 ?? 0), String(s["epochs"]?.uint64 ?? 0),
                 String((s["owner"]?.string ?? "").prefix(16)) + "…"]
            }
            StandardOutput.line(Table.render(["NETUID", "NAME", "N", "MAX", "BURN", "TEMPO", "EPOCHS", "OWNER"], rows))
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a subnet owned by the wallet's coldkey (locks the current lock cost).")
        @OptionGroup var wallet: WalletOptions
        @Option(help: ArgumentHelp("Refuse if the lock cost exceeds this (TAO).", valueName: "TAO"))
        var maxLock: String = "1000"
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let maxLock = try Submit.amount(self.maxLock, "--max-lock")
            let hot = try self.wallet.hotkeyPublic()
            let cost = try self.rpc.client().rpc.call("subnet_getLockCost").uint64 ?? 0
            try Submit.run(.createSubnet(ownerHotkey: hot, maxLockCost: maxLock), signer: try self.wallet.coldkey(),
                           summary: "Create a subnet (lock cost now \(Token.format(cost)), at most \(Token.format(maxLock)))", rpc: self.rpc, options: self.submit)
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register the wallet's hotkey on a subnet by burning the registration cost.")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @OptionGroup var wallet: WalletOptions
        @Option(help: ArgumentHelp("Refuse if the burn exceeds this (TAO).", valueName: "TAO"))
        var maxBurn: String = "100"
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let maxBurn = try Submit.amount(self.maxBurn, "--max-burn")
            let hot = try self.wallet.hotkeyPublic()
            let burn = try self.rpc.client().rpc.call("subnet_getBurnCost", .array([.int(self.netuid)])).uint64 ?? 0
            try Submit.run(.register(netuid: self.netuid, hotkey: hot, maxBurn: maxBurn), signer: try self.wallet.coldkey(),
                           summary: "Register \(hot.hex.prefix(16))… on subnet \(self.netuid) for \(Token.format(burn))", rpc: self.rpc, options: self.submit)
        }
    }

    struct Hyperparameters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A subnet's hyperparameters.")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let h = try self.rpc.client().rpc.call("subnet_getHyperparameters", .array([.int(self.netuid)]))
            if self.json { StandardOutput.line(h.serialized(pretty: true)); return }
            StandardOutput.line(Table.render(["HYPERPARAMETER", "VALUE"], (h.object ?? []).map { [$0.0, $0.1.serialized()] }))
        }
    }

    struct SetHyperparameter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-hyperparameter",
            abstract: "Change a hyperparameter (signed by the subnet owner's coldkey; root-only ones with --sudo).")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @Option(help: "Hyperparameter name, e.g. tempo or commit_reveal_enabled.")
        var name: String
        @Option(help: "New value (an integer).")
        var value: UInt64
        @Flag(help: "Dispatch as the owner through the chain's sudo key (the wallet's coldkey must be sudo).")
        var sudo = false
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            guard let p = Hyperparameter(name: self.name) else {
                throw ValidationError("unknown hyperparameter \(self.name); known: \(Hyperparameter.allCases.map { $0.name }.joined(separator: ", "))")
            }
            var call = Call.setHyperparameter(netuid: self.netuid, parameter: p, value: self.value)
            if self.sudo {
                let owner = try self.rpc.client().rpc.call("subnet_list").array?.first { $0["netuid"]?.uint64 == UInt64(self.netuid) }?["owner"]?.string
                guard let owner, let account = AccountID(hex: owner) else { throw CommandFailure("subnet \(self.netuid) does not exist") }
                call = .sudoAs(account: account, call: call)
            }
            try Submit.run(call, signer: try self.wallet.coldkey(), summary: "Set \(self.name) = \(self.value) on subnet \(self.netuid)",
                           rpc: self.rpc, options: self.submit)
        }
    }

    struct MetagraphCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "metagraph", abstract: "A subnet's neurons: stake, trust, incentive, dividends, emission, axons.")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @Flag(help: "Include the weight and bond matrices (JSON only).")
        var full = false
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let client = try self.rpc.client()
            if self.json {
                StandardOutput.line(try client.metagraph(netuid: self.netuid, full: self.full).serialized(pretty: true))
                return
            }
            let mg = try client.metagraphInfo(netuid: self.netuid)
            let symbol = (try? client.pool(netuid: self.netuid).symbol) ?? "α"
            let rows = mg.neurons.map { n -> [String] in
                [String(n.uid), String(n.hotkey.hex.prefix(12)) + "…", PoolFormat.alpha(n.stake, symbol), PoolFormat.alpha(n.alphaStake, symbol), Token.format(n.rootStake),
                 String(format: "%.4f", n.consensus),
                 String(format: "%.4f", n.incentive), String(format: "%.4f", n.dividends), PoolFormat.alpha(n.emission, symbol),
                 String(format: "%.4f", n.validatorTrust), n.validatorPermit ? "*" : "", String(n.lastUpdate),
                 n.axon.map { "\($0.host):\($0.port)" } ?? "-"]
            }
            StandardOutput.line("Subnet \(mg.netuid) at block #\(mg.block): \(mg.neurons.count) neurons")
            StandardOutput.line(Table.render(["UID", "HOTKEY", "STAKE WEIGHT", "ALPHA STAKE", "ROOT STAKE", "C", "I", "D", "EMISSION", "VTRUST", "VP", "UPDATED", "AXON"], rows))
        }
    }
}

extension Tensormesh {
    struct Weights: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set, commit and reveal weights (signed by the hotkey).",
            subcommands: [Set.self, Commit.self, Reveal.self])
    }
}

/// `--uids 1,2,3 --weights 0.5,0.3,0.2` → u16 values normalized so the largest is 65535.
struct WeightOptions: ParsableArguments {
    @Option(help: "The subnet.")
    var netuid: UInt16
    @Option(help: ArgumentHelp("Comma-separated uids.", valueName: "LIST"))
    var uids: String
    @Option(help: ArgumentHelp("Comma-separated non-negative weights, one per uid (any scale).", valueName: "LIST"))
    var weights: String
    @Option(help: "The subnet's weights version key.")
    var versionKey: UInt64 = 0

    func parse() throws -> ([UInt16], [UInt16]) {
        let u = self.uids.split(separator: ",").map { UInt16($0.trimmingCharacters(in: .whitespaces)) }
        let w = self.weights.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !u.isEmpty, u.allSatisfy({ $0 != nil }) else { throw ValidationError("--uids must be a comma-separated list of uids") }
        guard w.count == u.count, w.allSatisfy({ ($0 ?? -1) >= 0 && $0!.isFinite }) else {
            throw ValidationError("--weights must list one non-negative number per uid")
        }
        let top = w.map { $0! }.max() ?? 0
        guard top > 0 else { throw ValidationError("--weights are all zero") }
        return (u.map { $0! }, w.map { UInt16(($0! / top * 65535).rounded(.down)) })
    }
}

extension Tensormesh.Weights {
    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set weights directly (subnets without commit-reveal).")
        @OptionGroup var weights: WeightOptions
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let (uids, values) = try self.weights.parse()
            try Submit.run(.setWeights(netuid: self.weights.netuid, uids: uids, values: values, versionKey: self.weights.versionKey),
                           signer: try self.wallet.hotkeyKey(), summary: "Set weights on subnet \(self.weights.netuid) for \(uids.count) uids",
                           rpc: self.rpc, options: self.submit)
        }
    }

    struct Commit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Commit a hash of weights; reveal them after the next epoch with the printed salt.")
        @OptionGroup var weights: WeightOptions
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let (uids, values) = try self.weights.parse()
            let key = try self.wallet.hotkeyKey()
            let salt = SecureRandom.bytes(16)
            let hash = ChainState.commitHash(hotkey: key.publicKey, netuid: self.weights.netuid, uids: uids, values: values, salt: salt,
                                             versionKey: self.weights.versionKey)
            StandardError.write("salt: \(Hex.encode(salt)) (keep it: `tensormesh weights reveal … --salt \(Hex.encode(salt))`)\n")
            try Submit.run(.commitWeights(netuid: self.weights.netuid, commitHash: hash), signer: key,
                           summary: "Commit weights on subnet \(self.weights.netuid)", rpc: self.rpc, options: self.submit)
        }
    }

    struct Reveal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reveal committed weights (same uids, weights and version key, and the salt).")
        @OptionGroup var weights: WeightOptions
        @Option(help: ArgumentHelp("The salt printed by `weights commit`.", valueName: "HEX"))
        var salt: String
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let (uids, values) = try self.weights.parse()
            guard let salt = Hex.decode(self.salt), !salt.isEmpty, salt.count <= 64 else { throw ValidationError("--salt must be hex") }
            try Submit.run(.revealWeights(netuid: self.weights.netuid, uids: uids, values: values, salt: salt, versionKey: self.weights.versionKey),
                           signer: try self.wallet.hotkeyKey(), summary: "Reveal weights on subnet \(self.weights.netuid)", rpc: self.rpc, options: self.submit)
        }
    }
}
