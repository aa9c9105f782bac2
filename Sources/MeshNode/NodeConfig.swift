import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshNodeCore

/// Everything `tensormesh run` is told.
public struct NodeConfig: Sendable {
    public var basePath: String
    public var spec: ChainSpec
    public var listenHost = "0.0.0.0"
    public var port: UInt16 = 30333
    public var bootnodes: [NodeAddress] = []
    /// JSON-RPC over HTTP (nil disables).
    public var rpcPort: UInt16? = 9944
    public var rpcHost = "127.0.0.1"
    /// Prometheus metrics (nil disables).
    public var prometheusPort: UInt16? = 9615
    public var prometheusHost = "127.0.0.1"
    public var validator = false
    public var name = "tensormesh"
    public var logLevel: LogLevel = .info
    /// Outbound connections the node keeps, and inbound ones it accepts.
    public var targetOutbound = 8
    public var maxInbound = 32
    public var roles: NodeRoles = .full
    /// Relay blocks (and finality) only: do not subscribe to transaction gossip. Compact
    /// blocks are completed by fetching their transactions from the announcing peer.
    public var blocksOnly = false
    /// Subnets whose gossip topics (`subnet/<netuid>`) this node joins and relays.
    public var subnetTopics: [UInt16] = []
    /// Run encrypted discovery on the p2p port (UDP).
    public var discovery = true
    /// Seconds between informant lines.
    public var informantInterval: Double = 5
    /// Base fee used for the node's own transactions (equivocation reports).
    public var maxRequestBody = 1 << 20
    /// Browser origins allowed to call JSON-RPC (`--rpc-cors`).
    public var rpcCors = CORSPolicy()
    /// Threads that verify blocks' signatures ahead of import (`SignatureWorkerPool`); 0
    /// verifies on the event loop only. Default: one per core.
    public var signatureWorkers = ProcessInfo.processInfo.activeProcessorCount

    public init(basePath: String, spec: ChainSpec) {
        self.basePath = basePath
        self.spec = spec
    }
}
