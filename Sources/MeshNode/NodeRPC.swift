import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip
import MeshIncentive
import MeshNetwork
import MeshNodeCore
import MeshSockets
import MeshStore
/// A JSON-RPC error object.
public struct RPCError: Error, Sendable {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(_ code: Int, _ message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// The node refused a transaction (the data says why).
    public static let transactionRefused = -32010
    public static let notFound = -32011
    /// A batch asked for more work than one request may (see ``HTTPServices``).
    public static let limitExceeded = -32005

    static func params(_ m: String) -> RPCError { RPCError(invalidParams, m) }
}

/// Parameters given by position or by name.
struct RPCParams {
    let value: JSONValue

    func at(_ index: Int, _ name: String) -> JSONValue? {
        if let arr = self.value.array { return index < arr.count ? arr[index] : nil }
        return self.value[name]
    }

    func uint(_ index: Int, _ name: String) throws(RPCError) -> UInt64 {
        guard let v = self.at(index, name) else { throw .params("missing parameter \(name)") }
        guard let x = v.uint64 else { throw .params("\(name) must be a non-negative integer") }
        return x
    }

    /// A subnet id: refused when it does not fit in a u16 (clamping answered for subnet
    /// 65535 when asked for 70000).
    func netuid(_ index: Int, _ name: String = "netuid") throws(RPCError) -> UInt16 {
        let x = try self.uint(index, name)
        guard let n = UInt16(exactly: x) else { throw .params("\(name) \(x) is out of range (0...65535)") }
        return n
    }

    func optionalUInt(_ index: Int, _ name: String) throws(RPCError) -> UInt64? {
        guard let v = self.at(index, name), !v.isNull else { return nil }
        guard let x = v.uint64 else { throw .params("\(name) must be a non-negative integer") }
        return x
    }

    /// A block or transaction hash (0x and 64 hex digits) at `index` or `name`, or nil when absent.
    func optionalHash(_ index: Int, _ name: String) throws(RPCError) -> Hash32? {
        guard let h = self.at(index, name)?.string else { return nil }
        guard let hash = Hash32(hex: h) else { throw .params("\(name) must be 0x and 64 hex digits") }
        return hash
    }

    func string(_ index: Int, _ name: String) throws(RPCError) -> String {
        guard let s = self.at(index, name)?.string else { throw .params("missing or non-string parameter \(name)") }
        return s
    }

    func account(_ index: Int, _ name: String) throws(RPCError) -> AccountID {
        let s = try self.string(index, name)
        guard let a = AccountID(address: s) else { throw .params("\(name) must be an SS58 address or 64 hex digits") }
        return a
    }

    func bool(_ index: Int, _ name: String) -> Bool { self.at(index, name)?.bool ?? false }
}

extension Node {
    /// Answers one JSON-RPC method (CONTRACT.md). Runs on the loop.
    public func rpc(method: String, params p: JSONValue) throws(RPCError) -> JSONValue {
        let params = RPCParams(value: p)
        switch method {
        case "system_health":
            return .object([("peers", .int(self.core.peers.connected.count)), ("isSyncing", .bool(self.isSyncing)),
                            ("shouldHavePeers", .bool(!self.config.bootnodes.isEmpty || self.chain.bestState.authorities.count > 1))])
        case "system_peers":
            return .array(self.core.peers.connected.values.sorted { $0.id < $1.id }.map { q in
                let hello = q.info.hello
                let port = q.inbound ? hello.listenPort : q.info.remotePort
                let address = NodeAddress(nodeId: q.nodeId, host: q.info.remoteHost, port: port)
                return .object([("nodeId", .string(q.nodeId.hex)), ("address", .string(address.description)),
                                ("bestNumber", .int(q.best.number)), ("roles", .array(hello.roles.names.map { .string($0) })),
                                ("inbound", .bool(q.inbound)), ("agent", .string(hello.agent)), ("score", .int(q.score))])
            })
        case "system_nodeId":
            return .string(self.nodeId.hex)
        case "system_name":
            return .string(self.config.name)
        case "system_version":
            return .string("0.1.0")
        case "system_chain":
            // Substrate's: the chain's name as a string (the spec's id and genesis: system_chainInfo).
            return .string(self.config.spec.name)
        case "system_chainInfo":
            return .object([("name", .string(self.config.spec.name)), ("id", .string(self.config.spec.id)), ("genesis", .string(self.chain.genesisHash.hex))])
        case "system_localListenAddresses":
            return .array([.string("\(self.nodeId.hex)@\(self.config.listenHost):\(self.listenAddress?.port ?? self.config.port)")])
        case "system_syncState":
            // Substrate's shape: where sync started, where we are, the best any peer claims
            // (claims are hints; see `isSyncing`).
            // Beside Substrate's three: the speed the informant measures and the time to the target.
            let highest = self.syncTarget
            let progress = self.syncProgress
            return .object([("startingBlock", .int(self.core.startingBlock)), ("currentBlock", .int(self.chain.best.number)),
                            ("highestBlock", .int(highest)), ("isSyncing", .bool(self.isSyncing)),
                            ("blocksPerSecond", .double((progress.blocksPerSecond * 10).rounded() / 10)),
                            ("etaSeconds", progress.eta(best: self.chain.best.number, target: highest).map { .int(Int($0.rounded())) } ?? .null)])
        case "system_properties":
            return .object([("ss58Format", .int(42)), ("tokenDecimals", .int(9)), ("tokenSymbol", .string("TAO"))])
        case "chain_getBlockHash":
            // Substrate's: the canonical hash at a number (default: the best), or null.
            let n = try params.optionalUInt(0, "number") ?? self.chain.best.number
            return self.chain.block(number: n).map { .string($0.hash.hex) } ?? .null
        case "chain_getHeader":
            // Substrate's shape (numbers in hex, `extrinsicsRoot`); default: the best block.
            guard let b = self.chain.block(try params.optionalHash(0, "hash") ?? self.chain.best.hash) else { return .null }
            return .object([("parentHash", .string(b.header.parentHash.hex)), ("number", .string("0x" + String(b.header.number, radix: 16))),
                            ("stateRoot", .string(b.header.stateRoot.hex)), ("extrinsicsRoot", .string(b.header.transactionsRoot.hex)),
                            ("digest", .object([("logs", .array([]))]))])
        case "chain_getHead":
            return Self.pointer(self.chain.best)
        case "chain_getFinalizedHead":
            return Self.pointer(self.chain.finalized)
        case "chain_getGenesis":
            return .string(self.chain.genesisHash.hex)
        case "chain_getBlock":
            var block: Block?
            // By position, the one parameter is a number or a hash (`["0x…"]`, as Substrate's
            // `chain_getBlock`); by name, `number` or `hash`.
            if params.value.array != nil, params.at(0, "")?.string != nil, let hash = try params.optionalHash(0, "hash") {
                block = self.chain.block(hash)
            } else if let n = try params.optionalUInt(0, "number") {
                block = self.chain.block(number: n)
            } else if let hash = try params.optionalHash(0, "hash") {
                block = self.chain.block(hash)
            } else if params.at(0, "number") == nil && params.at(0, "hash") == nil {
                block = self.chain.block(self.chain.best.hash)
            } else {
                throw .params("give a block number or a hash")
            }
            return block.map { self.blockJSON($0) } ?? .null
        case "subnet_list":
            let state = self.chain.bestState
            return .array(state.subnets.keys.sorted().map { id in Self.subnetJSON(state.subnets[id]!, state: state) })
        case "subnet_getHyperparameters":
            let netuid = try params.netuid(0)
            guard let s = self.chain.bestState.subnets[netuid] else { throw RPCError(RPCError.notFound, "subnet \(netuid) does not exist") }
            return Self.hyperparameters(s.params)
        case "subnet_getMetagraph":
            let netuid = try params.netuid(0)
            let withMatrices = params.bool(1, "full") || params.bool(1, "weights")
            guard let s = self.chain.bestState.subnets[netuid] else { throw RPCError(RPCError.notFound, "subnet \(netuid) does not exist") }
            return Self.metagraph(s, state: self.chain.bestState, full: withMatrices)
        case "subnet_publishMessage":
            let hex = try params.string(0, "message")
            guard let bytes = Hex.decode(hex), bytes.count <= SubnetGossipMessage.maxPayload + 256 else {
                throw .params("message must be hex of a signed subnet message (payload at most 64 KiB)")
            }
            let m: SubnetGossipMessage
            do { m = try SubnetGossipMessage.decode(bytes) } catch { throw .params("undecodable subnet message: \(error)") }
            do { try self.publishSubnetMessage(m) } catch {
                throw RPCError(RPCError.transactionRefused, "subnet message refused: \(error)", data: .string("\(error)"))
            }
            return .object([("topic", .string(SubnetGossipMessage.topic(m.netuid))), ("subscribed", .bool(self.config.subnetTopics.contains(m.netuid)))])
        case "subnet_getMessages":
            let netuid = try params.netuid(0)
            return .array((self.core.subnetMessages[netuid] ?? []).map { m in
                .object([("netuid", .int(m.netuid)), ("hotkey", .string(m.hotkey.hex)), ("timestamp", .int(m.timestamp)),
                         ("payload", .string(Hex.encode(m.payload)))])
            })
        case "subnet_getBurnCost":
            let netuid = try params.netuid(0)
            guard let s = self.chain.bestState.subnets[netuid] else { throw RPCError(RPCError.notFound, "subnet \(netuid) does not exist") }
            return .int(s.burn)
        case "subnet_getLockCost":
            return .int(self.chain.bestState.lockCost(at: self.chain.best.number + 1))
        case "state_getAccount":
            let a = try params.account(0, "address")
            let state = self.chain.bestState
            let stakes = state.stakeEntries(involving: a)
            return .object([("address", .string(a.hex)), ("balance", .int(state.balance(a))), ("nonce", .int(state.nonce(a))),
                            ("stakes", .array(stakes.map { .object([("coldkey", .string($0.key.coldkey.hex)), ("hotkey", .string($0.key.hotkey.hex)),
                                                                      ("netuid", .int($0.key.netuid)), ("amount", .int($0.amount))]) }))])
        case "subnet_getPool":
            let netuid = try params.netuid(0)
            guard let sub = self.chain.bestState.subnets[netuid] else { throw RPCError(RPCError.notFound, "subnet \(netuid) does not exist") }
            return Self.poolJSON(sub)
        case "subnet_getStake":
            return try Self.stakeJSON(params, state: self.chain.bestState)
        case "chain_getTotalIssuance":
            return .int(self.chain.bestState.totalIssuance)
        case "subnet_quote":
            return try Self.quoteJSON(params, state: self.chain.bestState)
        case "delegate_getChildren":
            let hotkey = try params.account(0, "hotkey")
            let netuid = try params.netuid(1)
            let state = self.chain.bestState
            func links(_ l: [ChildLink]) -> JSONValue {
                .array(l.map { .object([("hotkey", .string($0.hotkey.hex)), ("proportion", .string(String($0.proportion))),
                                        ("fraction", .double(Double($0.proportion) / 18_446_744_073_709_551_615.0))]) })
            }
            let pending = state.pendingChildKeys[HotkeyNet(hotkey: hotkey, netuid: netuid)]
            return .object([("hotkey", .string(hotkey.hex)), ("netuid", .int(netuid)),
                            ("children", links(state.children(of: hotkey, netuid: netuid))), ("parents", links(state.parents(of: hotkey, netuid: netuid))),
                            ("pending", pending.map { .object([("children", links($0.children)), ("coolDownBlock", .int($0.coolDownBlock))]) } ?? .null),
                            ("childTake", .int(state.childkeyTake(of: hotkey, netuid: netuid))),
                            ("stakeWeight", .int(state.stakeWeight(hotkey: hotkey, netuid: netuid)))])
        case "delegate_getInfo":
            return Self.delegateJSON(try params.account(0, "hotkey"), state: self.chain.bestState)
        case "state_getParams":
            let s = self.chain.bestState
            return .object([("baseFee", .int(s.params.baseFee)), ("slotDurationMs", .int(s.params.slotDurationMs)),
                            ("totalIssuance", .int(s.totalIssuance)), ("totalBurned", .int(s.totalBurned)),
                            ("blockEmission", .int(s.params.emission.blockEmission(totalIssuance: s.totalIssuance))),
                            ("validators", .array(s.authorities.map { .object([("id", .string($0.id.hex)), ("weight", .int($0.weight))]) }))])
        case "weights_nextAllowedBlock":
            let netuid = try params.netuid(0)
            let hotkey = try params.account(1, "hotkey")
            return self.chain.bestState.nextWeightsBlock(netuid: netuid, hotkey: hotkey).map { .int($0) } ?? .null
        case "author_submitTransaction":
            let hex = try params.string(0, "transaction")
            guard let bytes = Hex.decode(hex), bytes.count <= Transaction.maxSize else { throw .params("transaction must be hex of at most 64 KiB") }
            let tx: Transaction
            do { tx = try Transaction.decode(bytes) } catch { throw .params("undecodable transaction: \(error)") }
            do { return .string(try self.submit(tx).hex) } catch {
                throw RPCError(RPCError.transactionRefused, "transaction refused: \(error)", data: .string(error.description))
            }
        case "author_transactionStatus":
            guard let hash = try params.optionalHash(0, "hash") else { throw .params("missing or non-string parameter hash") }
            if let r = self.chain.receipts[hash] {
                let canonical = self.chain.block(number: r.number)?.hash == r.block
                return .object([("status", .string(canonical ? "included" : "forked")), ("block", .int(r.number)),
                                ("blockHash", .string(r.block.hex)), ("finalized", .bool(canonical && r.number <= self.chain.finalized.number)),
                                ("success", .bool(r.error == nil)), ("error", r.error.map { .string($0.code) } ?? .null),
                                ("message", r.error.map { .string($0.description) } ?? .null)])
            }
            if self.mempool.contains(hash) { return .object([("status", .string("pending"))]) }
            return .object([("status", .string("unknown"))])
        case "author_pendingTransactions":
            return .array(self.mempool.all.map { .string($0.hash.hex) })
        case "finality_getState":
            let best = self.chain.best
            let fin = self.chain.finalized
            let lagSeconds = self.chain.header(fin.hash).map { h in Double(SystemTimeSource.wallMillis() - min(SystemTimeSource.wallMillis(), h.timestamp)) / 1000 } ?? 0
            let votes = self.finality.currentRoundVotes
            return .object([("round", .int(self.finality.round)), ("setId", .int(self.finality.setId)),
                            ("finalized", Self.pointer(fin)), ("best", Self.pointer(best)),
                            ("lagBlocks", .int(best.number - fin.number)), ("lagSeconds", .double(lagSeconds)),
                            ("prevotes", .int(votes.prevotes)), ("precommits", .int(votes.precommits)),
                            ("voter", .bool(self.finality.isVoter)),
                            ("authorities", .array(self.finality.authorities.map { .object([("id", .string($0.id.hex)), ("weight", .int($0.weight))]) }))])
        case "system_networkState":
            var bytesIn = 0, bytesOut = 0
            for p in self.host.peers.values {
                bytesIn += p.socket.bytesRead
                bytesOut += p.socket.bytesWritten
            }
            let g = self.gossip.counters
            return .object([("peers", .int(self.core.peers.connected.count)), ("discovered", .int(self.discovery?.core.table.count ?? 0)),
                            ("bytesIn", .int(bytesIn)), ("bytesOut", .int(bytesOut)),
                            ("gossip", .object([("received", .int(g.received)), ("duplicates", .int(g.duplicates)),
                                                ("delivered", .int(g.delivered)), ("invalid", .int(g.invalid))])),
                            ("compactBlocks", .object([("fromPool", .int(self.counters.compactFromPool)), ("fetched", .int(self.counters.compactFetched)),
                                                       ("fallbacks", .int(self.counters.compactFallbacks)),
                                                       ("transactionsFetched", .int(self.counters.compactTransactionsFetched))]))])
        case "rpc_methods":
            // Substrate's shape.
            return .object([("methods", .array((Node.methods + HTTPServices.listedMethods).map { .string($0) })), ("version", .int(1))])
        default:
            throw RPCError(RPCError.methodNotFound, "method \(method) does not exist; see rpc_methods")
        }
    }

    static let methods = [
        "system_health", "system_peers", "system_nodeId", "system_name", "system_version", "system_chain", "system_chainInfo", "system_localListenAddresses",
        "chain_getHead", "chain_getFinalizedHead", "chain_getGenesis", "chain_getBlock", "chain_getBlockHash", "chain_getHeader",
        "system_syncState", "system_properties", "subnet_list", "subnet_getHyperparameters",
        "subnet_getMetagraph", "subnet_publishMessage", "subnet_getMessages", "subnet_getBurnCost", "subnet_getLockCost", "state_getAccount", "state_getParams",
        "weights_nextAllowedBlock", "delegate_getInfo", "subnet_getPool", "subnet_getStake", "chain_getTotalIssuance", "subnet_quote", "delegate_getChildren",
        "system_networkState", "author_submitTransaction", "author_transactionStatus", "author_pendingTransactions", "finality_getState", "rpc_methods",
    ]

    static func pointer(_ p: ChainPointer) -> JSONValue { .object([("number", .int(p.number)), ("hash", .string(p.hash.hex))]) }

    func blockJSON(_ b: Block) -> JSONValue {
        let h = b.header
        let receipts: [Hash32: String] = [:]
        _ = receipts
        return .object([
            ("number", .int(h.number)), ("hash", .string(b.hash.hex)), ("parentHash", .string(h.parentHash.hex)),
            ("slot", .int(h.slot)), ("timestamp", .int(h.timestamp)), ("stateRoot", .string(h.stateRoot.hex)),
            ("transactionsRoot", .string(h.transactionsRoot.hex)), ("producer", .string(h.producer.hex)),
            ("digest", .array(h.digest.map { d in
                switch d {
                case .scheduledChange(let a, let delay): return .object([("scheduledChange", .int(a.count)), ("delay", .int(delay))])
                case .forcedChange(let a, let delay): return .object([("forcedChange", .int(a.count)), ("delay", .int(delay))])
                }
            })),
            ("justified", .bool(((try? self.store.justification(h.number)) ?? nil) != nil)),
            ("importedAtMs", self.core.importedAt(b.hash).map { .int($0) } ?? .null),
            ("transactions", .array(b.transactions.map { tx in
                .object([("hash", .string(tx.hash.hex)), ("signer", .string(tx.signer.hex)), ("nonce", .int(tx.nonce)),
                         ("fee", .int(tx.fee)), ("call", .string(tx.call.name))])
            })),
        ])
    }

    /// A subnet's pool (CONTRACT: netuid, taoIn, alphaIn, alphaOut, price, taoFlowEma, symbol;
    /// rao and alpha as integers, the price as a decimal string with `priceFloat` beside it).
    static func poolJSON(_ s: Subnet) -> JSONValue {
        let p = s.pool
        return .object([
            ("netuid", .int(s.netuid)), ("taoIn", .int(p.taoIn)), ("alphaIn", .int(p.alphaIn)), ("alphaOut", .int(p.alphaOut)),
            ("price", .string(p.price.decimalString())), ("priceFloat", .double(p.price.doubleValue)),
            ("taoFlowEma", .double(p.taoFlowEma.doubleValue)), ("taoFlowEmaString", .string(p.taoFlowEma.description)),
            ("protocolFlowEma", .double(p.protocolFlowEma.doubleValue)),
            ("movingPrice", .string(p.movingPrice.decimalString())), ("symbol", .string(p.symbol)), ("mechanism", .string(p.isStable ? "stable" : "dynamic")),
            ("started", .bool(s.netuid == 0 || p.firstEmissionBlock != 0)), ("firstEmissionBlock", p.firstEmissionBlock == 0 ? .null : .int(p.firstEmissionBlock)),
            ("feeRate", .int(p.feeRate)), ("protocolAlpha", .int(p.protocolAlpha)), ("burnedAlpha", .int(p.burnedAlpha)),
            ("pendingOwnerCut", .int(p.pendingOwnerCut)), ("pendingServer", .int(s.pendingServer)), ("pendingValidator", .int(s.pendingValidator)),
            ("pendingRoot", .int(p.pendingRoot)), ("locked", .int(s.locked)), ("registeredAt", .int(s.createdAt)),
            ("identity", s.identity.map { i in .object(zip(SubnetIdentity.fieldNames, i.fields).map { ($0, .string($1)) }) } ?? .null),
        ])
    }

    /// Stake entries filtered by any of coldkey, hotkey, netuid: alpha, its value in TAO at the
    /// pool's price, and what it earned beyond what was put in.
    static func stakeJSON(_ params: RPCParams, state: ChainState) throws(RPCError) -> JSONValue {
        func optionalAccount(_ i: Int, _ name: String) throws(RPCError) -> AccountID? {
            guard let v = params.at(i, name), !v.isNull else { return nil }
            return try params.account(i, name)
        }
        let coldkey = try optionalAccount(0, "coldkey"), hotkey = try optionalAccount(1, "hotkey")
        var netuid: UInt16?
        if let v = params.at(2, "netuid"), !v.isNull { netuid = try params.netuid(2) }
        guard coldkey != nil || hotkey != nil || netuid != nil else { throw .params("give at least one of coldkey, hotkey, netuid") }
        let entries = state.stakeEntries(involving: coldkey ?? hotkey).filter { e in
            (coldkey == nil || e.key.coldkey == coldkey) && (hotkey == nil || e.key.hotkey == hotkey) && (netuid == nil || e.key.netuid == netuid)
        }.prefix(10_000)
        return .array(entries.map { e in
            let pool = state.subnets[e.key.netuid]?.pool
            let price = pool?.price ?? .zero
            return .object([
                ("coldkey", .string(e.key.coldkey.hex)), ("hotkey", .string(e.key.hotkey.hex)), ("netuid", .int(e.key.netuid)),
                ("alpha", .int(e.amount)), ("taoValue", .int((price * U64F64(e.amount)).floorU64)),
                ("earned", .int(state.stakeEarnings(coldkey: e.key.coldkey, hotkey: e.key.hotkey, netuid: e.key.netuid))),
                ("symbol", .string(pool?.symbol ?? "")), ("price", .string(price.decimalString())),
            ])
        })
    }

    /// What a stake (TAO in) or unstake (alpha in) would do now: output, fee, price after, and
    /// with a limit price how much fits under it.
    static func quoteJSON(_ params: RPCParams, state: ChainState) throws(RPCError) -> JSONValue {
        let netuid = try params.netuid(0)
        let kind = try params.string(1, "kind")
        let amount = try params.uint(2, "amount")
        let limit = try params.optionalUInt(3, "limitPrice")
        guard let pool = state.subnets[netuid]?.pool else { throw RPCError(RPCError.notFound, "subnet \(netuid) does not exist") }
        let min = state.params.minimumPoolReserve
        var members: [(String, JSONValue)] = [("netuid", .int(netuid)), ("kind", .string(kind)), ("amount", .int(amount)),
                                             ("price", .string(pool.price.decimalString())), ("priceFloat", .double(pool.price.doubleValue))]
        do {
            switch kind {
            case "stake":
                let q = try pool.quoteBuy(tao: amount, limit: PriceLimit.price(rao: PriceLimit.maxRao), dropFees: false, minimumReserve: min)
                members += [("out", .int(q.out)), ("fee", .int(q.fee)), ("priceAfter", .string(q.priceAfter.decimalString())),
                            ("priceAfterFloat", .double(q.priceAfter.doubleValue))]
                if let limit { members.append(("maxAtLimit", .int((try? state.maxAddAmount(netuid: netuid, limit: PriceLimit.price(rao: limit))) ?? 0))) }
            case "unstake":
                let q = try pool.quoteSell(alpha: amount, limit: PriceLimit.price(rao: PriceLimit.minRao), dropFees: false, minimumReserve: min)
                members += [("out", .int(q.out)), ("fee", .int(q.fee)), ("priceAfter", .string(q.priceAfter.decimalString())),
                            ("priceAfterFloat", .double(q.priceAfter.doubleValue))]
                if let limit { members.append(("maxAtLimit", .int((try? state.maxRemoveAmount(netuid: netuid, limit: PriceLimit.price(rao: limit))) ?? 0))) }
            default:
                throw RPCError.params("kind must be stake or unstake")
            }
        } catch let e as RPCError { throw e } catch let e as SwapError {
            members.append(("error", .string(e.dispatchError.description)))
        } catch {
            members.append(("error", .string("\(error)")))
        }
        return .object(members)
    }

    /// A hotkey's owner, take and stakers (for `delegate_getInfo`).
    static func delegateJSON(_ hotkey: AccountID, state: ChainState) -> JSONValue {
        let take = state.delegateTake(of: hotkey)
        let changed = state.takeChangedAt[hotkey]
        let limit = state.params.delegateTakeRateLimit
        let nextIncrease: JSONValue = changed.map { $0 == 0 ? JSONValue.int(state.number) : .int(max(state.number, $0.addingSaturated(limit).addingSaturated(1))) } ?? .int(state.number)
        let stakers = state.stakeEntries(involving: hotkey).filter { $0.key.hotkey == hotkey }
        return .object([
            ("hotkey", .string(hotkey.hex)), ("owner", state.owner(of: hotkey).map { .string($0.hex) } ?? .null),
            ("take", .int(take)), ("takeFraction", .double(Double(take) / 65535)),
            ("takeChangedAt", changed.map { .int($0) } ?? .null), ("nextIncreaseAt", nextIncrease),
            ("maxTake", .int(state.params.maxDelegateTake)), ("minTake", .int(state.params.minDelegateTake)),
            ("stakers", .array(stakers.map { .object([("coldkey", .string($0.key.coldkey.hex)), ("netuid", .int($0.key.netuid)), ("amount", .int($0.amount))]) })),
        ])
    }

    static func hyperparameters(_ p: SubnetParams) -> JSONValue {
        .object(Hyperparameter.allCases.map { ($0.name, .int(p.value($0))) })
    }

    static func subnetJSON(_ s: Subnet, state: ChainState) -> JSONValue {
        .object([("netuid", .int(s.netuid)), ("name", .string(s.name)), ("owner", .string(s.owner.hex)),
                 ("ownerHotkey", .string(s.ownerHotkey.hex)), ("n", .int(s.neurons.count)), ("burn", .int(s.burn)),
                 ("lastEpochBlock", .int(s.lastEpochBlock)), ("epochs", .int(s.epochCount)),
                 ("pendingEmission", .int(s.pendingServer + s.pendingValidator)),
                 ("symbol", .string(s.pool.symbol)), ("price", .string(s.pool.price.decimalString())), ("priceFloat", .double(s.pool.price.doubleValue)),
                 ("started", .bool(s.netuid == 0 || s.pool.firstEmissionBlock != 0)), ("taoIn", .int(s.pool.taoIn)),
                 ("hyperparameters", hyperparameters(s.params))])
    }

    /// The metagraph with Bittensor's short names (bittensor.md 1.9).
    static func metagraph(_ s: Subnet, state: ChainState, full: Bool) -> JSONValue {
        let weights = state.stakeWeights(netuid: s.netuid)
        let n = s.neurons
        func u16s(_ f: (Neuron) -> UInt16) -> JSONValue { .array(n.map { .double(Double(f($0)) / 65535) }) }
        var members: [(String, JSONValue)] = [
            ("netuid", .int(s.netuid)), ("n", .int(n.count)), ("block", .int(state.number)),
            ("uids", .array(n.indices.map { .int($0) })),
            ("hotkeys", .array(n.map { .string($0.hotkey.hex) })),
            ("coldkeys", .array(n.map { .string($0.coldkey.hex) })),
            ("S", .array(weights.map { .int($0.weight) })), ("AS", .array(weights.map { .int($0.alpha) })),
            ("TS", .array(weights.map { .int($0.tao) })),
            ("C", u16s(\.consensus)), ("I", u16s(\.incentive)), ("D", u16s(\.dividends)),
            ("E", .array(n.map { .int($0.emission) })), ("Tv", u16s(\.validatorTrust)),
            ("last_update", .array(n.map { .int($0.lastUpdate) })),
            ("block_at_registration", .array(n.map { .int($0.registeredAt) })),
            ("validator_permit", .array(n.map { .bool($0.validatorPermit) })),
            ("active", .array(n.map { .bool($0.active) })),
            ("axons", .array(n.map { neuron in
                guard let a = neuron.axon else { return .null }
                let host: String
                if a.ip.count == 4 { host = a.ip.map(String.init).joined(separator: ".") }
                else if a.ip.count == 16 { host = stride(from: 0, to: 16, by: 2).map { String(format: "%x", Int(a.ip[$0]) << 8 | Int(a.ip[$0 + 1])) }.joined(separator: ":") }
                else { host = "" }
                return .object([("ip", .string(host)), ("port", .int(a.port)), ("nodeId", a.nodeId.map { .string($0.hex) } ?? .null),
                                ("block", .int(a.block)), ("hotkey", .string(neuron.hotkey.hex))])
            })),
        ]
        if full {
            members.append(("W", .array(n.map { .array($0.weights.map { .array([.int($0.uid), .int($0.value)]) }) })))
            members.append(("B", .array(n.map { .array($0.bonds.map { .array([.int($0.uid), .int($0.value)]) }) })))
        }
        return .object(members)
    }
}
