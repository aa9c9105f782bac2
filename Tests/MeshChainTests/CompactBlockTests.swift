import MeshChain
import MeshCodec
import MeshCrypto
import MeshTestSupport
import Testing

@Suite("Compact blocks")
struct CompactBlockTests {
    /// A block of `n` transfers from distinct accounts (built by the dev chain's producer).
    func block(_ a: DevChain, transfers n: Int) -> (Block, [Transaction]) {
        let txs = (0..<n).map { i in a.tx(a.accounts[i % a.accounts.count], .transfer(to: a.owner.publicKey, amount: 1 + UInt64(i)), nonce: UInt64(i / a.accounts.count)) }
        let (b, _) = a.nextBlock(txs: txs)
        return (b, b.transactions)
    }

    @Test("a block is rebuilt from the pool; missing transactions are fetched by position; the compact form is small")
    func rebuild() throws {
        let a = try DevChain(accounts: 8)
        let (b, txs) = self.block(a, transfers: 16)
        #expect(txs.count == 16)
        let c = CompactBlock(b)
        let decoded = try CompactBlock.decode(c.encoded)
        #expect(decoded == c && decoded.hash == b.hash)
        #expect(c.encoded.count * 4 < b.encoded.count, "compact \(c.encoded.count) bytes vs full \(b.encoded.count)")
        // Everything in the pool (plus unrelated transactions): complete at once.
        let unrelated = a.tx(a.owner, .transfer(to: a.sudo.publicKey, amount: 5))
        let (_, full) = c.reconstruct(from: txs.reversed() + [unrelated])
        #expect(full == .complete(b))
        // Three missing: their positions are reported, then filled from a response.
        let have = txs.enumerated().filter { ![2, 7, 15].contains($0.offset) }.map(\.element)
        let (body, partial) = c.reconstruct(from: have)
        #expect(partial == .missing([2, 7, 15]))
        let (_, done) = c.fill(body, indexes: [2, 7, 15], with: [txs[2], txs[7], txs[15]])
        #expect(done == .complete(b))
        // A lying answer (wrong transactions) leaves the positions missing.
        let (_, lied) = c.fill(body, indexes: [2, 7, 15], with: [txs[3], txs[7], unrelated])
        #expect(lied == .missing([2, 15]))
        // An answer of the wrong length completes nothing.
        let (_, short) = c.fill(body, indexes: [2, 7, 15], with: [txs[2]])
        #expect(short == .missing([2, 7, 15]))
    }

    @Test("a body that does not match the root is reported")
    func collisions() throws {
        let a = try DevChain(accounts: 4)
        let (b, txs) = self.block(a, transfers: 4)
        var c = CompactBlock(b)
        c.shortIDs[1] = CompactBlock.shortID(txs[0].hash, block: c.hash)
        let (_, r) = c.reconstruct(from: txs)
        // Positions 0 and 1 now name the same transaction: the body fills but its root is wrong.
        #expect(r == .rootMismatch)
    }

    @Test("malformed compact blocks and block-transaction messages are typed errors, never traps")
    func malformed() throws {
        let a = try DevChain(accounts: 4)
        let (b, txs) = self.block(a, transfers: 4)
        let bytes = CompactBlock(b).encoded
        var rng = SeededRNG(seed: 7)
        for i in 0..<2000 {
            var m = bytes
            switch i % 3 {
            case 0: m = Array(m.prefix(Int(rng.next() % UInt64(m.count))))
            case 1: m[Int(rng.next() % UInt64(m.count))] ^= UInt8(1 + rng.next() % 255)
            default: m = rng.bytes(Int(rng.next() % 400))
            }
            _ = try? CompactBlock.decode(m)
            _ = try? BlockTransactionsRequest.decode(m)
            _ = try? BlockTransactionsResponse.decode(m)
        }
        // A declared count far beyond the bytes present is refused before allocation.
        var w = ByteWriter()
        b.header.encode(to: &w)
        w.varint(UInt64(Block.maxTransactions))
        #expect(throws: CodecError.self) { try CompactBlock.decode(w.bytes) }
        let req = BlockTransactionsRequest(block: b.hash, indexes: [0, 3])
        #expect(try BlockTransactionsRequest.decode(req.encoded) == req)
        let resp = BlockTransactionsResponse(block: b.hash, transactions: [txs[0], txs[3]])
        #expect(try BlockTransactionsResponse.decode(resp.encoded) == resp)
    }
}

@Suite("Parallel signature verification at import")
struct ParallelVerificationTests {
    @Test("a large block with one forged signature is refused at that index; an honest one imports")
    func forgedInLargeBlock() throws {
        let a = try DevChain(accounts: 8)
        let txs = (0..<24).map { i in a.tx(a.accounts[i % 8], .transfer(to: a.owner.publicKey, amount: 1 + UInt64(i)), nonce: UInt64(i / 8)) }
        let (good, ts) = a.nextBlock(txs: txs)
        #expect(good.transactions.count == 24)
        var forged = good
        var bad = forged.transactions[13]
        bad.signature = a.accounts[0].sign([7])
        forged.transactions[13] = bad
        forged.header.transactionsRoot = Block.transactionsRoot(forged.transactions)
        forged.header.sign(with: a.key(for: good.header.producer)!)
        #expect(throws: BlockError.invalidTransaction(index: 13, .badSignature)) { try a.core.importBlock(forged, now: ts) }
        try a.core.importBlock(good, now: ts)
        #expect(a.core.best.hash == good.hash)
    }
}
