import BeanCore

/// What a full queue does with one more element. Every pipeline arrow names one.
public enum OverloadPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Evict the oldest element to make room (freshest data wins: frames).
    case dropOldest
    /// Refuse the new element (work already queued wins).
    case dropNewest
    /// Wait up to the given time for room, then refuse the new element.
    case blockWithTimeout(milliseconds: Int)

    public var description: String {
        switch self {
        case .dropOldest: return "drop-oldest"
        case .dropNewest: return "drop-newest"
        case .blockWithTimeout(let ms): return "block-with-timeout(\(ms) ms)"
        }
    }
}

/// Outcome of `BoundedQueue.push`. Refused or evicted elements come back to the caller so that
/// nothing vanishes silently (a dropped bean still gets the fail-safe verdict).
public enum PushOutcome<Element> {
    case enqueued
    /// Enqueued after evicting this (oldest) element.
    case evicted(Element)
    /// Not enqueued: the queue was full (drop-newest, or block-with-timeout timed out).
    case refused(Element)
    /// Not enqueued: the queue is closed.
    case closed(Element)

    public var isEnqueued: Bool {
        switch self {
        case .enqueued, .evicted: return true
        case .refused, .closed: return false
        }
    }
}

/// Counters and depth of one queue, for status and the statistics snapshot.
public struct QueueGauge: Sendable, Hashable, Encodable {
    private enum CodingKeys: String, CodingKey {
        case name, policy, depth, capacity, highWater = "high_water", enqueued
        case droppedOldest = "dropped_oldest", droppedNewest = "dropped_newest", timedOut = "timed_out"
    }

    public var name: String
    public var policy: String
    public var depth: Int
    public var capacity: Int
    /// Highest depth seen since the queue was made.
    public var highWater: Int
    public var enqueued: UInt64
    public var droppedOldest: UInt64
    public var droppedNewest: UInt64
    /// Pushes refused after waiting (block-with-timeout).
    public var timedOut: UInt64

    public init(name: String, policy: String, depth: Int, capacity: Int, highWater: Int, enqueued: UInt64,
                droppedOldest: UInt64, droppedNewest: UInt64, timedOut: UInt64) {
        self.name = name
        self.policy = policy
        self.depth = depth
        self.capacity = capacity
        self.highWater = highWater
        self.enqueued = enqueued
        self.droppedOldest = droppedOldest
        self.droppedNewest = droppedNewest
        self.timedOut = timedOut
    }

    public var dropped: UInt64 { droppedOldest + droppedNewest + timedOut }
}

/// Anything that can report a `QueueGauge` from any thread.
public protocol QueueGaugeSource: AnyObject, Sendable {
    func gauge() -> QueueGauge
}

/// A fixed-capacity FIFO between pipeline stages, safe for any number of producers and consumers.
/// Storage is allocated once; push and pop do not allocate. `close()` wakes everyone: pushes are
/// refused from then on, pops drain what is left and then return nil.
public final class BoundedQueue<Element>: QueueGaugeSource, @unchecked Sendable {
    public let name: String
    public let capacity: Int
    public let policy: OverloadPolicy

    // Guarded by `lock`.
    private let lock = ConditionLock()
    private var slots: [Element?]
    private var head = 0
    private var count = 0
    private var isClosed = false
    private var highWater = 0
    private var enqueued: UInt64 = 0
    private var droppedOldest: UInt64 = 0
    private var droppedNewest: UInt64 = 0
    private var timedOut: UInt64 = 0

    public init(name: String, capacity: Int, policy: OverloadPolicy) {
        precondition(capacity >= 1, "queue \(name): capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self.slots = Array(repeating: nil, count: capacity)
    }

    @discardableResult
    public func push(_ element: Element) -> PushOutcome<Element> {
        lock.lock()
        defer { lock.unlock() }
        return pushLocked(element)
    }

    /// Pushes several elements under one hold of the lock, so a consumer waiting in `popBatch`
    /// takes them together (a frame's beans reach the encoder as one batch, not one by one).
    /// Elements the overload policy evicted or refused, and any refused after `close()`, are
    /// appended to `displaced`.
    public func push<S: Sequence>(contentsOf elements: S, displaced: inout [Element]) where S.Element == Element {
        lock.lock()
        defer { lock.unlock() }
        for element in elements {
            switch pushLocked(element) {
            case .enqueued: break
            case .evicted(let old), .refused(let old), .closed(let old): displaced.append(old)
            }
        }
    }

    // Lock held.
    private func pushLocked(_ element: Element) -> PushOutcome<Element> {
        if isClosed { return .closed(element) }
        if count < capacity {
            append(element)
            return .enqueued
        }
        switch policy {
        case .dropOldest:
            let oldest = removeFirst()
            droppedOldest += 1
            append(element)
            // Not nil: the queue was full.
            return oldest.map { .evicted($0) } ?? .enqueued
        case .dropNewest:
            droppedNewest += 1
            return .refused(element)
        case .blockWithTimeout(let milliseconds):
            let deadline = MonotonicInstant.now().nanoseconds + UInt64(max(milliseconds, 0)) * 1_000_000
            while count >= capacity, !isClosed {
                if !lock.wait(untilNanoseconds: deadline), count >= capacity {
                    timedOut += 1
                    return .refused(element)
                }
            }
            if isClosed { return .closed(element) }
            append(element)
            return .enqueued
        }
    }

    /// The oldest element, waiting up to `timeoutMilliseconds` (nil: forever) for one. Nil on
    /// timeout, or when the queue is closed and empty.
    public func pop(timeoutMilliseconds: Int? = nil) -> Element? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = timeoutMilliseconds.map { MonotonicInstant.now().nanoseconds + UInt64(max($0, 0)) * 1_000_000 }
        while count == 0 {
            if isClosed { return nil }
            if !lock.wait(untilNanoseconds: deadline), count == 0 { return nil }
        }
        return removeFirst()
    }

    /// Appends up to `maxCount` elements to `batch`: waits up to `timeoutMilliseconds` (nil:
    /// forever) for the first, then takes what is queued without waiting more. For stages that
    /// work in batches (the encoder's BLAS path); reusing `batch` avoids allocating per batch.
    /// Returns how many were appended (0 on timeout, or when closed and empty).
    @discardableResult
    public func popBatch(maxCount: Int, timeoutMilliseconds: Int? = nil, into batch: inout [Element]) -> Int {
        popBatch(maxCount: maxCount, timeoutNanoseconds: timeoutMilliseconds.map { UInt64(max($0, 0)) * 1_000_000 },
                 into: &batch)
    }

    /// `popBatch` with a timeout in nanoseconds (nil waits for ever).
    public func popBatch(maxCount: Int, timeoutNanoseconds: UInt64?, into batch: inout [Element]) -> Int {
        guard maxCount > 0 else { return 0 }
        lock.lock()
        defer { lock.unlock() }
        let deadline = timeoutNanoseconds.map { MonotonicInstant.now().nanoseconds + $0 }
        while count == 0 {
            if isClosed { return 0 }
            if !lock.wait(untilNanoseconds: deadline), count == 0 { return 0 }
        }
        let taken = min(count, maxCount)
        for _ in 0..<taken {
            if let element = removeFirst() { batch.append(element) }
        }
        return taken
    }

    /// Pops without waiting.
    public func tryPop() -> Element? {
        lock.withLock { count == 0 ? nil : removeFirst() }
    }

    /// Refuses further pushes and wakes all waiters.
    public func close() {
        lock.withLock {
            isClosed = true
            lock.broadcast()
        }
    }

    public var depth: Int { lock.withLock { count } }

    /// Whether `close()` was called.
    public var closed: Bool { lock.withLock { isClosed } }

    public func gauge() -> QueueGauge {
        lock.withLock {
            QueueGauge(name: name, policy: policy.description, depth: count, capacity: capacity, highWater: highWater,
                       enqueued: enqueued, droppedOldest: droppedOldest, droppedNewest: droppedNewest, timedOut: timedOut)
        }
    }

    // Lock held.
    private func append(_ element: Element) {
        slots[(head + count) % capacity] = element
        count += 1
        enqueued += 1
        if count > highWater { highWater = count }
        lock.broadcast()
    }

    // Lock held, count > 0.
    private func removeFirst() -> Element? {
        let element = slots[head]
        slots[head] = nil
        head = (head + 1) % capacity
        count -= 1
        lock.broadcast()
        return element
    }
}
