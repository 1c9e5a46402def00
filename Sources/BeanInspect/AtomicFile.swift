#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small state files (thresholds, reject-stream sequence) written so that a crash or power loss
/// leaves either the old or the new content, never a mix: write a temporary file in the same
/// directory, fsync it, rename it over the target, fsync the directory so the rename is durable.
public enum AtomicFile {
    public static func write(_ contents: String, to path: String, mode: mode_t = 0o644) throws(StateFileError) {
        let directory = parentDirectory(of: path)
        // A unique name per write (mkstemp), so two writers of the same file never rename each
        // other's half-written temporary away.
        var template = Array("\(path).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let temporary = String(cString: template)
        guard fd >= 0 else { throw StateFileError(path: temporary, reason: "cannot create: \(errnoText())") }
        if fchmod(fd, mode) != 0 {
            let reason = errnoText()
            close(fd)
            unlink(temporary)
            throw StateFileError(path: temporary, reason: "chmod failed: \(reason)")
        }
        var bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = errnoText()
                close(fd)
                unlink(temporary)
                throw StateFileError(path: temporary, reason: "write failed: \(reason)")
            }
            written += n
        }
        bytes.removeAll()
        if fsync(fd) != 0 {
            let reason = errnoText()
            close(fd)
            unlink(temporary)
            throw StateFileError(path: temporary, reason: "fsync failed: \(reason)")
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let reason = errnoText()
            unlink(temporary)
            throw StateFileError(path: path, reason: "rename from \(temporary) failed: \(reason)")
        }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else {
            throw StateFileError(path: directory, reason: "cannot open directory to fsync the rename: \(errnoText())")
        }
        defer { close(dirFD) }
        if fsync(dirFD) != 0 {
            throw StateFileError(path: directory, reason: "directory fsync failed: \(errnoText())")
        }
    }

    /// The whole file as UTF-8, or nil when it does not exist. Files larger than `limit` bytes are
    /// an error: state files are small, a big one is not ours.
    public static func read(_ path: String, limit: Int = 1 << 20) throws(StateFileError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw StateFileError(path: path, reason: "cannot open: \(errnoText())")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StateFileError(path: path, reason: "read failed: \(errnoText())")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > limit { throw StateFileError(path: path, reason: "larger than \(limit) bytes") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw StateFileError(path: path, reason: "not valid UTF-8")
        }
        return text
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A state file that could not be read, parsed or written; says which file, which line, and why.
public struct StateFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var reason: String

    public init(path: String, line: Int? = nil, reason: String) {
        self.path = path
        self.line = line
        self.reason = reason
    }

    public var description: String {
        if let line { return "\(path):\(line): \(reason)" }
        return "\(path): \(reason)"
    }
}
