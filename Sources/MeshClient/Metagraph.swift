import MeshChain
import MeshCodec
import MeshCrypto

/// A subnet's metagraph as the node's `subnet_getMetagraph` reports it (Bittensor's short
/// names: S stake weight, AS alpha stake, TS root TAO stake, C consensus, I incentive,
/// D dividends, E emission, Tv validator trust).
public struct Metagraph: Sendable {
    public struct Axon: Sendable, Equatable {
        public var host: String
        public var port: UInt16
        public var nodeId: AccountID?
    }

    public struct Neuron: Sendable {
        public var uid: UInt16
        public var hotkey: AccountID
        public var coldkey: AccountID
        /// Stake weight on the subnet: alpha stake + tao_weight × root TAO stake (children included).
        public var stake: Rao
        /// The hotkey's inherited alpha stake on the subnet (`AS`; the stake weight when the node does not say).
        public var alphaStake: UInt64
        /// The hotkey's inherited TAO stake on the root subnet (`TS`; 0 when the node does not say).
        public var rootStake: Rao
        public var consensus: Double
        public var incentive: Double
        public var dividends: Double
        public var emission: Rao
        public var validatorTrust: Double
        public var lastUpdate: UInt64
        public var validatorPermit: Bool
        public var axon: Axon?
    }

    public var netuid: UInt16
    public var block: UInt64
    public var neurons: [Neuron]

    public func uid(of hotkey: AccountID) -> UInt16? { self.neurons.first { $0.hotkey == hotkey }?.uid }

    /// Most neurons a subnet can hold: uids are u16.
    public static let maxNeurons = 65_536

    /// Parses the RPC answer; a missing, mistyped or out-of-range field is an error naming it.
    /// The answer comes from a server that may be hostile (or a plain-HTTP link that may be
    /// tampered with), so every number is converted exactly, never by a trapping cast.
    public static func parse(_ v: JSONValue) throws -> Metagraph {
        func arr(_ f: String) throws -> [JSONValue] {
            guard let a = v[f]?.array else { throw RPCClient.Failure.http("metagraph field \(f) missing") }
            return a
        }
        guard let nField = v["n"]?.uint64 else { throw RPCClient.Failure.http("metagraph field n missing or not a count") }
        guard let n = Int(exactly: nField), n <= Self.maxNeurons else {
            throw RPCClient.Failure.http("metagraph n = \(nField) is out of range (at most \(Self.maxNeurons))")
        }
        guard let netuidField = v["netuid"]?.uint64 else { throw RPCClient.Failure.http("metagraph field netuid missing or not a number") }
        guard let netuid = UInt16(exactly: netuidField) else { throw RPCClient.Failure.http("metagraph netuid \(netuidField) is out of range") }
        let hotkeys = try arr("hotkeys"), coldkeys = try arr("coldkeys"), s = try arr("S"), c = try arr("C"), i = try arr("I")
        let d = try arr("D"), e = try arr("E"), tv = try arr("Tv"), lu = try arr("last_update"), vp = try arr("validator_permit")
        let axons = try arr("axons")
        guard [hotkeys, coldkeys, s, c, i, d, e, tv, lu, vp, axons].allSatisfy({ $0.count == n }) else {
            throw RPCClient.Failure.http("metagraph vectors do not all have n = \(n) entries")
        }
        // Alpha and root stake columns: optional (nodes before dynamic TAO), n entries when present.
        let alphaStakes = v["AS"]?.array, rootStakes = v["TS"]?.array
        for (name, column) in [("AS", alphaStakes), ("TS", rootStakes)] where column != nil && column!.count != n {
            throw RPCClient.Failure.http("metagraph \(name) does not have n = \(n) entries")
        }
        var neurons: [Neuron] = []
        for u in 0..<n {
            guard let hk = hotkeys[u].string.flatMap({ AccountID(hex: $0) }), let ck = coldkeys[u].string.flatMap({ AccountID(hex: $0) }) else {
                throw RPCClient.Failure.http("metagraph hotkeys[\(u)] or coldkeys[\(u)] is not a key")
            }
            var axon: Axon?
            if let a = axons[u].object, !a.isEmpty {
                let ax = axons[u]
                let portField = ax["port"]?.uint64 ?? 0
                guard let port = UInt16(exactly: portField) else { throw RPCClient.Failure.http("metagraph axons[\(u)].port \(portField) is out of range") }
                axon = Axon(host: ax["ip"]?.string ?? "", port: port, nodeId: ax["nodeId"]?.string.flatMap { AccountID(hex: $0) })
            }
            guard let uid = UInt16(exactly: u) else { throw RPCClient.Failure.http("metagraph uid \(u) is out of range") }
            let stake = s[u].uint64 ?? 0
            neurons.append(Neuron(uid: uid, hotkey: hk, coldkey: ck, stake: stake, alphaStake: alphaStakes?[u].uint64 ?? stake,
                                  rootStake: rootStakes?[u].uint64 ?? 0, consensus: c[u].double ?? 0,
                                  incentive: i[u].double ?? 0, dividends: d[u].double ?? 0, emission: e[u].uint64 ?? 0,
                                  validatorTrust: tv[u].double ?? 0, lastUpdate: lu[u].uint64 ?? 0, validatorPermit: vp[u].bool ?? false,
                                  axon: axon))
        }
        return Metagraph(netuid: netuid, block: v["block"]?.uint64 ?? 0, neurons: neurons)
    }
}

extension ChainClient {
    /// The parsed metagraph of `netuid`.
    public func metagraphInfo(netuid: UInt16) throws -> Metagraph { try Metagraph.parse(try self.metagraph(netuid: netuid)) }

    /// A subnet's hyperparameters by name, and its epoch count.
    public func subnet(netuid: UInt16) throws -> (hyperparameters: [String: UInt64], epochs: UInt64, burn: Rao)? {
        let list = try self.rpc.call("subnet_list")
        guard let s = list.array?.first(where: { $0["netuid"]?.uint64 == UInt64(netuid) }) else { return nil }
        var h: [String: UInt64] = [:]
        for (k, v) in s["hyperparameters"]?.object ?? [] { h[k] = v.uint64 ?? 0 }
        return (h, s["epochs"]?.uint64 ?? 0, s["burn"]?.uint64 ?? 0)
    }

    /// The first block at which `hotkey` may set weights on `netuid` (nil: not registered).
    public func nextWeightsBlock(netuid: UInt16, hotkey: AccountID) throws -> UInt64? {
        try self.rpc.call("weights_nextAllowedBlock", .array([.int(netuid), .string(hotkey.hex)])).uint64
    }
}
