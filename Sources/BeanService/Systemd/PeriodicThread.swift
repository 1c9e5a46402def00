import BeanCore
import Dispatch
import Foundation

/// A dedicated thread that runs `body` every `period` until stopped. Its own thread, not a shared
/// queue: the status ticker and the watchdog must keep their cadence whatever the pools are doing.
final class PeriodicThread: @unchecked Sendable {
    private let stopSignal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let thread: Thread

    /// `body` returns false to end the loop early.
    /// `waitFirst`: the first run comes one period after `start`, not at once.
    init(name: String, period: Duration, waitFirst: Bool = false, body: @escaping (_ stop: DispatchSemaphore) -> Bool) {
        let stopSignal = self.stopSignal
        let finished = self.finished
        let nanoseconds = Int(period.components.seconds) * 1_000_000_000 + Int(period.components.attoseconds / 1_000_000_000)
        thread = Thread {
            CurrentThread.setName(name)
            defer { finished.signal() }
            if waitFirst, stopSignal.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success { return }
            while true {
                guard body(stopSignal) else { return }
                if stopSignal.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success { return }
            }
        }
        thread.name = name
    }

    func start() { thread.start() }

    /// Asks the loop to end and waits for it up to `timeout`; false when it did not end in time
    /// (a wedged loop: the caller carries on without it).
    @discardableResult
    func stop(timeout: Duration) -> Bool {
        stopSignal.signal()
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return finished.wait(timeout: .now() + .milliseconds(milliseconds)) == .success
    }
}
