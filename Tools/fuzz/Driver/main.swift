import Foundation
import MeshFuzz

// meshfuzz: the fuzz targets' driver (docs/fuzzing.md; `Bootstrap/fuzz` builds and runs it).
//
//   meshfuzz --list                      the targets
//   meshfuzz --write-seeds DIR           writes each target's seeds to DIR/<target>/
//   meshfuzz TARGET [libFuzzer flags] [CORPUS…]   fuzz (in a build with -DFUZZING)
//   meshfuzz TARGET FILE…                runs each file once (any build: regressions)
//
// Child processes libFuzzer starts (-merge, -fork, -jobs) find the target in MESHFUZZ_TARGET.
//
// Built with `-sanitize=fuzzer` and `-DFUZZING`, libFuzzer's driver runs the target;
// otherwise the files given are replayed, so a crash reproduces in a debug build too.

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: meshfuzz --list | --write-seeds DIR | TARGET [libFuzzer flags] [FILES or CORPUS DIRS]\n".utf8))
    exit(2)
}

func replay(_ target: FuzzTarget, _ paths: [String]) -> Int32 {
    var files: [String] = []
    for p in paths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { continue }
        if isDir.boolValue {
            files += ((try? FileManager.default.contentsOfDirectory(atPath: p)) ?? []).sorted().map { p + "/" + $0 }
        } else {
            files.append(p)
        }
    }
    for f in files {
        guard let data = FileManager.default.contents(atPath: f) else { continue }
        target.run(Array(data))
    }
    print("\(target.name): \(files.count) inputs ran without a finding")
    return 0
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The target libFuzzer calls (set once, before the driver starts; fuzzing is single-threaded).
nonisolated(unsafe) var selected: FuzzTarget?
#endif

func run() -> Int32 {
    var args = CommandLine.arguments
    guard args.count >= 2 else { usage() }
    switch args[1] {
    case "--list":
        for t in FuzzTargets.all { print("\(t.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(t.summary)") }
        return 0
    case "--write-seeds":
        guard args.count == 3 else { usage() }
        for t in FuzzTargets.all {
            let dir = args[2] + "/" + t.name
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (i, s) in t.seeds().enumerated() { _ = FileManager.default.createFile(atPath: dir + "/seed-\(i)", contents: Data(s)) }
        }
        return 0
    default:
        // libFuzzer runs this binary again for -merge, -fork and -jobs with its own flags and
        // without the target's name: the target then comes from the environment we set.
        let inherited = ProcessInfo.processInfo.environment["MESHFUZZ_TARGET"].flatMap { FuzzTargets.named($0) }
        guard let target = FuzzTargets.named(args[1]) ?? inherited else {
            FileHandle.standardError.write(Data("meshfuzz: no target \(args[1]) (see --list)\n".utf8))
            return 2
        }
        #if FUZZING
        selected = target
        if FuzzTargets.named(args[1]) != nil { args.remove(at: 1) }
        setenv("MESHFUZZ_TARGET", target.name, 1)
        var argc = Int32(args.count)
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        return cargs.withUnsafeMutableBufferPointer { buf in
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buf.baseAddress
            return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
                let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
                selected!.run(bytes)
                return 0
            }
        }
        #else
        return replay(target, Array(args.dropFirst(2)))
        #endif
    }
}

exit(run())
