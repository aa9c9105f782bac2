import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshClient
import MeshCrypto
import MeshKeystore
import MeshQuery
import MeshSockets
import MeshSubnet

struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relay queries to miners that cannot accept inbound connections.",
        discussion: "Miners connect with `--relay NODEID@IP:PORT` and publish the relay's address; validators reach them through it.")

    @Option(help: ArgumentHelp("A node's JSON-RPC endpoint (for the genesis hash).", valueName: "URL"))
    var rpcURL: String = "http://127.0.0.1:9944"
    @Option(help: ArgumentHelp("The relay's key file (its node id).", valueName: "FILE"))
    var key: String
    @Option(help: ArgumentHelp("Read the key's password from this environment variable.", valueName: "VAR"))
    var passwordEnv: String?
    @Option(help: "Port to listen on.")
    var port: UInt16 = 30444
    @Option(help: "Address to listen on.")
    var listen: String = "0.0.0.0"

    func run() async throws {
        let password = try PasswordSource.obtain(environmentVariable: self.passwordEnv, prompt: "Password for \(self.key): ", confirm: false)
        let identity: Ed25519.PrivateKey
        do { identity = try KeyFile.open(try AtomicFile.read(self.key, limit: KeyFile.maximumFileSize), password: password) } catch {
            throw CommandFailure("\(self.key): \(error.description)")
        }
        let chain = try ChainClient(url: self.rpcURL)
        var genesis: [UInt8]?
        for _ in 0..<120 {
            if let g = try? chain.genesis() { genesis = g.bytes; break }
            try await Task.sleep(nanoseconds: 1_000_000_000)
        }
        guard let genesis else { throw CommandFailure("the node at \(self.rpcURL) does not answer") }
        let loop = try EventLoop(name: "tensormesh.relay")
        let relay = QueryRelay(identity: identity, genesisHash: genesis, loop: loop)
        guard let addr = SocketAddress(numericHost: self.listen, port: self.port) else { throw ValidationError("--listen must be an IP address") }
        let bound = try await relay.start(listen: addr)
        StandardError.write("relay \(identity.publicKey.hex)@\(bound) ready\n")
        try await runUntilSignalled {
            while !Task.isCancelled { try await Task.sleep(nanoseconds: 1_000_000_000) }
        }
        relay.stop()
        loop.shutdown()
    }
}
