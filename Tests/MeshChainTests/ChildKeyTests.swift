@testable import MeshChain
import MeshCodec
import MeshCrypto
import MeshIncentive
import Testing

@Suite("Child hotkeys")
struct ChildKeyTests {
    static let all = UInt64.max

    func refusal(_ a: DevChain, _ signer: Ed25519.PrivateKey, _ call: Call) throws -> DispatchError? {
        var st = a.state
        return try st.apply(a.tx(signer, call), at: st.number + 1, producer: a.validators[0].publicKey, context: a.context).error
    }

    @Test("set_children checks: owner, not on root, no self, at most five, no duplicates, proportions within the whole, no parent as child, rate limit")
    func rules() throws {
        let a = try DevChain(tempo: 50) { spec in
            spec.params.setChildrenRateLimit = 10
            spec.params.pendingChildKeyCooldown = 3
        }
        let p = a.accounts[0], c1 = a.accounts[1], c2 = a.accounts[2]
        for k in [p, c1, c2] { try a.produce([a.tx(k, .register(netuid: 1, hotkey: k.publicKey, maxBurn: 100 * Token.tao))]) }
        let one = [ChildLink(proportion: Self.all / 2, hotkey: c1.publicKey)]
        #expect(try self.refusal(a, c1, .setChildren(hotkey: p.publicKey, netuid: 1, children: one))?.code == "NonAssociatedColdKey")
        #expect(try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 0, children: one))?.code == "RegistrationNotPermittedOnRootSubnet")
        #expect(try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 1, children: [ChildLink(proportion: 1, hotkey: p.publicKey)]))?.code == "InvalidChild")
        let six = (0..<6).map { ChildLink(proportion: 1, hotkey: a.accounts[$0 + 1].publicKey) }
        #expect(try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 1, children: six))?.code == "TooManyChildren")
        #expect(try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 1, children: one + one))?.code == "DuplicateChild")
        let over = [ChildLink(proportion: Self.all, hotkey: c1.publicKey), ChildLink(proportion: 1, hotkey: c2.publicKey)]
        #expect(try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 1, children: over))?.code == "ProportionOverflow")
        // Scheduled, then applied at the first epoch after the cooldown.
        try a.produce([a.tx(p, .setChildren(hotkey: p.publicKey, netuid: 1, children: one))])
        #expect(a.state.children(of: p.publicKey, netuid: 1).isEmpty)
        #expect(a.state.pendingChildKeys[HotkeyNet(hotkey: p.publicKey, netuid: 1)] != nil)
        let limited = try self.refusal(a, p, .setChildren(hotkey: p.publicKey, netuid: 1, children: []))
        #expect(limited?.code == "TxRateLimitExceeded")
        #expect(limited?.allowedAtBlock == a.state.childrenSetAt[HotkeyNet(hotkey: p.publicKey, netuid: 1)]! + 10)
        while a.state.subnets[1]!.epochCount == 0 { try a.produce() }
        #expect(a.state.children(of: p.publicKey, netuid: 1) == one)
        #expect(a.state.parents(of: c1.publicKey, netuid: 1).map { $0.hotkey } == [p.publicKey])
        // A parent cannot become its child's child.
        #expect(try self.refusal(a, c1, .setChildren(hotkey: c1.publicKey, netuid: 1, children: [ChildLink(proportion: 1, hotkey: p.publicKey)]))?.code
                == "ChildParentInconsistency")
        // Child takes: within [min, max]; a raise is rate-limited.
        #expect(try self.refusal(a, c1, .setChildkeyTake(hotkey: c1.publicKey, netuid: 1, take: 20_000))?.code == "InvalidChildkeyTake")
    }

    @Test("a parent lends stake weight to its child; the child's validator dividends are shared with the parent, less the child take")
    func lendingAndDividends() throws {
        let a = try DevChain(tempo: 5) { spec in
            spec.params.pendingChildKeyCooldown = 1
            spec.params.taoWeight = 0
        }
        let parent = a.accounts[0], child = a.accounts[1], miner = a.accounts[2]
        for k in [parent, child, miner] { try a.produce([a.tx(k, .register(netuid: 1, hotkey: k.publicKey, maxBurn: 100 * Token.tao))]) }
        try a.produce([a.tx(parent, .addStake(hotkey: parent.publicKey, netuid: 1, amount: 200 * Token.tao)),
                       a.tx(child, .addStake(hotkey: child.publicKey, netuid: 1, amount: 20 * Token.tao)),
                       a.tx(child, .setChildkeyTake(hotkey: child.publicKey, netuid: 1, take: 6553), nonce: a.state.nonce(child.publicKey) + 1)])
        let parentAlpha = a.state.totalStake(hotkey: parent.publicKey, netuid: 1)
        let childAlpha = a.state.totalStake(hotkey: child.publicKey, netuid: 1)
        try a.produce([a.tx(parent, .setChildren(hotkey: parent.publicKey, netuid: 1, children: [ChildLink(proportion: Self.all / 2, hotkey: child.publicKey)]))])
        while a.state.children(of: parent.publicKey, netuid: 1).isEmpty { try a.produce() }
        // Half the parent's weight moves to the child (truncated fixed point: within a rao or two).
        let w = a.state.stakeWeights(netuid: 1)
        let pu = a.state.subnets[1]!.uid(of: parent.publicKey)!, cu = a.state.subnets[1]!.uid(of: child.publicKey)!
        let parentNow = a.state.totalStake(hotkey: parent.publicKey, netuid: 1), childNow = a.state.totalStake(hotkey: child.publicKey, netuid: 1)
        // U96F32 holds the proportion to 2^-32, as on subtensor.
        let slack = Int64(parentNow >> 31) + 2
        #expect(abs(Int64(w[pu].weight) - Int64(parentNow / 2)) <= slack)
        #expect(abs(Int64(w[cu].weight) - Int64(childNow + parentNow / 2)) <= slack)
        #expect(parentAlpha > 0 && childAlpha > 0)
        // Only the child validates (the parent has no weights): the parent is paid through it.
        for _ in 0..<6 { try a.produce() }
        let mu = UInt16(a.state.subnets[1]!.uid(of: miner.publicKey)!)
        try a.produce([a.tx(child, .setWeights(netuid: 1, uids: [mu], values: [1], versionKey: 0))])
        let before = a.state.totalStake(hotkey: parent.publicKey, netuid: 1)
        let epochs = a.state.subnets[1]!.epochCount
        while a.state.subnets[1]!.epochCount < epochs + 2 { try a.produce() }
        #expect(a.state.totalStake(hotkey: parent.publicKey, netuid: 1) > before, "the parent earns through its child")
        #expect(a.conserved())
    }

    @Test("parent/child split: each parent by its contribution, less the child take; the child keeps the rest and the takes")
    func split() throws {
        let a = try DevChain(tempo: 1000) { spec in spec.params.taoWeight = 0 }
        let parent = a.accounts[0], child = a.accounts[1]
        for k in [parent, child] { try a.produce([a.tx(k, .register(netuid: 1, hotkey: k.publicKey, maxBurn: 100 * Token.tao))]) }
        var st = a.state
        try st.increaseStake(coldkey: parent.publicKey, hotkey: parent.publicKey, netuid: 1, amount: 3_000)
        try st.increaseStake(coldkey: child.publicKey, hotkey: child.publicKey, netuid: 1, amount: 1_000)
        st.childKeys[HotkeyNet(hotkey: parent.publicKey, netuid: 1)] = [ChildLink(proportion: Self.all, hotkey: child.publicKey)]
        st.childkeyTakes[HotkeyNet(hotkey: child.publicKey, netuid: 1)] = UInt16.max / 10
        let parents = st.parents(of: child.publicKey, netuid: 1)
        let out = st.parentChildSplit(hotkey: child.publicKey, netuid: 1, amount: U96F32(1_000_000), parents: parents)
        // Contributions 3000 : 1000; the parent's 750,000 less a 6553/65535 child take.
        let take = 750_000.0 * 6553 / 65535
        #expect(out.count == 2 && out[0].0 == parent.publicKey && out[1].0 == child.publicKey)
        #expect(abs(Double(out[0].1.floorU64) - (750_000 - take)) <= 2)
        #expect(abs(Double(out[1].1.floorU64) - (250_000 + take)) <= 2)
        #expect(out[0].1.floorU64 + out[1].1.floorU64 <= 1_000_000)
    }
}
