#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// `struct ucred` (glibc hides it behind _GNU_SOURCE): what `SO_PEERCRED` returns.
struct LinuxPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Sent down a connection's pipeline at shutdown: finish the request in flight, then close.
struct DrainConnectionEvent {}

/// The open connections of one server, so shutdown can drain and close them.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
        }
    }

    var all: [any Channel] { channels.withLock { Array($0.values) } }
    var count: Int { channels.withLock { $0.count } }
}

/// A Unix-domain stream server: the control socket.
public final class UnixSocketServer: Sendable {
    public let path: String
    private let channel: any Channel
    let connections: ConnectionRegistry

    private init(path: String, channel: any Channel, connections: ConnectionRegistry) {
        self.path = path
        self.channel = channel
        self.connections = connections
    }

    /// Binds `path` (clearing a stale socket file, refusing a live one), then sets mode 0660 and group.
    static func bind(path: String, gid: UInt32, group: EventLoopGroup, allowHalfClosure: Bool,
                     initializer: @escaping @Sendable (any Channel, ConnectionRegistry) throws -> Void) throws -> UnixSocketServer {
        try UnixSocketFile.prepare(path)
        let connections = ConnectionRegistry()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 4096)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: allowHalfClosure)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    connections.add(channel)
                    try initializer(channel, connections)
                }
            }
        let channel: any Channel
        do {
            channel = try UnixSocketFile.withPrivateUmask {
                try bootstrap.bind(unixDomainSocketPath: path).wait()
            }
        } catch {
            throw UnixSocketFile.Failure(description: "\(path): cannot bind: \(error)")
        }
        do {
            try UnixSocketFile.restrict(path, gid: gid)
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return UnixSocketServer(path: path, channel: channel, connections: connections)
    }

    /// Stops accepting; open connections stay until `drain`.
    func stopAccepting() -> EventLoopFuture<Void> {
        channel.close().flatMapErrorThrowing { error in
            if let error = error as? ChannelError, error == .alreadyClosed { return }
            throw error
        }
    }

    /// Asks every connection to finish its request in flight and close; closes the stragglers at
    /// `deadline`. Blocks the calling thread (shutdown runs on the main thread).
    func drain(deadline: NIODeadline) {
        let open = connections.all
        guard !open.isEmpty else { return }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(DrainConnectionEvent())
        }
        let done = DispatchSemaphore(value: 0)
        EventLoopFuture.andAllComplete(open.map(\.closeFuture), on: open[0].eventLoop).whenComplete { _ in done.signal() }
        let remaining = deadline - .now()
        let nanoseconds = max(0, remaining.nanoseconds)
        if done.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .timedOut {
            for channel in connections.all { channel.close(promise: nil) }
            _ = done.wait(timeout: .now() + .milliseconds(200))
        }
    }
}

/// Serves control protocol v1 on one connection.
///
/// Requests are handled one at a time in arrival order (responses must come back in order); lines
/// that arrive meanwhile wait in `pending`, and reading pauses while too many wait or while the
/// client does not read its responses, so a slow client costs bounded memory and never blocks others.
final class ControlConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maximumPendingLines = 16

    private let commands: ControlCommandTable
    private let adminPolicy: AdminPolicy
    private var framer = ControlLineFramer()
    private var pending: [ControlLineEvent] = []
    private var pendingStart = 0
    private var inFlight = false
    private var inputClosed = false
    private var draining = false
    private var readWanted = false
    private var lineNumber = 0
    private var peer: PeerCredentials?
    private var adminAllowed: Bool?
    private var context: ChannelHandlerContext?
    private var lastWrite: EventLoopFuture<Void>?

    init(commands: ControlCommandTable, adminPolicy: AdminPolicy) {
        self.commands = commands
        self.adminPolicy = adminPolicy
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        if let provider = context.channel as? SocketOptionProvider {
            let future: EventLoopFuture<LinuxPeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            future.whenSuccess { [weak self] credentials in
                self?.peer = PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
            }
        }
        context.fireChannelActive()
    }

    private var pendingCount: Int { pending.count - pendingStart }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard !draining else { return }
        framer.feed(buffer.readableBytesView)
        while let event = framer.next() { pending.append(event) }
        processPending()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed:
            inputClosed = true
            if let event = framer.finish() { pending.append(event) }
            processPending()
        case is IdleStateHandler.IdleStateEvent:
            if !inFlight { context.close(promise: nil) }
        case is DrainConnectionEvent:
            draining = true
            pending.removeAll()
            pendingStart = 0
            closeIfFinished()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { processPending() }
        context.fireChannelWritabilityChanged()
    }

    /// Backpressure: pass a read request on only while there is room for more lines.
    func read(context: ChannelHandlerContext) {
        if pendingCount < Self.maximumPendingLines, context.channel.isWritable, !draining {
            readWanted = false
            context.read()
        } else {
            readWanted = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func processPending() {
        guard let context else { return }
        while !inFlight, !draining, pendingCount > 0, context.channel.isWritable {
            let event = pending[pendingStart]
            pendingStart += 1
            if pendingStart == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingStart = 0
            }
            handle(event, context: context)
        }
        if readWanted, pendingCount < Self.maximumPendingLines, context.channel.isWritable, !draining {
            readWanted = false
            context.read()
        }
        closeIfFinished()
    }

    private func closeIfFinished() {
        guard let context, !inFlight, (inputClosed && pendingCount == 0) || draining else { return }
        if let lastWrite {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            lastWrite.whenComplete { _ in bound.value.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private func handle(_ event: ControlLineEvent, context: ChannelHandlerContext) {
        lineNumber += 1
        switch event {
        case .oversized:
            respond(.failure(ControlFailure(
                "request line \(lineNumber) is longer than \(ControlProtocol.maximumLineBytes) bytes; discarded up to the next newline")),
                command: nil)
        case .incomplete:
            respond(.failure(ControlFailure("request line \(lineNumber) is incomplete: input ended before its newline")),
                    command: nil)
        case .line(let bytes):
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                lineNumber -= 1
                return
            }
            let request: ControlRequest
            switch ControlProtocol.decodeRequest(bytes) {
            case .failure(let failure):
                respond(.failure(ControlFailure("request line \(lineNumber): \(failure.message)")), command: nil)
                return
            case .success(let decoded):
                request = decoded
            }
            let command: ControlCommand
            switch commands.resolve(request) {
            case .failure(let failure):
                respond(.failure(ControlFailure("request line \(lineNumber): \(failure.message)")), command: nil)
                return
            case .success(let resolved):
                command = resolved
            }
            if command.access == .changing {
                authorizeThenRun(command, request, context: context)
            } else {
                run(command, request, context: context)
            }
        }
    }

    /// The group database may be slow (NSS over the network): look it up off the event loop, once
    /// per connection.
    private func authorizeThenRun(_ command: ControlCommand, _ request: ControlRequest, context: ChannelHandlerContext) {
        if let adminAllowed {
            if adminAllowed { run(command, request, context: context) } else { respond(.failure(.permissionDenied), command: nil) }
            return
        }
        guard let peer else {
            respond(.failure(.permissionDenied), command: nil)
            return
        }
        inFlight = true
        let policy = adminPolicy
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        DispatchQueue.global().async {
            let allowed = policy.allows(peer)
            loop.execute {
                let (handler, context) = bound.value
                handler.inFlight = false
                handler.adminAllowed = allowed
                if allowed {
                    handler.run(command, request, context: context)
                } else {
                    handler.respond(.failure(.permissionDenied), command: nil)
                }
                handler.processPending()
            }
        }
    }

    private func run(_ command: ControlCommand, _ request: ControlRequest, context: ChannelHandlerContext) {
        inFlight = true
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        command.run(request) { result in
            loop.execute {
                let handler = bound.value
                handler.inFlight = false
                handler.respond(result, command: command.name)
                handler.processPending()
            }
        }
    }

    private func respond(_ result: Result<JSONValue, ControlFailure>, command: String?) {
        guard let context, context.channel.isActive else { return }
        let line: String
        switch result {
        case .success(let value): line = ControlProtocol.successLine(command: command ?? "", result: value)
        case .failure(let failure): line = ControlProtocol.failureLine(failure)
        }
        let buffer = context.channel.allocator.buffer(string: line)
        lastWrite = context.writeAndFlush(wrapOutboundOut(buffer))
    }
}

extension UnixSocketServer {
    static func control(path: String, gid: UInt32, group: EventLoopGroup, idleTimeout: TimeAmount,
                        commands: ControlCommandTable, adminPolicy: AdminPolicy) throws -> UnixSocketServer {
        try bind(path: path, gid: gid, group: group, allowHalfClosure: true) { channel, _ in
            try channel.pipeline.syncOperations.addHandlers([
                IdleStateHandler(allTimeout: idleTimeout),
                ControlConnectionHandler(commands: commands, adminPolicy: adminPolicy),
            ])
        }
    }
}
