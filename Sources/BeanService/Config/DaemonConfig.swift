import BeanCapture
import BeanCore
import BeanInspect
import BeanVision
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
    public var inspect = InspectSection()
    public var spool = SpoolSection()
    public var cameras: [CameraConfig] = []

    public init() {}

    init(reading root: inout ConfigTableReader) {
        daemon = root.section(DaemonSection.self)
        log = root.section(LogSection.self)
        control = root.section(ControlSection.self)
        rejects = root.section(RejectsSection.self)
        store = root.section(StoreSection.self)
        encoder = root.section(EncoderSection.self)
        inspect = root.section(InspectSection.self)
        spool = root.section(SpoolSection.self)
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
                        encoder.rendered, inspect.rendered, spool.rendered]
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
    /// M: the last events kept for consumers that resume with `resume_after`.
    public var ring = 4096

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        socket = reader.string("socket", default: socket, check: ConfigCheck.socketPath)
        group = reader.string("group", default: group, check: ConfigCheck.groupName)
        ring = reader.integer("ring", default: ring, in: 16...1_048_576)
    }

    var renderedKeys: [String] {
        ["socket = \(TOMLText.string(socket))", "group = \(TOMLText.string(group))", "ring = \(ring)"]
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
    /// Encoder threads; each runs OpenBLAS single-threaded.
    public var workers = 2
    /// A scorer embeds at most this many crops at once (what the encode queue holds: the beans of
    /// one frame or more) … 8: on this project's 2-core box the default encoder runs 4,200 crops/s
    /// on two workers in batches of 8 and 3,400 in batches of 16 (the activations of a larger
    /// batch spill out of the cache), so a backlog must not make batches slower.
    public var maxBatch = 8
    /// … after waiting this long for more when it has fewer (0: start at once, the lowest latency).
    public var maxWaitMilliseconds = 0.0
    /// Per-channel normalisation (RGB) the encoder was trained with.
    public var mean: [Double] = [0.485, 0.456, 0.406]
    public var std: [Double] = [0.229, 0.224, 0.225]

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        model = reader.string("model", default: model, check: ConfigCheck.absolutePath)
        workers = reader.integer("workers", default: workers, in: 1...64)
        maxBatch = reader.integer("max_batch", default: maxBatch, in: 1...256)
        maxWaitMilliseconds = reader.number("max_wait_ms", default: maxWaitMilliseconds, check: ConfigCheck.range(0...1000))
        mean = reader.numberArray("mean", count: 3, check: ConfigCheck.range(-10...10)) ?? mean
        std = reader.numberArray("std", count: 3, check: ConfigCheck.positive) ?? std
    }

    var renderedKeys: [String] {
        ["model = \(TOMLText.string(model))", "workers = \(workers)", "max_batch = \(maxBatch)",
         "max_wait_ms = \(maxWaitMilliseconds)", "mean = \(TOMLText.numbers(mean))", "std = \(TOMLText.numbers(std))"]
    }
}

/// `[inspect]`: how a scored bean is decided, and what happens to beans that cannot be scored.
public struct InspectSection: ConfigSection {
    static let tableName = "inspect"
    /// Score mode by default: on the Mindforge folds it rejects about half again as many defects
    /// as the vote at the same share of good beans rejected (MODEL_CARD.md).
    public var mode = DecisionPolicy.Mode.score
    /// The configured neighbour count; nil: the mode's default (`DecisionPolicy.Mode.defaultK`).
    public var configuredK: Int?
    /// Neighbours per bean.
    public var k: Int {
        get { configuredK ?? mode.defaultK }
        set { configuredK = newValue }
    }
    public var goodLabels = ["Normal"]
    /// Default per-label vote share above which a bean is rejected (a start value: the thresholds
    /// file in the state directory, written by `set-threshold`, takes precedence).
    public var rejectShare = 0.5
    public var oneClassDistance = 0.3
    /// Nearest neighbour farther than this: verdict `unknown`; nil disables the check.
    public var unknownDistance: Double?
    public var unknownAction = DecisionPolicy.UnknownAction.reject
    public var unscored = UnscoredAction.rejectUnscored
    /// Beans waiting for the encoder, over all cameras (drop-oldest: the evicted bean gets the
    /// fail-safe verdict).
    public var queue = 256
    /// A bean whose eject time is closer than this when it would be scored gets the fail-safe.
    public var ejectLeadMilliseconds = 2.0
    /// How many of the decision's neighbours, nearest first, reject events and journald carry.
    /// Score mode decides over 64; an event that listed them all would be ~5 KB in the journal
    /// for every rejected bean, while the nearest few are what an operator checks.
    public var reportedNeighbors = 8

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        mode = reader.choice("mode", default: mode)
        if reader.isPresent("k") { configuredK = reader.integer("k", default: mode.defaultK, in: 1...64) }
        goodLabels = reader.stringArray("good_labels") { name in
            ThresholdKey.isValidLabelName(name) ? nil : "'\(name)' is not a label name (1 to 64 printable bytes, no spaces)"
        } ?? goodLabels
        if reader.isPresent("good_labels") && goodLabels.isEmpty {
            reader.report("good_labels", "must name at least one label")
            goodLabels = ["Normal"]
        }
        rejectShare = reader.number("reject_share", default: rejectShare) { value in
            value > 0 && value <= 1 ? nil : "must be a vote share in (0, 1], got \(value)"
        }
        oneClassDistance = reader.number("one_class_distance", default: oneClassDistance, check: ConfigCheck.positive)
        unknownDistance = reader.optionalNumber("unknown_distance", check: ConfigCheck.positive)
        unknownAction = reader.choice("unknown_action", default: unknownAction)
        unscored = reader.choice("unscored", default: unscored)
        queue = reader.integer("queue", default: queue, in: 1...65_536)
        ejectLeadMilliseconds = reader.number("eject_lead_ms", default: ejectLeadMilliseconds, check: ConfigCheck.range(0...10_000))
        reportedNeighbors = reader.integer("reported_neighbors", default: reportedNeighbors, in: 0...64)
    }

    /// The thresholds this table configures (the defaults of the thresholds file).
    public var thresholds: Thresholds {
        Thresholds(defaultRejectShare: rejectShare, rejectShare: [:], oneClassDistance: oneClassDistance,
                   unknownDistance: unknownDistance)
    }

    var renderedKeys: [String] {
        // An unset k follows the mode: shown, but as a comment, so the rendering parses back to
        // the same configuration.
        let kLine = configuredK.map { "k = \($0)" } ?? "# k = \(k) (the default in \(mode.rawValue) mode)"
        var keys = ["mode = \(TOMLText.string(mode.rawValue))", kLine,
                    "good_labels = [\(goodLabels.map(TOMLText.string).joined(separator: ", "))]",
                    "reject_share = \(rejectShare)", "one_class_distance = \(oneClassDistance)"]
        if let unknownDistance { keys.append("unknown_distance = \(unknownDistance)") }
        keys += ["unknown_action = \(TOMLText.string(unknownAction.rawValue))",
                 "unscored = \(TOMLText.string(unscored.rawValue))", "queue = \(queue)",
                 "eject_lead_ms = \(ejectLeadMilliseconds)", "reported_neighbors = \(reportedNeighbors)"]
        return keys
    }
}

/// `[spool]`: the reject crop spool (JPEG crops for review and labelling, under a size cap).
/// `enabled`, `max_bytes`, `accepted_sample` and `jpeg_quality` apply on reload; `directory` and
/// `queue` at the next start.
public struct SpoolSection: ConfigSection {
    static let tableName = "spool"
    public var enabled = true
    /// nil: `<daemon.state_dir>/spool` (see `directory(stateDirectory:)`).
    public var directory: String?
    public var maxBytes = 256 << 20
    /// Fraction of accepted beans whose crop is kept, 0 … 1 (0.01: one in a hundred).
    public var acceptedSample = 0.01
    public var jpegQuality = 90
    /// Crops waiting for the spool writer (drop-newest: a crop that does not fit is counted, the
    /// decision is unaffected).
    public var queue = 256

    public static let minimumBytes = 1 << 20

    public init() {}

    init(reading reader: inout ConfigTableReader) {
        enabled = reader.bool("enabled", default: enabled)
        if reader.isPresent("directory") {
            // The spool deletes the oldest *.jpg files under its directory: never the whole tree.
            directory = reader.requiredString("directory") { value in
                ConfigCheck.absolutePath(value)
                    ?? (value.split(separator: "/").isEmpty ? "must not be the root directory (the spool deletes old JPEG files under it)" : nil)
            }
        }
        maxBytes = reader.integer("max_bytes", default: maxBytes, in: Self.minimumBytes...(1 << 50))
        acceptedSample = reader.number("accepted_sample", default: acceptedSample) { value in
            value >= 0 && value <= 1 ? nil : "must be a fraction of accepted beans in [0, 1] (0.01: one in 100), got \(value)"
        }
        jpegQuality = reader.integer("jpeg_quality", default: jpegQuality, in: 1...100)
        queue = reader.integer("queue", default: queue, in: 1...65_536)
    }

    /// The spool directory: `directory`, or `spool` in the state directory.
    public func directory(stateDirectory: String) -> String {
        directory ?? (stateDirectory.hasSuffix("/") ? stateDirectory + "spool" : stateDirectory + "/spool")
    }

    var renderedKeys: [String] {
        var keys = ["enabled = \(enabled)"]
        if let directory { keys.append("directory = \(TOMLText.string(directory))") }
        keys += ["max_bytes = \(maxBytes)", "accepted_sample = \(acceptedSample)", "jpeg_quality = \(jpegQuality)",
                 "queue = \(queue)"]
        return keys
    }
}

/// Segmentation settings by name (BeanVision's presets).
public enum SegmentationPreset: String, Sendable, CaseIterable {
    /// `SegmenterSettings()`: light belt learned from the first frames.
    case standard = "default"
    /// `SegmenterSettings.tray`: tray photos and belts with larger beans.
    case tray
    /// `SegmenterSettings.mindforge`: the single-bean jig.
    case mindforge

    public var settings: SegmenterSettings {
        switch self {
        case .standard: return SegmenterSettings()
        case .tray: return .tray
        case .mindforge: return .mindforge
        }
    }
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

/// One `[[camera]]` table: where frames come from, how they are captured, and how beans are found
/// and tracked in them.
public struct CameraConfig: Equatable, Sendable {
    static let arrayName = "camera"
    public var name: String
    public var source: CameraSource
    // Capture (BeanCapture.CaptureSourceSettings).
    public var width = 1280
    public var height = 720
    public var fps = 30.0
    public var pixelFormat = CameraSettings.PixelFormatPreference.auto
    public var buffers = 4
    public var deviceTimeoutSeconds = 2.0
    public var exitOnLoss = false
    public var reopenBackoffInitialSeconds = 0.5
    public var reopenBackoffMaxSeconds = 10.0
    public var loop = true
    public var beltSpeed = 600.0
    public var beltColor: [Int]?
    // Vision (BeanVision).
    public var segmentation = SegmentationPreset.standard
    /// Overrides the preset's foreground threshold.
    public var threshold: Double?
    /// Overrides the preset's smallest bean area (pixels).
    public var minArea: Int?
    public var direction = BeltDirection.down
    /// Where beans are decided, as a fraction of the frame along the belt.
    public var decisionLine = 0.5
    public var lanes = 1
    public var pixelsPerMetre = 1000.0
    /// Belt distance from the decision line to the ejector; with the belt speed it gives the
    /// eject time the fail-safe works against.
    public var ejectorDistanceMetres = 0.1
    /// Crop edge in pixels; nil takes the encoder's input size.
    public var cropSize: Int?

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
        let defaults = CameraConfig(name: "", source: .v4l2(device: "/dev/null"))
        let width = reader.integer("width", default: defaults.width, in: 2...16_384)
        let height = reader.integer("height", default: defaults.height, in: 2...16_384)
        let fps = reader.number("fps", default: defaults.fps, check: ConfigCheck.range(0.1...10_000))
        let pixelFormat = reader.choice("pixel_format", default: defaults.pixelFormat)
        let buffers = reader.integer("buffers", default: defaults.buffers, in: 2...32)
        let deviceTimeout = reader.number("device_timeout", default: defaults.deviceTimeoutSeconds, check: ConfigCheck.range(0.05...60))
        let exitOnLoss = reader.bool("exit_on_loss", default: defaults.exitOnLoss)
        let backoffInitial = reader.number("reopen_backoff_initial", default: defaults.reopenBackoffInitialSeconds,
                                           check: ConfigCheck.range(0.01...600))
        let backoffMax = reader.number("reopen_backoff_max", default: defaults.reopenBackoffMaxSeconds,
                                       check: ConfigCheck.range(0.01...3600))
        if backoffMax < backoffInitial {
            reader.report("reopen_backoff_max", "\(backoffMax) is less than reopen_backoff_initial (\(backoffInitial))")
        }
        let loop = reader.bool("loop", default: defaults.loop)
        let beltSpeed = reader.number("belt_speed", default: defaults.beltSpeed, check: ConfigCheck.range(0.001...1_000_000))
        let beltColor = reader.numberArray("belt_color", count: 3) { value in
            value >= 0 && value <= 255 && value == value.rounded() ? nil : "colour components are integers 0...255, got \(value)"
        }.map { $0.map { Int($0) } }
        let segmentation = reader.choice("segmentation", default: defaults.segmentation)
        let threshold = reader.optionalNumber("threshold", check: ConfigCheck.range(1...441))
        let minArea: Int? = reader.isPresent("min_area") ? reader.integer("min_area", default: 150, in: 1...100_000_000) : nil
        let direction = reader.choice("direction", default: defaults.direction)
        let decisionLine = reader.number("decision_line", default: defaults.decisionLine) { value in
            value > 0 && value < 1 ? nil : "must be a fraction of the frame in (0, 1), got \(value)"
        }
        let lanes = reader.integer("lanes", default: defaults.lanes, in: 1...64)
        let pixelsPerMetre = reader.number("pixels_per_metre", default: defaults.pixelsPerMetre, check: ConfigCheck.positive)
        let ejectorDistance = reader.number("ejector_distance_m", default: defaults.ejectorDistanceMetres,
                                            check: ConfigCheck.range(0...100))
        let cropSize: Int? = reader.isPresent("crop_size") ? reader.integer("crop_size", default: 64, in: 8...1024) : nil
        guard let name, let source else { return nil }
        self.init(name: name, source: source)
        self.width = width
        self.height = height
        self.fps = fps
        self.pixelFormat = pixelFormat
        self.buffers = buffers
        self.deviceTimeoutSeconds = deviceTimeout
        self.exitOnLoss = exitOnLoss
        self.reopenBackoffInitialSeconds = backoffInitial
        self.reopenBackoffMaxSeconds = backoffMax
        self.loop = loop
        self.beltSpeed = beltSpeed
        self.beltColor = beltColor
        self.segmentation = segmentation
        self.threshold = threshold
        self.minArea = minArea
        self.direction = direction
        self.decisionLine = decisionLine
        self.lanes = lanes
        self.pixelsPerMetre = pixelsPerMetre
        self.ejectorDistanceMetres = ejectorDistance
        self.cropSize = cropSize
    }

    /// The capture engine's settings for this camera.
    public var captureSettings: CaptureSourceSettings {
        let uri: SourceURI
        switch source {
        case .v4l2(let device): uri = .v4l2(device: device)
        case .replay(let directory): uri = .replay(directory: directory)
        case .belt(let image): uri = .belt(photo: image)
        }
        var settings = CaptureSourceSettings(name: name, source: uri)
        settings.width = width
        settings.height = height
        settings.fps = fps
        settings.pixelFormat = pixelFormat
        settings.bufferCount = buffers
        settings.deviceTimeout = deviceTimeoutSeconds
        settings.exitOnLoss = exitOnLoss
        settings.reopenBackoffInitial = reopenBackoffInitialSeconds
        settings.reopenBackoffMax = reopenBackoffMaxSeconds
        settings.loop = loop
        settings.beltSpeed = beltSpeed
        settings.beltColor = beltColor.map { (UInt8($0[0]), UInt8($0[1]), UInt8($0[2])) }
        return settings
    }

    /// The segmenter's settings: the preset with this table's overrides.
    public var segmenterSettings: SegmenterSettings {
        var settings = segmentation.settings
        if let threshold { settings.threshold = threshold }
        if let minArea { settings.minArea = minArea }
        return settings
    }

    /// The tracker's settings. With a simulated belt the speed is known and not learned.
    public var trackerSettings: TrackerSettings {
        var settings = TrackerSettings()
        settings.direction = direction
        settings.decisionLine = decisionLine
        settings.laneCount = lanes
        settings.pixelsPerMetre = pixelsPerMetre
        settings.decisionLineToEjectorMetres = ejectorDistanceMetres
        if case .belt = source {
            settings.speedPixelsPerSecond = beltSpeed
            settings.learnSpeed = false
        }
        return settings
    }

    var rendered: String {
        var lines = ["[[\(Self.arrayName)]]", "name = \(TOMLText.string(name))", "source = \(TOMLText.string(source.description))",
                     "width = \(width)", "height = \(height)", "fps = \(fps)",
                     "pixel_format = \(TOMLText.string(pixelFormat.rawValue))", "buffers = \(buffers)",
                     "device_timeout = \(deviceTimeoutSeconds)", "exit_on_loss = \(exitOnLoss)",
                     "reopen_backoff_initial = \(reopenBackoffInitialSeconds)", "reopen_backoff_max = \(reopenBackoffMaxSeconds)",
                     "loop = \(loop)", "belt_speed = \(beltSpeed)"]
        if let beltColor { lines.append("belt_color = [\(beltColor.map(String.init).joined(separator: ", "))]") }
        lines.append("segmentation = \(TOMLText.string(segmentation.rawValue))")
        if let threshold { lines.append("threshold = \(threshold)") }
        if let minArea { lines.append("min_area = \(minArea)") }
        lines += ["direction = \(TOMLText.string(direction.rawValue))", "decision_line = \(decisionLine)",
                  "lanes = \(lanes)", "pixels_per_metre = \(pixelsPerMetre)", "ejector_distance_m = \(ejectorDistanceMetres)"]
        if let cropSize { lines.append("crop_size = \(cropSize)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Value checks shared by several keys; each returns a problem description or nil.
enum ConfigCheck {
    static func range(_ range: ClosedRange<Double>) -> (Double) -> String? {
        { value in range.contains(value) ? nil : "\(value) is out of range \(range.lowerBound)...\(range.upperBound)" }
    }

    static func positive(_ value: Double) -> String? {
        value > 0 ? nil : "must be greater than 0, got \(value)"
    }

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
    static func numbers(_ values: [Double]) -> String {
        "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
    }

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
