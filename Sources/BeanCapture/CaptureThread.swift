#if canImport(Glibc)
import Glibc
#endif
import BeanCore

/// The bounded queue between a capture thread and its consumer.
///
/// Overload policy: **drop-oldest**. When the consumer falls behind and the queue is full, the
/// oldest queued frame is discarded and counted, so the consumer always works on the freshest
/// frames — on a belt a stale frame shows beans that have already moved on.
public final class FrameHandoff: @unchecked Sendable {
    public struct Counters: Sendable, Equatable {
        /// Frames the producer offered.
        public var offered: UInt64
        /// Frames discarded by the drop-oldest policy.
        public var droppedOldest: UInt64
    }

    public let capacity: Int
    private let lock = ConditionLock()
    // All state below is guarded by `lock`.
    private var queue: [Frame?]
    private var head = 0
    private var count = 0
    private var tally = Counters(offered: 0, droppedOldest: 0)
    private var finished = false
    private var failure: Error?

    public init(capacity: Int) {
        precondition(capacity > 0, "handoff capacity must be positive")
        self.capacity = capacity
        self.queue = Array(repeating: nil, count: capacity)
    }

    /// Adds a frame; never blocks. Returns true when an older frame had to be dropped.
    @discardableResult
    public func offer(_ frame: Frame) -> Bool {
        lock.withLock {
            tally.offered += 1
            var dropped = false
            if count == capacity {
                queue[head] = nil
                head = (head + 1) % capacity
                count -= 1
                tally.droppedOldest += 1
                dropped = true
            }
            queue[(head + count) % capacity] = frame
            count += 1
            lock.broadcast()
            return dropped
        }
    }

    /// Marks the end of the stream (with the error that ended it, if any). Queued frames can still
    /// be taken.
    public func finish(error: Error? = nil) {
        lock.withLock {
            finished = true
            failure = error
            lock.broadcast()
        }
    }

    public enum Next {
        case frame(Frame)
        case timedOut
        /// The producer finished and the queue is empty; `error` says why if it failed.
        case finished(error: Error?)
    }

    /// Takes the oldest queued frame, waiting up to `timeout` seconds (forever when `nil`).
    public func next(timeout: Double? = nil) -> Next {
        let deadline = timeout.map { monotonicNanoseconds() + UInt64(max(0, $0) * 1e9) }
        return lock.withLock {
            while count == 0 {
                if finished { return .finished(error: failure) }
                if !lock.wait(untilNanoseconds: deadline) && count == 0 {
                    return finished ? .finished(error: failure) : .timedOut
                }
            }
            guard let frame = queue[head] else { return .timedOut }
            queue[head] = nil
            head = (head + 1) % capacity
            count -= 1
            return .frame(frame)
        }
    }

    public var counters: Counters { lock.withLock { tally } }
    public var queued: Int { lock.withLock { count } }
}

/// One thread per source: calls `nextFrame()` in a loop and offers every frame to a handoff.
///
/// Ownership: the source belongs to this thread from `start()` until the thread ends; other
/// threads only call `stop()` (which forwards `requestStop()` to the source) and read the handoff.
public final class CaptureThread: @unchecked Sendable {
    public let handoff: FrameHandoff
    private let source: FrameSource
    private var thread: pthread_t?
    private let stopFlag = StopFlag()

    public init(source: FrameSource, handoffCapacity: Int = 4) {
        self.source = source
        self.handoff = FrameHandoff(capacity: handoffCapacity)
    }

    public var name: String { source.name }

    /// Starts the thread. Call once.
    public func start() throws {
        precondition(thread == nil, "CaptureThread.start() called twice")
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let me = Unmanaged<CaptureThread>.fromOpaque(raw).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw CaptureThreadError(camera: source.name, detail: "cannot start capture thread: \(String(cString: strerror(rc)))")
        }
        thread = handle
    }

    /// Asks the source to stop and waits for the thread to end. Safe to call more than once.
    public func stop() {
        stopFlag.raise()
        source.requestStop()
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    private func run() {
        CurrentThread.setName("capture/\(source.name)")
        do {
            while !stopFlag.isRaised {
                guard let frame = try source.nextFrame() else { break }
                handoff.offer(frame)
            }
            handoff.finish()
        } catch {
            handoff.finish(error: error)
        }
    }

}

public struct CaptureThreadError: Error, CustomStringConvertible {
    public var camera: String
    public var detail: String
    public var description: String { "camera \(camera): \(detail)" }
}
