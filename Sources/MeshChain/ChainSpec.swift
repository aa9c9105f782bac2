import MeshCodec
import MeshCrypto
import MeshIncentive

/// A chain specification: name, bootnodes, parameters and the genesis state (the file
/// `tensormesh genesis new` writes and `tensormesh run --chain FILE` reads).
public struct ChainSpec: Sendable {
    public struct Validator: Sendable, Equatable {
        public var hotkey: AccountID
        public var coldkey: AccountID
        public var stake: Rao

        public init(hotkey: AccountID, coldkey: AccountID, stake: Rao) {
            self.hotkey = hotkey
            self.coldkey = coldkey
            self.stake = stake
        }
    }

    public struct SubnetSpec: Sendable, Equatable {
        public var netuid: UInt16
        public var name: String
        public var owner: AccountID
        public var ownerHotkey: AccountID
        public var params: SubnetParams
        /// TAO the genesis puts in the subnet's pool (issued at genesis; default the minimum
        /// lock cost), its alpha reserve at price 1.
        public var poolTao: Rao?
        /// Whether emission runs from the first block (default), or waits for the owner's start call.
        public var started: Bool

        public init(netuid: UInt16, name: String, owner: AccountID, ownerHotkey: AccountID, params: SubnetParams, poolTao: Rao? = nil, started: Bool = true) {
            self.netuid = netuid
            self.name = name
            self.owner = owner
            self.ownerHotkey = ownerHotkey
            self.params = params
            self.poolTao = poolTao
            self.started = started
        }
    }

    public var name: String
    public var id: String
    public var bootnodes: [String]
    public var params: ChainParams
    public var genesisTimestamp: UInt64
    public var sudo: AccountID?
    public var balances: [(AccountID, Rao)]
    public var validators: [Validator]
    public var subnets: [SubnetSpec]

    public init(name: String, id: String, params: ChainParams = ChainParams()) {
        self.name = name
        self.id = id
        self.bootnodes = []
        self.params = params
        self.genesisTimestamp = 0
        self.balances = []
        self.validators = []
        self.subnets = []
    }

    /// Why a chain spec is unusable; names the field.
    public struct SpecError: Error, CustomStringConvertible {
        public var field: String
        public var reason: String
        public var description: String { "\(self.field): \(self.reason)" }
    }

    // MARK: Genesis

    /// The genesis state.
    public func genesisState() -> ChainState {
        var s = ChainState(params: self.params)
        s.sudo = self.sudo
        s.lastTimestamp = self.genesisTimestamp
        var issued: Rao = 0
        for (a, b) in self.balances {
            s.credit(a, b)  // within the supply cap (checked when the spec was read)
            issued = issued.addingSaturated(b)
        }
        let rootOwner = self.sudo ?? (self.validators.first?.coldkey ?? Ed25519.PublicKey.zero)
        s.subnets[0] = Subnet(netuid: 0, name: "root", owner: rootOwner, ownerHotkey: rootOwner, block: 0, locked: 0, params: SubnetParams())
        for v in self.validators {
            if s.hotkeyOwners[v.hotkey] == nil { s.hotkeyOwners[v.hotkey] = v.coldkey }
            // Within the supply cap (checked when the spec was read), so the pool takes it.
            try? s.increaseStake(coldkey: v.coldkey, hotkey: v.hotkey, netuid: 0, amount: v.stake, deposit: v.stake)
            s.subnets[0]!.pool.taoIn = s.subnets[0]!.pool.taoIn.addingSaturated(v.stake)
            s.subnets[0]!.pool.alphaOut = s.subnets[0]!.pool.alphaOut.addingSaturated(v.stake)
            issued = issued.addingSaturated(v.stake)
        }
        for sub in self.subnets {
            var subnet = Subnet(netuid: sub.netuid, name: sub.name, owner: sub.owner, ownerHotkey: sub.ownerHotkey, block: 0,
                                locked: 0, params: sub.params)
            subnet.neurons.append(Neuron(hotkey: sub.ownerHotkey, coldkey: sub.owner, block: 0))
            if s.hotkeyOwners[sub.ownerHotkey] == nil { s.hotkeyOwners[sub.ownerHotkey] = sub.owner }
            // Stagger the first epochs of subnets with the same tempo.
            subnet.lastEpochBlock = 0
            let poolTao = sub.poolTao ?? self.params.minLockCost
            subnet.pool.taoIn = poolTao
            subnet.pool.alphaIn = poolTao
            subnet.pool.firstEmissionBlock = sub.started ? 1 : 0
            issued = issued.addingSaturated(poolTao)
            s.subnets[sub.netuid] = subnet
        }
        s.totalIssuance = issued
        s.authorities = s.computeAuthorities()
        return s
    }

    /// The genesis block (number 0, unsigned) and its state.
    public func genesis() -> (Block, ChainState) {
        var state = self.genesisState()
        let header = BlockHeader(parentHash: .zero, number: 0, slot: self.genesisTimestamp / self.params.slotDurationMs,
                                 timestamp: self.genesisTimestamp, stateRoot: state.stateRoot(),
                                 transactionsRoot: Block.transactionsRoot([]), producer: .zero)
        return (Block(header: header, transactions: []), state)
    }

    // MARK: JSON

    public func json() -> JSONValue {
        let p = self.params
        func hyper(_ sp: SubnetParams) -> JSONValue {
            .object(Hyperparameter.allCases.map { ($0.name, .int(sp.value($0))) })
        }
        return .object([
            ("name", .string(self.name)),
            ("id", .string(self.id)),
            ("bootnodes", .array(self.bootnodes.map { .string($0) })),
            ("params", .object([
                ("slotDurationMs", .int(p.slotDurationMs)), ("baseFee", .int(p.baseFee)),
                ("authorityEpochLength", .int(p.authorityEpochLength)), ("maxAuthorities", .int(p.maxAuthorities)),
                ("authorityChangeDelay", .int(p.authorityChangeDelay)),
                ("initialBlockEmission", .int(p.emission.initialBlockEmission)), ("supplyCap", .int(p.emission.supplyCap)),
                ("subnetLimit", .int(p.subnetLimit)), ("minLockCost", .int(p.minLockCost)),
                ("lockReductionInterval", .int(p.lockReductionInterval)), ("burnHalfLife", .int(p.burnHalfLife)),
                ("maxRegistrationsPerBlock", .int(p.maxRegistrationsPerBlock)), ("minValidatorStake", .int(p.minValidatorStake)),
                ("maxDelegateTake", .int(p.maxDelegateTake)), ("minDelegateTake", .int(p.minDelegateTake)),
                ("delegateTakeRateLimit", .int(p.delegateTakeRateLimit)), ("minStake", .int(p.minStake)),
            ] + Self.economicsParams.map { ($0.0, .int(p[keyPath: $0.1])) }
              + Self.economicsTakes.map { ($0.0, .int(p[keyPath: $0.1])) }
              + [("netFlowEnabled", .bool(p.netFlowEnabled)), ("flowCutoff", .int(p.flowCutoff))])),
            ("genesis", .object([
                ("timestamp", .int(self.genesisTimestamp)),
                ("sudo", self.sudo.map { .string($0.hex) } ?? .null),
                ("balances", .array(self.balances.map { .array([.string($0.0.hex), .int($0.1)]) })),
                ("validators", .array(self.validators.map {
                    .object([("hotkey", .string($0.hotkey.hex)), ("coldkey", .string($0.coldkey.hex)), ("stake", .int($0.stake))])
                })),
                ("subnets", .array(self.subnets.map {
                    .object([("netuid", .int($0.netuid)), ("name", .string($0.name)), ("owner", .string($0.owner.hex)),
                             ("ownerHotkey", .string($0.ownerHotkey.hex)), ("hyperparameters", hyper($0.params)),
                             ("poolTao", $0.poolTao.map { .int($0) } ?? .null), ("started", .bool($0.started))])
                })),
            ])),
        ])
    }

    public static func parse(_ bytes: [UInt8]) throws(SpecError) -> ChainSpec {
        let v: JSONValue
        do { v = try JSONValue.parse(bytes) } catch { throw SpecError(field: "chain spec", reason: error.description) }
        func str(_ v: JSONValue?, _ f: String) throws(SpecError) -> String {
            guard let s = v?.string else { throw SpecError(field: f, reason: "missing or not a string") }
            return s
        }
        func u64(_ v: JSONValue?, _ f: String) throws(SpecError) -> UInt64 {
            guard let x = v?.uint64 else { throw SpecError(field: f, reason: "missing or not a non-negative integer") }
            return x
        }
        func key(_ v: JSONValue?, _ f: String) throws(SpecError) -> AccountID {
            guard let s = v?.string, let k = AccountID(hex: s.hasPrefix("0x") ? String(s.dropFirst(2)) : s) else {
                throw SpecError(field: f, reason: "expected 64 hex digits")
            }
            return k
        }
        var spec = ChainSpec(name: try str(v["name"], "name"), id: try str(v["id"], "id"))
        spec.bootnodes = (v["bootnodes"]?.array ?? []).compactMap { $0.string }
        if let p = v["params"] {
            var cp = ChainParams()
            if let x = p["slotDurationMs"]?.uint64 { cp.slotDurationMs = x }
            if let x = p["baseFee"]?.uint64 { cp.baseFee = x }
            if let x = p["authorityEpochLength"]?.uint64 { cp.authorityEpochLength = max(1, x) }
            if let x = p["maxAuthorities"]?.uint64 { cp.maxAuthorities = max(1, x) }
            if let x = p["authorityChangeDelay"]?.uint64 { cp.authorityChangeDelay = x }
            if let x = p["initialBlockEmission"]?.uint64 { cp.emission.initialBlockEmission = x }
            if let x = p["supplyCap"]?.uint64 { cp.emission.supplyCap = x }
            if let x = p["subnetLimit"]?.uint64 { cp.subnetLimit = x }
            if let x = p["minLockCost"]?.uint64 { cp.minLockCost = x }
            if let x = p["lockReductionInterval"]?.uint64 { cp.lockReductionInterval = max(1, x) }
            if let x = p["burnHalfLife"]?.uint64 { cp.burnHalfLife = max(1, x) }
            if let x = p["maxRegistrationsPerBlock"]?.uint64 { cp.maxRegistrationsPerBlock = x }
            if let x = p["minValidatorStake"]?.uint64 { cp.minValidatorStake = x }
            if let x = p["maxDelegateTake"]?.uint64 {
                guard let t = UInt16(exactly: x) else { throw SpecError(field: "params.maxDelegateTake", reason: "0...65535") }
                cp.maxDelegateTake = t
            }
            if let x = p["minDelegateTake"]?.uint64 {
                guard let t = UInt16(exactly: x) else { throw SpecError(field: "params.minDelegateTake", reason: "0...65535") }
                cp.minDelegateTake = t
            }
            if let x = p["delegateTakeRateLimit"]?.uint64 { cp.delegateTakeRateLimit = x }
            if let x = p["minStake"]?.uint64 { cp.minStake = x }
            for (name, path) in Self.economicsParams {
                guard let v = p[name], !v.isNull else { continue }
                guard let x = v.uint64 else { throw SpecError(field: "params.\(name)", reason: "not a non-negative integer") }
                cp[keyPath: path] = x
            }
            for (name, path) in Self.economicsTakes {
                guard let v = p[name], !v.isNull else { continue }
                guard let x = v.uint64, let t = UInt16(exactly: x) else { throw SpecError(field: "params.\(name)", reason: "0...65535") }
                cp[keyPath: path] = t
            }
            if let v = p["netFlowEnabled"], !v.isNull {
                guard let b = v.bool else { throw SpecError(field: "params.netFlowEnabled", reason: "not a boolean") }
                cp.netFlowEnabled = b
            }
            if let v = p["flowCutoff"], !v.isNull {
                guard let x = v.int64 else { throw SpecError(field: "params.flowCutoff", reason: "not an integer") }
                cp.flowCutoff = x
            }
            if let (field, reason) = cp.invalidField() { throw SpecError(field: "params.\(field)", reason: reason) }
            spec.params = cp
        }
        guard let g = v["genesis"] else { throw SpecError(field: "genesis", reason: "missing") }
        spec.genesisTimestamp = g["timestamp"]?.uint64 ?? 0
        if let s = g["sudo"], !s.isNull { spec.sudo = try key(s, "genesis.sudo") }
        for (i, b) in (g["balances"]?.array ?? []).enumerated() {
            spec.balances.append((try key(b[0], "genesis.balances[\(i)][0]"), try u64(b[1], "genesis.balances[\(i)][1]")))
        }
        for (i, val) in (g["validators"]?.array ?? []).enumerated() {
            spec.validators.append(Validator(hotkey: try key(val["hotkey"], "genesis.validators[\(i)].hotkey"),
                                             coldkey: try key(val["coldkey"], "genesis.validators[\(i)].coldkey"),
                                             stake: try u64(val["stake"], "genesis.validators[\(i)].stake")))
        }
        guard !spec.validators.isEmpty else { throw SpecError(field: "genesis.validators", reason: "at least one validator is needed") }
        guard spec.validators.count <= Int(spec.params.maxAuthorities) else {
            throw SpecError(field: "genesis.validators", reason: "more than maxAuthorities (\(spec.params.maxAuthorities))")
        }
        // Everything genesis issues stays within the supply cap (so no sum of balances and
        // stakes can overflow later).
        var issued: UInt64 = 0
        for x in spec.balances.map({ $0.1 }) + spec.validators.map({ $0.stake }) {
            let (sum, overflow) = issued.addingReportingOverflow(x)
            guard !overflow, sum <= spec.params.emission.supplyCap else {
                throw SpecError(field: "genesis", reason: "balances and stakes add up to more than the supply cap")
            }
            issued = sum
        }
        for (i, sub) in (g["subnets"]?.array ?? []).enumerated() {
            let f = "genesis.subnets[\(i)]"
            let netuid = try u64(sub["netuid"], "\(f).netuid")
            guard netuid >= 1 && netuid <= 65535 else { throw SpecError(field: "\(f).netuid", reason: "1...65535") }
            var params = SubnetParams()
            for (name, value) in sub["hyperparameters"]?.object ?? [] {
                guard let p = Hyperparameter(name: name) else { throw SpecError(field: "\(f).hyperparameters.\(name)", reason: "unknown") }
                guard let x = value.uint64 else { throw SpecError(field: "\(f).hyperparameters.\(name)", reason: "not an integer") }
                if let err = params.set(p, x) { throw SpecError(field: "\(f).hyperparameters.\(name)", reason: err) }
            }
            let name = sub["name"]?.string ?? "subnet \(netuid)"
            guard name.utf8.count <= 64 else { throw SpecError(field: "\(f).name", reason: "at most 64 bytes") }
            guard !spec.subnets.contains(where: { $0.netuid == UInt16(netuid) }) else { throw SpecError(field: "\(f).netuid", reason: "used twice") }
            var poolTao: Rao?
            if let v = sub["poolTao"], !v.isNull {
                guard let x = v.uint64, x >= spec.params.minimumPoolReserve else {
                    throw SpecError(field: "\(f).poolTao", reason: "at least minimumPoolReserve (\(spec.params.minimumPoolReserve) rao)")
                }
                poolTao = x
            }
            let started = sub["started"]?.bool ?? true
            spec.subnets.append(SubnetSpec(netuid: UInt16(netuid), name: name,
                                           owner: try key(sub["owner"], "\(f).owner"), ownerHotkey: try key(sub["ownerHotkey"], "\(f).ownerHotkey"),
                                           params: params, poolTao: poolTao, started: started))
        }
        for sub in spec.subnets {
            let (sum, overflow) = issued.addingReportingOverflow(sub.poolTao ?? spec.params.minLockCost)
            guard !overflow, sum <= spec.params.emission.supplyCap else {
                throw SpecError(field: "genesis.subnets", reason: "balances, stakes and subnet pools add up to more than the supply cap")
            }
            issued = sum
        }
        return spec
    }
}

extension ChainSpec {
    /// The token-economics parameters read from and written to a chain spec's `params`.
    static var economicsParams: [(String, WritableKeyPath<ChainParams, UInt64>)] { [
        ("taoWeight", \.taoWeight), ("flowEmaSmoothing", \.flowEmaSmoothing), ("flowNormExponent", \.flowNormExponent),
        ("minimumPoolReserve", \.minimumPoolReserve), ("movingAlphaPpb", \.movingAlphaPpb), ("emaPriceHalvingBlocks", \.emaPriceHalvingBlocks),
        ("startCallDelay", \.startCallDelay), ("networkImmunityPeriod", \.networkImmunityPeriod),
        ("pendingChildKeyCooldown", \.pendingChildKeyCooldown), ("setChildrenRateLimit", \.setChildrenRateLimit),
        ("childkeyTakeRateLimit", \.childkeyTakeRateLimit),
    ] }
    static var economicsTakes: [(String, WritableKeyPath<ChainParams, UInt16>)] { [
        ("subnetOwnerCut", \.subnetOwnerCut), ("maxChildkeyTake", \.maxChildkeyTake), ("minChildkeyTake", \.minChildkeyTake),
    ] }
}

extension Ed25519.PublicKey {
    /// The all-zero key, used as the genesis block's "producer".
    public static let zero = try! Ed25519.PublicKey(bytes: [UInt8](repeating: 0, count: 32))
}
