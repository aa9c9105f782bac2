import MeshSubnet

await SubnetMain.run(Minimal.self)
