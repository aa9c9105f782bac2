import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto

extension Tensormesh {
    /// `tensormesh delegate …`: a validator hotkey's take.
    struct Delegate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A validator hotkey's take: the share of its dividends its owner keeps before its stakers are paid.",
            subcommands: [Take.self])
    }
}

extension Tensormesh.Delegate {
    struct Take: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show or set a hotkey's take.", subcommands: [Get.self, Set.self])
    }
}

/// `--take` as a fraction (0.09) or a percentage (9%), converted to the chain's u16 proportion.
enum TakeValue {
    static func parse(_ text: String) throws -> UInt16 {
        var t = text.trimmingCharacters(in: .whitespaces)
        var scale = 1.0
        if t.hasSuffix("%") {
            t.removeLast()
            scale = 100
        }
        guard let x = Double(t), x.isFinite, x >= 0, x / scale <= 1 else {
            throw ValidationError("--take \(text) must be a fraction in [0, 1] (e.g. 0.09) or a percentage (e.g. 9%)")
        }
        return UInt16((x / scale * 65535).rounded(.down))
    }
}

extension Tensormesh.Delegate.Take {
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A hotkey's owner, take and stakers.")
        @Option(help: ArgumentHelp("The hotkey (public key); default the wallet's hotkey.", valueName: "PUBKEY"))
        var hotkeyAddress: String?
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
            let info = try self.rpc.client().rpc.call("delegate_getInfo", .array([.string(hot.hex)]))
            if self.json { StandardOutput.line(info.serialized(pretty: true)); return }
            let take = info["take"]?.uint64 ?? 0
            StandardOutput.line("Hotkey  \(hot.hex)")
            StandardOutput.line("Owner   \(info["owner"]?.string ?? "none (not registered)")")
            StandardOutput.line(String(format: "Take    %.2f %% (%llu/65535); may rise again from block #%llu", Double(take) / 655.35, take,
                                       info["nextIncreaseAt"]?.uint64 ?? 0))
            let rows = (info["stakers"]?.array ?? []).map { s -> [String] in
                [String(s["netuid"]?.uint64 ?? 0), s["coldkey"]?.string ?? "", String(s["amount"]?.uint64 ?? 0)]
            }
            if !rows.isEmpty { StandardOutput.line(Table.render(["NETUID", "STAKER (COLDKEY)", "STAKE (RAO)"], rows)) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the take of a hotkey the wallet's coldkey owns (lowering is immediate; raising is rate-limited).")
        @Option(help: ArgumentHelp("The new take: a fraction (0.09) or a percentage (9%).", valueName: "TAKE"))
        var take: String
        @Option(help: ArgumentHelp("The hotkey (public key); default the wallet's hotkey.", valueName: "PUBKEY"))
        var hotkeyAddress: String?
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let take = try TakeValue.parse(self.take)
            let hot = try self.wallet.hotkeyPublic(or: self.hotkeyAddress)
            let info = try self.rpc.client().rpc.call("delegate_getInfo", .array([.string(hot.hex)]))
            let current = UInt16(exactly: info["take"]?.uint64 ?? 0) ?? 0
            guard take != current else { throw CommandFailure("the take is already \(current)/65535") }
            let call: Call = take < current ? .decreaseTake(hotkey: hot, take: take) : .increaseTake(hotkey: hot, take: take)
            try Submit.run(call, signer: try self.wallet.coldkey(),
                           summary: String(format: "Set the take of %@… from %.2f %% to %.2f %%", String(hot.hex.prefix(16)), Double(current) / 655.35, Double(take) / 655.35),
                           rpc: self.rpc, options: self.submit)
        }
    }
}
