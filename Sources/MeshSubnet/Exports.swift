// A subnet author imports MeshSubnet alone: the query types (statuses, failures, caller
// info) and the chain client types (metagraph) come with it.
@_exported import MeshClient
@_exported import MeshQuery
@_exported import ArgumentParser
