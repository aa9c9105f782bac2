import MeshCodec
import MeshIncentive

/// How one epoch's pending emission splits by uid, before delegation (subtensor's
/// `distribute_emission` up to `calculate_dividend_and_incentive_distribution`).
///
/// Miners receive `incentive_i × server` (floored). Validators share `validator` by the epoch's
/// normalised validator emission (dividends, or active stake when nobody earned anything), each
/// floored. When no miner earned incentive, validators receive the server half too. Whatever
/// rounding leaves, or a pool nobody may take (no dividends at all), stays pending for the next
/// epoch: nothing is created and nothing is lost.
public struct EpochDistribution: Equatable, Sendable {
    /// Alpha (rao on a stable subnet) per uid for mining.
    public var incentive: [UInt64]
    /// Alpha per uid for validating, before the validator's take and its stakers' split.
    public var dividends: [UInt64]
    /// What stays pending: (server, validator).
    public var leftServer: UInt64
    public var leftValidator: UInt64

    public static func split<S: YumaScalar>(_ output: EpochOutput<S>, server: UInt64, validator: UInt64) -> EpochDistribution {
        let n = output.incentive.count
        var incentive = [UInt64](repeating: 0, count: n)
        var dividends = [UInt64](repeating: 0, count: n)
        let anyIncentive = output.incentive.contains { $0 != .zero }
        let serverPool = anyIncentive ? server : 0
        let validatorPool = anyIncentive ? validator : validator.addingSaturated(server)
        var paidServer: UInt64 = 0
        if serverPool > 0 {
            for i in 0..<n {
                incentive[i] = output.incentive[i].amount(of: serverPool)
                paidServer = paidServer.addingSaturated(incentive[i])
            }
        }
        // Validator shares: the epoch's normalised validator emission (dividends over the
        // emission sum, or the active-stake fallback), normalised again to sum to one.
        let shares = output.normValidatorEmission
        var total = S.zero
        for s in shares { total = total + s }
        var paidValidator: UInt64 = 0
        if total != .zero && validatorPool > 0 {
            for i in 0..<n {
                dividends[i] = shares[i].safeDiv(total).amount(of: validatorPool)
                paidValidator = paidValidator.addingSaturated(dividends[i])
            }
        }
        // Floors keep each sum within its pool; clamp anyway so a broken invariant can only
        // leave value pending, never create it.
        if paidServer > serverPool || paidValidator > validatorPool {
            return EpochDistribution(incentive: [UInt64](repeating: 0, count: n), dividends: [UInt64](repeating: 0, count: n),
                                     leftServer: server, leftValidator: validator)
        }
        let leftServer = serverPool - paidServer
        let leftValidator = validatorPool - paidValidator
        return EpochDistribution(incentive: incentive, dividends: dividends, leftServer: leftServer, leftValidator: leftValidator)
    }
}
