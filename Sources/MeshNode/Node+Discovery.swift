import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshNetwork
import MeshNodeCore
import MeshSockets

extension Node {
    /// Starts encrypted discovery on the p2p port (UDP): the node's signed record, the
    /// bootnodes pinged, discovered nodes handed to the core's peer manager.
    func startDiscovery() throws {
        guard self.config.discovery else { return }
        let port = self.listenAddress?.port ?? self.config.port
        var dc = DiscoveryConfig(genesis: self.chain.genesisHash.bytes)
        dc.refreshInterval = .seconds(20)
        let ip = Self.advertisedIP(self.config.listenHost)
        let key = self.identity.signingKey
        let record = NodeRecord(key: key, seq: UInt64(SystemTimeSource.wallMillis() / 1000), ip: ip, tcpPort: port, udpPort: port,
                                roles: self.config.roles.rawValue, genesis: self.chain.genesisHash.bytes)
        let core = DiscoveryCore(key: key, record: record, config: dc, random: { SecureRandom.bytes($0) })
        let service = DiscoveryService(loop: self.loop, core: core)
        let bind = SocketAddress(numericHost: self.config.listenHost, port: port) ?? SocketAddress(numericHost: "0.0.0.0", port: port)!
        try service.start(on: bind)
        service.onEvent = { [unowned self] e in self.discoveryEvent(e) }
        self.discovery = service
        // Numeric bootnodes now; named ones once resolved off the loop (resolveBootnodeNames).
        for b in self.config.bootnodes where b.nodeId != self.nodeId {
            if let sa = SocketAddress(numericHost: b.host, port: b.port) { service.addBootnode(id: b.nodeId, endpoint: Endpoint(sa)) }
        }
        // Fill the table early rather than at the first refresh.
        self.loop.schedule(after: 1_000_000_000) { [weak self] in
            guard let self, let d = self.discovery else { return }
            d.lookup(target: self.nodeId)
        }
        self.log.info("Discovery on UDP", ["port": "\(port)", "record": "seq \(record.seq)\(ip.isEmpty ? " (address learned from peers)" : "")"])
    }

    /// The IP to publish: the listen address unless it is a wildcard (then learned from pongs).
    static func advertisedIP(_ host: String) -> [UInt8] {
        guard let a = SocketAddress(numericHost: host, port: 1), a.ip != [0, 0, 0, 0], a.ip != [UInt8](repeating: 0, count: 16) else { return [] }
        return a.ip
    }

    /// Discovery's findings, as the core's peer manager takes them.
    func discoveryEvent(_ e: DiscoveryEvent) {
        switch e {
        case .nodeAdded(let r, let seen):
            // Dialled where the node answered discovery (its record's IP is only a claim: a
            // record could point us at any host), on the TCP port its record names.
            guard r.genesis == self.chain.genesisHash.bytes, r.tcpPort != 0, !seen.isUnusable else { return }
            let host = SocketAddress(ip: seen.ip, port: r.tcpPort).host
            self.core.discovered(NodeAddress(nodeId: r.nodeId, host: host, port: r.tcpPort), now: self.clock.now())
        case .pong(let reporter, let source, _, let observed, _):
            // Our public address is learned only while the record has none.
            guard let d = self.discovery, d.core.record.ip.isEmpty else { return }
            self.core.addressObserved(observed.ip, reporterIP: source.ip, reporter: reporter)
        case .nodeRemoved, .nodesAnswered, .requestFailed, .lookupFinished:
            break
        }
        self.perform()
    }
}
