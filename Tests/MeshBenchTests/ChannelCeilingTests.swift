@testable import meshbench
import Testing

/// The secure channel's CPU ceiling in `meshbench channel`: the arithmetic that turns measured
/// CPU per byte and AEAD cost into the figures the benchmark reports, and the AEAD measurement
/// itself through the channel's record calls.
@Suite("Channel CPU ceiling")
struct ChannelCeilingTests {
    @Test("CPU per byte from each process's CPU time, and the cores it kept busy")
    func cpuPerByte() throws {
        let c = try #require(CPUPerByte(clientNanos: 200_000_000, serverNanos: 600_000_000, bytes: 1_000_000_000))
        #expect(c.client == 0.2)
        #expect(c.server == 0.6)
        #expect(abs(c.total - 0.8) < 1e-12)
        // 0.8 ns of CPU per byte at 2.5 GB/s is 2 CPU-seconds per second.
        #expect(abs(c.coresBusy(gbps: 2.5) - 2.0) < 1e-12)
        #expect(CPUPerByte(clientNanos: 1, serverNanos: 1, bytes: 0) == nil)
    }

    @Test("ceiling: cores over raw's CPU per byte plus one seal and one open; the slower side bounds one thread per side")
    func ceiling() {
        let m = ChannelCeiling(cores: 2, raw: CPUPerByte(client: 0.25, server: 0.5), sealNsPerByte: 0.5, openNsPerByte: 0.75)
        #expect(m.modelNsPerByte == 2.0)
        #expect(m.ceilingGBps == 1.0)
        #expect(m.ceilingRatio(rawGBps: 2.5) == 0.4)
        // Client 0.25 + 0.5 = 0.75 ns/B, server 0.5 + 0.75 = 1.25 ns/B: the server bounds it.
        #expect(m.pipelineCeilingGBps == 0.8)
        let swapped = ChannelCeiling(cores: 2, raw: CPUPerByte(client: 0.5, server: 0.25), sealNsPerByte: 0.75, openNsPerByte: 0.5)
        #expect(swapped.pipelineCeilingGBps == 0.8)
        #expect(swapped.ceilingGBps == 1.0)
        // One core, the same work: half the ceiling.
        #expect(ChannelCeiling(cores: 1, raw: m.raw, sealNsPerByte: 0.5, openNsPerByte: 0.75).ceilingGBps == 0.5)
    }

    @Test("what the secure run spent beyond the model, per side")
    func extra() {
        let m = ChannelCeiling(cores: 2, raw: CPUPerByte(client: 0.25, server: 0.5), sealNsPerByte: 0.5, openNsPerByte: 0.75)
        let e = m.extra(secure: CPUPerByte(client: 1.25, server: 1.0))
        #expect(e.client == 0.5)
        #expect(e.server == -0.25)
        #expect(e.total == 0.25)
    }

    @Test("AEAD bench: every record sealed from the message and opened in place round-trips, and is timed")
    func aeadBench() throws {
        // 40 batches of a 256 KiB buffer of 8,000-byte records crosses no rekey (8,192 messages);
        // the second run's records cross one.
        let r = try AEADRecordBench.run(recordPlaintext: 8000, bytes: 10 << 20)
        #expect(r.recordPlaintext == 8000)
        #expect(r.records * 8000 >= 10 << 20)
        #expect(r.sealNsPerByte > 0 && r.openNsPerByte > 0)
        let long = try AEADRecordBench.run(recordPlaintext: 100, bytes: 1 << 20)
        #expect(long.records > 8192)
    }
}
