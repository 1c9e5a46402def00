import BeanCore
import BeanInspect
import Foundation
import NIOPosix
import Testing
@testable import BeanService

@Suite(.serialized) struct RejectSequenceTests {
    @Test func freshStateStartsAtOneAndReservesABlock() throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try RejectSequenceFile(stateDirectory: directory, blockSize: 100)
        #expect(file.firstSequence == 1)
        let text = try #require(try BeanInspect.AtomicFile.read(file.path))
        #expect(try RejectSequenceFile.parse(text, path: file.path) == 100)
    }

    @Test func crashWithoutFinishNeverReusesANumber() throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var issued: UInt64 = 0
        do {
            let file = try RejectSequenceFile(stateDirectory: directory, blockSize: 100)
            for seq in file.firstSequence..<(file.firstSequence + 475) {
                file.issued(seq)
                issued = seq
            }
            // Let the background reservation writes land, as they would while the daemon runs.
            for _ in 0..<500 where file.status.durableReservation < issued { usleep(2_000) }
            #expect(file.status.durableReservation >= issued)
            #expect(file.status.writeErrors == 0)
            // No finish(): the process dies here.
        }
        let restarted = try RejectSequenceFile(stateDirectory: directory, blockSize: 100)
        #expect(restarted.firstSequence > issued)
        #expect(restarted.firstSequence <= issued + 101)
    }

    @Test func failingStateDirectoryIsCountedAndNeverBlocksIssuing() throws {
        let directory = try makeRejectTestDirectory()
        let file = try RejectSequenceFile(stateDirectory: directory, blockSize: 4)
        try FileManager.default.removeItem(atPath: directory)  // the disk goes away under the daemon
        for seq in file.firstSequence..<(file.firstSequence + 40) { file.issued(seq) }
        for _ in 0..<500 where file.status.writeErrors == 0 { usleep(2_000) }
        let status = file.status
        #expect(status.writeErrors > 0)
        #expect(status.issuedBeyondReservation > 0)
        #expect(status.lastError.map { "\($0)".contains(directory) } == true)
    }

    @Test func cleanStopContinuesRightAfterTheLastNumber() async throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = RejectStreamConfiguration(socketPath: directory + "/r.sock", resumeWindowMilliseconds: 100)

        let first = try await RejectStreamServer.start(
            configuration: configuration, sequenceFile: try RejectSequenceFile(stateDirectory: directory, blockSize: 8),
            eventLoop: group.next())
        for i in 1...20 { first.publish(sampleRejectEvent(bean: UInt64(i))) }
        await first.shutdown()

        let second = try await RejectStreamServer.start(
            configuration: configuration, sequenceFile: try RejectSequenceFile(stateDirectory: directory, blockSize: 8),
            eventLoop: group.next())
        #expect(second.firstSequence == 21)
        // A consumer of the first run resumes: the numbers it missed before the restart are a gap.
        let client = try RejectTestConsumer(path: configuration.socketPath)
        client.send("{\"resume_after\": 17}\n")
        try await Task.sleep(for: .milliseconds(20))
        second.publish(sampleRejectEvent(bean: 100))
        var received = ReceivedStream()
        while received.events.isEmpty, let object = client.readObject() { received.take(object) }
        #expect(received.gaps.count == 1)
        #expect(received.gaps.first.map { [$0.from, $0.to] } == [18, 20])
        #expect(received.gaps.first?.reason == "restart")
        #expect(received.events == [21])
        await second.shutdown()
        try await group.shutdownGracefully()
    }

    @Test(arguments: [
        ("", "missing 'version = 1'"),
        ("version = 1\n", "missing key 'reserved'"),
        ("version = 1\nreserved = -4\n", ":2: reserved must be a non-negative integer"),
        ("version = 1\nreserved = 12abc\n", ":2: reserved must be a non-negative integer"),
        ("version = 7\nreserved = 1\n", ":1: unsupported version '7'"),
        ("version = 1\nreserved = 1\nreserved = 2\n", ":3: duplicate key 'reserved'"),
        ("version = 1\nnext = 1\n", ":2: unknown key 'next'"),
        ("\u{0}\u{1}garbage", ":1: expected KEY = VALUE"),
        ("version = 1\nreserved = 9007199254740990\n", "too close to the largest sequence number"),
    ])
    func corruptSequenceFileIsAClearError(content: String, expected: String) throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/rejects.seq"
        try content.write(toFile: path, atomically: false, encoding: .utf8)
        do {
            _ = try RejectSequenceFile(stateDirectory: directory)
            Issue.record("accepted \(content.debugDescription)")
        } catch {
            #expect("\(error)".hasPrefix(path))
            #expect("\(error)".contains(expected), "\(error)")
        }
        // The corrupt file is left for the operator to inspect, not overwritten.
        #expect(try String(contentsOfFile: path, encoding: .utf8) == content)
    }

    @Test func resumeRequestGrammar() {
        func parse(_ text: String) -> UInt64? { try? RejectStreamProtocol.parseResumeRequest(Array(text.utf8)).get() }
        #expect(parse("{\"resume_after\":0}") == 0)
        #expect(parse(" { \"resume_after\" :\t42 } \r") == 42)
        #expect(parse("{\"resume_after\": 18446744073709551615}") == .max)
        #expect(parse("{\"resume_after\": 18446744073709551616}") == nil)
        #expect(parse("{\"resume_after\": }") == nil)
        #expect(parse("{\"resume_after\": 1}x") == nil)
        #expect(parse("{\"Resume_after\": 1}") == nil)
        #expect(parse("{\"resume_after\": 1e3}") == nil)
        #expect(parse("") == nil)
    }

    @Test func gapAndErrorLinesAreJSON() throws {
        let gap = try JSONSerialization.jsonObject(with: Data(RejectStreamProtocol.gapLine(from: 5, to: 9, reason: .overflow).utf8)) as? [String: Any]
        #expect(gap?.streamType == "gap")
        #expect(gap?.streamUInt("count") == 5)
        let error = try JSONSerialization.jsonObject(with: Data(RejectStreamProtocol.errorLine("bad \"x\"\n").utf8)) as? [String: Any]
        #expect(error?["error"] as? String == "bad \"x\"\n")
    }
}
