#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with one condition variable, heap-allocated so its address never moves.
/// Used by the handoff queue and the health board; both are written by one capture thread and read
/// by others.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        // Waits are measured on CLOCK_MONOTONIC so a wall-clock step cannot stretch a timeout.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Call with the lock held. Returns false when `deadline` (CLOCK_MONOTONIC ns) passed.
    func wait(untilNanoseconds deadline: UInt64?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &ts) != ETIMEDOUT
    }

    /// Call with the lock held.
    func broadcast() { pthread_cond_broadcast(condition) }
}

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
