/// A square (n x n) sparse matrix in compressed-row form: row i's entries are
/// `columns[offsets[i]..<offsets[i+1]]` with values alongside, columns ascending.
///
/// Weights and bonds of real subnets are sparse (thousands of uids, rows of a few hundred
/// entries), so every epoch step costs O(non-zeros), not O(n^2).
public struct SparseMatrix<Value: Sendable>: Sendable {
    /// Row start offsets (count n + 1).
    public private(set) var offsets: [Int]
    /// Column index of each entry.
    public private(set) var columns: [Int32]
    /// Value of each entry.
    public var values: [Value]

    /// The number of rows (and columns).
    public var n: Int { self.offsets.count - 1 }

    /// The number of stored entries.
    public var nonZeroCount: Int { self.columns.count }

    /// An empty n x n matrix.
    public init(n: Int) {
        self.offsets = [Int](repeating: 0, count: n + 1)
        self.columns = []
        self.values = []
    }

    /// Assembles a matrix from its compressed-row arrays: `offsets` has n + 1 entries from 0
    /// to `columns.count`, and each row's columns ascend (the epoch's kernels write these).
    init(offsets: [Int], columns: [Int32], values: [Value]) {
        assert(offsets.first == 0 && offsets.last == columns.count && columns.count == values.count)
        self.offsets = offsets
        self.columns = columns
        self.values = values
    }

    /// Builds from rows of (column, value) pairs; pairs are sorted by column and columns
    /// outside 0..<n are dropped. A repeated column keeps its last value.
    public init(rows: [[(Int, Value)]], n: Int) {
        var b = Builder(n: n, capacity: rows.reduce(0) { $0 + $1.count })
        for i in 0..<n {
            let row = i < rows.count ? rows[i] : []
            var sorted = row.filter { $0.0 >= 0 && $0.0 < n }
            sorted.sort { $0.0 < $1.0 }
            var last: Int = -1
            var pending: (Int, Value)?
            for (j, v) in sorted {
                if j == last { pending = (j, v); continue }
                if let p = pending { b.append(column: p.0, value: p.1) }
                pending = (j, v)
                last = j
            }
            if let p = pending { b.append(column: p.0, value: p.1) }
            b.endRow()
        }
        self = b.build()
    }

    /// Incremental construction, row by row.
    public struct Builder {
        var offsets: [Int]
        var columns: [Int32]
        var values: [Value]
        let n: Int

        public init(n: Int, capacity: Int = 0) {
            self.n = n
            self.offsets = [0]
            self.offsets.reserveCapacity(n + 1)
            self.columns = []
            self.columns.reserveCapacity(capacity)
            self.values = []
            self.values.reserveCapacity(capacity)
        }

        public mutating func append(column: Int, value: Value) {
            self.columns.append(Int32(column))
            self.values.append(value)
        }

        public mutating func endRow() { self.offsets.append(self.columns.count) }

        public func build() -> SparseMatrix {
            var m = SparseMatrix(n: 0)
            var offsets = self.offsets
            while offsets.count < self.n + 1 { offsets.append(self.columns.count) }
            m.offsets = offsets
            m.columns = self.columns
            m.values = self.values
            return m
        }
    }

    /// The entry range of row `i`.
    @inlinable public func range(ofRow i: Int) -> Range<Int> { self.offsets[i]..<self.offsets[i + 1] }

    /// Row `i` as (column, value) pairs.
    public func row(_ i: Int) -> [(Int, Value)] {
        self.range(ofRow: i).map { (Int(self.columns[$0]), self.values[$0]) }
    }

    /// The value at (i, j), if stored.
    public func value(row i: Int, column j: Int) -> Value? {
        for k in self.range(ofRow: i) where Int(self.columns[k]) == j { return self.values[k] }
        return nil
    }

    /// A matrix with the same pattern and transformed values.
    public func mapValues<T>(_ transform: (Value) -> T) -> SparseMatrix<T> {
        var m = SparseMatrix<T>(n: 0)
        m.offsets = self.offsets
        m.columns = self.columns
        m.values = self.values.map(transform)
        return m
    }

    /// Keeps the entries for which `keep(row, column, value)` holds.
    public func filter(_ keep: (Int, Int, Value) -> Bool) -> SparseMatrix {
        var b = Builder(n: self.n, capacity: self.nonZeroCount)
        for i in 0..<self.n {
            for k in self.range(ofRow: i) {
                let j = Int(self.columns[k])
                if keep(i, j, self.values[k]) { b.append(column: j, value: self.values[k]) }
            }
            b.endRow()
        }
        return b.build()
    }
}
