import MeshCodec
import MeshCrypto
import MeshIncentive

// Staking as a swap (dynamic TAO): adding stake buys the subnet's alpha with TAO through its
// pool, removing stake sells it back, moving stake between subnets does both. Every call has
// a limit price and "allow partial" (subtensor's `_limit` extrinsics); without a limit the
// price may move anywhere. The swap fee goes to the block's author.

/// A limit price: rao per alpha (`TaoBalance` in subtensor's `_limit` calls).
public enum PriceLimit {
    /// The highest limit (`max_price`: 10^18 rao per alpha).
    public static let maxRao: UInt64 = 1_000_000_000_000_000_000
    /// The lowest limit (`min_price`: 1,000 rao per alpha).
    public static let minRao: UInt64 = 1_000

    /// rao per alpha as a price (TAO per alpha).
    public static func price(rao: UInt64) -> U64F64 { U64F64.ratio(UInt128(rao), UInt128(Token.tao)) }
}

extension ChainState {
    /// Buys alpha on `netuid` with `tao` from `coldkey`'s balance and stakes it on `hotkey`
    /// (subtensor's `stake_into_subnet`). Returns the alpha staked and the TAO spent.
    @discardableResult
    mutating func stakeIntoSubnet(coldkey: AccountID, hotkey: AccountID, netuid: UInt16, tao: UInt64, limit: U64F64,
                                  dropFees: Bool) throws(DispatchError) -> (alpha: UInt64, spent: UInt64) {
        guard var s = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        let q: SwapQuote
        do { q = try s.pool.quoteBuy(tao: tao, limit: limit, dropFees: dropFees, minimumReserve: self.params.minimumPoolReserve) } catch {
            throw error.dispatchError
        }
        guard q.out > 0 else { throw DispatchError("AmountTooLow", "\(Token.format(tao)) buys no alpha at this price") }
        let spent = q.paidIn + q.fee
        try self.debit(coldkey, spent)
        s.pool.applyBuy(q)
        s.pool.taoFlow = s.pool.taoFlow.addingSaturated(Int64(clamping: q.paidIn))
        self.subnets[netuid] = s
        self.payFee(q.fee)
        try self.increaseStake(coldkey: coldkey, hotkey: hotkey, netuid: netuid, amount: q.out, deposit: q.out)
        return (q.out, spent)
    }

    /// Sells `alpha` of `coldkey`'s stake on `hotkey` in `netuid` for TAO to its balance
    /// (subtensor's `unstake_from_subnet`): what the limit leaves unsold stays staked; the
    /// alpha fee is sold without a fee for the block's author. Returns the TAO received, the
    /// alpha that left the stake and the deposit that left with it.
    @discardableResult
    mutating func unstakeFromSubnet(coldkey: AccountID, hotkey: AccountID, netuid: UInt16, alpha: UInt64, limit: U64F64,
                                    dropFees: Bool) throws(DispatchError) -> (tao: UInt64, sold: UInt64, deposit: UInt64) {
        guard var s = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        let q: SwapQuote
        do { q = try s.pool.quoteSell(alpha: alpha, limit: limit, dropFees: dropFees, minimumReserve: self.params.minimumPoolReserve) } catch {
            throw error.dispatchError
        }
        let used = q.paidIn + q.fee
        let deposit = try self.decreaseStake(coldkey: coldkey, hotkey: hotkey, netuid: netuid, amount: used)
        s.pool.applySell(q)
        var outflow = q.out
        if q.fee > 0 {
            // The fee, in alpha, is sold fee-free and its TAO goes to the block's author.
            if let f = try? s.pool.quoteSell(alpha: q.fee, limit: .zero, dropFees: true, minimumReserve: 0) {
                s.pool.applySell(f)
                self.payFee(f.out)
                outflow = outflow.addingSaturated(f.out)
            } else {
                // No TAO left to pay it with: the fee alpha is burned (it stays outstanding).
                s.pool.burnedAlpha += q.fee
            }
        }
        s.pool.taoFlow = s.pool.taoFlow.subtractingSaturated(Int64(clamping: outflow))
        self.subnets[netuid] = s
        self.credit(coldkey, q.out)
        return (q.out, used, deposit)
    }

    /// Credits a swap fee (TAO) to the block's author, or burns it when there is none.
    mutating func payFee(_ fee: UInt64) {
        guard fee > 0 else { return }
        if let author = self.blockAuthor { self.credit(author, fee) } else { self.totalBurned += fee }
    }
}
