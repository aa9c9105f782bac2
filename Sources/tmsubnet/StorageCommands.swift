import ArgumentParser
import ExampleSubnets
import Foundation
import MeshCrypto
import MeshSubnet

struct StorageMarket: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "The storage market: keep chunks, prove it on challenge.",
        subcommands: [StorageMiner.self, StorageValidator.self])
}

struct StorageMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "miner", abstract: "Store validators' chunks on disk and answer challenges.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions
    @Option(help: ArgumentHelp("Where chunks are kept.", valueName: "DIR"))
    var dataDir: String = "./chunks"
    @Option(help: "Storage budget in MiB.")
    var budgetMib: Int = 256

    func validate() throws {
        guard (1...(1 << 20)).contains(self.budgetMib) else { throw ValidationError("--budget-mib must be 1...\(1 << 20)") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: self.miner.lazy ? "storage-miner(lazy)" : "storage-miner")
        let m = try await self.miner.miner(ctx)
        let cheat = self.miner.lazy
        let store = cheat ? nil : try Storage.ChunkStore(directory: self.dataDir, budgetBytes: self.budgetMib << 20)
        m.serve(Storage.Store.self) { req, caller in
            if let store { try store.put(caller: caller.hotkey.hex, id: req.id, data: req.data) }
            return .init(stored: true)
        }
        m.serve(Storage.Challenge.self) { req, caller in
            try Storage.answer(req, caller: caller.hotkey.hex, store: store, cheat: cheat)
        }
        try await runUntilSignalled { try await m.run() }
    }
}

struct StorageValidator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validator", abstract: "Hand miners chunks, challenge them, score the proofs.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var options: ValidatorOptions
    @Option(help: "Chunk size in bytes.")
    var chunkBytes: Int = 4096

    func validate() throws {
        guard (1...Storage.maxChunk).contains(self.chunkBytes) else { throw ValidationError("--chunk-bytes must be 1...\(Storage.maxChunk)") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: "storage-validator")
        let v = try await self.options.validator(ctx)
        let ledger = LedgerBox()
        let size = self.chunkBytes
        let timeoutMs = self.options.timeout * 1000
        try await runUntilSignalled {
            try await v.run(stepSeconds: self.options.stepSeconds) { step, v in
                var scores: [UInt16: Double] = [:]
                let miners = v.miners()
                // Challenge what each miner holds, then hand each a new chunk.
                var rng = SystemRandomNumberGenerator()
                for n in miners {
                    guard let (challenge, expected) = ledger.challenge(uid: n.uid, hotkey: n.hotkey.bytes, using: &rng) else { continue }
                    let r = await v.query(challenge, uids: [n.uid]).first
                    scores[n.uid] = Storage.score(correct: r?.response?.proof == expected, latencyMs: r?.latencyMs ?? timeoutMs, timeoutMs: timeoutMs)
                }
                for n in miners {
                    let id = String(format: "%08x%08x", step, UInt32.random(in: 0...UInt32.max))
                    let data = Data((0..<size).map { _ in UInt8.random(in: 0...255) })
                    let r = await v.query(Storage.Store(id: id, data: data), uids: [n.uid]).first
                    if r?.response?.stored == true { ledger.stored(uid: n.uid, hotkey: n.hotkey.bytes, id: id, data: data) } else if r != nil { scores[n.uid] = 0 }
                }
                return scores
            }
        }
    }
}

final class LedgerBox: @unchecked Sendable {
    // Safety: every access holds `lock`.
    let lock = NSLock()
    var ledger = Storage.Ledger()

    func stored(uid: UInt16, hotkey: [UInt8], id: String, data: Data) {
        self.lock.withLock { self.ledger.stored(uid: uid, hotkey: hotkey, id: id, data: data) }
    }

    func challenge(uid: UInt16, hotkey: [UInt8], using rng: inout SystemRandomNumberGenerator) -> (Storage.Challenge, Data)? {
        self.lock.withLock { self.ledger.challenge(uid: uid, hotkey: hotkey, using: &rng) }
    }
}
