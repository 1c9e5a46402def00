import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a control request did not produce an answer; each maps to one exit code so scripts can tell
/// "daemon down" from "not allowed" from "the daemon said no".
enum ControlClientError: Error, CustomStringConvertible {
    case socketMissing(path: String)
    case notRunning(path: String, reason: String)
    case permissionDenied(path: String)
    case timedOut(path: String, seconds: Double)
    case protocolError(path: String, reason: String)
    case daemonError(message: String)

    var description: String {
        switch self {
        case .socketMissing(let path):
            return "beand is not running: control socket \(path) does not exist"
        case .notRunning(let path, let reason):
            return "beand is not running: cannot connect to \(path): \(reason)"
        case .permissionDenied(let path):
            return "permission denied: \(path) (need group beand, or beand-admin/root for changing commands)"
        case .timedOut(let path, let seconds):
            return "no answer from beand on \(path) within \(seconds) s"
        case .protocolError(let path, let reason):
            return "unreadable answer from beand on \(path): \(reason)"
        case .daemonError(let message):
            return "beand: \(message)"
        }
    }

    /// sysexits.h codes, documented in beanctl(1).
    var exitCode: Int32 {
        switch self {
        case .socketMissing, .notRunning: return 69      // EX_UNAVAILABLE
        case .permissionDenied: return 77                 // EX_NOPERM
        case .timedOut: return 75                         // EX_TEMPFAIL
        case .protocolError: return 76                    // EX_PROTOCOL
        case .daemonError(let message): return message == "permission denied" ? 77 : 1
        }
    }
}

/// One blocking request/response over the control socket (protocol v1: one JSON object per line).
/// beanctl is a short-lived process, so plain blocking I/O with a receive timeout is the simplest
/// correct client.
struct ControlClient {
    var socketPath: String
    var timeoutSeconds: Double = 5

    static let defaultSocketPath = "/run/beand/control.sock"

    /// Sends `request` and returns the `result` object of an `ok:true` answer.
    func call(_ request: [String: Any]) throws -> [String: Any] {
        var request = request
        request["proto"] = 1
        let fd = try connect()
        defer { close(fd) }
        var line = try JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])
        line.append(UInt8(ascii: "\n"))
        try writeAll(fd: fd, line)
        let answerLine = try readLine(fd: fd)
        guard let object = try? JSONSerialization.jsonObject(with: answerLine) as? [String: Any] else {
            throw ControlClientError.protocolError(path: socketPath, reason: "not a JSON object")
        }
        guard let ok = object["ok"] as? Bool else {
            throw ControlClientError.protocolError(path: socketPath, reason: "answer has no \"ok\" field")
        }
        if !ok {
            throw ControlClientError.daemonError(message: object["error"] as? String ?? "unspecified error")
        }
        return object["result"] as? [String: Any] ?? [:]
    }

    /// A connected socket for a stream that does not end (the reject stream): no receive timeout.
    func openStream() throws -> Int32 {
        try connect()
    }

    private func connect() throws -> Int32 {
        var st = stat()
        if stat(socketPath, &st) != 0 {
            if errno == EACCES { throw ControlClientError.permissionDenied(path: socketPath) }
            throw ControlClientError.socketMissing(path: socketPath)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            throw ControlClientError.notRunning(path: socketPath, reason: String(cString: strerror(errno)))
        }
        if timeoutSeconds > 0 {
            var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - Double(Int(timeoutSeconds))) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            close(fd)
            throw ControlClientError.notRunning(path: socketPath, reason: "path longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let err = errno
            close(fd)
            switch err {
            case EACCES, EPERM: throw ControlClientError.permissionDenied(path: socketPath)
            default: throw ControlClientError.notRunning(path: socketPath, reason: String(cString: strerror(err)))
            }
        }
        return fd
    }

    private func writeAll(fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK {
                        throw ControlClientError.timedOut(path: socketPath, seconds: timeoutSeconds)
                    }
                    throw ControlClientError.notRunning(path: socketPath, reason: String(cString: strerror(errno)))
                }
                offset += n
            }
        }
    }

    private func readLine(fd: Int32) throws -> Data {
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        // Answers are bounded by the daemon; cap what we accept so a wrong peer cannot exhaust memory.
        let limit = 16 << 20
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw ControlClientError.timedOut(path: socketPath, seconds: timeoutSeconds)
                }
                throw ControlClientError.notRunning(path: socketPath, reason: String(cString: strerror(errno)))
            }
            if n == 0 {
                throw ControlClientError.protocolError(path: socketPath, reason: "connection closed before a full answer")
            }
            if let newline = chunk[0..<n].firstIndex(of: UInt8(ascii: "\n")) {
                buffer.append(contentsOf: chunk[0..<newline])
                return buffer
            }
            buffer.append(contentsOf: chunk[0..<n])
            if buffer.count > limit {
                throw ControlClientError.protocolError(path: socketPath, reason: "answer longer than \(limit) bytes")
            }
        }
    }
}
