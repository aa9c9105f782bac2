import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCodec
import MeshCrypto

extension Tensormesh.Subnets {
    struct Price: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each subnet's alpha price, pool reserves and net TAO flow.")
        @Option(help: "Only this subnet.")
        var netuid: UInt16?
        @OptionGroup var rpc: RPCOptions
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let client = try self.rpc.client()
            let ids: [UInt16]
            if let n = self.netuid {
                ids = [n]
            } else {
                ids = try (client.rpc.call("subnet_list").array ?? []).compactMap { $0["netuid"]?.uint64.flatMap { UInt16(exactly: $0) } }.filter { $0 != 0 }
            }
            let pools = try ids.map { try client.pool(netuid: $0) }
            if self.json {
                let raw = try ids.map { try client.rpc.call("subnet_getPool", .array([.int($0)])) }
                StandardOutput.line((self.netuid != nil ? raw[0] : JSONValue.array(raw)).serialized(pretty: true))
                return
            }
            let rows = pools.map { p -> [String] in
                [String(p.netuid), p.symbol, PriceText.truncated(p.price), Token.format(p.taoIn), PoolFormat.alpha(p.alphaIn, p.symbol),
                 PoolFormat.alpha(p.alphaOut, p.symbol), String(format: "%.3f", p.taoFlowEma / 1e9), p.started ? "yes" : "no"]
            }
            StandardOutput.line(Table.render(["NETUID", "SYMBOL", "PRICE (τ)", "TAO IN", "ALPHA IN", "ALPHA OUT", "FLOW EMA (τ/block)", "STARTED"], rows))
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a subnet's emission (signed by the owner's coldkey).")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            try Submit.run(.startCall(netuid: self.netuid), signer: try self.wallet.coldkey(), summary: "Start subnet \(self.netuid)",
                           rpc: self.rpc, options: self.submit)
        }
    }

    struct Identity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish a subnet's identity and choose its token symbol (signed by the owner's coldkey).")
        @Option(help: "The subnet.")
        var netuid: UInt16
        @Option(help: "Display name.") var name: String = ""
        @Option(help: "Source repository URL.") var repository: String = ""
        @Option(help: "Contact.") var contact: String = ""
        @Option(help: "Web site.") var url: String = ""
        @Option(help: "Discord.") var discord: String = ""
        @Option(help: "Description.") var description: String = ""
        @Option(help: "Logo URL.") var logoUrl: String = ""
        @Option(help: "The alpha token's symbol (one of the chain's symbols, e.g. γ).") var symbol: String?
        @OptionGroup var wallet: WalletOptions
        @OptionGroup var rpc: RPCOptions
        @OptionGroup var submit: SubmitOptions

        func run() async throws {
            let id = SubnetIdentity(name: self.name, repository: self.repository, contact: self.contact, url: self.url, discord: self.discord,
                                    description: self.description, logoURL: self.logoUrl)
            if let field = id.invalidField { throw ValidationError("--\(field) is longer than \(SubnetIdentity.maxField) bytes") }
            let key = try self.wallet.coldkey()
            try Submit.run(.setSubnetIdentity(netuid: self.netuid, identity: id), signer: key, summary: "Set the identity of subnet \(self.netuid)",
                           rpc: self.rpc, options: self.submit)
            if let symbol = self.symbol {
                try Submit.run(.updateSymbol(netuid: self.netuid, symbol: symbol), signer: key, summary: "Set the symbol of subnet \(self.netuid) to \(symbol)",
                               rpc: self.rpc, options: self.submit)
            }
        }
    }
}

enum PoolFormat {
    static func alpha(_ x: UInt64, _ symbol: String) -> String { Token.format(x).replacingOccurrences(of: "TAO", with: symbol) }
}
