import ArgumentParser
import ExampleSubnets
import Foundation
import MeshCodec
import MeshCrypto
import MeshSubnet

struct StorageMarket: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "The storage market: keep objects, prove any chunk on challenge.",
        subcommands: [StorageMiner.self, StorageValidator.self])
}

struct StorageMiner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "miner", abstract: "Store validators' and apps' objects on disk and answer challenges with Merkle proofs.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var miner: MinerOptions
    @Option(help: ArgumentHelp("Where objects are kept.", valueName: "DIR"))
    var dataDir: String = "./objects"
    @Option(help: "Storage budget in MiB.")
    var budgetMib: Int = 256

    func validate() throws {
        guard (1...(1 << 20)).contains(self.budgetMib) else { throw ValidationError("--budget-mib must be 1...\(1 << 20)") }
    }

    func run() async throws {
        let cheat = self.miner.lazy
        let ctx = try self.subnet.context(role: cheat ? "storage-miner(lazy)" : "storage-miner")
        let m = try await self.miner.miner(ctx)
        let store = cheat ? nil : try Storage.ObjectStore(directory: self.dataDir, budgetBytes: self.budgetMib << 20)
        m.serve(Storage.Store.self) { req, caller in try Storage.answer(req, caller: caller.hotkey.hex, store: store, cheat: cheat) }
        m.serve(Storage.Challenge.self) { req, caller in try Storage.answer(req, caller: caller.hotkey.hex, store: store) }
        m.serve(Storage.Retrieve.self) { req, caller in try Storage.answer(req, caller: caller.hotkey.hex, store: store) }
        try await runUntilSignalled { try await m.run() }
    }
}

struct StorageValidator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validator", abstract: "Hand miners objects, keep their Merkle roots, challenge any chunk, score proven capacity.")
    @OptionGroup var subnet: SubnetOptions
    @OptionGroup var options: ValidatorOptions
    @Option(help: "Size of each object handed to a miner, bytes.")
    var objectBytes: Int = 64 << 10
    @Option(help: "Challenges per miner per round.")
    var challenges: Int = 3
    @Option(help: ArgumentHelp("""
        Keep the commitments (each miner's objects: key, Merkle root, size) and challenge records in this file, \
        restored on the next start, so data handed out before a restart is still challenged. Default: next to \
        --state (STATE.commitments.json); none without --state.
        """, valueName: "FILE"))
    var commitments: String?

    /// Where the ledger is kept (nil: in memory only).
    var commitmentsPath: String? { self.commitments ?? self.options.state.map { $0 + ".commitments.json" } }

    func validate() throws {
        guard (1...Storage.maxObject).contains(self.objectBytes) else { throw ValidationError("--object-bytes must be 1...\(Storage.maxObject)") }
        guard (1...64).contains(self.challenges) else { throw ValidationError("--challenges must be 1...64") }
    }

    func run() async throws {
        let ctx = try self.subnet.context(role: "storage-validator")
        let v = try await self.options.validator(ctx)
        let ledger = Storage.LedgerStore(path: self.commitmentsPath, netuid: ctx.netuid, hotkey: ctx.hotkey.publicKey.hex)
        if let path = self.commitmentsPath, ledger.restored {
            ctx.log("restored \(ledger.objectCount) commitments from \(path)")
        }
        let size = self.objectBytes, rounds = self.challenges
        try await runUntilSignalled {
            try await v.run(stepSeconds: self.options.stepSeconds) { step, v in
                let miners = v.miners()
                await withTaskGroup(of: Void.self) { group in
                    for n in miners {
                        group.addTask {
                            var local = SystemRandomNumberGenerator()
                            // Challenge what the miner holds (any chunk of any object), then hand it a new object.
                            for _ in 0..<rounds {
                                guard let (challenge, commitment) = ledger.challenge(uid: n.uid, hotkey: n.hotkey.bytes, using: &local) else { break }
                                let r = await v.query(challenge, uids: [n.uid]).first
                                let passed = r?.response.map { Storage.verify($0, index: challenge.index, of: commitment) } ?? false
                                ledger.record(uid: n.uid, hotkey: n.hotkey.bytes, passed: passed)
                            }
                            guard !ledger.isFull(uid: n.uid, step: step) else { return }
                            var bytes = [UInt8](repeating: 0, count: size)
                            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &local) }
                            let data = Data(bytes)
                            let key = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &local) })
                            let expected = MerkleTree(data: bytes, chunkSize: Storage.chunkSize).root
                            let r = await v.query(Storage.Store(key: key, payload: data), uids: [n.uid]).first
                            if let root = r?.response?.root, Hex.decode(root) == expected {
                                ledger.stored(uid: n.uid, hotkey: n.hotkey.bytes, Storage.Commitment(key: key, root: expected, size: size))
                            } else if r?.status == .payloadTooLarge {
                                ledger.full(uid: n.uid, step: step)  // its budget is spent: try again later
                            }
                        }
                    }
                }
                do { try ledger.save() } catch { v.context.log("cannot save the commitments: \(error)") }
                return ledger.scores()
            }
        }
    }
}
