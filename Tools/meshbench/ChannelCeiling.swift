import Foundation
import MeshChannel
import MeshCrypto

/// CPU nanoseconds per transferred byte, each side's process and both together.
struct CPUPerByte: Equatable {
    var client: Double
    var server: Double
    var total: Double { self.client + self.server }

    init(client: Double, server: Double) {
        self.client = client
        self.server = server
    }

    /// Each process's CPU nanoseconds over a transfer of `bytes` (nil when nothing was moved).
    init?(clientNanos: UInt64, serverNanos: UInt64, bytes: Int) {
        guard bytes > 0 else { return nil }
        self.client = Double(clientNanos) / Double(bytes)
        self.server = Double(serverNanos) / Double(bytes)
    }

    /// Cores kept busy while `bytes` moved at `gbps` (CPU seconds per wall second).
    func coresBusy(gbps: Double) -> Double { self.total * gbps }
}

/// The secure stream's CPU ceiling, measured rather than argued: if the secure run cost each
/// byte what the raw TCP run cost it (the kernel's loopback work and the harness) plus one
/// AEAD seal and one open (single-core, the channel's own record path), how fast could the
/// machine carry it?
///
/// - ``ceilingGBps``: `cores` shared perfectly, `cores / (raw total + seal + open)` ns per byte.
/// - ``pipelineCeilingGBps``: one thread per side, as the harness runs (each process has one
///   event loop): the slower side, `1 / max(raw client + seal, raw server + open)`.
///
/// ns per byte and GB/s are reciprocal (1 ns/B = 1 GB/s on one core).
struct ChannelCeiling: Equatable {
    var cores: Double
    var raw: CPUPerByte
    var sealNsPerByte: Double
    var openNsPerByte: Double

    /// CPU per byte the model gives the secure stream: raw's, plus one seal and one open.
    var modelNsPerByte: Double { self.raw.total + self.sealNsPerByte + self.openNsPerByte }

    var ceilingGBps: Double { self.cores / self.modelNsPerByte }

    var pipelineCeilingGBps: Double {
        1 / max(self.raw.client + self.sealNsPerByte, self.raw.server + self.openNsPerByte)
    }

    /// The ceiling as a fraction of the raw run's throughput.
    func ceilingRatio(rawGBps: Double) -> Double { self.ceilingGBps / rawGBps }

    /// What the secure run spent per byte beyond the model (negative: less than it), total
    /// and per side (client against raw client + seal, server against raw server + open).
    func extra(secure: CPUPerByte) -> CPUPerByte {
        CPUPerByte(client: secure.client - (self.raw.client + self.sealNsPerByte),
                   server: secure.server - (self.raw.server + self.openNsPerByte))
    }
}

/// Single-core ChaCha20-Poly1305 cost of the channel's bulk records, through the channel's own
/// calls: each record is a DATA header in place in the send buffer plus a chunk of a 1 MiB
/// message, sealed by ``TransportCipher/seal(_:plaintext:gathering:)`` straight from the
/// message into the buffer (as `SecureConnection.packRecord`), then opened in place by
/// ``TransportCipher/open(_:ciphertext:)`` (as `processInbound`). Rekeys fall where the
/// channel's do. Records go in batches through a 256 KiB buffer (the channel's flush and read
/// size); each batch's seals and opens are timed with this thread's CPU clock. The opened
/// plaintext of every batch is compared with what was sealed, so a broken path reports nothing.
enum AEADRecordBench {
    struct Result {
        let recordPlaintext: Int
        let records: Int
        let sealNsPerByte: Double
        let openNsPerByte: Double
    }

    /// The bytes of a DATA header ahead of a continuation chunk in a bulk record (kind, stream
    /// id, 3-byte length varint, flags).
    static let headerBytes = 6

    static func run(recordPlaintext: Int, bytes: Int) throws -> Result {
        precondition(recordPlaintext > Self.headerBytes && recordPlaintext <= 65_535 - 16, "record size")
        let key = SecureBytes(copying: (0..<32).map { UInt8($0) })
        let rekey = ChannelConfig().rekeyInterval
        let sealer = TransportCipher(key: key, rekeyInterval: rekey)
        let opener = TransportCipher(key: key, rekeyInterval: rekey)
        var message = [UInt8](repeating: 0, count: 1 << 20)
        for i in message.indices { message[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        let stride = 2 + recordPlaintext + 16
        let perBatch = max(1, (256 << 10) / stride)
        var buffer = [UInt8](repeating: 0, count: perBatch * stride)
        let chunk = recordPlaintext - Self.headerBytes
        var offset = 0
        var sealNanos: UInt64 = 0
        var openNanos: UInt64 = 0
        var records = 0
        var pieces: [TransportCipher.Gathered] = []
        pieces.reserveCapacity(1)
        // One warm-up batch, not counted.
        var batch = -1
        while records * recordPlaintext < bytes {
            var chunkOffsets: [Int] = []
            chunkOffsets.reserveCapacity(perBatch)
            let t0 = Clock.threadCPU()
            var failure: ChannelError?
            buffer.withUnsafeMutableBytes { out in
                do throws(ChannelError) {
                    for r in 0..<perBatch {
                        let start = r * stride
                        if offset + chunk > message.count { offset = 0 }
                        chunkOffsets.append(offset)
                        // The header's bytes, written where packRecord writes them.
                        for h in 0..<Self.headerBytes { out[start + 2 + h] = UInt8(h) }
                        pieces.removeAll(keepingCapacity: true)
                        pieces.append(TransportCipher.Gathered(source: message, sourceOffset: offset, count: chunk, at: start + 2 + Self.headerBytes))
                        try sealer.seal(out, plaintext: (start + 2)..<(start + 2 + recordPlaintext), gathering: pieces)
                        offset += chunk
                    }
                } catch {
                    failure = error
                }
            }
            let t1 = Clock.threadCPU()
            if let failure { throw failure }
            for r in 0..<perBatch {
                let start = r * stride + 2
                try opener.open(&buffer, ciphertext: start..<(start + recordPlaintext + 16))
            }
            let t2 = Clock.threadCPU()
            for r in 0..<perBatch {
                let start = r * stride + 2 + Self.headerBytes
                let same = buffer.withUnsafeBytes { b in
                    message.withUnsafeBytes { m in
                        memcmp(b.baseAddress! + start, m.baseAddress! + chunkOffsets[r], chunk) == 0
                    }
                }
                guard same else { throw CommandFailureBox("AEAD bench: opened record \(r) differs from what was sealed") }
            }
            if batch >= 0 {
                sealNanos += t1 - t0
                openNanos += t2 - t1
                records += perBatch
            }
            batch += 1
        }
        let total = Double(records * recordPlaintext)
        return Result(recordPlaintext: recordPlaintext, records: records,
                      sealNsPerByte: Double(sealNanos) / total, openNsPerByte: Double(openNanos) / total)
    }
}
