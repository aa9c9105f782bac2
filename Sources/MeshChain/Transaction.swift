import MeshCodec
import MeshCrypto

/// Subnet hyperparameters an owner (or root) can set.
public enum Hyperparameter: UInt8, CaseIterable, Sendable, Codable {
    case tempo = 1
    case immunityPeriod = 2
    case maxAllowedUids = 3
    case maxAllowedValidators = 4
    case kappa = 5
    case bondsMovingAverage = 6
    case bondsPenalty = 7
    case yuma3 = 8
    case liquidAlpha = 9
    case alphaLow = 10
    case alphaHigh = 11
    case commitRevealEnabled = 12
    case weightsRateLimit = 13
    case minAllowedWeights = 14
    case maxWeightsLimit = 15
    case weightsVersionKey = 16
    case activityCutoffFactorMilli = 17
    case minBurn = 18
    case maxBurn = 19
    case revealPeriodEpochs = 20
    case servingRateLimit = 21
    case stakeThreshold = 22

    /// The name used by RPC and the CLI (Bittensor's spelling).
    public var name: String {
        switch self {
        case .tempo: return "tempo"
        case .immunityPeriod: return "immunity_period"
        case .maxAllowedUids: return "max_allowed_uids"
        case .maxAllowedValidators: return "max_allowed_validators"
        case .kappa: return "kappa"
        case .bondsMovingAverage: return "bonds_moving_average"
        case .bondsPenalty: return "bonds_penalty"
        case .yuma3: return "yuma3"
        case .liquidAlpha: return "liquid_alpha"
        case .alphaLow: return "alpha_low"
        case .alphaHigh: return "alpha_high"
        case .commitRevealEnabled: return "commit_reveal_enabled"
        case .weightsRateLimit: return "weights_rate_limit"
        case .minAllowedWeights: return "min_allowed_weights"
        case .maxWeightsLimit: return "max_weights_limit"
        case .weightsVersionKey: return "weights_version_key"
        case .activityCutoffFactorMilli: return "activity_cutoff_factor_milli"
        case .minBurn: return "min_burn"
        case .maxBurn: return "max_burn"
        case .revealPeriodEpochs: return "reveal_period_epochs"
        case .servingRateLimit: return "serving_rate_limit"
        case .stakeThreshold: return "stake_threshold"
        }
    }

    public init?(name: String) {
        guard let h = Hyperparameter.allCases.first(where: { $0.name == name }) else { return nil }
        self = h
    }

    /// Whether only root (sudo) may change it, as on Bittensor.
    public var rootOnly: Bool { [.kappa, .weightsRateLimit, .maxAllowedValidators, .stakeThreshold].contains(self) }
}

/// What a transaction does.
public indirect enum Call: Equatable, Sendable {
    case transfer(to: AccountID, amount: Rao)
    /// Creates a subnet owned by the signer (coldkey) with `ownerHotkey`; refused if the lock
    /// cost exceeds `maxLockCost`.
    case createSubnet(ownerHotkey: AccountID, maxLockCost: Rao)
    /// Registers `hotkey` on `netuid` by burning the current cost (paid by the signer,
    /// the coldkey); refused if the cost exceeds `maxBurn`.
    case register(netuid: UInt16, hotkey: AccountID, maxBurn: Rao)
    case addStake(hotkey: AccountID, netuid: UInt16, amount: Rao)
    case removeStake(hotkey: AccountID, netuid: UInt16, amount: Rao)
    /// Signed by the hotkey.
    case setWeights(netuid: UInt16, uids: [UInt16], values: [UInt16], versionKey: UInt64)
    case commitWeights(netuid: UInt16, commitHash: Hash32)
    case revealWeights(netuid: UInt16, uids: [UInt16], values: [UInt16], salt: [UInt8], versionKey: UInt64)
    /// Signed by the hotkey: the miner's endpoint (IPv4 or IPv6 bytes), or only its node id
    /// (port 0) when it is reached through encrypted discovery.
    case serveAxon(netuid: UInt16, ip: [UInt8], port: UInt16, nodeId: AccountID?)
    /// Signed by the subnet owner's coldkey (root-only parameters need sudo).
    case setHyperparameter(netuid: UInt16, parameter: Hyperparameter, value: UInt64)
    /// Root: set an account's free balance (private networks).
    case sudoSetBalance(account: AccountID, amount: Rao)
    /// Root: dispatch a call as if signed by `as` (e.g. a root-only hyperparameter).
    case sudoAs(account: AccountID, call: Call)
    /// Root: replace the validator set now (the finality forced-change path).
    case sudoForceValidators(validators: [AccountID], delay: UInt64)
    /// Submit evidence of a finality equivocation (two signed conflicting votes).
    case reportEquivocation(evidence: [UInt8])
    /// Signed by the hotkey's owner (coldkey): raise its take (u16 proportion), rate-limited.
    case increaseTake(hotkey: AccountID, take: UInt16)
    /// Signed by the hotkey's owner (coldkey): lower its take (u16 proportion), at once.
    case decreaseTake(hotkey: AccountID, take: UInt16)
    /// Stake `amount` TAO on `hotkey` in `netuid` (a swap for alpha) only up to the limit price
    /// (rao per alpha); with `allowPartial` fill what fits, else refuse (`add_stake_limit`).
    case addStakeLimit(hotkey: AccountID, netuid: UInt16, amount: Rao, limitPrice: UInt64, allowPartial: Bool)
    /// Unstake `amount` alpha down to the limit price (`remove_stake_limit`).
    case removeStakeLimit(hotkey: AccountID, netuid: UInt16, amount: UInt64, limitPrice: UInt64, allowPartial: Bool)
    /// Move `amount` alpha of the signer's stake to another hotkey and/or subnet (`move_stake`).
    case moveStake(originHotkey: AccountID, destinationHotkey: AccountID, originNetuid: UInt16, destinationNetuid: UInt16, amount: UInt64)
    /// Move `amount` alpha on `hotkey` from one subnet to another through both pools, with an
    /// optional limit on the origin/destination price ratio (`swap_stake`, `swap_stake_limit`).
    case swapStake(hotkey: AccountID, originNetuid: UInt16, destinationNetuid: UInt16, amount: UInt64, limitPrice: UInt64?, allowPartial: Bool)
    /// Signed by the subnet owner: start emission (`start_call`).
    case startCall(netuid: UInt16)
    /// Signed by the subnet owner: publish the subnet's identity.
    case setSubnetIdentity(netuid: UInt16, identity: SubnetIdentity)
    /// Signed by the subnet owner: choose the alpha token's symbol.
    case updateSymbol(netuid: UInt16, symbol: String)
    /// Signed by the hotkey's owner: lend proportions of its stake weight on `netuid` to child
    /// hotkeys (scheduled; an empty list revokes).
    case setChildren(hotkey: AccountID, netuid: UInt16, children: [ChildLink])
    /// Signed by the hotkey's owner: its take as a child on `netuid` (u16 proportion).
    case setChildkeyTake(hotkey: AccountID, netuid: UInt16, take: UInt16)

    var tag: UInt8 {
        switch self {
        case .transfer: return 1
        case .createSubnet: return 2
        case .register: return 3
        case .addStake: return 4
        case .removeStake: return 5
        case .setWeights: return 6
        case .commitWeights: return 7
        case .revealWeights: return 8
        case .serveAxon: return 9
        case .setHyperparameter: return 10
        case .sudoSetBalance: return 11
        case .sudoAs: return 12
        case .sudoForceValidators: return 13
        case .reportEquivocation: return 14
        case .increaseTake: return 15
        case .decreaseTake: return 16
        case .addStakeLimit: return 17
        case .removeStakeLimit: return 18
        case .moveStake: return 19
        case .swapStake: return 20
        case .startCall: return 21
        case .setSubnetIdentity: return 22
        case .updateSymbol: return 23
        case .setChildren: return 24
        case .setChildkeyTake: return 25
        }
    }

    /// A short name for logs and RPC.
    public var name: String {
        switch self {
        case .transfer: return "transfer"
        case .createSubnet: return "create_subnet"
        case .register: return "register"
        case .addStake: return "add_stake"
        case .removeStake: return "remove_stake"
        case .setWeights: return "set_weights"
        case .commitWeights: return "commit_weights"
        case .revealWeights: return "reveal_weights"
        case .serveAxon: return "serve_axon"
        case .setHyperparameter: return "set_hyperparameter"
        case .sudoSetBalance: return "sudo_set_balance"
        case .sudoAs: return "sudo_as"
        case .sudoForceValidators: return "sudo_force_validators"
        case .reportEquivocation: return "report_equivocation"
        case .increaseTake: return "increase_take"
        case .decreaseTake: return "decrease_take"
        case .addStakeLimit: return "add_stake_limit"
        case .removeStakeLimit: return "remove_stake_limit"
        case .moveStake: return "move_stake"
        case .swapStake(_, _, _, _, let limit, _): return limit == nil ? "swap_stake" : "swap_stake_limit"
        case .startCall: return "start_call"
        case .setSubnetIdentity: return "set_subnet_identity"
        case .updateSymbol: return "update_symbol"
        case .setChildren: return "set_children"
        case .setChildkeyTake: return "set_childkey_take"
        }
    }
}

extension Call: BinaryCodable {
    static let maxWeights = 4096
    static let maxDepth = 2

    public func encode(to w: inout ByteWriter) {
        w.u8(self.tag)
        switch self {
        case .transfer(let to, let amount):
            to.encode(to: &w); w.u64(amount)
        case .createSubnet(let hotkey, let maxLock):
            hotkey.encode(to: &w); w.u64(maxLock)
        case .register(let netuid, let hotkey, let maxBurn):
            w.u16(netuid); hotkey.encode(to: &w); w.u64(maxBurn)
        case .addStake(let hotkey, let netuid, let amount), .removeStake(let hotkey, let netuid, let amount):
            hotkey.encode(to: &w); w.u16(netuid); w.u64(amount)
        case .setWeights(let netuid, let uids, let values, let version):
            w.u16(netuid)
            w.list(uids) { w, x in w.u16(x) }
            w.list(values) { w, x in w.u16(x) }
            w.u64(version)
        case .commitWeights(let netuid, let hash):
            w.u16(netuid); hash.encode(to: &w)
        case .revealWeights(let netuid, let uids, let values, let salt, let version):
            w.u16(netuid)
            w.list(uids) { w, x in w.u16(x) }
            w.list(values) { w, x in w.u16(x) }
            w.bytes(salt)
            w.u64(version)
        case .serveAxon(let netuid, let ip, let port, let nodeId):
            w.u16(netuid); w.bytes(ip); w.u16(port)
            w.optional(nodeId) { w, k in k.encode(to: &w) }
        case .setHyperparameter(let netuid, let p, let value):
            w.u16(netuid); w.u8(p.rawValue); w.u64(value)
        case .sudoSetBalance(let account, let amount):
            account.encode(to: &w); w.u64(amount)
        case .sudoAs(let account, let call):
            account.encode(to: &w); call.encode(to: &w)
        case .sudoForceValidators(let validators, let delay):
            w.list(validators); w.u64(delay)
        case .reportEquivocation(let evidence):
            w.bytes(evidence)
        case .increaseTake(let hotkey, let take), .decreaseTake(let hotkey, let take):
            hotkey.encode(to: &w); w.u16(take)
        case .addStakeLimit(let hotkey, let netuid, let amount, let limit, let partial),
             .removeStakeLimit(let hotkey, let netuid, let amount, let limit, let partial):
            hotkey.encode(to: &w); w.u16(netuid); w.u64(amount); w.u64(limit); w.bool(partial)
        case .moveStake(let oh, let dh, let on, let dn, let amount):
            oh.encode(to: &w); dh.encode(to: &w); w.u16(on); w.u16(dn); w.u64(amount)
        case .swapStake(let hotkey, let on, let dn, let amount, let limit, let partial):
            hotkey.encode(to: &w); w.u16(on); w.u16(dn); w.u64(amount)
            w.optional(limit) { w, l in w.u64(l) }
            w.bool(partial)
        case .startCall(let netuid):
            w.u16(netuid)
        case .setSubnetIdentity(let netuid, let identity):
            w.u16(netuid); identity.encode(to: &w)
        case .updateSymbol(let netuid, let symbol):
            w.u16(netuid); w.string(symbol)
        case .setChildren(let hotkey, let netuid, let children):
            hotkey.encode(to: &w); w.u16(netuid); w.list(children)
        case .setChildkeyTake(let hotkey, let netuid, let take):
            hotkey.encode(to: &w); w.u16(netuid); w.u16(take)
        }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        try self.init(from: &r, depth: 0)
    }

    init(from r: inout ByteReader, depth: Int) throws(CodecError) {
        let tag = try r.u8()
        func u16s(_ field: String) throws(CodecError) -> [UInt16] {
            try r.list(field: field, limit: Call.maxWeights, minElementSize: 2) { (r: inout ByteReader) throws(CodecError) in try r.u16() }
        }
        switch tag {
        case 1: self = .transfer(to: try AccountID(from: &r), amount: try r.u64())
        case 2: self = .createSubnet(ownerHotkey: try AccountID(from: &r), maxLockCost: try r.u64())
        case 3: self = .register(netuid: try r.u16(), hotkey: try AccountID(from: &r), maxBurn: try r.u64())
        case 4: self = .addStake(hotkey: try AccountID(from: &r), netuid: try r.u16(), amount: try r.u64())
        case 5: self = .removeStake(hotkey: try AccountID(from: &r), netuid: try r.u16(), amount: try r.u64())
        case 6: self = .setWeights(netuid: try r.u16(), uids: try u16s("uids"), values: try u16s("values"), versionKey: try r.u64())
        case 7: self = .commitWeights(netuid: try r.u16(), commitHash: try Hash32(from: &r))
        case 8:
            self = .revealWeights(netuid: try r.u16(), uids: try u16s("uids"), values: try u16s("values"),
                                  salt: try r.bytes(field: "salt", limit: 64), versionKey: try r.u64())
        case 9:
            let netuid = try r.u16()
            let ip = try r.bytes(field: "ip", limit: 16)
            guard ip.count == 0 || ip.count == 4 || ip.count == 16 else { throw .invalidValue(field: "ip", reason: "\(ip.count) bytes") }
            let port = try r.u16()
            let node = try r.optional(field: "nodeId") { (r: inout ByteReader) throws(CodecError) in try AccountID(from: &r) }
            self = .serveAxon(netuid: netuid, ip: ip, port: port, nodeId: node)
        case 10:
            let netuid = try r.u16()
            let raw = try r.u8()
            guard let p = Hyperparameter(rawValue: raw) else { throw .invalidValue(field: "parameter", reason: "unknown \(raw)") }
            self = .setHyperparameter(netuid: netuid, parameter: p, value: try r.u64())
        case 11: self = .sudoSetBalance(account: try AccountID(from: &r), amount: try r.u64())
        case 12:
            guard depth < Call.maxDepth else { throw .invalidValue(field: "call", reason: "nested too deep") }
            self = .sudoAs(account: try AccountID(from: &r), call: try Call(from: &r, depth: depth + 1))
        case 13:
            self = .sudoForceValidators(validators: try r.list(of: AccountID.self, field: "validators", limit: 256, minElementSize: 32),
                                        delay: try r.u64())
        case 14: self = .reportEquivocation(evidence: try r.bytes(field: "evidence", limit: 4096))
        case 15: self = .increaseTake(hotkey: try AccountID(from: &r), take: try r.u16())
        case 16: self = .decreaseTake(hotkey: try AccountID(from: &r), take: try r.u16())
        case 17:
            self = .addStakeLimit(hotkey: try AccountID(from: &r), netuid: try r.u16(), amount: try r.u64(), limitPrice: try r.u64(),
                                  allowPartial: try r.bool(field: "allowPartial"))
        case 18:
            self = .removeStakeLimit(hotkey: try AccountID(from: &r), netuid: try r.u16(), amount: try r.u64(), limitPrice: try r.u64(),
                                     allowPartial: try r.bool(field: "allowPartial"))
        case 19:
            self = .moveStake(originHotkey: try AccountID(from: &r), destinationHotkey: try AccountID(from: &r), originNetuid: try r.u16(),
                              destinationNetuid: try r.u16(), amount: try r.u64())
        case 20:
            let hotkey = try AccountID(from: &r)
            let on = try r.u16(), dn = try r.u16(), amount = try r.u64()
            let limit = try r.optional(field: "limitPrice") { (r: inout ByteReader) throws(CodecError) in try r.u64() }
            self = .swapStake(hotkey: hotkey, originNetuid: on, destinationNetuid: dn, amount: amount, limitPrice: limit,
                              allowPartial: try r.bool(field: "allowPartial"))
        case 21: self = .startCall(netuid: try r.u16())
        case 22: self = .setSubnetIdentity(netuid: try r.u16(), identity: try SubnetIdentity(from: &r))
        case 23: self = .updateSymbol(netuid: try r.u16(), symbol: try r.string(field: "symbol", limit: 32))
        case 24:
            self = .setChildren(hotkey: try AccountID(from: &r), netuid: try r.u16(),
                                children: try r.list(of: ChildLink.self, field: "children", limit: 64, minElementSize: 40))
        case 25: self = .setChildkeyTake(hotkey: try AccountID(from: &r), netuid: try r.u16(), take: try r.u16())
        default: throw .invalidValue(field: "call", reason: "unknown call \(tag)")
        }
    }
}

/// A signed transaction. The signer signs SHA-256(genesis hash ‖ the unsigned encoding), so a
/// transaction is valid on one chain only.
public struct Transaction: Equatable, Sendable, BinaryCodable {
    /// Largest encoded transaction accepted.
    public static let maxSize = 64 * 1024
    /// A lower bound on any encoded transaction (version, signer, nonce, lifetime, fee, the
    /// smallest call, signature), used to bound list lengths before allocating.
    public static let minEncodedSize = 1 + 32 + 24 + 2 + 64

    public var signer: AccountID
    public var nonce: UInt64
    /// The last block number the transaction may be included in.
    public var validUntil: UInt64
    /// The fee offered (rao); at least the chain's base fee.
    public var fee: Rao
    public var call: Call
    public var signature: Ed25519.Signature

    /// Builds and signs a transaction.
    public init(signer key: Ed25519.PrivateKey, nonce: UInt64, validUntil: UInt64, fee: Rao, call: Call, genesis: Hash32) {
        self.signer = key.publicKey
        self.nonce = nonce
        self.validUntil = validUntil
        self.fee = fee
        self.call = call
        self.signature = try! Ed25519.Signature(bytes: [UInt8](repeating: 0, count: 64))
        self.signature = key.sign(self.signingPayload(genesis: genesis))
    }

    /// What the signature covers.
    public func signingPayload(genesis: Hash32) -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.raw(genesis.bytes)
        self.encodeUnsigned(to: &w)
        return SHA256.hash(w.bytes)
    }

    func encodeUnsigned(to w: inout ByteWriter) {
        w.u8(1)  // transaction format version
        self.signer.encode(to: &w)
        w.u64(self.nonce)
        w.u64(self.validUntil)
        w.u64(self.fee)
        self.call.encode(to: &w)
    }

    public func encode(to w: inout ByteWriter) {
        self.encodeUnsigned(to: &w)
        self.signature.encode(to: &w)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        let version = try r.u8()
        guard version == 1 else { throw .invalidValue(field: "transaction.version", reason: "\(version)") }
        self.signer = try AccountID(from: &r)
        self.nonce = try r.u64()
        self.validUntil = try r.u64()
        self.fee = try r.u64()
        self.call = try Call(from: &r)
        self.signature = try Ed25519.Signature(from: &r)
    }

    /// The transaction hash (of the full encoding).
    public var hash: Hash32 { Hash32.of(self.encoded) }

    /// Whether the signature verifies for `genesis`.
    public func verifySignature(genesis: Hash32) -> Bool {
        self.signer.isValidSignature(self.signature, for: self.signingPayload(genesis: genesis))
    }
}
