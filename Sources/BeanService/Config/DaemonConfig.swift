import Logging

/// The whole of `beand.toml`, decoded and validated. Value type: a reload builds a new one and swaps
/// it in whole, so no reader ever sees half of an old config and half of a new one.
///
/// Adding a table: write a `ConfigSection` (keys, defaults, checks and rendering in one place) and
/// add one property plus one line in `init(reading:)` and `renderedTOML`.
public struct DaemonConfig: Equatable, Sendable {
    public var daemon = DaemonSection()
    public var log = LogSection()
    public var control = ControlSection()
    public var rejects = RejectsSection()
    public var store = StoreSection()
    public var encoder = EncoderSection()
    public var cameras: [CameraConfig] = []

    public init() {}

    init(reading root: inout ConfigTableReader) {
        daemon = root.section(DaemonSection.self)
        log = root.section(LogSection.self)
        control = root.section(ControlSection.self)
        rejects = root.section(RejectsSection.self)
        store = root.section(StoreSection.self)
        encoder = root.section(EncoderSection.self)
        cameras = root.arrayOfTables(CameraConfig.arrayName).compactMap { reader in
            var reader = reader
            defer { reader.finish() }
            return CameraConfig(reading: &reader)
        }
        root.finish()
        checkAcrossTables(root.diagnostics)
    }

    /// Rules that involve more than one key.
    private func checkAcrossTables(_ diagnostics: ConfigDiagnostics) {
        var firstLine: [String: Int] = [:]
        for (index, camera) in cameras.enumerated() {
            let path = ConfigKeyPath([.key(CameraConfig.arrayName), .index(index), .key("name")])
            if let first = firstLine[camera.name] {
                diagnostics.report(path, "duplicate camera name '\(camera.name)' (first used on line \(first))")
            } else {
                firstLine[camera.name] = diagnostics.lineIndex.line(for: path)
            }
        }
        if rejects.socket == control.socket {
            diagnostics.report(ConfigKeyPath([.key("rejects"), .key("socket")]),
                               "same path as control.socket ('\(control.socket)')")
        }
    }

    /// The config as a TOML document that decodes back to an equal value (every key written out,
    /// defaults included).
    public var renderedTOML: String {
        var sections = [daemon.rendered, log.rendered, control.rendered, rejects.rendered, store.rendered,
                        encoder.rendered]
        sections += cameras.map(\.rendered)
        return sections.joined(separator: "\n")
    }
}

/// One `[table]` of the config: its keys, their defaults, their checks and their rendering.
protocol ConfigSection: Equatable, Sendable {
    static var tableName: String { get }
    /// All defaults: the value used when the table is absent.
    init()
    init(reading reader: inout ConfigTableReader)
    /// `key = value` lines, without the header.
    var renderedKeys: [String] { get }
}

extension ConfigSection {
    var rendered: String {
        (["[\(Self.tableName)]"] + renderedKeys).joined(separator: "\n") + "\n"
    }
}

extension ConfigTableReader {
    mutating func section<S: ConfigSection>(_ type: S.Type) -> S {
        guard var reader = table(S.tableName) else { return S() }
        defer { reader.finish() }
        return S(reading: &reader)
    }
}

public struct DaemonSection: ConfigSection {
    static let tableName = "daemon"
    public var stateDirectory = "/var/lib/beand"
    /// Bound on draining in-flight work after STOPPING=1.
    public var drainTimeoutMilliseconds = 2000

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        stateDirectory = reader.string("state_dir", default: stateDirectory, check: ConfigCheck.absolutePath)
        drainTimeoutMilliseconds = reader.integer("drain_timeout_ms", default: drainTimeoutMilliseconds, in: 0...60_000)
    }

    var renderedKeys: [String] {
        ["state_dir = \(TOMLText.string(stateDirectory))", "drain_timeout_ms = \(drainTimeoutMilliseconds)"]
    }
}

/// Where log records go.
public enum LogTarget: String, Sendable, CaseIterable {
    /// journald when stderr is the journal stream (`JOURNAL_STREAM` matches), else stderr.
    case auto
    case journald
    case stderr
}

/// Log levels by their config spelling (swift-log's names).
public enum LogLevelName: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    public var level: Logger.Level {
        switch self {
        case .trace: return .trace
        case .debug: return .debug
        case .info: return .info
        case .notice: return .notice
        case .warning: return .warning
        case .error: return .error
        case .critical: return .critical
        }
    }
}

public struct LogSection: ConfigSection {
    static let tableName = "log"
    public var target = LogTarget.auto
    public var level = LogLevelName.info

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        target = reader.choice("target", default: target)
        level = reader.choice("level", default: level)
    }

    var renderedKeys: [String] {
        ["target = \(TOMLText.string(target.rawValue))", "level = \(TOMLText.string(level.rawValue))"]
    }
}

public struct ControlSection: ConfigSection {
    static let tableName = "control"
    public var socket = "/run/beand/control.sock"
    /// Group owner of the socket file (mode 0660): who may connect at all.
    public var group = "beand"
    /// Peers in this group (or uid 0) may use changing commands.
    public var adminGroup = "beand-admin"
    public var idleTimeoutSeconds = 60

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        socket = reader.string("socket", default: socket, check: ConfigCheck.socketPath)
        group = reader.string("group", default: group, check: ConfigCheck.groupName)
        adminGroup = reader.string("admin_group", default: adminGroup, check: ConfigCheck.groupName)
        idleTimeoutSeconds = reader.integer("idle_timeout_s", default: idleTimeoutSeconds, in: 1...86_400)
    }

    var renderedKeys: [String] {
        ["socket = \(TOMLText.string(socket))", "group = \(TOMLText.string(group))",
         "admin_group = \(TOMLText.string(adminGroup))", "idle_timeout_s = \(idleTimeoutSeconds)"]
    }
}

public struct RejectsSection: ConfigSection {
    static let tableName = "rejects"
    public var socket = "/run/beand/rejects.sock"
    public var group = "beand"

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        socket = reader.string("socket", default: socket, check: ConfigCheck.socketPath)
        group = reader.string("group", default: group, check: ConfigCheck.groupName)
    }

    var renderedKeys: [String] {
        ["socket = \(TOMLText.string(socket))", "group = \(TOMLText.string(group))"]
    }
}

public struct StoreSection: ConfigSection {
    static let tableName = "store"
    public var path = "/var/lib/beand/store"

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        path = reader.string("path", default: path, check: ConfigCheck.absolutePath)
    }

    var renderedKeys: [String] { ["path = \(TOMLText.string(path))"] }
}

public struct EncoderSection: ConfigSection {
    static let tableName = "encoder"
    public var model = "/var/lib/beand/encoder.onnx"

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        model = reader.string("model", default: model, check: ConfigCheck.absolutePath)
    }

    var renderedKeys: [String] { ["model = \(TOMLText.string(model))"] }
}

/// Where a camera's frames come from, as written in `source = "scheme:path"`.
public enum CameraSource: Equatable, Sendable, CustomStringConvertible {
    /// A V4L2 capture device, `v4l2:/dev/video0`.
    case v4l2(device: String)
    /// A directory of images played back in name order, `replay:DIR`.
    case replay(directory: String)
    /// A still tray photo scrolled past a virtual camera, `belt:IMAGE`.
    case belt(image: String)

    static let schemes = "v4l2:PATH, replay:DIR or belt:IMAGE"

    /// Parses `scheme:path`; the error text says what is wrong.
    static func parse(_ text: String) -> Result<CameraSource, CameraSourceError> {
        guard let colon = text.firstIndex(of: ":") else {
            return .failure(CameraSourceError(message: "'\(text)' has no scheme (expected \(schemes))"))
        }
        let scheme = String(text[..<colon])
        let path = String(text[text.index(after: colon)...])
        let make: (String) -> CameraSource
        switch scheme {
        case "v4l2": make = { .v4l2(device: $0) }
        case "replay": make = { .replay(directory: $0) }
        case "belt": make = { .belt(image: $0) }
        default:
            return .failure(CameraSourceError(message: "unknown source scheme '\(scheme)' (expected \(schemes))"))
        }
        if let problem = ConfigCheck.absolutePath(path) {
            return .failure(CameraSourceError(message: "\(scheme) source path \(problem)"))
        }
        return .success(make(path))
    }

    public var description: String {
        switch self {
        case .v4l2(let device): return "v4l2:\(device)"
        case .replay(let directory): return "replay:\(directory)"
        case .belt(let image): return "belt:\(image)"
        }
    }
}

struct CameraSourceError: Error { var message: String }

/// One `[[camera]]` table.
public struct CameraConfig: Equatable, Sendable {
    static let arrayName = "camera"
    public var name: String
    public var source: CameraSource

    public init(name: String, source: CameraSource) {
        self.name = name
        self.source = source
    }

    /// Nil when `name` or `source` is missing or bad (the problem is reported).
    init?(reading reader: inout ConfigTableReader) {
        let name = reader.requiredString("name", check: ConfigCheck.cameraName)
        var source: CameraSource?
        if let text = reader.requiredString("source") {
            switch CameraSource.parse(text) {
            case .success(let parsed): source = parsed
            case .failure(let error): reader.report("source", error.message)
            }
        }
        guard let name, let source else { return nil }
        self.init(name: name, source: source)
    }

    var rendered: String {
        "[[\(Self.arrayName)]]\nname = \(TOMLText.string(name))\nsource = \(TOMLText.string(source.description))\n"
    }
}

/// Value checks shared by several keys; each returns a problem description or nil.
enum ConfigCheck {
    static func absolutePath(_ value: String) -> String? {
        if value.isEmpty { return "must be an absolute path, got an empty string" }
        if !value.hasPrefix("/") { return "must be an absolute path, got '\(value)'" }
        if value.utf8.contains(0) { return "contains a NUL byte" }
        return nil
    }

    /// `sun_path` holds 108 bytes including the terminating NUL.
    static let maximumSocketPathBytes = 107

    static func socketPath(_ value: String) -> String? {
        if let problem = absolutePath(value) { return problem }
        if value.hasSuffix("/") { return "names a directory, not a socket file: '\(value)'" }
        if value.utf8.count > maximumSocketPathBytes {
            return "is \(value.utf8.count) bytes long; a Unix socket path holds at most \(maximumSocketPathBytes)"
        }
        return nil
    }

    static func groupName(_ value: String) -> String? {
        if value.isEmpty { return "must be a group name, got an empty string" }
        if value.contains(where: { $0 == ":" || $0 == "/" || $0.isWhitespace }) || value.utf8.contains(0) {
            return "'\(value)' is not a valid group name"
        }
        return nil
    }

    /// Camera names appear in logs, journald fields and status output: keep them short and plain.
    static func cameraName(_ value: String) -> String? {
        let plain = value.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-")
        }
        if value.isEmpty || value.count > 32 || !plain {
            return "'\(value)' is not a camera name (1 to 32 of A-Z a-z 0-9 _ -)"
        }
        return nil
    }
}

/// Writing TOML values.
enum TOMLText {
    static func string(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
