#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import Testing
@testable import BeanCapture

/// Produces `count` tiny frames, then ends — or fails with `error` after them.
final class ScriptedSource: FrameSource {
    let name = "scripted"
    var remaining: Int
    var sequence: UInt64 = 0
    let error: Error?
    let stop = StopFlag()

    init(count: Int, error: Error? = nil) {
        remaining = count
        self.error = error
    }

    func requestStop() { stop.raise() }

    func nextFrame() throws -> Frame? {
        if remaining == 0 {
            if let error { throw error }
            // An endless source when count is exhausted and no error: block until stopped.
            while !stop.isRaised { usleep(1_000) }
            return nil
        }
        remaining -= 1
        sequence += 1
        return Frame(camera: name, sequence: sequence, captured: .now(), width: 1, height: 1, format: .gray8, pixels: [0])
    }
}

struct Boom: Error, Equatable {}

@Suite struct FrameHandoffTests {
    func frame(_ n: UInt64) -> Frame {
        Frame(camera: "h", sequence: n, captured: .now(), width: 1, height: 1, format: .gray8, pixels: [UInt8(n)])
    }

    func sequence(_ next: FrameHandoff.Next) -> UInt64? {
        if case .frame(let f) = next { return f.sequence }
        return nil
    }

    @Test func dropsOldestWhenFullAndCountsIt() {
        let handoff = FrameHandoff(capacity: 2)
        #expect(handoff.offer(frame(1)) == false)
        #expect(handoff.offer(frame(2)) == false)
        #expect(handoff.offer(frame(3)) == true)
        #expect(handoff.offer(frame(4)) == true)
        #expect(handoff.counters == .init(offered: 4, droppedOldest: 2))
        #expect(sequence(handoff.next(timeout: 0)) == 3)
        #expect(sequence(handoff.next(timeout: 0)) == 4)
        #expect(sequence(handoff.next(timeout: 0.01)) == nil)
    }

    @Test func timesOutWhenEmptyAndReportsTheEnd() {
        let handoff = FrameHandoff(capacity: 3)
        if case .timedOut = handoff.next(timeout: 0.02) {} else { Issue.record("expected a timeout") }
        handoff.offer(frame(7))
        handoff.finish(error: Boom())
        #expect(sequence(handoff.next()) == 7, "frames queued before the end are still delivered")
        if case .finished(let error) = handoff.next() {
            #expect(error is Boom)
        } else {
            Issue.record("expected the end of the stream")
        }
    }
}

@Suite struct CaptureThreadTests {
    @Test func deliversEveryFrameInOrderThenTheError() throws {
        let thread = CaptureThread(source: ScriptedSource(count: 50, error: Boom()), handoffCapacity: 64)
        try thread.start()
        defer { thread.stop() }
        var seen: [UInt64] = []
        loop: while true {
            switch thread.handoff.next(timeout: 5) {
            case .frame(let f): seen.append(f.sequence)
            case .timedOut: Issue.record("capture thread stalled"); break loop
            case .finished(let error):
                #expect(error is Boom)
                break loop
            }
        }
        #expect(seen == Array(1...50))
    }

    @Test func stopEndsABlockedSource() throws {
        let thread = CaptureThread(source: ScriptedSource(count: 3), handoffCapacity: 1)
        try thread.start()
        // With capacity 1 earlier frames may be dropped; the newest one always arrives.
        var last: UInt64 = 0
        while last < 3, case .frame(let f) = thread.handoff.next(timeout: 5) { last = f.sequence }
        thread.stop()
        #expect(last == 3)
        if case .finished(let error) = thread.handoff.next(timeout: 1) {
            #expect(error == nil)
        } else {
            Issue.record("stop() did not end the stream")
        }
    }
}
