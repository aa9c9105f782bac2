/// Limits and tunables of a secure channel. Defaults suit a node; tests shrink them.
public struct ChannelConfig: Sendable {
    /// The Noise prologue (CONTRACT.md): the ASCII bytes `tensormesh/1`.
    public var prologue: [UInt8] = Array("tensormesh/1".utf8)
    /// Each direction rekeys (Noise `Rekey()`) every this many transport messages.
    public var rekeyInterval: UInt64 = 8192
    /// The largest application message accepted (after decompression).
    public var maxMessageSize: Int = 16 << 20
    /// Bytes a peer may send on one stream before we grant more (WINDOW frames).
    public var streamWindow: Int = 4 << 20
    /// Concurrently open streams a peer may have.
    public var maxStreams: Int = 256
    /// Bytes of partly received messages held per connection.
    public var maxReassemblyBytes: Int = 24 << 20
    /// Bytes of queued outgoing messages per connection before `send` refuses.
    public var maxQueuedBytes: Int = 64 << 20
    /// Messages at least this large are LZ4-compressed when that saves 10% or more.
    public var compressionThreshold: Int = 1024
    /// The handshake must finish within this long.
    public var handshakeTimeout: Duration = .seconds(5)
    /// Bytes buffered from the socket before frames are processed (bounds a slowloris).
    public var maxInboundBuffer: Int = 2 * 65_537

    /// PINGs a peer may send per second (after a burst of `pingBurst`) and have answered;
    /// more are dropped unanswered, and past `maxDroppedPings` dropped ones the peer is closed.
    public var pingsPerSecond: Double = 10
    public var pingBurst = 32
    public var maxDroppedPings = 1024
    /// Control-frame bytes owed to a peer above which its connection stops reading, and the
    /// hard limit at which it is closed.
    public var controlHighWatermark = 64 << 10
    public var maxControlBytes = 1 << 20

    /// A stream the peer opened and has sent nothing on for this long is reset; a message
    /// begun this long ago and not complete is abandoned (its stream reset); our data that
    /// has waited this long for the peer's WINDOW is abandoned.
    public var streamIdleTimeout: Duration = .seconds(120)
    public var partialTimeout: Duration = .seconds(60)
    public var windowStallTimeout: Duration = .seconds(60)
    /// With nothing received for `keepAliveInterval` the driver pings; with nothing for
    /// `idleTimeout` (not even a PONG) it closes the connection.
    public var keepAliveInterval: Duration = .seconds(30)
    public var idleTimeout: Duration = .seconds(90)

    /// Accept a peer on any genesis (diagnostic probes learn the genesis from the hello; nodes
    /// never set this).
    public var acceptAnyGenesis = false

    public init() {}
}
