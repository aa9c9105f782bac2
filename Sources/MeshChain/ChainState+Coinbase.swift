import MeshCodec
import MeshCrypto
import MeshIncentive

// The coinbase: each block's TAO emission is divided among started subnets by the moving
// average of their net TAO flow (subtensor's `run_coinbase` with `get_shares_flow`, as it
// ran until June 2026); each subnet's share enters its pool as TAO and alpha at the pool's
// price (what the alpha cap leaves buys alpha for the protocol), and the subnet's own alpha
// emission accrues as pending: 18 % to the owner, then half to miners and half to validators,
// the root stakers' part carved out of the validators' half.

/// What one block's coinbase did to one subnet (for `tensormesh coinbase` and tests).
public struct SubnetEmission: Equatable, Sendable {
    public var netuid: UInt16
    /// The subnet's share of the block emission.
    public var share: U64F64
    /// TAO and alpha injected into the pool, TAO spent buying alpha for the protocol.
    public var taoIn: UInt64
    public var alphaIn: UInt64
    public var excessTao: UInt64
    /// Alpha emitted outside the pool, and its parts.
    public var alphaOut: UInt64
    public var ownerCut: UInt64
    public var server: UInt64
    public var validator: UInt64
    public var root: UInt64
    public var rootRecycled: UInt64
}

extension ChainState {
    /// Non-root subnets whose owner has started emission.
    public func subnetsToEmitTo() -> [UInt16] {
        self.subnets.keys.filter { id in
            guard id != 0, let p = self.subnets[id]?.pool else { return false }
            return p.firstEmissionBlock != 0 && self.number >= p.firstEmissionBlock
        }.sorted()
    }

    /// The TAO weight as a fraction (`TaoWeight / u64::MAX`).
    public var taoWeight: U96F32 { U96F32.ratio(UInt128(self.params.taoWeight), UInt128(UInt64.max)) }

    /// The root stakers' proportion of a subnet's validator emission:
    /// `rootTAO·w / (rootTAO·w + alpha issuance)` (subtensor's `root_proportion`).
    public func rootProportion(_ netuid: UInt16) -> U96F32 {
        guard let pool = self.subnets[netuid]?.pool else { return .zero }
        let rootTao = U96F32(self.subnets[0]?.pool.taoIn ?? 0)
        let weighted = rootTao * self.taoWeight
        let denominator = weighted + U96F32(pool.alphaIssuance)
        return denominator.isZero ? .zero : weighted.safeDiv(denominator)
    }

    /// Updates each subnet's flow moving averages for this block and returns the emission
    /// shares (subtensor's `get_shares_flow`): net flow = user flow minus the protocol's
    /// (scaled so its positive total matches the users'), offset by the lower limit, raised to
    /// the exponent and normalised.
    mutating func flowShares(_ ids: [UInt16]) -> [UInt16: U64F64] {
        let smoothing = I64F64(Int64(clamping: self.params.flowEmaSmoothing)).safeDiv(I64F64(Int64.max))
        let one = I64F64.one
        var emas: [(UInt16, I64F64, I64F64)] = []
        for id in ids {
            var s = self.subnets[id]!
            if s.pool.flowEmaBlock != self.number {
                s.pool.taoFlowEma = (one - smoothing) * s.pool.taoFlowEma + smoothing * I64F64(s.pool.taoFlow)
                s.pool.taoFlow = 0
                if self.params.netFlowEnabled {
                    s.pool.protocolFlowEma = (one - smoothing) * s.pool.protocolFlowEma + smoothing * I64F64(s.pool.protocolFlow)
                    s.pool.protocolFlow = 0
                }
                s.pool.flowEmaBlock = self.number
                self.subnets[id] = s
            }
            emas.append((id, s.pool.taoFlowEma, s.pool.protocolFlowEma))
        }
        var norm = I64F64.zero
        if self.params.netFlowEnabled {
            var userPositive = I64F64.zero, protocolPositive = I64F64.zero
            for (_, u, p) in emas {
                userPositive = userPositive + max(u, .zero)
                protocolPositive = protocolPositive + max(p, .zero)
            }
            if protocolPositive > .zero { norm = min(userPositive.safeDiv(protocolPositive), one) }
        }
        let net: [(UInt16, I64F64)] = emas.map { id, u, p in
            guard self.params.netFlowEnabled else { return (id, u) }
            return (id, u - (p > .zero ? norm * p : p))
        }
        // Lower limit L = max(cutoff, min(0, min flow)); z = max(S − L, 0).
        let minFlow = net.map { min($0.1, .zero) }.min() ?? .zero
        let lower = max(I64F64(bits: Int128(self.params.flowCutoff) << 64), minFlow)
        var z: [(UInt16, U64F64)] = net.map { id, f in (id, f > lower ? (f - lower).nonNegative : .zero) }
        Self.powNormalize(&z, exponent: Int(self.params.flowNormExponent))
        return Dictionary(uniqueKeysWithValues: z)
    }

    /// Normalises `values` raised to `exponent` (1...3) so they sum to one; all zero stays
    /// zero. Values are first scaled so the largest is one (as subtensor's
    /// `inplace_pow_normalize`), so the powers cannot overflow.
    static func powNormalize(_ values: inout [(UInt16, U64F64)], exponent: Int) {
        let top = values.map { $0.1 }.max() ?? .zero
        guard !top.isZero else { return }
        var powered = values.map { id, v -> (UInt16, U64F64) in
            let scaled = v.safeDiv(top)
            var p = scaled
            for _ in 1..<max(1, exponent) { p = p * scaled }
            return (id, p)
        }
        var sum = U64F64.zero
        for (_, p) in powered { sum = sum + p }
        guard !sum.isZero else { return }
        for i in powered.indices { powered[i].1 = powered[i].1.safeDiv(sum) }
        values = powered
    }

    /// Whether root stakers are paid this block: the moving prices of the emitting subnets
    /// add up to more than 1 (`get_network_root_sell_flag`); otherwise their alpha is recycled.
    func rootSellFlag(_ ids: [UInt16]) -> Bool {
        var total = U64F64.zero
        for id in ids { total = total + (self.subnets[id]?.pool.movingPrice ?? .zero) }
        return total > .one
    }

    /// Runs one block's coinbase: mints at most the block emission, spends it into the
    /// started subnets' pools, and accrues each subnet's alpha emission as pending.
    /// Returns the TAO issued (what was not spent is never minted).
    mutating func runCoinbase() -> (issued: UInt64, subnets: [SubnetEmission]) {
        self.runCoinbase(blockEmission: self.params.emission.blockEmission(totalIssuance: self.totalIssuance))
    }

    /// The coinbase with a given TAO block emission (subtensor's `run_coinbase(credit)`); the
    /// subnets' alpha emission follows the schedule on each subnet's alpha issuance.
    mutating func runCoinbase(blockEmission emission: UInt64) -> (issued: UInt64, subnets: [SubnetEmission]) {
        let ids = self.subnetsToEmitTo()
        guard !ids.isEmpty else { return (0, []) }
        let shares = self.flowShares(ids)
        let rootSell = self.rootSellFlag(ids)
        let blockEmission = U96F32(emission)
        let ownerCut = U96F32.ratio(UInt128(self.params.subnetOwnerCut), UInt128(UInt16.max))
        let half = U96F32.ratio(1, 2)
        var issued: UInt64 = 0
        var report: [SubnetEmission] = []
        for id in ids {
            var s = self.subnets[id]!
            let share = shares[id] ?? .zero
            let taoEmission: U96F32 = (U64F64(emission) * share).converted()
            // Pool terms (subtensor's `get_subnet_terms`).
            let alphaEmission = U96F32(self.params.emission.blockEmission(totalIssuance: s.pool.alphaIssuance))
            let price: U96F32 = s.pool.price.converted()
            var taoIn = taoEmission
            var alphaIn = price.isZero ? U96F32.zero : taoEmission.safeDiv(price)
            let cap = min(alphaEmission, blockEmission)
            if alphaIn > cap {
                alphaIn = cap
                taoIn = alphaIn * price
            }
            let excess = taoEmission - taoIn
            var entry = SubnetEmission(netuid: id, share: share, taoIn: taoIn.floorU64, alphaIn: alphaIn.floorU64, excessTao: 0,
                                       alphaOut: 0, ownerCut: 0, server: 0, validator: 0, root: 0, rootRecycled: 0)
            // Inject TAO and alpha at the price; the excess buys alpha for the protocol.
            s.pool.taoIn += entry.taoIn
            s.pool.alphaIn += entry.alphaIn
            issued += entry.taoIn
            s.pool.protocolFlow = s.pool.protocolFlow.addingSaturated(Int64(clamping: entry.taoIn))
            let ex = excess.floorU64
            if ex > 0, let q = try? s.pool.quoteBuy(tao: ex, limit: PriceLimit.price(rao: PriceLimit.maxRao), dropFees: true,
                                                   minimumReserve: self.params.minimumPoolReserve) {
                s.pool.applyBuy(q)
                s.pool.protocolAlpha += q.out
                issued += q.paidIn
                entry.excessTao = q.paidIn
                s.pool.protocolFlow = s.pool.protocolFlow.addingSaturated(Int64(clamping: q.paidIn))
            }
            // Alpha for the participants.
            let alphaOut = alphaEmission
            let created = alphaOut.floorU64
            s.pool.alphaOut += created
            let owner = alphaOut * ownerCut
            let rest = alphaOut - owner
            let rootAlpha = self.rootProportion(id) * rest * half
            let server = rest * half
            let validator = rest - server - rootAlpha
            entry.alphaOut = created
            entry.ownerCut = owner.floorU64
            entry.server = server.floorU64
            entry.validator = validator.floorU64
            entry.root = rootAlpha.floorU64
            s.pool.pendingOwnerCut += entry.ownerCut
            s.pendingServer += entry.server
            s.pendingValidator += entry.validator
            if rootSell {
                s.pool.pendingRoot += entry.root
            } else {
                s.pool.alphaOut -= entry.root
                entry.rootRecycled = entry.root
            }
            // Rounding dust of the split: minted, owned by nobody.
            let parts = entry.ownerCut + entry.server + entry.validator + entry.root
            s.pool.burnedAlpha += created - min(created, parts)
            self.subnets[id] = s
            report.append(entry)
        }
        self.totalIssuance += issued
        self.updateMovingPrices(ids)
        return (issued, report)
    }

    /// The price moving average of each emitting subnet, after the coinbase used it
    /// (`update_moving_price`): α = movingAlpha · b / (b + halving), b = blocks since start.
    mutating func updateMovingPrices(_ ids: [UInt16]) {
        let movingAlpha = U64F64.ratio(UInt128(self.params.movingAlphaPpb), 1_000_000_000)
        let halving = U64F64(self.params.emaPriceHalvingBlocks)
        for id in ids {
            var s = self.subnets[id]!
            let start = s.pool.firstEmissionBlock.subtractingSaturated(1)
            let blocks = U64F64(self.number.subtractingSaturated(start))
            let a = movingAlpha * blocks.safeDiv(blocks + halving)
            let current = a * min(s.pool.price, .one)
            s.pool.movingPrice = current + (U64F64.one - a) * s.pool.movingPrice
            self.subnets[id] = s
        }
    }
}
