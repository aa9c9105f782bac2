import MeshCrypto

/// A binary Merkle tree over an object's chunks, for storage markets: a miner commits to an
/// object with its root; a validator keeps only the root (and the chunk count) and later asks
/// for any chunk with the path of sibling hashes up to the root.
///
/// Leaves are SHA-256(0x00 ‖ chunk), inner nodes SHA-256(0x01 ‖ left ‖ right) (the prefixes
/// keep a leaf from passing for a node); a level with an odd count carries its last node up
/// unchanged. An empty object has one empty chunk.
public struct MerkleTree: Sendable {
    /// Levels from the leaves (index 0) to the root.
    public let levels: [[[UInt8]]]

    public init(chunks: [[UInt8]]) {
        var level = (chunks.isEmpty ? [[]] : chunks).map { Self.leaf($0) }
        var levels = [level]
        while level.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i < level.count {
                next.append(i + 1 < level.count ? Self.node(level[i], level[i + 1]) : level[i])
                i += 2
            }
            levels.append(next)
            level = next
        }
        self.levels = levels
    }

    /// The tree of `data` cut into `chunkSize`-byte chunks.
    public init(data: [UInt8], chunkSize: Int) { self.init(chunks: Self.chunks(data, size: chunkSize)) }

    public var root: [UInt8] { self.levels.last![0] }
    public var leafCount: Int { self.levels[0].count }

    /// The sibling hashes from leaf `index` up to the root (nil for an index out of range).
    public func proof(index: Int) -> [[UInt8]]? {
        guard index >= 0, index < self.leafCount else { return nil }
        var out: [[UInt8]] = []
        var i = index
        for level in self.levels.dropLast() {
            let sibling = i ^ 1
            if sibling < level.count { out.append(level[sibling]) }
            i /= 2
        }
        return out
    }

    /// Whether `chunk` is chunk `index` of `count` under `root`, by `siblings`.
    public static func verify(chunk: [UInt8], index: Int, count: Int, siblings: [[UInt8]], root: [UInt8]) -> Bool {
        guard count > 0, index >= 0, index < count, siblings.count <= 64, siblings.allSatisfy({ $0.count == 32 }) else { return false }
        var hash = Self.leaf(chunk)
        var i = index, width = count, used = 0
        while width > 1 {
            let sibling = i ^ 1
            if sibling < width {
                guard used < siblings.count else { return false }
                hash = i % 2 == 0 ? Self.node(hash, siblings[used]) : Self.node(siblings[used], hash)
                used += 1
            }
            i /= 2
            width = (width + 1) / 2
        }
        return used == siblings.count && ConstantTime.equals(hash, root)
    }

    /// `data` in chunks of `size` bytes (the last may be shorter; one empty chunk for no data).
    public static func chunks(_ data: [UInt8], size: Int) -> [[UInt8]] {
        precondition(size > 0, "chunk size must be positive")
        guard !data.isEmpty else { return [[]] }
        return stride(from: 0, to: data.count, by: size).map { Array(data[$0..<min($0 + size, data.count)]) }
    }

    /// Chunks of `size` in `length` bytes.
    public static func chunkCount(length: Int, size: Int) -> Int { length <= 0 ? 1 : (length - 1) / size + 1 }

    static func leaf(_ chunk: [UInt8]) -> [UInt8] { SHA256.hash([0] + chunk) }
    static func node(_ l: [UInt8], _ r: [UInt8]) -> [UInt8] { SHA256.hash([1] + l + r) }
}
