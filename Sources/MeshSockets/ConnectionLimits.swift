/// Limits on how many connections a node keeps (an eclipse and exhaustion defence).
public struct ConnectionLimits: Sendable {
    /// All connections, both directions.
    public var maxTotal: Int
    /// Inbound connections.
    public var maxInbound: Int
    /// Outbound connections.
    public var maxOutbound: Int
    /// Connections from one IP address — for IPv6 one /64, which one host commonly holds
    /// whole (loopback is exempt so local networks work).
    public var maxPerIP: Int
    /// Whether loopback addresses are exempt from `maxPerIP`.
    public var exemptLoopback: Bool

    public init(maxTotal: Int = 1200, maxInbound: Int = 1000, maxOutbound: Int = 200, maxPerIP: Int = 8, exemptLoopback: Bool = true) {
        self.maxTotal = maxTotal
        self.maxInbound = maxInbound
        self.maxOutbound = maxOutbound
        self.maxPerIP = maxPerIP
        self.exemptLoopback = exemptLoopback
    }
}

/// Counts live connections against ``ConnectionLimits``. Loop thread only.
public final class ConnectionTracker {
    public var limits: ConnectionLimits
    public private(set) var inbound = 0
    public private(set) var outbound = 0
    private var perIP: [[UInt8]: Int] = [:]
    /// Connections refused by a limit, for metrics.
    public private(set) var refused = 0

    public init(limits: ConnectionLimits = ConnectionLimits()) { self.limits = limits }

    public var total: Int { self.inbound + self.outbound }

    /// Whether a new connection to/from `address` fits; counts it when it does.
    public func admit(_ address: SocketAddress, inbound: Bool) -> Bool {
        let l = self.limits
        var ok = self.total < l.maxTotal && (inbound ? self.inbound < l.maxInbound : self.outbound < l.maxOutbound)
        let key = Self.hostKey(address)
        if ok && !(l.exemptLoopback && address.isLoopback) && (self.perIP[key] ?? 0) >= l.maxPerIP { ok = false }
        if !ok {
            self.refused += 1
            return false
        }
        if inbound { self.inbound += 1 } else { self.outbound += 1 }
        self.perIP[key, default: 0] += 1
        return true
    }

    /// The address as one host: IPv4 whole, IPv6 its /64.
    static func hostKey(_ address: SocketAddress) -> [UInt8] { address.isIPv6 ? Array(address.ip.prefix(8)) : address.ip }

    /// Forgets a connection admitted earlier.
    public func release(_ address: SocketAddress, inbound: Bool) {
        if inbound { self.inbound -= 1 } else { self.outbound -= 1 }
        let key = Self.hostKey(address)
        if let n = self.perIP[key] {
            if n <= 1 { self.perIP[key] = nil } else { self.perIP[key] = n - 1 }
        }
    }
}
