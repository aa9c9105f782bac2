import Foundation
import MeshChain
import MeshChannel
import MeshCrypto
import MeshDiscovery
import MeshNetwork
import MeshSockets

extension Node {
    /// Starts encrypted discovery on the p2p port (UDP): the node's signed record, the
    /// bootnodes pinged, discovered nodes fed to the peer manager.
    func startDiscovery() throws {
        guard self.config.discovery else { return }
        let port = self.listenAddress?.port ?? self.config.port
        var dc = DiscoveryConfig(genesis: self.chain.genesisHash.bytes)
        dc.refreshInterval = 20_000_000_000
        let ip = Self.advertisedIP(self.config.listenHost)
        let key = self.key
        let roles = self.config.roles.rawValue
        let genesis = self.chain.genesisHash.bytes
        let record = NodeRecord(key: key, seq: UInt64(Node.wallClockMillis() / 1000), ip: ip, tcpPort: port, udpPort: port, roles: roles, genesis: genesis)
        let core = DiscoveryCore(key: key, record: record, config: dc, random: { SecureRandom.bytes($0) })
        let service = DiscoveryService(loop: self.loop, core: core)
        let bindHost = self.config.listenHost
        let bind = SocketAddress(numericHost: bindHost, port: port) ?? SocketAddress(numericHost: "0.0.0.0", port: port)!
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

    func discoveryEvent(_ e: DiscoveryEvent) {
        switch e {
        case .nodeAdded(let r, let seen):
            // Dialled where the node answered discovery (its record's IP is only a claim: a
            // record could point us at any host), on the TCP port its record names.
            guard r.genesis == self.chain.genesisHash.bytes, r.tcpPort != 0, !seen.isUnusable else { return }
            let host = SocketAddress(ip: seen.ip, port: r.tcpPort).host
            // A verified record signed by the node itself is the authority on its port: it
            // replaces a stale address from a bootnode list, a peer exchange or the peer cache.
            let addr = NodeAddress(nodeId: r.nodeId, host: host, port: r.tcpPort)
            if let old = self.knownAddresses[r.nodeId] {
                if old != addr {
                    self.knownAddresses[r.nodeId] = addr
                    // A ban (a long back-off) is not lifted by a new address.
                    if (self.dialing[r.nodeId] ?? 0) <= EventLoop.now() &+ 10_000_000_000 { self.dialing[r.nodeId] = nil }
                    self.log.debug("peer address updated from its record", ["node": r.nodeId.hex.prefix(16).description, "address": addr.description])
                }
            } else if self.rememberAddress(addr) {
                self.counters.discovered += 1
            }
        case .pong(let reporter, let source, _, let observed, _):
            // Learn our public address from what peers see: reporters at two different
            // addresses (IPv6: /64s) must agree — one peer, or many ids behind one address,
            // repeating a claim prove nothing — or one of the bootnodes the operator gave us
            // must report it. The candidate table is small and bounded.
            guard let d = self.discovery, d.core.record.ip.isEmpty else { return }
            let fromBootnode = self.config.bootnodes.contains { $0.nodeId == reporter }
            let learned = self.addressVotes.observe(observed.ip, reporterIP: source.ip, fromBootnode: fromBootnode)
            self.log.debug("address observed by a peer", ["observed": observed.description, "reporter": source.description,
                                                          "reporters": "\(self.addressVotes.reporters(of: observed.ip))"])
            if let ip = learned {
                let key = self.key
                let old = d.core.record
                d.core.updateRecord { seq in
                    NodeRecord(key: key, seq: seq, ip: ip, tcpPort: old.tcpPort, udpPort: old.udpPort, roles: old.roles, genesis: old.genesis)
                }
                self.log.info("Public address learned from peers", ["ip": Endpoint(ip: ip, port: old.tcpPort).description])
            }
        case .nodeRemoved, .nodesAnswered, .requestFailed, .lookupFinished:
            break
        }
    }

    /// Picks addresses to dial: random order, and for eclipse resistance at most one outbound
    /// peer per /24 (IPv4) or /48 until every other candidate is used.
    func dialCandidates(connected: Set<AccountID>, now: UInt64, budget: Int) -> [NodeAddress] {
        var usedNets = Set(self.host.peers.values.filter { !$0.isInbound }.map { Endpoint($0.socket.remoteAddress).subnet })
        var pool = self.knownAddresses.values.filter { a in
            !connected.contains(a.nodeId) && a.nodeId != self.nodeId && (self.dialing[a.nodeId].map { now >= $0 } ?? true)
        }
        pool.shuffle()
        var picked: [NodeAddress] = []
        var later: [NodeAddress] = []
        for a in pool {
            guard picked.count < budget else { break }
            let net = SocketAddress(numericHost: a.host, port: a.port).map { Endpoint($0).subnet }
            let local = SocketAddress(numericHost: a.host, port: a.port).map { Endpoint($0).isLocal } ?? false
            if let net, !local, usedNets.contains(net) {
                later.append(a)
                continue
            }
            if let net { usedNets.insert(net) }
            picked.append(a)
        }
        for a in later where picked.count < budget { picked.append(a) }
        return picked
    }
}
