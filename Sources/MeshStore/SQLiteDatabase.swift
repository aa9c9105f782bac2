internal import CSQLite

/// A SQLite error: the call that failed and SQLite's message.
public struct SQLiteError: Error, CustomStringConvertible {
    public var code: Int32
    public var message: String
    public var description: String { "SQLite error \(self.code): \(self.message)" }
}

/// A small wrapper over one SQLite connection: prepared-statement cache, typed binds,
/// nested transactions. One owner, one thread.
final class SQLiteDatabase {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    private var transactionDepth = 0

    init(path: String) throws(SQLiteError) {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open \(path)"
            sqlite3_close(handle)
            throw SQLiteError(code: rc, message: msg)
        }
        self.db = handle
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit { self.close() }

    func close() {
        for (_, s) in self.statements { sqlite3_finalize(s) }
        self.statements.removeAll()
        if let db = self.db { sqlite3_close(db) }
        self.db = nil
    }

    private func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: self.db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed")
    }

    func execute(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(self.db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "?"
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: "\(msg) in: \(sql.prefix(80))")
        }
    }

    /// A bound value.
    enum Value {
        case int(Int64)
        case blob([UInt8])
        case text(String)
        case null
    }

    private func prepare(_ sql: String) throws(SQLiteError) -> OpaquePointer {
        if let s = self.statements[sql] {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return s
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(self.db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw self.error(rc) }
        self.statements[sql] = stmt
        return stmt
    }

    private func bind(_ stmt: OpaquePointer, _ values: [Value]) throws(SQLiteError) {
        for (i, v) in values.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .int(let x): rc = sqlite3_bind_int64(stmt, idx, x)
            case .blob(let b):
                rc = b.withUnsafeBytes { p in sqlite3_bind_blob(stmt, idx, p.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(b.count), CSQLite_transient()) }
            case .text(let t): rc = sqlite3_bind_text(stmt, idx, t, -1, CSQLite_transient())
            case .null: rc = sqlite3_bind_null(stmt, idx)
            }
            if rc != SQLITE_OK { throw self.error(rc) }
        }
    }

    /// Runs a statement that returns no rows.
    func run(_ sql: String, _ values: [Value] = []) throws(SQLiteError) {
        let stmt = try self.prepare(sql)
        try self.bind(stmt, values)
        let rc = sqlite3_step(stmt)
        sqlite3_reset(stmt)
        if rc != SQLITE_DONE && rc != SQLITE_ROW { throw self.error(rc) }
    }

    /// A row reader passed to query callbacks.
    struct Row {
        let stmt: OpaquePointer
        func int(_ i: Int32) -> Int64 { sqlite3_column_int64(self.stmt, i) }
        func blob(_ i: Int32) -> [UInt8] {
            let n = Int(sqlite3_column_bytes(self.stmt, i))
            guard n > 0, let p = sqlite3_column_blob(self.stmt, i) else { return [] }
            return Array(UnsafeRawBufferPointer(start: p, count: n))
        }
        func isNull(_ i: Int32) -> Bool { sqlite3_column_type(self.stmt, i) == SQLITE_NULL }
    }

    /// Runs a query and maps each row.
    func query<T>(_ sql: String, _ values: [Value] = [], _ map: (Row) -> T) throws(SQLiteError) -> [T] {
        let stmt = try self.prepare(sql)
        try self.bind(stmt, values)
        var out: [T] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_ROW {
                out.append(map(Row(stmt: stmt)))
            } else if rc == SQLITE_DONE {
                break
            } else {
                sqlite3_reset(stmt)
                throw self.error(rc)
            }
        }
        sqlite3_reset(stmt)
        return out
    }

    /// Runs `body` in a transaction (nested calls join the outer one).
    func transaction<T>(_ body: () throws -> T) throws -> T {
        if self.transactionDepth > 0 {
            self.transactionDepth += 1
            defer { self.transactionDepth -= 1 }
            return try body()
        }
        try self.execute("BEGIN IMMEDIATE")
        self.transactionDepth = 1
        do {
            let r = try body()
            self.transactionDepth = 0
            try self.execute("COMMIT")
            return r
        } catch {
            self.transactionDepth = 0
            try? self.execute("ROLLBACK")
            throw error
        }
    }

    var inTransaction: Bool { self.transactionDepth > 0 }
}
