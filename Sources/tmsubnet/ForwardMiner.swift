import ArgumentParser
import Foundation
import MeshSubnet

/// `tmsubnet miner --forward-url …`: any model server as a miner of any subnet.
struct ForwardMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miner", abstract: "Serve synapses from a local model server (any language): each verified request is POSTed to it.",
        discussion: """
            Each admitted, verified request body is POSTed to --forward-url (`{synapse}` in the path is replaced by the \
            synapse's name) with the headers X-Tensormesh-Synapse, X-Tensormesh-Netuid and X-Tensormesh-Caller; a 200 \
            answer is the miner's answer, streamed when the server answers chunked or with text/event-stream.
              tmsubnet miner --netuid 1 --wallet alice --hotkey m1 --forward-url http://127.0.0.1:8000/forecast --synapse forecast
            """)
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions
    @Option(help: ArgumentHelp("The model server: http://HOST:PORT/PATH (HOST an IPv4 address or localhost).", valueName: "URL"))
    var forwardURL: String
    @Option(name: .customLong("synapse"), help: ArgumentHelp("A synapse to serve (repeatable).", valueName: "NAME"))
    var synapses: [String] = []
    @Option(name: .customLong("example"), help: ArgumentHelp("An example request (JSON) for the synapse at the same position, shown by the apps gateway.", valueName: "JSON"))
    var examples: [String] = []
    @Option(help: ArgumentHelp("How the apps gateway combines miners' answers: first, best or aggregate.", valueName: "POLICY"))
    var policy: String = "first"
    @Option(help: "Longest exchange with the model server, seconds (a request's deadline may end it sooner).")
    var forwardTimeout: Double = 30
    @Option(help: "Largest request body forwarded, KiB.")
    var maxRequestKib: Int = 1024
    @Option(help: "Largest answer taken from the model server, KiB.")
    var maxResponseKib: Int = 8192

    func validate() throws {
        _ = try self.forwarder()
        guard !self.synapses.isEmpty else { throw ValidationError("name at least one --synapse to serve") }
        for s in self.synapses where s.isEmpty || s.utf8.count > 64 || s == SynapseCatalog.synapseName {
            throw ValidationError("--synapse \(s): 1 to 64 bytes, not \(SynapseCatalog.synapseName)")
        }
        guard self.examples.count <= self.synapses.count else { throw ValidationError("more --example than --synapse") }
        for e in self.examples where (try? JSONSerialization.jsonObject(with: Data(e.utf8))) == nil {
            throw ValidationError("--example \(e.prefix(40)): not JSON")
        }
        guard AnswerPolicy(rawValue: self.policy) != nil else { throw ValidationError("--policy must be first, best or aggregate") }
        guard self.forwardTimeout.isFinite, self.forwardTimeout > 0, self.forwardTimeout <= 3600 else { throw ValidationError("--forward-timeout must be in (0, 3600]") }
        guard (1...(1 << 20)).contains(self.maxRequestKib), (1...(1 << 20)).contains(self.maxResponseKib) else {
            throw ValidationError("--max-request-kib and --max-response-kib must be 1...\(1 << 20)")
        }
    }

    func forwarder() throws -> HTTPForwarder {
        do {
            var f = try HTTPForwarder(url: self.forwardURL)
            f.timeoutSeconds = self.forwardTimeout
            f.maxRequestBytes = self.maxRequestKib << 10
            f.maxResponseBytes = self.maxResponseKib << 10
            return f
        } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: "forward-miner")
        var limits = AxonLimits()
        limits.maxBodyBytes = self.maxRequestKib << 10
        limits.maxResponseBytes = self.maxResponseKib << 10
        let m = try await self.miner.miner(ctx, limits: limits)
        let f = try self.forwarder()
        for (i, s) in self.synapses.enumerated() {
            m.forward(synapse: s, to: f, example: i < self.examples.count ? self.examples[i] : nil, policy: AnswerPolicy(rawValue: self.policy) ?? .first)
        }
        ctx.log("forwarding \(self.synapses.joined(separator: ", ")) to \(self.forwardURL)")
        try await runUntilSignalled { try await m.run() }
    }
}
