#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// One log call, flattened: nested metadata dictionaries become dotted keys (`bean` → `score`
/// becomes `bean.score`), so every sink sees plain key/value pairs.
public struct LogRecord: Sendable {
    public var level: Logger.Level
    public var label: String
    public var message: String
    /// Sorted by key, so output is stable.
    public var metadata: [(key: String, value: String)]
    public var file: String
    public var function: String
    public var line: UInt
}

/// Where records go: journald or stderr.
public protocol LogSink: Sendable {
    func write(_ record: LogRecord)
}

/// The process's logging: one swift-log bootstrap, a sink and a level that a reload can change.
///
/// `LoggingSystem.bootstrap` may run only once, before the config is read, so handlers do not hold a
/// sink; they ask this object on every record, and `configure` swaps the sink in place.
public final class BeandLogging: Sendable {
    public static let shared = BeandLogging()

    private struct State {
        var sink: any LogSink = StderrLogSink()
        var level: Logger.Level = .info
        var target: ResolvedLogTarget = .stderr
    }
    private let state = Mutex(State())

    public init() {}

    /// Installs beand's handler as the process's swift-log backend (once, at the start of main).
    public static func bootstrap() {
        LoggingSystem.bootstrap { label in BeandLogHandler(label: label, logging: .shared) }
    }

    /// Applies `[log]`: picks the sink (resolving `auto` from `JOURNAL_STREAM`) and the level.
    @discardableResult
    public func configure(_ section: LogSection, environment: [String: String]) -> ResolvedLogTarget {
        let target = ResolvedLogTarget(section.target, environment: environment)
        let sink: any LogSink = target == .journald ? JournaldLogSink() : StderrLogSink()
        state.withLock {
            $0.sink = sink
            $0.level = section.level.level
            $0.target = target
        }
        return target
    }

    public var level: Logger.Level { state.withLock { $0.level } }
    public var target: ResolvedLogTarget { state.withLock { $0.target } }

    func write(_ record: LogRecord) {
        let sink = state.withLock { $0.sink }
        sink.write(record)
    }
}

/// `LogTarget` after `auto` is decided.
public enum ResolvedLogTarget: String, Sendable {
    case journald, stderr

    public init(_ target: LogTarget, environment: [String: String]) {
        switch target {
        case .journald: self = .journald
        case .stderr: self = .stderr
        case .auto: self = Self.stderrIsJournalStream(environment["JOURNAL_STREAM"]) ? .journald : .stderr
        }
    }

    /// systemd sets `JOURNAL_STREAM=DEV:INO` for the stream it connected stdout/stderr to; stderr
    /// goes to journald only when fd 2 is still that very stream (not redirected by a wrapper).
    public static func stderrIsJournalStream(_ value: String?) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

/// swift-log handler: collects metadata and hands a `LogRecord` to the current sink.
public struct BeandLogHandler: LogHandler {
    public let label: String
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let logging: BeandLogging
    private var levelOverride: Logger.Level?

    public init(label: String, logging: BeandLogging) {
        self.label = label
        self.logging = logging
    }

    /// The configured `[log] level` unless this logger set its own.
    public var logLevel: Logger.Level {
        get { levelOverride ?? logging.level }
        set { levelOverride = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        var flat: [(key: String, value: String)] = []
        Self.flatten(merged, prefix: "", into: &flat)
        flat.sort { $0.key < $1.key }
        logging.write(LogRecord(level: event.level, label: label, message: event.message.description,
                                metadata: flat, file: event.file, function: event.function, line: event.line))
    }

    static func flatten(_ metadata: Logger.Metadata, prefix: String, into out: inout [(key: String, value: String)]) {
        for (key, value) in metadata {
            let fullKey = prefix.isEmpty ? key : prefix + "." + key
            switch value {
            case .dictionary(let nested): flatten(nested, prefix: fullKey, into: &out)
            default: out.append((fullKey, value.description))
            }
        }
    }
}
