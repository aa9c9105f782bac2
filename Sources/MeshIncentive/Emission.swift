/// The token's issuance schedule and how emission reaches subnets and participants
/// (yuma.md section 10), in integers so that issued = credited + pending + burned exactly.
public struct EmissionSchedule: Equatable, Sendable, Codable {
    /// Rao per block before the first halving (1 TAO = 10^9 rao).
    public var initialBlockEmission: UInt64
    /// Total supply cap in rao (21M TAO on Bittensor).
    public var supplyCap: UInt64

    public init(initialBlockEmission: UInt64 = 1_000_000_000, supplyCap: UInt64 = 21_000_000 * 1_000_000_000) {
        self.initialBlockEmission = initialBlockEmission
        self.supplyCap = supplyCap
    }

    /// Rao minted for the next block given what has been issued so far. Emission halves
    /// each time issuance crosses cap·(1 − 2^-k) (the first halving at half the cap), and
    /// never exceeds what is left under the cap.
    public func blockEmission(totalIssuance: UInt64) -> UInt64 {
        guard totalIssuance < self.supplyCap else { return 0 }
        var halvings: UInt64 = 0
        var threshold = self.supplyCap / 2
        var remaining = self.supplyCap - threshold
        while totalIssuance >= threshold && halvings < 63 {
            halvings += 1
            remaining /= 2
            if remaining == 0 { break }
            threshold = self.supplyCap - remaining
        }
        let e = halvings >= 63 ? 0 : self.initialBlockEmission >> halvings
        return min(e, self.supplyCap - totalIssuance)
    }
}

/// Integer splits of emission.
public enum EmissionSplit {
    /// The subnet owner's cut as a u16 proportion (11796/65535 ≈ 18%).
    public static let defaultOwnerCut: UInt16 = 11796

    /// Splits `total` in proportion to `weights` with the largest-remainder method, so the
    /// parts sum to exactly `total`. All-zero weights split evenly (the first entries take
    /// the remainder). Ties in remainders go to the lower index.
    public static func proportional(_ total: UInt64, weights: [UInt64]) -> [UInt64] {
        let n = weights.count
        guard n > 0 else { return [] }
        let sum = weights.reduce(UInt128(0)) { $0 + UInt128($1) }
        if sum == 0 {
            let base = total / UInt64(n)
            let extra = Int(total % UInt64(n))
            return (0..<n).map { base + ($0 < extra ? 1 : 0) }
        }
        var parts = [UInt64](repeating: 0, count: n)
        var remainders: [(UInt128, Int)] = []
        var assigned: UInt64 = 0
        for i in 0..<n {
            let exact = UInt128(total) * UInt128(weights[i])
            parts[i] = UInt64(exact / sum)
            assigned += parts[i]
            remainders.append((exact % sum, i))
        }
        remainders.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var left = total - assigned
        var k = 0
        while left > 0 {
            parts[remainders[k].1] += 1
            left -= 1
            k += 1
        }
        return parts
    }

    /// Splits one block's subnet emission: the owner's cut first, then half of the rest to
    /// miners and the other half (plus any odd rao) to validators.
    public static func perBlock(_ emission: UInt64, ownerCut: UInt16 = defaultOwnerCut) -> (owner: UInt64, miners: UInt64, validators: UInt64) {
        let owner = UInt64((UInt128(emission) * UInt128(ownerCut)) / 65535)
        let rest = emission - owner
        let miners = rest / 2
        return (owner, miners, rest - miners)
    }
}

/// What one epoch pays out of a subnet's pending pools.
public struct EpochPayout: Equatable, Sendable {
    /// Rao credited per uid (miner incentive plus validator dividends).
    public var credited: [UInt64]
    /// Miner incentive that landed on the owner's hotkeys and is burned.
    public var burned: UInt64
    /// Rounding dust left in the pools for the next epoch.
    public var dustServer: UInt64
    public var dustValidator: UInt64

    /// Distributes the pending pools by the epoch's shares.
    ///
    /// Miners receive `incentive_i × pendingServer`; validators receive their share of
    /// `pendingValidator` by dividends (the epoch's validator emission share, which falls
    /// back to active stake when nobody earned anything). When total incentive is zero the
    /// validators receive the miners' half too. Incentive on `burnUids` (the owner's hotkeys)
    /// is burned. Amounts are floored; the dust stays pending, so nothing is created or lost.
    public static func distribute<S: YumaScalar>(
        _ output: EpochOutput<S>, pendingServer: UInt64, pendingValidator: UInt64, burnUids: Set<Int> = []
    ) -> EpochPayout {
        let n = output.incentive.count
        var credited = [UInt64](repeating: 0, count: n)
        var burned: UInt64 = 0
        let anyIncentive = output.incentive.contains { $0 != .zero }
        var serverPool = pendingServer
        var validatorPool = pendingValidator
        if !anyIncentive {
            validatorPool += serverPool
            serverPool = 0
        }
        var paidServer: UInt64 = 0
        if serverPool > 0 {
            for i in 0..<n {
                let a = output.incentive[i].amount(of: serverPool)
                paidServer += a
                if burnUids.contains(i) { burned += a } else { credited[i] += a }
            }
        }
        // Validator shares: dividends normalised, or the epoch's fallback shares.
        var shares = output.dividends
        if !shares.contains(where: { $0 != .zero }) { shares = output.normValidatorEmission }
        var total = S.zero
        for s in shares { total = total + s }
        var paidValidator: UInt64 = 0
        if total != .zero && validatorPool > 0 {
            for i in 0..<n {
                let a = shares[i].safeDiv(total).amount(of: validatorPool)
                paidValidator += a
                credited[i] += a
            }
        }
        return EpochPayout(credited: credited, burned: burned,
                           dustServer: serverPool - min(serverPool, paidServer),
                           dustValidator: validatorPool - min(validatorPool, paidValidator))
    }
}
