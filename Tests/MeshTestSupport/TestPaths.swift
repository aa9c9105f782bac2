import Foundation

/// Locations inside the repository, for tests that read vectors or run built binaries.
public enum TestPaths {
    /// The repository root (the directory holding Package.swift).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        return FileManager.default.currentDirectoryPath
    }()

    /// The Python with the test peers' packages: Bootstrap/setup's virtual environment
    /// (.build/venv), else whatever `python3` is on PATH.
    public static var python: String {
        let venv = repositoryRoot + "/.build/venv/bin/python3"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
    }

    /// A file under Tests/Vectors.
    public static func vector(_ name: String) -> String { repositoryRoot + "/Tests/Vectors/" + name }

    /// Reads a vector file as JSON.
    public static func json(_ name: String) throws -> Any {
        let data = try Data(contentsOf: URL(fileURLWithPath: vector(name)))
        return try JSONSerialization.jsonObject(with: data)
    }

    /// The directory holding the built products of the current build (debug or release).
    public static var productsDirectory: String {
        // Test bundles run from .build/<triple>/<config>/; the executables sit beside them.
        let bundle = Bundle.main.bundleURL
        var candidates: [URL] = [bundle, bundle.deletingLastPathComponent()]
        if let exe = ProcessInfo.processInfo.arguments.first {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        for c in candidates where FileManager.default.fileExists(atPath: c.appendingPathComponent("tensormesh").path) {
            return c.path
        }
        return repositoryRoot + "/.build/debug"
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ prefix: String = "tm-test") -> String {
        let path = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Hex helpers for test literals.
public func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s.utf8).filter { $0 != UInt8(ascii: " ") }
    if chars.count % 2 == 1 { chars.insert(UInt8(ascii: "0"), at: 0) }
    var i = 0
    while i < chars.count {
        out.append(UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16)!)
        i += 2
    }
    return out
}
