import Foundation
import MeshChain
import MeshChannel
import MeshClient
import MeshCrypto
@testable import MeshNode
import MeshSockets
import Synchronization
import Testing

@Suite("Chain watcher: subnet clients follow the node's subscriptions")
struct ChainWatcherTests {
    /// Collects a watcher's updates until the test cancels it.
    final class Collected: Sendable {
        let updates = Mutex<[ChainWatcher.Update]>([])
        func add(_ u: ChainWatcher.Update) { self.updates.withLock { $0.append(u) } }
        var all: [ChainWatcher.Update] { self.updates.withLock { $0 } }

        /// Waits for `ok` to hold over the updates so far, checking every 50 ms up to `seconds`
        /// worth of checks. Counted in turns, not by the clock: the consumer runs on the same
        /// cooperative threads as this wait, and blocking tests beside it in the suite can hold
        /// them all for half a minute (seen on two cores), after which a clock deadline has
        /// passed before the consumer had a turn.
        func wait(_ seconds: Double, _ ok: ([ChainWatcher.Update]) -> Bool) async -> Bool {
            for _ in 0..<Int(seconds * 20) {
                if ok(self.all) { return true }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            return ok(self.all)
        }
    }

    @Test("first a resync, then rising heads and the watched subnet's metagraph changes (not another subnet's); a closed node means resyncs while retrying")
    func followsSubscriptions() async throws {
        let live = try await LiveNode()
        let port = live.port
        let url = "http://127.0.0.1:\(port)"
        let watched = ChainWatcher(url: url, netuids: [1], pollSeconds: 1)
        let other = ChainWatcher(url: url, netuids: [9], pollSeconds: 1)
        #expect(watched.mode == .subscriptions)
        let seen = Collected(), seenOther = Collected()
        let tasks = [Task { await watched.run { seen.add($0) } }, Task { await other.run { seenOther.add($0) } }]
        #expect(await seen.wait(10) { $0.first?.resync == true } && watched.stats.subscribed, "\(seen.all)")
        #expect(await seen.wait(10) { $0.compactMap(\.head).count >= 3 }, "\(seen.all)")
        let heads = seen.all.compactMap(\.head)
        #expect(zip(heads, heads.dropFirst()).allSatisfy { $0 < $1 }, "heads \(heads)")

        // A subnet and a miner registered on it: the watcher of subnet 1 hears, subnet 9's does not.
        let key = try await live.loop.submit { live.node.identity.signingKey }
        let miner = Ed25519.PrivateKey().publicKey
        try await Task.detached {
            let client = try ChainClient(url: url)
            let created = try client.submitAndWait(.createSubnet(ownerHotkey: key.publicKey, maxLockCost: 1_000 * Token.tao), key: key, timeout: 30)
            let registered = try client.submitAndWait(.register(netuid: 1, hotkey: miner, maxBurn: 1_000 * Token.tao), key: key, timeout: 30)
            for o in [created, registered] {
                guard case .included = o else { Issue.record("outcome \(o)"); return }
            }
            #expect(try client.metagraphInfo(netuid: 1).neurons.contains { $0.hotkey == miner })
        }.value
        #expect(await seen.wait(10) { $0.contains { $0.metagraphChanged.contains(1) } }, "\(seen.all)")
        #expect(seen.all.dropFirst().allSatisfy { !$0.resync }, "no resync while the connection holds")
        #expect(seenOther.all.allSatisfy { $0.metagraphChanged.isEmpty && $0.epochRun.isEmpty }, "\(seenOther.all)")
        #expect(watched.stats.notifications >= 4 && watched.stats.connections == 1 && watched.stats.failures == 0, "\(watched.stats)")

        // The node goes away: the watcher reports resyncs (read everything again) while it retries.
        await live.stop()
        let before = seen.all.count
        #expect(await seen.wait(10) { $0.count > before && $0.last?.resync == true }, "\(seen.all.suffix(3))")
        #expect(await seen.wait(10) { _ in watched.stats.failures >= 2 && !watched.stats.subscribed }, "\(watched.stats)")
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    @Test("with an https URL (no WebSocket client for it) the watcher polls: a resync every interval, coalesced when the consumer is slow")
    func polls() async throws {
        let w = ChainWatcher(url: "https://node.invalid:443", netuids: [3], pollSeconds: 0.1)
        #expect(w.mode == .polling && w.pollSeconds == 0.1)
        let seen = Collected()
        let task = Task {
            await w.run { u in
                seen.add(u)
                try? await Task.sleep(nanoseconds: 300_000_000)  // slower than the polls
            }
        }
        #expect(await seen.wait(30) { $0.count >= 2 }, "\(w.stats), \(seen.all.count) updates")
        task.cancel()
        await task.value
        #expect(seen.all.allSatisfy { $0.resync && $0.touches(3) && $0.touches(7) })
        // Polls kept coming while the consumer slept, but it never saw a backlog.
        #expect(w.stats.polls > UInt64(seen.all.count), "\(w.stats) vs \(seen.all.count) updates")
        // Bounds: a nonsensical interval is clamped.
        #expect(ChainWatcher(url: "http://x:1", netuids: [], pollSeconds: .nan).pollSeconds == 6)
        #expect(ChainWatcher(url: "http://x:1", netuids: [], pollSeconds: 0).pollSeconds == 0.1)
    }
}
