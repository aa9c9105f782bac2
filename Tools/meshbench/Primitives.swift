import ArgumentParser
import MeshCLI
import MeshCodec
import MeshCrypto

extension MeshBench {
    /// Throughput and per-operation cost of the primitives, beside FACTS.md's figures.
    struct Primitives: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "AEAD, SHA-256, BLAKE2b, Ed25519, X25519 and LZ4 throughput.")

        @Option(help: "Seconds per measurement.")
        var seconds: Double = 1.0

        @Flag(help: "Print JSON.")
        var json = false

        struct Row: Encodable {
            var name: String
            var value: Double
            var unit: String
            var facts: String
        }

        func run() async throws {
            var rows: [Row] = []
            let block = SecureRandom.bytes(64 * 1024)

            // AEAD in place on a 64 KiB buffer (no allocation per call).
            let aead = try ChaChaPoly(keyBytes: SecureRandom.bytes(32))
            var buffer = block
            var tag = [UInt8](repeating: 0, count: 16)
            let nonce = [UInt8](repeating: 0, count: 12)
            var (n, t) = Clock.measure(seconds: seconds) {
                buffer.withUnsafeMutableBytes { b in
                    tag.withUnsafeMutableBytes { tg in
                        nonce.withUnsafeBytes { nb in
                            try! aead.seal(nonce: nb, ad: UnsafeRawBufferPointer(start: nil, count: 0), buffer: b, tag: tg)
                        }
                    }
                }
            }
            rows.append(Row(name: "ChaCha20-Poly1305 seal (OpenSSL EVP, 64 KiB, in place)", value: Double(n * block.count) / t / 1e9, unit: "GB/s", facts: "2.1 GB/s OpenSSL; 1.05 libsodium"))

            (n, t) = Clock.measure(seconds: seconds) { _ = SHA256.hash(block) }
            rows.append(Row(name: "SHA-256 (OpenSSL EVP, 64 KiB)", value: Double(n * block.count) / t / 1e9, unit: "GB/s", facts: "1.49 GB/s OpenSSL; 0.22 libsodium"))

            (n, t) = Clock.measure(seconds: seconds) { _ = Blake2b.hash(block) }
            rows.append(Row(name: "BLAKE2b-256 (libsodium, 64 KiB)", value: Double(n * block.count) / t / 1e9, unit: "GB/s", facts: "0.68 GB/s"))

            let key = Ed25519.PrivateKey()
            let msg = SecureRandom.bytes(48)
            (n, t) = Clock.measure(seconds: seconds) { _ = key.sign(msg) }
            rows.append(Row(name: "Ed25519 sign (libsodium)", value: Double(n) / t, unit: "ops/s", facts: "20,900 /s"))

            let sig = key.sign(msg)
            (n, t) = Clock.measure(seconds: seconds) { _ = key.publicKey.isValidSignature(sig, for: msg) }
            rows.append(Row(name: "Ed25519 verify (libsodium)", value: Double(n) / t, unit: "ops/s", facts: "8,900 /s"))

            let x1 = X25519.PrivateKey()
            let x2 = X25519.PrivateKey()
            (n, t) = Clock.measure(seconds: seconds) { _ = try! x1.sharedSecret(with: x2.publicKey) }
            rows.append(Row(name: "X25519 (libsodium)", value: Double(n) / t, unit: "ops/s", facts: "24,900 /s"))

            // Block-like data with a compression ratio near 2.
            var rng = SystemSecureRNG()
            var blockLike: [UInt8] = []
            while blockLike.count < 1 << 20 {
                let word = SecureRandom.bytes(16)
                blockLike += word
                blockLike += [UInt8](repeating: word[0], count: Int.random(in: 8...24, using: &rng))
            }
            let compressed = try LZ4.compress(blockLike)
            (n, t) = Clock.measure(seconds: seconds) { _ = try! LZ4.compress(blockLike) }
            rows.append(Row(name: "LZ4 compress (1 MiB, ratio \(fmt(Double(blockLike.count) / Double(compressed.count))))", value: Double(n * blockLike.count) / t / 1e9, unit: "GB/s", facts: "0.41 GB/s (ratio 2.0)"))
            (n, t) = Clock.measure(seconds: seconds) { _ = try! LZ4.decompress(compressed, originalSize: blockLike.count, limit: blockLike.count) }
            rows.append(Row(name: "LZ4 decompress (bounded)", value: Double(n * blockLike.count) / t / 1e9, unit: "GB/s", facts: "2.0 GB/s"))

            if self.json {
                struct Output: Encodable {
                    var libraries: [String: String]
                    var primitives: [Row]
                }
                try JSONOutput.print(Output(libraries: ["libsodium": NativeLibraries.sodiumVersion, "openssl": NativeLibraries.openSSLVersion,
                                                        "lz4": NativeLibraries.lz4Version], primitives: rows))
            } else {
                StandardOutput.line("libsodium \(NativeLibraries.sodiumVersion), OpenSSL \(NativeLibraries.openSSLVersion), LZ4 \(NativeLibraries.lz4Version); one core")
                StandardOutput.line(pad("primitive", 58) + pad("measured", 18) + "FACTS.md")
                for r in rows {
                    let v = r.unit == "ops/s" ? fmt(r.value, 0) : fmt(r.value, 2)
                    StandardOutput.line(pad(r.name, 58) + pad("\(v) \(r.unit)", 18) + r.facts)
                }
            }
        }
    }
}
