import Foundation
import MeshClient
import MeshCodec
import MeshTestSupport
import Testing

/// Node processes on separate addresses: one Linux network namespace each, joined by a bridge
/// (what `Bootstrap/devnet up --netns` builds). Needs root and iproute2; skipped otherwise.
@Suite("Separate hosts (network namespaces)", .serialized)
struct NetnsEndToEndTests {
    static let ipTool = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var available: Bool {
        guard getuid() == 0, let ip = ipTool else { return false }
        // Root without CAP_NET_ADMIN (many containers) cannot create namespaces or links.
        guard ((try? ProcessRunner.run(ip, ["netns", "add", "tmt-probe"]))?.status ?? 1) == 0 else { return false }
        // `ip netns exec` remounts / as a slave first, which a chroot whose / is no mount point refuses.
        let exec = ((try? ProcessRunner.run(ip, ["netns", "exec", "tmt-probe", ip, "link", "set", "lo", "up"]))?.status ?? 1) == 0
        _ = try? ProcessRunner.run(ip, ["netns", "del", "tmt-probe"])
        guard exec else { return false }
        let link = ((try? ProcessRunner.run(ip, ["link", "add", "tmtprobe0", "type", "bridge"]))?.status ?? 1) == 0
        _ = try? ProcessRunner.run(ip, ["link", "del", "tmtprobe0"])
        return link
    }

    /// Namespaces `tmt-0…` on 10.78.0.0/24 behind bridge `tmtbr0`; removed by `teardown`.
    struct Hosts {
        let ip: String
        let count: Int
        func ns(_ i: Int) -> String { "tmt-\(i)" }
        func address(_ i: Int) -> String { "10.78.0.\(10 + i)" }

        func sh(_ args: [String]) throws {
            let r = try ProcessRunner.run(self.ip, args)
            if r.status != 0 { throw ProcessFailure("ip \(args.joined(separator: " ")): \(r.stderr)") }
        }

        func setUp() throws {
            self.tearDown()
            try self.sh(["link", "add", "tmtbr0", "type", "bridge"])
            try self.sh(["addr", "add", "10.78.0.1/24", "dev", "tmtbr0"])
            try self.sh(["link", "set", "tmtbr0", "up"])
            for i in 0..<self.count {
                try self.sh(["netns", "add", self.ns(i)])
                try self.sh(["link", "add", "tmtv\(i)", "type", "veth", "peer", "name", "tmtp\(i)"])
                try self.sh(["link", "set", "tmtp\(i)", "netns", self.ns(i)])
                try self.sh(["link", "set", "tmtv\(i)", "master", "tmtbr0", "up"])
                try self.sh(["netns", "exec", self.ns(i), "ip", "addr", "add", self.address(i) + "/24", "dev", "tmtp\(i)"])
                try self.sh(["netns", "exec", self.ns(i), "ip", "link", "set", "tmtp\(i)", "up"])
                try self.sh(["netns", "exec", self.ns(i), "ip", "link", "set", "lo", "up"])
            }
        }

        func tearDown() {
            for i in 0..<self.count {
                _ = try? ProcessRunner.run(self.ip, ["netns", "del", self.ns(i)])
                // A veth whose peer never reached its namespace (setUp stopped in between) stays here.
                _ = try? ProcessRunner.run(self.ip, ["link", "del", "tmtv\(i)"])
            }
            _ = try? ProcessRunner.run(self.ip, ["link", "del", "tmtbr0"])
        }
    }

    @Test("nodes on separate addresses learn their public address from discovery, find each other and finalize", .enabled(if: available))
    func separateHosts() async throws {
        let hosts = Hosts(ip: Self.ipTool!, count: 3)
        defer { hosts.tearDown() }   // also when setUp fails half-way: no bridge, veth or namespace left behind
        try hosts.setUp()
        let dir = TestPaths.temporaryDirectory()
        let env = ["TM_PW": "pw"]
        let g = try ProcessRunner.run("tensormesh", ["genesis", "new", "--validators", "1", "--out", dir + "/spec", "--password-env", "TM_PW",
                                                     "--slot-ms", "500", "--host", hosts.address(0), "--base-port", "30333"], environment: env)
        #expect(g.status == 0, "\(g.stderr)")
        var nodes: [BackgroundProcess] = []
        defer { nodes.forEach { $0.stop() } }
        let tm = TestPaths.productsDirectory + "/tensormesh"
        for i in 0..<3 {
            // Every node uses the same ports on its own address, and listens on the wildcard:
            // its address in the node record comes from what peers observe.
            var args = ["netns", "exec", hosts.ns(i), tm, "run", "--chain", dir + "/spec/chain-spec.json", "--base-path", dir + "/n\(i)",
                        "--port", "30333", "--rpc-port", "9944", "--rpc-external", "--rpc-methods", "unsafe", "--prometheus-port", "0", "--name", "host\(i)", "--log", "debug"]
            if i == 0 { args += ["--key", dir + "/spec/validator-0.key", "--password-env", "TM_PW", "--validator"] }
            nodes.append(try BackgroundProcess(hosts.ip, args, environment: env, log: dir + "/n\(i).log"))
        }
        let clients = try (0..<3).map { try ChainClient(url: "http://\(hosts.address($0)):9944") }
        for (i, c) in clients.enumerated() {
            let ok = try c.waitUntil(timeout: 60) { ((try? c.rpc.call("system_health"))?["peers"]?.uint64 ?? 0) >= 2 }
            #expect(ok, "host \(i) has fewer than 2 peers: \(nodes[i].output.suffix(1500))")
        }
        #expect(try clients[2].waitUntil(timeout: 30) { try clients[2].finalized() >= 3 })
        // The full nodes published their observed addresses, and peers list them by those.
        // Two peers at different addresses must report the same address before a node trusts
        // it (revalidation pings reach the second one within seconds).
        for i in 1..<3 {
            let learned = try clients[i].waitUntil(timeout: 30) { nodes[i].output.contains("Public address learned from peers ip=\(hosts.address(i))") }
            #expect(learned,
                    "host \(i) did not learn \(hosts.address(i)): \(nodes[i].output.suffix(1500))")
        }
        let peers = try clients[0].rpc.call("system_peers").array ?? []
        let addresses = peers.compactMap { $0["address"]?.string }
        #expect(addresses.contains { $0.contains("@\(hosts.address(1)):") } && addresses.contains { $0.contains("@\(hosts.address(2)):") },
                "validator's peers: \(addresses)")
    }
}
