import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// Learning our public IP from what peers observe (discovery PONGs), as a pure decision.
///
/// A reporter's claim is a hint: one peer, or many node ids behind one address, repeating a
/// claim prove nothing. An address is learned when reporters from `quorum` different
/// networks (IPv4: the address; IPv6: the /64) agree on it, or when a bootnode the operator
/// configured reports it. The candidate table holds at most `maxCandidates` addresses; a
/// new candidate past that clears the table (an attacker spraying candidates resets only
/// votes that had not reached the quorum yet).
struct AddressVotes {
    static let quorum = 2
    static let maxCandidates = 8

    /// Candidate IP → the networks of the reporters that observed it.
    private(set) var candidates: [[UInt8]: Set<[UInt8]>] = [:]

    /// The network a reporter's address counts as (IPv6 reporters by /64).
    static func network(of reporterIP: [UInt8]) -> [UInt8] {
        reporterIP.count == 16 ? Array(reporterIP.prefix(8)) : reporterIP
    }

    /// Records that a reporter at `reporterIP` saw us at `observed`; returns the address to
    /// adopt once the quorum (or a bootnode) says so, and then forgets every candidate.
    mutating func observe(_ observed: [UInt8], reporterIP: [UInt8], fromBootnode: Bool) -> [UInt8]? {
        guard observed.count == 4 || observed.count == 16 else { return nil }
        if self.candidates[observed] == nil && self.candidates.count >= Self.maxCandidates { self.candidates.removeAll() }
        self.candidates[observed, default: []].insert(Self.network(of: reporterIP))
        guard fromBootnode || self.candidates[observed]!.count >= Self.quorum else { return nil }
        self.candidates.removeAll()
        return observed
    }

    /// How many distinct networks reported `ip` so far.
    func reporters(of ip: [UInt8]) -> Int { self.candidates[ip]?.count ?? 0 }
}
