import ExampleSubnets
import FlyingFox
import FlyingSocks
import Foundation
import MeshClient
import MeshCodec
import MeshCrypto
import MeshQuery
import MeshSockets
import MeshSubnet
import Synchronization

extension Gateway {
    typealias JSON = MeshCodec.JSONValue

    /// One response and what the metrics need of it.
    struct Outcome {
        var response: HTTPResponse
        var status: Int
        var bytesOut: Int
    }

    static func json(_ status: HTTPStatusCode, _ value: JSON, headers: HTTPHeaders = [:]) -> Outcome {
        var h = headers
        h[.contentType] = "application/json"
        let body = Data((value.serialized() + "\n").utf8)
        return Outcome(response: HTTPResponse(statusCode: status, headers: h, body: body), status: status.code, bytesOut: body.count)
    }

    static func error(_ status: HTTPStatusCode, _ message: String, headers: HTTPHeaders = [:]) -> Outcome {
        json(status, .object([("error", .string(message))]), headers: headers)
    }

    /// Handles one HTTP request: routing, keys, limits, accounting.
    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let started = Date()
        let path = request.path
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if request.method == .GET && path == "/metrics" {
            let ages = self.state.withLock { s in s.metagraphs.mapValues { Date().timeIntervalSince($0.at) } }
            let text = self.state.withLock { $0.metrics.prometheus(metagraphAge: ages) }
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: Data(text.utf8))
        }
        guard parts.first == "v1", parts.count >= 2 else {
            return Self.error(.notFound, "routes: POST /v1/subnets/{netuid}/{synapse}, GET /v1/subnets, PUT|GET /v1/storage/{key}, GET /v1/usage, GET /metrics").response
        }
        let route = parts[1]
        // The key first: nothing else is done for a caller without one.
        guard let presented = APIKeys.bearer(request.headers[.authorization]), let key = self.keys.lookup(presented) else {
            let o = Self.error(.unauthorized, "an API key is required: Authorization: Bearer KEY", headers: [HTTPHeader("WWW-Authenticate"): "Bearer"])
            self.state.withLock { $0.metrics.response(route: route, status: 401, key: nil, bytesIn: 0, bytesOut: o.bytesOut, seconds: 0) }
            return o.response
        }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        if case .limited(let after, let reason) = self.state.withLock({ $0.access.admit(key, now: now) }) {
            let o = Self.error(.tooManyRequests, reason + "; retry after \(after) s", headers: [HTTPHeader("Retry-After"): String(after)])
            self.state.withLock { $0.metrics.response(route: route, status: 429, key: key.name, bytesIn: 0, bytesOut: o.bytesOut, seconds: 0) }
            return o.response
        }
        var bytesIn = 0
        let outcome: Outcome
        switch (request.method, route, parts.count) {
        case (.GET, "subnets", 2):
            outcome = await self.listSubnets()
        case (.POST, "subnets", 4):
            switch await self.readBody(request, limit: self.config.maxBodyBytes) {
            case .failure(let o): outcome = o.outcome
            case .success(let body):
                bytesIn = body.count
                outcome = await self.query(netuidText: parts[2], synapse: parts[3], body: body, request: request, key: key)
            }
        case (.PUT, "storage", 3):
            switch await self.readBody(request, limit: Storage.maxObject) {
            case .failure(let o): outcome = o.outcome
            case .success(let body):
                bytesIn = body.count
                outcome = await self.putObject(key: parts[2], data: body, caller: key)
            }
        case (.GET, "storage", 3):
            outcome = await self.getObject(key: parts[2], caller: key)
        case (.GET, "usage", 2):
            outcome = self.usage(key)
        case (.GET, "organic", 3):
            outcome = self.organic(netuidText: parts[2], caller: key)
        default:
            outcome = Self.error(.notFound, "no route \(request.method.rawValue) \(path.prefix(200))")
        }
        self.state.withLock {
            $0.metrics.response(route: route, status: outcome.status, key: key.name, bytesIn: bytesIn, bytesOut: outcome.bytesOut,
                                seconds: Date().timeIntervalSince(started))
        }
        return outcome.response
    }

    /// The body, when its declared length is within `limit` (checked before reading it).
    func readBody(_ request: HTTPRequest, limit: Int) async -> Result<[UInt8], OutcomeError> {
        guard let text = request.headers[.contentLength], text.utf8.count <= 12, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let length = Int(text) else {
            return .failure(OutcomeError(Self.error(.lengthRequired, "Content-Length required")))
        }
        guard length <= limit else {
            return .failure(OutcomeError(Self.error(.payloadTooLarge, "body of \(length) bytes exceeds the limit of \(limit)", headers: [.connection: "close"])))
        }
        do {
            let data = try await request.bodyData
            guard data.count <= limit else { return .failure(OutcomeError(Self.error(.payloadTooLarge, "body exceeds the limit of \(limit)"))) }
            return .success(Array(data))
        } catch {
            return .failure(OutcomeError(Self.error(.badRequest, "cannot read the body")))
        }
    }

    struct OutcomeError: Error {
        let outcome: Outcome
        init(_ o: Outcome) { self.outcome = o }
    }

    func served(_ text: String) -> UInt16? {
        guard text.utf8.count <= 5, let n = UInt16(text), self.config.netuids.contains(n) else { return nil }
        return n
    }

    // MARK: Subnets

    func listSubnets() async -> Outcome {
        var subnets: [JSON] = []
        for netuid in self.config.netuids {
            let catalog = await self.catalog(netuid)
            let synapses: [JSON] = (catalog?.synapses ?? []).filter { $0.encoding == "json" }.map { e in
                let example = e.example.flatMap { try? JSON.parse($0, limits: .init(maxBytes: SynapseCatalog.maxExample, maxDepth: 16)) } ?? .null
                return .object([("name", .string(e.name)), ("streaming", .bool(e.streaming)), ("policy", .string(e.policy.rawValue)),
                                ("path", .string("/v1/subnets/\(netuid)/\(e.name)")), ("example", example)])
            }
            let top = self.top(netuid, k: self.config.topK).map { t in
                JSON.object([("uid", .int(t.neuron.uid)), ("hotkey", .string(t.neuron.hotkey.hex)), ("incentive", .double(t.neuron.incentive))])
            }
            subnets.append(.object([("netuid", .int(netuid)), ("synapses", .array(synapses)), ("topMiners", .array(top))]))
        }
        var out: [(String, JSON)] = [("subnets", .array(subnets))]
        if let s = self.config.storageNetuid { out.append(("storage", .object([("netuid", .int(s)), ("path", .string("/v1/storage/{key}"))]))) }
        return Self.json(.ok, .object(out))
    }

    /// A miner's signed trailer as end users see it: enough to check the signature without
    /// this gateway (Ed25519 by `responder` over `signedBytes`).
    static func receipt(_ t: QueryResponseTrailer?) -> JSON {
        guard let t, let sig = t.signature else { return .null }
        return .object([("responder", .string(t.responder.hex)), ("status", .int(t.status.rawValue)), ("requestHash", .string(Hex.encode(t.requestHash))),
                        ("bodyLength", .int(t.bodyLength)), ("bodyHash", .string(Hex.encode(t.bodyHash))),
                        ("processingMicros", .int(t.processingMicros)), ("signature", .string(Hex.encode(sig.bytes))),
                        ("signedBytes", .string(Hex.encode(t.signingBytes))), ("verified", .bool(t.isSigned(by: t.responder)))])
    }

    static func minerJSON(_ t: Target, _ r: QueryResult?) -> JSON {
        var m: [(String, JSON)] = [("uid", .int(t.neuron.uid)), ("hotkey", .string(t.neuron.hotkey.hex)), ("incentive", .double(t.neuron.incentive))]
        if let r {
            m += [("status", .int(r.status.rawValue)), ("latencyMs", .double((r.latencyMs * 10).rounded() / 10)), ("receipt", receipt(r.receipt))]
            if let f = r.failure { m.append(("error", .string(f.description))) }
        } else {
            m.append(("status", .null))
        }
        return .object(m)
    }

    /// A body as JSON when it parses, else base64 text.
    static func answerJSON(_ body: [UInt8]) -> JSON {
        (try? JSON.parse(body, limits: .init(maxBytes: 8 << 20, maxDepth: 64))) ?? .string(Data(body).base64EncodedString())
    }

    func query(netuidText: String, synapse: String, body: [UInt8], request: HTTPRequest, key: APIKeys.Entry) async -> Outcome {
        guard let netuid = self.served(netuidText) else { return Self.error(.notFound, "subnet \(netuidText.prefix(8)) is not served here") }
        guard !synapse.isEmpty, synapse.utf8.count <= QueryRequestHeader.maxSynapseName, !synapse.hasPrefix("tm."),
              synapse.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { return Self.error(.notFound, "no synapse \(synapse.prefix(64))") }
        guard (try? JSON.parse(body, limits: .init(maxBytes: self.config.maxBodyBytes, maxDepth: 64))) != nil else {
            return Self.error(.badRequest, "the body must be JSON")
        }
        let catalog = await self.catalog(netuid)
        let entry = catalog?.synapses.first { $0.name == synapse }
        if catalog != nil && entry == nil { return Self.error(.notFound, "subnet \(netuid) has no synapse \(synapse)") }
        if entry?.encoding == "binary" { return Self.error(.badRequest, "synapse \(synapse) takes binary requests, not JSON") }
        let targets = self.top(netuid, k: self.config.topK)
        guard !targets.isEmpty else { return Self.error(.serviceUnavailable, "subnet \(netuid) has no reachable miner yet") }
        let wantsStream = (entry?.streaming ?? false) || (request.headers[HTTPHeader("Accept")]?.contains("text/event-stream") ?? false)
        if wantsStream { return self.stream(netuid: netuid, synapse: synapse, body: body, targets: targets) }
        let policy = entry?.policy ?? .first
        let results = await self.ask(targets, netuid: netuid, synapse: synapse, body: body, policy: policy)
        let answers = results.compactMap { (i, r, at) -> AnswerCombiner.Answer? in
            guard let r, r.isSuccess else { return nil }
            return AnswerCombiner.Answer(uid: targets[i].neuron.uid, incentive: targets[i].neuron.incentive, body: r.body, arrivedNs: at)
        }
        let miners = JSON.array(results.map { Self.minerJSON(targets[$0.0], $0.1) })
        guard let (answer, from) = AnswerCombiner.combine(answers, policy: policy) else {
            return Self.json(.badGateway, .object([("error", .string("no miner answered")), ("miners", miners)]))
        }
        self.sample(netuid: netuid, synapse: synapse, body: body, answers: answers, targets: targets)
        return Self.json(.ok, .object([
            ("netuid", .int(netuid)), ("synapse", .string(synapse)), ("policy", .string(policy.rawValue)),
            ("answer", Self.answerJSON(answer)), ("answeredBy", .array(from.map { .int($0) })), ("miners", miners),
        ]))
    }

    /// Queries the targets at once. For `first`, the others are cancelled as soon as one
    /// answers; otherwise every answer (or failure) is waited for, within the deadline.
    func ask(_ targets: [Target], netuid: UInt16, synapse: String, body: [UInt8], policy: AnswerPolicy) async -> [(Int, QueryResult?, UInt64)] {
        await withTaskGroup(of: (Int, QueryResult, UInt64).self) { group in
            for (i, t) in targets.enumerated() {
                group.addTask { let r = await self.call(t, netuid: netuid, synapse: synapse, body: body); return (i, r, DispatchTime.now().uptimeNanoseconds) }
            }
            var out = [(Int, QueryResult?, UInt64)](targets.indices.map { ($0, nil, 0) })
            for await (i, r, at) in group {
                out[i] = (i, r, at)
                if policy == .first && r.isSuccess { group.cancelAll() }
            }
            return out
        }
    }

    /// A streaming answer as server-sent events: one `data:` event per chunk (JSON text, or
    /// base64), then `event: done` with the miner and its receipt. The top miner is asked
    /// first; while no chunk has reached the caller, a miner that fails (unreachable, refused,
    /// timed out, a bad signature) is passed over for the next one, and `done` lists every
    /// miner tried. Once chunks have gone out, the stream ends with that miner's outcome.
    func stream(netuid: UInt16, synapse: String, body: [UInt8], targets: [Target]) -> Outcome {
        // Unbounded in count, bounded in bytes: the dendrite refuses answers over its limit.
        let (events, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
        let task = Task {
            var tried: [JSON] = []
            for t in targets {
                let sent = SentFlag()
                let r = await self.call(t, netuid: netuid, synapse: synapse, body: body) { chunk in
                    let text = String(validating: chunk, as: UTF8.self).flatMap { $0.contains("\n") ? nil : $0 } ?? Data(chunk).base64EncodedString()
                    sent.set()
                    continuation.yield(Array("data: \(text)\n\n".utf8))
                }
                tried.append(Self.minerJSON(t, r))
                if r.isSuccess || sent.isSet || Task.isCancelled { break }
            }
            let done = JSON.object([("miner", tried.last ?? .null), ("tried", .array(tried))])
            continuation.yield(Array("event: done\ndata: \(done.serialized())\n\n".utf8))
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        let sequence = ByteChunks(events)
        let response = HTTPResponse(statusCode: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                                    body: HTTPBodySequence(from: sequence))
        return Outcome(response: response, status: 200, bytesOut: 0)
    }

    // MARK: Storage

    static func validObjectKey(_ k: String) -> Bool {
        !k.isEmpty && k.utf8.count <= 128 && k.utf8.allSatisfy { b in
            (0x30...0x39).contains(b) || (0x41...0x5a).contains(b) || (0x61...0x7a).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    /// The key an object has at the miners: the caller's key name and the object key, hashed,
    /// so callers cannot reach each other's objects.
    static func minerKey(keyName: String, key: String) -> String { Hex.encode(SHA256.hash(Array("\(keyName)\u{0}\(key)".utf8))) }

    func putObject(key: String, data: [UInt8], caller: APIKeys.Entry) async -> Outcome {
        guard let netuid = self.config.storageNetuid else { return Self.error(.notFound, "this gateway serves no storage subnet") }
        guard Self.validObjectKey(key) else { return Self.error(.badRequest, "object keys are 1-128 characters of A-Z a-z 0-9 - _ .") }
        let root = Hex.encode(MerkleTree(data: data, chunkSize: Storage.chunkSize).root)
        let targets = self.top(netuid, k: self.config.replication)
        guard !targets.isEmpty else { return Self.error(.serviceUnavailable, "the storage subnet has no reachable miner yet") }
        let request: [UInt8]
        do { request = try Storage.Store(key: Self.minerKey(keyName: caller.name, key: key), payload: Data(data)).encodeRequest() } catch {
            return Self.error(.badRequest, "\(error)")
        }
        let results = await self.ask(targets, netuid: netuid, synapse: Storage.Store.name, body: request, policy: .aggregate)
        var holders: [String] = []
        var replicas: [JSON] = []
        for (i, r, _) in results {
            var ok = false
            if let r, r.isSuccess, let answer = try? Storage.Store.decodeResponse(r.body), answer.root == root, answer.size == data.count {
                ok = true
                holders.append(targets[i].neuron.hotkey.hex)
            }
            var m = Self.minerJSON(targets[i], r)
            if case .object(var fields) = m { fields.append(("committed", .bool(ok))); m = .object(fields) }
            replicas.append(m)
        }
        guard !holders.isEmpty else { return Self.json(.badGateway, .object([("error", .string("no miner committed to the object")), ("replicas", .array(replicas))])) }
        let saved = self.state.withLock { s -> ObjectIndex? in
            guard s.objects.put(keyName: caller.name, key: key, .init(root: root, size: data.count, holders: holders)) else { return nil }
            return s.objects
        }
        guard let index = saved else { return Self.error(HTTPStatusCode(507, phrase: "Insufficient Storage"), "too many objects stored under this API key") }
        if let dir = self.config.stateDirectory {
            do { try index.save(path: dir + "/objects.json") } catch { self.log("cannot save the object index: \(error)") }
        }
        return Self.json(.created, .object([("key", .string(key)), ("root", .string(root)), ("size", .int(data.count)),
                                           ("replicas", .int(holders.count)), ("miners", .array(replicas))]))
    }

    func getObject(key: String, caller: APIKeys.Entry) async -> Outcome {
        guard let netuid = self.config.storageNetuid else { return Self.error(.notFound, "this gateway serves no storage subnet") }
        guard Self.validObjectKey(key), let record = self.state.withLock({ $0.objects.get(keyName: caller.name, key: key) }) else {
            return Self.error(.notFound, "no object \(key.prefix(128))")
        }
        guard let graph = self.state.withLock({ $0.metagraphs[netuid]?.graph }), let body = try? Storage.Retrieve(key: Self.minerKey(keyName: caller.name, key: key)).encodeRequest() else {
            return Self.error(.serviceUnavailable, "the storage subnet is not known yet")
        }
        // Holders still registered, the most incentive first.
        var holders = record.holders.compactMap { self.target(hotkeyHex: $0, in: graph) }
        holders.sort { $0.neuron.incentive > $1.neuron.incentive }
        var tried: [JSON] = []
        for t in holders {
            let r = await self.call(t, netuid: netuid, synapse: Storage.Retrieve.name, body: body)
            tried.append(Self.minerJSON(t, r))
            guard r.isSuccess, let answer = try? Storage.Retrieve.decodeResponse(r.body), answer.payload.count == record.size,
                  Storage.root(of: answer.payload) == record.root else { continue }
            let headers: HTTPHeaders = [.contentType: "application/octet-stream", HTTPHeader("X-Tensormesh-Root"): record.root,
                                        HTTPHeader("X-Tensormesh-Miner"): t.neuron.hotkey.hex]
            return Outcome(response: HTTPResponse(statusCode: .ok, headers: headers, body: answer.payload), status: 200, bytesOut: answer.payload.count)
        }
        return Self.json(.badGateway, .object([("error", .string("no holder returned the object intact")), ("miners", .array(tried))]))
    }

    // MARK: Usage and organic queries

    func usage(_ key: APIKeys.Entry) -> Outcome {
        let (u, used) = self.state.withLock { ($0.metrics.usage[key.name] ?? .init(), $0.access.used(key.name)) }
        return Self.json(.ok, .object([
            ("key", .string(key.name)), ("requests", .int(u.requests)), ("answered", .int(u.answered)), ("failed", .int(u.failed)),
            ("rateLimited", .int(u.rateLimited)), ("bytesIn", .int(u.bytesIn)), ("bytesOut", .int(u.bytesOut)),
            ("ratePerSecond", .double(key.ratePerSecond)), ("quota", .int(key.quota)), ("quotaUsed", .int(used)),
        ]))
    }

    static let maxOrganic = 256

    func sample(netuid: UInt16, synapse: String, body: [UInt8], answers: [AnswerCombiner.Answer], targets: [Target]) {
        guard self.config.organicSampleRate > 0, Double.random(in: 0..<1) < self.config.organicSampleRate else { return }
        let hotkeys = Dictionary(targets.map { ($0.neuron.uid, $0.neuron.hotkey.hex) }, uniquingKeysWith: { a, _ in a })
        let item = JSON.object([
            ("synapse", .string(synapse)), ("request", Self.answerJSON(body)), ("at", .int(UInt64(Date().timeIntervalSince1970))),
            ("answers", .array(answers.map { .object([("uid", .int($0.uid)), ("hotkey", .string(hotkeys[$0.uid] ?? "")), ("answer", Self.answerJSON($0.body))]) })),
        ])
        self.state.withLock { s in
            var ring = s.organic[netuid] ?? []
            ring.append(item)
            if ring.count > Self.maxOrganic { ring.removeFirst(ring.count - Self.maxOrganic) }
            s.organic[netuid] = ring
            s.metrics.organicSampled &+= 1
        }
    }

    func organic(netuidText: String, caller: APIKeys.Entry) -> Outcome {
        guard caller.organic else { return Self.error(.forbidden, "this key may not read organic queries") }
        guard let netuid = self.served(netuidText) else { return Self.error(.notFound, "subnet \(netuidText.prefix(8)) is not served here") }
        let items = self.state.withLock { s -> [JSON] in
            defer { s.organic[netuid] = [] }
            return s.organic[netuid] ?? []
        }
        return Self.json(.ok, .object([("netuid", .int(netuid)), ("queries", .array(items))]))
    }
}

/// Server-sent event bytes as the buffered byte sequence FlyingFox streams (chunked).
struct ByteChunks: AsyncBufferedSequence, Sendable {
    typealias Element = UInt8
    let source: AsyncStream<[UInt8]>
    init(_ source: AsyncStream<[UInt8]>) { self.source = source }

    func makeAsyncIterator() -> Iterator { Iterator(source: self.source.makeAsyncIterator()) }

    struct Iterator: AsyncBufferedIteratorProtocol {
        var source: AsyncStream<[UInt8]>.AsyncIterator
        var pending: [UInt8] = []

        mutating func next() async throws -> UInt8? {
            if self.pending.isEmpty {
                guard let more = await self.source.next() else { return nil }
                self.pending = more
            }
            return self.pending.isEmpty ? nil : self.pending.removeFirst()
        }

        mutating func nextBuffer(suggested count: Int) async throws -> [UInt8]? {
            while self.pending.isEmpty {
                guard let more = await self.source.next() else { return nil }
                self.pending = more
            }
            let n = Swift.min(Swift.max(1, count), self.pending.count)
            defer { self.pending.removeFirst(n) }
            return Array(self.pending[..<n])
        }
    }
}

/// Whether a streamed answer has sent anything to the caller yet.
final class SentFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { self.value.store(true, ordering: .relaxed) }
    var isSet: Bool { self.value.load(ordering: .relaxed) }
}
