#if canImport(Glibc)
import Glibc
#endif

/// The file side of a listening Unix socket: clearing a stale file before bind, refusing to take
/// over a live one, and setting mode and group after bind.
public enum UnixSocketFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes `path` free for bind: a socket file nobody listens on (left by a crash) is removed; a
    /// socket someone answers on, or a file that is not a socket, is an error.
    public static func prepare(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno != ENOENT { throw Failure(description: "\(path): \(String(cString: strerror(errno)))") }
            let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            var directoryInfo = stat()
            if !directory.isEmpty, stat(directory, &directoryInfo) != 0 {
                throw Failure(description: "\(path): directory \(directory): \(String(cString: strerror(errno)))")
            }
            return
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw Failure(description: "\(path) exists and is not a socket; refusing to replace it")
        }
        switch probe(path) {
        case 0:
            throw Failure(description: "\(path): another process (another beand?) is listening on this socket")
        case ECONNREFUSED, ENOENT:
            guard unlink(path) == 0 || errno == ENOENT else {
                throw Failure(description: "\(path): cannot remove stale socket: \(String(cString: strerror(errno)))")
            }
        case let error:
            throw Failure(description: "\(path): cannot check whether the socket is live: \(String(cString: strerror(error)))")
        }
    }

    /// 0 when something accepts connections at `path`, else the connect errno.
    private static func probe(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return ENAMETOOLONG }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0 ? 0 : errno
    }

    /// Runs `bind` with a umask that leaves the new socket file closed to everyone but its owner
    /// until `restrict` opens it to the group: no window in which others may connect.
    public static func withPrivateUmask<T>(_ bind: () throws -> T) rethrows -> T {
        let previous = umask(0o177)
        defer { umask(previous) }
        return try bind()
    }

    /// Sets the bound socket to `mode` (0660) with group `gid`.
    public static func restrict(_ path: String, gid: UInt32, mode: mode_t = 0o660) throws {
        guard chown(path, uid_t.max, gid) == 0 else {
            throw Failure(description: "\(path): cannot set group \(gid): \(String(cString: strerror(errno)))")
        }
        guard chmod(path, mode) == 0 else {
            throw Failure(description: "\(path): cannot set mode: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the socket file at shutdown if it is still a socket.
    public static func remove(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }
}
