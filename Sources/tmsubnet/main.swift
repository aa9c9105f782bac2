import ArgumentParser
import MeshCLI

/// `tmsubnet`: the example subnets' miners and validators, and a query relay.
struct TMSubnet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tmsubnet",
        abstract: "Example subnets for Tensormesh: an intelligence market and a storage market.",
        discussion: """
            `tmsubnet miner --forward-url URL --synapse NAME` makes any local model server a miner of any subnet. \
            Each example subnet has a miner and a validator command. Miners register their hotkey, serve an axon and publish it \
            on chain; validators register, stake, query miners, score them and set weights.
              tmsubnet predict miner --netuid 1 --wallet alice --hotkey m1 --port 8091
              tmsubnet predict validator --netuid 1 --wallet bob --hotkey v1 --stake 100
              tmsubnet storage miner --netuid 2 --wallet carol --hotkey m1 --data-dir ./chunks
              tmsubnet storage validator --netuid 2 --wallet dave --hotkey v1
            Exit codes: 0 success, 1 runtime failure, 2 usage error.
            """,
        subcommands: [ForwardMiner.self, Predict.self, StorageMarket.self, Minimal.self, Relay.self])
}

await CommandLineEntry.main(TMSubnet.self)
