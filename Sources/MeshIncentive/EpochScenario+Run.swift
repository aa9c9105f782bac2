import MeshCodec

extension EpochScenario {
    /// The result of one step: the epoch's output (nil when the step ran no epoch) and the
    /// median epoch time when the step was repeated.
    public struct StepResult<S: YumaScalar>: Sendable {
        public var output: EpochOutput<S>?
        public var epochNanosMedian: UInt64?
        /// The stored bond rows after the step.
        public var storedBonds: SparseMatrix<UInt16>
    }

    /// Why an action cannot be applied to the current state.
    public struct ActionError: Error, CustomStringConvertible {
        public var step: Int
        public var reason: String
        public var description: String { "steps[\(self.step)]: \(self.reason)" }
    }

    /// Runs every step in order. With `repeat` > 1 each epoch runs that many times on the
    /// same input and the median time is reported (`clock` returns monotonic nanoseconds).
    public func run<S: YumaScalar>(
        as: S.Type, repeat count: Int = 1, clock: (() -> UInt64)? = nil
    ) throws(ActionError) -> [StepResult<S>] {
        var state = self.initial
        var results: [StepResult<S>] = []
        for (index, step) in self.steps.enumerated() {
            for action in step.actions {
                do { try Self.apply(action, to: &state) } catch { throw ActionError(step: index, reason: error.description) }
            }
            guard step.runEpoch else {
                results.append(StepResult(output: nil, epochNanosMedian: nil, storedBonds: state.bonds))
                continue
            }
            var input = state
            if let e = step.emission { input.emission = e }
            let path = step.path ?? self.path
            var output = YumaEpoch.run(input, path: path, as: S.self)
            var median: UInt64?
            if count > 1, let clock {
                var times: [UInt64] = []
                for _ in 0..<count {
                    let t0 = clock()
                    output = YumaEpoch.run(input, path: path, as: S.self)
                    times.append(clock() - t0)
                }
                times.sort()
                median = times[times.count / 2]
            }
            Self.commit(output, to: &state)
            results.append(StepResult(output: output, epochNanosMedian: median, storedBonds: state.bonds))
        }
        return results
    }

    /// Stores what the chain keeps after an epoch: new permits and bond rows.
    public static func commit<S: YumaScalar>(_ output: EpochOutput<S>, to state: inout EpochInput) {
        state.validatorPermit = output.newValidatorPermit
        var rows: [[(Int, UInt16)]] = (0..<state.n).map { state.bonds.row($0) }
        for i in 0..<state.n {
            if let r = output.newBonds[i] { rows[i] = r }
        }
        state.bonds = SparseMatrix(rows: rows, n: state.n)
    }

    /// Applies one action (yuma.md section 11) to a subnet state.
    public static func apply(_ action: Action, to s: inout EpochInput) throws(ScenarioError) {
        func checkUid(_ uid: Int, _ what: String) throws(ScenarioError) {
            guard uid >= 0 && uid < s.n else { throw ScenarioError(what, "uid \(uid) is not below n = \(s.n)") }
        }
        switch action {
        case .setBlock(let b):
            s.currentBlock = b
        case .advance(let blocks):
            s.currentBlock &+= blocks
        case .setWeights(let uids, let dests, let values):
            for d in dests { try checkUid(d, "dests") }
            let stored = WeightsUpscale.maxUpscale(values)
            for uid in uids {
                try checkUid(uid, "uid")
                s.weights = s.weights.replacingRow(uid, with: Array(zip(dests, stored)))
                s.lastUpdate[uid] = s.currentBlock
            }
        case .setWeightsRaw(let uid, let row):
            try checkUid(uid, "uid")
            for (d, _) in row { try checkUid(d, "row") }
            s.weights = s.weights.replacingRow(uid, with: row)
        case .register(let uid, let stake):
            try checkUid(uid, "uid")
            s.blockAtRegistration[uid] = s.currentBlock
            s.lastUpdate[uid] = s.currentBlock
            s.stake[uid] = stake
            s.validatorPermit[uid] = false
            s.commitBlock[uid] = nil
            s.weights = s.weights.replacingRow(uid, with: [])
            // Every other row keeps its entry on the replaced uid, set to zero.
            s.weights = s.weights.mapEntries { _, j, v in j == uid ? 0 : v }
            s.bonds = s.bonds.replacingRow(uid, with: [])
        case .append(let stake):
            guard s.n < 65536 else { throw ScenarioError("append", "the subnet already has 65536 uids") }
            s.n += 1
            s.stake.append(stake)
            s.validatorPermit.append(false)
            s.lastUpdate.append(s.currentBlock)
            s.blockAtRegistration.append(s.currentBlock)
            s.commitBlock.append(nil)
            s.weights = s.weights.resized(to: s.n)
            s.bonds = s.bonds.resized(to: s.n)
        case .setStake(let uid, let stake):
            if let uid {
                try checkUid(uid, "uid")
                s.stake[uid] = stake[0]
            } else {
                guard stake.count == s.n else { throw ScenarioError("stake", "expected \(s.n) entries (n), got \(stake.count)") }
                s.stake = stake
            }
        case .addStake(let uid, let amount):
            try checkUid(uid, "uid")
            s.stake[uid] = s.stake[uid] &+ amount
        case .setParam(let key, let value):
            try EpochScenario.applyParam(key: key, value: value, to: &s.params, field: "set_param.\(key)")
        case .setState(let key, let value):
            let f = "set_state.\(key)"
            switch key {
            case "tempo": s.tempo = try value.u64(f)
            case "current_block": s.currentBlock = try value.u64(f)
            case "last_mechanism_step_block": s.lastMechanismStepBlock = try value.u64(f)
            case "stake_threshold": s.stakeThreshold = try value.u64(f)
            case "activity_cutoff": s.activityCutoff = try value.optionalU64(f)
            case "activity_cutoff_factor_milli": s.activityCutoffFactorMilli = try value.u64(f)
            case "commit_reveal_enabled": s.commitRevealEnabled = try value.bool(f)
            case "owner_uid":
                if let o = try value.optionalU64(f) {
                    try checkUid(Int(min(o, 1 << 20)), f)
                    s.ownerUid = Int(o)
                } else {
                    s.ownerUid = nil
                }
            case "commit_block":
                guard case .list(let l) = value, l.count == s.n else { throw ScenarioError(f, "expected a list of n integers or nulls") }
                s.commitBlock = l
            default: throw ScenarioError(f, "unknown state key")
            }
        case .resetBonds(let uid):
            try checkUid(uid, "uid")
            s.bonds = s.bonds.mapEntries { _, j, v in j == uid ? nil : v }
        }
    }
}

extension SparseMatrix {
    /// The matrix with row `i` replaced.
    public func replacingRow(_ i: Int, with row: [(Int, Value)]) -> SparseMatrix {
        var rows = (0..<self.n).map { self.row($0) }
        rows[i] = row
        return SparseMatrix(rows: rows, n: self.n)
    }

    /// The matrix with each entry transformed; nil drops it.
    public func mapEntries(_ transform: (Int, Int, Value) -> Value?) -> SparseMatrix {
        var b = Builder(n: self.n, capacity: self.nonZeroCount)
        for i in 0..<self.n {
            for k in self.range(ofRow: i) {
                let j = Int(self.columns[k])
                if let v = transform(i, j, self.values[k]) { b.append(column: j, value: v) }
            }
            b.endRow()
        }
        return b.build()
    }

    /// The same entries in a matrix of size `n` (entries beyond it are dropped).
    public func resized(to n: Int) -> SparseMatrix {
        let rows = (0..<n).map { $0 < self.n ? self.row($0).filter { $0.0 < n } : [] }
        return SparseMatrix(rows: rows, n: n)
    }
}

// MARK: - JSON output (yuma.md, "Output of tensormesh epoch --scenario FILE")

extension EpochOutput {
    /// Every quantity a case's `expect.out` can name, as JSON.
    public func json(storedBonds: SparseMatrix<UInt16>) -> JSONValue {
        func floats(_ v: [S]) -> JSONValue { .array(v.map { .double($0.doubleValue) }) }
        func ints<I: BinaryInteger>(_ v: [I]) -> JSONValue { .array(v.map { .int($0) }) }
        func bools(_ v: [Bool]) -> JSONValue { .array(v.map { .bool($0) }) }
        let weightRows: JSONValue = .array((0..<self.weightsNorm.n).map { i in
            .array(self.weightsNorm.row(i).map { .array([.int($0.0), .double($0.1.doubleValue)]) })
        })
        let bondRows: JSONValue = .array((0..<storedBonds.n).map { i in
            .array(storedBonds.row(i).map { .array([.int($0.0), .int($0.1)]) })
        })
        return .object([
            ("active", bools(self.active)),
            ("stake_norm", floats(self.stakeNorm)),
            ("active_stake", floats(self.activeStake)),
            ("new_validator_permit", bools(self.newValidatorPermit)),
            ("weights_norm", weightRows),
            ("consensus", floats(self.consensus)),
            ("validator_trust", floats(self.validatorTrust)),
            ("incentive", floats(self.incentive)),
            ("dividends", floats(self.dividends)),
            ("norm_server_emission", floats(self.normServerEmission)),
            ("norm_validator_emission", floats(self.normValidatorEmission)),
            ("norm_combined_emission", floats(self.normCombinedEmission)),
            ("server_emission", ints(self.serverEmission)),
            ("validator_emission", ints(self.validatorEmission)),
            ("combined_emission", ints(self.combinedEmission)),
            ("u16", .object([
                ("stake_weight", ints(self.u16StakeWeight)),
                ("consensus", ints(self.u16Consensus)),
                ("incentive", ints(self.u16Incentive)),
                ("dividends", ints(self.u16Dividends)),
                ("validator_trust", ints(self.u16ValidatorTrust)),
            ])),
            ("bonds", bondRows),
        ])
    }
}
