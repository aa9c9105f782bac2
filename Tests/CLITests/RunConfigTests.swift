import Foundation
import MeshTestSupport
import Testing

/// `tensormesh run`: every flag has a config-file key.
@Suite("run's config file")
struct RunConfigTests {
    @Test("every long option of run (but --config) is a key a config file may hold")
    func everyFlagHasAKey() throws {
        let help = try ProcessRunner.run("tensormesh", ["run", "--help"])
        #expect(help.status == 0)
        let pattern = try NSRegularExpression(pattern: "--(?:\\[no-\\])?([a-z][a-z0-9-]*)")
        var options = Set<String>()
        for m in pattern.matches(in: help.stdout, range: NSRange(help.stdout.startIndex..., in: help.stdout)) {
            options.insert((help.stdout as NSString).substring(with: m.range(at: 1)))
        }
        options.subtract(["config", "help", "version"])
        options = options.filter { !$0.hasPrefix("no-") }
        #expect(options.count >= 25, "\(options.sorted())")
        func camel(_ s: String) -> String {
            let parts = s.split(separator: "-")
            return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Every key, null (not set), and a chain that does not exist: the file is read, then
        // the spec is missing. An unknown key would be refused before that.
        var members = options.sorted().map { "\"\(camel($0))\": null" }
        members.removeAll { $0.hasPrefix("\"chain\"") }
        members.append("\"chain\": \"\(dir)/missing-spec.json\"")
        try ("{" + members.joined(separator: ",\n") + "}").write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let r = try ProcessRunner.run("tensormesh", ["run", "--config", dir + "/config.json", "--base-path", dir + "/node"])
        #expect(!r.stderr.contains("unknown key"), "\(r.stderr)")
        #expect(r.stderr.contains("missing-spec.json"), "\(r.stderr)")
        // A typo is refused, naming the key.
        try #"{"rpcPrt": 1}"#.write(toFile: dir + "/typo.json", atomically: true, encoding: .utf8)
        let typo = try ProcessRunner.run("tensormesh", ["run", "--config", dir + "/typo.json"])
        #expect(typo.status == 2 && typo.stderr.contains("rpcPrt"), "\(typo.stderr)")
        // The example config shipped for the systemd unit holds only known keys.
        let example = try ProcessRunner.run("tensormesh", ["run", "--config", TestPaths.repositoryRoot + "/Bootstrap/tensormesh.json",
                                                           "--chain", dir + "/missing-spec.json", "--base-path", dir + "/node2"])
        #expect(!example.stderr.contains("unknown key") && example.stderr.contains("missing-spec.json"), "\(example.stderr)")
    }
}
