// swift-tools-version:6.1
import PackageDescription

// Tensormesh: one target per layer of ARCHITECTURE.md; arrows point down only.
// The C modules (CSodium, COpenSSL, CLZ4) are imported only by MeshCrypto; CSQLite only
// by MeshStore.

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Tensormesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tensormesh", targets: ["tensormesh"]),
        .executable(name: "meshprobe", targets: ["meshprobe"]),
        .executable(name: "tmsubnet", targets: ["tmsubnet"]),
        .executable(name: "meshbench", targets: ["meshbench"]),
        .executable(name: "meshsim", targets: ["meshsim"]),
        .executable(name: "meshfuzz", targets: ["meshfuzz"]),
        .library(name: "MeshCrypto", targets: ["MeshCrypto"]),
        .library(name: "MeshCodec", targets: ["MeshCodec"]),
        // The subnet SDK, for subnets built outside this repository (Bootstrap/templates/subnet).
        .library(name: "MeshSubnet", targets: ["MeshSubnet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // System C libraries (module maps only).
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Primitives.
        .target(name: "MeshCodec", swiftSettings: strict),
        .target(name: "MeshCrypto", dependencies: ["CSodium", "COpenSSL", "CLZ4", "MeshCodec"], swiftSettings: strict),
        .target(name: "MeshKeystore", dependencies: ["MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // Socket layer: epoll loop on a Dispatch queue, TCP, UDP, limits.
        .target(name: "CSystemShims"),
        .target(name: "MeshSockets", dependencies: ["CSystemShims"], swiftSettings: strict),

        // Secure channel (sans-IO): Noise, framing, streams.
        .target(name: "MeshChannel", dependencies: ["MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // Networking runtime: secure peers over the socket layer, discovery, peer manager.
        .target(name: "MeshNetwork", dependencies: ["MeshSockets", "MeshChannel", "MeshDiscovery", "MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // The deterministic network simulator (test support, and the meshsim tool).
        .target(name: "MeshSim", dependencies: ["MeshNodeCore", "MeshFinality", "MeshDiscovery", "MeshGossip", "MeshChain", "MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // The node core (sans-IO): peer manager, sync, block relay, production, and the glue
        // between chain, gossip and finality. The node binary and the simulator run it.
        .target(
            name: "MeshNodeCore",
            dependencies: ["MeshChain", "MeshFinality", "MeshGossip", "MeshDiscovery", "MeshChannel", "MeshCrypto", "MeshCodec"],
            swiftSettings: strict),

        // HTTP/1.1 requests and WebSocket frames (sans-IO codecs), for the RPC server and client.
        .target(name: "MeshHTTP", dependencies: ["MeshCrypto"], swiftSettings: strict),

        // The node: a thin driver (sockets, timer, store, JSON-RPC, metrics, logs) over the core.
        .target(
            name: "MeshNode",
            dependencies: ["MeshNodeCore", "MeshDiscovery", "MeshGossip",
                "MeshNetwork", "MeshSockets", "MeshChannel", "MeshChain", "MeshStore", "MeshFinality", "MeshIncentive",
                "MeshCrypto", "MeshCodec", "MeshHTTP", .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ],
            swiftSettings: strict),

        // Incentive engine (pure).
        .target(name: "MeshIncentive", dependencies: ["MeshCodec"], swiftSettings: strict),

        // Chain: blocks, transactions, the subnet state machine (sans-IO), and its store.
        .target(name: "MeshChain", dependencies: ["MeshIncentive", "MeshCrypto", "MeshCodec"], swiftSettings: strict),
        .target(name: "MeshStore", dependencies: ["CSQLite", "MeshChain", "MeshCodec"], swiftSettings: strict),

        // Finality gadget (sans-IO).
        .target(name: "MeshFinality", dependencies: ["MeshChain", "MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // Encrypted peer discovery (sans-IO): records, packets, Kademlia table, lookups. Its UDP
        // driver is in MeshNetwork.
        .target(name: "MeshDiscovery", dependencies: ["MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // Gossip (gossipsub-style pub/sub with IDONTWANT preambles), sans-IO.
        .target(name: "MeshGossip", dependencies: ["MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // Miner query routing: axon (server), dendrite (client), relay.
        .target(name: "MeshQuery", dependencies: ["MeshNetwork", "MeshChannel", "MeshSockets", "MeshCrypto", "MeshCodec", "MeshHTTP"], swiftSettings: strict),

        // Client of a node's JSON-RPC (CLI, SDK, tools).
        .target(name: "MeshClient", dependencies: ["MeshChain", "MeshCodec", "MeshCrypto", "MeshHTTP"], swiftSettings: strict),

        // The subnet SDK: synapses, miner, validator loop.
        .target(
            name: "MeshSubnet",
            dependencies: ["MeshQuery", "MeshClient", "MeshChain", "MeshSockets", "MeshCrypto", "MeshCodec", "MeshKeystore", "MeshCLI",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),

        // The two example markets shipped with the repository (run by the devnet).
        .target(name: "ExampleSubnets", dependencies: ["MeshSubnet", "MeshCrypto", "MeshCodec"], swiftSettings: strict),

        // The apps gateway: end users' keyed HTTP API routed to subnets' best miners.
        .target(
            name: "MeshGateway",
            dependencies: ["MeshSubnet", "ExampleSubnets", "MeshQuery", "MeshClient", "MeshChain", "MeshCodec", "MeshCrypto", "MeshKeystore",
                           "MeshSockets", "MeshHTTP", .product(name: "FlyingFox", package: "FlyingFox"), .product(name: "FlyingSocks", package: "FlyingFox")],
            swiftSettings: strict),

        // Command-line support shared by the executables.
        .target(
            name: "MeshCLI",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser"), "MeshCodec", "MeshCrypto", "MeshClient"],
            swiftSettings: strict),

        // Executables.
        .executableTarget(
            name: "tensormesh",
            dependencies: [
                "MeshCLI", "MeshKeystore", "MeshCrypto", "MeshCodec", "MeshIncentive", "MeshNode", "MeshNodeCore", "MeshChain", "MeshChannel",
                "MeshSockets", "MeshNetwork", "MeshFinality", "MeshStore", "MeshClient", "MeshQuery", "MeshGateway", "MeshSubnet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "tmsubnet",
            dependencies: [
                "ExampleSubnets", "MeshSubnet", "MeshQuery", "MeshClient", "MeshCLI", "MeshKeystore", "MeshCrypto", "MeshChain", "MeshSockets",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "meshprobe",
            dependencies: [
                "MeshCLI", "MeshCrypto", "MeshCodec", "MeshNode", "MeshNodeCore", "MeshNetwork", "MeshChannel", "MeshSockets", "MeshDiscovery", "MeshChain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/meshprobe",
            swiftSettings: strict),
        .executableTarget(
            name: "meshsim",
            dependencies: ["MeshSim", "MeshNodeCore", "MeshFinality", "MeshCLI", "MeshCodec", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/meshsim",
            swiftSettings: strict),
        .executableTarget(
            name: "meshbench",
            dependencies: [
                "MeshCLI", "MeshCrypto", "MeshCodec", "MeshIncentive", "MeshChannel", "MeshSockets", "MeshNetwork", "MeshQuery", "MeshClient", "MeshChain", "MeshKeystore", "MeshStore", "MeshNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/meshbench",
            swiftSettings: strict),

        // Fuzz targets (a library, shared by the libFuzzer driver and the regression tests).
        .target(
            name: "MeshFuzz",
            dependencies: ["MeshChain", "MeshChannel", "MeshCodec", "MeshCrypto", "MeshDiscovery", "MeshFinality", "MeshGossip",
                           "MeshNode", "MeshNodeCore", "MeshQuery", "MeshClient", "MeshKeystore", "MeshSockets", "MeshHTTP"],
            path: "Tools/fuzz/Targets",
            swiftSettings: strict),
        .executableTarget(name: "meshfuzz", dependencies: ["MeshFuzz"], path: "Tools/fuzz/Driver", swiftSettings: strict),

        // Tests.
        .target(name: "MeshTestSupport", dependencies: ["MeshCodec"], path: "Tests/MeshTestSupport", swiftSettings: strict),
        .testTarget(name: "MeshCodecTests", dependencies: ["MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshCryptoTests", dependencies: ["MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshKeystoreTests", dependencies: ["MeshKeystore", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshIncentiveTests", dependencies: ["MeshIncentive", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshChannelTests", dependencies: ["MeshChannel", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshNetworkTests", dependencies: ["MeshNetwork", "MeshSockets", "MeshChannel", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshChainTests", dependencies: ["MeshChain", "MeshStore", "MeshIncentive", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshFinalityTests", dependencies: ["MeshFinality", "MeshSim", "MeshChain", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshDiscoveryTests", dependencies: ["MeshDiscovery", "MeshNetwork", "MeshSim", "MeshSockets", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshGossipTests", dependencies: ["MeshGossip", "MeshSim", "MeshCodec", "MeshCrypto", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "MeshQueryTests", dependencies: ["MeshQuery", "MeshNetwork", "MeshSockets", "MeshChannel", "MeshCrypto", "MeshCodec", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SubnetTests",
            dependencies: ["ExampleSubnets", "MeshSubnet", "MeshKeystore", "MeshCrypto", "MeshQuery", "MeshSockets", "MeshCodec", "MeshTestSupport"],
            swiftSettings: strict),
        .testTarget(name: "EndToEndTests", dependencies: ["MeshClient", "MeshChain", "MeshCodec", "MeshCrypto", "MeshKeystore", "MeshTestSupport", "MeshNetwork", "MeshChannel", "MeshSockets", "MeshGossip", "MeshNode", "MeshNodeCore", "MeshFinality", "MeshQuery"], swiftSettings: strict),
        .testTarget(
            name: "MeshGatewayTests",
            dependencies: ["MeshGateway", "MeshSubnet", "ExampleSubnets", "MeshQuery", "MeshSockets", "MeshCrypto", "MeshCodec", "MeshTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "MeshNodeCoreTests",
            dependencies: ["MeshNodeCore", "MeshSim", "MeshChain", "MeshChannel", "MeshCodec", "MeshCrypto", "MeshFinality", "MeshGossip", "MeshTestSupport"],
            swiftSettings: strict),
        .testTarget(name: "MeshNodeTests", dependencies: ["MeshNode", "MeshNodeCore", "MeshHTTP", "MeshClient", "MeshChannel", "MeshChain", "MeshCodec", "MeshCrypto", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["MeshFuzz", "MeshTestSupport"], swiftSettings: strict),
        .testTarget(name: "CLITests", dependencies: ["MeshTestSupport", "MeshCodec"], swiftSettings: strict),
        // meshbench's own arithmetic (the channel's CPU ceiling), through @testable import.
        .testTarget(name: "MeshBenchTests", dependencies: ["meshbench"], swiftSettings: strict),
    ]
)
