import Foundation
import MeshIncentive

/// Seeded epoch inputs for `meshbench epoch`: the uniform subnet the first benchmark used, and
/// a realistic one with what every live subnet has (issue 16).
enum EpochWorkload: String, CaseIterable {
    /// Validators weight a uniformly random quarter of the uids; bonds from three epochs.
    case uniform
    /// Skewed miner popularity, dust stake, 1 % fresh registrations, stale validators, weights
    /// older than registrations, commit-reveal on, bonds carried from earlier epochs.
    case realistic

    /// Validators of an `n`-uid subnet: n/16, at most 256 (the chain's permit range).
    static func validatorCount(n: Int) -> Int { max(4, min(256, n / 16)) }

    /// The input for `n` uids in the given layout (`dense`: every validator weights every uid).
    func input(n: Int, dense: Bool, seed: UInt64) -> EpochInput {
        switch self {
        case .uniform:
            let v = Self.validatorCount(n: n)
            return Self.uniform(n: n, validators: v, perRow: dense ? n : n / 4, seed: seed)
        case .realistic:
            return Self.realistic(n: n, dense: dense, seed: seed)
        }
    }

    /// A subnet with `validators` validators and `perRow` weights per validator row, and
    /// bonds carried from three earlier epochs.
    static func uniform(n: Int, validators: Int, perRow: Int, seed: UInt64) -> EpochInput {
        var rng = BenchRNG(seed: seed)
        var s = EpochInput(n: n, currentBlock: 10_000, tempo: 360, emission: 1_000_000_000)
        for i in 0..<n {
            s.stake[i] = i < validators ? UInt64.random(in: 1_000_000_000...100_000_000_000, using: &rng) : 0
            s.validatorPermit[i] = i < validators
            s.lastUpdate[i] = 9_990
            s.blockAtRegistration[i] = UInt64.random(in: 0...5_000, using: &rng)
        }
        let quality = (0..<n).map { _ in Double.random(in: 0...1, using: &rng) }
        var rows: [[(Int, UInt16)]] = Array(repeating: [], count: n)
        for i in 0..<validators {
            let dests = perRow >= n ? Array(0..<n) : Array((0..<n).shuffled(using: &rng).prefix(perRow))
            let values = dests.map { j in UInt16(max(0, min(65535, (quality[j] + Double.random(in: -0.1...0.1, using: &rng)) * 65535))) }
            rows[i] = Array(zip(dests, WeightsUpscale.maxUpscale(values)))
        }
        s.weights = SparseMatrix(rows: rows, n: n)
        s.params.yuma3 = true
        s.params.liquidAlpha = true
        s.params.maxAllowedValidators = validators
        for _ in 0..<3 {
            let out = YumaEpoch.run(s, as: I32F32.self)
            EpochScenario.commit(out, to: &s)
        }
        return s
    }

    /// A realistic subnet of `n` uids.
    ///
    /// - Validators (``validatorCount(n:)``) sit at random uids with heavy-tailed stake; every
    ///   miner holds dust stake (1–5,000 rao), so no column of the stake vector is zero.
    /// - Miner popularity is Zipf-like (exponent 1.1): the top 2 % of miners are weighted by
    ///   every validator, the rest are drawn by popularity without replacement, so the long
    ///   tail is weighted by few validators (and gets zero consensus).
    /// - Rows hold n/4 entries (all miners when `dense`); values follow a per-miner quality
    ///   with per-validator noise, max-upscaled as `set_weights` stores them.
    /// - 1 % of miners registered within the last tempo: validators' older rows still name
    ///   their uids (masked as weights older than the registration), and their bonds reset.
    /// - 3 % of validators are stale (last update beyond the activity cutoff); the others set
    ///   weights within the last three tempos, through commit-reveal (commit one to two tempos
    ///   before the reveal).
    /// - Bonds are carried from four earlier epochs whose rows churned 10 % of their tail
    ///   entries each time.
    static func realistic(n: Int, dense: Bool, seed: UInt64) -> EpochInput {
        var rng = BenchRNG(seed: seed ^ 0x5EA1_1571C)
        let tempo: UInt64 = 360
        let block: UInt64 = 1_000_000
        var s = EpochInput(n: n, currentBlock: block - 4 * (tempo + 1), tempo: tempo, emission: 1_000_000_000)
        s.params.yuma3 = true
        s.params.liquidAlpha = true
        let v = Self.validatorCount(n: n)
        s.params.maxAllowedValidators = v
        s.commitRevealEnabled = true

        let uids = Array((0..<n).shuffled(using: &rng))
        let validators = Array(uids.prefix(v)).sorted()
        var isValidator = [Bool](repeating: false, count: n)
        for u in validators { isValidator[u] = true }
        let miners = (0..<n).filter { !isValidator[$0] }

        for i in 0..<n {
            if isValidator[i] {
                // Heavy-tailed: 1k to ~150k TAO.
                s.stake[i] = UInt64(1e12 * exp(Double.random(in: 0...5, using: &rng)))
                s.validatorPermit[i] = true
            } else {
                s.stake[i] = UInt64.random(in: 1...5_000, using: &rng)
            }
            s.blockAtRegistration[i] = UInt64.random(in: 0...(block - 20 * tempo), using: &rng)
        }
        // Popularity: a random rank per miner; weight 1/(rank+1)^1.1; quality tracks it.
        let ranked = miners.shuffled(using: &rng)
        var popularity = [Double](repeating: 0, count: n)
        var quality = [Double](repeating: 0, count: n)
        for (rank, j) in ranked.enumerated() {
            popularity[j] = 1 / pow(Double(rank + 1), 1.1)
            quality[j] = 0.2 + 0.8 * pow(popularity[j], 0.25) * Double.random(in: 0.8...1, using: &rng)
        }
        let core = Array(ranked.prefix(max(1, miners.count / 50)))
        let perRow = dense ? miners.count : min(miners.count, n / 4)

        // One row per validator: the core, then popularity-weighted sampling without
        // replacement (Efraimidis–Spirakis keys u^(1/w)).
        func sampleRow() -> [Int] {
            var isCore = [Bool](repeating: false, count: n)
            for j in core { isCore[j] = true }
            let need = perRow - core.count
            guard need > 0 else { return core }
            var keyed: [(Double, Int)] = []
            keyed.reserveCapacity(miners.count)
            for j in miners where !isCore[j] {
                keyed.append((log(Double.random(in: Double.ulpOfOne...1, using: &rng)) / popularity[j], j))
            }
            keyed.sort { $0.0 > $1.0 }
            return core + keyed.prefix(need).map { $0.1 }
        }
        func values(_ dests: [Int]) -> [UInt16] {
            let raw = dests.map { j in UInt16(max(1, min(65535, (quality[j] + Double.random(in: -0.08...0.08, using: &rng)) * 65535))) }
            return WeightsUpscale.maxUpscale(raw)
        }
        var dests: [Int: [Int]] = [:]
        for u in validators { dests[u] = sampleRow() }

        // Earlier epochs: rows churn 10 % of their sampled tail each tempo; bonds accumulate.
        for epoch in 0..<4 {
            s.currentBlock = block - UInt64(4 - epoch) * (tempo + 1)
            var rows = (0..<n).map { _ in [(Int, UInt16)]() }
            for u in validators {
                var row = dests[u]!
                if epoch > 0 && row.count > core.count {
                    let fresh = sampleRow()
                    let members = Set(row)
                    let replacements = fresh.filter { !members.contains($0) }
                    let churn = min(replacements.count, (row.count - core.count) / 10)
                    for c in 0..<churn {
                        row[row.count - 1 - c * 7 % (row.count - core.count)] = replacements[c]
                    }
                    dests[u] = row
                }
                rows[u] = Array(zip(row, values(row)))
                s.lastUpdate[u] = s.currentBlock - UInt64.random(in: 1...tempo, using: &rng)
                s.commitBlock[u] = s.lastUpdate[u] - UInt64.random(in: tempo...(2 * tempo), using: &rng)
            }
            s.weights = SparseMatrix(rows: rows, n: n)
            let out = YumaEpoch.run(s, as: I32F32.self)
            EpochScenario.commit(out, to: &s)
        }

        // Now: fresh registrations, stale validators, weights set over the last three tempos.
        s.currentBlock = block
        s.lastMechanismStepBlock = block - tempo - 1
        var fresh = [Bool](repeating: false, count: n)
        for j in miners.shuffled(using: &rng).prefix(max(1, miners.count / 100)) {
            fresh[j] = true
            s.blockAtRegistration[j] = block - UInt64.random(in: 0..<tempo, using: &rng)
            s.stake[j] = UInt64.random(in: 0...5_000, using: &rng)
        }
        s.bonds = s.bonds.mapEntries { _, col, b in fresh[col] ? nil : b }
        for (k, u) in validators.enumerated() {
            if k % 33 == 7 {
                s.lastUpdate[u] = block - UInt64.random(in: 6_000...20_000, using: &rng)
            } else {
                s.lastUpdate[u] = block - UInt64.random(in: 1...(3 * tempo), using: &rng)
            }
            s.commitBlock[u] = s.lastUpdate[u] - UInt64.random(in: tempo...(2 * tempo), using: &rng)
        }
        for i in miners { s.lastUpdate[i] = max(s.blockAtRegistration[i], block - UInt64.random(in: 0...(3 * tempo), using: &rng)) }
        return s
    }
}

/// SplitMix64 for reproducible benchmark inputs.
struct BenchRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
