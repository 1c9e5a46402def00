import BeanCore
import Foundation
import Glibc
import Testing

/// A value handed back from another thread.
private final class ResultBox<T>: @unchecked Sendable { var value: T? }

@Suite struct CurrentThreadTests {
    /// Runs `body` on a fresh thread (names and nice values are per thread) and waits for it.
    private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>(), done = DispatchSemaphore(value: 0)
        let thread = Thread { box.value = body(); done.signal() }
        thread.start()
        done.wait()
        guard let value = box.value else { fatalError("thread produced no value") }
        return value
    }

    @Test func namesReachTheKernelCutToFifteenBytesOnACharacterBoundary() throws {
        let (short, long, accented) = onThread { () -> (String, String, String) in
            CurrentThread.setName("vision/belt0")
            let short = CurrentThread.name
            CurrentThread.setName("capture/a-very-long-camera-name")
            let long = CurrentThread.name
            CurrentThread.setName("vision/caméra-é")  // "é" would straddle byte 15
            return (short, long, CurrentThread.name)
        }
        #expect(short == "vision/belt0")
        #expect(long == "capture/a-very-")
        #expect(accented == "vision/caméra-")
        // The kernel shows the same name to other processes.
        let comm = onThread { () -> String in
            CurrentThread.setName("probe-thread")
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
                .first { $0.hasPrefix("probe-thread") } ?? ""
        }
        #expect(comm == "probe-thread\n")
    }

    @Test func priorityIsSetRelativeToTheProcessForTheCallingThreadOnly() {
        let before = CurrentThread.niceness
        let process = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid()))
        let (error, inside) = onThread { () -> (Int32?, Int32) in
            let error = CurrentThread.setPriority(relativeToProcess: 7)
            return (error, CurrentThread.niceness)
        }
        #expect(error == nil)
        #expect(inside == min(19, process + 7))
        #expect(CurrentThread.niceness == before)
    }
}
