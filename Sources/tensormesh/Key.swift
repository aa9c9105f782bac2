import ArgumentParser
import MeshCLI
import MeshCodec
import MeshCrypto
import MeshKeystore

extension Tensormesh {
    /// `tensormesh key …`: create and inspect encrypted Ed25519 key files.
    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create and inspect encrypted Ed25519 key files (node identities, coldkeys, hotkeys).",
            subcommands: [Generate.self, Inspect.self])
    }
}

extension Tensormesh.Key {
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a new Ed25519 key, encrypted at rest with a password.",
            discussion: """
                The file is JSON: Argon2id (random salt) derives the key that seals the secret with \
                ChaCha20-Poly1305. It is written with mode 0600, atomically (temporary file, fsync, rename).
                """)

        @Option(name: .long, help: ArgumentHelp("Where to write the key file.", valueName: "FILE"))
        var out: String

        @Option(name: .long, help: ArgumentHelp("Read the password from this environment variable instead of prompting.", valueName: "VAR"))
        var passwordEnv: String?

        @Flag(name: .long, help: "Replace FILE if it already exists.")
        var force = false

        @Flag(name: .long, help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let password = try PasswordSource.obtain(
                environmentVariable: self.passwordEnv, prompt: "Password for the new key: ", confirm: true)
            let key = Ed25519.PrivateKey()
            do {
                let bytes = try KeyFile.seal(key, password: password)
                try AtomicFile.write(bytes, to: self.out, overwrite: self.force)
            } catch let error as KeystoreError {
                throw CommandFailure(error.description)
            }
            let pk = key.publicKey.hex
            if self.json {
                try JSONOutput.print(KeyInfo(file: self.out, publicKey: pk, nodeId: pk))
            } else {
                StandardOutput.line("Key written to \(self.out) (mode 0600)")
                StandardOutput.line("Public key: \(pk)")
                StandardOutput.line("Node id:    \(pk)")
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt a key file and print its public key and node id (never the secret).")

        @Argument(help: ArgumentHelp("The key file.", valueName: "FILE"))
        var file: String

        @Option(name: .long, help: ArgumentHelp("Read the password from this environment variable instead of prompting.", valueName: "VAR"))
        var passwordEnv: String?

        @Flag(name: .long, help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let key: Ed25519.PrivateKey
            do {
                let bytes = try AtomicFile.read(self.file, limit: KeyFile.maximumFileSize)
                // Fail on a damaged file before asking for a password.
                _ = try KeyFile.publicKey(of: bytes)
                let password = try PasswordSource.obtain(
                    environmentVariable: self.passwordEnv, prompt: "Password for \(self.file): ", confirm: false)
                key = try KeyFile.open(bytes, password: password)
            } catch let error as KeystoreError {
                throw CommandFailure(error.description)
            }
            let pk = key.publicKey.hex
            if self.json {
                try JSONOutput.print(KeyInfo(file: self.file, publicKey: pk, nodeId: pk))
            } else {
                StandardOutput.line("Public key: \(pk)")
                StandardOutput.line("Node id:    \(pk)")
            }
        }
    }
}

struct KeyInfo: Encodable {
    var file: String
    var publicKey: String
    var nodeId: String
}
