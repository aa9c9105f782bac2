/// The connection's queue of encoded control frames (hello, OPEN, WINDOW, RESET, PING, PONG,
/// CLOSE) waiting to be encrypted. A FIFO with O(1) removal from the front, that counts its
/// bytes so the connection can bound what a peer makes it owe (a flood of PINGs whose PONGs
/// the peer never reads must not grow memory or cost O(n²) to drain).
struct ControlQueue {
    private var frames: [[UInt8]] = []
    private var head = 0
    /// Encoded bytes queued.
    private(set) var bytes = 0

    var isEmpty: Bool { self.head == self.frames.count }
    var count: Int { self.frames.count - self.head }
    var first: [UInt8]? { self.isEmpty ? nil : self.frames[self.head] }

    mutating func append(_ frame: [UInt8]) {
        self.frames.append(frame)
        self.bytes += frame.count
    }

    /// Puts `frame` at position `offset` from the front (0 or 1: a CLOSE goes ahead of
    /// everything but a queued hello).
    mutating func insert(_ frame: [UInt8], at offset: Int) {
        self.frames.insert(frame, at: self.head + min(offset, self.count))
        self.bytes += frame.count
    }

    mutating func removeFirst() {
        precondition(!self.isEmpty, "removeFirst on an empty control queue")
        self.bytes -= self.frames[self.head].count
        self.frames[self.head] = []
        self.head += 1
        if self.head == self.frames.count {
            self.frames.removeAll(keepingCapacity: self.frames.capacity <= 1024)
            self.head = 0
        } else if self.head >= 1024 && self.head * 2 >= self.frames.count {
            self.frames.removeFirst(self.head)
            self.head = 0
        }
    }

    mutating func removeAll() {
        self.frames = []
        self.head = 0
        self.bytes = 0
    }
}
