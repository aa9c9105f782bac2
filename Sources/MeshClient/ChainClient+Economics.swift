import MeshChain
import MeshCodec
import MeshCrypto

/// A subnet's TAO/alpha pool as `subnet_getPool` reports it.
public struct PoolInfo: Sendable, Equatable {
    public var netuid: UInt16
    /// TAO reserve (rao), alpha reserve and alpha outstanding (alpha units of 10^-9).
    public var taoIn: Rao
    public var alphaIn: UInt64
    public var alphaOut: UInt64
    /// TAO per alpha: the exact decimal the chain computed, and as a float.
    public var price: String
    public var priceFloat: Double
    /// Moving average of the net TAO flow (rao per block).
    public var taoFlowEma: Double
    public var symbol: String
    public var started: Bool

    /// Parses the RPC answer; every number is converted exactly (a hostile server's values
    /// are refused, never trapped on).
    public static func parse(_ v: JSONValue) throws -> PoolInfo {
        func u64(_ f: String) throws -> UInt64 {
            guard let x = v[f]?.uint64 else { throw RPCClient.Failure.http("subnet_getPool: \(f) missing or not an integer") }
            return x
        }
        guard let netuid = UInt16(exactly: try u64("netuid")) else { throw RPCClient.Failure.http("subnet_getPool: netuid out of range") }
        return PoolInfo(netuid: netuid, taoIn: try u64("taoIn"), alphaIn: try u64("alphaIn"), alphaOut: try u64("alphaOut"),
                        price: v["price"]?.string ?? "0", priceFloat: v["priceFloat"]?.double ?? 0, taoFlowEma: v["taoFlowEma"]?.double ?? 0,
                        symbol: v["symbol"]?.string ?? "", started: v["started"]?.bool ?? false)
    }
}

/// One stake as `subnet_getStake` reports it.
public struct StakeInfo: Sendable, Equatable {
    public var coldkey: String
    public var hotkey: String
    public var netuid: UInt16
    /// Alpha (TAO on the root subnet), its value at the pool's price, and what it earned beyond
    /// what was staked.
    public var alpha: UInt64
    public var taoValue: Rao
    public var earned: UInt64
    public var symbol: String
}

extension ChainClient {
    /// A subnet's pool.
    public func pool(netuid: UInt16) throws -> PoolInfo {
        try PoolInfo.parse(try self.rpc.call("subnet_getPool", .array([.int(netuid)])))
    }

    /// Stakes matching any of coldkey, hotkey, netuid (at least one).
    public func stakes(coldkey: AccountID? = nil, hotkey: AccountID? = nil, netuid: UInt16? = nil) throws -> [StakeInfo] {
        let r = try self.rpc.call("subnet_getStake", .object([
            ("coldkey", coldkey.map { .string($0.hex) } ?? .null), ("hotkey", hotkey.map { .string($0.hex) } ?? .null),
            ("netuid", netuid.map { .int($0) } ?? .null),
        ]))
        return try (r.array ?? []).map { s in
            let n = s["netuid"]?.uint64 ?? 0
            // Exact: a hostile server's netuid 70000 must not trap (nor be read as 65535).
            guard let netuid = UInt16(exactly: n) else { throw RPCClient.Failure.http("subnet_getStake: stake netuid \(n) is out of range") }
            return StakeInfo(coldkey: s["coldkey"]?.string ?? "", hotkey: s["hotkey"]?.string ?? "", netuid: netuid,
                             alpha: s["alpha"]?.uint64 ?? 0, taoValue: s["taoValue"]?.uint64 ?? 0, earned: s["earned"]?.uint64 ?? 0,
                             symbol: s["symbol"]?.string ?? "")
        }
    }

    /// TAO issued so far (rao).
    public func totalIssuance() throws -> Rao {
        guard let x = try self.rpc.call("chain_getTotalIssuance").uint64 else { throw RPCClient.Failure.http("chain_getTotalIssuance: not an integer") }
        return x
    }

    /// What staking `amount` TAO (`kind` "stake") or unstaking `amount` alpha ("unstake") on
    /// `netuid` would do now, and with `limitPrice` (rao per alpha) how much fits under it.
    public func quote(netuid: UInt16, kind: String, amount: UInt64, limitPrice: UInt64? = nil) throws -> JSONValue {
        try self.rpc.call("subnet_quote", .object([("netuid", .int(netuid)), ("kind", .string(kind)), ("amount", .int(amount)),
                                                   ("limitPrice", limitPrice.map { .int($0) } ?? .null)]))
    }
}
