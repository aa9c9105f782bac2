import MeshChain
import MeshCodec

/// The node's durable store: SQLite in WAL mode under the node's base path.
///
/// Writes are grouped in transactions; a transaction either lands whole or not at all, so a
/// kill -9 at any moment leaves a consistent database. Blocks are written before the
/// finalized pointer that refers to them, so no finalized block can be lost. Ordinary commits
/// use `synchronous=NORMAL` (durable across a process kill; the WAL is in the OS cache);
/// `durable` metadata writes (own finality votes) switch to `FULL` so they are fsynced before
/// the caller goes on (and before the vote is sent).
public final class SQLiteStore: BlockStore {
    let db: SQLiteDatabase
    public let path: String

    public init(path: String) throws {
        self.path = path
        self.db = try SQLiteDatabase(path: path)
        try self.db.execute("PRAGMA journal_mode=WAL")
        try self.db.execute("PRAGMA synchronous=NORMAL")
        try self.db.execute("PRAGMA foreign_keys=OFF")
        try self.db.execute("""
            CREATE TABLE IF NOT EXISTS blocks(hash BLOB PRIMARY KEY, number INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS blocks_number ON blocks(number);
            CREATE TABLE IF NOT EXISTS canonical(number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS justifications(number INTEGER PRIMARY KEY, hash BLOB NOT NULL, data BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS state(id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
            """)
        try self.db.run("INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?)", [.blob([1])])
    }

    public func close() { self.db.close() }

    public func putBlock(_ block: Block) throws {
        try self.putBlock(block, hash: block.hash, encoded: block.encoded)
    }

    public func putBlock(_ block: Block, hash: Hash32, encoded: [UInt8]) throws {
        try self.db.run("INSERT OR IGNORE INTO blocks(hash, number, data) VALUES(?, ?, ?)",
                        [.blob(hash.bytes), .int(Int64(block.number)), .blob(encoded)])
    }

    /// A block number as SQLite's signed integer; heights past 2^63 − 1 are never stored, so a
    /// query for one (a peer's request) finds nothing instead of trapping.
    static func sqlNumber(_ n: UInt64) -> Int64? { Int64(exactly: n) }

    public func hasBlock(_ hash: Hash32) throws -> Bool {
        try !self.db.query("SELECT 1 FROM blocks WHERE hash = ?", [.blob(hash.bytes)]) { $0.int(0) }.isEmpty
    }

    public func header(_ hash: Hash32) throws -> BlockHeader? {
        let rows = try self.db.query("SELECT data FROM blocks WHERE hash = ?", [.blob(hash.bytes)]) { $0.blob(0) }
        guard let data = rows.first else { return nil }
        var r = ByteReader(data)
        return try BlockHeader(from: &r)  // the header leads the encoding; the body stays undecoded
    }

    public func block(_ hash: Hash32) throws -> Block? {
        let rows = try self.db.query("SELECT data FROM blocks WHERE hash = ?", [.blob(hash.bytes)]) { $0.blob(0) }
        guard let data = rows.first else { return nil }
        return try Block.decode(data)
    }

    public func canonicalHash(_ number: UInt64) throws -> Hash32? {
        guard let n = Self.sqlNumber(number) else { return nil }
        let rows = try self.db.query("SELECT hash FROM canonical WHERE number = ?", [.int(n)]) { $0.blob(0) }
        guard let b = rows.first, b.count == 32 else { return nil }
        return Hash32(b)
    }

    public func setCanonical(fromNumber: UInt64, hashes: [Hash32], tip: UInt64) throws {
        try self.db.transaction {
            for (i, h) in hashes.enumerated() {
                try self.db.run("INSERT OR REPLACE INTO canonical(number, hash) VALUES(?, ?)", [.int(Int64(fromNumber) + Int64(i)), .blob(h.bytes)])
            }
            try self.db.run("DELETE FROM canonical WHERE number > ?", [.int(Int64(tip))])
        }
    }

    public func setFinalized(_ ref: ChainPointer, justification: [UInt8]?) throws {
        try self.db.transaction {
            try self.db.run("INSERT OR REPLACE INTO meta(key, value) VALUES('finalized', ?)", [.blob(ref.encoded)])
            if let j = justification {
                try self.db.run("INSERT OR REPLACE INTO justifications(number, hash, data) VALUES(?, ?, ?)",
                                [.int(Int64(ref.number)), .blob(ref.hash.bytes), .blob(j)])
            }
        }
    }

    public func finalized() throws -> ChainPointer? {
        guard let b = try self.meta("finalized") else { return nil }
        return try ChainPointer.decode(b)
    }

    public func justification(_ number: UInt64) throws -> [UInt8]? {
        guard let n = Self.sqlNumber(number) else { return nil }
        return try self.db.query("SELECT data FROM justifications WHERE number = ?", [.int(n)]) { $0.blob(0) }.first
    }

    public func justifiedNumbers(from: UInt64, limit: Int) throws -> [UInt64] {
        guard let n = Self.sqlNumber(from) else { return [] }
        return try self.db.query("SELECT number FROM justifications WHERE number >= ? ORDER BY number LIMIT ?", [.int(n), .int(Int64(max(0, limit)))]) {
            UInt64(clamping: $0.int(0))
        }
    }

    public func putState(_ ref: ChainPointer, state: [UInt8]) throws {
        try self.db.run("INSERT OR REPLACE INTO state(id, number, hash, data) VALUES(1, ?, ?, ?)",
                        [.int(Int64(ref.number)), .blob(ref.hash.bytes), .blob(state)])
    }

    public func latestState() throws -> (ChainPointer, [UInt8])? {
        let rows = try self.db.query("SELECT number, hash, data FROM state WHERE id = 1") { row in
            (ChainPointer(number: UInt64(clamping: row.int(0)), hash: Hash32(row.blob(1))), row.blob(2))
        }
        return rows.first
    }

    public func putMeta(_ key: String, _ value: [UInt8], durable: Bool) throws {
        if durable && !self.db.inTransaction {
            try self.db.execute("PRAGMA synchronous=FULL")
            defer { try? self.db.execute("PRAGMA synchronous=NORMAL") }
            try self.db.transaction { try self.db.run("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", [.text(key), .blob(value)]) }
        } else {
            try self.db.run("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", [.text(key), .blob(value)])
        }
    }

    public func meta(_ key: String) throws -> [UInt8]? {
        try self.db.query("SELECT value FROM meta WHERE key = ?", [.text(key)]) { $0.blob(0) }.first
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T { try self.db.transaction(body) }

    /// Database size in bytes (pages × page size), for benchmarks.
    public func sizeBytes() throws -> Int {
        let pages = try self.db.query("PRAGMA page_count") { $0.int(0) }.first ?? 0
        let size = try self.db.query("PRAGMA page_size") { $0.int(0) }.first ?? 0
        return Int(pages * size)
    }

    /// Folds the WAL into the main file.
    public func checkpoint() throws { try self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
}
