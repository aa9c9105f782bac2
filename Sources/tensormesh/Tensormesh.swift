import ArgumentParser

/// The `tensormesh` command: the node and its admin tools.
struct Tensormesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensormesh",
        abstract: "A node for a network of decentralized commodity markets (subnets) under one token.",
        discussion: """
            Run a node with `tensormesh run`, or a one-node development chain with `tensormesh run --dev`.
            Keys: `tensormesh key generate --out FILE`, `tensormesh key inspect FILE`.
            Wallets and chain (btcli-like, through a node's RPC): `wallet`, `subnets`, `stake`, `weights`, `transfer`.
            The apps gateway for end users: `tensormesh gateway --netuid N --api-keys FILE`.
            Exit codes: 0 success, 1 runtime failure, 2 usage error.
            """,
        version: TensormeshVersion.string,
        subcommands: [Run.self, PurgeChain.self, ExportBlocks.self, ImportBlocks.self, Key.self, Genesis.self, WalletCommand.self, Subnets.self, StakeCommand.self, Delegate.self, Weights.self, Transfer.self, Epoch.self, GatewayCommand.self, Coinbase.self])
}

enum TensormeshVersion {
    static let string = "0.1.0"
}
