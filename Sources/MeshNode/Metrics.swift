import Foundation
import MeshChain
import MeshChannel
import MeshCodec
import MeshHTTP
import MeshCrypto
import MeshFinality
import MeshGossip
import MeshIncentive
import MeshNetwork
import MeshNodeCore
import MeshSockets
import MeshStore
extension Node {
    /// `name="value"` with the value escaped as the Prometheus text format requires
    /// (backslash, double quote and line feed).
    static func label(_ name: String, _ value: String) -> String { PrometheusText.label(name, value) }

    /// The Prometheus text exposition (all names prefixed `tensormesh_`).
    /// A label's values with their counts, sorted, at most `limit` series: past it the smallest
    /// are summed under "other" (the reasons are the node's own words, but a metric's series
    /// stay bounded whatever a future caller passes).
    static func bounded(_ counts: [String: Int], limit: Int = 32) -> [(String, Int)] {
        guard counts.count > limit else { return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
        let ranked = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        var kept = Array(ranked.prefix(limit - 1))
        kept.append(("other", ranked.dropFirst(limit - 1).reduce(0) { $0 + $1.value }))
        return kept.sorted { $0.0 < $1.0 }
    }

    /// The Prometheus text exposition (names prefixed `tensormesh_`, and the standard `process_*`).
    public func prometheusText() -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP tensormesh_\(name) \(help)\n# TYPE tensormesh_\(name) \(type)\n"
            for (labels, v) in samples {
                let value = v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
                out += "tensormesh_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n"
            }
        }
        let best = self.chain.best.number
        let fin = self.chain.finalized.number
        metric("peers", "gauge", "Connected peers.", [("", Double(self.core.peers.connected.count))])
        metric("peer_inbound_streams", "gauge", "Streams peers opened that the node still tracks.",
               [("", Double(self.core.peers.connected.values.reduce(0) { $0 + $1.trackedStreams }))])
        metric("block_height", "gauge", "Block height by status.", [("status=\"best\"", Double(best)), ("status=\"finalized\"", Double(fin))])
        metric("finality_lag_blocks", "gauge", "Best minus finalized height.", [("", Double(best - fin))])
        let lagSeconds = self.chain.header(self.chain.finalized.hash).map { h in Double(SystemTimeSource.wallMillis() - min(SystemTimeSource.wallMillis(), h.timestamp)) / 1000 } ?? 0
        metric("finality_lag_seconds", "gauge", "Age of the finalized block.", [("", lagSeconds)])
        metric("finality_round", "gauge", "Current finality round.", [("", Double(self.finality.round))])
        metric("finality_set_id", "gauge", "Current validator set id.", [("", Double(self.finality.setId))])
        let votes = self.finality.currentRoundVotes
        metric("finality_votes", "gauge", "Votes seen in the current round.", [("phase=\"prevote\"", Double(votes.prevotes)), ("phase=\"precommit\"", Double(votes.precommits))])
        metric("finality_signature_verifications_total", "counter", "Vote signatures verified (each at most once).", [("", Double(self.signatures.verifications))])
        // Topics: only those we subscribe to (the core counts no others by name).
        let byTopic = self.gossip.counters.byTopic.sorted { $0.key < $1.key }
        metric("gossip_messages_total", "counter", "Gossip messages received by topic (subscribed topics; others as \"other\").",
               byTopic.map { (Self.label("topic", $0.key), Double($0.value.messages)) } + [(Self.label("topic", "other"), Double(self.gossip.counters.unsubscribed))])
        metric("gossip_duplicates_total", "counter", "Duplicate gossip messages received by topic.",
               byTopic.map { (Self.label("topic", $0.key), Double($0.value.duplicates)) })
        metric("finality_messages_total", "counter", "Finality messages received on the direct stream.",
               [("", Double(self.counters.finalityMessages))])
        metric("invalid_messages_total", "counter", "Invalid messages from peers by reason.",
               Self.bounded(self.counters.invalidMessages).map { (Self.label("reason", $0.0), Double($0.1)) })
        // Protocols: the node's own; names peers chose are "other".
        let known = Set(ProtocolName.all)
        var inBy = self.closedBytesIn
        var outBy = self.closedBytesOut
        for p in self.host.peers.values {
            for (k, v) in p.bytesInByProtocol { inBy[known.contains(k) ? k : "other", default: 0] += v }
            for (k, v) in p.bytesOutByProtocol { outBy[known.contains(k) ? k : "other", default: 0] += v }
        }
        metric("bytes_total", "counter", "Application bytes by direction and message type since start.",
               inBy.sorted { $0.key < $1.key }.map { ("direction=\"in\"," + Self.label("protocol", $0.key), Double($0.value)) }
                   + outBy.sorted { $0.key < $1.key }.map { ("direction=\"out\"," + Self.label("protocol", $0.key), Double($0.value)) })
        metric("handshake_failures_total", "counter", "Failed secure-channel handshakes by reason.",
               Self.bounded(self.host.counters.handshakeFailures).map { (Self.label("reason", $0.0), Double($0.1)) })
        metric("connections_refused_total", "counter", "Connections refused by limits.", [("", Double(self.host.tracker.refused + self.host.counters.refusedByLimits))])
        metric("send_queued_bytes", "gauge", "Bytes queued for sending to all peers (channel and socket queues).", [("", Double(self.host.totalQueuedBytes))])
        metric("peers_dropped_send_budget_total", "counter", "Peers cut off because the node's send budget was spent while they held more than their share.",
               [("", Double(self.host.counters.droppedOverSendBudget))])
        metric("mempool_transactions", "gauge", "Transactions in the pool.", [("", Double(self.mempool.count))])
        metric("epochs_total", "counter", "Subnet epochs run since start.", [("", Double(self.counters.epochsRun))])
        metric("blocks_produced_total", "counter", "Blocks this node produced.", [("", Double(self.counters.blocksProduced))])
        metric("blocks_imported_total", "counter", "Blocks imported.", [("", Double(self.chain.importedCount))])
        metric("blocks_rejected_total", "counter", "Blocks rejected.", [("", Double(self.chain.rejectedCount))])
        metric("sync_blocks_total", "counter", "Blocks imported through sync.", [("", Double(self.counters.syncedBlocks))])
        metric("compact_blocks_total", "counter", "Compact blocks by how the body was rebuilt.",
               [("outcome=\"pool\"", Double(self.counters.compactFromPool)), ("outcome=\"fetched\"", Double(self.counters.compactFetched)),
                ("outcome=\"fallback\"", Double(self.counters.compactFallbacks))])
        metric("compact_transactions_fetched_total", "counter", "Transactions fetched to complete compact blocks.", [("", Double(self.counters.compactTransactionsFetched))])
        metric("reorgs_total", "counter", "Best-chain reorganisations.", [("", Double(self.counters.reorgs))])
        out += self.histograms.importSeconds.render("tensormesh_block_import_seconds",
                                                    help: "Time the node spent on a message from a peer until each block it carried was imported (gossip or sync).")
        out += self.histograms.finalityLagSeconds.render("tensormesh_finality_lag_at_finalization_seconds",
                                                         help: "Age of a block (since its timestamp) when the node finalized it.")
        out += ProcessMetrics.text()
        return out
    }
}
