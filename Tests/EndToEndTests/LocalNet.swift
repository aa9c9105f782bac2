import Foundation
import MeshClient
import MeshCrypto
import MeshKeystore
import MeshTestSupport

/// A small network of node processes on loopback: a genesis with `validators` validator keys,
/// and nodes started on free ports (node i runs validator key i when it is a validator).
struct LocalNet {
    let dir: String
    let env = ["TM_PW": "pw"]
    let ports: [UInt16]
    let rpc: [UInt16]

    init(nodes: Int, validators: Int, slotMs: Int, specBasePort: UInt16? = nil, genesisArgs: [String] = []) throws {
        self.dir = TestPaths.temporaryDirectory()
        let picked = (0..<2 * nodes).map { _ in freePort() }  // distinct: each is handed out once per test process
        self.ports = Array(picked[0..<nodes])
        self.rpc = Array(picked[nodes...])
        let g = try ProcessRunner.run("tensormesh", ["genesis", "new", "--validators", String(validators), "--out", self.dir + "/spec",
                                                     "--password-env", "TM_PW", "--slot-ms", String(slotMs), "--json",
                                                     "--base-port", String(specBasePort ?? self.ports[0])] + genesisArgs, environment: self.env)
        guard g.status == 0 else { throw ProcessFailure("genesis new failed: \(g.stderr)") }
        let out = (try? JSONSerialization.jsonObject(with: Data(g.stdout.utf8))) as? [String: Any]
        self.validatorIDs = (out?["validators"] as? [String] ?? []).map { String($0.prefix(64)) }
    }

    /// Node ids of the genesis validators (validator i runs as node i).
    var validatorIDs: [String] = []

    func address(_ i: Int) -> String { "\(self.validatorIDs[i])@127.0.0.1:\(self.ports[i])" }

    /// Node `i` (a validator when `validator`), bootstrapped from node 0.
    func start(_ i: Int, validator: Bool, run: Int = 0, bootnodes: [String] = [], extra: [String] = [], prometheusPort: UInt16 = 0) throws -> BackgroundProcess {
        var args = ["run", "--chain", self.dir + "/spec/chain-spec.json", "--base-path", self.dir + "/n\(i)", "--port", String(self.ports[i]),
                    "--listen-addr", "127.0.0.1", "--rpc-port", String(self.rpc[i]), "--prometheus-port", String(prometheusPort), "--name", "n\(i)",
                    "--log", "debug"]
        for b in bootnodes { args += ["--bootnodes", b] }
        args += extra
        if validator { args += ["--key", self.dir + "/spec/validator-\(i).key", "--password-env", "TM_PW", "--validator"] }
        return try BackgroundProcess("tensormesh", args, environment: self.env, log: self.dir + "/n\(i)-\(run).log")
    }

    func client(_ i: Int) throws -> ChainClient { try ChainClient(url: "http://127.0.0.1:\(self.rpc[i])") }

    /// The genesis sudo key (also the owner hotkey of genesis subnets).
    func sudoKey() throws -> Ed25519.PrivateKey {
        try KeyFile.open(try AtomicFile.read(self.dir + "/spec/sudo.key", limit: KeyFile.maximumFileSize),
                         password: SecureBytes(copying: Array("pw".utf8)))
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { self.description = d }
}
