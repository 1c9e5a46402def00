import BeanCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The store a running daemon queries: holds the current generation and swaps in a new one when
/// `CURRENT` changes (inotify on the directory) or on an explicit `reload()` (SIGHUP, the control
/// command). A query takes a strong reference to one generation for its whole duration, so it sees
/// the old or the new generation, never a mix; the old mapping goes away with its last query.
public final class LiveStore: @unchecked Sendable {
    // @unchecked: `generation` is guarded by `lock`; `reloadLock` serialises reloads; the watcher
    // thread is owned by `start/stopWatching` under `watchLock`.
    public let directory: String
    public let identity: EncoderIdentity?

    public enum Event: Sendable {
        /// A new generation is now served.
        case swapped(from: UInt64, to: UInt64, path: String, count: Int)
        /// A new generation was refused; the previous one keeps serving.
        case refused(StoreError)
    }

    public enum ReloadOutcome: Sendable, Equatable {
        case unchanged(generation: UInt64)
        case swapped(from: UInt64, to: UInt64)
        case refused(StoreError)
    }

    private let onEvent: @Sendable (Event) -> Void
    private let lock = NSLock()
    private var generation: StoreGeneration
    private let reloadLock = NSLock()
    private let watchLock = NSLock()
    private var watcher: Watcher?

    /// Opens the current generation; throws if it is missing, corrupt or incompatible (there is
    /// nothing older to fall back to at start-up).
    public init(directory: String, expecting identity: EncoderIdentity? = nil,
                onEvent: @escaping @Sendable (Event) -> Void = { _ in }) throws {
        self.directory = directory
        self.identity = identity
        self.onEvent = onEvent
        self.generation = try StoreDirectory.openCurrent(directory: directory, expecting: identity)
    }

    deinit { stopWatching() }

    /// The generation serving now. Holding the returned object keeps its mapping alive.
    public var current: StoreGeneration {
        lock.lock()
        defer { lock.unlock() }
        return generation
    }

    public func search(queries: [Float], k: Int, metric: Metric? = nil,
                       options: SearchOptions = SearchOptions()) throws -> SearchResults {
        try current.search(queries: queries, k: k, metric: metric, options: options)
    }

    /// Opens the generation `CURRENT` names and swaps it in if it is new and valid.
    @discardableResult
    public func reload() -> ReloadOutcome {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        let serving = current
        let candidate: StoreGeneration
        do {
            let path = try StoreDirectory.currentPath(directory: directory)
            var st = stat()
            if stat(path, &st) == 0, path == serving.path,
               StoreGeneration.FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) == serving.fileID {
                return .unchanged(generation: serving.generation)
            }
            candidate = try StoreGeneration(path: path, expecting: identity)
        } catch let error as StoreError {
            onEvent(.refused(error))
            return .refused(error)
        } catch {
            let wrapped = StoreError(path: directory, reason: .invalidInput("\(error)"))
            onEvent(.refused(wrapped))
            return .refused(wrapped)
        }
        lock.lock()
        generation = candidate
        lock.unlock()
        onEvent(.swapped(from: serving.generation, to: candidate.generation, path: candidate.path, count: candidate.count))
        return .swapped(from: serving.generation, to: candidate.generation)
    }

    /// Starts a thread that reloads whenever `CURRENT` is replaced in the directory.
    public func startWatching() throws {
        watchLock.lock()
        defer { watchLock.unlock() }
        guard watcher == nil else { return }
        watcher = try Watcher(directory: directory) { [weak self] in self?.reload() }
    }

    public func stopWatching() {
        watchLock.lock()
        let w = watcher
        watcher = nil
        watchLock.unlock()
        w?.stop()
    }
}

/// inotify on the store directory; calls `changed` when `CURRENT` is renamed into place. Stops via
/// a pipe so the thread never blocks shutdown.
private final class Watcher: @unchecked Sendable {
    // @unchecked: the descriptors are written once in init and closed once after the thread joined.
    private let inotifyFD: Int32
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private let done = DispatchSemaphore(value: 0)

    init(directory: String, changed: @escaping @Sendable () -> Void) throws {
        let ifd = inotify_init1(Int32(IN_CLOEXEC))
        guard ifd >= 0 else { throw StoreError(path: directory, reason: .ioFailure(operation: "inotify_init1", errno: errno)) }
        let mask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_CREATE)
        guard inotify_add_watch(ifd, directory, mask) >= 0 else {
            let e = errno
            close(ifd)
            throw StoreError(path: directory, reason: .ioFailure(operation: "inotify_add_watch", errno: e))
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let e = errno
            close(ifd)
            throw StoreError(path: directory, reason: .ioFailure(operation: "pipe", errno: e))
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let efd = pipeFDs[0]
        inotifyFD = ifd
        stopFD = efd
        stopWriteFD = pipeFDs[1]
        let thread = Thread { [ifd, efd, done] in
            CurrentThread.setName("store-watch")
            Watcher.loop(inotifyFD: ifd, stopFD: efd, changed: changed)
            done.signal()
        }
        thread.name = "beand-store-watch"
        thread.start()
    }

    func stop() {
        var one: UInt8 = 1
        _ = write(stopWriteFD, &one, 1)
        done.wait()
        close(inotifyFD)
        close(stopFD)
        close(stopWriteFD)
    }

    private static func loop(inotifyFD: Int32, stopFD: Int32, changed: @Sendable () -> Void) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            let length = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            guard length > 0 else { continue }
            var sawPointer = false
            buffer.withUnsafeBytes { raw in
                var offset = 0
                let header = MemoryLayout<inotify_event>.size
                while offset + header <= length {
                    let nameLength = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    if nameLength > 0 {
                        let start = offset + header
                        let bytes = raw[start..<(start + nameLength)].prefix { $0 != 0 }
                        if String(decoding: bytes, as: UTF8.self) == StoreDirectory.pointerName { sawPointer = true }
                    }
                    offset += header + nameLength
                }
            }
            if sawPointer { changed() }
        }
    }
}
