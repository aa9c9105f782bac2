import Foundation
import MeshTestSupport
import Testing

/// The subnet template builds outside the repository against the SDK product, as a subnet
/// author's package would. The one slow test of this target (a debug build of the SDK's
/// modules, about 40 s on two cores the first time); its build folder is kept under the
/// repository's .build, so later runs only rebuild what changed.
@Suite("Subnet template (a package outside the repository)")
struct SubnetTemplateTests {
    @Test("Bootstrap/templates/subnet, copied out of the tree, builds against the repository and runs")
    func templateBuilds() async throws {
        let root = TestPaths.repositoryRoot
        let copy = TestPaths.temporaryDirectory("tm-subnet-template") + "/my-subnet"
        try FileManager.default.copyItem(atPath: root + "/Bootstrap/templates/subnet", toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let scratch = root + "/.build/subnet-template"
        // Off the cooperative pool: a minute of blocking there would starve the async tests
        // that share this test process.
        let build = try await withCheckedThrowingContinuation { (cont: CheckedContinuation<ProcessResult, any Error>) in
            Thread.detachNewThread {
                cont.resume(with: Result {
                    try ProcessRunner.run("/usr/bin/env", ["swift", "build", "--package-path", copy, "--scratch-path", scratch],
                                          environment: ["TENSORMESH_PATH": root], timeout: 900)
                })
            }
        }
        #expect(build.status == 0, "\(build.stdout.suffix(3000))\(build.stderr.suffix(3000))")
        guard build.status == 0 else { return }
        let binary = scratch + "/debug/MySubnet"
        for sub in ["miner", "validator"] {
            let help = try ProcessRunner.run(binary, [sub, "--help"])
            #expect(help.status == 0 && help.stdout.contains("--rpc-url") && help.stdout.contains("--netuid"), "\(help.stdout)\(help.stderr)")
        }
        let usage = try ProcessRunner.run(binary, ["validator", "--timeout", "-1"])
        #expect(usage.status == 2, "\(usage.stderr)")
    }
}
