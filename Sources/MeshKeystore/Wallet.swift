import Foundation
import MeshCrypto

/// A Bittensor-style wallet on disk: one coldkey (holds funds, owns stake; encrypted, made from
/// a BIP-39 mnemonic) and named hotkeys (the identities that register on subnets and sign
/// weights and queries; unencrypted unless asked), each a key file:
///
///     <root>/<name>/coldkey
///     <root>/<name>/hotkeys/<hotkey>
///
/// The root defaults to `$TENSORMESH_WALLETS` or `~/.tensormesh/wallets`.
public struct Wallet: Sendable, Equatable {
    public let root: String
    public let name: String

    public init(name: String, root: String? = nil) {
        self.root = root ?? Wallet.defaultRoot
        self.name = name
    }

    public static var defaultRoot: String {
        if let r = ProcessInfo.processInfo.environment["TENSORMESH_WALLETS"], !r.isEmpty { return r }
        return NSHomeDirectory() + "/.tensormesh/wallets"
    }

    public var directory: String { "\(self.root)/\(self.name)" }
    public var coldkeyPath: String { "\(self.directory)/coldkey" }
    public func hotkeyPath(_ hotkey: String) -> String { "\(self.directory)/hotkeys/\(hotkey)" }

    /// Whether a name is usable as a wallet or hotkey name (a path component).
    public static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." } && s != "." && s != ".."
    }

    /// Creates the coldkey (unless it exists) from a new BIP-39 mnemonic of `words` words, and
    /// a hotkey; returns their public keys and the coldkey's mnemonic (nil when the coldkey
    /// existed: the phrase is never stored, the caller shows it once). The coldkey is encrypted
    /// under `password`; the hotkey only with `encryptHotkey` (as btcli, a hotkey is written
    /// unencrypted by default so a miner restarts unattended).
    @discardableResult
    public func create(hotkey: String, password: SecureBytes, encryptHotkey: Bool = false, words: Int = 12,
                       cost: PasswordHash.Cost = .interactive) throws -> (coldkey: Ed25519.PublicKey, hotkey: Ed25519.PublicKey, mnemonic: String?) {
        guard Wallet.isValidName(self.name), Wallet.isValidName(hotkey) else { throw KeystoreError.malformed(reason: "wallet and hotkey names are letters, digits, '-', '_' or '.'") }
        try self.makeDirectories()
        let cold: Ed25519.PublicKey
        var phrase: String?
        if FileManager.default.fileExists(atPath: self.coldkeyPath) {
            cold = try self.coldkeyPublic()
        } else {
            let p = Mnemonic.generate(words: words)
            let k = try Mnemonic.ed25519Key(phrase: p)
            try AtomicFile.write(try KeyFile.seal(k, password: password, cost: cost), to: self.coldkeyPath)
            cold = k.publicKey
            phrase = p
        }
        let h = Ed25519.PrivateKey()
        let file = encryptHotkey ? try KeyFile.seal(h, password: password, cost: cost) : try KeyFile.sealUnencrypted(h)
        try AtomicFile.write(file, to: self.hotkeyPath(hotkey))
        return (cold, h.publicKey, phrase)
    }

    /// Writes the coldkey a mnemonic stands for, encrypted under `password`; an existing
    /// coldkey is replaced only with `overwrite`. Returns its public key.
    @discardableResult
    public func regenerateColdkey(mnemonic: String, password: SecureBytes, overwrite: Bool = false,
                                  cost: PasswordHash.Cost = .interactive) throws -> Ed25519.PublicKey {
        guard Wallet.isValidName(self.name) else { throw KeystoreError.malformed(reason: "wallet names are letters, digits, '-', '_' or '.'") }
        let key: Ed25519.PrivateKey
        do { key = try Mnemonic.ed25519Key(phrase: mnemonic) } catch { throw KeystoreError.malformed(reason: error.description) }
        try self.makeDirectories()
        try AtomicFile.write(try KeyFile.seal(key, password: password, cost: cost), to: self.coldkeyPath, overwrite: overwrite)
        return key.publicKey
    }

    /// Whether the hotkey's file takes a password.
    public func hotkeyIsEncrypted(_ hotkey: String) throws -> Bool {
        try KeyFile.isEncrypted(try AtomicFile.read(self.hotkeyPath(hotkey), limit: KeyFile.maximumFileSize))
    }

    private func makeDirectories() throws {
        do {
            try FileManager.default.createDirectory(atPath: self.directory + "/hotkeys", withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch { throw KeystoreError.io(path: self.directory, reason: "\(error)") }
    }

    public func coldkeyPublic() throws -> Ed25519.PublicKey {
        try KeyFile.publicKey(of: try AtomicFile.read(self.coldkeyPath, limit: KeyFile.maximumFileSize))
    }

    public func hotkeyPublic(_ hotkey: String) throws -> Ed25519.PublicKey {
        try KeyFile.publicKey(of: try AtomicFile.read(self.hotkeyPath(hotkey), limit: KeyFile.maximumFileSize))
    }

    public func coldkey(password: SecureBytes) throws -> Ed25519.PrivateKey {
        try KeyFile.open(try AtomicFile.read(self.coldkeyPath, limit: KeyFile.maximumFileSize), password: password)
    }

    public func hotkey(_ hotkey: String, password: SecureBytes) throws -> Ed25519.PrivateKey {
        try KeyFile.open(try AtomicFile.read(self.hotkeyPath(hotkey), limit: KeyFile.maximumFileSize), password: password)
    }

    /// The hotkey names of this wallet.
    public func hotkeyNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: self.directory + "/hotkeys")) ?? [])
            .filter { Wallet.isValidName($0) && !$0.contains(".tmp-") }.sorted()
    }

    /// The wallets under `root`.
    public static func all(root: String? = nil) -> [Wallet] {
        let r = root ?? Wallet.defaultRoot
        return ((try? FileManager.default.contentsOfDirectory(atPath: r)) ?? []).sorted()
            .map { Wallet(name: $0, root: r) }
            .filter { FileManager.default.fileExists(atPath: $0.coldkeyPath) }
    }
}
