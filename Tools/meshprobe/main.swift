import MeshCLI

await CommandLineEntry.main(MeshProbe.self)
