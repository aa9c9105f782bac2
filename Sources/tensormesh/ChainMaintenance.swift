import ArgumentParser
import Foundation
import MeshChain
import MeshCLI
import MeshCodec
import MeshNode

/// Where a node keeps its state, as `run` decides it.
struct BasePathOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The node's base path (default ~/.tensormesh/node).", valueName: "DIR"))
    var basePath: String?

    var path: String { self.basePath ?? FileManager.default.homeDirectoryForCurrentUser.path + "/.tensormesh/node" }
    var database: String { self.path + "/chain.db" }
}

extension Tensormesh {
    /// `tensormesh purge-chain`: deletes the chain database, keeping the node's identity.
    struct PurgeChain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "purge-chain",
            abstract: "Delete the chain database under a base path (the node resyncs); the network key stays unless asked.",
            discussion: """
                Removes chain.db and its journal files. The node's network key (network/node.key) is kept, so the node \
                keeps its identity and peers know it again; --include-network-key deletes it too. Stop the node first.
                """)
        @OptionGroup var base: BasePathOptions
        @Flag(help: "Also delete the network key (the node gets a new identity).")
        var includeNetworkKey = false
        @Flag(name: [.short, .long], help: "Do not ask for confirmation.")
        var yes = false
        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            let fm = FileManager.default
            var targets = ["chain.db", "chain.db-wal", "chain.db-shm", "chain.db-journal"].map { self.base.path + "/" + $0 }.filter { fm.fileExists(atPath: $0) }
            if self.includeNetworkKey && fm.fileExists(atPath: self.base.path + "/network") { targets.append(self.base.path + "/network") }
            if targets.isEmpty {
                if self.json { StandardOutput.line(JSONValue.object([("removed", .array([])), ("basePath", .string(self.base.path))]).serialized()) } else {
                    StandardOutput.line("Nothing to purge under \(self.base.path).")
                }
                return
            }
            if Self.nodeRunning(on: self.base.database) { throw CommandFailure("a node is using \(self.base.database); stop it first") }
            if !self.yes && !self.json {
                guard isatty(0) == 1 else { throw CommandFailure.usage("purge-chain deletes \(targets.joined(separator: ", ")); add --yes to confirm") }
                StandardError.write("Delete \(targets.joined(separator: ", "))? [y/N] ")
                guard let a = readLine(), ["y", "yes"].contains(a.lowercased()) else { throw CommandFailure("cancelled") }
            }
            for t in targets {
                do { try fm.removeItem(atPath: t) } catch { throw CommandFailure("cannot remove \(t): \(error.localizedDescription)") }
            }
            if self.json {
                StandardOutput.line(JSONValue.object([("removed", .array(targets.map { .string($0) })), ("basePath", .string(self.base.path)),
                                                      ("networkKeyKept", .bool(!self.includeNetworkKey))]).serialized(pretty: true))
            } else {
                StandardOutput.line("Removed \(targets.joined(separator: ", "))\(self.includeNetworkKey ? "" : "; the network key is kept").")
            }
        }

        /// Whether another process holds the database open (a node writes its WAL).
        static func nodeRunning(on database: String) -> Bool {
            let target = URL(fileURLWithPath: database).resolvingSymlinksInPath().path
            guard let procs = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return false }
            for p in procs where Int32(p) != nil && Int32(p) != getpid() {
                guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/fd") else { continue }
                for fd in fds where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/fd/\(fd)")) == target { return true }
            }
            return false
        }
    }

    /// `tensormesh export-blocks`: the canonical chain to a binary file.
    struct ExportBlocks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-blocks", abstract: "Write the canonical blocks and their justifications to a binary file (docs/chain-archive.md).")
        @OptionGroup var base: BasePathOptions
        @Option(help: ArgumentHelp("The file to write (- for standard output).", valueName: "FILE"))
        var out: String
        @Option(help: "First block (default 0).")
        var from: UInt64 = 0
        @Option(help: "Last block (default: the best stored).")
        var to: UInt64?

        func run() async throws {
            let handle: FileHandle
            if self.out == "-" { handle = FileHandle.standardOutput } else {
                guard FileManager.default.createFile(atPath: self.out, contents: nil) else { throw CommandFailure("cannot create \(self.out)") }
                guard let h = FileHandle(forWritingAtPath: self.out) else { throw CommandFailure("cannot write \(self.out)") }
                handle = h
            }
            let started = Date()
            do {
                let n = try ChainArchive.export(databasePath: self.base.database, to: handle, from: self.from, to: self.to) { done, total in
                    StandardError.write("export-blocks: \(done)\(total.map { " of \($0)" } ?? "") blocks, \(Int(Double(done) / max(0.001, Date().timeIntervalSince(started)))) blocks/s\n")
                }
                try handle.close()
                StandardError.write("export-blocks: wrote \(n) blocks to \(self.out)\n")
            } catch let e as ChainArchive.Failure {
                throw CommandFailure(e.description)
            }
        }
    }

    /// `tensormesh import-blocks`: a chain rebuilt from an archive, every block checked.
    struct ImportBlocks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-blocks",
            abstract: "Import blocks from an export-blocks file: each block executed and checked, each justification verified. Stop the node first.")
        @OptionGroup var base: BasePathOptions
        @Option(help: ArgumentHelp("The chain spec the blocks belong to (or \"dev\" for the spec under the base path).", valueName: "FILE"))
        var chain: String
        @Option(name: .customLong("in"), help: ArgumentHelp("The archive to read (- for standard input).", valueName: "FILE"))
        var input: String

        func run() async throws {
            let spec = self.chain == "dev" ? try Tensormesh.Run.loadSpec(self.base.path + "/dev-spec.json") : try Tensormesh.Run.loadSpec(self.chain)
            if PurgeChain.nodeRunning(on: self.base.database) { throw CommandFailure("a node is using \(self.base.database); stop it first") }
            let handle: FileHandle
            if self.input == "-" { handle = FileHandle.standardInput } else {
                guard let h = FileHandle(forReadingAtPath: self.input) else { throw CommandFailure("cannot read \(self.input)") }
                handle = h
            }
            try FileManager.default.createDirectory(atPath: self.base.path, withIntermediateDirectories: true)
            let started = Date()
            do {
                let (n, finalized) = try ChainArchive.importBlocks(databasePath: self.base.database, spec: spec, from: handle) { done, _ in
                    StandardError.write("import-blocks: \(done) blocks, \(Int(Double(done) / max(0.001, Date().timeIntervalSince(started)))) blocks/s\n")
                }
                StandardError.write("import-blocks: imported \(n) blocks; finalized #\(finalized)\n")
            } catch let e as ChainArchive.Failure {
                throw CommandFailure(e.description)
            }
        }
    }
}
