import MeshCodec

/// A scenario for `tensormesh epoch --scenario FILE` (yuma.md section 11): an initial subnet
/// state and steps of actions, each followed by one epoch. Bonds and permits carry over.
public struct EpochScenario: Sendable {
    public var path: EpochPath
    public var initial: EpochInput
    public var steps: [Step]

    /// A scenario from its parts (as ``parse(value:)`` builds it).
    public init(path: EpochPath, initial: EpochInput, steps: [Step]) {
        self.path = path
        self.initial = initial
        self.steps = steps
    }

    /// One step: actions in order, then (unless `runEpoch` is false) one epoch.
    public struct Step: Sendable {
        public var actions: [Action]
        public var emission: UInt64?
        public var path: EpochPath?
        public var runEpoch: Bool

        /// A step from its parts.
        public init(actions: [Action], emission: UInt64? = nil, path: EpochPath? = nil, runEpoch: Bool = true) {
            self.actions = actions
            self.emission = emission
            self.path = path
            self.runEpoch = runEpoch
        }
    }

    /// A change to the subnet state between epochs.
    public enum Action: Sendable {
        case setBlock(UInt64)
        case advance(UInt64)
        case setWeights(uids: [Int], dests: [Int], values: [UInt16])
        case setWeightsRaw(uid: Int, row: [(Int, UInt16)])
        case register(uid: Int, stake: UInt64)
        case append(stake: UInt64)
        case setStake(uid: Int?, stake: [UInt64])
        case addStake(uid: Int, amount: UInt64)
        case setParam(key: String, value: ScenarioValue)
        case setState(key: String, value: ScenarioValue)
        case resetBonds(uid: Int)
    }
}

/// A JSON value carried by `set_param`/`set_state`.
public enum ScenarioValue: Sendable {
    case bool(Bool)
    case integer(UInt64)
    case null
    case list([UInt64?])
}

/// A malformed scenario; the message names the field. The command exits with code 2.
public struct ScenarioError: Error, Equatable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(self.field): \(self.reason)" }
}

// MARK: - Parsing

extension EpochScenario {
    /// Parses a scenario from JSON bytes.
    public static func parse(bytes: [UInt8]) throws(ScenarioError) -> EpochScenario {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw ScenarioError("scenario", error.description) }
        return try parse(value: value)
    }

    /// Parses a scenario object (`{"path", "init", "steps"}`), or a case holding one under `scenario`.
    public static func parse(value: JSONValue) throws(ScenarioError) -> EpochScenario {
        guard case .object = value else { throw ScenarioError("scenario", "expected a JSON object") }
        var root = value
        if let inner = value["scenario"], value["init"] == nil { root = inner }
        let reader = FieldReader(root, "scenario")
        var path = EpochPath.sparse
        if let s = try reader.optionalString("path") {
            guard let p = EpochPath(rawValue: s) else { throw ScenarioError("scenario.path", "expected \"sparse\" or \"dense\", got \"\(s)\"") }
            path = p
        }
        guard let initObject = root["init"], case .object = initObject else { throw ScenarioError("scenario.init", "missing or not an object") }
        let initial = try parseState(FieldReader(initObject, "init"))
        guard let stepsArray = root["steps"]?.array else { throw ScenarioError("scenario.steps", "missing or not a list") }
        var steps: [Step] = []
        for (index, s) in stepsArray.enumerated() {
            guard case .object = s else { throw ScenarioError("steps[\(index)]", "expected an object") }
            steps.append(try parseStep(FieldReader(s, "steps[\(index)]")))
        }
        return EpochScenario(path: path, initial: initial, steps: steps)
    }

    static func parseState(_ r: FieldReader) throws(ScenarioError) -> EpochInput {
        let n = try r.int("n", max: 65536)
        let block = try r.optionalU64("current_block") ?? 1
        let tempo = try r.optionalU64("tempo") ?? 360
        var s = EpochInput(n: n, currentBlock: block, tempo: tempo, emission: try r.optionalU64("emission") ?? 1_000_000_000)
        s.activityCutoff = try r.optionalU64("activity_cutoff")
        s.activityCutoffFactorMilli = try r.optionalU64("activity_cutoff_factor_milli") ?? 13_889
        s.lastMechanismStepBlock = try r.optionalU64("last_mechanism_step_block") ?? 0
        s.stake = try r.u64List("stake", count: n) ?? [UInt64](repeating: 0, count: n)
        s.stakeThreshold = try r.optionalU64("stake_threshold") ?? 0
        if let o = try r.optionalU64("owner_uid") {
            guard o < UInt64(n) else { throw ScenarioError("init.owner_uid", "\(o) is not a uid below n = \(n)") }
            s.ownerUid = Int(o)
        }
        s.validatorPermit = try r.boolList("validator_permit", count: n) ?? [Bool](repeating: false, count: n)
        s.lastUpdate = try r.u64List("last_update", count: n) ?? [UInt64](repeating: block, count: n)
        s.blockAtRegistration = try r.u64List("block_at_registration", count: n) ?? [UInt64](repeating: 0, count: n)
        s.weights = try r.matrix("weights", n: n, upscaleFloats: true)
        s.bonds = try r.matrix("bonds", n: n, upscaleFloats: false)
        s.commitRevealEnabled = try r.optionalBool("commit_reveal_enabled") ?? false
        s.commitBlock = try r.nullableU64List("commit_block", count: n)
        if let params = r.value["params"] {
            guard let members = params.object else { throw ScenarioError("init.params", "expected an object") }
            for (key, value) in members {
                try applyParam(key: key, value: try ScenarioValue(value, field: "init.params.\(key)"), to: &s.params, field: "init.params.\(key)")
            }
        }
        return s
    }

    static func parseStep(_ r: FieldReader) throws(ScenarioError) -> Step {
        var actions: [Action] = []
        if let list = r.value["actions"] {
            guard let arr = list.array else { throw ScenarioError("\(r.path).actions", "expected a list") }
            for (i, a) in arr.enumerated() {
                guard case .object = a else { throw ScenarioError("\(r.path).actions[\(i)]", "expected an object") }
                actions.append(try parseAction(FieldReader(a, "\(r.path).actions[\(i)]")))
            }
        }
        var path: EpochPath?
        if let p = try r.optionalString("path") {
            guard let pp = EpochPath(rawValue: p) else { throw ScenarioError("\(r.path).path", "expected \"sparse\" or \"dense\"") }
            path = pp
        }
        return Step(actions: actions, emission: try r.optionalU64("emission"), path: path,
                    runEpoch: try r.optionalBool("epoch") ?? true)
    }

    static func parseAction(_ r: FieldReader) throws(ScenarioError) -> Action {
        let op = try r.string("op")
        switch op {
        case "set_block": return .setBlock(try r.u64("block"))
        case "advance": return .advance(try r.optionalU64("blocks") ?? 1)
        case "set_weights", "set_weights_many":
            let dests = try r.uidList("dests")
            let values = try r.u16List("values")
            guard dests.count == values.count else { throw ScenarioError("\(r.path).values", "\(values.count) values for \(dests.count) dests") }
            let uids = op == "set_weights" ? [try r.int("uid", max: 65535)] : try r.uidList("uids")
            return .setWeights(uids: uids, dests: dests, values: values)
        case "set_weights_raw":
            guard let rows = r.value["row"]?.array else { throw ScenarioError("\(r.path).row", "expected [[dest, u16], ...]") }
            var row: [(Int, UInt16)] = []
            for (i, e) in rows.enumerated() {
                guard let pair = e.array, pair.count == 2, let d = pair[0].uint64, d <= 65535, let v = pair[1].uint64, v <= 65535 else {
                    throw ScenarioError("\(r.path).row[\(i)]", "expected [dest, u16]")
                }
                row.append((Int(d), UInt16(v)))
            }
            return .setWeightsRaw(uid: try r.int("uid", max: 65535), row: row)
        case "register": return .register(uid: try r.int("uid", max: 65535), stake: try r.optionalU64("stake") ?? 0)
        case "append": return .append(stake: try r.optionalU64("stake") ?? 0)
        case "set_stake":
            if r.value["uid"] != nil { return .setStake(uid: try r.int("uid", max: 65535), stake: [try r.u64("stake")]) }
            guard let list = try r.u64List("stake", count: nil) else { throw ScenarioError("\(r.path).stake", "missing") }
            return .setStake(uid: nil, stake: list)
        case "add_stake": return .addStake(uid: try r.int("uid", max: 65535), amount: try r.u64("amount"))
        case "set_param", "set_state":
            let key = try r.string("key")
            guard let v = r.value["value"] else { throw ScenarioError("\(r.path).value", "missing") }
            let value = try ScenarioValue(v, field: "\(r.path).value")
            return op == "set_param" ? .setParam(key: key, value: value) : .setState(key: key, value: value)
        case "reset_bonds": return .resetBonds(uid: try r.int("uid", max: 65535))
        default: throw ScenarioError("\(r.path).op", "unknown action \"\(op)\"")
        }
    }

    static func applyParam(key: String, value: ScenarioValue, to p: inout YumaParameters, field: String) throws(ScenarioError) {
        switch key {
        case "kappa": p.kappa = try value.u16(field)
        case "bonds_penalty": p.bondsPenalty = try value.u16(field)
        case "bonds_moving_average": p.bondsMovingAverage = try value.u64(field, max: 1_000_000)
        case "max_allowed_validators": p.maxAllowedValidators = Int(try value.u64(field, max: 65536))
        case "yuma3": p.yuma3 = try value.bool(field)
        case "liquid_alpha": p.liquidAlpha = try value.bool(field)
        case "alpha_low": p.alphaLow = try value.u16(field)
        case "alpha_high": p.alphaHigh = try value.u16(field)
        case "alpha_sigmoid_steepness": p.alphaSigmoidSteepness = Int64(try value.u64(field, max: 32767))
        case "rho", "immunity_period", "min_allowed_weights", "weights_set_rate_limit", "max_allowed_uids":
            break  // accepted for completeness; the epoch does not read them
        default: throw ScenarioError(field, "unknown parameter \"\(key)\"")
        }
    }
}

extension ScenarioValue {
    init(_ v: JSONValue, field: String) throws(ScenarioError) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number:
            guard let x = v.uint64 else { throw ScenarioError(field, "expected a non-negative integer") }
            self = .integer(x)
        case .array(let items):
            var out: [UInt64?] = []
            for (i, e) in items.enumerated() {
                if e.isNull { out.append(nil); continue }
                guard let x = e.uint64 else { throw ScenarioError("\(field)[\(i)]", "expected a non-negative integer or null") }
                out.append(x)
            }
            self = .list(out)
        default: throw ScenarioError(field, "expected a boolean, a non-negative integer, null or a list")
        }
    }

    func u16(_ field: String) throws(ScenarioError) -> UInt16 { UInt16(try self.u64(field, max: 65535)) }

    func u64(_ field: String, max: UInt64 = .max) throws(ScenarioError) -> UInt64 {
        guard case .integer(let v) = self else { throw ScenarioError(field, "expected a non-negative integer") }
        guard v <= max else { throw ScenarioError(field, "\(v) exceeds \(max)") }
        return v
    }

    func bool(_ field: String) throws(ScenarioError) -> Bool {
        guard case .bool(let v) = self else { throw ScenarioError(field, "expected true or false") }
        return v
    }

    func optionalU64(_ field: String) throws(ScenarioError) -> UInt64? {
        if case .null = self { return nil }
        return try self.u64(field)
    }
}

/// Typed access to a JSON object's fields, with errors that name them.
struct FieldReader {
    let value: JSONValue
    let path: String

    init(_ value: JSONValue, _ path: String) {
        self.value = value
        self.path = path
    }

    func field(_ key: String) -> String { "\(self.path).\(key)" }

    func present(_ key: String) -> JSONValue? {
        guard let v = self.value[key], !v.isNull else { return nil }
        return v
    }

    func string(_ key: String) throws(ScenarioError) -> String {
        guard let s = self.value[key]?.string else { throw ScenarioError(self.field(key), "missing or not a string") }
        return s
    }

    func optionalString(_ key: String) throws(ScenarioError) -> String? {
        guard let v = self.present(key) else { return nil }
        guard let s = v.string else { throw ScenarioError(self.field(key), "expected a string") }
        return s
    }

    func u64(_ key: String) throws(ScenarioError) -> UInt64 {
        guard let v = self.present(key) else { throw ScenarioError(self.field(key), "missing") }
        guard let x = v.uint64 else { throw ScenarioError(self.field(key), "expected a non-negative integer") }
        return x
    }

    func optionalU64(_ key: String) throws(ScenarioError) -> UInt64? {
        guard let v = self.present(key) else { return nil }
        guard let x = v.uint64 else { throw ScenarioError(self.field(key), "expected a non-negative integer") }
        return x
    }

    func int(_ key: String, max: Int) throws(ScenarioError) -> Int {
        let v = try self.u64(key)
        guard v <= UInt64(max) else { throw ScenarioError(self.field(key), "\(v) is larger than \(max)") }
        return Int(v)
    }

    func optionalBool(_ key: String) throws(ScenarioError) -> Bool? {
        guard let v = self.present(key) else { return nil }
        guard let b = v.bool else { throw ScenarioError(self.field(key), "expected true or false") }
        return b
    }

    func list(_ key: String, count: Int?) throws(ScenarioError) -> [JSONValue]? {
        guard let v = self.present(key) else { return nil }
        guard let arr = v.array else { throw ScenarioError(self.field(key), "expected a list") }
        if let count, arr.count != count { throw ScenarioError(self.field(key), "expected \(count) entries (n), got \(arr.count)") }
        return arr
    }

    func u64List(_ key: String, count: Int?) throws(ScenarioError) -> [UInt64]? {
        guard let arr = try self.list(key, count: count) else { return nil }
        var out: [UInt64] = []
        out.reserveCapacity(arr.count)
        for (i, e) in arr.enumerated() {
            guard let x = e.uint64 else { throw ScenarioError("\(self.field(key))[\(i)]", "expected a non-negative integer") }
            out.append(x)
        }
        return out
    }

    func nullableU64List(_ key: String, count: Int) throws(ScenarioError) -> [UInt64?] {
        guard let arr = try self.list(key, count: count) else { return [UInt64?](repeating: nil, count: count) }
        var out: [UInt64?] = []
        for (i, e) in arr.enumerated() {
            if e.isNull { out.append(nil); continue }
            guard let x = e.uint64 else { throw ScenarioError("\(self.field(key))[\(i)]", "expected a non-negative integer or null") }
            out.append(x)
        }
        return out
    }

    func uidList(_ key: String) throws(ScenarioError) -> [Int] {
        guard let l = try self.u64List(key, count: nil) else { throw ScenarioError(self.field(key), "missing") }
        var out: [Int] = []
        for (i, v) in l.enumerated() {
            guard v <= 65535 else { throw ScenarioError("\(self.field(key))[\(i)]", "uid \(v) out of range") }
            out.append(Int(v))
        }
        return out
    }

    func u16List(_ key: String) throws(ScenarioError) -> [UInt16] {
        guard let l = try self.u64List(key, count: nil) else { throw ScenarioError(self.field(key), "missing") }
        var out: [UInt16] = []
        for (i, v) in l.enumerated() {
            guard v <= 65535 else { throw ScenarioError("\(self.field(key))[\(i)]", "\(v) exceeds 65535") }
            out.append(UInt16(v))
        }
        return out
    }

    func boolList(_ key: String, count: Int) throws(ScenarioError) -> [Bool]? {
        guard let arr = try self.list(key, count: count) else { return nil }
        var out: [Bool] = []
        for (i, e) in arr.enumerated() {
            guard let b = e.bool else { throw ScenarioError("\(self.field(key))[\(i)]", "expected true or false") }
            out.append(b)
        }
        return out
    }

    /// Sparse rows `[[dest, u16], ...]` per uid, or a dense n x n matrix of u16 integers or of
    /// floats in [0, 1] (max-upscaled like `set_weights` when `upscaleFloats`).
    func matrix(_ key: String, n: Int, upscaleFloats: Bool) throws(ScenarioError) -> SparseMatrix<UInt16> {
        guard let rows = try self.list(key, count: n) else { return SparseMatrix(n: n) }
        var parsed: [[(Int, UInt16)]] = []
        parsed.reserveCapacity(n)
        for (i, rowValue) in rows.enumerated() {
            let field = "\(self.field(key))[\(i)]"
            if rowValue.uint64 == 0 {
                parsed.append([])
                continue
            }
            guard let row = rowValue.array else { throw ScenarioError(field, "expected a row (list)") }
            if row.isEmpty {
                parsed.append([])
                continue
            }
            if row[0].array != nil {
                var out: [(Int, UInt16)] = []
                for (k, e) in row.enumerated() {
                    guard let pair = e.array, pair.count == 2, let d = pair[0].uint64, let v = pair[1].uint64 else {
                        throw ScenarioError("\(field)[\(k)]", "expected [dest, u16]")
                    }
                    guard d < UInt64(n) else { throw ScenarioError("\(field)[\(k)]", "dest \(d) is not a uid below n = \(n)") }
                    guard v <= 65535 else { throw ScenarioError("\(field)[\(k)]", "value \(v) exceeds 65535") }
                    out.append((Int(d), UInt16(v)))
                }
                parsed.append(out)
                continue
            }
            guard row.count == n else { throw ScenarioError(field, "a dense row needs \(n) entries, got \(row.count)") }
            if row.contains(where: { $0.isFloatLiteral }) {
                var xs: [Double] = []
                for (k, v) in row.enumerated() {
                    guard let d = v.double, d >= 0, d <= 1 else { throw ScenarioError("\(field)[\(k)]", "expected a float in [0, 1]") }
                    xs.append(d)
                }
                var u16 = WeightsUpscale.fromFloats(xs)
                if upscaleFloats { u16 = WeightsUpscale.maxUpscale(u16) }
                parsed.append(u16.enumerated().filter { $0.element > 0 }.map { ($0.offset, $0.element) })
            } else {
                var out: [(Int, UInt16)] = []
                for (k, v) in row.enumerated() {
                    guard let x = v.uint64, x <= 65535 else { throw ScenarioError("\(field)[\(k)]", "expected an integer 0...65535") }
                    if x > 0 { out.append((k, UInt16(x))) }
                }
                parsed.append(out)
            }
        }
        return SparseMatrix(rows: parsed, n: n)
    }
}
