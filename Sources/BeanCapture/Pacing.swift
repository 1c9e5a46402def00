import Synchronization

/// A stop request shared between a source (which polls it) and whoever owns the capture thread.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    func raise() { raised.store(true, ordering: .releasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// Paces a synthetic source to a frame rate on the monotonic clock. Frames are scheduled at
/// start + n/fps, not "sleep 1/fps after each frame", so generation time does not slow the rate;
/// a source that falls behind by more than a frame restarts the schedule instead of bursting
/// (`waitForNextFrame`), or skips to the frame due now (`waitForDueFrame`).
struct FramePacer {
    let fps: Double
    private var start: UInt64 = 0
    private var index: UInt64 = 0

    /// `fps` ≤ 0 means unpaced (as fast as the consumer takes frames).
    init(fps: Double) { self.fps = fps }

    mutating func waitForNextFrame(stop: StopFlag) {
        guard fps > 0 else { return }
        let now = monotonicNanoseconds()
        if index == 0 { start = now }
        let due = start + UInt64(Double(index) * 1e9 / fps)
        if due > now {
            interruptibleSleep(seconds: Double(due - now) / 1e9) { stop.isRaised }
        } else if now - due > UInt64(1e9 / fps) {
            start = now
            index = 0
        }
        index += 1
    }

    /// For a source that shows a scene moving in real time (the belt simulator): waits until the
    /// next frame is due and returns its index and due time. A source that has fallen more than a
    /// frame behind skips to the latest frame already due, as a camera's driver drops the frames
    /// nobody took, so that a frame's content always matches its time. (Restarting the schedule
    /// instead, as `waitForNextFrame` does for replays, showed the belt one frame further on while
    /// the clock had moved on by the whole stall: the tracker then saw the belt slow down, lost
    /// its tracks and decided some beans twice.)
    mutating func waitForDueFrame(stop: StopFlag) -> (index: UInt64, due: UInt64) {
        let now = monotonicNanoseconds()
        guard fps > 0 else {
            defer { index += 1 }
            return (index, now)
        }
        if index == 0 { start = now }
        var due = start + UInt64(Double(index) * 1e9 / fps)
        if due > now {
            interruptibleSleep(seconds: Double(due - now) / 1e9) { stop.isRaised }
        } else {
            let latest = UInt64((Double(now - start) * fps / 1e9).rounded(.down))
            if latest > index {
                index = latest
                due = start + UInt64(Double(index) * 1e9 / fps)
            }
        }
        defer { index += 1 }
        return (index, due)
    }
}

/// A small ring of pixel arrays that synthetic and converted frames are written into.
///
/// `Frame.pixels` is an array, so a frame handed on shares its buffer with the ring. When the
/// consumer has let go of the frame by the time the ring comes round to that slot again, the slot
/// is written in place and no memory is allocated; when it still holds it, copy-on-write gives the
/// consumer's frame its own buffer — correct, merely slower. A ring of a few slots covers a
/// consumer that keeps the last frames of a bounded handoff.
struct PixelBufferRing {
    private var slots: [[UInt8]]
    private var next = 0

    init(slots: Int) { self.slots = Array(repeating: [], count: max(1, slots)) }

    /// Fills the next slot (resized to `count` bytes) with `body` and returns it for a frame.
    mutating func fill(count: Int, _ body: (UnsafeMutableBufferPointer<UInt8>) throws -> Void) rethrows -> [UInt8] {
        let index = next
        next = (next + 1) % slots.count
        if slots[index].count != count {
            slots[index] = [UInt8](repeating: 0, count: count)
        }
        try slots[index].withUnsafeMutableBufferPointer { try body($0) }
        return slots[index]
    }
}
