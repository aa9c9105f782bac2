// swift-tools-version:6.1
// A subnet of your own, built against Tensormesh's subnet SDK (the library product
// `MeshSubnet`). Copy this folder anywhere; point TENSORMESH_PATH at a checkout of Tensormesh
// (default: ../tensormesh beside this folder), or replace the path dependency with
//     .package(url: "https://…/tensormesh.git", branch: "main")
// and `package: "tensormesh"` below.
import Foundation
import PackageDescription

let tensormesh = Context.environment["TENSORMESH_PATH"] ?? "../tensormesh"
// SwiftPM names a path dependency after its last path component.
let tensormeshPackage = URL(fileURLWithPath: tensormesh).standardizedFileURL.lastPathComponent.lowercased()

let package = Package(
    name: "MySubnet",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: tensormesh)],
    targets: [
        .executableTarget(
            name: "MySubnet",
            dependencies: [.product(name: "MeshSubnet", package: tensormeshPackage)],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
