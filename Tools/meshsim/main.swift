import MeshCLI

await CommandLineEntry.main(MeshSimCommand.self)
