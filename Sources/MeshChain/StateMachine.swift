import MeshCodec
import MeshCrypto
import MeshIncentive

/// What a transaction did.
public struct Receipt: Equatable, Sendable {
    public var hash: Hash32
    public var call: String
    public var error: DispatchError?
}

/// Context the state machine needs that is not state: the chain identity and pluggable checks.
public struct ExecutionContext: Sendable {
    public var genesis: Hash32
    /// Verifies equivocation evidence (supplied by the finality module).
    public var verifyEquivocation: @Sendable ([UInt8], [WeightedAuthority]) -> Bool
    /// Whether to check transaction signatures (off only for trusted re-imports of blocks that
    /// were verified before, e.g. a node's own exported chain).
    public var checkSignatures: Bool
    /// Transactions (by hash, which covers the signature) whose signatures were verified
    /// already, e.g. on entry to the pool: not verified again at block import.
    public var preverified: Set<Hash32> = []
    /// The block's producer signature was verified already (by the signature workers): the
    /// header check skips it.
    public var headerPreverified = false
    /// The block's transactions (by index) whose signatures the signature workers verified
    /// already: block import does not verify them again.
    public var preverifiedIndices: [Bool] = []

    public init(genesis: Hash32, checkSignatures: Bool = true,
                verifyEquivocation: @escaping @Sendable ([UInt8], [WeightedAuthority]) -> Bool = { _, _ in false }) {
        self.genesis = genesis
        self.checkSignatures = checkSignatures
        self.verifyEquivocation = verifyEquivocation
    }
}

extension ChainState {
    // MARK: Transactions

    /// Checks a transaction against the state without applying it.
    /// `hash`, `size`: the transaction's hash and encoded size when the caller has them
    /// already (block import).
    /// `signatureVerified`: the caller knows the signature verified (block import, from the
    /// signature workers).
    public func check(_ tx: Transaction, at number: UInt64, context: ExecutionContext, hash: Hash32? = nil,
                      size: Int? = nil, signatureVerified: Bool = false) throws(TransactionError) {
        let size = size ?? tx.encoded.count
        if size > Transaction.maxSize { throw .tooLarge(size) }
        if tx.validUntil < number { throw .expired(validUntil: tx.validUntil, block: number) }
        if tx.fee < self.params.baseFee { throw .feeTooLow(minimum: self.params.baseFee, offered: tx.fee) }
        let expected = self.nonce(tx.signer)
        if tx.nonce < expected { throw .staleNonce(expected: expected, got: tx.nonce) }
        if tx.nonce > expected { throw .futureNonce(expected: expected, got: tx.nonce) }
        if self.balance(tx.signer) < tx.fee { throw .cannotPayFee(balance: self.balance(tx.signer), fee: tx.fee) }
        if context.checkSignatures && !signatureVerified
            && !(context.preverified.contains(hash ?? tx.hash) || tx.verifySignature(genesis: context.genesis)) { throw .badSignature }
    }

    /// Applies a transaction: charges the fee to `producer`, uses the nonce, then runs the
    /// call (whose refusal leaves everything but the fee and nonce unchanged).
    /// `hash`, `size`: the transaction's hash and encoded size when the caller has them
    /// already (block import encodes and hashes each transaction once, for the transactions
    /// root, and passes both on).
    public mutating func apply(_ tx: Transaction, at number: UInt64, producer: AccountID, context: ExecutionContext,
                               hash: Hash32? = nil, size: Int? = nil, signatureVerified: Bool = false) throws(TransactionError) -> Receipt {
        let hash = hash ?? tx.hash
        try self.check(tx, at: number, context: context, hash: hash, size: size, signatureVerified: signatureVerified)
        self.setBalance(tx.signer, self.balance(tx.signer) - tx.fee)  // checked: balance ≥ fee
        self.credit(producer, tx.fee)
        self.nonces[tx.signer] = tx.nonce &+ 1  // below 2^64 − 1: the nonce gap bounds it
        var trial = self
        trial.blockAuthor = producer
        do {
            try trial.dispatch(tx.call, signer: tx.signer, root: false, number: number, context: context)
            trial.blockAuthor = nil
            self = trial
            return Receipt(hash: hash, call: tx.call.name, error: nil)
        } catch {
            return Receipt(hash: hash, call: tx.call.name, error: error)
        }
    }

    mutating func dispatch(_ call: Call, signer: AccountID, root: Bool, number: UInt64, context: ExecutionContext) throws(DispatchError) {
        switch call {
        case .transfer(let to, let amount):
            guard amount > 0 else { throw DispatchError("InvalidTransferAmount", "a transfer must move something") }
            try self.debit(signer, amount)
            self.credit(to, amount)

        case .createSubnet(let hotkey, let maxLock):
            try self.createSubnet(owner: signer, hotkey: hotkey, maxLock: maxLock, number: number)

        case .register(let netuid, let hotkey, let maxBurn):
            try self.register(netuid: netuid, hotkey: hotkey, coldkey: signer, maxBurn: maxBurn, number: number)

        case .addStake(let hotkey, let netuid, let amount):
            try self.addStakeCall(signer: signer, hotkey: hotkey, netuid: netuid, amount: amount, limitRao: nil, allowPartial: false)

        case .removeStake(let hotkey, let netuid, let amount):
            try self.removeStakeCall(signer: signer, hotkey: hotkey, netuid: netuid, amount: amount, limitRao: nil, allowPartial: false)

        case .addStakeLimit(let hotkey, let netuid, let amount, let limit, let partial):
            try self.addStakeCall(signer: signer, hotkey: hotkey, netuid: netuid, amount: amount, limitRao: limit, allowPartial: partial)

        case .removeStakeLimit(let hotkey, let netuid, let amount, let limit, let partial):
            try self.removeStakeCall(signer: signer, hotkey: hotkey, netuid: netuid, amount: amount, limitRao: limit, allowPartial: partial)

        case .moveStake(let oh, let dh, let on, let dn, let amount):
            try self.moveStakeCall(signer: signer, originHotkey: oh, destinationHotkey: dh, originNetuid: on, destinationNetuid: dn,
                                   amount: amount, limitRao: nil, allowPartial: false)

        case .swapStake(let hotkey, let on, let dn, let amount, let limit, let partial):
            try self.moveStakeCall(signer: signer, originHotkey: hotkey, destinationHotkey: hotkey, originNetuid: on, destinationNetuid: dn,
                                   amount: amount, limitRao: limit, allowPartial: partial)

        case .startCall(let netuid):
            guard netuid != 0, var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard root || subnet.owner == signer else { throw DispatchError("NotSubnetOwner", "only the subnet owner can start it") }
            guard subnet.pool.firstEmissionBlock == 0 else {
                throw DispatchError("FirstEmissionBlockNumberAlreadySet", "subnet \(netuid) started at block \(subnet.pool.firstEmissionBlock)")
            }
            let earliest = subnet.createdAt.addingSaturated(self.params.startCallDelay)
            guard number >= earliest else {
                throw DispatchError("NeedWaitingMoreBlocksToStarCall", "subnet \(netuid) may start from block \(earliest)", allowedAt: earliest)
            }
            subnet.pool.firstEmissionBlock = number + 1
            self.subnets[netuid] = subnet
            // Children scheduled before the start take effect now.
            self.applyPendingChildren(netuid: netuid)

        case .setSubnetIdentity(let netuid, let identity):
            guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard root || subnet.owner == signer else { throw DispatchError("NotSubnetOwner", "only the subnet owner can set its identity") }
            if let field = identity.invalidField {
                throw DispatchError("InvalidIdentity", "\(field) is longer than \(SubnetIdentity.maxField) bytes")
            }
            subnet.identity = identity
            if !identity.name.isEmpty { subnet.name = String(decoding: Array(identity.name.utf8.prefix(64)), as: UTF8.self) }
            self.subnets[netuid] = subnet

        case .updateSymbol(let netuid, let symbol):
            guard netuid != 0, var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard root || subnet.owner == signer else { throw DispatchError("NotSubnetOwner", "only the subnet owner can choose its symbol") }
            guard TokenSymbols.isValid(symbol) else { throw DispatchError("SymbolDoesNotExist", "\(symbol) is not one of the token symbols") }
            guard !self.subnets.values.contains(where: { $0.netuid != netuid && $0.pool.symbol == symbol }) else {
                throw DispatchError("SymbolAlreadyInUse", "another subnet uses \(symbol)")
            }
            subnet.pool.symbol = symbol
            self.subnets[netuid] = subnet

        case .setChildren(let hotkey, let netuid, let children):
            try self.scheduleChildren(signer: signer, hotkey: hotkey, netuid: netuid, children: children, number: number)

        case .setChildkeyTake(let hotkey, let netuid, let take):
            try self.setChildkeyTake(signer: signer, hotkey: hotkey, netuid: netuid, take: take, number: number)

        case .increaseTake(let hotkey, let take):
            try self.increaseTake(hotkey: hotkey, take: take, signer: signer, number: number)

        case .decreaseTake(let hotkey, let take):
            try self.decreaseTake(hotkey: hotkey, take: take, signer: signer, number: number)

        case .setWeights(let netuid, let uids, let values, let versionKey):
            try self.setWeights(netuid: netuid, hotkey: signer, uids: uids, values: values, versionKey: versionKey, number: number, stampAt: number, checkRate: true, fromReveal: false)

        case .commitWeights(let netuid, let hash):
            guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard let uid = subnet.uid(of: signer) else { throw Self.notRegistered(signer, netuid) }
            guard subnet.params.commitRevealEnabled != 0 else {
                throw DispatchError("CommitRevealDisabled", "commit-reveal is off on subnet \(netuid); use set_weights")
            }
            let n = subnet.neurons[uid]
            if n.commitHash != nil, n.commitBlock + subnet.params.weightsRateLimit > number {
                throw DispatchError("CommittingWeightsTooFast", "one commit per rate-limit period", allowedAt: n.commitBlock + subnet.params.weightsRateLimit)
            }
            subnet.neurons[uid].commitHash = hash
            subnet.neurons[uid].commitBlock = number
            subnet.neurons[uid].commitEpoch = subnet.epochCount
            self.subnets[netuid] = subnet

        case .revealWeights(let netuid, let uids, let values, let salt, let versionKey):
            guard let subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard let uid = subnet.uid(of: signer) else { throw Self.notRegistered(signer, netuid) }
            let n = subnet.neurons[uid]
            guard let commit = n.commitHash else { throw DispatchError("NoWeightsCommitFound", "no pending commit for this hotkey") }
            let revealFrom = n.commitEpoch + 1
            let revealUntil = n.commitEpoch + subnet.params.revealPeriodEpochs
            guard subnet.epochCount >= revealFrom else {
                throw DispatchError("RevealTooEarly", "reveal after the next epoch (in ~\(subnet.lastEpochBlock + subnet.params.tempo - min(number, subnet.lastEpochBlock + subnet.params.tempo)) blocks)",
                                    allowedAt: subnet.lastEpochBlock + subnet.params.tempo)
            }
            guard subnet.epochCount <= revealUntil else { throw DispatchError("ExpiredWeightCommit", "the commit expired; commit again") }
            guard Self.commitHash(hotkey: signer, netuid: netuid, uids: uids, values: values, salt: salt, versionKey: versionKey) == commit else {
                throw DispatchError("InvalidRevealCommitHashNotMatch", "the revealed weights do not match the commit")
            }
            try self.setWeights(netuid: netuid, hotkey: signer, uids: uids, values: values, versionKey: versionKey,
                                number: number, stampAt: n.commitBlock, checkRate: false, fromReveal: true)
            self.subnets[netuid]!.neurons[uid].commitHash = nil

        case .serveAxon(let netuid, let ip, let port, let nodeId):
            guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            guard let uid = subnet.uid(of: signer) else { throw Self.notRegistered(signer, netuid) }
            guard ip.isEmpty || port != 0 else { throw DispatchError("InvalidPort", "port 0 with an address") }
            guard !ip.isEmpty || nodeId != nil else { throw DispatchError("InvalidIpAddress", "give an address or a node id") }
            if let a = subnet.neurons[uid].axon, a.block + subnet.params.servingRateLimit > number {
                throw DispatchError("ServingRateLimitExceeded", "axon updated too recently", allowedAt: a.block + subnet.params.servingRateLimit)
            }
            subnet.neurons[uid].axon = AxonInfo(ip: ip, port: port, nodeId: nodeId, block: number)
            self.subnets[netuid] = subnet

        case .setHyperparameter(let netuid, let p, let value):
            guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
            if p.rootOnly && !root { throw DispatchError("BadOrigin", "only root can set \(p.name)") }
            guard root || subnet.owner == signer else { throw DispatchError("NotSubnetOwner", "only the subnet owner can set \(p.name)") }
            if let err = subnet.params.set(p, value) { throw DispatchError("InvalidValue", err) }
            subnet.burn = min(max(subnet.burn, subnet.params.minBurn), subnet.params.maxBurn)
            self.subnets[netuid] = subnet

        case .sudoSetBalance(let account, let amount):
            try self.requireSudo(signer)
            let old = self.balance(account)
            if amount >= old {
                // Root may mint, but never past the supply cap (every sum of balances and
                // stakes then stays far below 2^64).
                let minted = amount - old
                guard self.totalIssuance <= self.params.emission.supplyCap, minted <= self.params.emission.supplyCap - self.totalIssuance else {
                    throw DispatchError("SupplyCapExceeded", "minting \(Token.format(minted)) would pass the supply cap")
                }
                self.totalIssuance += minted
            } else {
                self.totalBurned = self.totalBurned.addingSaturated(old - amount)
            }
            self.setBalance(account, amount)

        case .sudoAs(let account, let inner):
            try self.requireSudo(signer)
            try self.dispatch(inner, signer: account, root: true, number: number, context: context)

        case .sudoForceValidators(let validators, let delay):
            try self.requireSudo(signer)
            guard !validators.isEmpty, Set(validators).count == validators.count else {
                throw DispatchError("InvalidValidatorSet", "need distinct validators")
            }
            let set = validators.map { WeightedAuthority(id: $0, weight: max(1, self.rootStake(of: $0) / 1_000_000)) }
            guard delay <= ChainParams.maxAuthorityChangeDelay else {
                throw DispatchError("InvalidDelay", "a forced change waits at most \(ChainParams.maxAuthorityChangeDelay) blocks")
            }
            let change = PendingAuthorityChange(authorities: set, enactAt: number.addingSaturated(delay), forced: true)
            self.pendingAuthorityChange = change
            self.forcedChangeSignal = change

        case .reportEquivocation(let evidence):
            let h = Hash32.of(evidence)
            guard !self.reportedEquivocations.contains(h) else { throw DispatchError("DuplicateReport", "evidence already reported") }
            guard context.verifyEquivocation(evidence, self.authorities) else { throw DispatchError("InvalidEvidence", "the evidence does not prove an equivocation") }
            self.reportedEquivocations.insert(h)
        }
    }

    static func noSubnet(_ netuid: UInt16) -> DispatchError { DispatchError("SubNetworkDoesNotExist", "subnet \(netuid) does not exist") }
    static func notRegistered(_ hotkey: AccountID, _ netuid: UInt16) -> DispatchError {
        DispatchError("HotKeyNotRegisteredInSubNet", "hotkey \(hotkey.hex.prefix(16)) is not registered on subnet \(netuid)")
    }

    mutating func debit(_ account: AccountID, _ amount: Rao) throws(DispatchError) {
        let b = self.balance(account)
        guard b >= amount else { throw DispatchError("NotEnoughBalance", "balance \(Token.format(b)) is below \(Token.format(amount))") }
        self.setBalance(account, b - amount)
    }

    /// Sets a balance in its one canonical form: an account with nothing holds no entry (a
    /// zero entry would count in the state root but not survive a snapshot).
    mutating func setBalance(_ account: AccountID, _ amount: Rao) {
        self.balances[account] = amount == 0 ? nil : amount
    }

    /// Adds to a balance. Issuance stays within the supply cap (≤ 2^62), so the sum cannot
    /// overflow; it saturates rather than trap should that ever be broken.
    mutating func credit(_ account: AccountID, _ amount: Rao) {
        guard amount > 0 else { return }
        self.setBalance(account, self.balance(account).addingSaturated(amount))
    }

    func requireSudo(_ signer: AccountID) throws(DispatchError) {
        guard let s = self.sudo, s == signer else { throw DispatchError("BadOrigin", "only the sudo key may do this") }
    }

    /// The commitment a `commit_weights` carries.
    public static func commitHash(hotkey: AccountID, netuid: UInt16, uids: [UInt16], values: [UInt16], salt: [UInt8], versionKey: UInt64) -> Hash32 {
        var w = ByteWriter()
        hotkey.encode(to: &w)
        w.u16(netuid)
        w.list(uids) { w, x in w.u16(x) }
        w.list(values) { w, x in w.u16(x) }
        w.bytes(salt)
        w.u64(versionKey)
        return Hash32.of(w.bytes)
    }

    public func rootStake(of hotkey: AccountID) -> Rao { self.totalStake(hotkey: hotkey, netuid: 0) }

    // MARK: Registration

    mutating func register(netuid: UInt16, hotkey: AccountID, coldkey: AccountID, maxBurn: Rao, number: UInt64) throws(DispatchError) {
        guard netuid != 0 else { throw DispatchError("RegistrationNotPermittedOnRootSubnet", "stake on netuid 0 to become a validator candidate") }
        guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        guard subnet.uid(of: hotkey) == nil else { throw DispatchError("HotKeyAlreadyRegisteredInSubNet", "hotkey already registered on subnet \(netuid)") }
        guard subnet.registrationsThisBlock < self.params.maxRegistrationsPerBlock else {
            throw DispatchError("TooManyRegistrationsThisBlock", "subnet \(netuid) takes \(self.params.maxRegistrationsPerBlock) registrations per block", allowedAt: number + 1)
        }
        try self.claimHotkey(hotkey, by: coldkey)
        let cost = subnet.burn
        guard cost <= maxBurn else { throw DispatchError("BurnCostTooHigh", "registration costs \(Token.format(cost)), above your maximum \(Token.format(maxBurn))") }
        try self.debit(coldkey, cost)
        self.burnIntoPool(netuid: netuid, tao: cost)
        subnet = self.subnets[netuid]!
        let neuron = Neuron(hotkey: hotkey, coldkey: coldkey, block: number)
        if UInt64(subnet.neurons.count) < subnet.params.maxAllowedUids {
            subnet.neurons.append(neuron)
        } else {
            guard let victim = Self.neuronToPrune(subnet, at: number) else {
                throw DispatchError("NoNeuronToReplace", "every uid is protected")
            }
            subnet.neurons[victim] = neuron
            // Everyone's weight on the replaced uid is zeroed (the entry stays).
            for i in subnet.neurons.indices where i != victim {
                for k in subnet.neurons[i].weights.indices where subnet.neurons[i].weights[k].uid == UInt16(victim) {
                    subnet.neurons[i].weights[k].value = 0
                }
            }
        }
        subnet.registrationsThisBlock += 1
        subnet.burn = min(subnet.params.maxBurn, cost.multipliedReportingOverflow(by: 2).partialValue)
        self.subnets[netuid] = subnet
    }

    /// The uid a full subnet replaces: among non-immune uids (not the owner's hotkey), the
    /// lowest emission, then the earliest registration, then the lowest uid; immune uids only
    /// when no other exists.
    public static func neuronToPrune(_ subnet: Subnet, at number: UInt64) -> Int? {
        func candidates(immune: Bool) -> [Int] {
            subnet.neurons.indices.filter { i in
                let n = subnet.neurons[i]
                if n.hotkey == subnet.ownerHotkey { return false }
                let isImmune = number < n.registeredAt + subnet.params.immunityPeriod
                return isImmune == immune
            }
        }
        var pool = candidates(immune: false)
        if pool.isEmpty { pool = candidates(immune: true) }
        return pool.min { a, b in
            let na = subnet.neurons[a], nb = subnet.neurons[b]
            if na.emission != nb.emission { return na.emission < nb.emission }
            if na.registeredAt != nb.registeredAt { return na.registeredAt < nb.registeredAt }
            return a < b
        }
    }

    // MARK: Weights

    mutating func setWeights(netuid: UInt16, hotkey: AccountID, uids: [UInt16], values: [UInt16], versionKey: UInt64,
                             number: UInt64, stampAt: UInt64, checkRate: Bool, fromReveal: Bool) throws(DispatchError) {
        guard var subnet = self.subnets[netuid] else { throw Self.noSubnet(netuid) }
        guard let uid = subnet.uid(of: hotkey) else { throw Self.notRegistered(hotkey, netuid) }
        let p = subnet.params
        if !fromReveal && p.commitRevealEnabled != 0 {
            throw DispatchError("CommitRevealEnabled", "subnet \(netuid) uses commit-reveal: commit_weights, then reveal_weights after the next epoch")
        }
        guard versionKey >= p.weightsVersionKey else {
            throw DispatchError("IncorrectWeightVersionKey", "version key \(versionKey) is below the subnet's \(p.weightsVersionKey)")
        }
        guard uids.count == values.count else { throw DispatchError("WeightVecNotEqualSize", "\(uids.count) uids but \(values.count) values") }
        guard Set(uids).count == uids.count else { throw DispatchError("DuplicateUids", "a uid appears twice") }
        let n = subnet.neurons.count
        if let bad = uids.first(where: { Int($0) >= n }) { throw DispatchError("UidVecContainInvalidOne", "uid \(bad) does not exist (n = \(n))") }
        let neuron = subnet.neurons[uid]
        // A neuron that never set weights may set them at once; afterwards the rate limit applies.
        if checkRate && p.weightsRateLimit > 0 && neuron.lastUpdate != neuron.registeredAt && number < neuron.lastUpdate + p.weightsRateLimit {
            throw DispatchError("SettingWeightsTooFast", "weights were set at block \(neuron.lastUpdate); the rate limit is \(p.weightsRateLimit) blocks",
                                allowedAt: neuron.lastUpdate + p.weightsRateLimit)
        }
        let selfOnly = uids.count == 1 && Int(uids[0]) == uid
        if !selfOnly && !neuron.validatorPermit {
            throw DispatchError("NeuronNoValidatorPermit", "no validator permit; permits are recomputed at each epoch (next at block \(subnet.lastEpochBlock + p.tempo))",
                                allowedAt: subnet.lastEpochBlock + p.tempo)
        }
        let stake = self.stakeWeight(hotkey: hotkey, netuid: netuid)
        if stake < p.stakeThreshold {
            throw DispatchError("NotEnoughStakeToSetWeights", "stake \(Token.format(stake)) is below the threshold \(Token.format(p.stakeThreshold))")
        }
        let nonZero = values.filter { $0 > 0 }.count
        let minW = min(Int(p.minAllowedWeights), n)
        if !selfOnly && nonZero < minW {
            throw DispatchError("WeightVecLengthIsLow", "\(nonZero) non-zero weights, the subnet needs \(minW)")
        }
        let total = values.reduce(UInt64(0)) { $0 + UInt64($1) }
        if total > 0 && p.maxWeightsLimit < 65535 {
            let maxShare = values.map { UInt64($0) * 65535 / total }.max() ?? 0
            if maxShare > p.maxWeightsLimit && !selfOnly {
                throw DispatchError("MaxWeightExceeded", "a weight is \(maxShare)/65535 of the total; the limit is \(p.maxWeightsLimit)")
            }
        }
        let stored = WeightsUpscale.maxUpscale(values)
        subnet.neurons[uid].weights = zip(uids, stored).map { (uid: $0, value: $1) }
        subnet.neurons[uid].lastUpdate = stampAt
        self.subnets[netuid] = subnet
    }

    /// When `hotkey` may next set weights on `netuid` (for clients' pre-flight checks).
    public func nextWeightsBlock(netuid: UInt16, hotkey: AccountID) -> UInt64? {
        guard let s = self.subnets[netuid], let uid = s.uid(of: hotkey) else { return nil }
        let n = s.neurons[uid]
        if n.lastUpdate == n.registeredAt { return self.number }
        return max(self.number, n.lastUpdate + s.params.weightsRateLimit)
    }
}
