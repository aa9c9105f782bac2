import Foundation
import MeshChain
import MeshCodec
import MeshCrypto

/// Reads chain state and submits signed transactions through a node's JSON-RPC.
/// Used by the CLI, the subnet SDK and the example subnets. Blocking calls.
public struct ChainClient: Sendable {
    public let rpc: RPCClient

    public init(url: String) throws { self.rpc = try RPCClient(url: url) }

    public func genesis() throws -> Hash32 {
        guard let h = try self.rpc.call("chain_getGenesis").string.flatMap({ Hash32(hex: $0) }) else {
            throw RPCClient.Failure.http("bad genesis hash")
        }
        return h
    }

    public func head() throws -> UInt64 { try self.rpc.call("chain_getHead")["number"]?.uint64 ?? 0 }
    public func finalized() throws -> UInt64 { try self.rpc.call("chain_getFinalizedHead")["number"]?.uint64 ?? 0 }

    public struct Account: Sendable {
        public var balance: Rao
        public var nonce: UInt64
        public var stakes: [(hotkey: String, netuid: UInt16, amount: Rao, coldkey: String)]
    }

    public func account(_ a: AccountID) throws -> Account {
        let r = try self.rpc.call("state_getAccount", .array([.string(a.hex)]))
        let stakes = try (r["stakes"]?.array ?? []).map { s in
            let netuid = s["netuid"]?.uint64 ?? 0
            // Exact: a hostile server's netuid 70000 must not trap (nor be read as 65535).
            guard let n = UInt16(exactly: netuid) else { throw RPCClient.Failure.http("state_getAccount: stake netuid \(netuid) is out of range") }
            return (hotkey: s["hotkey"]?.string ?? "", netuid: n, amount: s["amount"]?.uint64 ?? 0, coldkey: s["coldkey"]?.string ?? "")
        }
        return Account(balance: r["balance"]?.uint64 ?? 0, nonce: r["nonce"]?.uint64 ?? 0, stakes: stakes)
    }

    public func baseFee() throws -> Rao { try self.rpc.call("state_getParams")["baseFee"]?.uint64 ?? 100_000 }

    public func metagraph(netuid: UInt16, full: Bool = false) throws -> JSONValue {
        try self.rpc.call("subnet_getMetagraph", .object([("netuid", .int(netuid)), ("full", .bool(full))]))
    }

    /// Signs `call` with the next nonce of `key` and submits it; returns the transaction hash.
    public func submit(_ call: Call, key: Ed25519.PrivateKey, nonce explicitNonce: UInt64? = nil, lifetime: UInt64 = 64) throws -> Hash32 {
        try self.submitSigned(try self.transaction(call, key: key, nonce: explicitNonce, lifetime: lifetime))
    }

    /// `call` signed by `key` with the next nonce, valid for `lifetime` blocks from the head.
    public func transaction(_ call: Call, key: Ed25519.PrivateKey, nonce explicitNonce: UInt64? = nil, lifetime: UInt64 = 64) throws -> Transaction {
        let genesis = try self.genesis()
        let head = try self.head()
        // A head near 2^64 is a hostile (or broken) server: refuse rather than trap on the sum.
        guard case (let validUntil, false) = head.addingReportingOverflow(lifetime) else {
            throw RPCClient.Failure.http("the node reports head #\(head), too close to 2^64 for a transaction lifetime of \(lifetime)")
        }
        let nonce = try explicitNonce ?? self.pendingNonce(key.publicKey)
        return Transaction(signer: key, nonce: nonce, validUntil: validUntil, fee: try self.baseFee(), call: call, genesis: genesis)
    }

    /// Submits a signed transaction; returns its hash.
    public func submitSigned(_ tx: Transaction) throws -> Hash32 {
        let r = try self.rpc.call("author_submitTransaction", .array([.string(Hex.encode(tx.encoded))]))
        guard let h = r.string.flatMap({ Hash32(hex: $0) }) else { throw RPCClient.Failure.http("bad transaction hash") }
        return h
    }

    /// The account's next nonce on the best chain. (Callers that queue several transactions
    /// pass explicit nonces.)
    public func pendingNonce(_ a: AccountID) throws -> UInt64 { try self.account(a).nonce }

    /// What became of a submitted transaction.
    public enum Outcome: Sendable, Equatable {
        case included(block: UInt64, finalized: Bool)
        /// Included, but the call was refused (the fee was paid): the chain's code and message.
        case failed(block: UInt64, code: String, message: String)
        case pending
        case unknown
    }

    public func status(_ hash: Hash32) throws -> Outcome {
        let r = try self.rpc.call("author_transactionStatus", .array([.string(hash.hex)]))
        switch r["status"]?.string {
        case "included":
            let block = r["block"]?.uint64 ?? 0
            if r["success"]?.bool == false {
                return .failed(block: block, code: r["error"]?.string ?? "Error", message: r["message"]?.string ?? "")
            }
            return .included(block: block, finalized: r["finalized"]?.bool ?? false)
        case "pending", "forked": return .pending
        default: return .unknown
        }
    }

    /// Submits and waits until the transaction is in a block (or `timeout` seconds pass);
    /// with `finalized`, until its block is final. Follows the transaction over a WebSocket
    /// (`author_submitAndWatchTransaction`); where the node's WebSocket cannot be reached
    /// (an `https://` URL, a proxy speaking HTTP only) it submits over HTTP and polls.
    public func submitAndWait(_ call: Call, key: Ed25519.PrivateKey, timeout: Double = 30, finalized: Bool = false) throws -> Outcome {
        try self.submitAndWatch(call, key: key, timeout: timeout, finalized: finalized).outcome
    }

    /// As ``submitAndWait(_:key:timeout:finalized:)``, with the transaction's hash.
    public func submitAndWatch(_ call: Call, key: Ed25519.PrivateKey, timeout: Double = 30, finalized: Bool = false) throws -> (hash: Hash32, outcome: Outcome) {
        let tx = try self.transaction(call, key: key)
        if self.rpc.url.scheme == "http", let ws = try? RPCWebSocket(url: self.rpc.url.absoluteString, timeout: 5) {
            defer { ws.close() }
            let sub = try ws.subscribe("author_submitAndWatchTransaction", .array([.string(Hex.encode(tx.encoded))]))
            let deadline = Date().addingTimeInterval(timeout)
            while let left = Optional(deadline.timeIntervalSinceNow), left > 0, let n = try ws.next(timeout: left) {
                guard n.subscription == sub else { continue }
                if n.result.string == "dropped" { return (tx.hash, .unknown) }
                let final = n.result["finalized"] != nil
                if n.result["inBlock"] != nil || final {
                    let outcome = try self.status(tx.hash)
                    if case .failed = outcome { return (tx.hash, outcome) }
                    if !finalized || final { return (tx.hash, final ? Self.finalizedOutcome(outcome) : outcome) }
                }
            }
            return (tx.hash, try self.status(tx.hash))
        }
        let hash = try self.submitSigned(tx)
        var outcome = Outcome.pending
        _ = try self.waitUntil(timeout: timeout, interval: 0.25) {
            outcome = try self.status(hash)
            switch outcome {
            case .included(_, let f): return !finalized || f
            case .failed: return true
            case .pending, .unknown: return false
            }
        }
        return (hash, outcome)
    }

    static func finalizedOutcome(_ o: Outcome) -> Outcome {
        if case .included(let block, _) = o { return .included(block: block, finalized: true) }
        return o
    }

    /// Waits for the best block to reach `number` (a head subscription; polling where the
    /// WebSocket cannot be reached). False when `timeout` passes first.
    public func waitForHead(_ number: UInt64, timeout: Double) throws -> Bool {
        if try self.head() >= number { return true }
        if self.rpc.url.scheme == "http", let ws = try? RPCWebSocket(url: self.rpc.url.absoluteString, timeout: 5) {
            defer { ws.close() }
            let sub = try ws.subscribe("chain_subscribeNewHeads")
            let deadline = Date().addingTimeInterval(timeout)
            while let left = Optional(deadline.timeIntervalSinceNow), left > 0, let n = try ws.next(timeout: left) {
                guard n.subscription == sub, let hex = n.result["number"]?.string, let h = UInt64(hex.dropFirst(2), radix: 16) else { continue }
                if h >= number { return true }
            }
            return false
        }
        return try self.waitUntil(timeout: timeout, interval: 0.5) { try self.head() >= number }
    }

    /// Waits until `check` holds on the best chain, polling every `interval`, at most `timeout` seconds.
    public func waitUntil(timeout: Double, interval: Double = 0.5, _ check: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? check()) == true { return true }
            Thread.sleep(forTimeInterval: interval)
        }
        return try check()
    }
}
