import Foundation
import MeshClient
import MeshTestSupport
import Testing

/// purge-chain, export-blocks and import-blocks on a real node's database.
@Suite("Chain maintenance (processes)", .serialized)
struct ChainMaintenanceTests {
    @Test("export-blocks then import-blocks rebuilds the chain with its finality; a damaged archive is refused; purge-chain keeps the network key")
    func exportImportPurge() throws {
        let net = try LocalNet(nodes: 1, validators: 1, slotMs: 200)
        let node = try net.start(0, validator: true)
        let client = try net.client(0)
        #expect(try client.waitUntil(timeout: 60) { try client.finalized() >= 10 }, "no finality: \(node.output.suffix(1500))")
        let base = net.dir + "/n0"
        // A node is running on the database: purge refuses.
        let busy = try ProcessRunner.run("tensormesh", ["purge-chain", "--base-path", base, "--yes"])
        #expect(busy.status == 1 && busy.stderr.contains("stop it first"), "\(busy.stderr)")
        // Export while it runs (WAL readers), then stop it.
        let archive = net.dir + "/chain.blocks"
        let export = try ProcessRunner.run("tensormesh", ["export-blocks", "--base-path", base, "--out", archive])
        #expect(export.status == 0, "\(export.stderr)")
        node.stop()
        let written = Int(export.stderr.split(separator: "\n").last { $0.contains("wrote") }?.split(separator: " ").dropFirst(2).first ?? "") ?? 0
        #expect(written >= 11, "\(export.stderr)")

        let fresh = net.dir + "/imported"
        let imp = try ProcessRunner.run("tensormesh", ["import-blocks", "--base-path", fresh, "--chain", net.dir + "/spec/chain-spec.json", "--in", archive])
        #expect(imp.status == 0, "\(imp.stderr)")
        #expect(imp.stderr.contains("imported \(written - 1) blocks"), "\(imp.stderr)")  // all but genesis
        let finalizedLine = imp.stderr.split(separator: "\n").last { $0.contains("finalized #") } ?? ""
        let finalized = Int(finalizedLine.split(separator: "#").last ?? "") ?? 0
        #expect(finalized >= 10, "justifications finalize the imported chain: \(imp.stderr)")
        // Importing again changes nothing; another chain's archive is refused.
        let again = try ProcessRunner.run("tensormesh", ["import-blocks", "--base-path", fresh, "--chain", net.dir + "/spec/chain-spec.json", "--in", archive])
        #expect(again.status == 0 && again.stderr.contains("imported 0 blocks"), "\(again.stderr)")
        let other = try LocalNet(nodes: 1, validators: 1, slotMs: 200)
        let wrong = try ProcessRunner.run("tensormesh", ["import-blocks", "--base-path", net.dir + "/wrong", "--chain", other.dir + "/spec/chain-spec.json", "--in", archive])
        #expect(wrong.status == 1 && wrong.stderr.contains("another chain"), "\(wrong.stderr)")
        // A byte changed inside a block (its signature or content no longer holds), or the file cut short.
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: archive)))
        var bytes = original
        bytes[bytes.count / 2] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: net.dir + "/damaged.blocks"))
        let damaged = try ProcessRunner.run("tensormesh", ["import-blocks", "--base-path", net.dir + "/damaged", "--chain", net.dir + "/spec/chain-spec.json",
                                                           "--in", net.dir + "/damaged.blocks"])
        #expect(damaged.status == 1, "\(damaged.stderr)")
        try Data(original.prefix(original.count - 40)).write(to: URL(fileURLWithPath: net.dir + "/cut.blocks"))
        let cut = try ProcessRunner.run("tensormesh", ["import-blocks", "--base-path", net.dir + "/cut", "--chain", net.dir + "/spec/chain-spec.json",
                                                       "--in", net.dir + "/cut.blocks"])
        #expect(cut.status == 1 && cut.stderr.contains("truncated"), "\(cut.stderr)")

        // purge-chain: the database goes, the network key stays unless asked.
        try FileManager.default.createDirectory(atPath: fresh + "/network", withIntermediateDirectories: true)
        try Data("key".utf8).write(to: URL(fileURLWithPath: fresh + "/network/node.key"))
        let purge = try ProcessRunner.run("tensormesh", ["purge-chain", "--base-path", fresh, "--yes", "--json"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/chain.db") && FileManager.default.fileExists(atPath: fresh + "/network/node.key"))
        let all = try ProcessRunner.run("tensormesh", ["purge-chain", "--base-path", fresh, "--yes", "--include-network-key"])
        #expect(all.status == 0 && !FileManager.default.fileExists(atPath: fresh + "/network"), "\(all.stderr)")
        try? FileManager.default.removeItem(atPath: net.dir)
        try? FileManager.default.removeItem(atPath: other.dir)
    }
}
