import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto

extension Tensormesh {
    struct StakeCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stake",
            abstract: "Stake, unstake, move and list stake (coldkey to hotkey, per subnet; a swap through the subnet's TAO/alpha pool).",
            subcommands: [Add.self, Remove.self, Move.self, Swap.self, List.self, Children.self])
    }
}

/// Slippage protection shared by the stake commands (btcli's `--tolerance`, `--allow-partial-stake`).
struct SlippageOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Largest price move accepted, as a fraction (0.005 = 0.5 %).", valueName: "FRACTION"))
    var tolerance: Double = 0.005
    @Flag(help: "Fill only what fits within the tolerance instead of refusing.")
    var allowPartial = false
    @Flag(help: "No price limit at all.")
    var unsafe = false

    func validate() throws {
        guard self.tolerance.isFinite, self.tolerance >= 0, self.tolerance < 1 else { throw ValidationError("--tolerance must be a fraction in [0, 1)") }
    }
}

/// Prices as the node reports them (exact decimal strings) and limits in rao per alpha.
enum PriceText {
    /// "0.123456789" → rao per alpha (9 decimals, truncated).
    static func rao(_ text: String) -> UInt64? { Token.parse(String(text.split(separator: ".").count == 2 ? Self.truncated(text) : text)) }

    static func truncated(_ text: String) -> String {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 ? parts[0] + "." + parts[1].prefix(9) : text
    }

    /// `price × factor` in rao, saturating.
    static func scaled(_ rao: UInt64, by factor: Double) -> UInt64 {
        let v = (Double(rao) * factor).rounded(.down)
        return v >= 1.8e19 ? .max : (v <= 0 ? 0 : UInt64(v))
    }

    static func show(_ rao: UInt64) -> String { String(format: "%.9f", Double(rao) / 1e9) }
}

extension Tensormesh.StakeCommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stake TAO from the coldkey on a hotkey in a subnet (buys the subnet's alpha; refused if the price would move past the tolerance).")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @Option(help: ArgumentHelp("Amount in TAO.", valueName: "TAO"))
        var amount: String
        @Option(help: ArgumentHelp("Stake on this hotkey (public key) instead of the wallet's own.", valueName: "PUBKEY"))
        var hotkeyAddress: String?
        @OptionGroup var slippage: SlippageOptions
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let amount = try Submit.amount(self.amount, "--amount")
            let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
            let client = try self.rpc.client()
            let pool = try client.pool(netuid: self.netuid)
            if !self.slippage.unsafe && !pool.started {
                throw CommandFailure("subnet \(self.netuid) has not been started by its owner (SubtokenDisabled). Nothing was submitted.")
            }
            var call = Call.addStake(hotkey: hot, netuid: self.netuid, amount: amount)
            var summary = "Stake \(Token.format(amount)) on \(hot.hex.prefix(16))… in subnet \(self.netuid)"
            if !self.slippage.unsafe, let price = PriceText.rao(pool.price) {
                let limit = self.netuid == 0 ? Token.tao : PriceText.scaled(price, by: 1 + self.slippage.tolerance)
                let q = try client.quote(netuid: self.netuid, kind: "stake", amount: amount, limitPrice: limit)
                let fits = q["maxAtLimit"]?.uint64 ?? 0
                if let e = q["error"]?.string { throw CommandFailure("staking refused: \(e)") }
                if amount > fits && !self.slippage.allowPartial {
                    throw CommandFailure("staking \(Token.format(amount)) would move the price of subnet \(self.netuid) from \(pool.price) to "
                                         + "\(q["priceAfter"]?.string ?? "?") τ/\(pool.symbol), past your limit \(PriceText.show(limit)) "
                                         + "(tolerance \(self.slippage.tolerance)); \(Token.format(fits)) fits (--allow-partial stakes that much). Nothing was submitted.")
                }
                call = .addStakeLimit(hotkey: hot, netuid: self.netuid, amount: amount, limitPrice: limit, allowPartial: self.slippage.allowPartial)
                summary += " for about \(Token.format(q["out"]?.uint64 ?? 0).replacingOccurrences(of: "TAO", with: pool.symbol)) (limit \(PriceText.show(limit)) τ/\(pool.symbol))"
            }
            try Submit.run(call, signer: try self.wallet.coldkey(), summary: summary, rpc: self.rpc, options: self.submit)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unstake alpha back to TAO on the coldkey (refused if the price would fall past the tolerance).")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @Option(help: ArgumentHelp("Amount of alpha (TAO on the root subnet).", valueName: "ALPHA"))
        var amount: String?
        @Flag(help: "Unstake everything the coldkey has on the hotkey in the subnet.")
        var all = false
        @Option(help: ArgumentHelp("Unstake from this hotkey (public key) instead of the wallet's own.", valueName: "PUBKEY"))
        var hotkeyAddress: String?
        @OptionGroup var slippage: SlippageOptions
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func validate() throws {
            guard (self.amount != nil) != self.all else { throw ValidationError("give exactly one of --amount and --all") }
        }

        func run() async throws {
            let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
            let cold = try self.wallet.coldkeyPublic()
            let client = try self.rpc.client()
            let amount: UInt64
            if self.all {
                amount = try client.stakes(coldkey: cold, hotkey: hot, netuid: self.netuid).reduce(0) { $0.addingSaturated($1.alpha) }
                guard amount > 0 else { throw CommandFailure("no stake on \(hot.hex.prefix(16))… in subnet \(self.netuid)") }
            } else {
                amount = try Submit.amount(self.amount!, "--amount")
                let have = try client.stakes(coldkey: cold, hotkey: hot, netuid: self.netuid).reduce(UInt64(0)) { $0.addingSaturated($1.alpha) }
                guard amount <= have else {
                    throw CommandFailure("remove_stake refused: NotEnoughStakeToWithdraw: staked \(have) on \(hot.hex.prefix(16))… in subnet \(self.netuid), asked \(amount)")
                }
            }
            let pool = try client.pool(netuid: self.netuid)
            var call = Call.removeStake(hotkey: hot, netuid: self.netuid, amount: amount)
            var summary = "Unstake \(amount) \(pool.symbol) (10^-9) from \(hot.hex.prefix(16))… in subnet \(self.netuid)"
            if !self.slippage.unsafe, let price = PriceText.rao(pool.price) {
                let limit = self.netuid == 0 ? Token.tao : PriceText.scaled(price, by: 1 - self.slippage.tolerance)
                let q = try client.quote(netuid: self.netuid, kind: "unstake", amount: amount, limitPrice: limit)
                if let e = q["error"]?.string { throw CommandFailure("unstaking refused: \(e)") }
                let fits = q["maxAtLimit"]?.uint64 ?? 0
                if amount > fits && !self.slippage.allowPartial {
                    throw CommandFailure("unstaking \(amount) would move the price of subnet \(self.netuid) from \(pool.price) to "
                                         + "\(q["priceAfter"]?.string ?? "?") τ/\(pool.symbol), past your limit \(PriceText.show(limit)) "
                                         + "(tolerance \(self.slippage.tolerance)); \(fits) fits (--allow-partial unstakes that much). Nothing was submitted.")
                }
                call = .removeStakeLimit(hotkey: hot, netuid: self.netuid, amount: amount, limitPrice: limit, allowPartial: self.slippage.allowPartial)
                summary += " for about \(Token.format(q["out"]?.uint64 ?? 0))"
            }
            try Submit.run(call, signer: try self.wallet.coldkey(), summary: summary, rpc: self.rpc, options: self.submit)
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move alpha stake to another hotkey and/or subnet (within a subnet the stake moves as it is; across subnets through both pools).")
        @Option(help: "The subnet the stake is on.")
        var originNetuid: UInt16
        @Option(help: "The subnet it moves to (default: the same).")
        var destinationNetuid: UInt16?
        @Option(help: ArgumentHelp("The hotkey the stake is on (default the wallet's).", valueName: "PUBKEY"))
        var originHotkey: String?
        @Option(help: ArgumentHelp("The hotkey it moves to.", valueName: "PUBKEY"))
        var destinationHotkey: String
        @Option(help: ArgumentHelp("Amount of alpha.", valueName: "ALPHA"))
        var amount: String
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let amount = try Submit.amount(self.amount, "--amount")
            let origin = try self.originHotkey.map { try Submit.account($0, "--origin-hotkey") } ?? self.wallet.hotkeyPublic()
            let destination = try Submit.account(self.destinationHotkey, "--destination-hotkey")
            let dn = self.destinationNetuid ?? self.originNetuid
            try Submit.run(.moveStake(originHotkey: origin, destinationHotkey: destination, originNetuid: self.originNetuid, destinationNetuid: dn, amount: amount),
                           signer: try self.wallet.coldkey(),
                           summary: "Move \(amount) alpha (10^-9) from \(origin.hex.prefix(16))… on subnet \(self.originNetuid) to \(destination.hex.prefix(16))… on subnet \(dn)",
                           rpc: self.rpc, options: self.submit)
        }
    }

    struct Swap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Swap a hotkey's stake from one subnet to another through both pools, within a tolerance on the ratio of their prices.")
        @Option(help: "The subnet the stake is on.")
        var originNetuid: UInt16
        @Option(help: "The subnet it moves to.")
        var destinationNetuid: UInt16
        @Option(help: ArgumentHelp("Amount of alpha on the origin subnet.", valueName: "ALPHA"))
        var amount: String
        @Option(help: ArgumentHelp("The hotkey (default the wallet's).", valueName: "PUBKEY"))
        var hotkeyAddress: String?
        @OptionGroup var slippage: SlippageOptions
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let amount = try Submit.amount(self.amount, "--amount")
            let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
            var limit: UInt64?
            if !self.slippage.unsafe {
                let client = try self.rpc.client()
                let o = try client.pool(netuid: self.originNetuid), d = try client.pool(netuid: self.destinationNetuid)
                guard d.priceFloat > 0 else { throw CommandFailure("subnet \(self.destinationNetuid) has no price") }
                limit = PriceText.scaled(UInt64((o.priceFloat / d.priceFloat * 1e9).rounded(.down)), by: 1 - self.slippage.tolerance)
            }
            try Submit.run(.swapStake(hotkey: hot, originNetuid: self.originNetuid, destinationNetuid: self.destinationNetuid, amount: amount,
                                      limitPrice: limit, allowPartial: self.slippage.allowPartial),
                           signer: try self.wallet.coldkey(),
                           summary: "Swap \(amount) alpha (10^-9) on \(hot.hex.prefix(16))… from subnet \(self.originNetuid) to \(self.destinationNetuid)"
                               + (limit.map { " (price ratio at least \(PriceText.show($0)))" } ?? ""),
                           rpc: self.rpc, options: self.submit)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The wallet coldkey's stakes: alpha, value in TAO at the pool price, and earnings, per subnet.")
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let cold = try self.wallet.coldkeyPublic()
            let stakes = try self.rpc.client().stakes(coldkey: cold)
            if self.json {
                StandardOutput.line(JSONValue.array(stakes.map {
                    .object([("hotkey", .string($0.hotkey)), ("netuid", .int($0.netuid)), ("alpha", .int($0.alpha)), ("amount", .int($0.alpha)),
                             ("taoValue", .int($0.taoValue)), ("earned", .int($0.earned)), ("symbol", .string($0.symbol))])
                }).serialized(pretty: true))
                return
            }
            let rows = stakes.map { s -> [String] in
                [String(s.netuid), s.symbol, String(s.hotkey.prefix(16)) + "…", PoolFormat.alpha(s.alpha, s.symbol), Token.format(s.taoValue), PoolFormat.alpha(s.earned, s.symbol)]
            }
            StandardOutput.line(Table.render(["NETUID", "SYMBOL", "HOTKEY", "STAKE", "VALUE", "EARNED"], rows))
            let total = stakes.reduce(Rao(0)) { $0.addingSaturated($1.taoValue) }
            StandardOutput.line("Total value \(Token.format(total))")
        }
    }
}

extension Tensormesh.StakeCommand {
    /// `stake children …`: child hotkeys.
    struct Children: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Child hotkeys: lend proportions of a hotkey's stake weight on a subnet to other hotkeys.",
            subcommands: [Get.self, Set.self, Revoke.self, Take.self])

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A hotkey's children, parents, pending children and child take on a subnet.")
            @Option(help: "The subnet.")
            var netuid: UInt16
            @Option(help: ArgumentHelp("The hotkey (default the wallet's).", valueName: "PUBKEY"))
            var hotkeyAddress: String?
            @OptionGroup var wallet: WalletOptions
            @OptionGroup var rpc: RPCOptions
            @Flag(help: "Print the result as JSON.")
            var json = false

            func run() async throws {
                let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
                let r = try self.rpc.client().rpc.call("delegate_getChildren", .array([.string(hot.hex), .int(self.netuid)]))
                if self.json { StandardOutput.line(r.serialized(pretty: true)); return }
                func rows(_ f: String) -> [[String]] {
                    (r[f]?.array ?? []).map { [$0["hotkey"]?.string ?? "", String(format: "%.4f", $0["fraction"]?.double ?? 0)] }
                }
                StandardOutput.line("Children of \(hot.hex.prefix(16))… on subnet \(self.netuid) (child take \(String(format: "%.2f", Double(r["childTake"]?.uint64 ?? 0) / 655.35)) %):")
                StandardOutput.line(Table.render(["CHILD", "PROPORTION"], rows("children")))
                if let pending = r["pending"], !pending.isNull {
                    StandardOutput.line("Pending from block #\(pending["coolDownBlock"]?.uint64 ?? 0):")
                    StandardOutput.line(Table.render(["CHILD", "PROPORTION"], (pending["children"]?.array ?? []).map {
                        [$0["hotkey"]?.string ?? "", String(format: "%.4f", $0["fraction"]?.double ?? 0)]
                    }))
                }
                StandardOutput.line("Parents:")
                StandardOutput.line(Table.render(["PARENT", "PROPORTION"], rows("parents")))
            }
        }

        struct Set: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Schedule a hotkey's children on a subnet (they take effect after the cooldown).")
            @Option(help: "The subnet.")
            var netuid: UInt16
            @Option(help: ArgumentHelp("Children as PUBKEY:FRACTION, comma-separated (fractions add up to at most 1).", valueName: "LIST"))
            var children: String
            @Option(help: ArgumentHelp("The parent hotkey (default the wallet's).", valueName: "PUBKEY"))
            var hotkeyAddress: String?
            @OptionGroup var wallet: WalletOptions
            @OptionGroup var rpc: RPCOptions
            @OptionGroup var submit: SubmitOptions

            func run() async throws {
                let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
                var links: [ChildLink] = []
                for item in self.children.split(separator: ",") {
                    let parts = item.split(separator: ":")
                    guard parts.count == 2, let f = Double(parts[1]), f.isFinite, f > 0, f <= 1 else {
                        throw ValidationError("--children: \(item) is not PUBKEY:FRACTION with a fraction in (0, 1]")
                    }
                    let proportion = f >= 1 ? UInt64.max : UInt64((f * 18_446_744_073_709_551_615.0).rounded(.down))
                    links.append(ChildLink(proportion: proportion, hotkey: try Submit.account(String(parts[0]), "--children")))
                }
                try Submit.run(.setChildren(hotkey: hot, netuid: self.netuid, children: links), signer: try self.wallet.coldkey(),
                               summary: "Schedule \(links.count) children of \(hot.hex.prefix(16))… on subnet \(self.netuid)", rpc: self.rpc, options: self.submit)
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Schedule the removal of every child of a hotkey on a subnet.")
            @Option(help: "The subnet.")
            var netuid: UInt16
            @Option(help: ArgumentHelp("The parent hotkey (default the wallet's).", valueName: "PUBKEY"))
            var hotkeyAddress: String?
            @OptionGroup var wallet: WalletOptions
            @OptionGroup var rpc: RPCOptions
            @OptionGroup var submit: SubmitOptions

            func run() async throws {
                let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
                try Submit.run(.setChildren(hotkey: hot, netuid: self.netuid, children: []), signer: try self.wallet.coldkey(),
                               summary: "Revoke the children of \(hot.hex.prefix(16))… on subnet \(self.netuid)", rpc: self.rpc, options: self.submit)
            }
        }

        struct Take: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Set a hotkey's take as a child on a subnet (raising is rate-limited).")
            @Option(help: "The subnet.")
            var netuid: UInt16
            @Option(help: ArgumentHelp("The take: a fraction (0.09) or a percentage (9%).", valueName: "TAKE"))
            var take: String
            @Option(help: ArgumentHelp("The child hotkey (default the wallet's).", valueName: "PUBKEY"))
            var hotkeyAddress: String?
            @OptionGroup var wallet: WalletOptions
            @OptionGroup var rpc: RPCOptions
            @OptionGroup var submit: SubmitOptions

            func run() async throws {
                let take = try TakeValue.parse(self.take)
                let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
                try Submit.run(.setChildkeyTake(hotkey: hot, netuid: self.netuid, take: take), signer: try self.wallet.coldkey(),
                               summary: "Set the child take of \(hot.hex.prefix(16))… on subnet \(self.netuid) to \(take)/65535", rpc: self.rpc, options: self.submit)
            }
        }
    }
}
