import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// The node's known peer addresses by node id, with a count per network (/24, /48) kept as
/// entries come and go, so the diversity limit costs O(1) per insert. Host names (operator
/// bootnodes) and loopback addresses belong to no network.
struct AddressBook {
    private(set) var entries: [AccountID: NodeAddress] = [:]
    private var perNetwork: [[UInt8]: Int] = [:]

    /// The network an address counts against, if any.
    static func network(_ a: NodeAddress) -> [UInt8]? {
        guard let e = Endpoint(numericHost: a.host, port: a.port), !e.isLoopback else { return nil }
        return e.subnet
    }

    subscript(id: AccountID) -> NodeAddress? {
        get { self.entries[id] }
        set {
            if let old = self.entries[id], let net = Self.network(old) {
                self.perNetwork[net, default: 1] -= 1
                if self.perNetwork[net] == 0 { self.perNetwork[net] = nil }
            }
            self.entries[id] = newValue
            if let new = newValue, let net = Self.network(new) { self.perNetwork[net, default: 0] += 1 }
        }
    }

    var count: Int { self.entries.count }
    var keys: Dictionary<AccountID, NodeAddress>.Keys { self.entries.keys }
    var values: Dictionary<AccountID, NodeAddress>.Values { self.entries.values }

    /// Entries in the network `a` would count against (0 for names and loopback).
    func countInNetwork(of a: NodeAddress) -> Int { Self.network(a).map { self.perNetwork[$0] ?? 0 } ?? 0 }

    /// Networks with entries (bounded by the entries).
    var networks: Int { self.perNetwork.count }
}
