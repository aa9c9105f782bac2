import MeshChain
import MeshCodec

extension RPCError {
    /// Too many calls from one address (`--rpc-rate-limit`).
    public static let rateLimited = -32029
}

extension HTTPServices {
    /// The subscription methods (WebSocket only), with Substrate's aliases.
    static let subscriptionMethods: Set<String> = [
        "chain_subscribeNewHeads", "chain_subscribeNewHead", "subscribe_newHead",
        "chain_unsubscribeNewHeads", "chain_unsubscribeNewHead", "unsubscribe_newHead",
        "chain_subscribeFinalizedHeads", "chain_subscribeFinalisedHeads",
        "chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads",
        "author_submitAndWatchTransaction", "author_unwatchTransaction",
        "subnet_subscribeEvents", "subnet_unsubscribeEvents",
    ]

    /// The names `rpc_methods` lists beside the node's own: subscriptions (not their aliases) and log filters.
    static let listedMethods = ["system_addLogFilter", "system_resetLogFilter",
        "chain_subscribeNewHeads", "chain_unsubscribeNewHeads", "chain_subscribeFinalizedHeads", "chain_unsubscribeFinalizedHeads",
        "author_submitAndWatchTransaction", "author_unwatchTransaction", "subnet_subscribeEvents", "subnet_unsubscribeEvents",
    ]

    /// Substrate's `system_addLogFilter` (directives added to the running filter) and
    /// `system_resetLogFilter` (back to the filter the node started with); nil for other methods.
    static func logFilterMethod(_ method: String, params: RPCParams, node: Node, context: RPCCallContext) -> Result<JSONValue, RPCError>? {
        switch method {
        case "system_addLogFilter":
            do {
                let directives = try params.string(0, "directives")
                var filter = node.log.filter
                try filter.add(directives)
                node.log.setFilter(filter)
                return .success(.null)
            } catch let e as RPCError {
                return .failure(e)
            } catch {
                return .failure(.params("\(error)"))
            }
        case "system_resetLogFilter":
            node.log.setFilter(context.server?.initialLogFilter ?? LogFilter(defaultLevel: node.config.logLevel))
            return .success(.null)
        default:
            return nil
        }
    }

    /// Runs a subscription method for a WebSocket connection, on the node's loop.
    static func subscription(_ method: String, params: RPCParams, node: Node, context: RPCCallContext,
                             followUps: inout [String]) throws(RPCError) -> JSONValue {
        guard let connection = context.connection, let hub = context.server?.hub else {
            throw RPCError(RPCError.methodNotFound, "\(method) needs a WebSocket connection (ws://host:port on the RPC port)")
        }
        func subscribe(_ kind: SubscriptionHub.Kind) throws(RPCError) -> JSONValue {
            let (id, initial) = try hub.add(kind, connection: connection)
            followUps += initial
            return .string(id)
        }
        func unsubscribe(_ matching: (SubscriptionHub.Kind) -> Bool) throws(RPCError) -> JSONValue {
            let id = try params.string(0, "subscription")
            return .bool(hub.remove(id, connection: connection, matching: matching))
        }
        switch method {
        case "chain_subscribeNewHeads", "chain_subscribeNewHead", "subscribe_newHead":
            return try subscribe(.newHeads)
        case "chain_unsubscribeNewHeads", "chain_unsubscribeNewHead", "unsubscribe_newHead":
            return try unsubscribe { $0 == .newHeads }
        case "chain_subscribeFinalizedHeads", "chain_subscribeFinalisedHeads":
            return try subscribe(.finalizedHeads)
        case "chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads":
            return try unsubscribe { $0 == .finalizedHeads }
        case "author_submitAndWatchTransaction":
            let hex = try params.string(0, "transaction")
            guard let bytes = Hex.decode(hex), bytes.count <= Transaction.maxSize else { throw .params("transaction must be hex of at most 64 KiB") }
            let tx: Transaction
            do { tx = try Transaction.decode(bytes) } catch { throw .params("undecodable transaction: \(error)") }
            // Checked before it is submitted: a refused watch must not leave the transaction in the pool.
            guard hub.canAdd(connection: connection) else {
                throw RPCError(RPCError.limitExceeded, "this connection holds \(hub.maxPerConnection) subscriptions already; unsubscribe first")
            }
            do { _ = try node.submit(tx) } catch {
                throw RPCError(RPCError.transactionRefused, "transaction refused: \(error)", data: .string(error.description))
            }
            return try subscribe(.transaction(tx.hash))
        case "author_unwatchTransaction":
            return try unsubscribe { if case .transaction = $0 { return true }; return false }
        case "subnet_subscribeEvents":
            var netuid: UInt16?
            if let v = params.at(0, "netuid"), !v.isNull { netuid = try params.netuid(0) }
            return try subscribe(.subnetEvents(netuid))
        case "subnet_unsubscribeEvents":
            return try unsubscribe { if case .subnetEvents = $0 { return true }; return false }
        default:
            throw RPCError(RPCError.methodNotFound, "method \(method) does not exist; see rpc_methods")
        }
    }
}
