import MeshCLI

await CommandLineEntry.main(MeshBench.self)
