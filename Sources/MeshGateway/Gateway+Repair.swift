import ExampleSubnets
import Foundation
import MeshCodec
import MeshCrypto
import MeshQuery
import MeshSockets
import MeshSubnet
import Synchronization

/// Keeping stored objects replicated: holders are challenged for a random chunk of what they
/// keep (a Merkle proof against the object's root); a holder that fails, left the subnet or
/// lost its axon is dropped, and the object is copied from a holder that still proves it to
/// the next storage miners by incentive until it has `replication` holders again.
extension Gateway {
    /// What one repair pass did.
    struct RepairReport: Sendable, Equatable {
        var checked = 0
        /// Holders that failed a challenge or left the subnet, and were dropped.
        var dropped = 0
        /// New copies made.
        var added = 0
        /// Objects below their replication that could not be copied (no holder proved them, or
        /// no other miner committed).
        var short = 0
    }

    /// Checks up to `limit` objects, the next ones after the previous pass's, and repairs them.
    func repairObjects(limit: Int) async -> RepairReport {
        var report = RepairReport()
        guard let netuid = self.config.storageNetuid, limit > 0,
              let graph = self.state.withLock({ $0.metagraphs[netuid]?.graph }) else { return report }
        let batch = self.state.withLock { s -> [(String, ObjectIndex.Record)] in
            let ids = s.objects.records.keys.sorted()
            guard !ids.isEmpty else { return [] }
            let start = ids.firstIndex { $0 > s.repairCursor } ?? 0
            let chosen = (0..<min(limit, ids.count)).map { ids[(start + $0) % ids.count] }
            s.repairCursor = chosen.last ?? ""
            return chosen.compactMap { id in s.objects.records[id].map { (id, $0) } }
        }
        var changed = false
        for (id, record) in batch {
            guard !Task.isCancelled, let slash = id.lastIndex(of: "/") else { break }
            report.checked += 1
            let minerKey = Self.minerKey(keyName: String(id[..<slash]), key: String(id[id.index(after: slash)...]))
            guard let root = Hex.decode(record.root), root.count == 32 else { continue }
            let commitment = Storage.Commitment(key: minerKey, root: root, size: record.size)
            // Which holders still prove the object.
            var alive: [Target] = []
            var gone: Set<String> = []
            for h in record.holders {
                guard let t = self.target(hotkeyHex: h, in: graph), await self.proves(t, commitment, netuid: netuid) else {
                    gone.insert(h)
                    continue
                }
                alive.append(t)
            }
            var holders = alive.map { $0.neuron.hotkey.hex }
            if alive.count < self.config.replication, let data = await self.fetch(from: alive, key: minerKey, record: record, netuid: netuid) {
                let taken = Set(holders).union(gone)
                let candidates = self.top(netuid, k: Int(UInt16.max)).filter { !taken.contains($0.neuron.hotkey.hex) }
                let request = try? Storage.Store(key: minerKey, payload: data).encodeRequest()
                for t in candidates where holders.count < self.config.replication {
                    guard let request else { break }
                    let r = await self.call(t, netuid: netuid, synapse: Storage.Store.name, body: request)
                    guard r.isSuccess, let answer = try? Storage.Store.decodeResponse(r.body), answer.root == record.root, answer.size == record.size else { continue }
                    holders.append(t.neuron.hotkey.hex)
                    report.added += 1
                }
            }
            if holders.count < self.config.replication { report.short += 1 }
            report.dropped += gone.count
            // Nothing proves the object any more: keep the old holders (they may come back).
            guard !holders.isEmpty, holders != record.holders else { continue }
            self.state.withLock { s in
                if var r = s.objects.records[id], r.root == record.root {
                    r.holders = holders
                    s.objects.records[id] = r
                }
            }
            changed = true
        }
        self.state.withLock {
            $0.metrics.repairs(dropped: report.dropped, added: report.added, short: report.short)
        }
        if changed, let dir = self.config.stateDirectory {
            let index = self.state.withLock { $0.objects }
            do { try index.save(path: dir + "/objects.json") } catch { self.log("cannot save the object index: \(error)") }
        }
        if report.dropped > 0 || report.added > 0 || report.short > 0 {
            self.log("storage repair: \(report.checked) objects checked, \(report.dropped) holders dropped, \(report.added) copies made, \(report.short) still short")
        }
        return report
    }

    /// The registered miner with this hotkey, if it publishes a reachable axon.
    func target(hotkeyHex: String, in graph: Metagraph) -> Target? {
        guard let n = graph.neurons.first(where: { $0.hotkey.hex == hotkeyHex }), let a = n.axon, let id = a.nodeId, a.port != 0,
              let addr = SocketAddress(numericHost: a.host, port: a.port) else { return nil }
        return Target(neuron: n, endpoint: AxonEndpoint(hotkey: n.hotkey, nodeId: id, address: addr))
    }

    /// Whether the miner proves a random chunk of the object.
    func proves(_ t: Target, _ c: Storage.Commitment, netuid: UInt16) async -> Bool {
        let index = Int.random(in: 0..<max(1, c.chunks))
        guard let body = try? Storage.Challenge(key: c.key, index: index).encodeRequest() else { return false }
        let r = await self.call(t, netuid: netuid, synapse: Storage.Challenge.name, body: body)
        guard r.isSuccess, let answer = try? Storage.Challenge.decodeResponse(r.body) else { return false }
        return Storage.verify(answer, index: index, of: c)
    }

    /// The object whole from the first holder that returns it intact.
    func fetch(from holders: [Target], key: String, record: ObjectIndex.Record, netuid: UInt16) async -> Data? {
        guard let body = try? Storage.Retrieve(key: key).encodeRequest() else { return nil }
        for t in holders {
            let r = await self.call(t, netuid: netuid, synapse: Storage.Retrieve.name, body: body)
            guard r.isSuccess, let answer = try? Storage.Retrieve.decodeResponse(r.body), answer.payload.count == record.size,
                  Storage.root(of: answer.payload) == record.root else { continue }
            return answer.payload
        }
        return nil
    }
}
