import BeanCore
import BeanInspect
import Foundation
@testable import BeanService

/// A blocking Unix-socket client reading newline-delimited JSON, as a consumer program would.
final class RejectTestConsumer {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var closedByPeer = false

    init(path: String, receiveBuffer: Int? = nil) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RejectTestError("socket: \(errno)") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw RejectTestError("connect \(path): \(String(cString: strerror(code)))")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// The next line as a JSON object; nil on timeout or end of stream.
    func readObject(timeout: Double = 5) -> [String: Any]? {
        guard let line = readLine(timeout: timeout) else { return nil }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            return ["type": "unparseable", "text": String(decoding: line, as: UTF8.self)]
        }
        return object
    }

    func readLine(timeout: Double) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: 0x0a) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, !closedByPeer else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                closedByPeer = true
                continue
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads until end of stream (or timeout); true when the peer closed.
    func waitForClose(timeout: Double = 5) -> Bool {
        while readLine(timeout: timeout) != nil {}
        return closedByPeer
    }
}

struct RejectTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func makeRejectTestDirectory() throws -> String {
    var template = Array("/tmp/bstest-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw RejectTestError("mkdtemp failed")
    }
    return String(cString: made)
}

func sampleRejectEvent(bean: UInt64, neighbors: Int = 3) -> RejectEvent {
    RejectEvent(beanID: bean, camera: "cam0", frameSequence: bean / 4, lane: Int(bean % 8), verdict: .reject,
                reason: .vote, label: "Black", score: 0.75, captured: MonotonicInstant(nanoseconds: bean * 1_000),
                decided: MonotonicInstant(nanoseconds: bean * 1_000 + 500), ejectAt: nil,
                neighbors: (0..<neighbors).map { Neighbor(label: "Black", distance: Float($0) / 10, vectorID: UInt64($0)) })
}

extension Dictionary where Key == String, Value == Any {
    var streamType: String? { self["type"] as? String }
    func streamUInt(_ key: String) -> UInt64? { (self[key] as? NSNumber)?.uint64Value }
}

/// Everything a consumer received, checked against the stream's promises.
struct ReceivedStream {
    var events: [UInt64] = []
    var gaps: [(from: UInt64, to: UInt64, reason: String)] = []
    var errors: [String] = []

    mutating func take(_ object: [String: Any]) {
        switch object.streamType {
        case "reject": events.append(object.streamUInt("seq") ?? 0)
        case "gap": gaps.append((object.streamUInt("from_seq") ?? 0, object.streamUInt("to_seq") ?? 0, object["reason"] as? String ?? ""))
        default: errors.append("\(object)")
        }
    }

    /// Sequence numbers seen as events or covered by gaps, in stream order.
    var coverage: [UInt64] {
        var all = events
        for gap in gaps { all += Array(gap.from...gap.to) }
        return all.sorted()
    }
}

/// Waits until the server's event loop has accepted `count` consumers (connect() returns before that).
func waitForConsumers(_ server: RejectStreamServer, _ count: Int) async throws {
    for _ in 0..<500 {
        if await server.statistics().consumers >= count { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw RejectTestError("server did not accept \(count) consumers within 5 s")
}
