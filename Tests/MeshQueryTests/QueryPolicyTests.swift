import MeshCodec
import MeshCrypto
@testable import MeshQuery
import MeshTestSupport
import Testing

@Suite("Query messages and axon admission (sans-IO)")
struct QueryPolicyTests {
    let validator = Ed25519.PrivateKey()
    let miner = Ed25519.PrivateKey()
    let now: UInt64 = 1_800_000_000_000

    func header(body: [UInt8] = [1, 2, 3], synapse: String = "echo", nonce: UInt64 = 1, deadline: UInt64? = nil,
                caller: Ed25519.PrivateKey? = nil, netuid: UInt16 = 1) -> QueryRequestHeader {
        QueryRequestHeader(netuid: netuid, synapse: synapse, caller: caller ?? self.validator, target: self.miner.publicKey,
                           nonce: nonce, deadline: deadline ?? self.now + 5000, body: body)
    }

    func policy() -> AxonPolicy {
        var p = AxonPolicy(served: [self.miner.publicKey], netuid: 1, synapses: ["echo"])
        p.directory[self.validator.publicKey] = CallerInfo(uid: 0, stake: 1000, validatorPermit: true)
        return p
    }

    @Test("headers and trailers round-trip; any changed byte breaks the signature")
    func signatures() throws {
        let h = self.header()
        let decoded = try QueryRequestHeader.decode(h.encoded)
        #expect(decoded == h)
        #expect(decoded.hasValidSignature)
        let bytes = h.encoded
        for i in stride(from: 0, to: bytes.count - 64, by: 7) {
            var t = bytes
            t[i] ^= 0x01
            if let d = try? QueryRequestHeader.decode(t) { #expect(!d.hasValidSignature, "byte \(i) flipped still verifies") }
        }
        var trailer = QueryResponseTrailer(status: .ok, message: "fine", responder: self.miner.publicKey, requestHash: h.requestHash,
                                           bodyLength: 3, bodyHash: SHA256.hash([UInt8]([9, 9, 9])), processingMicros: 12)
        trailer.sign(with: self.miner)
        let frame = try QueryResponseFrame.decode(QueryResponseFrame.trailer(trailer).encoded)
        guard case .trailer(let t) = frame else { Issue.record("not a trailer"); return }
        #expect(t.isSigned(by: self.miner.publicKey))
        #expect(!t.isSigned(by: self.validator.publicKey))
        var forged = t
        forged.status = .internalError
        #expect(!forged.isSigned(by: self.miner.publicKey))
        // Long messages are cut on a scalar boundary and still encode.
        let long = QueryResponseTrailer(status: .badRequest, message: String(repeating: "é", count: 500), responder: self.miner.publicKey, requestHash: h.requestHash)
        #expect(long.message.utf8.count <= QueryResponseTrailer.maxMessage)
        #expect(try QueryResponseTrailer.decode(long.encoded) == long)
    }

    @Test("garbage never decodes into a header or frame by accident and never traps")
    func fuzz() {
        var rng = SeededRNG(seed: 0x5eed)
        let valid = self.header().encoded
        for round in 0..<5000 {
            var b: [UInt8]
            if round % 2 == 0 {
                b = rng.bytes(Int.random(in: 0...300, using: &rng))
            } else {
                b = valid
                for _ in 0..<Int.random(in: 1...6, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if Bool.random(using: &rng) { b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng))) }
            }
            if let h = try? QueryRequestHeader.decode(b), b != valid { #expect(!h.hasValidSignature || h == self.header()) }
            _ = try? QueryResponseFrame.decode(b)
        }
    }

    @Test("screening: each refusal has its status, cheap checks before the signature")
    func screening() {
        var p = self.policy()
        #expect(p.screen(self.header(), now: self.now) == .admit(priority: 1000))
        // Unknown synapse, wrong subnet, wrong target.
        if case .refuse(let s, _, _) = p.screen(self.header(synapse: "nope", nonce: 2), now: self.now) { #expect(s == .notFound) } else { Issue.record("admitted") }
        if case .refuse(let s, _, _) = p.screen(self.header(nonce: 3, netuid: 2), now: self.now) { #expect(s == .notFound) } else { Issue.record("admitted") }
        var other = self.header(nonce: 4)
        other.target = self.validator.publicKey
        if case .refuse(let s, _, _) = p.screen(other, now: self.now) { #expect(s == .notFound) } else { Issue.record("admitted") }
        // Oversized body: 413 without verifying.
        var big = self.header(nonce: 5)
        big.bodyLength = UInt32(p.limits.maxBodyBytes + 1)
        #expect(p.screen(big, now: self.now) == .refuse(.payloadTooLarge, "body of \(big.bodyLength) bytes exceeds the limit of \(p.limits.maxBodyBytes)", verified: false))
        // Expired and too far ahead.
        if case .refuse(let s, _, _) = p.screen(self.header(nonce: 6, deadline: self.now - 10_000), now: self.now) { #expect(s == .timeout) } else { Issue.record("admitted") }
        if case .refuse(let s, _, _) = p.screen(self.header(nonce: 7, deadline: self.now + 3_600_000), now: self.now) { #expect(s == .badRequest) } else { Issue.record("admitted") }
        // Unregistered and no permit: 403 before the signature is checked.
        let stranger = Ed25519.PrivateKey()
        if case .refuse(let s, _, let verified) = p.screen(self.header(nonce: 8, caller: stranger), now: self.now) {
            #expect(s == .forbidden)
            #expect(!verified)
        } else { Issue.record("admitted") }
        p.directory[stranger.publicKey] = CallerInfo(uid: 5, stake: 0, validatorPermit: false)
        if case .refuse(let s, _, _) = p.screen(self.header(nonce: 9, caller: stranger), now: self.now) { #expect(s == .forbidden) } else { Issue.record("admitted") }
        // Forged: a registered hotkey in the header, signed by someone else.
        var forged = self.header(nonce: 10)
        forged.signature = stranger.sign(forged.signingBytes)
        if case .refuse(let s, _, _) = p.screen(forged, now: self.now) { #expect(s == .unauthorized) } else { Issue.record("admitted") }
        // Replay.
        let once = self.header(nonce: 11)
        #expect(p.screen(once, now: self.now) == .admit(priority: 1000))
        if case .refuse(let s, let why, let verified) = p.screen(once, now: self.now + 1) {
            #expect(s == .unauthorized)
            #expect(why.contains("nonce"))
            #expect(!verified)  // unsigned: replays must not make the miner sign
        } else { Issue.record("replay admitted") }
        // A custom blacklist and priority.
        p.blacklist = { h, _ in h.synapse == "echo" && h.nonce == 99 ? "nonce 99 is banned here" : nil }
        p.priority = { _, info in Double(info?.uid ?? 0) + 0.5 }
        if case .refuse(let s, let why, _) = p.screen(self.header(nonce: 99), now: self.now) {
            #expect(s == .forbidden)
            #expect(why == "nonce 99 is banned here")
        } else { Issue.record("admitted") }
        #expect(p.screen(self.header(nonce: 100), now: self.now) == .admit(priority: 0.5))
    }

    @Test("direct channels: the caller must be the channel's identity, whose handshake stands in for the signature")
    func directChannel() {
        var p = self.policy()
        var h = self.header(nonce: 1)
        h.signature = Ed25519.PrivateKey().sign(h.signingBytes)  // not checked on the caller's own channel
        #expect(p.screen(h, now: self.now, channel: .direct(self.validator.publicKey)) == .admit(priority: 1000))
        if case .refuse(let s, _, let verified) = p.screen(self.header(nonce: 2), now: self.now, channel: .direct(Ed25519.PrivateKey().publicKey)) {
            #expect(s == .unauthorized)
            #expect(!verified)
        } else { Issue.record("a header naming someone else was admitted") }
        if case .refuse(let s, _, _) = p.screen(h, now: self.now, channel: .relayed) { #expect(s == .unauthorized) } else { Issue.record("admitted") }
    }

    @Test("a deadline of 2^64 - 1 is refused as too far ahead, on direct and relayed channels, without trapping")
    func hugeDeadline() {
        var p = self.policy()
        let channels: [AxonPolicy.Channel] = [.direct(self.validator.publicKey), .relayed]
        for (i, channel) in channels.enumerated() {
            for deadline in [UInt64.max, UInt64.max - 1, UInt64.max - p.limits.clockSkewMs] {
                let h = self.header(nonce: UInt64(i), deadline: deadline)
                guard case .refuse(let s, _, let verified) = p.screen(h, now: self.now, channel: channel) else {
                    Issue.record("deadline \(deadline) admitted on \(channel)")
                    continue
                }
                #expect(s == .badRequest)
                #expect(!verified)
            }
        }
        // A clock near the end of time does not trap either: the window saturates.
        #expect(p.screen(self.header(nonce: 50, deadline: .max), now: .max - 1, channel: .relayed) == .admit(priority: 1000))
        // Operators may set "unlimited" windows: everything saturates, nothing traps.
        p.limits.clockSkewMs = .max
        p.limits.maxDeadlineAheadMs = .max
        #expect(p.screen(self.header(nonce: 60, deadline: .max), now: self.now, channel: .relayed) == .admit(priority: 1000))
        #expect(p.screen(self.header(nonce: 61, deadline: 0), now: self.now, channel: .direct(self.validator.publicKey)) == .admit(priority: 1000))
    }

    @Test("relayed headers: a budget of signature checks, after which requests get an unsigned 429 without one; direct channels unaffected")
    func relayedVerifyBudget() {
        var p = self.policy()
        p.limits.relayedVerifyBurst = 5
        p.limits.relayedVerifyPerSecond = 1
        // Forged headers naming a registered validator: each costs a check, until the budget is spent.
        for n in 0..<5 {
            var forged = self.header(nonce: UInt64(n))
            forged.signature = Ed25519.PrivateKey().sign(forged.signingBytes)
            if case .refuse(let s, _, _) = p.screen(forged, now: self.now) { #expect(s == .unauthorized) } else { Issue.record("admitted") }
        }
        // Now even a valid one is refused unverified, unsigned, with 429.
        guard case .refuse(let s, _, let verified) = p.screen(self.header(nonce: 10), now: self.now) else {
            Issue.record("admitted past the verify budget")
            return
        }
        #expect(s == .tooManyRequests)
        #expect(!verified)
        // The caller's own channel needs no signature check, so it is not limited by it.
        #expect(p.screen(self.header(nonce: 11), now: self.now, channel: .direct(self.validator.publicKey)) == .admit(priority: 1000))
        // The budget refills with time.
        #expect(p.screen(self.header(nonce: 12), now: self.now + 1000) == .admit(priority: 1000))
    }

    @Test("rate limit: a burst then the sustained rate, time as input")
    func rateLimit() {
        var p = self.policy()
        p.limits.burst = 10
        p.limits.ratePerSecond = 5
        var admitted = 0
        for n in 0..<20 { if case .admit = p.screen(self.header(nonce: UInt64(100 + n)), now: self.now) { admitted += 1 } }
        #expect(admitted == 10)
        if case .refuse(let s, _, _) = p.screen(self.header(nonce: 500), now: self.now) { #expect(s == .tooManyRequests) } else { Issue.record("admitted") }
        // One second later, five more.
        admitted = 0
        for n in 0..<20 { if case .admit = p.screen(self.header(nonce: UInt64(1000 + n), deadline: self.now + 6000), now: self.now + 1000) { admitted += 1 } }
        #expect(admitted == 5)
    }

    @Test("nonce cache forgets nonces only after their deadline")
    func nonceExpiry() {
        var c = NonceCache()
        let k = self.validator.publicKey
        var outcomes: [Bool] = []
        outcomes.append(c.insert(caller: k, nonce: 1, deadline: 100, now: 0, limit: 4))
        outcomes.append(c.insert(caller: k, nonce: 1, deadline: 100, now: 50, limit: 4))  // replay
        for n in 2...4 { outcomes.append(c.insert(caller: k, nonce: UInt64(n), deadline: 100, now: 0, limit: 4)) }
        outcomes.append(c.insert(caller: k, nonce: 5, deadline: 100, now: 0, limit: 4))  // full
        outcomes.append(c.insert(caller: k, nonce: 5, deadline: 300, now: 2000, limit: 4))  // old ones expired
        #expect(outcomes == [true, false, true, true, true, false, true])
    }

    @Test("priority queue: highest first, ties in arrival order, lowest shed when full")
    func priorityQueue() {
        var q = PriorityQueue<String>(capacity: 3)
        #expect(q.push("a", priority: 1) == nil)
        #expect(q.push("b", priority: 5) == nil)
        #expect(q.push("c", priority: 5) == nil)
        #expect(q.push("d", priority: 0) == "d")  // the newcomer is the lowest
        #expect(q.push("e", priority: 3) == "a")
        #expect(q.pop() == "b")
        #expect(q.pop() == "c")
        #expect(q.pop() == "e")
        #expect(q.pop() == nil)
    }
}
