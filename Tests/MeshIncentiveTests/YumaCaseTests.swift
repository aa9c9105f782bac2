import Foundation
import MeshCodec
import MeshIncentive
import MeshTestSupport
import Testing

/// Replays specs/yuma-cases.json (copied to Tests/Vectors) through the same code path
/// `tensormesh epoch --scenario` uses, and checks every asserted expectation.
@Suite("Yuma cases")
struct YumaCaseTests {
    static let file: JSONValue = {
        let bytes = try! ProcessRunnerFiles.read(TestPaths.vector("yuma-cases.json"))
        return try! JSONValue.parse(bytes)
    }()

    static var epochCaseIDs: [String] {
        file["cases"]!.array!.filter { $0["kind"]?.string == "epoch" }.map { $0["id"]!.string! }
    }

    static var unitCaseIDs: [String] {
        file["cases"]!.array!.filter { $0["kind"]?.string == "unit" }.map { $0["id"]!.string! }
    }

    static func caseNamed(_ id: String) -> JSONValue {
        file["cases"]!.array!.first { $0["id"]?.string == id }!
    }

    @Test("epoch case", arguments: epochCaseIDs)
    func epochCase(_ id: String) throws {
        let c = Self.caseNamed(id)
        let scenario = try EpochScenario.parse(value: c["scenario"]!)
        let results = try scenario.run(as: I32F32.self)
        let steps = c["scenario"]!["steps"]!.array!
        var checked = 0
        for (si, step) in steps.enumerated() {
            for e in step["expect"]?.array ?? [] {
                if e["asserted"]?.bool == false { continue }
                let failures = ExpectationChecker.check(e, step: si, results: results)
                for f in failures { Issue.record("\(id) step \(si): \(f)") }
                checked += 1
            }
        }
        #expect(checked > 0 || steps.allSatisfy { ($0["expect"]?.array ?? []).allSatisfy { $0["asserted"]?.bool == false } })
    }

    @Test("the checker fails on a wrong number")
    func checkerCanFail() throws {
        let c = Self.caseNamed("epoch.rs::test_bonds")
        let scenario = try EpochScenario.parse(value: c["scenario"]!)
        let results = try scenario.run(as: I32F32.self)
        let right: JSONValue = ["out": "bonds", "row": 0, "col": 4, "eq": 16383]
        let wrong: JSONValue = ["out": "bonds", "row": 0, "col": 4, "eq": 16384]
        #expect(ExpectationChecker.check(right, step: 1, results: results).isEmpty)
        #expect(!ExpectationChecker.check(wrong, step: 1, results: results).isEmpty)
        // Float64 mode is within a unit of the chain but not bit-exact everywhere.
        let floats = try scenario.run(as: Double.self)
        let b = floats[3].storedBonds.value(row: 0, column: 4)!
        #expect(abs(Int(b) - 12603) <= 1)
    }

    @Test("unit case", arguments: unitCaseIDs)
    func unitCase(_ id: String) throws {
        let c = Self.caseNamed(id)
        let function = c["function"]!.string!
        let f32 = c["f32_inputs"]?.bool ?? false
        func fx(_ v: JSONValue) -> I32F32 {
            let d = v.double!
            return I32F32(approximating: f32 ? Double(Float(d)) : d)
        }
        func vec(_ v: JSONValue) -> [I32F32] { v.array!.map(fx) }
        func mat(_ v: JSONValue) -> [[I32F32]] { v.array!.map(vec) }
        for (ti, t) in c["tests"]!.array!.enumerated() {
            switch function {
            case "weighted_median":
                var stake = vec(t["stake"]!)
                let score = vec(t["score"]!)
                if t["normalize_stake"]?.bool == true {
                    var sum = I32F32.zero
                    for s in stake { sum = sum + s }
                    stake = stake.map { $0.safeDiv(sum) }
                }
                var sum = I32F32.zero
                for s in stake { sum = sum + s }
                let majority = fx(t["majority"]!)
                let got = YumaEpoch.weightedMedian(stake: stake, score: score, partition: Array(stake.indices),
                                                   minority: sum - majority, low: .zero, high: sum)
                #expect(got == fx(t["expected"]!), "\(id) test \(ti)")
            case "weighted_median_col":
                let got = YumaEpoch.weightedMedianColumnsDense(stake: vec(t["stake"]!), score: mat(t["weights"]!), majority: fx(t["majority"]!))
                #expect(got == vec(t["expected"]!), "\(id) test \(ti)")
            case "mat_ema_alpha":
                let got = YumaMath.denseEMA(new: mat(t["new"]!), old: mat(t["old"]!), alpha: mat(t["alpha"]!))
                let expected = mat(t["expected"]!)
                let tol = t["tol"]?.double ?? 0
                for (r, row) in got.enumerated() {
                    for (k, v) in row.enumerated() {
                        #expect(abs(v.doubleValue - expected[r][k].doubleValue) <= tol + 1e-9, "\(id) test \(ti) [\(r)][\(k)]")
                    }
                }
            case "u16_max_upscale":
                let input = t["input"]!.array!.map { UInt16($0.uint64!) }
                let expected = t["expected"]!.array!.map { UInt16($0.uint64!) }
                #expect(WeightsUpscale.maxUpscale(input) == expected, "\(id) test \(ti)")
            case "liquid_alpha_equal_bounds":
                let weights = mat(t["weights"]!)
                let bonds = mat(t["bonds"]!)
                let consensus = vec(t["consensus"]!)
                var params = YumaParameters()
                params.alphaLow = UInt16(t["alpha_low"]!.uint64!)
                params.alphaHigh = UInt16(t["alpha_high"]!.uint64!)
                params.alphaSigmoidSteepness = Int64(t["steepness"]!.uint64!)
                let liquid = YumaMath.denseLiquidEMA(new: weights, old: bonds, consensus: consensus, params: params)
                let plain = YumaMath.denseEMA(new: weights, old: bonds, alpha: I32F32.emaAlpha(bondsMovingAverage: t["bonds_moving_average"]!.uint64!))
                let tol = t["tol"]!.double!
                for r in liquid.indices {
                    for k in liquid[r].indices {
                        #expect(abs(liquid[r][k].doubleValue - plain[r][k].doubleValue) <= tol, "\(id) [\(r)][\(k)]")
                    }
                }
            default:
                Issue.record("unknown unit function \(function)")
            }
        }
    }
}

/// Evaluates one `expect` entry against the step results (yuma.md section 11).
enum ExpectationChecker {
    static func check(_ e: JSONValue, step: Int, results: [EpochScenario.StepResult<I32F32>]) -> [String] {
        guard let output = results[step].output else { return ["step ran no epoch"] }
        let names: [String] = e["out"]!.array?.map { $0.string! } ?? [e["out"]!.string!]
        let n = output.stakeNorm.count

        func vector(_ name: String, _ r: EpochScenario.StepResult<I32F32>) -> [Double]? {
            guard let o = r.output else { return nil }
            switch name {
            case "u16.consensus": return o.u16Consensus.map { Double($0) }
            case "u16.incentive": return o.u16Incentive.map { Double($0) }
            case "u16.dividends": return o.u16Dividends.map { Double($0) }
            case "u16.validator_trust": return o.u16ValidatorTrust.map { Double($0) }
            case "u16.stake_weight": return o.u16StakeWeight.map { Double($0) }
            case "u16prop.consensus": return o.u16Consensus.map { Double($0) / 65535 }
            case "u16prop.incentive": return o.u16Incentive.map { Double($0) / 65535 }
            case "u16prop.dividends": return o.u16Dividends.map { Double($0) / 65535 }
            case "u16prop.validator_trust": return o.u16ValidatorTrust.map { Double($0) / 65535 }
            case "combined_emission": return o.combinedEmission.map { Double($0) }
            case "server_emission": return o.serverEmission.map { Double($0) }
            case "validator_emission": return o.validatorEmission.map { Double($0) }
            case "consensus": return o.consensus.map(\.doubleValue)
            case "dividends": return o.dividends.map(\.doubleValue)
            case "incentive": return o.incentive.map(\.doubleValue)
            case "validator_trust": return o.validatorTrust.map(\.doubleValue)
            case "active_stake": return o.activeStake.map(\.doubleValue)
            case "stake_norm": return o.stakeNorm.map(\.doubleValue)
            case "norm_server_emission": return o.normServerEmission.map(\.doubleValue)
            case "norm_validator_emission": return o.normValidatorEmission.map(\.doubleValue)
            case "norm_combined_emission": return o.normCombinedEmission.map(\.doubleValue)
            case "new_validator_permit": return o.newValidatorPermit.map { $0 ? 1 : 0 }
            case "active": return o.active.map { $0 ? 1 : 0 }
            default: return nil
            }
        }
        func matrix(_ name: String, _ r: EpochScenario.StepResult<I32F32>) -> [[Double]]? {
            switch name {
            case "bonds", "bonds_prop":
                let scale = name == "bonds" ? 1.0 : 65535.0
                return (0..<n).map { i in
                    var row = [Double](repeating: 0, count: n)
                    for (j, v) in r.storedBonds.row(i) where j < n { row[j] = Double(v) / scale }
                    return row
                }
            case "weights_norm":
                guard let o = r.output else { return nil }
                return (0..<n).map { i in
                    var row = [Double](repeating: 0, count: n)
                    for (j, v) in o.weightsNorm.row(i) { row[j] = v.doubleValue }
                    return row
                }
            default: return nil
            }
        }

        // Select the values named by the entry, summing a list of names.
        func select(_ r: EpochScenario.StepResult<I32F32>) -> (values: [Double], shape: [Int])? {
            var total: [Double]?
            var shape: [Int] = []
            for name in names {
                var sel: [Double]
                if let m = matrix(name, r) {
                    let rows = e["row"].map { [Int($0.uint64!)] } ?? e["rows"]?.array?.map { Int($0.uint64!) } ?? Array(0..<n)
                    let cols = e["col"].map { [Int($0.uint64!)] } ?? e["cols"]?.array?.map { Int($0.uint64!) } ?? Array(0..<n)
                    sel = rows.flatMap { i in cols.map { j in m[i][j] } }
                    shape = [e["row"] == nil ? rows.count : 0, e["col"] == nil ? cols.count : 0]
                } else if let v = vector(name, r) {
                    if let u = e["uid"]?.uint64 { sel = [v[Int(u)]]; shape = [] }
                    else if let us = e["uids"]?.array { sel = us.map { v[Int($0.uint64!)] }; shape = [us.count] }
                    else { sel = v; shape = [v.count] }
                } else {
                    return nil
                }
                if let t = total { total = zip(t, sel).map { $0 + $1 } } else { total = sel }
            }
            return total.map { ($0, shape) }
        }

        guard let (got, _) = select(results[step]) else { return ["unknown output \(names)"] }
        var failures: [String] = []
        let tol = e["tol"]?.double ?? 0
        func flat(_ v: JSONValue) -> [Double] {
            if let a = v.array { return a.flatMap(flat) }
            return [v.double ?? (v.bool == true ? 1 : 0)]
        }
        if let eq = e["eq"] {
            var want = flat(eq)
            if want.count == 1 && got.count > 1 { want = [Double](repeating: want[0], count: got.count) }
            if want.count != got.count {
                failures.append("\(names): expected \(want.count) values, got \(got.count)")
            } else {
                for (k, (g, w)) in zip(got, want).enumerated() where abs(g - w) > tol {
                    failures.append("\(names)[\(k)]: got \(g), expected \(w) (tol \(tol))")
                }
            }
        }
        for (key, op) in [("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")] {
            guard let bound = e[key]?.double else { continue }
            for (k, g) in got.enumerated() where !compare(g, op, bound) {
                failures.append("\(names)[\(k)]: \(g) not \(op) \(bound)")
            }
        }
        if e["all_equal"]?.bool == true, let first = got.first, got.contains(where: { abs($0 - first) > tol }) {
            failures.append("\(names): not all equal: \(got)")
        }
        if let other = e["cmp_step"]?.uint64, let rel = e["rel"]?.string {
            guard let (prev, _) = select(results[Int(other)]) else { return failures + ["cmp_step \(other) has no output"] }
            let op = ["gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=="][rel] ?? rel
            for (k, (g, p)) in zip(got, prev).enumerated() where !compare(g, op, p) {
                failures.append("\(names)[\(k)]: \(g) not \(op) step \(other)'s \(p)")
            }
        }
        return failures
    }

    static func compare(_ a: Double, _ op: String, _ b: Double) -> Bool {
        switch op {
        case ">": return a > b
        case ">=": return a >= b
        case "<": return a < b
        case "<=": return a <= b
        case "==": return a == b
        default: return false
        }
    }
}

enum ProcessRunnerFiles {
    static func read(_ path: String) throws -> [UInt8] {
        Array(try String(contentsOfFile: path, encoding: .utf8).utf8)
    }
}
