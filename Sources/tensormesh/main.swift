import MeshCLI

await CommandLineEntry.main(Tensormesh.self)
