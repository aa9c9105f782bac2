import Foundation
import MeshChain
import MeshCodec
import MeshCrypto
import MeshFinality
import MeshNodeCore
import MeshStore

/// `tensormesh export-blocks` / `import-blocks`: the canonical chain in a binary file, and a
/// chain rebuilt from one with every block executed and every justification verified, as if
/// the blocks had come from peers.
///
/// Format (version 1): the 8 ASCII bytes `TMBLOCKS`, a u16 version, the 32-byte genesis hash;
/// then records, each a kind byte — 1 a block, 2 the justification (a finality commit) of the
/// block before it — a varint length and that many bytes (the block's or commit's own
/// encoding); a kind byte 0 ends the file. Lengths are bounded by the largest block.
public enum ChainArchive {
    static let magic = Array("TMBLOCKS".utf8)
    static let version: UInt16 = 1

    /// Why an export or import stopped.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { self.description = d }
    }

    /// Progress: blocks done, of how many (nil when not known).
    public typealias Progress = (_ done: UInt64, _ total: UInt64?) -> Void

    /// Writes canonical blocks `from...to` (default: genesis to the best stored block) and their
    /// justifications from the store at `databasePath` (a node may be running on it: SQLite's
    /// WAL lets a reader in). Returns the number of blocks written.
    public static func export(databasePath: String, to out: FileHandle, from: UInt64 = 0, to: UInt64? = nil,
                              progress: Progress = { _, _ in }) throws -> UInt64 {
        guard FileManager.default.fileExists(atPath: databasePath) else { throw Failure("no chain database at \(databasePath)") }
        let store = try SQLiteStore(path: databasePath)
        defer { store.close() }
        guard let genesis = try store.canonicalHash(0) else { throw Failure("the database holds no chain") }
        var last = from
        while try store.canonicalHash(last + 1) != nil, to.map({ last + 1 <= $0 }) ?? true { last += 1 }
        guard try store.canonicalHash(from) != nil else { throw Failure("no block #\(from) in the database") }
        var w = ByteWriter(capacity: 64)
        w.raw(Self.magic)
        w.u16(Self.version)
        w.raw(genesis.bytes)
        try out.write(contentsOf: w.bytes)
        var written: UInt64 = 0
        var buffer = ByteWriter(capacity: 1 << 20)
        for n in from...last {
            guard let hash = try store.canonicalHash(n), let block = try store.block(hash) else { throw Failure("block #\(n) is missing from the database") }
            Self.record(1, block.encoded, into: &buffer)
            if let j = try store.justification(n) { Self.record(2, j, into: &buffer) }
            written += 1
            if buffer.bytes.count >= 1 << 20 {
                try out.write(contentsOf: buffer.bytes)
                buffer = ByteWriter(capacity: 1 << 20)
            }
            if written % 1000 == 0 { progress(written, last - from + 1) }
        }
        buffer.u8(0)
        try out.write(contentsOf: buffer.bytes)
        progress(written, last - from + 1)
        return written
    }

    static func record(_ kind: UInt8, _ bytes: [UInt8], into w: inout ByteWriter) {
        w.u8(kind)
        w.varint(bytes.count)
        w.raw(bytes)
    }

    /// Reads an archive into the chain under `databasePath` (created when missing): each
    /// block is imported (signature, parent, execution and state root checked; blocks the
    /// chain holds already are skipped), each justification is checked by the finality
    /// gadget against the validator set of its time and finalizes its block. Returns the
    /// blocks imported and the finalized height.
    public static func importBlocks(databasePath: String, spec: ChainSpec, from input: FileHandle,
                                    progress: Progress = { _, _ in }) throws -> (imported: UInt64, finalized: UInt64) {
        var reader = StreamReader(input)
        guard try reader.take(8) == Self.magic else { throw Failure("not a block archive (no TMBLOCKS header)") }
        let versionBytes = try reader.take(2)
        guard UInt16(versionBytes[0]) << 8 | UInt16(versionBytes[1]) == Self.version else { throw Failure("archive version \(versionBytes) is not 1") }
        let store = try SQLiteStore(path: databasePath)
        defer { store.close() }
        let chain = try ChainCore(spec: spec, store: store)
        chain.context.verifyEquivocation = { bytes, authorities in Equivocation.verify(bytes, authorities: authorities) }
        guard try reader.take(32) == chain.genesisHash.bytes else {
            throw Failure("the archive is of another chain (its genesis is not \(chain.genesisHash.hex))")
        }
        let env = ChainFinalityEnvironment(chain: chain)
        let setInfo = try store.meta("grandpa.set").flatMap { try? FinalitySetInfo.decode($0) }
        let fin = chain.finalized
        let finality = FinalityCore(config: FinalityConfig(), key: nil, authorities: setInfo?.authorities ?? chain.finalizedState.authorities,
                                    setId: setInfo?.setId ?? 0, finalized: VoteTarget(hash: fin.hash, number: fin.number), persisted: nil,
                                    now: .zero, env: env, signatures: SignatureCache())
        for hash in chain.ancestry(of: chain.best.hash, downTo: fin.number).reversed() {
            if let h = chain.header(hash) { try Self.apply(finality.blockImported(hash: hash, number: h.number, digest: h.digest, now: .zero), chain: chain, store: store) }
        }
        var imported: UInt64 = 0
        var seen: UInt64 = 0
        var lastBlock: Block?
        while true {
            let kind = try reader.take(1)[0]
            if kind == 0 { break }
            let length = try reader.varint()
            guard length <= UInt64(Block.maxSize) else { throw Failure("a record of \(length) bytes (more than any block)") }
            let bytes = try reader.take(Int(length))
            switch kind {
            case 1:
                let block: Block
                do { block = try Block.decode(bytes) } catch { throw Failure("block \(seen + 1) of the archive does not decode: \(error)") }
                seen += 1
                lastBlock = block
                if chain.contains(block.hash) { continue }
                do { _ = try chain.importBlock(block, now: nil) } catch {
                    throw Failure("block #\(block.number) (\(block.hash.hex.prefix(18))) is refused: \(error)")
                }
                imported += 1
                try Self.apply(finality.blockImported(hash: block.hash, number: block.number, digest: block.header.digest, now: .zero), chain: chain, store: store)
                if imported % 1000 == 0 { progress(imported, nil) }
            case 2:
                guard let block = lastBlock else { throw Failure("a justification before any block") }
                let commit: Commit
                do { commit = try Commit.decode(bytes) } catch { throw Failure("the justification of #\(block.number) does not decode: \(error)") }
                guard commit.target.hash == block.hash else { throw Failure("the justification after #\(block.number) is for another block") }
                guard block.number > chain.finalized.number else { continue }
                let (verdict, actions) = finality.receive(.commit(commit), from: -1, now: .zero)
                if verdict == .irrelevant { continue }
                guard verdict == .valid else { throw Failure("the justification of #\(block.number) does not verify (\(verdict))") }
                try Self.apply(actions, chain: chain, store: store)
            default:
                throw Failure("unknown record kind \(kind)")
            }
        }
        try chain.snapshotFinalized()
        try store.checkpoint()
        progress(imported, nil)
        return (imported, chain.finalized.number)
    }

    /// The gadget's actions that matter offline: finalizing, and remembering a new validator set.
    static func apply(_ actions: [FinalityAction], chain: ChainCore, store: SQLiteStore) throws {
        for a in actions {
            switch a {
            case .finalize(let target, let commit):
                try chain.finalize(target.hash, justification: commit.encoded)
            case .authoritySetChanged(let setId, let authorities):
                try store.putMeta("grandpa.set", FinalitySetInfo(setId: setId, authorities: authorities).encoded, durable: true)
            default:
                break
            }
        }
    }

    /// Reads a file in chunks, never more than a record at a time.
    struct StreamReader {
        let handle: FileHandle
        var buffer: [UInt8] = []
        var offset = 0

        init(_ handle: FileHandle) { self.handle = handle }

        mutating func take(_ n: Int) throws -> [UInt8] {
            while self.buffer.count - self.offset < n {
                let chunk = try self.handle.read(upToCount: max(1 << 20, n)) ?? Data()
                guard !chunk.isEmpty else { throw Failure("the archive ends early (truncated)") }
                if self.offset > 0 {
                    self.buffer.removeFirst(self.offset)
                    self.offset = 0
                }
                self.buffer.append(contentsOf: chunk)
            }
            defer { self.offset += n }
            return Array(self.buffer[self.offset..<(self.offset + n)])
        }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                let b = try self.take(1)[0]
                value |= UInt64(b & 0x7F) << UInt64(shift)
                if b & 0x80 == 0 { return value }
            }
            throw Failure("a record length longer than 64 bits")
        }
    }
}
