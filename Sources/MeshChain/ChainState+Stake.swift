import MeshCodec
import MeshCrypto
import MeshIncentive

// The stake ledger: share pools per (hotkey, subnet), hotkey ownership and delegate takes.
// These are the primitives every stake-moving call and the epoch payout go through; none of
// them creates or destroys value (callers move the matching amount in or out of balances,
// pools or pending emission).

extension ChainState {
    /// Adds `amount` to `coldkey`'s stake on `hotkey` in `netuid` (mints shares at the pool's
    /// rate; subtensor's `increase_stake_for_hotkey_and_coldkey_on_subnet`).
    /// `deposit` is what the staker paid in (counted against its earnings); rewards pass 0.
    mutating func increaseStake(coldkey: AccountID, hotkey: AccountID, netuid: UInt16, amount: UInt64, deposit: UInt64 = 0) throws(DispatchError) {
        guard amount > 0 else { return }
        let pk = HotkeyNet(hotkey: hotkey, netuid: netuid)
        var pool = self.hotkeyPools[pk] ?? HotkeyPool()
        guard let minted = pool.sharesToMint(for: amount), pool.value <= UInt64.max - amount else {
            throw DispatchError("InsufficientLiquidity", "the stake pool of \(hotkey.hex.prefix(16))… on subnet \(netuid) cannot take \(amount) more")
        }
        let key = StakeKey(coldkey: coldkey, hotkey: hotkey, netuid: netuid)
        pool.shares += minted  // checked by sharesToMint
        pool.value += amount
        self.hotkeyPools[pk] = pool
        self.stakeShares[key] = (self.stakeShares[key] ?? 0) + minted
        if deposit > 0 { self.stakeDeposits[key] = (self.stakeDeposits[key] ?? 0).addingSaturated(deposit) }
    }

    /// Takes `amount` out of `coldkey`'s stake on `hotkey` in `netuid` (burns shares, rounded
    /// up; all of them when the whole stake leaves). Returns the part of the staker's deposit
    /// that left with it (in proportion).
    @discardableResult
    mutating func decreaseStake(coldkey: AccountID, hotkey: AccountID, netuid: UInt16, amount: UInt64) throws(DispatchError) -> UInt64 {
        guard amount > 0 else { return 0 }
        let key = StakeKey(coldkey: coldkey, hotkey: hotkey, netuid: netuid)
        let pk = HotkeyNet(hotkey: hotkey, netuid: netuid)
        guard let held = self.stakeShares[key], var pool = self.hotkeyPools[pk] else {
            throw DispatchError("NotEnoughStakeToWithdraw", "no stake on \(hotkey.hex.prefix(16))… in subnet \(netuid)")
        }
        let have = pool.value(of: held)
        guard amount <= have else {
            throw DispatchError("NotEnoughStakeToWithdraw", "staked \(have) on this hotkey in subnet \(netuid), asked \(amount)")
        }
        let burn = pool.sharesToBurn(for: amount, holder: held)
        pool.shares -= burn
        pool.value -= amount
        self.stakeShares[key] = held == burn ? nil : held - burn
        self.hotkeyPools[pk] = (pool.shares == 0 && pool.value == 0) ? nil : pool
        // The deposit leaves in proportion to the stake that left.
        let deposit = self.stakeDeposits[key] ?? 0
        let gone = held == burn ? deposit : UInt64(WideMath.mulDiv(UInt128(deposit), UInt128(amount), UInt128(have)) ?? UInt128(deposit))
        self.stakeDeposits[key] = (held == burn || deposit == gone) ? nil : deposit - gone
        return gone
    }

    /// What a staker earned on (coldkey, hotkey, netuid): its stake beyond its net deposit.
    public func stakeEarnings(coldkey: AccountID, hotkey: AccountID, netuid: UInt16) -> UInt64 {
        let key = StakeKey(coldkey: coldkey, hotkey: hotkey, netuid: netuid)
        return self.stake(coldkey: coldkey, hotkey: hotkey, netuid: netuid).subtractingSaturated(self.stakeDeposits[key] ?? 0)
    }

    /// Adds `amount` to a hotkey's pool without minting shares: every staker on it gains in
    /// proportion to its stake (subtensor's `increase_stake_for_hotkey_on_subnet`).
    mutating func increaseStakeForAll(hotkey: AccountID, netuid: UInt16, amount: UInt64) {
        guard amount > 0 else { return }
        let pk = HotkeyNet(hotkey: hotkey, netuid: netuid)
        var pool = self.hotkeyPools[pk] ?? HotkeyPool()
        pool.value = pool.value.addingSaturated(amount)  // below 2^63: supply-capped
        self.hotkeyPools[pk] = pool
    }

    /// Makes `coldkey` the owner of `hotkey` if nobody owns it; refuses when another does.
    mutating func claimHotkey(_ hotkey: AccountID, by coldkey: AccountID) throws(DispatchError) {
        if let owner = self.hotkeyOwners[hotkey] {
            guard owner == coldkey else {
                throw DispatchError("NonAssociatedColdKey", "hotkey \(hotkey.hex.prefix(16))… belongs to another coldkey")
            }
            return
        }
        self.hotkeyOwners[hotkey] = coldkey
    }

    // MARK: Takes

    /// Lowers a hotkey's take at once (subtensor's `decrease_take`).
    mutating func decreaseTake(hotkey: AccountID, take: UInt16, signer: AccountID, number: UInt64) throws(DispatchError) {
        try self.requireOwner(hotkey, signer)
        let current = self.delegateTake(of: hotkey)
        guard take < current else { throw DispatchError("DelegateTakeTooLow", "take \(take) is not below the current \(current); use increase") }
        guard take >= self.params.minDelegateTake else {
            throw DispatchError("DelegateTakeTooLow", "take \(take) is below the minimum \(self.params.minDelegateTake)")
        }
        self.delegateTakes[hotkey] = take
        self.takeChangedAt[hotkey] = number
    }

    /// Raises a hotkey's take, at most once per `delegateTakeRateLimit` blocks after any take
    /// change (subtensor's `increase_take`).
    mutating func increaseTake(hotkey: AccountID, take: UInt16, signer: AccountID, number: UInt64) throws(DispatchError) {
        try self.requireOwner(hotkey, signer)
        let current = self.delegateTake(of: hotkey)
        guard take > current else { throw DispatchError("DelegateTakeTooLow", "take \(take) is not above the current \(current); use decrease") }
        guard take <= self.params.maxDelegateTake else {
            throw DispatchError("DelegateTakeTooHigh", "take \(take) is above the maximum \(self.params.maxDelegateTake)")
        }
        let limit = self.params.delegateTakeRateLimit
        if let last = self.takeChangedAt[hotkey], last != 0, limit != 0, number.subtractingSaturated(last) <= limit {
            throw DispatchError("DelegateTxRateLimitExceeded", "the take changed at block \(last); it may rise again after \(limit) blocks",
                                allowedAt: last.addingSaturated(limit).addingSaturated(1))
        }
        self.delegateTakes[hotkey] = take
        self.takeChangedAt[hotkey] = number
    }

    func requireOwner(_ hotkey: AccountID, _ signer: AccountID) throws(DispatchError) {
        guard let owner = self.hotkeyOwners[hotkey] else {
            throw DispatchError("HotKeyAccountNotExists", "hotkey \(hotkey.hex.prefix(16))… is not registered")
        }
        guard owner == signer else {
            throw DispatchError("NonAssociatedColdKey", "hotkey \(hotkey.hex.prefix(16))… is owned by another coldkey")
        }
    }
}
