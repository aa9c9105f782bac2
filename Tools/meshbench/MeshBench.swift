import ArgumentParser

/// `meshbench`: release-build benchmarks. Every figure is printed next to the anchor the
/// issue names, measured in the same run where the anchor is measurable here.
struct MeshBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshbench",
        abstract: "Benchmarks for Tensormesh (run a release build: swift build -c release).",
        subcommands: [Primitives.self, Epoch.self, Channel.self, ChannelServer.self, Query.self, QueryServer.self, Relay.self, ChainImport.self, Sync.self])
}
