import MeshCodec
import MeshCrypto
import MeshIncentive

/// A hotkey on one subnet (the key of its stake pool).
public struct HotkeyNet: Hashable, Sendable, Comparable, BinaryCodable {
    public var hotkey: AccountID
    public var netuid: UInt16

    public init(hotkey: AccountID, netuid: UInt16) {
        self.hotkey = hotkey
        self.netuid = netuid
    }

    public static func < (a: HotkeyNet, b: HotkeyNet) -> Bool {
        a.netuid != b.netuid ? a.netuid < b.netuid : a.hotkey < b.hotkey
    }

    public func encode(to w: inout ByteWriter) { self.hotkey.encode(to: &w); w.u16(self.netuid) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.hotkey = try AccountID(from: &r)
        self.netuid = try r.u16()
    }
}

/// All stake on a hotkey in one subnet, held as a share pool: every staker (coldkey) holds
/// shares, and a staker's stake is `value × shares / totalShares` (subtensor's
/// `TotalHotkeyAlpha`, `TotalHotkeyShares` and `Alpha`). Adding to `value` without minting
/// shares pays every staker in proportion to its stake — this is how a validator's
/// nominators earn its dividends.
///
/// Shares are 128-bit integers: the first stake mints `amount × 2^64` shares, later stakes
/// `floor(amount × shares / value)`. Minting floors and burning rounds up, so the ratio
/// shares/value never rises above 2^64, every share count stays below 2^119 (stake is below
/// 2^55 rao), and no staker can take out more than the pool holds: the values of all stakers
/// (each floored) add up to at most `value`.
public struct HotkeyPool: Equatable, Sendable, BinaryCodable {
    /// Stake on the hotkey (rao on the root subnet, alpha on the others).
    public var value: UInt64
    /// Shares outstanding (the sum of every staker's shares).
    public var shares: UInt128

    public init(value: UInt64 = 0, shares: UInt128 = 0) {
        self.value = value
        self.shares = shares
    }

    public func encode(to w: inout ByteWriter) { w.u64(self.value); w.u128(high: UInt64(self.shares >> 64), low: UInt64(truncatingIfNeeded: self.shares)) }
    public init(from r: inout ByteReader) throws(CodecError) {
        self.value = try r.u64()
        self.shares = StakeShares.read(try r.u64(), try r.u64())
    }

    /// The stake `shares` stand for (floored).
    public func value(of holder: UInt128) -> UInt64 {
        guard self.shares > 0, holder > 0 else { return 0 }
        // holder ≤ shares, so the quotient is at most `value`.
        return UInt64(WideMath.mulDiv(UInt128(self.value), holder, self.shares) ?? 0)
    }

    /// Shares minted for adding `amount` (nil: the pool cannot represent it — the amount is too
    /// small to buy one share, or the count would overflow).
    public func sharesToMint(for amount: UInt64) -> UInt128? {
        guard amount > 0 else { return 0 }
        if self.shares == 0 {
            // A fresh pool (any value left in it goes to this first staker, as on subtensor).
            return UInt128(amount) << 64
        }
        guard self.value > 0, let minted = WideMath.mulDiv(UInt128(amount), self.shares, UInt128(self.value)), minted > 0,
              minted <= UInt128.max - self.shares else { return nil }
        return minted
    }

    /// Shares to burn for taking `amount` out of a holding of `holder` shares: rounded up, so
    /// the remaining stakers never lose; all of them when the whole stake leaves.
    public func sharesToBurn(for amount: UInt64, holder: UInt128) -> UInt128 {
        if amount >= self.value(of: holder) { return holder }
        let burn = WideMath.mulDivCeil(UInt128(amount), self.shares, UInt128(self.value)) ?? holder
        return min(burn, holder)
    }
}

/// Helpers for 128-bit share counts in the binary codec.
enum StakeShares {
    static func write(_ x: UInt128, to w: inout ByteWriter) { w.u128(high: UInt64(x >> 64), low: UInt64(truncatingIfNeeded: x)) }
    static func read(_ high: UInt64, _ low: UInt64) -> UInt128 { (UInt128(high) << 64) | UInt128(low) }
}
