#if canImport(Glibc)
import Glibc
#endif

/// A point on CLOCK_MONOTONIC in nanoseconds: the clock every pipeline timestamp uses, so latencies
/// survive wall-clock steps (NTP, operator changing the time).
public struct MonotonicInstant: Sendable, Hashable, Comparable, Codable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    /// Microseconds, as systemd's MONOTONIC_USEC= wants them.
    public var microseconds: UInt64 { nanoseconds / 1_000 }

    public func seconds(since earlier: MonotonicInstant) -> Double {
        Double(Int64(bitPattern: nanoseconds &- earlier.nanoseconds)) / 1e9
    }

    public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }
}
