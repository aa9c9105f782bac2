import Foundation
import MeshTestSupport
import Testing

/// `tensormesh wallet …` as a user runs it: mnemonics, regeneration, addresses.
@Suite("Wallet commands")
struct WalletCommandTests {
    func json(_ r: ProcessResult) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
    }

    @Test("wallet create shows the mnemonic once; regen-coldkey from it gives the same coldkey and address; inspect and SS58 input")
    func mnemonicRoundTrip() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["TM_PW": "pw", "TENSORMESH_WALLETS": dir]
        let created = try ProcessRunner.run("tensormesh", ["wallet", "create", "--wallet", "w", "--hotkey", "miner", "--password-env", "TM_PW", "--json"],
                                            environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let info = self.json(created)
        let cold = try #require(info["coldkey"] as? String)
        let address = try #require(info["coldkeyAddress"] as? String)
        let mnemonic = try #require(info["mnemonic"] as? String)
        #expect(mnemonic.split(separator: " ").count == 12 && address.hasPrefix("5") && info["hotkeyEncrypted"] as? Bool == false)
        // A second hotkey needs no password (the coldkey exists, the hotkey is unencrypted) and shows no mnemonic.
        let second = try ProcessRunner.run("tensormesh", ["wallet", "create", "--wallet", "w", "--hotkey", "other", "--json"], environment: ["TENSORMESH_WALLETS": dir])
        #expect(second.status == 0 && self.json(second)["mnemonic"] is NSNull, "\(second.stdout)\(second.stderr)")

        try FileManager.default.removeItem(atPath: dir + "/w/coldkey")
        let regen = try ProcessRunner.run("tensormesh", ["wallet", "regen-coldkey", "--wallet", "w", "--mnemonic", mnemonic, "--password-env", "TM_PW", "--json"],
                                          environment: env)
        #expect(regen.status == 0, "\(regen.stderr)")
        #expect(self.json(regen)["coldkey"] as? String == cold && self.json(regen)["coldkeyAddress"] as? String == address, "\(regen.stdout)")
        let again = try ProcessRunner.run("tensormesh", ["wallet", "regen-coldkey", "--wallet", "w", "--mnemonic", mnemonic, "--password-env", "TM_PW"],
                                          environment: env)
        #expect(again.status == 1 && again.stderr.contains("--overwrite"), "\(again.stderr)")
        let typo = try ProcessRunner.run("tensormesh", ["wallet", "regen-coldkey", "--wallet", "x", "--mnemonic", mnemonic + " zoo", "--password-env", "TM_PW"],
                                         environment: env)
        #expect(typo.status == 2, "\(typo.stderr)")

        let inspect = try ProcessRunner.run("tensormesh", ["wallet", "inspect", "--wallet", "w", "--json"], environment: ["TENSORMESH_WALLETS": dir])
        let keys = self.json(inspect)["keys"] as? [[String: Any]] ?? []
        #expect(keys.count == 3 && keys.first?["address"] as? String == address && keys.first?["encrypted"] as? Bool == true, "\(inspect.stdout)")
        #expect(keys.dropFirst().allSatisfy { $0["encrypted"] as? Bool == false })
        let convert = try ProcessRunner.run("tensormesh", ["wallet", "inspect", address, "--json"], environment: ["TENSORMESH_WALLETS": dir])
        #expect(self.json(convert)["publicKey"] as? String == cold, "\(convert.stdout)")
        // An SS58 address is taken where a key is (a genesis endowment), a damaged one refused.
        let g = try ProcessRunner.run("tensormesh", ["genesis", "new", "--validators", "1", "--out", dir + "/spec", "--password-env", "TM_PW",
                                                     "--endow", "\(address):5", "--json"], environment: env)
        #expect(g.status == 0, "\(g.stderr)")
        let spec = (try? String(contentsOfFile: dir + "/spec/chain-spec.json", encoding: .utf8)) ?? ""
        #expect(spec.contains(cold), "the endowed key is in the spec")
        // (The last character replaced by another one: the address is random and may end in X.)
        let damaged = String(address.dropLast()) + (address.last == "X" ? "Y" : "X")
        let bad = try ProcessRunner.run("tensormesh", ["genesis", "new", "--validators", "1", "--out", dir + "/spec2", "--password-env", "TM_PW",
                                                       "--endow", "\(damaged):5"], environment: env)
        #expect(bad.status == 2, "\(bad.stderr)")
    }
}
