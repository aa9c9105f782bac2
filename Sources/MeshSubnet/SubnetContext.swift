import Dispatch
import Foundation
import MeshChain
import MeshClient
import MeshCodec
import MeshCrypto
import MeshQuery
import MeshSockets

/// A sleep of `seconds` in nanoseconds, for durations from options or chain data: NaN and
/// negatives are 0 and anything beyond a day is a day (`UInt64(Double)` traps out of range).
func sleepNanos(seconds: Double) -> UInt64 {
    guard seconds > 0 else { return 0 }  // also NaN
    return UInt64(min(seconds, 86_400) * 1e9)
}

/// Why a subnet process cannot go on.
public struct SubnetError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { self.description = d }
}

/// Everything a subnet process needs to talk to the chain: a node's RPC, the subnet, the
/// wallet's keys. The blocking RPC calls run off the cooperative pool.
public final class SubnetContext: Sendable {
    public let chain: ChainClient
    public let netuid: UInt16
    public let hotkey: Ed25519.PrivateKey
    public let coldkey: Ed25519.PrivateKey
    public let name: String
    let logLine: @Sendable (String) -> Void

    public init(rpcURL: String, netuid: UInt16, hotkey: Ed25519.PrivateKey, coldkey: Ed25519.PrivateKey, name: String = "subnet",
                log: @escaping @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }) throws {
        self.chain = try ChainClient(url: rpcURL)
        self.netuid = netuid
        self.hotkey = hotkey
        self.coldkey = coldkey
        self.name = name
        self.logLine = log
    }

    /// Logs one line with a timestamp and the process name.
    public func log(_ message: String) {
        let t = ISO8601DateFormatter().string(from: Date())
        self.logLine("\(t) \(self.name) \(message)")
    }

    /// Runs a blocking chain call on a dispatch thread.
    public func rpc<T: Sendable>(_ body: @escaping @Sendable (ChainClient) throws -> T) async throws -> T {
        let chain = self.chain
        return try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async { cont.resume(with: Result { try body(chain) }) }
        }
    }

    /// Waits for the node's RPC to answer (a freshly started devnet takes a moment).
    public func waitForChain(timeout: Double = 120) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                _ = try await self.rpc { try $0.head() }
                return
            } catch {
                if Date() > deadline { throw SubnetError("the node at \(self.chain.rpc.host):\(self.chain.rpc.port) does not answer: \(error)") }
                try await Task.sleep(nanoseconds: 1_000_000_000)
            }
        }
    }

    /// Follows this subnet's chain events (new heads, metagraph changes, epochs) through the
    /// node's subscriptions; with an `https://` RPC URL it polls every `pollSeconds` instead.
    public func watcher(pollSeconds: Double) -> ChainWatcher {
        ChainWatcher(url: self.chain.rpc.url.absoluteString, netuids: [self.netuid], pollSeconds: pollSeconds, log: { [self] in self.log($0) })
    }

    public func metagraph() async throws -> Metagraph {
        let netuid = self.netuid
        return try await self.rpc { try $0.metagraphInfo(netuid: netuid) }
    }

    /// Submits a call and waits for its block; a refused or failed call throws with the chain's reason.
    @discardableResult
    public func submit(_ call: Call, signer: Ed25519.PrivateKey, timeout: Double = 60) async throws -> UInt64 {
        let outcome = try await self.rpc { try $0.submitAndWait(call, key: signer, timeout: timeout) }
        switch outcome {
        case .included(let block, _): return block
        case .failed(_, let code, let message): throw SubnetError("\(call.name) failed: \(code): \(message)")
        case .pending, .unknown: throw SubnetError("\(call.name) was not included within \(timeout) s")
        }
    }

    /// Registers the hotkey on the subnet (burned registration, paid by the coldkey) unless it
    /// already is; returns its uid.
    @discardableResult
    public func ensureRegistered(maxBurn: Rao = 100 * Token.tao) async throws -> UInt16 {
        for attempt in 0..<10 {
            if let uid = try await self.metagraph().uid(of: self.hotkey.publicKey) { return uid }
            self.log("registering hotkey \(self.hotkey.publicKey.hex.prefix(16))… on subnet \(self.netuid)")
            do {
                try await self.submit(.register(netuid: self.netuid, hotkey: self.hotkey.publicKey, maxBurn: maxBurn), signer: self.coldkey)
            } catch {
                // Registrations per block are limited; wait and retry.
                self.log("registration attempt \(attempt + 1) failed: \(error)")
                try await Task.sleep(nanoseconds: UInt64.random(in: 1_000_000_000...3_000_000_000))
            }
        }
        throw SubnetError("could not register on subnet \(self.netuid)")
    }

    /// Tops the hotkey's stake on this subnet (from the coldkey) up to `amount`.
    public func ensureStake(_ amount: Rao) async throws {
        let hot = self.hotkey.publicKey
        let netuid = self.netuid
        let have = try await self.rpc { c in
            try c.account(hot).stakes.filter { $0.hotkey == hot.hex && $0.netuid == netuid }.reduce(Rao(0)) { $0.addingSaturated($1.amount) }
        }
        guard have < amount else { return }
        self.log("staking \(Token.format(amount - have)) on \(hot.hex.prefix(16))…")
        try await self.submit(.addStake(hotkey: hot, netuid: netuid, amount: amount - have), signer: self.coldkey)
    }

    /// Keeps a little free balance on the hotkey (from the coldkey) for the fees of the calls
    /// it signs itself (serving the axon, setting weights).
    public func ensureHotkeyFees(minimum: Rao = Token.tao / 10, topUp: Rao = Token.tao) async throws {
        let hot = self.hotkey.publicKey
        let balance = try await self.rpc { try $0.account(hot).balance }
        guard balance < minimum else { return }
        self.log("funding the hotkey's fees with \(Token.format(topUp)) from the coldkey")
        try await self.submit(.transfer(to: hot, amount: topUp), signer: self.coldkey)
    }

    /// The chain's genesis hash (the channel hello needs it).
    public func genesis() async throws -> [UInt8] { try await self.rpc { try $0.genesis().bytes } }
}
