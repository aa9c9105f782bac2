import MeshCodec
import MeshCrypto
import MeshIncentive

/// An offline run of the token economics (`tensormesh coinbase --scenario FILE`): a chain
/// with a root stake and several subnets — pools, neurons, stakes, nominators, flows of stake
/// in and out — run for a number of blocks through the real state machine (the same calls,
/// coinbase and epochs a node executes), reporting every block's emission per subnet, every
/// epoch, and the final pools and stakes.
///
/// The scenario (JSON):
///
///     {"blocks": 200, "report": "epochs" | "blocks",
///      "params": {"initialBlockEmission": 1000000000, "taoWeight": …, "subnetOwnerCut": 11796,
///                 "netFlowEnabled": true, "flowEmaSmoothing": …, "flowNormExponent": 1, "flowCutoff": 0},
///      "root": {"stake": RAO},
///      "subnets": [{"netuid": 1, "poolTao": RAO, "tempo": 20, "started": true,
///                   "neurons": [{"name": "v", "stake": RAO, "take": U16, "weights": {"m": 1}}, {"name": "m"}],
///                   "nominators": [{"name": "n", "on": "v", "stake": RAO}]}],
///      "flows": [{"block": 10, "netuid": 1, "by": "whale", "stake": RAO}, {"block": 40, "netuid": 1, "by": "whale", "unstake": ALPHA}]}
///
/// Names stand for keys derived from them. Amounts are integers (rao, or alpha in 10^-9).
public struct CoinbaseScenario: Sendable {
    public struct Neuron: Sendable {
        public var name: String
        public var stake: UInt64
        public var take: UInt16?
        public var weights: [(String, UInt16)]
    }

    public struct Nominator: Sendable {
        public var name: String
        public var on: String
        public var stake: UInt64
    }

    public struct SubnetSetup: Sendable {
        public var netuid: UInt16
        public var poolTao: UInt64
        public var tempo: UInt64
        public var started: Bool
        public var neurons: [Neuron]
        public var nominators: [Nominator]
    }

    public struct Flow: Sendable {
        public var block: UInt64
        public var netuid: UInt16
        public var by: String
        public var stake: UInt64?
        public var unstake: UInt64?
    }

    public var blocks: UInt64
    public var perBlock: Bool
    public var params: ChainParams
    public var rootStake: UInt64
    public var subnets: [SubnetSetup]
    public var flows: [Flow]

    /// Why a scenario is malformed (the field is named).
    public struct ScenarioError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { self.description = d }
    }

    /// Bounds that keep an offline run short and its numbers in range.
    public static let maxBlocks: UInt64 = 100_000
    public static let maxSubnets = 64
    public static let maxNeurons = 256

    public static func parse(_ bytes: [UInt8]) throws(ScenarioError) -> CoinbaseScenario {
        let v: JSONValue
        do { v = try JSONValue.parse(bytes) } catch { throw ScenarioError("not JSON: \(error)") }
        func u64(_ x: JSONValue?, _ f: String, default d: UInt64? = nil) throws(ScenarioError) -> UInt64 {
            guard let x, !x.isNull else {
                if let d { return d }
                throw ScenarioError("\(f) is missing")
            }
            guard let n = x.uint64 else { throw ScenarioError("\(f) must be a non-negative integer") }
            return n
        }
        func name(_ x: JSONValue?, _ f: String) throws(ScenarioError) -> String {
            guard let s = x?.string, !s.isEmpty, s.utf8.count <= 64 else { throw ScenarioError("\(f) must be a name of 1 to 64 bytes") }
            return s
        }
        var p = ChainParams()
        p.maxRegistrationsPerBlock = 4096
        p.baseFee = 0
        if let params = v["params"] {
            if let x = params["initialBlockEmission"] { p.emission.initialBlockEmission = try u64(x, "params.initialBlockEmission") }
            if let x = params["supplyCap"] { p.emission.supplyCap = try u64(x, "params.supplyCap") }
            for (n, path) in ChainSpec.economicsParams { if let x = params[n] { p[keyPath: path] = try u64(x, "params.\(n)") } }
            for (n, path) in ChainSpec.economicsTakes {
                if let x = params[n] {
                    guard let t = UInt16(exactly: try u64(x, "params.\(n)")) else { throw ScenarioError("params.\(n) must be 0...65535") }
                    p[keyPath: path] = t
                }
            }
            if let x = params["netFlowEnabled"] {
                guard let b = x.bool else { throw ScenarioError("params.netFlowEnabled must be a boolean") }
                p.netFlowEnabled = b
            }
            if let x = params["flowCutoff"] {
                guard let i = x.int64 else { throw ScenarioError("params.flowCutoff must be an integer") }
                p.flowCutoff = i
            }
            if let x = params["minStake"] { p.minStake = try u64(x, "params.minStake") }
        }
        if let (f, reason) = p.invalidField() { throw ScenarioError("params.\(f): \(reason)") }
        let blocks = try u64(v["blocks"], "blocks")
        guard blocks >= 1 && blocks <= Self.maxBlocks else { throw ScenarioError("blocks must be 1...\(Self.maxBlocks)") }
        var subnets: [SubnetSetup] = []
        for (i, s) in (v["subnets"]?.array ?? []).enumerated() {
            let f = "subnets[\(i)]"
            guard let netuid = UInt16(exactly: try u64(s["netuid"], "\(f).netuid")), netuid >= 1 else { throw ScenarioError("\(f).netuid must be 1...65535") }
            guard !subnets.contains(where: { $0.netuid == netuid }) else { throw ScenarioError("\(f).netuid is used twice") }
            let tempo = try u64(s["tempo"], "\(f).tempo", default: 20)
            guard (1...50_400).contains(tempo) else { throw ScenarioError("\(f).tempo must be 1...50400") }
            var neurons: [Neuron] = []
            for (j, n) in (s["neurons"]?.array ?? []).enumerated() {
                let g = "\(f).neurons[\(j)]"
                var weights: [(String, UInt16)] = []
                for (target, w) in n["weights"]?.object ?? [] {
                    guard let x = w.uint64, let u = UInt16(exactly: x) else { throw ScenarioError("\(g).weights.\(target) must be 0...65535") }
                    weights.append((target, u))
                }
                var take: UInt16?
                if let t = n["take"], !t.isNull {
                    guard let x = t.uint64, let u = UInt16(exactly: x) else { throw ScenarioError("\(g).take must be 0...65535") }
                    take = u
                }
                neurons.append(Neuron(name: try name(n["name"], "\(g).name"), stake: try u64(n["stake"], "\(g).stake", default: 0), take: take, weights: weights))
            }
            guard neurons.count <= Self.maxNeurons else { throw ScenarioError("\(f).neurons: at most \(Self.maxNeurons)") }
            var nominators: [Nominator] = []
            for (j, n) in (s["nominators"]?.array ?? []).enumerated() {
                let g = "\(f).nominators[\(j)]"
                let on = try name(n["on"], "\(g).on")
                guard neurons.contains(where: { $0.name == on }) else { throw ScenarioError("\(g).on names no neuron of the subnet") }
                nominators.append(Nominator(name: try name(n["name"], "\(g).name"), on: on, stake: try u64(n["stake"], "\(g).stake")))
            }
            subnets.append(SubnetSetup(netuid: netuid, poolTao: try u64(s["poolTao"], "\(f).poolTao", default: 1000 * Token.tao), tempo: tempo,
                                       started: s["started"]?.bool ?? true, neurons: neurons, nominators: nominators))
        }
        guard !subnets.isEmpty, subnets.count <= Self.maxSubnets else { throw ScenarioError("subnets: 1...\(Self.maxSubnets) needed") }
        var flows: [Flow] = []
        for (i, x) in (v["flows"]?.array ?? []).enumerated() {
            let f = "flows[\(i)]"
            guard let netuid = UInt16(exactly: try u64(x["netuid"], "\(f).netuid")) else { throw ScenarioError("\(f).netuid out of range") }
            let stake = x["stake"].flatMap { $0.isNull ? nil : $0.uint64 }, unstake = x["unstake"].flatMap { $0.isNull ? nil : $0.uint64 }
            guard (stake == nil) != (unstake == nil) else { throw ScenarioError("\(f) needs exactly one of stake and unstake") }
            flows.append(Flow(block: try u64(x["block"], "\(f).block"), netuid: netuid, by: try name(x["by"], "\(f).by"), stake: stake, unstake: unstake))
        }
        return CoinbaseScenario(blocks: blocks, perBlock: v["report"]?.string == "blocks", params: p,
                                rootStake: try u64(v["root"]?["stake"], "root.stake", default: 1000 * Token.tao), subnets: subnets, flows: flows)
    }

    static func key(_ name: String) -> Ed25519.PrivateKey {
        // A fixed key per name (an offline simulation: nothing here is secret).
        let seed = SHA256.hash(Array("tensormesh-coinbase-scenario:\(name)".utf8))
        return try! Ed25519.PrivateKey(seedBytes: seed)
    }

    /// Runs the scenario and returns the report.
    public func run() throws(ScenarioError) -> JSONValue {
        var names = Set<String>()
        for s in self.subnets {
            for n in s.neurons { names.insert(n.name) }
            for n in s.nominators { names.insert(n.name) }
        }
        for f in self.flows { names.insert(f.by) }
        let keys = Dictionary(uniqueKeysWithValues: names.sorted().map { ($0, Self.key($0)) })
        let owner = Self.key("subnet owner"), validator = Self.key("root validator")
        var spec = ChainSpec(name: "coinbase scenario", id: "coinbase", params: self.params)
        spec.sudo = owner.publicKey
        let fund = self.params.emission.supplyCap / 4 / UInt64(max(1, names.count + 2))
        spec.balances = keys.values.map { ($0.publicKey, fund) } + [(owner.publicKey, fund)]
        spec.validators = [ChainSpec.Validator(hotkey: validator.publicKey, coldkey: validator.publicKey, stake: self.rootStake)]
        for s in self.subnets {
            var sp = SubnetParams()
            _ = sp.set(.tempo, s.tempo)
            _ = sp.set(.weightsRateLimit, 0)
            _ = sp.set(.minBurn, 0)
            _ = sp.set(.maxAllowedUids, UInt64(max(2, s.neurons.count + 1)))
            spec.subnets.append(ChainSpec.SubnetSpec(netuid: s.netuid, name: "subnet \(s.netuid)", owner: owner.publicKey, ownerHotkey: owner.publicKey,
                                                     params: sp, poolTao: s.poolTao, started: s.started))
        }
        var state = spec.genesisState()
        let context = ExecutionContext(genesis: .zero, checkSignatures: false)
        var failures: [JSONValue] = []
        func submit(_ signer: Ed25519.PrivateKey, _ call: Call, _ what: String) {
            let tx = Transaction(signer: signer, nonce: state.nonce(signer.publicKey), validUntil: .max, fee: 0, call: call, genesis: .zero)
            do {
                let r = try state.apply(tx, at: state.number, producer: validator.publicKey, context: context)
                if let e = r.error { failures.append(.object([("block", .int(state.number)), ("what", .string(what)), ("error", .string(e.description))])) }
            } catch {
                failures.append(.object([("block", .int(state.number)), ("what", .string(what)), ("error", .string(error.description))]))
            }
        }
        var perBlock: [JSONValue] = []
        var epochs: [JSONValue] = []
        let issuedAtGenesis = state.totalIssuance
        for b in 1...self.blocks {
            state.beginBlock(number: b, timestamp: b * self.params.slotDurationMs)
            if b == 1 {
                for s in self.subnets {
                    for n in s.neurons { submit(keys[n.name]!, .register(netuid: s.netuid, hotkey: keys[n.name]!.publicKey, maxBurn: .max), "register \(n.name)") }
                }
            }
            if b == 2 {
                for s in self.subnets {
                    for n in s.neurons where n.stake > 0 {
                        submit(keys[n.name]!, .addStake(hotkey: keys[n.name]!.publicKey, netuid: s.netuid, amount: n.stake), "stake \(n.name)")
                    }
                    for n in s.neurons {
                        if let t = n.take, t < state.delegateTake(of: keys[n.name]!.publicKey) {
                            submit(keys[n.name]!, .decreaseTake(hotkey: keys[n.name]!.publicKey, take: t), "take \(n.name)")
                        }
                    }
                    for m in s.nominators {
                        submit(keys[m.name]!, .addStake(hotkey: keys[m.on]!.publicKey, netuid: s.netuid, amount: m.stake), "nominate \(m.name)")
                    }
                }
            }
            // Validators (re)set their weights every tempo once they hold a permit.
            for s in self.subnets where b > 2 && (b % s.tempo == 1 || s.tempo == 1) {
                guard let sub = state.subnets[s.netuid] else { continue }
                for n in s.neurons where !n.weights.isEmpty {
                    guard let uid = sub.uid(of: keys[n.name]!.publicKey), sub.neurons[uid].validatorPermit else { continue }
                    let targets = n.weights.compactMap { t, w in sub.uid(of: keys[t]?.publicKey ?? Ed25519.PublicKey.zero).map { (UInt16($0), w) } }
                    guard !targets.isEmpty else { continue }
                    submit(keys[n.name]!, .setWeights(netuid: s.netuid, uids: targets.map { $0.0 }, values: targets.map { $0.1 }, versionKey: 0), "weights \(n.name)")
                }
            }
            for f in self.flows where f.block == b {
                if let t = f.stake {
                    let target = self.subnets.first { $0.netuid == f.netuid }?.neurons.first.map { keys[$0.name]!.publicKey } ?? owner.publicKey
                    submit(keys[f.by]!, .addStake(hotkey: target, netuid: f.netuid, amount: t), "flow stake by \(f.by)")
                } else if let a = f.unstake {
                    let target = self.subnets.first { $0.netuid == f.netuid }?.neurons.first.map { keys[$0.name]!.publicKey } ?? owner.publicKey
                    let have = state.stake(coldkey: keys[f.by]!.publicKey, hotkey: target, netuid: f.netuid)
                    submit(keys[f.by]!, .removeStake(hotkey: target, netuid: f.netuid, amount: min(a, have)), "flow unstake by \(f.by)")
                }
            }
            let effects = state.endBlock()
            if self.perBlock {
                perBlock.append(.object([("block", .int(b)), ("issued", .int(effects.minted)),
                                         ("subnets", .array(effects.coinbase.map { Self.json($0, state: state) }))]))
            }
            for id in effects.epochsRun {
                guard let sub = state.subnets[id], let setup = self.subnets.first(where: { $0.netuid == id }) else { continue }
                epochs.append(.object([("block", .int(b)), ("netuid", .int(id)), ("neurons", .array(setup.neurons.compactMap { n in
                    guard let uid = sub.uid(of: keys[n.name]!.publicKey) else { return nil }
                    let x = sub.neurons[uid]
                    return .object([("name", .string(n.name)), ("uid", .int(uid)), ("emission", .int(x.emission)),
                                    ("incentive", .double(Double(x.incentive) / 65535)), ("dividends", .double(Double(x.dividends) / 65535)),
                                    ("validatorPermit", .bool(x.validatorPermit)), ("stake", .int(state.totalStake(hotkey: keys[n.name]!.publicKey, netuid: id)))])
                }))]))
            }
        }
        var out: [(String, JSONValue)] = [
            ("blocks", .int(self.blocks)), ("totalIssuance", .int(state.totalIssuance)), ("issued", .int(state.totalIssuance - issuedAtGenesis)),
            ("totalBurned", .int(state.totalBurned)),
            ("subnets", .array(self.subnets.map { s in
                let sub = state.subnets[s.netuid]!
                let p = sub.pool
                return .object([
                    ("netuid", .int(s.netuid)), ("symbol", .string(p.symbol)), ("price", .string(p.price.decimalString())), ("priceFloat", .double(p.price.doubleValue)),
                    ("taoIn", .int(p.taoIn)), ("alphaIn", .int(p.alphaIn)), ("alphaOut", .int(p.alphaOut)), ("taoFlowEma", .double(p.taoFlowEma.doubleValue)),
                    ("protocolFlowEma", .double(p.protocolFlowEma.doubleValue)), ("movingPrice", .string(p.movingPrice.decimalString())),
                    ("protocolAlpha", .int(p.protocolAlpha)), ("burnedAlpha", .int(p.burnedAlpha)), ("epochs", .int(sub.epochCount)),
                    ("stakes", .array((s.neurons.map { ($0.name, $0.name) } + s.nominators.map { ($0.name, $0.on) }).map { who, on in
                        let c = keys[who]!.publicKey, h = keys[on]!.publicKey
                        return .object([("name", .string(who)), ("hotkey", .string(on)), ("alpha", .int(state.stake(coldkey: c, hotkey: h, netuid: s.netuid))),
                                        ("earned", .int(state.stakeEarnings(coldkey: c, hotkey: h, netuid: s.netuid)))])
                    })),
                ])
            })),
            ("epochs", .array(epochs)),
        ]
        if self.perBlock { out.append(("perBlock", .array(perBlock))) }
        out.append(("refused", .array(failures)))
        return .object(out)
    }

    static func json(_ e: SubnetEmission, state: ChainState) -> JSONValue {
        .object([("netuid", .int(e.netuid)), ("share", .string(e.share.decimalString())), ("taoIn", .int(e.taoIn)), ("alphaIn", .int(e.alphaIn)),
                 ("excessTao", .int(e.excessTao)), ("alphaOut", .int(e.alphaOut)), ("ownerCut", .int(e.ownerCut)), ("server", .int(e.server)),
                 ("validator", .int(e.validator)), ("root", .int(e.root)), ("rootRecycled", .int(e.rootRecycled)),
                 ("price", .string(state.subnets[e.netuid]?.pool.price.decimalString() ?? "0"))])
    }
}
