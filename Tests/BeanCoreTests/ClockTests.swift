import Testing
@testable import BeanCore

@Suite struct ClockTests {
    @Test func monotonicNeverGoesBack() {
        var last = MonotonicInstant.now()
        for _ in 0..<10_000 {
            let now = MonotonicInstant.now()
            #expect(now >= last)
            last = now
        }
    }

    @Test func secondsSinceIsSignedDifference() {
        let a = MonotonicInstant(nanoseconds: 5_000_000_000)
        let b = MonotonicInstant(nanoseconds: 3_500_000_000)
        #expect(a.seconds(since: b) == 1.5)
        #expect(b.seconds(since: a) == -1.5)
        #expect(a.microseconds == 5_000_000)
    }

    @Test func frameStrideDefaultsToPackedRows() {
        let f = Frame(camera: "c", sequence: 1, captured: .now(), width: 4, height: 2, format: .rgb24,
                      pixels: [UInt8](repeating: 0, count: 24))
        #expect(f.stride == 12)
    }
}
