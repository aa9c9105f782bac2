/// The per-subnet hyperparameters an epoch reads (yuma.md section 7). Defaults are
/// subtensor's storage defaults, except where noted.
public struct YumaParameters: Equatable, Sendable, Codable {
    /// Consensus majority as a u16 proportion (32767 ≈ 0.5).
    public var kappa: UInt16 = 32767
    /// Bonds penalty β as a u16 proportion (65535 = 1: bonds only on consensus-supported weight).
    public var bondsPenalty: UInt16 = 65535
    /// Bonds moving average in millionths (900000 ⇒ α = 0.1).
    public var bondsMovingAverage: UInt64 = 900_000
    /// Top-k validator permits.
    public var maxAllowedValidators: Int = 128
    /// The Yuma 3 bond engine (on for new subnets on chain since PR #2535).
    public var yuma3: Bool = false
    /// Per-cell liquid alpha (Yuma 3 only).
    public var liquidAlpha: Bool = false
    /// Liquid alpha bounds as u16 proportions (≈0.7 and ≈0.9).
    public var alphaLow: UInt16 = 45875
    public var alphaHigh: UInt16 = 58982
    /// Sigmoid steepness (1000 ⇒ factor 10).
    public var alphaSigmoidSteepness: Int64 = 1000

    public init() {}

    enum CodingKeys: String, CodingKey {
        case kappa, bondsPenalty = "bonds_penalty", bondsMovingAverage = "bonds_moving_average"
        case maxAllowedValidators = "max_allowed_validators", yuma3, liquidAlpha = "liquid_alpha"
        case alphaLow = "alpha_low", alphaHigh = "alpha_high", alphaSigmoidSteepness = "alpha_sigmoid_steepness"
    }
}

/// Which of subtensor's two epoch implementations to follow (yuma.md section 6).
public enum EpochPath: String, Sendable, Codable {
    /// Production `epoch_mechanism`: owner exemptions, commit-reveal mask, sparse bond deletion.
    case sparse
    /// Test helper `epoch_dense_mechanism`, kept for replaying upstream tests.
    case dense
}

/// Everything one epoch of one subnet reads (yuma.md section 3). Plain vectors, no chain types.
public struct EpochInput: Sendable {
    public var n: Int
    public var currentBlock: UInt64
    public var tempo: UInt64
    /// Activity cutoff in blocks; nil derives it from `activityCutoffFactorMilli × tempo / 1000`.
    public var activityCutoff: UInt64?
    public var activityCutoffFactorMilli: UInt64 = 13_889
    public var lastMechanismStepBlock: UInt64 = 0
    /// Stake weight per uid (rao).
    public var stake: [UInt64]
    public var stakeThreshold: UInt64 = 0
    public var ownerUid: Int?
    /// Permits from the previous epoch.
    public var validatorPermit: [Bool]
    public var lastUpdate: [UInt64]
    public var blockAtRegistration: [UInt64]
    /// Stored weight rows (u16, max-upscaled).
    public var weights: SparseMatrix<UInt16>
    /// Stored bond rows (u16).
    public var bonds: SparseMatrix<UInt16>
    public var commitRevealEnabled = false
    /// Earliest unexpired commit block per uid.
    public var commitBlock: [UInt64?]
    public var params = YumaParameters()
    /// Alpha (rao) to distribute.
    public var emission: UInt64

    public init(n: Int, currentBlock: UInt64, tempo: UInt64, emission: UInt64) {
        self.n = n
        self.currentBlock = currentBlock
        self.tempo = tempo
        self.emission = emission
        self.stake = [UInt64](repeating: 0, count: n)
        self.validatorPermit = [Bool](repeating: false, count: n)
        self.lastUpdate = [UInt64](repeating: currentBlock, count: n)
        self.blockAtRegistration = [UInt64](repeating: currentBlock, count: n)
        self.weights = SparseMatrix(n: n)
        self.bonds = SparseMatrix(n: n)
        self.commitBlock = [UInt64?](repeating: nil, count: n)
    }

    /// The activity cutoff in blocks, at least 1.
    public var effectiveActivityCutoff: UInt64 {
        if let c = self.activityCutoff { return c }
        return max(1, self.activityCutoffFactorMilli &* self.tempo / 1000)
    }

    /// Checks lengths and indices; an inconsistent input is skipped by the chain, and an
    /// error names the field here.
    public func validate() throws(EpochInputError) {
        func check(_ name: String, _ count: Int) throws(EpochInputError) {
            if count != self.n { throw .lengthMismatch(field: name, expected: self.n, actual: count) }
        }
        try check("stake", self.stake.count)
        try check("validator_permit", self.validatorPermit.count)
        try check("last_update", self.lastUpdate.count)
        try check("block_at_registration", self.blockAtRegistration.count)
        try check("commit_block", self.commitBlock.count)
        try check("weights", self.weights.n)
        try check("bonds", self.bonds.n)
        if let o = self.ownerUid, o < 0 || o >= self.n { throw .invalidValue(field: "owner_uid", reason: "\(o) is not a uid below n = \(self.n)") }
        if self.n > 65536 { throw .invalidValue(field: "n", reason: "at most 65536 uids") }
    }
}

/// Why an epoch input is unusable.
public enum EpochInputError: Error, Equatable, Sendable, CustomStringConvertible {
    case lengthMismatch(field: String, expected: Int, actual: Int)
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case .lengthMismatch(let f, let e, let a): return "\(f): expected \(e) entries (n), got \(a)"
        case .invalidValue(let f, let r): return "\(f): \(r)"
        }
    }
}

/// One epoch's results (yuma.md section 4, step 13).
public struct EpochOutput<S: YumaScalar>: Sendable {
    public var active: [Bool]
    public var stakeNorm: [S]
    public var activeStake: [S]
    public var newValidatorPermit: [Bool]
    public var weightsNorm: SparseMatrix<S>
    public var consensus: [S]
    public var validatorTrust: [S]
    public var incentive: [S]
    public var dividends: [S]
    public var normServerEmission: [S]
    public var normValidatorEmission: [S]
    public var normCombinedEmission: [S]
    public var serverEmission: [UInt64]
    public var validatorEmission: [UInt64]
    public var combinedEmission: [UInt64]
    /// The bond rows to store (u16), or nil for rows the epoch leaves untouched.
    public var newBonds: [[(Int, UInt16)]?]

    /// The u16 vectors the chain stores. Each is computed on every access (O(n)): read it
    /// once, not per element.
    public var u16StakeWeight: [UInt16] { self.stakeNorm.map { $0.u16Proportion } }
    public var u16Consensus: [UInt16] { self.consensus.map { $0.u16Proportion } }
    public var u16Incentive: [UInt16] { self.incentive.map { $0.u16Proportion } }
    public var u16Dividends: [UInt16] { self.dividends.map { $0.u16Proportion } }
    public var u16ValidatorTrust: [UInt16] { self.validatorTrust.map { $0.u16Proportion } }
}
