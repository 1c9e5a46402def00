#if canImport(Glibc)
import Glibc
#endif

/// A store directory: generation files `gen-NNNNNNNNNNNN.bstore` and the `CURRENT` pointer (one
/// line naming the current generation file). `LOCK` serialises writers (flock, released by the
/// kernel when a writer dies).
public enum StoreDirectory {
    public static let pointerName = "CURRENT"
    static let lockName = "LOCK"
    static let prefix = "gen-"
    static let suffix = ".bstore"

    public static func fileName(generation: UInt64) -> String {
        let digits = String(generation)
        return prefix + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + suffix
    }

    /// The generation number of a well-formed generation file name, else nil.
    public static func generationNumber(fileName name: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }

    /// Path of the generation `CURRENT` points to.
    public static func currentPath(directory: String) throws -> String {
        let pointer = directory + "/" + pointerName
        let text: String
        do {
            text = try readSmallFile(pointer)
        } catch let reason as StoreError.Reason {
            if case .cannotOpen(let e) = reason, e == ENOENT {
                throw StoreError(path: directory, reason: .noCurrentGeneration)
            }
            throw StoreError(path: pointer, reason: reason)
        }
        var name = text
        if name.hasSuffix("\n") { name.removeLast() }
        guard generationNumber(fileName: name) != nil else {
            throw StoreError(path: pointer, reason: .badPointer(String(name.prefix(80))))
        }
        let path = directory + "/" + name
        guard access(path, F_OK) == 0 else { throw StoreError(path: pointer, reason: .pointerTargetMissing(name)) }
        return path
    }

    /// Opens and validates the current generation.
    public static func openCurrent(directory: String, expecting identity: EncoderIdentity? = nil) throws -> StoreGeneration {
        try StoreGeneration(path: currentPath(directory: directory), expecting: identity)
    }

    /// Generation files present, oldest first.
    public static func generations(directory: String) throws -> [(number: UInt64, name: String)] {
        guard let dir = opendir(directory) else {
            throw StoreError(path: directory, reason: .cannotOpen(errno: errno))
        }
        defer { closedir(dir) }
        var found: [(UInt64, String)] = []
        while let entry = readdir(dir) {
            let name = entryName(entry)
            if let n = generationNumber(fileName: name) { found.append((n, name)) }
        }
        return found.sorted { $0.0 < $1.0 }.map { (number: $0.0, name: $0.1) }
    }

    /// The NUL-terminated name in a dirent, decoded up to its terminator.
    static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func readSmallFile(_ path: String, limit: Int = 4096) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.Reason.cannotOpen(errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, limit) }
        guard n >= 0 else { throw StoreError.Reason.ioFailure(operation: "read", errno: errno) }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

/// Publishes generations crash-safely: a new file is written under a temporary name, fsynced,
/// renamed into place, then `CURRENT` is replaced the same way and the directory fsynced. A writer
/// killed at any point leaves the previous generation current and intact.
public struct StoreWriter: Sendable {
    public let directory: String
    /// How many generation files to keep (the current one is never pruned).
    public var keep: Int

    public init(directory: String, keep: Int = 3) {
        self.directory = directory
        self.keep = max(1, keep)
    }

    public struct Published: Sendable {
        public var generation: UInt64
        public var path: String
        public var count: Int
    }

    /// Reads the current generation (or starts from `initial` when the store is empty), lets `body`
    /// change it, and publishes the result, all under the store's writer lock.
    @discardableResult
    public func update(creatingWith initial: @autoclosure () throws -> GenerationDraft?,
                       _ body: (inout GenerationDraft) throws -> Void) throws -> Published {
        try createDirectoryIfNeeded()
        let lock = try acquireLock()
        defer { close(lock) }
        var draft: GenerationDraft
        do {
            draft = GenerationDraft(copying: try StoreDirectory.openCurrent(directory: directory))
        } catch let error as StoreError where error.reason == .noCurrentGeneration {
            guard let start = try initial() else { throw error }
            draft = start
        }
        do {
            try body(&draft)
        } catch let reason as StoreError.Reason {
            throw StoreError(path: directory, reason: reason)
        }
        return try publishLocked(draft)
    }

    /// Publishes `draft` as the next generation.
    @discardableResult
    public func publish(_ draft: GenerationDraft) throws -> Published {
        try createDirectoryIfNeeded()
        let lock = try acquireLock()
        defer { close(lock) }
        return try publishLocked(draft)
    }

    private func publishLocked(_ draft: GenerationDraft) throws -> Published {
        removeStaleTemporaries()
        let existing = try StoreDirectory.generations(directory: directory)
        let number = (existing.last?.number ?? 0) + 1
        let name = StoreDirectory.fileName(generation: number)
        let temporary = directory + "/." + name + ".tmp"
        let final = directory + "/" + name
        try writeFile(temporary) { fd in
            let layout = draft.layout
            try check(ftruncate(fd, off_t(layout.fileLength)), "ftruncate", temporary)
            guard layout.fileLength > 0 else { return }
            guard let map = mmap(nil, layout.fileLength, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
                  map != MAP_FAILED else {
                throw StoreError(path: temporary, reason: .cannotMap(errno: errno))
            }
            defer { munmap(map, layout.fileLength) }
            draft.serialize(into: map, layout: layout, generation: number, createdNs: wallClockNs())
        }
        try check(rename(temporary, final), "rename", final)
        try syncDirectory()

        let pointerTemporary = directory + "/." + StoreDirectory.pointerName + ".tmp"
        try writeFile(pointerTemporary) { fd in
            let line = Array((name + "\n").utf8)
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == line.count else { throw StoreError(path: pointerTemporary, reason: .ioFailure(operation: "write", errno: errno)) }
        }
        try check(rename(pointerTemporary, directory + "/" + StoreDirectory.pointerName), "rename", pointerTemporary)
        try syncDirectory()
        prune(current: number)
        return Published(generation: number, path: final, count: draft.count)
    }

    /// Deletes all but the newest `keep` generation files. Readers that still map a deleted file
    /// keep their mapping; the kernel frees it when they unmap.
    private func prune(current: UInt64) {
        guard let all = try? StoreDirectory.generations(directory: directory), all.count > keep else { return }
        for entry in all.dropLast(keep) where entry.number != current {
            unlink(directory + "/" + entry.name)
        }
    }

    /// Temporaries left by a writer that died; only a lock holder writes them, so under the lock
    /// every one is stale.
    private func removeStaleTemporaries() {
        guard let dir = opendir(directory) else { return }
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = StoreDirectory.entryName(entry)
            if name.hasPrefix("."), name.hasSuffix(".tmp") { stale.append(name) }
        }
        closedir(dir)
        for name in stale { unlink(directory + "/" + name) }
    }

    private func createDirectoryIfNeeded() throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw StoreError(path: directory, reason: .ioFailure(operation: "mkdir", errno: errno))
        }
    }

    private func acquireLock() throws -> Int32 {
        let path = directory + "/" + StoreDirectory.lockName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(path: path, reason: .cannotOpen(errno: errno)) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let e = errno
                close(fd)
                throw StoreError(path: path, reason: .ioFailure(operation: "flock", errno: e))
            }
        }
        return fd
    }

    private func writeFile(_ path: String, _ fill: (Int32) throws -> Void) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(path: path, reason: .cannotOpen(errno: errno)) }
        do {
            try fill(fd)
            try check(fsync(fd), "fsync", path)
            try check(close(fd), "close", path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
    }

    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(path: directory, reason: .cannotOpen(errno: errno)) }
        defer { close(fd) }
        try check(fsync(fd), "fsync", directory)
    }

    private func check(_ result: Int32, _ operation: String, _ path: String) throws {
        guard result == 0 else { throw StoreError(path: path, reason: .ioFailure(operation: operation, errno: errno)) }
    }
}

func wallClockNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
