import MeshChain
import MeshCodec
import MeshCrypto

/// A subnet's metagraph as the node's `subnet_getMetagraph` reports it (Bittensor's short
/// names: S stake, C consensus, I incentive, D dividends, E emission, Tv validator trust).
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
        public var stake: Rao
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

    /// Parses the RPC answer; a missing or mistyped field is an error naming it.
    public static func parse(_ v: JSONValue) throws -> Metagraph {
        func arr(_ f: String) throws -> [JSONValue] {
            guard let a = v[f]?.array else { throw RPCClient.Failure.http("metagraph field \(f) missing") }
            return a
        }
        let n = Int(v["n"]?.uint64 ?? 0)
        let hotkeys = try arr("hotkeys"), coldkeys = try arr("coldkeys"), s = try arr("S"), c = try arr("C"), i = try arr("I")
        let d = try arr("D"), e = try arr("E"), tv = try arr("Tv"), lu = try arr("last_update"), vp = try arr("validator_permit")
        let axons = try arr("axons")
        guard [hotkeys, coldkeys, s, c, i, d, e, tv, lu, vp, axons].allSatisfy({ $0.count == n }) else {
            throw RPCClient.Failure.http("metagraph vectors do not all have n = \(n) entries")
        }
        var neurons: [Neuron] = []
        for u in 0..<n {
            guard let hk = hotkeys[u].string.flatMap({ AccountID(hex: $0) }), let ck = coldkeys[u].string.flatMap({ AccountID(hex: $0) }) else {
                throw RPCClient.Failure.http("metagraph hotkeys[\(u)] or coldkeys[\(u)] is not a key")
            }
            var axon: Axon?
            if let a = axons[u].object, !a.isEmpty {
                let ax = axons[u]
                axon = Axon(host: ax["ip"]?.string ?? "", port: UInt16(clamping: ax["port"]?.uint64 ?? 0),
                            nodeId: ax["nodeId"]?.string.flatMap { AccountID(hex: $0) })
            }
            neurons.append(Neuron(uid: UInt16(u), hotkey: hk, coldkey: ck, stake: s[u].uint64 ?? 0, consensus: c[u].double ?? 0,
                                  incentive: i[u].double ?? 0, dividends: d[u].double ?? 0, emission: e[u].uint64 ?? 0,
                                  validatorTrust: tv[u].double ?? 0, lastUpdate: lu[u].uint64 ?? 0, validatorPermit: vp[u].bool ?? false,
                                  axon: axon))
        }
        return Metagraph(netuid: UInt16(clamping: v["netuid"]?.uint64 ?? 0), block: v["block"]?.uint64 ?? 0, neurons: neurons)
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
