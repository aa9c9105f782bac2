import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshIncentive
import MeshKeystore
import MeshNode
import MeshNodeCore

extension Tensormesh {
    /// `tensormesh genesis …`
    struct Genesis: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create chain specs for private networks.", subcommands: [New.self])
    }
}

extension Tensormesh.Genesis {
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a genesis (chain spec) and the validators' keys for a private network.",
            discussion: """
                Writes OUT/chain-spec.json, OUT/validator-N.key (N = 0..validators-1) and OUT/sudo.key, each key \
                encrypted with the password from --password-env (or a prompt). Validator N is listed as a bootnode \
                at HOST:(base-port + N), so nodes started with those ports find each other.
                """)

        @Option(help: "Number of validators.")
        var validators: Int = 4
        @Option(help: ArgumentHelp("Output directory.", valueName: "DIR"))
        var out: String = "."
        @Option(help: ArgumentHelp("Encrypt the keys with the password in this environment variable.", valueName: "VAR"))
        var passwordEnv: String?
        @Option(help: "Chain name.")
        var name: String = "Tensormesh Private"
        @Option(help: "Chain id.")
        var id: String = "tensormesh-private"
        @Option(help: "Slot duration in milliseconds.")
        var slotMs: UInt64 = 2000
        @Option(help: "Example subnets to create at genesis (owned by the sudo key).")
        var subnets: Int = 0
        @Option(help: ArgumentHelp("Names of the genesis subnets, in netuid order (repeatable).", valueName: "NAME"))
        var subnetName: [String] = []
        @Option(help: "Subnet weights rate limit in blocks.")
        var weightsRateLimit: UInt64 = 5
        @Option(help: "Subnet tempo in blocks.")
        var tempo: UInt64 = 30
        @Option(help: ArgumentHelp("TAO in each genesis subnet's pool (its alpha reserve starts at price 1).", valueName: "TAO"))
        var poolTao: String = "1000"
        @Option(help: ArgumentHelp("Fund an account: PUBKEY:TAO (repeatable).", valueName: "PUBKEY:TAO"))
        var endow: [String] = []
        @Option(help: "Host for the bootnode addresses.")
        var host: String = "127.0.0.1"
        @Option(help: "p2p port of validator 0; validator N uses base-port + N.")
        var basePort: UInt16 = 30333
        @Option(help: "Genesis time, ms since the epoch (default: now).")
        var timestamp: UInt64?
        @Flag(help: "Replace existing files.")
        var force = false
        @Flag(help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            guard (1...64).contains(self.validators) else { throw ValidationError("--validators must be 1...64") }
            guard Int(self.basePort) + self.validators - 1 <= Int(UInt16.max) else {
                throw ValidationError("--base-port \(self.basePort) leaves no room for \(self.validators) validators (ports base-port ... base-port + validators - 1 must be at most 65535)")
            }
            guard self.slotMs >= 100 else { throw ValidationError("--slot-ms must be at least 100") }
            guard (0...16).contains(self.subnets) else { throw ValidationError("--subnets must be 0...16") }
            guard let pool = Token.parse(self.poolTao), pool >= Token.tao else { throw ValidationError("--pool-tao must be at least 1 TAO") }
            for e in self.endow {
                let parts = e.split(separator: ":")
                guard parts.count == 2, AccountID(address: String(parts[0])) != nil, Token.parse(String(parts[1])) != nil else {
                    throw ValidationError("--endow \(e): expected ADDRESS:TAO with an SS58 address or a 64-hex-digit key")
                }
            }
        }

        func run() async throws {
            try FileManager.default.createDirectory(atPath: self.out, withIntermediateDirectories: true)
            let password = try PasswordSource.obtain(environmentVariable: self.passwordEnv, prompt: "Password for the new keys: ", confirm: true)
            func write(_ key: Ed25519.PrivateKey, _ file: String) throws {
                do { try AtomicFile.write(try KeyFile.seal(key, password: password), to: self.out + "/" + file, overwrite: self.force) } catch let e as KeystoreError {
                    throw CommandFailure(e.description)
                }
            }
            var p = ChainParams()
            p.slotDurationMs = self.slotMs
            p.minLockCost = 10 * Token.tao
            var spec = ChainSpec(name: self.name, id: self.id, params: p)
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            spec.genesisTimestamp = ((self.timestamp ?? now) / self.slotMs) * self.slotMs
            let sudo = Ed25519.PrivateKey()
            try write(sudo, "sudo.key")
            spec.sudo = sudo.publicKey
            spec.balances = [(sudo.publicKey, 10_000_000 * Token.tao)]
            var addresses: [String] = []
            for i in 0..<self.validators {
                let k = Ed25519.PrivateKey()
                try write(k, "validator-\(i).key")
                spec.validators.append(ChainSpec.Validator(hotkey: k.publicKey, coldkey: k.publicKey, stake: 1000 * Token.tao))
                spec.balances.append((k.publicKey, 1000 * Token.tao))
                guard let offset = UInt16(exactly: i), case (let port, false) = self.basePort.addingReportingOverflow(offset) else {
                    throw CommandFailure.usage("--base-port \(self.basePort) + \(i) is not a port")
                }
                addresses.append(NodeAddress(nodeId: k.publicKey, host: self.host, port: port).description)
            }
            spec.bootnodes = addresses
            for e in self.endow {
                let parts = e.split(separator: ":")
                spec.balances.append((AccountID(address: String(parts[0]))!, Token.parse(String(parts[1]))!))
            }
            for i in 0..<self.subnets {
                var sp = SubnetParams()
                _ = sp.set(.tempo, self.tempo)
                _ = sp.set(.weightsRateLimit, self.weightsRateLimit)
                _ = sp.set(.immunityPeriod, 100)
                _ = sp.set(.minBurn, Token.tao / 10)
                _ = sp.set(.maxAllowedValidators, 16)
                spec.subnets.append(ChainSpec.SubnetSpec(netuid: UInt16(i + 1), name: i < self.subnetName.count ? self.subnetName[i] : "subnet \(i + 1)", owner: sudo.publicKey,
                                                         ownerHotkey: sudo.publicKey, params: sp, poolTao: Token.parse(self.poolTao)))
            }
            let specPath = self.out + "/chain-spec.json"
            if !self.force && FileManager.default.fileExists(atPath: specPath) { throw CommandFailure("\(specPath) already exists (use --force)") }
            try Data(spec.json().serialized(pretty: true).utf8).write(to: URL(fileURLWithPath: specPath))
            let genesisHash = spec.genesis().0.hash
            if self.json {
                StandardOutput.line(JSONValue.object([
                    ("chainSpec", .string(specPath)), ("genesis", .string(genesisHash.hex)), ("sudo", .string(sudo.publicKey.hex)),
                    ("validators", .array(addresses.map { .string($0) })),
                ]).serialized(pretty: true))
            } else {
                StandardOutput.line("Wrote \(specPath) (genesis \(genesisHash.hex))")
                StandardOutput.line("Sudo key: \(self.out)/sudo.key (\(sudo.publicKey.hex))")
                for (i, a) in addresses.enumerated() { StandardOutput.line("Validator \(i): \(self.out)/validator-\(i).key  \(a)") }
                StandardOutput.line("Start validator N: tensormesh run --chain \(specPath) --key \(self.out)/validator-N.key --validator --port \(self.basePort)+N")
            }
        }
    }
}
