import MeshCodec
import MeshCrypto
import MeshIncentive

/// What the end-of-block hooks did (for logs and metrics).
public struct BlockEffects: Sendable, Equatable {
    public var minted: Rao = 0
    public var epochsRun: [UInt16] = []
    public var digest: [DigestItem] = []
    /// What the coinbase did per subnet.
    public var coinbase: [SubnetEmission] = []
}

extension ChainState {
    /// The validator whose turn slot `slot` is (Aura: round robin over the current set).
    public func slotAuthor(_ slot: UInt64) -> AccountID? {
        guard !self.authorities.isEmpty else { return nil }
        return self.authorities[Int(slot % UInt64(self.authorities.count))].id
    }

    /// Start-of-block: number and time, burn decay, validator-set enactment.
    public mutating func beginBlock(number: UInt64, timestamp: UInt64) {
        self.number = number
        self.lastTimestamp = timestamp
        if let pending = self.pendingAuthorityChange, number >= pending.enactAt {
            self.authorities = pending.authorities
            self.authoritySetId += 1
            self.pendingAuthorityChange = nil
        }
        let halfLife = max(1, self.params.burnHalfLife)
        for id in self.subnets.keys {
            var s = self.subnets[id]!
            // Exponential decay toward the floor: burn -= burn * ln2 / halfLife per block.
            let decay = UInt64((UInt128(s.burn) * 693) / (UInt128(halfLife) * 1000))
            s.burn = max(s.params.minBurn, s.burn - min(decay, s.burn))
            s.registrationsThisBlock = 0
            self.subnets[id] = s
        }
    }

    /// End-of-block: mint this block's emission into the subnets' pools, run due epochs and
    /// pay them out, and at authority-epoch boundaries schedule a validator-set change.
    public mutating func endBlock() -> BlockEffects {
        var effects = BlockEffects()
        let number = self.number
        // Emission: the coinbase spends this block's TAO into the started subnets' pools.
        let coinbase = self.runCoinbase()
        effects.minted = coinbase.issued
        effects.coinbase = coinbase.subnets
        // Epochs, then the children whose cooldown passed.
        for id in self.subnets.keys.sorted() where id != 0 {
            let s = self.subnets[id]!
            if !s.neurons.isEmpty && number >= s.lastEpochBlock + s.params.tempo {
                self.runEpoch(netuid: id)
                self.applyPendingChildren(netuid: id)
                effects.epochsRun.append(id)
            }
        }
        // Validator set from stake on the root subnet.
        if number % self.params.authorityEpochLength == 0 && self.pendingAuthorityChange == nil {
            let next = self.computeAuthorities()
            if !next.isEmpty && next != self.authorities {
                self.pendingAuthorityChange = PendingAuthorityChange(authorities: next, enactAt: number + self.params.authorityChangeDelay, forced: false)
                effects.digest.append(.scheduledChange(authorities: next, delay: self.params.authorityChangeDelay))
            }
        }
        if let forced = self.forcedChangeSignal {
            effects.digest.append(.forcedChange(authorities: forced.authorities, delay: forced.enactAt > number ? forced.enactAt - number : 0))
            self.forcedChangeSignal = nil
        }
        return effects
    }

    /// The top validators by stake on netuid 0 (at least `minValidatorStake` each).
    public func computeAuthorities() -> [WeightedAuthority] {
        let byHotkey = self.stakeByHotkey(netuid: 0)
        let ranked = byHotkey.filter { $0.value >= self.params.minValidatorStake }.sorted { a, b in
            a.value != b.value ? a.value > b.value : a.key < b.key
        }
        return ranked.prefix(Int(self.params.maxAuthorities)).map { WeightedAuthority(id: $0.key, weight: max(1, $0.value / 1_000_000)) }
            .sorted { $0.id < $1.id }
    }

    /// Runs one Yuma epoch on a subnet and pays out its pending emission (subtensor's
    /// `distribute_emission`): the owner's cut to the owner's hotkey; miners' incentive staked
    /// for each miner's owner (burned on the owner's own hotkeys); validators' dividends shared
    /// with their parent hotkeys, then split into an alpha part (paid from the validators'
    /// pending alpha) and a root part (from the root stakers' pending alpha, sold for TAO and
    /// added to the hotkey's root stake) by the hotkey's alpha and weighted root stake; each part
    /// pays the hotkey's owner its take and the rest to everyone staked on the hotkey. What
    /// nobody may take is recycled.
    public mutating func runEpoch(netuid: UInt16) {
        guard var s = self.subnets[netuid] else { return }
        let n = s.neurons.count
        let ownerCut = s.pool.pendingOwnerCut, server = s.pendingServer, validator = s.pendingValidator, rootPending = s.pool.pendingRoot
        s.pool.pendingOwnerCut = 0
        s.pendingServer = 0
        s.pendingValidator = 0
        s.pool.pendingRoot = 0
        let weights = self.stakeWeights(netuid: netuid)
        var input = EpochInput(n: n, currentBlock: self.number, tempo: s.params.tempo,
                               emission: server.addingSaturated(validator).addingSaturated(rootPending))
        input.stake = weights.map { $0.weight }
        input.activityCutoffFactorMilli = s.params.activityCutoffFactorMilli
        input.lastMechanismStepBlock = s.epochCount == 0 ? 0 : s.lastEpochBlock
        input.stakeThreshold = s.params.stakeThreshold
        input.ownerUid = s.uid(of: s.ownerHotkey)
        input.validatorPermit = s.neurons.map { $0.validatorPermit }
        input.lastUpdate = s.neurons.map { $0.lastUpdate }
        input.blockAtRegistration = s.neurons.map { $0.registeredAt }
        input.weights = SparseMatrix(rows: s.neurons.map { $0.weights.map { (Int($0.uid), $0.value) } }, n: n)
        input.bonds = SparseMatrix(rows: s.neurons.map { $0.bonds.map { (Int($0.uid), $0.value) } }, n: n)
        input.commitRevealEnabled = s.params.commitRevealEnabled != 0
        input.commitBlock = s.neurons.map { $0.commitHash != nil ? $0.commitBlock : nil }
        input.params = s.params.yuma
        let out = YumaEpoch.run(input, path: .sparse, as: I32F32.self)
        // Each u16 vector is built on access: once per epoch, not once per neuron.
        let stakeWeight = out.u16StakeWeight, consensus = out.u16Consensus, incentive = out.u16Incentive
        let dividends = out.u16Dividends, validatorTrust = out.u16ValidatorTrust
        for i in 0..<n {
            var neuron = s.neurons[i]
            neuron.stakeWeight = stakeWeight[i]
            neuron.consensus = consensus[i]
            neuron.incentive = incentive[i]
            neuron.dividends = dividends[i]
            neuron.validatorTrust = validatorTrust[i]
            neuron.emission = 0
            neuron.validatorPermit = out.newValidatorPermit[i]
            neuron.active = out.active[i]
            if let b = out.newBonds[i] { neuron.bonds = b.map { (uid: UInt16($0.0), value: $0.1) } }
            // Commits that can no longer be revealed lapse.
            if neuron.commitHash != nil && s.epochCount + 1 > neuron.commitEpoch + s.params.revealPeriodEpochs { neuron.commitHash = nil }
            s.neurons[i] = neuron
        }
        s.lastEpochBlock = self.number
        s.epochCount += 1
        self.subnets[netuid] = s
        let payout = EpochPayoutPlan.make(self, netuid: netuid, output: out, server: server, validator: validator, root: rootPending)
        self.pay(payout, netuid: netuid, ownerCut: ownerCut)
    }

    // MARK: Blocks

    /// Applies `block` on top of this state (the parent's), checking everything a peer's block
    /// must satisfy. `now` (ms) bounds how far in the future a timestamp may be.
    public mutating func applyBlock(_ block: Block, parentSlot: UInt64, now: UInt64?, context: ExecutionContext) throws(BlockError) -> [Receipt] {
        let h = block.header
        var trial = try self.checkHeader(h, parentSlot: parentSlot, now: now, checkSignature: context.checkSignatures && !context.headerPreverified)
        // Each transaction is encoded and hashed once: for the root, the size check, the
        // preverified check and its receipt.
        var sizes: [Int] = []
        sizes.reserveCapacity(block.transactions.count)
        let hashes = block.transactions.map { tx in
            let encoded = tx.encoded
            sizes.append(encoded.count)
            return Hash32.of(encoded)
        }
        guard MerkleRoot.of(hashes) == h.transactionsRoot else { throw .transactionsRootMismatch }
        var receipts: [Receipt] = []
        receipts.reserveCapacity(block.transactions.count)
        let byIndex = context.preverifiedIndices
        for (i, tx) in block.transactions.enumerated() {
            let verified = i < byIndex.count && byIndex[i]
            do {
                receipts.append(try trial.apply(tx, at: h.number, producer: h.producer, context: context, hash: hashes[i], size: sizes[i],
                                                signatureVerified: verified))
            } catch {
                throw .invalidTransaction(index: i, error)
            }
        }
        let effects = trial.endBlock()
        guard effects.digest == h.digest else { throw .digestMismatch }
        let root = trial.stateRoot()
        guard root == h.stateRoot else { throw .stateRootMismatch(expected: root, got: h.stateRoot) }
        self = trial
        return receipts
    }

    /// Builds a block on this state as `producer` for `slot`: includes the candidate
    /// transactions that apply (skipping invalid ones), runs the hooks, fills the roots and signs.
    /// The checks a header passes before its body is looked at: number, slot, timestamp, the
    /// slot's author and (when `checkSignature`) the producer's signature. Returns this state
    /// with the block begun. Cheap (one signature at most), so gossip runs it before it
    /// spends anything on a block.
    public func checkHeader(_ h: BlockHeader, parentSlot: UInt64, now: UInt64?, checkSignature: Bool) throws(BlockError) -> ChainState {
        guard self.number < UInt64.max, h.number == self.number + 1 else { throw .badNumber(expected: self.number &+ 1, got: h.number) }
        guard h.slot > parentSlot || h.number == 0 else { throw .slotNotIncreasing(parent: parentSlot, got: h.slot) }
        guard h.timestamp / self.params.slotDurationMs == h.slot else { throw .timestampSlotMismatch }
        if let now, h.timestamp > now.addingSaturated(self.params.slotDurationMs.multipliedSaturated(by: 2)) { throw .timestampInFuture(h.timestamp) }
        // The producer must own the slot in the set in force at this block.
        var trial = self
        trial.beginBlock(number: h.number, timestamp: h.timestamp)
        guard let author = trial.slotAuthor(h.slot), author == h.producer else {
            throw .wrongProducer(slot: h.slot, expected: trial.slotAuthor(h.slot)?.hex ?? "nobody", got: h.producer.hex)
        }
        if checkSignature && !h.hasValidSignature { throw .badProducerSignature }
        return trial
    }

    public func buildBlock(parentHash: Hash32, slot: UInt64, timestamp: UInt64, candidates: [Transaction],
                           producer: Ed25519.PrivateKey, context: ExecutionContext, maxTransactions: Int = 1000) -> (Block, ChainState, [Receipt]) {
        var next = self
        next.beginBlock(number: self.number + 1, timestamp: timestamp)
        var included: [Transaction] = []
        var receipts: [Receipt] = []
        // Room for the header and digest; the body stays within `Block.maxSize`.
        var size = 64 << 10
        for tx in candidates where included.count < maxTransactions {
            let txSize = tx.encoded.count
            guard size + txSize <= Block.maxSize else { continue }
            if let r = try? next.apply(tx, at: next.number, producer: producer.publicKey, context: context) {
                included.append(tx)
                receipts.append(r)
                size += txSize
            }
        }
        let effects = next.endBlock()
        var header = BlockHeader(parentHash: parentHash, number: next.number, slot: slot, timestamp: timestamp,
                                 stateRoot: next.stateRoot(), transactionsRoot: Block.transactionsRoot(included),
                                 producer: producer.publicKey, digest: effects.digest)
        header.sign(with: producer)
        return (Block(header: header, transactions: included), next, receipts)
    }
}
