import BeanCore
import BeanInspect
import Foundation
import NIOPosix
import Testing
@testable import BeanService

/// Runs a real `RejectStreamServer` for Tests/integration/70-reject-stream.sh, whose Python
/// consumers check the stream from outside the process. Skipped unless that script sets
/// BEAND_REJECTS_DRIVER_DIR.
///
/// Commands arrive as `<dir>/command` (written by rename): `ID VERB ARGS…`; each is answered by
/// `<dir>/ack` = `ID RESULT`. Verbs: `publish COUNT RATE` (events per second; result: last seq),
/// `restart` (clean stop and start on the same state directory; result: first seq of the new run),
/// `stats` (result: JSON), `stop`.
@Suite struct RejectStreamDriver {
    static let directory = ProcessInfo.processInfo.environment["BEAND_REJECTS_DRIVER_DIR"]

    @Test(.enabled(if: directory != nil, "run by Tests/integration/70-reject-stream.sh"))
    func serveForIntegrationScript() async throws {
        let directory = try #require(Self.directory)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Python consumers on a shared two-core machine can stall for a second or more; a larger
        // backlog than the default gives them that slack (the defaults are covered in-process).
        let configuration = RejectStreamConfiguration(socketPath: directory + "/rejects.sock", ringCapacity: 8192,
                                                      consumerBacklogLimit: 4096)
        func start() async throws -> RejectStreamServer {
            try await RejectStreamServer.start(configuration: configuration,
                                               sequenceFile: try RejectSequenceFile(stateDirectory: directory),
                                               eventLoop: group.next())
        }
        var server = try await start()
        try acknowledge(0, "ready \(server.firstSequence)", in: directory)
        var lastID = 0
        var bean: UInt64 = 0
        var idle = 0
        loop: while true {
            guard let (id, words) = readCommand(in: directory), id > lastID else {
                idle += 1
                if idle > 12_000 { throw RejectTestError("no command from the integration script for 60 s") }
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            idle = 0
            lastID = id
            switch words.first {
            case "publish":
                let count = Int(words[1]) ?? 0, rate = Double(words[2]) ?? 1000
                var last: UInt64 = 0
                let start = MonotonicInstant.now()
                for i in 0..<count {
                    bean += 1
                    last = server.publish(sampleRejectEvent(bean: bean, neighbors: 10)) ?? 0
                    let due = Double(i + 1) / rate
                    let ahead = due - MonotonicInstant.now().seconds(since: start)
                    if ahead > 0.002 { try await Task.sleep(for: .microseconds(Int(ahead * 1e6))) }
                }
                try acknowledge(id, "\(last)", in: directory)
            case "restart":
                await server.shutdown()
                server = try await start()
                try acknowledge(id, "\(server.firstSequence)", in: directory)
            case "stats":
                let s = await server.statistics()
                try acknowledge(id, "{\"consumers\":\(s.consumers),\"published\":\(s.published),\"last_seq\":\(s.lastSequence),"
                                + "\"overflow_events\":\(s.consumerOverflowEvents),\"gaps\":\(s.gapsSent),"
                                + "\"protocol_errors\":\(s.protocolErrors)}", in: directory)
            case "stop":
                await server.shutdown()
                try acknowledge(id, "stopped", in: directory)
                break loop
            default:
                throw RejectTestError("unknown driver command \(words)")
            }
        }
        try await group.shutdownGracefully()
    }

    private func readCommand(in directory: String) -> (Int, [String])? {
        guard let text = try? String(contentsOfFile: directory + "/command", encoding: .utf8) else { return nil }
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let id = words.first.flatMap({ Int($0) }) else { return nil }
        return (id, Array(words.dropFirst()))
    }

    private func acknowledge(_ id: Int, _ result: String, in directory: String) throws {
        try BeanInspect.AtomicFile.write("\(id) \(result)\n", to: directory + "/ack")
    }
}
