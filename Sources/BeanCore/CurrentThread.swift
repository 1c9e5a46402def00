import CThread
#if canImport(Glibc)
import Glibc
#endif

/// The calling thread as the kernel sees it: its name (`top -H`, `ps -L`, `/proc/PID/task/*/comm`)
/// and its scheduling priority. Foundation's `Thread.name` does not reach the kernel on Linux, so
/// every long-lived thread of beand names itself here when it starts.
public enum CurrentThread {
    /// Sets the kernel's name of the calling thread; the kernel keeps 15 bytes, so longer names
    /// are cut (on a UTF-8 boundary).
    public static func setName(_ name: String) {
        let utf8 = Array(name.utf8)
        var count = min(15, utf8.count)
        // Do not cut inside a multi-byte character: back up to its first byte.
        while count > 0, count < utf8.count, utf8[count] & 0xC0 == 0x80 { count -= 1 }
        var bytes = Array(utf8[..<count])
        bytes.append(0)
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                if let name = chars.baseAddress { _ = beand_thread_set_name(name) }
            }
        }
    }

    /// The kernel's name of the calling thread.
    public static var name: String {
        var buffer = [CChar](repeating: 0, count: 16)
        guard beand_thread_get_name(&buffer) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sets the calling thread's nice value (only its own: on Linux, nice is per thread) to the
    /// process's plus `offset`, within 0…19 above it. Dispatch gives its worker threads their own
    /// nice values by QoS (-2 for user-initiated work when it may), so a thread that must share
    /// the CPU on known terms sets it here. Returns the error number on failure (the thread keeps
    /// its priority).
    @discardableResult
    public static func setPriority(relativeToProcess offset: Int32) -> Int32? {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        errno = 0
        // The main thread's id is the process id: its nice is the process's.
        let process = getpriority(which, id_t(getpid()))
        if process == -1 && errno != 0 { return errno }
        let target = min(19, process + min(19, max(0, offset)))
        return setpriority(which, id_t(beand_thread_id()), target) == 0 ? nil : errno
    }

    /// The calling thread's nice value.
    public static var niceness: Int32 {
        getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(beand_thread_id()))
    }
}
