import BeanCore
import BeanInspect
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import BeanService

@Suite(.serialized) struct RejectStreamServerTests {
    private func withServer(_ configure: (inout RejectStreamConfiguration) -> Void = { _ in },
                            sequenceFile: RejectSequenceFile? = nil,
                            _ body: (RejectStreamServer, String) async throws -> Void) async throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = RejectStreamConfiguration(socketPath: directory + "/r.sock", resumeWindowMilliseconds: 200)
        configure(&configuration)
        let server = try await RejectStreamServer.start(configuration: configuration, sequenceFile: sequenceFile,
                                                        eventLoop: group.next())
        do {
            try await body(server, configuration.socketPath)
        } catch {
            await server.shutdown()
            try await group.shutdownGracefully()
            throw error
        }
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func manyConsumersReceiveEveryEventOnceInOrder() async throws {
        try await withServer { server, path in
            let clients = try (0..<8).map { _ in try RejectTestConsumer(path: path) }
            for client in clients { client.send("{\"resume_after\": 0}\n") }
            try await waitForConsumers(server, 8)
            // Four publishers at once; sequence numbers must still reach every consumer in order.
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                for i in 0..<250 { server.publish(sampleRejectEvent(bean: UInt64(worker * 1000 + i))) }
            }
            for client in clients {
                var received = ReceivedStream()
                var beans: Set<UInt64> = []
                while received.events.count < 1000, let object = client.readObject() {
                    received.take(object)
                    if let bean = object.streamUInt("bean_id") { beans.insert(bean) }
                }
                #expect(received.events.elementsEqual(1...1000))
                #expect(received.gaps.isEmpty)
                #expect(received.errors.isEmpty)
                #expect(beans.count == 1000)
            }
            let stats = await server.statistics()
            #expect(stats.consumers == 8)
            #expect(stats.published == 1000)
            #expect(stats.lastSequence == 1000)
        }
    }

    @Test func consumerKilledMidStreamResumesWithoutMissingSequence() async throws {
        try await withServer { server, path in
            let publisher = Thread {
                for i in 1...600 {
                    server.publish(sampleRejectEvent(bean: UInt64(i)))
                    if i % 20 == 0 { usleep(5_000) }
                }
            }
            var first = try RejectTestConsumer(path: path)
            first.send("{\"resume_after\":0}\n")
            publisher.start()
            var seen: [UInt64] = []
            while seen.count < 150, let object = first.readObject() {
                if object.streamType == "reject", let seq = object.streamUInt("seq") { seen.append(seq) }
            }
            // Killed: the socket goes away with unread data in flight.
            first = try RejectTestConsumer(path: path)
            _ = first
            let resumed = try RejectTestConsumer(path: path)
            resumed.send("{\"resume_after\": \(seen.last ?? 0)}\n")
            var received = ReceivedStream()
            while (received.events.last ?? 0) < 600, let object = resumed.readObject() { received.take(object) }
            #expect(received.gaps.isEmpty)
            #expect(received.errors.isEmpty)
            #expect((seen + received.events).elementsEqual(1...600))
        }
    }

    @Test func resumeOlderThanTheRingGetsAnEvictedGapThenTheRest() async throws {
        try await withServer({ $0.ringCapacity = 16; $0.consumerBacklogLimit = 16 }) { server, path in
            for i in 1...50 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
            let client = try RejectTestConsumer(path: path)
            client.send("{\"resume_after\": 10}\n")
            var received = ReceivedStream()
            while received.events.count < 16, let object = client.readObject() { received.take(object) }
            #expect(received.gaps.count == 1)
            #expect(received.gaps.first?.from == 11)
            #expect(received.gaps.first?.to == 34)
            #expect(received.gaps.first?.reason == "evicted")
            #expect(received.events == Array(35...50))
        }
    }

    @Test func withoutResumeAConsumerGetsEventsPublishedSinceItConnected() async throws {
        try await withServer { server, path in
            for i in 1...5 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
            let client = try RejectTestConsumer(path: path)
            try await waitForConsumers(server, 1)
            for i in 6...8 { server.publish(sampleRejectEvent(bean: UInt64(i))) }  // inside the resume window
            var received = ReceivedStream()
            while received.events.count < 3, let object = client.readObject() { received.take(object) }
            #expect(received.events == [6, 7, 8])
        }
    }

    @Test func stalledConsumerGetsAnOverflowGapOthersAreUnaffectedPublisherNeverWaits() async throws {
        try await withServer({
            $0.consumerBacklogLimit = 1024
            $0.writeBufferLowWater = 1024
            $0.writeBufferHighWater = 4096
        }) { server, path in
            let stalled = try RejectTestConsumer(path: path, receiveBuffer: 4096)
            stalled.send("{\"resume_after\": 0}\n")
            let healthy = try RejectTestConsumer(path: path)
            healthy.send("{\"resume_after\": 0}\n")
            try await Task.sleep(for: .milliseconds(50))

            let count = 3000
            var latencies: [UInt64] = []
            latencies.reserveCapacity(count)
            let reader = Thread {
                var received = ReceivedStream()
                while received.events.count < count, let object = healthy.readObject(timeout: 20) { received.take(object) }
                HealthyReaderResult.shared.set(received)
            }
            reader.start()
            for i in 1...count {
                let event = sampleRejectEvent(bean: UInt64(i), neighbors: 10)  // ~700 bytes a line
                let start = MonotonicInstant.now()
                server.publish(event)
                latencies.append(MonotonicInstant.now().nanoseconds - start.nanoseconds)
                // Bursts of 100 at 5,000 events/s: the reading consumer keeps up, the stalled one
                // falls more than the backlog limit (1,024) behind.
                if i % 100 == 0 { usleep(20_000) }
            }
            latencies.sort()
            let p50 = Double(latencies[count / 2]) / 1e3, p99 = Double(latencies[count * 99 / 100]) / 1e3
            let max = Double(latencies[count - 1]) / 1e3
            print("publish latency with a stalled consumer: p50 \(p50) µs, p99 \(p99) µs, max \(max) µs")
            // Not a benchmark: a publisher that waited for the stalled consumer would never finish;
            // the bound only catches gross regressions (a blocking write, a disk sync).
            #expect(max < 250_000)

            for _ in 0..<2_000 where HealthyReaderResult.shared.get() == nil { try await Task.sleep(for: .milliseconds(10)) }
            let healthyReceived = try #require(HealthyReaderResult.shared.get())
            #expect(healthyReceived.events.elementsEqual(1...UInt64(count)))
            #expect(healthyReceived.gaps.isEmpty)

            // The stalled consumer now reads: what it got plus its gaps cover every number once.
            var received = ReceivedStream()
            while (received.events.last ?? 0) < UInt64(count), let object = stalled.readObject() { received.take(object) }
            #expect(!received.gaps.isEmpty)
            #expect(received.gaps.allSatisfy { $0.reason == "overflow" })
            #expect(received.coverage.elementsEqual(1...UInt64(count)))
            let stats = await server.statistics()
            let lost = received.gaps.reduce(0) { $0 + $1.to - $1.from + 1 }
            #expect(stats.consumerOverflowEvents == lost)
        }
    }

    @Test func handoffOverflowIsReportedAsDroppedToEveryone() async throws {
        try await withServer({ $0.handoffCapacity = 2; $0.resumeWindowMilliseconds = 0 }) { server, path in
            let client = try RejectTestConsumer(path: path)
            try await waitForConsumers(server, 1)
            // Hold the event loop so that the hand-off fills up.
            let release = DispatchSemaphore(value: 0)
            server.eventLoop.execute { release.wait() }
            for i in 1...6 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
            release.signal()
            try await server.eventLoop.submit {}.get()  // the loop has taken the hand-off
            server.publish(sampleRejectEvent(bean: 7))
            var received = ReceivedStream()
            while (received.events.last ?? 0) < 7, let object = client.readObject() { received.take(object) }
            #expect(received.events == [1, 2, 7])
            #expect(received.gaps.count == 1)
            #expect(received.gaps.first.map { [$0.from, $0.to] } == [3, 6])
            #expect(received.gaps.first?.reason == "dropped")
            #expect(await server.statistics().handoffDropped == 4)
        }
    }

    @Test func garbageGetsAnErrorLineAndTheConnectionStays() async throws {
        try await withServer { server, path in
            let client = try RejectTestConsumer(path: path)
            client.send("hello there\n")
            let error = try #require(client.readObject())
            #expect(error.streamType == "error")
            #expect((error["error"] as? String)?.contains("expected {\"resume_after\": N}") == true)
            #expect((error["error"] as? String)?.contains("hello there") == true)
            server.publish(sampleRejectEvent(bean: 1))
            #expect(client.readObject()?.streamUInt("seq") == 1)
            client.send("{\"resume_after\": 0}\n")  // too late: only the first line may resume
            #expect((client.readObject()?["error"] as? String)?.contains("only one") == true)
            client.send("\u{0}\u{ff}\n")
            #expect(client.readObject()?.streamType == "error")
            server.publish(sampleRejectEvent(bean: 2))
            #expect(client.readObject()?.streamUInt("seq") == 2)
        }
    }

    @Test(arguments: ["{\"resume_after\": -1}", "{\"resume_after\": 1.5}", "{\"resume_after\": \"3\"}", "[1]",
                      "{\"resume_after\": 1, \"x\": 2}", "{\"resume_after\": 99999999999999999999}"])
    func malformedResumeRequestsAreRefusedAndStreamLive(request: String) async throws {
        try await withServer { server, path in
            server.publish(sampleRejectEvent(bean: 1))
            let client = try RejectTestConsumer(path: path)
            client.send(request + "\n")
            #expect(client.readObject()?.streamType == "error")
            server.publish(sampleRejectEvent(bean: 2))
            #expect(client.readObject()?.streamUInt("seq") == 2)  // live, no replay of 1
        }
    }

    @Test func resumeAheadOfTheNewestIsAnErrorThenLive() async throws {
        try await withServer { server, path in
            server.publish(sampleRejectEvent(bean: 1))
            let client = try RejectTestConsumer(path: path)
            client.send("{\"resume_after\": 500}\n")
            let error = client.readObject()
            #expect((error?["error"] as? String)?.contains("ahead of the newest sequence number 1") == true)
            server.publish(sampleRejectEvent(bean: 2))
            #expect(client.readObject()?.streamUInt("seq") == 2)
        }
    }

    @Test func overlongLineAndErrorFloodsClose() async throws {
        try await withServer { server, path in
            let long = try RejectTestConsumer(path: path)
            long.send(String(repeating: "x", count: 5000))
            #expect((long.readObject()?["error"] as? String)?.contains("longer than 1024 bytes") == true)
            #expect(long.waitForClose())

            let flood = try RejectTestConsumer(path: path)
            flood.send(String(repeating: "nonsense\n", count: 20))
            var errors = 0
            while let object = flood.readObject(), object.streamType == "error" { errors += 1 }
            #expect(errors == 9)  // 8 allowed plus the closing one
            #expect(flood.closedByPeer)

            // The server is still fine.
            let client = try RejectTestConsumer(path: path)
            client.send("{\"resume_after\":0}\n")
            server.publish(sampleRejectEvent(bean: 1))
            #expect(client.readObject()?.streamUInt("seq") == 1)
        }
    }

    @Test func halfClosedConsumerKeepsReceiving() async throws {
        try await withServer { server, path in
            for i in 1...3 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
            let client = try RejectTestConsumer(path: path)
            client.send("{\"resume_after\": 1}")  // no newline: the half-close ends the line
            shutdown(client.fd, Int32(SHUT_WR))
            var received = ReceivedStream()
            while received.events.count < 2, let object = client.readObject() { received.take(object) }
            #expect(received.events == [2, 3])
            server.publish(sampleRejectEvent(bean: 4))
            #expect(client.readObject()?.streamUInt("seq") == 4)
        }
    }

    @Test func lateResumeIsHonouredWhileNothingWasSent() async throws {
        try await withServer({ $0.resumeWindowMilliseconds = 10 }) { server, path in
            for i in 1...3 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
            let client = try RejectTestConsumer(path: path)
            try await waitForConsumers(server, 1)
            try await Task.sleep(for: .milliseconds(50))  // window over, streaming live, nothing sent yet
            client.send("{\"resume_after\": 1}\n")
            var received = ReceivedStream()
            while received.events.count < 2, let object = client.readObject() { received.take(object) }
            #expect(received.events == [2, 3])
            #expect(received.errors.isEmpty)
        }
    }

    @Test func randomBytesNeverHurtTheServer() async throws {
        try await withServer({ $0.resumeWindowMilliseconds = 20 }) { server, path in
            var generator = SystemRandomNumberGenerator()
            for round in 0..<40 {
                let client = try RejectTestConsumer(path: path)
                let length = Int.random(in: 1...3000, using: &generator)
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if round % 2 == 0 { bytes = bytes.map { $0 == 0x0a ? 0x20 : $0 } + [0x0a] }
                _ = bytes.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                // Every answer is a JSON error line (or nothing), never anything else.
                while let object = client.readObject(timeout: 0.2) { #expect(object.streamType == "error") }
            }
            let client = try RejectTestConsumer(path: path)
            client.send("{\"resume_after\": 0}\n")
            server.publish(sampleRejectEvent(bean: 1))
            #expect(client.readObject()?.streamUInt("seq") == 1)
        }
    }

    @Test func consumerLimitRefusesWithAnError() async throws {
        try await withServer({ $0.maxConsumers = 1 }) { _, path in
            let first = try RejectTestConsumer(path: path)
            let second = try RejectTestConsumer(path: path)
            #expect((second.readObject()?["error"] as? String)?.contains("too many consumers") == true)
            #expect(second.waitForClose())
            _ = first
        }
    }

    @Test func socketModeAndGroup() async throws {
        try await withServer({ $0.group = "root" }) { _, path in
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o660)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_gid == 0)
        }
    }

    @Test func unknownGroupAndNonSocketFileAreClearErrors() async throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            _ = try await RejectStreamServer.start(
                configuration: RejectStreamConfiguration(socketPath: directory + "/r.sock", group: "no-such-group-beand"),
                sequenceFile: nil, eventLoop: group.next())
            Issue.record("started with a missing group")
        } catch {
            #expect("\(error)".contains("no-such-group-beand"))
            #expect("\(error)".contains(directory + "/r.sock"))
        }
        let regular = directory + "/not-a-socket"
        #expect(FileManager.default.createFile(atPath: regular, contents: Data("keep me".utf8)))
        do {
            _ = try await RejectStreamServer.start(configuration: RejectStreamConfiguration(socketPath: regular),
                                                   sequenceFile: nil, eventLoop: group.next())
            Issue.record("replaced a regular file")
        } catch {
            #expect("\(error)".contains(regular))
        }
        #expect(FileManager.default.contents(atPath: regular) == Data("keep me".utf8))
        try await group.shutdownGracefully()
    }

    @Test func eventsPublishedJustBeforeShutdownReachConsumersThatKeepUp() async throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await RejectStreamServer.start(
            configuration: RejectStreamConfiguration(socketPath: directory + "/r.sock", resumeWindowMilliseconds: 0),
            sequenceFile: nil, eventLoop: group.next())
        let client = try RejectTestConsumer(path: directory + "/r.sock")
        try await waitForConsumers(server, 1)
        let release = DispatchSemaphore(value: 0)
        server.eventLoop.execute { release.wait() }  // the events wait in the hand-off
        for i in 1...5 { server.publish(sampleRejectEvent(bean: UInt64(i))) }
        release.signal()
        await server.shutdown()
        var received = ReceivedStream()
        while let object = client.readObject(timeout: 2) { received.take(object) }
        #expect(received.events == [1, 2, 3, 4, 5])
        #expect(client.closedByPeer)
        try await group.shutdownGracefully()
    }

    @Test func publishAfterShutdownIsRefusedAndTheSocketIsRemoved() async throws {
        let directory = try makeRejectTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await RejectStreamServer.start(
            configuration: RejectStreamConfiguration(socketPath: directory + "/r.sock"), sequenceFile: nil, eventLoop: group.next())
        #expect(server.publish(sampleRejectEvent(bean: 1)) == 1)
        await server.shutdown()
        #expect(server.publish(sampleRejectEvent(bean: 2)) == nil)
        #expect(!FileManager.default.fileExists(atPath: directory + "/r.sock"))
        try await group.shutdownGracefully()
    }
}

/// Hand-off of the healthy reader's result between threads.
final class HealthyReaderResult: @unchecked Sendable {
    static let shared = HealthyReaderResult()
    private let lock = NSLock()
    private var value: ReceivedStream?
    func set(_ received: ReceivedStream) { lock.lock(); value = received; lock.unlock() }
    func get() -> ReceivedStream? { lock.lock(); defer { lock.unlock() }; return value }
}
