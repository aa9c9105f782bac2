// The epoch's O(non-zeros) passes over compressed rows.
//
// Why this file looks the way it does: the epoch runs once per subnet per tempo on every
// node, over matrices of a few hundred thousand entries. Appending entry by entry to Swift
// arrays costs a uniqueness check and a capacity check per element, and a generic builder
// costs more; these kernels size their outputs once (a matrix derived from another has at
// most its entries), write through buffer pointers that never leave the closure, and
// shrink the arrays at the end. Results are the same values in the same order as the
// element-wise definitions in YumaEpoch.swift.

/// Appends entries to the matrix ``SparseMatrix/assemble(n:capacity:_:)`` is building.
///
/// Lent to the row closure only (it holds pointers into arrays under construction).
struct RowWriter<Value> {
    let columns: UnsafeMutablePointer<Int32>
    let values: UnsafeMutablePointer<Value>
    let capacity: Int
    var count = 0

    init(columns: UnsafeMutablePointer<Int32>, values: UnsafeMutablePointer<Value>, capacity: Int) {
        assert(_isPOD(Value.self))
        self.columns = columns
        self.values = values
        self.capacity = capacity
    }

    /// Appends one entry (columns ascending within a row).
    @inline(__always)
    mutating func append(_ column: Int32, _ value: Value) {
        precondition(self.count < self.capacity)
        (self.columns + self.count).initialize(to: column)
        (self.values + self.count).initialize(to: value)
        self.count += 1
    }

    /// Applies `body` to the values appended since `start` (the row being written).
    @inline(__always)
    func updateValues(from start: Int, _ body: (inout Value) -> Void) {
        for k in start..<self.count { body(&self.values[k]) }
    }

    /// Writes one entry and keeps it only if `keep`: the compaction costs no branch on the
    /// data. `Value` must be trivial (the epoch's scalars and u16), as a rejected slot is
    /// overwritten by the next entry.
    @inline(__always)
    mutating func append(_ column: Int32, _ value: Value, if keep: Bool) {
        precondition(self.count < self.capacity)
        (self.columns + self.count).initialize(to: column)
        (self.values + self.count).initialize(to: value)
        self.count += keep ? 1 : 0
    }
}

extension SparseMatrix {
    /// Builds a matrix of at most `capacity` entries row by row: `body(row, &writer)` appends
    /// row `row`'s entries, columns ascending.
    @inline(__always)
    static func assemble(n: Int, capacity: Int, _ body: (_ row: Int, _ writer: inout RowWriter<Value>) -> Void) -> SparseMatrix<Value> {
        var columns: [Int32] = []
        var values: [Value] = []
        let offsets = [Int](unsafeUninitializedCapacity: n + 1) { off, offCount in
            columns = [Int32](unsafeUninitializedCapacity: capacity) { c, cCount in
                values = [Value](unsafeUninitializedCapacity: capacity) { v, vCount in
                    var writer = RowWriter(columns: c.baseAddress!, values: v.baseAddress!, capacity: capacity)
                    off[0] = 0
                    for i in 0..<n {
                        body(i, &writer)
                        off[i + 1] = writer.count
                    }
                    vCount = writer.count
                }
                cCount = values.count
            }
            offCount = n + 1
        }
        return SparseMatrix(offsets: offsets, columns: columns, values: values)
    }

    /// The entries `transform` keeps (non-nil), converted, in one pass; `rowKept` skips whole
    /// rows without visiting them.
    @inline(__always)
    func compactMap<T>(rowKept: (Int) -> Bool = { _ in true }, _ transform: (_ row: Int, _ column: Int32, _ value: Value) -> T?) -> SparseMatrix<T> {
        self.columns.withUnsafeBufferPointer { cols in
            self.values.withUnsafeBufferPointer { vals in
                self.offsets.withUnsafeBufferPointer { offs in
                    SparseMatrix<T>.assemble(n: self.n, capacity: self.nonZeroCount) { i, out in
                        guard rowKept(i) else { return }
                        for k in offs[i]..<offs[i + 1] {
                            if let v = transform(i, cols[k], vals[k]) { out.append(cols[k], v) }
                        }
                    }
                }
            }
        }
    }

    /// Applies `body` to every stored value in place, with its row and column.
    @inline(__always)
    mutating func updateValues(_ body: (_ row: Int, _ column: Int32, _ value: inout Value) -> Void) {
        let n = self.n
        self.offsets.withUnsafeBufferPointer { offs in
            self.columns.withUnsafeBufferPointer { cols in
                self.values.withUnsafeMutableBufferPointer { vals in
                    for i in 0..<n {
                        for k in offs[i]..<offs[i + 1] { body(i, cols[k], &vals[k]) }
                    }
                }
            }
        }
    }

    /// Lends the compressed-row arrays (offsets, columns, values) for the duration of `body`.
    @inline(__always)
    func withBuffers<R>(
        _ body: (_ offsets: UnsafeBufferPointer<Int>, _ columns: UnsafeBufferPointer<Int32>, _ values: UnsafeBufferPointer<Value>) -> R
    ) -> R {
        self.offsets.withUnsafeBufferPointer { offs in
            self.columns.withUnsafeBufferPointer { cols in
                self.values.withUnsafeBufferPointer { vals in body(offs, cols, vals) }
            }
        }
    }

    /// Visits every stored entry row by row: `body(row, column, value)`.
    @inline(__always)
    func forEachEntry(_ body: (_ row: Int, _ column: Int32, _ value: Value) -> Void) {
        let n = self.n
        self.offsets.withUnsafeBufferPointer { offs in
            self.columns.withUnsafeBufferPointer { cols in
                self.values.withUnsafeBufferPointer { vals in
                    for i in 0..<n {
                        for k in offs[i]..<offs[i + 1] { body(i, cols[k], vals[k]) }
                    }
                }
            }
        }
    }

    /// Merges two matrices row by row over the union of their entries (both with ascending
    /// columns): `body(column, newValue?, oldValue?)` returns the value to keep, or nil.
    @inline(__always)
    static func mergeRows<A, B>(
        _ new: SparseMatrix<A>, _ old: SparseMatrix<B>, _ body: (_ column: Int32, _ new: A?, _ old: B?) -> Value?
    ) -> SparseMatrix<Value> {
        new.columns.withUnsafeBufferPointer { nc in
            new.values.withUnsafeBufferPointer { nv in
                new.offsets.withUnsafeBufferPointer { no in
                    old.columns.withUnsafeBufferPointer { oc in
                        old.values.withUnsafeBufferPointer { ov in
                            old.offsets.withUnsafeBufferPointer { oo in
                                SparseMatrix<Value>.assemble(n: new.n, capacity: new.nonZeroCount + old.nonZeroCount) { i, out in
                                    var kn = no[i]
                                    let en = no[i + 1]
                                    var ko = i < old.n ? oo[i] : 0
                                    let eo = i < old.n ? oo[i + 1] : 0
                                    while kn < en || ko < eo {
                                        let jn = kn < en ? nc[kn] : Int32.max
                                        let jo = ko < eo ? oc[ko] : Int32.max
                                        let j = min(jn, jo)
                                        var a: A?
                                        var b: B?
                                        if jn == j {
                                            a = nv[kn]
                                            kn += 1
                                        }
                                        if jo == j {
                                            b = ov[ko]
                                            ko += 1
                                        }
                                        if let v = body(j, a, b) { out.append(j, v) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
