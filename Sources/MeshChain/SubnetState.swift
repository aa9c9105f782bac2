import MeshCodec
import MeshCrypto
import MeshIncentive

/// A miner's advertised endpoint (Bittensor's AxonInfo).
public struct AxonInfo: Equatable, Sendable, BinaryCodable {
    /// IPv4 (4 bytes) or IPv6 (16 bytes); empty when only `nodeId` is published.
    public var ip: [UInt8]
    public var port: UInt16
    /// The miner's node id, for reaching it through encrypted discovery.
    public var nodeId: AccountID?
    public var block: UInt64

    public func encode(to w: inout ByteWriter) {
        w.bytes(self.ip); w.u16(self.port)
        w.optional(self.nodeId) { w, k in k.encode(to: &w) }
        w.u64(self.block)
    }

    public init(ip: [UInt8], port: UInt16, nodeId: AccountID?, block: UInt64) {
        self.ip = ip
        self.port = port
        self.nodeId = nodeId
        self.block = block
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.ip = try r.bytes(field: "axon.ip", limit: 16)
        self.port = try r.u16()
        self.nodeId = try r.optional { (r: inout ByteReader) throws(CodecError) in try AccountID(from: &r) }
        self.block = try r.u64()
    }
}

/// One uid slot of a subnet.
public struct Neuron: Equatable, Sendable, BinaryCodable {
    public var hotkey: AccountID
    public var coldkey: AccountID
    public var registeredAt: UInt64
    public var lastUpdate: UInt64
    /// Stored weights (max-upscaled u16) and bonds.
    public var weights: [(uid: UInt16, value: UInt16)]
    public var bonds: [(uid: UInt16, value: UInt16)]
    public var axon: AxonInfo?
    /// A pending weight commitment: hash and the block it was made at.
    public var commitHash: Hash32?
    public var commitBlock: UInt64
    public var commitEpoch: UInt64 = 0
    // Outputs of the last epoch.
    public var stakeWeight: UInt16 = 0
    public var consensus: UInt16 = 0
    public var incentive: UInt16 = 0
    public var dividends: UInt16 = 0
    public var validatorTrust: UInt16 = 0
    public var emission: Rao = 0
    public var validatorPermit = false
    public var active = true

    public init(hotkey: AccountID, coldkey: AccountID, block: UInt64) {
        self.hotkey = hotkey
        self.coldkey = coldkey
        self.registeredAt = block
        self.lastUpdate = block
        self.weights = []
        self.bonds = []
        self.commitBlock = 0
    }

    public static func == (a: Neuron, b: Neuron) -> Bool { a.encoded == b.encoded }

    public func encode(to w: inout ByteWriter) {
        self.hotkey.encode(to: &w); self.coldkey.encode(to: &w)
        w.u64(self.registeredAt); w.u64(self.lastUpdate)
        w.list(self.weights) { w, e in w.u16(e.uid); w.u16(e.value) }
        w.list(self.bonds) { w, e in w.u16(e.uid); w.u16(e.value) }
        w.optional(self.axon) { w, a in a.encode(to: &w) }
        w.optional(self.commitHash) { w, h in h.encode(to: &w) }
        w.u64(self.commitBlock)
        w.u64(self.commitEpoch)
        w.u16(self.stakeWeight); w.u16(self.consensus); w.u16(self.incentive); w.u16(self.dividends); w.u16(self.validatorTrust)
        w.u64(self.emission); w.bool(self.validatorPermit); w.bool(self.active)
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.hotkey = try AccountID(from: &r)
        self.coldkey = try AccountID(from: &r)
        self.registeredAt = try r.u64()
        self.lastUpdate = try r.u64()
        func pairs() throws(CodecError) -> [(uid: UInt16, value: UInt16)] {
            try r.list(limit: 65536, minElementSize: 4) { (r: inout ByteReader) throws(CodecError) in (try r.u16(), try r.u16()) }
        }
        self.weights = try pairs()
        self.bonds = try pairs()
        self.axon = try r.optional { (r: inout ByteReader) throws(CodecError) in try AxonInfo(from: &r) }
        self.commitHash = try r.optional { (r: inout ByteReader) throws(CodecError) in try Hash32(from: &r) }
        self.commitBlock = try r.u64()
        self.commitEpoch = try r.u64()
        self.stakeWeight = try r.u16(); self.consensus = try r.u16(); self.incentive = try r.u16()
        self.dividends = try r.u16(); self.validatorTrust = try r.u16()
        self.emission = try r.u64(); self.validatorPermit = try r.bool(); self.active = try r.bool()
    }
}

/// A subnet's hyperparameters (defaults: Bittensor's values for a new subnet, except tempo,
/// which genesis files for private networks usually shorten).
public struct SubnetParams: Equatable, Sendable, Codable, BinaryCodable {
    public var tempo: UInt64 = 360
    public var immunityPeriod: UInt64 = 5000
    public var maxAllowedUids: UInt64 = 256
    public var maxAllowedValidators: UInt64 = 64
    public var kappa: UInt64 = 32767
    public var bondsMovingAverage: UInt64 = 900_000
    public var bondsPenalty: UInt64 = 65535
    public var yuma3: UInt64 = 1
    public var liquidAlpha: UInt64 = 0
    public var alphaLow: UInt64 = 45875
    public var alphaHigh: UInt64 = 58982
    public var commitRevealEnabled: UInt64 = 0
    public var weightsRateLimit: UInt64 = 100
    public var minAllowedWeights: UInt64 = 1
    public var maxWeightsLimit: UInt64 = 65535
    public var weightsVersionKey: UInt64 = 0
    public var activityCutoffFactorMilli: UInt64 = 13_889
    public var minBurn: UInt64 = 500_000_000
    public var maxBurn: UInt64 = 100_000_000_000
    public var revealPeriodEpochs: UInt64 = 1
    public var servingRateLimit: UInt64 = 50
    public var stakeThreshold: UInt64 = 0

    public init() {}

    public func value(_ p: Hyperparameter) -> UInt64 {
        switch p {
        case .tempo: return self.tempo
        case .immunityPeriod: return self.immunityPeriod
        case .maxAllowedUids: return self.maxAllowedUids
        case .maxAllowedValidators: return self.maxAllowedValidators
        case .kappa: return self.kappa
        case .bondsMovingAverage: return self.bondsMovingAverage
        case .bondsPenalty: return self.bondsPenalty
        case .yuma3: return self.yuma3
        case .liquidAlpha: return self.liquidAlpha
        case .alphaLow: return self.alphaLow
        case .alphaHigh: return self.alphaHigh
        case .commitRevealEnabled: return self.commitRevealEnabled
        case .weightsRateLimit: return self.weightsRateLimit
        case .minAllowedWeights: return self.minAllowedWeights
        case .maxWeightsLimit: return self.maxWeightsLimit
        case .weightsVersionKey: return self.weightsVersionKey
        case .activityCutoffFactorMilli: return self.activityCutoffFactorMilli
        case .minBurn: return self.minBurn
        case .maxBurn: return self.maxBurn
        case .revealPeriodEpochs: return self.revealPeriodEpochs
        case .servingRateLimit: return self.servingRateLimit
        case .stakeThreshold: return self.stakeThreshold
        }
    }

    /// Sets a value after checking its bounds; returns the refusal reason otherwise.
    public mutating func set(_ p: Hyperparameter, _ v: UInt64) -> String? {
        func within(_ lo: UInt64, _ hi: UInt64) -> String? { (v >= lo && v <= hi) ? nil : "\(p.name) must be within \(lo)...\(hi)" }
        let err: String?
        switch p {
        case .tempo: err = within(1, 50_400)
        case .immunityPeriod: err = within(0, 1_000_000)
        case .maxAllowedUids: err = within(2, 4096)
        case .maxAllowedValidators: err = within(1, 4096)
        case .kappa, .bondsPenalty, .maxWeightsLimit: err = within(0, 65535)
        case .bondsMovingAverage: err = within(0, 975_000)
        case .yuma3, .liquidAlpha, .commitRevealEnabled: err = within(0, 1)
        case .alphaLow, .alphaHigh: err = within(1638, 65535)
        case .weightsRateLimit, .servingRateLimit: err = within(0, 100_000)
        case .minAllowedWeights: err = within(0, 4096)
        case .weightsVersionKey, .stakeThreshold: err = nil
        case .activityCutoffFactorMilli: err = within(1000, 50_000)
        case .minBurn, .maxBurn: err = within(0, 1_000_000 * Token.tao)
        case .revealPeriodEpochs: err = within(1, 100)
        }
        if let err { return err }
        var copy = self
        switch p {
        case .tempo: copy.tempo = v
        case .immunityPeriod: copy.immunityPeriod = v
        case .maxAllowedUids: copy.maxAllowedUids = v
        case .maxAllowedValidators: copy.maxAllowedValidators = v
        case .kappa: copy.kappa = v
        case .bondsMovingAverage: copy.bondsMovingAverage = v
        case .bondsPenalty: copy.bondsPenalty = v
        case .yuma3: copy.yuma3 = v
        case .liquidAlpha: copy.liquidAlpha = v
        case .alphaLow: copy.alphaLow = v
        case .alphaHigh: copy.alphaHigh = v
        case .commitRevealEnabled: copy.commitRevealEnabled = v
        case .weightsRateLimit: copy.weightsRateLimit = v
        case .minAllowedWeights: copy.minAllowedWeights = v
        case .maxWeightsLimit: copy.maxWeightsLimit = v
        case .weightsVersionKey: copy.weightsVersionKey = v
        case .activityCutoffFactorMilli: copy.activityCutoffFactorMilli = v
        case .minBurn: copy.minBurn = v
        case .maxBurn: copy.maxBurn = v
        case .revealPeriodEpochs: copy.revealPeriodEpochs = v
        case .servingRateLimit: copy.servingRateLimit = v
        case .stakeThreshold: copy.stakeThreshold = v
        }
        if copy.alphaLow > copy.alphaHigh { return "alpha_low must not exceed alpha_high" }
        if copy.minBurn > copy.maxBurn { return "min_burn must not exceed max_burn" }
        self = copy
        return nil
    }

    public func encode(to w: inout ByteWriter) {
        for p in Hyperparameter.allCases { w.u64(self.value(p)) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.init()
        for p in Hyperparameter.allCases {
            let v = try r.u64()
            if self.set(p, v) != nil { throw .invalidValue(field: "hyperparameter \(p.name)", reason: "\(v) out of range") }
        }
    }

    /// The Yuma parameters of the incentive engine.
    public var yuma: YumaParameters {
        var y = YumaParameters()
        y.kappa = UInt16(min(self.kappa, 65535))
        y.bondsPenalty = UInt16(min(self.bondsPenalty, 65535))
        y.bondsMovingAverage = self.bondsMovingAverage
        y.maxAllowedValidators = Int(self.maxAllowedValidators)
        y.yuma3 = self.yuma3 != 0
        y.liquidAlpha = self.liquidAlpha != 0
        y.alphaLow = UInt16(min(self.alphaLow, 65535))
        y.alphaHigh = UInt16(min(self.alphaHigh, 65535))
        return y
    }
}

/// One subnet: its owner, parameters, uids and emission pools.
public struct Subnet: Equatable, Sendable, BinaryCodable {
    public var netuid: UInt16
    public var name: String
    public var owner: AccountID
    public var ownerHotkey: AccountID
    public var createdAt: UInt64
    /// TAO locked at creation (returned if the subnet is ever dissolved).
    public var locked: Rao
    public var params: SubnetParams
    public var neurons: [Neuron]
    /// The current registration burn.
    public var burn: Rao
    public var lastEpochBlock: UInt64
    public var epochCount: UInt64
    /// Emission accumulated since the last epoch.
    public var pendingServer: Rao
    public var pendingValidator: Rao
    public var registrationsThisBlock: UInt64
    /// The TAO/alpha pool and emission state (dynamic TAO).
    public var pool: SubnetPool
    /// What the owner says about the subnet.
    public var identity: SubnetIdentity?

    public init(netuid: UInt16, name: String, owner: AccountID, ownerHotkey: AccountID, block: UInt64, locked: Rao, params: SubnetParams) {
        self.netuid = netuid
        self.name = name
        self.owner = owner
        self.ownerHotkey = ownerHotkey
        self.createdAt = block
        self.locked = locked
        self.params = params
        self.neurons = []
        self.burn = params.minBurn
        // Stagger epochs across subnets.
        self.lastEpochBlock = block
        self.epochCount = 0
        self.pendingServer = 0
        self.pendingValidator = 0
        self.registrationsThisBlock = 0
        self.pool = SubnetPool(mechanism: netuid == 0 ? 0 : 1, symbol: TokenSymbols.symbol(for: netuid))
        self.identity = nil
    }

    public func uid(of hotkey: AccountID) -> Int? { self.neurons.firstIndex { $0.hotkey == hotkey } }

    public func encode(to w: inout ByteWriter) {
        w.u16(self.netuid); w.string(self.name)
        self.owner.encode(to: &w); self.ownerHotkey.encode(to: &w)
        w.u64(self.createdAt); w.u64(self.locked)
        self.params.encode(to: &w)
        w.list(self.neurons)
        w.u64(self.burn); w.u64(self.lastEpochBlock); w.u64(self.epochCount)
        w.u64(self.pendingServer); w.u64(self.pendingValidator); w.u64(self.registrationsThisBlock)
        self.pool.encode(to: &w)
        w.optional(self.identity) { w, i in i.encode(to: &w) }
    }

    public init(from r: inout ByteReader) throws(CodecError) {
        self.netuid = try r.u16()
        self.name = try r.string(field: "subnet.name", limit: 64)
        self.owner = try AccountID(from: &r)
        self.ownerHotkey = try AccountID(from: &r)
        self.createdAt = try r.u64(); self.locked = try r.u64()
        self.params = try SubnetParams(from: &r)
        self.neurons = try r.list(of: Neuron.self, field: "neurons", limit: 4096, minElementSize: 100)
        self.burn = try r.u64(); self.lastEpochBlock = try r.u64(); self.epochCount = try r.u64()
        self.pendingServer = try r.u64(); self.pendingValidator = try r.u64(); self.registrationsThisBlock = try r.u64()
        self.pool = try SubnetPool(from: &r)
        self.identity = try r.optional { (r: inout ByteReader) throws(CodecError) in try SubnetIdentity(from: &r) }
    }
}
