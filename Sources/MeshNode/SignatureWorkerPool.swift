import Foundation
import MeshChain
import MeshCrypto

/// The node's signature workers: a fixed set of threads (one per core by default) that check
/// blocks' Ed25519 signatures ahead of their import, so that block import runs at the
/// verification speed of every core rather than one. `ChainCore` hands it the blocks of a
/// sync answer (`verifyAhead`) or a large block alone, and at import skips only what a
/// worker found valid; everything else is verified again on the importing thread, in order,
/// so a bad signature fails the block at the same index as without the pool.
///
/// Bounded: at most `maxQueued` checks wait in the queue; beyond that, checks are not queued
/// (the importing thread does them). A thread waiting for a ticket helps with queued checks
/// (the earliest first, which are its own) instead of sleeping. The owner stops it with
/// `shutdown()` (the node does in `stop()`); checks still queued are dropped then.
public final class SignatureWorkerPool: BlockSignatureVerifier, @unchecked Sendable {
    /// Worker threads.
    public let workers: Int
    /// Checks queued at most.
    public let maxQueued: Int

    // Everything below is guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var stopped = false
    /// Checks run, by workers and by helping waiters, and checks not queued (queue full).
    private var counts = (byWorkers: 0, byWaiters: 0, overflowed: 0)

    /// One signature: index 0 is the producer's, i ≥ 1 transaction i − 1.
    struct Job {
        let ticket: Ticket
        let index: Int
    }

    /// A block's checks. Its mutable state is guarded by the pool's lock.
    final class Ticket: SignatureTicket, @unchecked Sendable {
        let pool: SignatureWorkerPool
        let block: Block
        let genesis: Hash32
        var outstanding = 0
        var cancelled = false
        var header = false
        /// Transaction i's signature verified (by index: no transaction is hashed for it).
        var valid: [Bool]

        init(pool: SignatureWorkerPool, block: Block, genesis: Hash32) {
            self.pool = pool
            self.block = block
            self.genesis = genesis
            self.valid = [Bool](repeating: false, count: block.transactions.count)
        }

        func wait() -> VerifiedSignatures { self.pool.wait(self) }
        func cancel() { self.pool.cancel(self) }
    }

    /// Worker threads by default: one per core.
    public static var defaultWorkers: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Starts `workers` threads (default: `defaultWorkers`).
    public init(workers: Int = SignatureWorkerPool.defaultWorkers, maxQueued: Int = 1 << 16) {
        self.workers = max(1, workers)
        self.maxQueued = max(1, maxQueued)
        for i in 0..<self.workers {
            let t = Thread { [self] in self.work() }
            t.name = "signatures-\(i)"
            t.start()
        }
    }

    /// Stops the workers once they finish the check each is on; queued checks are dropped
    /// (their tickets return what was done; the importer checks the rest). Idempotent.
    public func shutdown() {
        self.condition.lock()
        self.stopped = true
        for j in self.queue[self.head...] { j.ticket.cancelled = true }
        self.queue.removeAll()
        self.head = 0
        self.condition.broadcast()
        self.condition.unlock()
    }

    /// Checks run so far by the workers and by waiting importers, and checks left to the
    /// importer because the queue was full (metrics, benchmarks).
    public var statistics: (byWorkers: Int, byWaiters: Int, overflowed: Int) {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.counts
    }

    // MARK: BlockSignatureVerifier

    public func submit(_ blocks: [Block], genesis: Hash32, skipping: Set<Hash32>) -> [any SignatureTicket] {
        let tickets = blocks.map { Ticket(pool: self, block: $0, genesis: genesis) }
        // Which transactions to leave out is decided before taking the lock (hashing).
        let skip: [[Bool]] = skipping.isEmpty ? [] : blocks.map { $0.transactions.map { skipping.contains($0.hash) } }
        self.condition.lock()
        defer { self.condition.unlock() }
        guard !self.stopped else { return tickets }
        for (b, t) in tickets.enumerated() {
            for i in 0...t.block.transactions.count {
                if i > 0, !skip.isEmpty, skip[b][i - 1] { continue }
                guard self.queue.count - self.head < self.maxQueued else {
                    self.counts.overflowed += 1
                    continue
                }
                self.queue.append(Job(ticket: t, index: i))
                t.outstanding += 1
            }
        }
        self.condition.broadcast()
        return tickets
    }

    // MARK: Internals

    /// The next job of a live ticket, dropping cancelled tickets' jobs. Under the lock.
    private func take() -> Job? {
        while self.head < self.queue.count {
            let j = self.queue[self.head]
            self.head += 1
            if self.head == self.queue.count {
                self.queue.removeAll(keepingCapacity: true)
                self.head = 0
            } else if self.head >= 4096, self.head * 2 >= self.queue.count {
                self.queue.removeFirst(self.head)
                self.head = 0
            }
            if j.ticket.cancelled { continue }
            return j
        }
        return nil
    }

    /// Runs one check outside the lock: whether the signature verified.
    private static func check(_ j: Job) -> Bool {
        let block = j.ticket.block
        if j.index == 0 { return block.header.hasValidSignature }
        return block.transactions[j.index - 1].verifySignature(genesis: j.ticket.genesis)
    }

    /// Records a result. Under the lock.
    private func record(_ j: Job, _ ok: Bool) {
        let t = j.ticket
        if ok {
            if j.index == 0 { t.header = true } else { t.valid[j.index - 1] = true }
        }
        t.outstanding -= 1
        if t.outstanding == 0 { self.condition.broadcast() }
    }

    private func work() {
        self.condition.lock()
        while true {
            if let j = self.take() {
                self.condition.unlock()
                let r = Self.check(j)
                self.condition.lock()
                self.record(j, r)
                self.counts.byWorkers += 1
            } else if self.stopped {
                break
            } else {
                self.condition.wait()
            }
        }
        self.condition.unlock()
    }

    func wait(_ t: Ticket) -> VerifiedSignatures {
        self.condition.lock()
        while t.outstanding > 0 && !t.cancelled {
            if let j = self.take() {
                self.condition.unlock()
                let r = Self.check(j)
                self.condition.lock()
                self.record(j, r)
                self.counts.byWaiters += 1
            } else {
                self.condition.wait()
            }
        }
        // Checks still running on a worker (a cancelled ticket) may add to `valid` later;
        // this answer holds what was found so far.
        let found = VerifiedSignatures(header: t.header, transactionsByIndex: t.valid, indexedTransactions: t.block.transactions)
        self.condition.unlock()
        return found
    }

    func cancel(_ t: Ticket) {
        self.condition.lock()
        if t.outstanding > 0 { t.cancelled = true }
        self.condition.unlock()
    }
}
