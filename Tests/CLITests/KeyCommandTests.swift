import Foundation
import MeshTestSupport
import Testing

@Suite("tensormesh key", .serialized)
struct KeyCommandTests {
    @Test("generate then inspect with the right and the wrong password")
    func generateInspect() throws {
        let dir = TestPaths.temporaryDirectory()
        let file = dir + "/node.key"
        let gen = try ProcessRunner.run("tensormesh", ["key", "generate", "--out", file, "--password-env", "TM_PW", "--json"],
                                        environment: ["TM_PW": "s3cret"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(gen.stdout.utf8)) as! [String: String]
        let nodeId = info["nodeId"]!
        #expect(nodeId.count == 64)
        #expect(!gen.stdout.contains("s3cret") && !gen.stderr.contains("s3cret"))

        let ok = try ProcessRunner.run("tensormesh", ["key", "inspect", file, "--password-env", "TM_PW"], environment: ["TM_PW": "s3cret"])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains(nodeId))

        let bad = try ProcessRunner.run("tensormesh", ["key", "inspect", file, "--password-env", "TM_PW"], environment: ["TM_PW": "nope"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("wrong password"))

        // Overwriting is refused.
        let again = try ProcessRunner.run("tensormesh", ["key", "generate", "--out", file, "--password-env", "TM_PW"], environment: ["TM_PW": "x"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists"))

        // A truncated file is a clear error with exit code 1.
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: dir + "/half.key"))
        let trunc = try ProcessRunner.run("tensormesh", ["key", "inspect", dir + "/half.key", "--password-env", "TM_PW"], environment: ["TM_PW": "s3cret"])
        #expect(trunc.status == 1)
        #expect(trunc.stderr.contains("not a valid key file"))
    }

    @Test("usage errors exit with 2, help with 0")
    func exitCodes() throws {
        #expect(try ProcessRunner.run("tensormesh", ["key", "generate"]).status == 2)
        #expect(try ProcessRunner.run("tensormesh", ["--bogus"]).status == 2)
        #expect(try ProcessRunner.run("tensormesh", ["key", "--help"]).status == 0)
        let noPw = try ProcessRunner.run("tensormesh", ["key", "generate", "--out", TestPaths.temporaryDirectory() + "/k"])
        #expect(noPw.status == 1)
        #expect(noPw.stderr.contains("no password"))
        let unset = try ProcessRunner.run("tensormesh", ["key", "inspect", "/nonexistent", "--password-env", "TM_UNSET_VAR_X"])
        #expect(unset.status == 1)
    }
}
