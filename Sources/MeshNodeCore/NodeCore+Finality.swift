import MeshChain
import MeshChannel
import MeshCodec
import MeshCrypto
import MeshDiscovery
import MeshFinality
import MeshGossip

/// The glue between the chain and the finality gadget, and the gadget's one path to peers:
/// votes, commits and equivocation evidence for everyone travel by gossip (relayed only once
/// the gadget checked them); requests and their answers travel on the direct stream
/// `/tm/grandpa/1` to one peer, and are never relayed.
extension NodeCore {
    /// A message on the direct finality stream: a request, a catch-up, or votes answering
    /// our vote request. Handled by the gadget; never relayed.
    func receiveFinality(_ message: [UInt8], from id: PeerID, now: NodeTime) {
        guard let m = try? FinalityMessage.decode(message) else {
            self.penalize(id, "undecodable finality message", now: now)
            return
        }
        self.counters.finalityMessages += 1
        if self.applyFinality(m, from: id, now: now) == .reject { self.penalize(id, "invalid finality message", by: 20, now: now) }
    }

    /// Hands a finality message to the gadget and acts on its verdict: a checked vote may
    /// point at a block we lack (ahead of our best: sync; on a fork range sync does not
    /// follow: fetched by hash, from the voter's own node when connected); a commit with a
    /// supermajority of valid signatures on an unknown block makes us fetch that block. Only
    /// what the gadget checked is accepted for relay.
    func applyFinality(_ m: FinalityMessage, from id: PeerID?, now: NodeTime) -> ValidationResult {
        let (verdict, actions) = self.finality.receive(m, from: id ?? -1, now: now.instant)
        if case .voteRequest(let round, _) = m {
            self.logFinality.debug("vote request", ["peer": "\(id ?? -1)", "round": "\(round)", "ours": "\(self.finality.round)", "answers": "\(actions.count)"])
        }
        self.process(actions, now: now)
        switch verdict {
        case .valid:
            if case .vote(let v) = m { self.fetchTarget(v.target, voter: v.voter, from: id, now: now) }
            return .accept
        case .needsBlock(let target):
            self.fetchTarget(target, voter: nil, from: id, now: now)
            return .ignore
        case .irrelevant:
            return .ignore
        case .invalid:
            return .reject
        }
    }

    func fetchTarget(_ target: VoteTarget, voter: AccountID?, from id: PeerID?, now: NodeTime) {
        guard !self.chain.contains(target.hash), target.number > self.chain.finalized.number else { return }
        if let id, target.number > self.chain.best.number { self.requestSync(from: id, now: now) }
        // By hash only near our chain (a fork a few blocks off); far ahead is range sync's job.
        if target.number <= self.chain.best.number.addingSaturated(SyncState.maxFetchAhead) {
            self.fetchBlock(target.hash, voter: voter, from: id, now: now)
        }
    }

    /// Performs the gadget's actions in order; a vote is persisted durably before anything
    /// after it (its broadcast) happens, and a failed write stops the rest. Then re-reads the
    /// gadget's next deadline.
    func process(_ actions: [FinalityAction], now: NodeTime) {
        defer { self.finalityAt = self.finality.nextDeadline(after: now.instant) }
        for a in actions {
            switch a {
            case .persist(let state):
                do { try self.chain.store.putMeta(MetaKey.voter, state.encoded, durable: true) } catch {
                    self.logFinality.error("cannot persist finality vote; not sending it", ["error": "\(error)"])
                    return
                }
            case .broadcast(let m):
                switch m {
                case .vote, .commit, .equivocation:
                    self.publish(GossipTopic.finality, m.encoded, now: now)
                case .voteRequest, .catchUpRequest, .catchUp:
                    // Requests go to each peer directly: gossip would deduplicate a repeated
                    // request, and its validation accepts only votes, commits and evidence.
                    let bytes = m.encoded
                    if case .voteRequest(let round, _) = m { self.logFinality.debug("asking peers for votes", ["round": "\(round)", "peers": "\(self.peers.ordered.count)"]) }
                    for p in self.peers.ordered { self.emit(.send(p.id, protocol: ProtocolName.finality, bytes)) }
                }
            case .send(let id, let m):
                if self.peers.isConnected(id) { self.emit(.send(id, protocol: ProtocolName.finality, m.encoded)) }
            case .finalize(let target, let commit):
                do {
                    try self.chain.finalize(target.hash, justification: commit.encoded)
                    self.emit(.event(.finalized(ChainPointer(number: target.number, hash: target.hash))))
                    self.logFinality.debug("finalized", ["number": "#\(target.number)", "round": "\(commit.round)"])
                } catch {
                    self.logFinality.warn("finalization not applied", ["target": "#\(target.number)", "error": "\(error)"])
                }
            case .equivocation(let e):
                self.logFinality.warn("finality equivocation detected", ["voter": String(e.first.voter.hex.prefix(16)), "round": "\(e.first.round)"])
                self.reportEquivocation(e, now: now)
            case .authoritySetChanged(let setId, let authorities):
                do {
                    try self.chain.store.putMeta(MetaKey.finalitySet, FinalitySetInfo(setId: setId, authorities: authorities).encoded, durable: true)
                } catch {
                    // The gadget moved on; a restart before the next write re-derives the set
                    // from the finalized state's digests.
                    self.logFinality.error("cannot persist the new validator set", ["setId": "\(setId)", "error": "\(error)"])
                }
                self.logFinality.info("validator set changed", ["setId": "\(setId)", "validators": "\(authorities.count)"])
            }
        }
    }

    /// Reports equivocation evidence on chain (validators only), through our own pool.
    func reportEquivocation(_ e: Equivocation, now: NodeTime) {
        guard self.isValidator else { return }
        let state = self.chain.bestState
        let tx = Transaction(signer: self.key, nonce: state.nonce(self.key.publicKey), validUntil: state.number.addingSaturated(64),
                             fee: state.params.baseFee, call: .reportEquivocation(evidence: e.encoded), genesis: self.chain.genesisHash)
        do { _ = try self.submit(tx, now: now) } catch {
            self.logFinality.debug("equivocation report not submitted", ["error": "\(error)"])
        }
    }
}

extension NodeCore {
    /// Writes the gadget's round state (rounds, votes by target number, estimates) at debug
    /// level, for an operator asking why finality does not advance. The driver calls it with
    /// its periodic status line.
    public func logFinalityState(now: NodeTime) {
        self.logFinality.debug("voter state", ["state": self.finality.debugDescription, "timerIn": "\(self.finalityAt.since(now.instant))",
                                               "timers": self.finality.timersDescription(now: now.instant)])
    }
}
