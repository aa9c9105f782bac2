import MeshChannel
import MeshCodec
import MeshCrypto

/// The handshake's own CPU cost per side, without TCP: the node's real `SecureConnection`
/// code (Noise XX, identity payloads signed and verified, hellos sealed, opened and decoded),
/// its bytes carried between the two sides in memory, each side's calls timed with this
/// thread's CPU clock. The over-TCP figure of `meshbench channel` divides each process's
/// whole CPU by the handshakes it ran, so it also counts connect/accept/close, the event loop
/// and the kernel's loopback; this one counts only what the channel code does.
enum HandshakeOnlyBench {
    /// The crypto one side of a handshake performs, the floor it is compared to: three X25519
    /// shared secrets, one Ed25519 signature and one verification (libsodium, as the channel).
    struct Floor {
        let sk = Ed25519.PrivateKey()
        let peer = Ed25519.PrivateKey()
        let a = X25519.PrivateKey()
        let b = X25519.PrivateKey()
        let c = X25519.PrivateKey()
        let message = [UInt8](repeating: 2, count: 32)
        let signed = [UInt8](repeating: 1, count: 32)
        let peerSignature: Ed25519.Signature

        init() { self.peerSignature = self.peer.sign(self.signed) }

        func once() {
            _ = try! self.a.sharedSecret(with: self.b.publicKey)
            _ = try! self.a.sharedSecret(with: self.c.publicKey)
            _ = try! self.b.sharedSecret(with: self.c.publicKey)
            _ = self.sk.sign(self.message)
            precondition(self.peer.publicKey.isValidSignature(self.peerSignature, for: self.signed))
        }
    }

    /// Runs `count` handshakes (rounded up to whole batches) and returns the CPU microseconds
    /// per handshake of each side, and of the crypto floor per side measured between the
    /// batches (so a machine shared with other work slows both alike). Each side's work is
    /// timed in batches of `batch` connections per step, so the clock reads cost nothing
    /// measurable. Every handshake must end with both sides established and each holding
    /// the other's hello (checked: a broken channel cannot report a figure).
    static func run(count: Int, batch: Int = 50) -> (clientMicros: Double, serverMicros: Double, floorMicros: Double, handshakes: Int) {
        let genesis = [UInt8](repeating: 0x42, count: 32)
        let clientIdentity = NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        let serverIdentity = NodeIdentity(signingKey: Ed25519.PrivateKey(), noiseStatic: X25519.PrivateKey())
        let hello = Hello(genesisHash: genesis)
        var clientNanos: UInt64 = 0
        var serverNanos: UInt64 = 0
        var floorNanos: UInt64 = 0
        let floor = Floor()
        var done = 0
        func timed(_ total: inout UInt64, _ body: () -> Void) {
            let t0 = Clock.threadCPU()
            body()
            total += Clock.threadCPU() - t0
        }
        // One warm-up batch, not counted.
        var rounds = -1
        let wanted = (count + batch - 1) / batch
        while rounds < wanted {
            var clients: [SecureConnection] = []
            var servers: [SecureConnection] = []
            var toServer: [[UInt8]] = []
            var toClient: [[UInt8]] = []
            clients.reserveCapacity(batch)
            servers.reserveCapacity(batch)
            var c = UInt64(0)
            var s = UInt64(0)
            // Client: a fresh ephemeral key (as SecurePeer draws it), message 1.
            timed(&c) {
                for _ in 0..<batch {
                    let conn = SecureConnection(role: .initiator, identity: clientIdentity, hello: hello, ephemeral: X25519.PrivateKey(), now: .zero)
                    try! conn.start()
                    toServer.append(conn.takeOutbound())
                    clients.append(conn)
                }
            }
            // Server: message 1 in, message 2 (its identity) out.
            timed(&s) {
                for i in 0..<batch {
                    let conn = SecureConnection(role: .responder, identity: serverIdentity, hello: hello, ephemeral: X25519.PrivateKey(), now: .zero)
                    try! conn.receive(toServer[i], now: .zero)
                    toClient.append(conn.takeOutbound())
                    servers.append(conn)
                }
            }
            // Client: message 2 in (identity verified), message 3 and its hello out.
            timed(&c) {
                for i in 0..<batch {
                    try! clients[i].receive(toClient[i], now: .zero)
                    toServer[i] = clients[i].takeOutbound()
                    precondition(clients[i].isEstablished && clients[i].remoteNodeId == serverIdentity.nodeId)
                    _ = clients[i].takeEvents()
                }
            }
            // Server: message 3 in (identity verified), the client's hello opened and decoded, its hello out.
            timed(&s) {
                for i in 0..<batch {
                    try! servers[i].receive(toServer[i], now: .zero)
                    toClient[i] = servers[i].takeOutbound()
                    precondition(servers[i].remoteNodeId == clientIdentity.nodeId && servers[i].remoteHello == hello)
                    _ = servers[i].takeEvents()
                }
                servers.removeAll()
            }
            // Client: the server's hello in.
            timed(&c) {
                for i in 0..<batch {
                    try! clients[i].receive(toClient[i], now: .zero)
                    precondition(clients[i].remoteHello == hello)
                    _ = clients[i].takeEvents()
                }
                clients.removeAll()
            }
            var f = UInt64(0)
            timed(&f) { for _ in 0..<batch { floor.once() } }
            if rounds >= 0 {
                clientNanos += c
                serverNanos += s
                floorNanos += f
                done += batch
            }
            rounds += 1
        }
        let d = Double(done) * 1000
        return (Double(clientNanos) / d, Double(serverNanos) / d, Double(floorNanos) / d, done)
    }
}
