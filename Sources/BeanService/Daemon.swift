#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import BeanNet
import Dispatch
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A failure to start, with the exit code beand ends with (78, EX_CONFIG, for configuration
/// problems: systemd's RestartPreventExitStatus=78 then stops restarting a daemon that cannot work).
public struct StartupError: Error, CustomStringConvertible {
    public var exitCode: Int32
    public var description: String

    public static let exConfig: Int32 = 78
    public static let exSoftware: Int32 = 70
    public static let exOSErr: Int32 = 71
}

/// beand's service shell: sockets, systemd notifications, watchdog, reload and orderly stop.
/// Engines plug in through `StatusRegistry`, `LivenessRegistry`, `Reloadable` and `Drainable`.
public final class Daemon: @unchecked Sendable {
    public let configPath: String
    public let status: StatusRegistry
    public let liveness: LivenessRegistry
    private let notifier = SystemdNotifier()
    private let logger = Logger(label: "beand")
    private let watchdogInterval: Duration?
    private let config: Mutex<DaemonConfig>
    private let reloadQueue = DispatchQueue(label: "beand.reload")
    private let components = Mutex<(reloadables: [any Reloadable], drainables: [any Drainable])>(([], []))
    private let stopRequested = DispatchSemaphore(value: 0)
    private let stopSignal = Mutex<Int32?>(nil)
    private var signalSources: [DispatchSourceSignal] = []
    private var threads: [PeriodicThread] = []
    private let pipeline = Mutex<Pipeline?>(nil)

    public init(configPath: String, config: DaemonConfig) {
        self.configPath = configPath
        self.config = Mutex(config)
        self.status = StatusRegistry(config: config)
        let watchdogInterval = SystemdNotifier.watchdogPingInterval()
        self.watchdogInterval = watchdogInterval
        // Loops beat at least twice per watchdog interval, and at least once a second.
        var beat = Duration.seconds(1)
        if let watchdogInterval, watchdogInterval / 2 < beat { beat = watchdogInterval / 2 }
        self.liveness = LivenessRegistry(beatInterval: beat)
    }

    public var currentConfig: DaemonConfig { config.withLock { $0 } }

    public func register(reloadable: any Reloadable) { components.withLock { $0.reloadables.append(reloadable) } }
    public func register(drainable: any Drainable) { components.withLock { $0.drainables.append(drainable) } }

    /// Corrects OpenBLAS's kernel choice on a CPU it does not know (`BLASKernels`) and says so in
    /// the log, and makes OpenBLAS run on the calling thread only: the encoder pool's workers are
    /// the daemon's BLAS parallelism, one core each. Call before any thread that could call BLAS
    /// exists.
    public static func configureBLAS() {
        setBLASThreads(1)
        let selection = BLASKernels.selectForThisCPU()
        guard selection.replaced else { return }
        Logger(label: "beand").notice(
            "BLAS kernels: \(selection.core) for this \(selection.cpu) CPU, which OpenBLAS did not recognise (it chose \(selection.openBLASChoice)); set OPENBLAS_CORETYPE to choose others",
            metadata: ["blas.core": "\(selection.core)", "blas.openblas_choice": "\(selection.openBLASChoice)"])
    }

    /// Runs until SIGTERM or SIGINT; returns the exit code.
    public func run() throws -> Int32 {
        let config = currentConfig
        // Before any socket is bound: a client that sees the control socket answer may signal us
        // at once, and a SIGTERM/SIGINT arriving under the default disposition would kill the
        // process with no drain and a non-zero status. A stop requested during start-up is
        // honoured as soon as start-up completes.
        installSignalHandlers()
        raiseOpenFileLimit()
        let controlGID = try groupID(config.control.group, key: "control.group")
        let adminGID = try groupID(config.control.adminGroup, key: "control.admin_group")
        let rejectsGID = try groupID(config.rejects.group, key: "rejects.group")

        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? eventLoops.syncShutdownGracefully() }
        let control: UnixSocketServer
        let rejects: RejectStreamServer
        do {
            control = try UnixSocketServer.control(
                path: config.control.socket, gid: controlGID, group: eventLoops,
                idleTimeout: .seconds(Int64(config.control.idleTimeoutSeconds)),
                commands: commandTable(), adminPolicy: AdminPolicy(adminGroupID: adminGID))
        } catch {
            throw StartupError(exitCode: StartupError.exOSErr, description: "control.socket: \(error)")
        }
        _ = rejectsGID  // resolved above so a missing group is a config error (78), not a socket error
        do {
            rejects = try startRejectStream(config: config, loop: eventLoops.next())
        } catch {
            _ = try? control.stopAccepting().wait()
            UnixSocketFile.remove(config.control.socket)
            throw StartupError(exitCode: StartupError.exOSErr, description: "rejects.socket: \(error)")
        }

        startEventLoopBeat(eventLoops.next())
        if !config.cameras.isEmpty {
            let pipeline = Pipeline(config: config, status: status, liveness: liveness) { event in
                rejects.publish(event)
            }
            pipeline.start()
            self.pipeline.withLock { $0 = pipeline }
            register(reloadable: pipeline)
            register(drainable: pipeline)
        }
        startStatusTicker()
        notifier.ready(status: status.statusLine())
        startWatchdog()
        logger.notice("beand started", metadata: BeandMessageID.start.metadata.merging([
            "version": "\(BeandVersion.string)",
            "config": "\(configPath)",
            "control.socket": "\(config.control.socket)",
            "rejects.socket": "\(config.rejects.socket)",
            "cameras": "\(config.cameras.count)",
            "log.target": "\(BeandLogging.shared.target.rawValue)",
            "blas.core": "\(BLASKernels.currentCore)",
        ]) { first, _ in first })

        stopRequested.wait()
        let signal = stopSignal.withLock { $0 } ?? SIGTERM
        notifier.stopping()
        let drainTimeout = Duration.milliseconds(currentConfig.daemon.drainTimeoutMilliseconds)
        logger.notice("beand stopping", metadata: BeandMessageID.stop.metadata.merging([
            "signal": "\(Self.signalName(signal))",
            "drain_timeout_ms": "\(currentConfig.daemon.drainTimeoutMilliseconds)",
        ]) { first, _ in first })
        shutdown(control: control, rejects: rejects, drainTimeout: drainTimeout)
        return 0
    }

    /// Binds the reject stream (beand-rejects(7)); its sequence numbers continue across restarts
    /// through `rejects.seq` in the state directory when that is writable.
    private func startRejectStream(config: DaemonConfig, loop: any EventLoop) throws -> RejectStreamServer {
        var sequenceFile: RejectSequenceFile?
        do {
            sequenceFile = try RejectSequenceFile(stateDirectory: config.daemon.stateDirectory)
        } catch {
            logger.warning("reject sequence numbers restart at 1 after a restart: the state directory is not usable",
                           metadata: ["error": "\(error)"])
        }
        let configuration = RejectStreamConfiguration(
            socketPath: config.rejects.socket, group: config.rejects.group, ringCapacity: config.rejects.ring,
            consumerBacklogLimit: min(1024, config.rejects.ring))
        let file = sequenceFile
        return try loop.makeFutureWithTask {
            try await RejectStreamServer.start(configuration: configuration, sequenceFile: file, eventLoop: loop)
        }.wait()
    }

    private func shutdown(control: UnixSocketServer, rejects: RejectStreamServer, drainTimeout: Duration) {
        let clock = ContinuousClock()
        let deadline = clock.now + drainTimeout
        for source in signalSources { source.cancel() }
        _ = try? control.stopAccepting().wait()
        // A reload in flight finishes first (bounded by the deadline): its client gets an answer.
        let reloadDone = DispatchSemaphore(value: 0)
        reloadQueue.async { reloadDone.signal() }
        _ = reloadDone.wait(timeout: Self.dispatchTime(deadline, clock: clock))
        let drainables = components.withLock { $0.drainables }
        for component in drainables { component.drain(until: deadline) }
        let nioDeadline = NIODeadline.now() + TimeAmount.nanoseconds(Self.nanoseconds(deadline - clock.now))
        control.drain(deadline: nioDeadline)
        // Decisions drained above are published; consumers get what is buffered, then the close.
        _ = try? rejects.eventLoop.makeFutureWithTask { await rejects.shutdown() }.wait()
        for thread in threads {
            // A wedged loop is abandoned: the process exits anyway.
            thread.stop(timeout: .milliseconds(100))
        }
        UnixSocketFile.remove(control.path)
        UnixSocketFile.remove(rejects.configuration.socketPath)
    }

    // MARK: Reload

    public enum ReloadTrigger: String, Sendable {
        case sighup
        case control
    }

    /// Re-reads the config file and applies it: RELOADING=1 … READY=1 around it. An invalid file
    /// leaves the old config in force. Serialised: two reloads never overlap.
    public func reload(trigger: ReloadTrigger, completion: @escaping @Sendable (Result<UInt64?, ControlFailure>) -> Void) {
        reloadQueue.async {
            completion(self.reloadNow(trigger: trigger))
        }
    }

    private func reloadNow(trigger: ReloadTrigger) -> Result<UInt64?, ControlFailure> {
        notifier.reloading()
        defer { notifier.ready(status: status.statusLine()) }
        let previous = currentConfig
        let new: DaemonConfig
        do {
            new = try ConfigLoader.load(path: configPath)
        } catch {
            return reloadFailed(trigger: trigger, "\(error)")
        }
        let reloadables = components.withLock { $0.reloadables }
        for component in reloadables {
            do {
                try component.apply(new, previous: previous)
            } catch {
                return reloadFailed(trigger: trigger, "\(component.reloadName): \(error)")
            }
        }
        config.withLock { $0 = new }
        BeandLogging.shared.configure(new.log, environment: Self.environment())
        status.apply(config: new)
        let changed = Self.changedTables(previous, new)
        let needRestart = Self.changesNeedingRestart(previous, new, changedTables: changed)
        if !needRestart.isEmpty {
            logger.warning("changed settings take effect at the next restart", metadata: [
                "tables": "\(needRestart.joined(separator: ","))",
            ])
        }
        logger.notice("configuration reloaded", metadata: BeandMessageID.reload.metadata.merging([
            "config": "\(configPath)",
            "trigger": "\(trigger.rawValue)",
            "changed": "\(changed.isEmpty ? "nothing" : changed.joined(separator: ","))",
        ]) { first, _ in first })
        return .success(reloadables.lazy.compactMap(\.generation).first)
    }

    private func reloadFailed(trigger: ReloadTrigger, _ message: String) -> Result<UInt64?, ControlFailure> {
        let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
        logger.error("reload failed; keeping the previous configuration", metadata: BeandMessageID.reloadFailed.metadata.merging([
            "config": "\(configPath)",
            "trigger": "\(trigger.rawValue)",
            "error": "\(message)",
        ]) { first, _ in first })
        return .failure(ControlFailure("reload failed, previous configuration kept: \(firstLine)"))
    }

    /// The changed settings a reload cannot apply (beand.toml(5) RELOADING): whole tables, and the
    /// keys fixed at start of the tables that otherwise reload.
    static func changesNeedingRestart(_ previous: DaemonConfig, _ new: DaemonConfig, changedTables: [String]) -> [String] {
        var needRestart = changedTables.filter { ["daemon", "control", "rejects", "camera"].contains($0) }
        // The spool's other keys apply now (Pipeline.apply); its directory and queue are fixed at start.
        if previous.spool.directory(stateDirectory: previous.daemon.stateDirectory)
            != new.spool.directory(stateDirectory: new.daemon.stateDirectory) || previous.spool.queue != new.spool.queue {
            needRestart.append("spool.directory/queue")
        }
        // The scorer threads and their batching are set up at start; the encoder model reloads now.
        if previous.encoder.workers != new.encoder.workers || previous.encoder.maxBatch != new.encoder.maxBatch
            || previous.encoder.maxWaitMilliseconds != new.encoder.maxWaitMilliseconds {
            needRestart.append("encoder.workers/max_batch/max_wait_ms")
        }
        if previous.inspect.queue != new.inspect.queue || previous.inspect.unscored != new.inspect.unscored
            || previous.inspect.ejectLeadMilliseconds != new.inspect.ejectLeadMilliseconds {
            needRestart.append("inspect.queue/unscored/eject_lead_ms")
        }
        return needRestart
    }

    static func changedTables(_ old: DaemonConfig, _ new: DaemonConfig) -> [String] {
        var changed: [String] = []
        if old.daemon != new.daemon { changed.append("daemon") }
        if old.log != new.log { changed.append("log") }
        if old.control != new.control { changed.append("control") }
        if old.rejects != new.rejects { changed.append("rejects") }
        if old.store != new.store { changed.append("store") }
        if old.encoder != new.encoder { changed.append("encoder") }
        if old.inspect != new.inspect { changed.append("inspect") }
        if old.spool != new.spool { changed.append("spool") }
        if old.cameras != new.cameras { changed.append("camera") }
        return changed
    }

    // MARK: Control commands

    private func commandTable() -> ControlCommandTable {
        let status = self.status
        return ControlCommandTable([
            ControlCommand(name: "ping", access: .readOnly) { _, done in
                done(.success(.object([("pong", .bool(true))])))
            },
            ControlCommand(name: "version", access: .readOnly) { _, done in
                done(.success(.object([("version", .string(BeandVersion.string)),
                                       ("proto", .int(Int64(ControlProtocol.version))),
                                       ("blas_core", .string(BLASKernels.currentCore))])))
            },
            ControlCommand(name: "status", access: .readOnly) { _, done in
                done(.success(status.json(version: BeandVersion.string)))
            },
            ControlCommand(name: "set-threshold", access: .changing, arguments: ["key", "value"]) { [weak self] request, done in
                guard let self else { return done(.failure(ControlFailure("daemon is stopping"))) }
                done(self.setThreshold(request))
            },
            ControlCommand(name: "reload", access: .changing) { [weak self] _, done in
                guard let self else { return done(.failure(ControlFailure("daemon is stopping"))) }
                self.reload(trigger: .control) { result in
                    done(result.map { generation in
                        .object([("reloaded", .bool(true)), ("generation", .optional(generation))])
                    })
                }
            },
        ])
    }

    /// `{"command":"set-threshold","key":"label:Black","value":0.4}`: value a number, or the
    /// string `off`/`default` (clears a clearable key) or a number written as a string.
    private func setThreshold(_ request: ControlRequest) -> Result<JSONValue, ControlFailure> {
        guard let pipeline = pipeline.withLock({ $0 }) else {
            return .failure(ControlFailure("set-threshold: no pipeline runs (no [[camera]] configured)"))
        }
        let arguments = Dictionary(request.arguments, uniquingKeysWith: { first, _ in first })
        guard case .string(let key)? = arguments["key"] else {
            return .failure(ControlFailure("set-threshold: argument \"key\" (a string) is required"))
        }
        let valueText: String
        switch arguments["value"] {
        case .string(let text)?: valueText = text
        case .int(let number)?: valueText = "\(number)"
        case .double(let number)?: valueText = "\(number)"
        default:
            return .failure(ControlFailure("set-threshold: argument \"value\" (a number, \"off\" or \"default\") is required"))
        }
        do {
            let (change, note) = try pipeline.setThreshold(key: key, value: valueText)
            return .success(.object([("key", .string("\(change.key)")), ("old", .optional(change.old)),
                                     ("new", .optional(change.new)), ("note", .optional(note))]))
        } catch {
            return .failure(ControlFailure("set-threshold: \(error)"))
        }
    }

    // MARK: Loops, watchdog, signals

    private func startEventLoopBeat(_ loop: any EventLoop) {
        let token = liveness.register("event-loop")
        let interval = TimeAmount.nanoseconds(Self.nanoseconds(liveness.beatInterval))
        loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in token.beat() }
    }

    private func startStatusTicker() {
        let token = liveness.register("status-ticker")
        let status = self.status
        let notifier = self.notifier
        let clock = ContinuousClock()
        let started = clock.now
        var lastStatus = started
        #if DEBUG
        let wedgeAfter = Self.environment()["BEAND_DEBUG_WEDGE_STATUS_AFTER_MS"].flatMap(Int.init).map(Duration.milliseconds)
        let logger = self.logger
        #endif
        let thread = PeriodicThread(name: "status", period: liveness.beatInterval) { stop in
            #if DEBUG
            // Test hook (debug builds only): the ticker hangs as a wedged pipeline loop would, so the
            // watchdog test can see WATCHDOG=1 stop.
            if let wedgeAfter, clock.now - started >= wedgeAfter {
                logger.warning("debug hook: status ticker wedged on purpose (BEAND_DEBUG_WEDGE_STATUS_AFTER_MS)")
                stop.wait()
                return false
            }
            #endif
            token.beat()
            let now = clock.now
            if now - lastStatus >= .milliseconds(990) {
                lastStatus = now
                notifier.status(status.statusLine())
            }
            return true
        }
        threads.append(thread)
        thread.start()
    }

    private func startWatchdog() {
        guard let interval = watchdogInterval else { return }
        let liveness = self.liveness
        let notifier = self.notifier
        let logger = self.logger
        var reportedStall = false
        let thread = PeriodicThread(name: "watchdog", period: interval, waitFirst: true) { _ in
            let stalled = liveness.stalledSinceLastCheck()
            if stalled.isEmpty {
                notifier.watchdog()
                reportedStall = false
            } else if !reportedStall {
                reportedStall = true
                logger.critical("loops made no progress; withholding WATCHDOG=1", metadata: [
                    "stalled": "\(stalled.joined(separator: ","))",
                ])
            }
            return true
        }
        threads.append(thread)
        thread.start()
    }

    private func installSignalHandlers() {
        for signalNumber in [SIGHUP, SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if signalNumber == SIGHUP {
                    self.reload(trigger: .sighup) { _ in }
                } else {
                    let first = self.stopSignal.withLock { current -> Bool in
                        defer { if current == nil { current = signalNumber } }
                        return current == nil
                    }
                    if first { self.stopRequested.signal() }
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    // MARK: Helpers

    private func groupID(_ name: String, key: String) throws -> UInt32 {
        guard let gid = UserDatabase.groupID(named: name) else {
            throw StartupError(exitCode: StartupError.exConfig,
                               description: "\(configPath): key '\(key)': group '\(name)' does not exist")
        }
        return gid
    }

    /// 1,000 control clients need more descriptors than the usual soft limit of 1024.
    private func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("cannot raise the open-file limit", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
    }

    /// The process environment as a dictionary (no Foundation needed).
    public static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signal)"
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    static func dispatchTime(_ deadline: ContinuousClock.Instant, clock: ContinuousClock) -> DispatchTime {
        .now() + .nanoseconds(Int(nanoseconds(deadline - clock.now)))
    }
}
