import MeshCodec
import MeshCrypto
import MeshIncentive

/// A subnet's TAO/alpha pool and the emission state kept with it (dynamic TAO).
///
/// A dynamic subnet trades its alpha against TAO in a constant-product pool (subtensor's
/// balancer pool with equal weights, which is what the protocol keeps it at by injecting TAO
/// and alpha in proportion to the price): price = `taoIn / alphaIn` TAO per alpha. The root
/// subnet is stable: stake there is TAO, one for one, and nothing is swapped.
///
/// Alpha is accounted exactly: `alphaOut` (alpha outside the pool) is the sum of every stake
/// on the subnet, the pending emission, the alpha the protocol bought (`protocolAlpha`) and the
/// alpha burned (`burnedAlpha`: the owner hotkey's mining incentive and rounding dust).
public struct SubnetPool: Equatable, Sendable, BinaryCodable {
    /// 0: stable (the root subnet, 1 TAO = 1 unit), 1: dynamic (constant product).
    public var mechanism: UInt8
    /// TAO reserve (rao). On the root subnet: all root stake.
    public var taoIn: Rao
    /// Alpha reserve.
    public var alphaIn: UInt64
    /// Alpha outstanding (everything not in the reserve).
    public var alphaOut: UInt64
    /// Alpha bought by the protocol with emission it could not inject (part of `alphaOut`).
    public var protocolAlpha: UInt64
    /// Alpha burned (part of `alphaOut`).
    public var burnedAlpha: UInt64
    /// Swap fee as a u16 proportion (subtensor's default 33 ≈ 0.05 %), paid to the block's author.
    public var feeRate: UInt16
    /// Net TAO staked in this block by users (in − out), and its moving average.
    public var taoFlow: Int64
    public var taoFlowEma: I64F64
    /// Net TAO the protocol put in this block (injections, buys), and its moving average.
    public var protocolFlow: Int64
    public var protocolFlowEma: I64F64
    /// Block of the last moving-average update (0: never).
    public var flowEmaBlock: UInt64
    /// Moving average of the price (capped at 1), for pruning and the root-sell switch.
    public var movingPrice: U64F64
    /// Alpha pending for the root stakers and the owner, paid at the next epoch.
    public var pendingRoot: UInt64
    public var pendingOwnerCut: UInt64
    /// The first block of emission (0: the owner has not started the subnet).
    public var firstEmissionBlock: UInt64
    /// The alpha token's symbol.
    public var symbol: String

    public init(mechanism: UInt8, taoIn: Rao = 0, alphaIn: UInt64 = 0, symbol: String) {
        self.mechanism = mechanism
        self.taoIn = taoIn
        self.alphaIn = alphaIn
        self.alphaOut = 0
        self.protocolAlpha = 0
        self.burnedAlpha = 0
        self.feeRate = 33
        self.taoFlow = 0
        self.taoFlowEma = .zero
        self.protocolFlow = 0
        self.protocolFlowEma = .zero
        self.flowEmaBlock = 0
        self.movingPrice = .zero
        self.pendingRoot = 0
        self.pendingOwnerCut = 0
        self.firstEmissionBlock = 0
        self.symbol = symbol
    }

    public var isStable: Bool { self.mechanism == 0 }

    /// Alpha issued on the subnet (reserve plus outstanding).
    public var alphaIssuance: UInt64 { self.alphaIn.addingSaturated(self.alphaOut) }

    /// TAO per alpha (1 on a stable subnet; 0 for an empty reserve).
    public var price: U64F64 {
        if self.isStable { return .one }
        return Self.price(tao: UInt128(self.taoIn), alpha: UInt128(self.alphaIn))
    }

    static func price(tao: UInt128, alpha: UInt128) -> U64F64 { alpha == 0 ? .zero : U64F64.ratio(tao, alpha) }

    /// Price as rao per alpha (the unit of limit prices in calls), floored.
    public var priceRao: UInt64 { (self.price * U64F64(Token.tao)).floorU64 }

    public func encode(to w: inout ByteWriter) {
        w.u8(self.mechanism); w.u64(self.taoIn); w.u64(self.alphaIn); w.u64(self.alphaOut)
        w.u64(self.protocolAlpha); w.u64(self.burnedAlpha); w.u16(self.feeRate)
        w.i64(self.taoFlow); Self.write(self.taoFlowEma, &w); w.i64(self.protocolFlow); Self.write(self.protocolFlowEma, &w)
        w.u64(self.flowEmaBlock); StakeShares.write(self.movingPrice.bits, to: &w)
        w.u64(self.pendingRoot); w.u64(self.pendingOwnerCut); w.u64(self.firstEmissionBlock); w.string(self.symbol)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.mechanism = try r.u8()
        guard self.mechanism <= 1 else { throw .invalidValue(field: "pool.mechanism", reason: "\(self.mechanism)") }
        self.taoIn = try r.u64(); self.alphaIn = try r.u64(); self.alphaOut = try r.u64()
        self.protocolAlpha = try r.u64(); self.burnedAlpha = try r.u64(); self.feeRate = try r.u16()
        self.taoFlow = try r.i64(); self.taoFlowEma = try Self.read(&r); self.protocolFlow = try r.i64(); self.protocolFlowEma = try Self.read(&r)
        self.flowEmaBlock = try r.u64(); self.movingPrice = U64F64(bits: StakeShares.read(try r.u64(), try r.u64()))
        self.pendingRoot = try r.u64(); self.pendingOwnerCut = try r.u64(); self.firstEmissionBlock = try r.u64()
        self.symbol = try r.string(field: "pool.symbol", limit: 32)
    }

    static func write(_ x: I64F64, _ w: inout ByteWriter) { StakeShares.write(UInt128(bitPattern: x.bits), to: &w) }
    static func read(_ r: inout ByteReader) throws(CodecError) -> I64F64 {
        I64F64(bits: Int128(bitPattern: StakeShares.read(try r.u64(), try r.u64())))
    }
}

/// Why a swap cannot run (subtensor's swap errors).
public enum SwapError: Error, Equatable, Sendable {
    /// The reserve paid out is below the minimum, or the swap would pay nothing.
    case reservesTooLow
    /// The input exceeds 1,000 times the input reserve.
    case inputTooLarge(maximum: UInt64)
    /// The limit price is already passed by the current price.
    case priceLimitExceeded(price: U64F64, limit: U64F64)

    public var dispatchError: DispatchError {
        switch self {
        case .reservesTooLow: return DispatchError("ReservesTooLow", "the pool's reserves are too low for this swap")
        case .inputTooLarge(let m): return DispatchError("InsufficientLiquidity", "a swap may take at most 1000× the pool's reserve (\(m))")
        case .priceLimitExceeded(let p, let l):
            return DispatchError("PriceLimitExceeded", "the price \(p.decimalString()) τ/α is already past the limit \(l.decimalString())")
        }
    }
}

/// The outcome of a swap through a subnet pool.
public struct SwapQuote: Equatable, Sendable {
    /// Input that entered the reserve (excluding the fee).
    public var paidIn: UInt64
    /// Fee, in the input token.
    public var fee: UInt64
    /// Output paid from the other reserve.
    public var out: UInt64
    public var priceBefore: U64F64
    public var priceAfter: U64F64
    /// Whether the limit price cut the swap short.
    public var limited: Bool
}

extension SubnetPool {
    /// Largest input relative to the input reserve (`MAX_SWAP_INPUT_RESERVE_MULTIPLIER`).
    public static let maxInputMultiplier: UInt64 = 1000

    /// `floor(amount × rate / 65535)` as subtensor computes it in U64F64.
    func feeFor(_ amount: UInt64, dropFees: Bool) -> UInt64 {
        if dropFees || self.isStable { return 0 }
        let rate = U64F64(UInt64(self.feeRate)).safeDiv(U64F64(UInt64(UInt16.max)))
        return (U64F64(amount) * rate).floorU64
    }

    /// The fee when the limit cut the input to `delta`: `delta × rate / (65535 − rate)`.
    func feeForLimited(_ delta: UInt64, dropFees: Bool) -> UInt64 {
        if dropFees || self.isStable { return 0 }
        let rate = U64F64(UInt64(self.feeRate))
        return (U64F64(delta) * rate.safeDiv(U64F64(UInt64(UInt16.max)) - rate)).floorU64
    }

    /// Alpha out for `dy` TAO in: `floor(alphaIn × dy / (taoIn + dy))` (the pool's product
    /// never falls).
    public func alphaOut(forTao dy: UInt64) -> UInt64 {
        if self.isStable { return dy }
        let den = UInt128(self.taoIn) + UInt128(dy)
        guard den > 0 else { return 0 }
        return UInt64(WideMath.mulDiv(UInt128(self.alphaIn), UInt128(dy), den) ?? 0)
    }

    /// TAO out for `dx` alpha in: `floor(taoIn × dx / (alphaIn + dx))`.
    public func taoOut(forAlpha dx: UInt64) -> UInt64 {
        if self.isStable { return dx }
        let den = UInt128(self.alphaIn) + UInt128(dx)
        guard den > 0 else { return 0 }
        return UInt64(WideMath.mulDiv(UInt128(self.taoIn), UInt128(dx), den) ?? 0)
    }

    /// The price after buying with `dy` TAO.
    public func priceAfterBuy(_ dy: UInt64) -> U64F64 {
        if self.isStable { return .one }
        let x = UInt128(self.alphaIn) - UInt128(self.alphaOut(forTao: dy))
        return x == 0 ? .max : Self.price(tao: UInt128(self.taoIn) + UInt128(dy), alpha: x)
    }

    /// The price after selling `dx` alpha.
    public func priceAfterSell(_ dx: UInt64) -> U64F64 {
        if self.isStable { return .one }
        return Self.price(tao: UInt128(self.taoIn) - UInt128(self.taoOut(forAlpha: dx)), alpha: UInt128(self.alphaIn) + UInt128(dx))
    }

    /// The most TAO (excluding the fee) a buy may put in before the price passes `limit`.
    public func maxBuyInput(toPrice limit: U64F64) -> UInt64 {
        let cap = self.taoIn.multipliedSaturated(by: Self.maxInputMultiplier)
        if self.priceAfterBuy(cap) <= limit { return cap }
        var lo: UInt64 = 0, hi = cap  // price(lo) ≤ limit < price(hi)
        if self.priceAfterBuy(0) > limit { return 0 }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if self.priceAfterBuy(mid) <= limit { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// The most alpha (excluding the fee) a sale may put in before the price falls below `limit`.
    public func maxSellInput(toPrice limit: U64F64) -> UInt64 {
        let cap = self.alphaIn.multipliedSaturated(by: Self.maxInputMultiplier)
        if self.priceAfterSell(cap) >= limit { return cap }
        var lo: UInt64 = 0, hi = cap
        if self.priceAfterSell(0) < limit { return 0 }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if self.priceAfterSell(mid) >= limit { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Buys alpha with `tao` (fee included), stopping at `limit` (subtensor's swap step for
    /// `GetAlphaForTao`). Pure: the caller applies the quote.
    public func quoteBuy(tao: UInt64, limit: U64F64, dropFees: Bool, minimumReserve: UInt64) throws(SwapError) -> SwapQuote {
        let before = self.price
        if self.isStable {
            return SwapQuote(paidIn: tao, fee: 0, out: tao, priceBefore: .one, priceAfter: .one, limited: false)
        }
        guard self.alphaIn >= minimumReserve else { throw .reservesTooLow }
        var fee = self.feeFor(tao, dropFees: dropFees)
        let requested = tao - fee
        let maxInput = self.taoIn.multipliedSaturated(by: Self.maxInputMultiplier)
        guard requested <= maxInput else { throw .inputTooLarge(maximum: maxInput) }
        guard before < limit else { throw .priceLimitExceeded(price: before, limit: limit) }
        var delta = requested
        var limited = false
        if self.priceAfterBuy(requested) > limit {
            delta = self.maxBuyInput(toPrice: limit)
            fee = self.feeForLimited(delta, dropFees: dropFees)
            limited = true
        }
        let out = self.alphaOut(forTao: delta)
        if delta > 0 && out == 0 { throw .reservesTooLow }
        guard out <= self.alphaIn else { throw .reservesTooLow }
        return SwapQuote(paidIn: delta, fee: fee, out: out, priceBefore: before, priceAfter: self.priceAfterBuy(delta), limited: limited)
    }

    /// Sells `alpha` (fee included) for TAO, stopping at `limit` (`GetTaoForAlpha`).
    public func quoteSell(alpha: UInt64, limit: U64F64, dropFees: Bool, minimumReserve: UInt64) throws(SwapError) -> SwapQuote {
        let before = self.price
        if self.isStable {
            return SwapQuote(paidIn: alpha, fee: 0, out: alpha, priceBefore: .one, priceAfter: .one, limited: false)
        }
        guard self.taoIn >= minimumReserve else { throw .reservesTooLow }
        var fee = self.feeFor(alpha, dropFees: dropFees)
        let requested = alpha - fee
        let maxInput = self.alphaIn.multipliedSaturated(by: Self.maxInputMultiplier)
        guard requested <= maxInput else { throw .inputTooLarge(maximum: maxInput) }
        guard before > limit else { throw .priceLimitExceeded(price: before, limit: limit) }
        var delta = requested
        var limited = false
        if self.priceAfterSell(requested) < limit {
            delta = self.maxSellInput(toPrice: limit)
            fee = self.feeForLimited(delta, dropFees: dropFees)
            limited = true
        }
        let out = self.taoOut(forAlpha: delta)
        if delta > 0 && out == 0 { throw .reservesTooLow }
        guard out <= self.taoIn else { throw .reservesTooLow }
        return SwapQuote(paidIn: delta, fee: fee, out: out, priceBefore: before, priceAfter: self.priceAfterSell(delta), limited: limited)
    }

    /// Applies a buy: TAO into the reserve, alpha out of it.
    mutating func applyBuy(_ q: SwapQuote) {
        self.taoIn += q.paidIn
        if self.isStable {
            self.alphaOut += q.out
        } else {
            self.alphaIn -= q.out
            self.alphaOut += q.out
        }
    }

    /// Applies a sale: alpha into the reserve, TAO out of it.
    mutating func applySell(_ q: SwapQuote) {
        // The quote checked `out` against the reserve; the alpha sold came out of stakes or
        // pending emission, which `alphaOut` counts (saturating all the same: never trap).
        self.taoIn -= q.out
        if !self.isStable { self.alphaIn += q.paidIn }
        self.alphaOut = self.alphaOut.subtractingSaturated(q.paidIn)
    }
}
