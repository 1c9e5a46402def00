#if canImport(Glibc)
import Glibc
#endif
import BeanInspect
import NIOCore
import NIOPosix
import Synchronization

/// Settings of the reject stream (`[rejects]` in beand.toml plus fixed limits).
public struct RejectStreamConfiguration: Sendable, Hashable {
    public var socketPath: String
    /// Group owner of the socket; nil keeps the daemon's group.
    public var group: String?
    public var mode: mode_t
    /// M: events kept for `resume_after`.
    public var ringCapacity: Int
    /// Events one consumer may fall behind the newest before it loses the oldest (gap `overflow`).
    public var consumerBacklogLimit: Int
    /// How long after connecting a consumer may send `{"resume_after": N}`; events published in
    /// the meantime are held for it, not lost.
    public var resumeWindowMilliseconds: Int64
    public var maxConsumers: Int
    /// Longest request line accepted; a longer one closes the connection.
    public var maxRequestLineBytes: Int
    /// Error lines a consumer may provoke before it is disconnected.
    public var maxProtocolErrors: Int
    /// Bytes queued in the daemon for one consumer before it counts as not reading (NIO write
    /// buffer watermarks); the kernel socket buffer comes on top.
    public var writeBufferLowWater: Int
    public var writeBufferHighWater: Int
    /// Events handed from publishers to the stream's event loop and not yet taken by it.
    public var handoffCapacity: Int

    public init(socketPath: String, group: String? = nil, mode: mode_t = 0o660, ringCapacity: Int = 4096,
                consumerBacklogLimit: Int = 1024, resumeWindowMilliseconds: Int64 = 500, maxConsumers: Int = 64,
                maxRequestLineBytes: Int = 1024, maxProtocolErrors: Int = 8, writeBufferLowWater: Int = 32 * 1024,
                writeBufferHighWater: Int = 64 * 1024, handoffCapacity: Int = 16_384) {
        self.socketPath = socketPath
        self.group = group
        self.mode = mode
        self.ringCapacity = ringCapacity
        self.consumerBacklogLimit = consumerBacklogLimit
        self.resumeWindowMilliseconds = resumeWindowMilliseconds
        self.maxConsumers = maxConsumers
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxProtocolErrors = maxProtocolErrors
        self.writeBufferLowWater = writeBufferLowWater
        self.writeBufferHighWater = writeBufferHighWater
        self.handoffCapacity = handoffCapacity
    }

    func validate() throws(RejectStreamError) {
        func check(_ ok: Bool, _ what: String) throws(RejectStreamError) {
            if !ok { throw RejectStreamError("reject stream \(socketPath): \(what)") }
        }
        try check(!socketPath.isEmpty, "socket path is empty")
        try check(socketPath.utf8.count < 108, "socket path longer than 107 bytes")
        try check(ringCapacity >= 1, "ring capacity must be at least 1")
        try check(consumerBacklogLimit >= 1 && consumerBacklogLimit <= ringCapacity,
                  "consumer backlog limit must be in 1…ring capacity (\(ringCapacity))")
        try check(resumeWindowMilliseconds >= 0, "resume window must not be negative")
        try check(maxConsumers >= 1, "max consumers must be at least 1")
        try check(maxRequestLineBytes >= 32, "max request line must be at least 32 bytes")
        try check(writeBufferLowWater >= 1 && writeBufferLowWater <= writeBufferHighWater, "write buffer watermarks out of order")
        try check(handoffCapacity >= 1, "handoff capacity must be at least 1")
    }
}

public struct RejectStreamError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Figures for status and tests.
public struct RejectStreamStatistics: Sendable, Hashable {
    public var consumers: Int
    /// Events accepted by `publish` since start.
    public var published: UInt64
    /// The newest sequence number issued (firstSequence − 1 before the first event).
    public var lastSequence: UInt64
    public var firstSequence: UInt64
    /// Events consumers lost to their own overflow, summed over consumers (each loss counted once
    /// per consumer).
    public var consumerOverflowEvents: UInt64
    public var gapsSent: UInt64
    public var protocolErrors: UInt64
    /// Events lost for everyone because the hand-off to the event loop was full.
    public var handoffDropped: UInt64
    public var connectionsRefused: UInt64
}

/// Serves the reject stream (beand-rejects(7)) on a Unix socket.
///
/// Threads: `publish` runs on any thread. It encodes the event on the caller's thread, then takes
/// a short lock to assign the sequence number and append to a bounded hand-off list; it never waits
/// for a consumer, the event loop, or the disk. Everything else — the ring of the last M events,
/// the consumers and their cursors — belongs to one NIO event loop and is touched only there.
///
/// Each consumer has a cursor into the shared ring; a write happens only while its channel is
/// writable, so a consumer that does not read holds at most the NIO write buffer
/// (`writeBufferHighWater`) plus one batch in daemon memory. When it falls more than
/// `consumerBacklogLimit` events behind, its oldest unsent events are skipped and it gets one
/// `gap` event with reason `overflow` when it reads again. Other consumers are unaffected.
public final class RejectStreamServer: @unchecked Sendable {
    public let configuration: RejectStreamConfiguration
    public let eventLoop: EventLoop
    public let firstSequence: UInt64

    private let sequenceFile: RejectSequenceFile?
    private let hub: RejectStreamHub

    private struct Handoff {
        var lastSequence: UInt64
        var pending: [(sequence: UInt64, members: String)] = []
        var wakeScheduled = false
        var closed = false
        var published: UInt64 = 0
        var dropped: UInt64 = 0
    }
    private let handoff: Mutex<Handoff>
    private var serverChannel: Channel?

    private init(configuration: RejectStreamConfiguration, eventLoop: EventLoop, sequenceFile: RejectSequenceFile?) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.sequenceFile = sequenceFile
        self.firstSequence = sequenceFile?.firstSequence ?? 1
        self.handoff = Mutex(Handoff(lastSequence: firstSequence - 1))
        self.hub = RejectStreamHub(configuration: configuration, eventLoop: eventLoop, firstSequence: firstSequence)
    }

    /// Binds the socket (replacing a stale socket file, refusing any other kind of file), sets its
    /// mode and group, and starts accepting consumers. `sequenceFile` nil numbers from 1 and keeps
    /// nothing across restarts (tests only).
    public static func start(configuration: RejectStreamConfiguration, sequenceFile: RejectSequenceFile?,
                             eventLoop: EventLoop) async throws -> RejectStreamServer {
        try configuration.validate()
        let groupID: gid_t? = try configuration.group.map { name throws(RejectStreamError) in
            try Self.lookUpGroup(name, socketPath: configuration.socketPath)
        }
        let server = RejectStreamServer(configuration: configuration, eventLoop: eventLoop, sequenceFile: sequenceFile)
        let hub = server.hub
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: eventLoop)
                .serverChannelOption(ChannelOptions.backlog, value: 64)
                // A consumer may shut down its sending side after the resume request (as
                // `echo … | nc -U` does); it still wants the stream.
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .childChannelOption(ChannelOptions.writeBufferWaterMark,
                                    value: .init(low: configuration.writeBufferLowWater, high: configuration.writeBufferHighWater))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(RejectConsumerHandler(hub: hub))
                    }
                }
                .bind(unixDomainSocketPath: configuration.socketPath, cleanupExistingSocketFile: true)
                .get()
        } catch {
            throw RejectStreamError("reject stream: cannot listen on \(configuration.socketPath): \(error)")
        }
        // Between bind and chmod the socket has the umask's mode; connecting needs write
        // permission, which the usual 0022 umask withholds from group and others.
        if chmod(configuration.socketPath, configuration.mode) != 0 {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(configuration.socketPath)
            throw RejectStreamError("reject stream: chmod \(String(configuration.mode, radix: 8)) \(configuration.socketPath): \(reason)")
        }
        if let groupID, chown(configuration.socketPath, uid_t.max, groupID) != 0 {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(configuration.socketPath)
            throw RejectStreamError("reject stream: chown :\(configuration.group ?? "") \(configuration.socketPath): \(reason)")
        }
        server.serverChannel = channel
        return server
    }

    /// Publishes one event; returns its sequence number, or nil once the server is shut down.
    /// Any thread; never blocks on consumers, the event loop or the disk.
    @discardableResult
    public func publish(_ event: RejectEvent) -> UInt64? {
        let members = event.jsonMembers()
        let (sequence, wake): (UInt64?, Bool) = handoff.withLock { state in
            guard !state.closed else { return (nil, false) }
            state.lastSequence += 1
            state.published += 1
            if state.pending.count < configuration.handoffCapacity {
                state.pending.append((state.lastSequence, members))
            } else {
                // The event loop is far behind; the number is issued but the event is lost. The
                // loop sees the hole and reports it to every consumer as gap `dropped`.
                state.dropped += 1
            }
            let wake = !state.wakeScheduled
            state.wakeScheduled = true
            return (state.lastSequence, wake)
        }
        guard let sequence else { return nil }
        sequenceFile?.issued(sequence)
        if wake {
            eventLoop.execute { self.takeHandoff() }
        }
        return sequence
    }

    /// Event loop: moves the handed-off events into the ring and lets consumers catch up.
    private func takeHandoff() {
        // Swap in the loop's emptied spare list so both keep their capacity: no array growth
        // per batch in steady state.
        var batch = hub.spareBatch
        hub.spareBatch = []
        var last: UInt64 = 0
        handoff.withLock { state in
            swap(&batch, &state.pending)
            state.wakeScheduled = false
            last = state.lastSequence
        }
        hub.append(batch, lastIssued: last)
        batch.removeAll(keepingCapacity: true)
        hub.spareBatch = batch
    }

    public func statistics() async -> RejectStreamStatistics {
        let (published, last, dropped) = handoff.withLock { ($0.published, $0.lastSequence, $0.dropped) }
        let loopFigures = try? await eventLoop.submit { self.hub.figures() }.get()
        return RejectStreamStatistics(
            consumers: loopFigures?.consumers ?? 0, published: published, lastSequence: last, firstSequence: firstSequence,
            consumerOverflowEvents: loopFigures?.overflow ?? 0, gapsSent: loopFigures?.gaps ?? 0,
            protocolErrors: loopFigures?.protocolErrors ?? 0, handoffDropped: dropped,
            connectionsRefused: loopFigures?.refused ?? 0)
    }

    /// Stops publishing, closes the listening socket and every consumer, removes the socket file
    /// and records the last sequence number (see `RejectSequenceFile.finish`).
    public func shutdown() async {
        let last = handoff.withLock { state -> UInt64 in
            state.closed = true
            return state.lastSequence
        }
        if let serverChannel { try? await serverChannel.close() }
        // Hand the last events to the consumers that keep up before closing them.
        try? await eventLoop.submit {
            self.takeHandoff()
            self.hub.closeAll()
        }.get()
        unlink(configuration.socketPath)
        sequenceFile?.finish(lastIssued: last)
    }

    static func lookUpGroup(_ name: String, socketPath: String) throws(RejectStreamError) -> gid_t {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let rc = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else {
            let reason = rc == 0 ? "no such group" : String(cString: strerror(rc))
            throw RejectStreamError("reject stream \(socketPath): group '\(name)': \(reason)")
        }
        return group.gr_gid
    }
}

// MARK: - event-loop state

/// The ring and the consumers. Event loop only.
final class RejectStreamHub: @unchecked Sendable {
    let configuration: RejectStreamConfiguration
    let eventLoop: EventLoop
    let firstSequence: UInt64
    private let allocator = ByteBufferAllocator()

    /// Slot for sequence s is `slots[s % capacity]`; holds s for s in firstHeld..<endSequence.
    /// nil marks a number that was issued but lost in the hand-off.
    private var slots: [ByteBuffer?]
    private var firstHeld: UInt64
    private var endSequence: UInt64

    private var consumers: [ObjectIdentifier: RejectConsumer] = [:]
    /// The hand-off list the loop lends back to publishers (see `RejectStreamServer.takeHandoff`).
    var spareBatch: [(sequence: UInt64, members: String)] = []
    private var overflowEvents: UInt64 = 0
    private var gaps: UInt64 = 0
    private var protocolErrors: UInt64 = 0
    private var refused: UInt64 = 0

    init(configuration: RejectStreamConfiguration, eventLoop: EventLoop, firstSequence: UInt64) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.firstSequence = firstSequence
        self.slots = Array(repeating: nil, count: configuration.ringCapacity)
        self.firstHeld = firstSequence
        self.endSequence = firstSequence
    }

    func figures() -> (consumers: Int, overflow: UInt64, gaps: UInt64, protocolErrors: UInt64, refused: UInt64) {
        (consumers.count, overflowEvents, gaps, protocolErrors, refused)
    }

    // MARK: ring

    func append(_ batch: [(sequence: UInt64, members: String)], lastIssued: UInt64) {
        eventLoop.preconditionInEventLoop()
        for item in batch {
            advance(to: item.sequence)
            var line = allocator.buffer(capacity: item.members.utf8.count + 48)
            line.writeString("{\"type\":\"reject\",\"seq\":\(item.sequence),")
            line.writeString(item.members)
            line.writeString("}\n")
            store(line, at: item.sequence)
        }
        // Numbers issued after the last handed-off event whose events were dropped.
        if lastIssued >= endSequence { advance(to: lastIssued + 1) }
        for consumer in consumers.values { flush(consumer) }
    }

    /// Marks every number from `endSequence` up to (not including) `sequence` as lost.
    private func advance(to sequence: UInt64) {
        guard sequence > endSequence else { return }
        let capacity = UInt64(slots.count)
        if sequence - endSequence >= capacity {
            for index in slots.indices { slots[index] = nil }
            endSequence = sequence
            firstHeld = max(firstHeld, sequence &- capacity)
            return
        }
        while endSequence < sequence { store(nil, at: endSequence) }
    }

    private func store(_ line: ByteBuffer?, at sequence: UInt64) {
        let capacity = UInt64(slots.count)
        slots[Int(sequence % capacity)] = line
        endSequence = sequence + 1
        if endSequence - firstHeld > capacity { firstHeld = endSequence - capacity }
    }

    // MARK: consumers

    func add(_ consumer: RejectConsumer) -> Bool {
        guard consumers.count < configuration.maxConsumers else {
            refused += 1
            return false
        }
        consumer.cursor = endSequence
        consumers[ObjectIdentifier(consumer)] = consumer
        return true
    }

    func remove(_ consumer: RejectConsumer) {
        consumers[ObjectIdentifier(consumer)] = nil
    }

    func closeAll() {
        for consumer in consumers.values {
            consumer.resumeTimer?.cancel()
            consumer.channel.close(promise: nil)
        }
        consumers.removeAll()
    }

    /// Starts streaming to a consumer, after `resume_after` (or live from the connect time).
    func startStreaming(_ consumer: RejectConsumer, resumeAfter: UInt64?) {
        consumer.resumeTimer?.cancel()
        consumer.resumeTimer = nil
        // Once streaming, only a resume request that arrives before anything was sent to the
        // consumer repositions it (its line raced the window's end on a busy event loop).
        guard !consumer.streaming || (resumeAfter != nil && !consumer.delivered) else { return }
        consumer.streaming = true
        if let resumeAfter {
            if resumeAfter >= endSequence {
                let newest = endSequence - 1
                sendError(consumer, "resume_after \(resumeAfter) is ahead of the newest sequence number \(newest); streaming from \(newest + 1)")
                consumer.cursor = endSequence
            } else {
                consumer.cursor = resumeAfter + 1
                consumer.resumed = true
            }
        }
        flush(consumer)
    }

    func protocolError(_ consumer: RejectConsumer, _ message: String) {
        protocolErrors += 1
        consumer.protocolErrors += 1
        if consumer.protocolErrors > configuration.maxProtocolErrors {
            sendError(consumer, "too many protocol errors; closing")
            consumer.channel.close(promise: nil)
        } else {
            sendError(consumer, message)
        }
    }

    func sendError(_ consumer: RejectConsumer, _ message: String) {
        consumer.channel.writeAndFlush(allocator.buffer(string: RejectStreamProtocol.errorLine(message)), promise: nil)
    }

    /// Writes what the consumer has not seen yet, while its channel accepts writes.
    func flush(_ consumer: RejectConsumer) {
        guard consumer.streaming, consumer.channel.isActive, consumer.channel.isWritable else { return }
        let channel = consumer.channel
        var wrote = false
        func gap(_ first: UInt64, _ last: UInt64, _ reason: RejectStreamProtocol.GapReason) {
            channel.write(allocator.buffer(string: RejectStreamProtocol.gapLine(from: first, to: last, reason: reason)), promise: nil)
            gaps += 1
            wrote = true
            consumer.delivered = true
            if reason == .overflow {
                consumer.overflowEvents += last - first + 1
                overflowEvents += last - first + 1
            }
        }
        if consumer.cursor < firstSequence {
            gap(consumer.cursor, firstSequence - 1, .restart)
            consumer.cursor = firstSequence
        }
        if consumer.cursor < firstHeld {
            gap(consumer.cursor, firstHeld - 1, consumer.resumed && !consumer.delivered ? .evicted : .overflow)
            consumer.cursor = firstHeld
        }
        let limit = UInt64(configuration.consumerBacklogLimit)
        if endSequence - consumer.cursor > limit {
            gap(consumer.cursor, endSequence - limit - 1, .overflow)
            consumer.cursor = endSequence - limit
        }
        var lostFrom: UInt64?
        let capacity = UInt64(slots.count)
        while consumer.cursor < endSequence, channel.isWritable {
            if let line = slots[Int(consumer.cursor % capacity)] {
                if let first = lostFrom {
                    gap(first, consumer.cursor - 1, .dropped)
                    lostFrom = nil
                }
                channel.write(line, promise: nil)
                wrote = true
            } else if lostFrom == nil {
                lostFrom = consumer.cursor
            }
            consumer.cursor += 1
            consumer.delivered = true
        }
        if let first = lostFrom { gap(first, consumer.cursor - 1, .dropped) }
        if wrote { channel.flush() }
    }
}

/// One connected consumer. Event loop only.
final class RejectConsumer {
    let channel: Channel
    /// Next sequence number to send.
    var cursor: UInt64 = 0
    var streaming = false
    var resumed = false
    var delivered = false
    var resumeTimer: Scheduled<Void>?
    var protocolErrors = 0
    var overflowEvents: UInt64 = 0
    var input: [UInt8] = []
    var linesSeen = 0

    init(channel: Channel) { self.channel = channel }
}

/// Reads the consumer's request line(s) and wakes the hub when the socket drains.
final class RejectConsumerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let hub: RejectStreamHub
    private var consumer: RejectConsumer?

    init(hub: RejectStreamHub) { self.hub = hub }

    func channelActive(context: ChannelHandlerContext) {
        let consumer = RejectConsumer(channel: context.channel)
        guard hub.add(consumer) else {
            hub.sendError(consumer, "too many consumers (limit \(hub.configuration.maxConsumers)); closing")
            context.close(promise: nil)
            return
        }
        self.consumer = consumer
        let window = hub.configuration.resumeWindowMilliseconds
        if window == 0 {
            hub.startStreaming(consumer, resumeAfter: nil)
        } else {
            let hub = self.hub
            consumer.resumeTimer = context.eventLoop.scheduleTask(in: .milliseconds(window)) {
                hub.startStreaming(consumer, resumeAfter: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let consumer {
            consumer.resumeTimer?.cancel()
            hub.remove(consumer)
        }
        consumer = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let consumer, context.channel.isWritable { hub.flush(consumer) }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let consumer else { return }
        var buffer = unwrapInboundIn(data)
        guard let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                let line = consumer.input
                consumer.input.removeAll(keepingCapacity: true)
                handle(line: line, consumer: consumer)
                guard context.channel.isActive else { return }
            } else {
                consumer.input.append(byte)
                if consumer.input.count > hub.configuration.maxRequestLineBytes {
                    hub.sendError(consumer, "request line longer than \(hub.configuration.maxRequestLineBytes) bytes; closing")
                    consumer.input.removeAll()
                    context.close(promise: nil)
                    return
                }
            }
        }
    }

    private func handle(line: [UInt8], consumer: RejectConsumer) {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return }  // blank lines are ignored
        consumer.linesSeen += 1
        guard consumer.linesSeen == 1, !consumer.streaming || !consumer.delivered else {
            hub.protocolError(consumer, "only one {\"resume_after\": N} line, sent within \(hub.configuration.resumeWindowMilliseconds) ms of connecting, is accepted; ignored \(RejectStreamProtocol.quote(line))")
            return
        }
        switch RejectStreamProtocol.parseResumeRequest(line) {
        case .success(let after):
            hub.startStreaming(consumer, resumeAfter: after)
        case .failure(let error):
            hub.protocolError(consumer, "\(error); streaming live")
            hub.startStreaming(consumer, resumeAfter: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The consumer finished sending (half-close): treat a last unterminated line as a line,
        // keep streaming to it.
        if let consumer, let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            if !consumer.input.isEmpty {
                let line = consumer.input
                consumer.input.removeAll()
                handle(line: line, consumer: consumer)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A consumer's socket error ends only that consumer.
        context.close(promise: nil)
    }
}
