#if canImport(Glibc)
import Glibc
#endif

/// Sleeps in short slices until `seconds` passed or `shouldStop` turns true; never spins.
func interruptibleSleep(seconds: Double, shouldStop: () -> Bool) {
    guard seconds > 0 else { return }
    let start = monotonicNanoseconds()
    let end = start + UInt64(seconds * 1e9)
    while !shouldStop() {
        let now = monotonicNanoseconds()
        if now >= end { return }
        let slice = min(end - now, 50_000_000)
        var ts = timespec(tv_sec: Int(slice / 1_000_000_000), tv_nsec: Int(slice % 1_000_000_000))
        nanosleep(&ts, nil)
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
