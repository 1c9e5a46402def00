#if canImport(Glibc)
import Glibc
#endif

/// The file-system operations the spool writer needs, each failing with the path and the errno
/// text. Plain POSIX calls: they run on the spool's own thread, never on a pipeline thread.
enum SpoolFiles {
    struct Failure: Error, CustomStringConvertible, Equatable {
        var path: String
        var operation: String
        var code: Int32
        var description: String { "\(path): \(operation): \(String(cString: strerror(code))) (errno \(code))" }
    }

    /// `mkdir -p` with mode 0750 for the parts it creates.
    static func makeDirectories(_ path: String) throws(Failure) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o750) == 0 || errno == EEXIST {
                // EEXIST for a file in the way: the open below reports ENOTDIR on that path.
                continue
            }
            throw Failure(path: prefix, operation: "mkdir", code: errno)
        }
    }

    /// A complete file under its hidden temporary name, not yet flushed or renamed.
    struct PendingFile {
        let temporary: String
        let final: String
        private var fd: Int32

        /// Writes `bytes` to `directory/.fileName.tmp` and starts writing it back to disk without
        /// waiting, so that a batch of files is flushed together by the `commit`s that follow.
        init(_ bytes: [UInt8], directory: String, fileName: String) throws(Failure) {
            temporary = directory + "/." + fileName + ".tmp"
            final = directory + "/" + fileName
            fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw Failure(path: temporary, operation: "open", code: errno) }
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    let code = errno
                    abandon()
                    throw Failure(path: temporary, operation: "write", code: code)
                }
                written += n
            }
            // Linux starts writeback of the dirty pages here (and drops them once clean); without
            // it each file's flush below would wait for its own journal commit in turn.
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        }

        /// Flushes the file, then gives it its final name: that name only ever names a complete
        /// file, also after a crash (without the flush the renamed name could point at an empty one).
        mutating func commit() throws(Failure) {
            if fdatasync(fd) != 0 {
                let code = errno
                abandon()
                throw Failure(path: temporary, operation: "fdatasync", code: code)
            }
            close(fd)
            fd = -1
            if rename(temporary, final) != 0 {
                let code = errno
                unlink(temporary)
                throw Failure(path: final, operation: "rename", code: code)
            }
        }

        /// Closes and deletes the temporary file.
        mutating func abandon() {
            if fd >= 0 { close(fd) }
            fd = -1
            unlink(temporary)
        }
    }

    /// Writes one file atomically (`PendingFile` then `commit`).
    static func writeAtomically(_ bytes: [UInt8], directory: String, fileName: String) throws(Failure) {
        var pending = try PendingFile(bytes, directory: directory, fileName: fileName)
        try pending.commit()
    }

    /// Deletes a file; one that is already gone (moved away by a reviewer) is not an error.
    /// Returns whether it was still there.
    @discardableResult
    static func remove(_ path: String) throws(Failure) -> Bool {
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw Failure(path: path, operation: "unlink", code: errno)
    }

    struct Scan {
        var files: [SpoolLedger.Entry] = []
        var removedTemporaries = 0
    }

    /// Every regular `*.jpg` file under `root` (relative paths, sizes, modification times), at any
    /// depth (reviewers may add folders). Temporary files left by a crash are deleted. Symbolic
    /// links are neither followed nor counted. A missing root is an empty spool.
    static func scan(_ root: String) throws(Failure) -> Scan {
        var scan = Scan()
        var pending = [""]
        while let relative = pending.popLast() {
            let path = relative.isEmpty ? root : root + "/" + relative
            guard let dir = opendir(path) else {
                if relative.isEmpty && errno == ENOENT { return scan }
                throw Failure(path: path, operation: "opendir", code: errno)
            }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name == "." || name == ".." { continue }
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                let childPath = root + "/" + childRelative
                var info = stat()
                guard lstat(childPath, &info) == 0 else { continue }  // vanished meanwhile
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    pending.append(childRelative)
                case S_IFREG:
                    if SpoolName.isTemporary(name) {
                        if unlink(childPath) == 0 { scan.removedTemporaries += 1 }
                    } else if name.lowercased().hasSuffix(".jpg") {
                        let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
                        scan.files.append(SpoolLedger.Entry(path: childRelative, bytes: Int64(info.st_size), modified: modified))
                    }
                default:
                    continue
                }
            }
        }
        return scan
    }
}
