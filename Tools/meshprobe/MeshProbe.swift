import ArgumentParser

/// `meshprobe`: diagnostics for Tensormesh peers.
struct MeshProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshprobe",
        abstract: "Probe Tensormesh peers: discovery ping, secure-channel handshake, peers, head, crawl.",
        version: "0.1.0",
        subcommands: [])
}
