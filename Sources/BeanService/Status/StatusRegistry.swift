import BeanCore
import BeanInspect
import Synchronization

/// What `beanctl status` and systemd's `STATUS=` show. Every figure that needs an engine is
/// optional: nil means no engine reports it (yet), and is shown as `null`, never as 0.
public struct DaemonStatus: Equatable, Sendable {
    public struct Camera: Equatable, Sendable {
        public var name: String
        /// `streaming`, `lost`, … as the capture engine names its states; nil without one.
        public var state: String?
        public var framesPerSecond: Double?
        /// Frames the pipeline took from this camera, and frames the capture handoff dropped
        /// (drop-oldest) because vision was behind.
        public var frames: UInt64?
        public var drops: UInt64?
        /// Tracker tracks that ended without a decision: lost before the decision line, or started
        /// past it. Tracks, not beans: a bean whose track breaks and is picked up again counts here
        /// and is still decided once. Nil without vision.
        public var lostBeforeLine: UInt64?
        public var bornPastLine: UInt64?
        public init(name: String, state: String? = nil, framesPerSecond: Double? = nil) {
            self.name = name
            self.state = state
            self.framesPerSecond = framesPerSecond
        }
    }

    public struct Store: Equatable, Sendable {
        public var path: String
        public var generation: UInt64?
        public var vectors: Int?
        public var dimension: Int?
        public var labels: [String]?
        public init(path: String, generation: UInt64? = nil, vectors: Int? = nil, dimension: Int? = nil,
                    labels: [String]? = nil) {
            self.path = path
            self.generation = generation
            self.vectors = vectors
            self.dimension = dimension
            self.labels = labels
        }
    }

    public struct Encoder: Equatable, Sendable {
        public var model: String
        public var fingerprint: String?
        /// Width and height of the model's input.
        public var inputSize: [Int]?
        public var outputDim: Int?
        public init(model: String, fingerprint: String? = nil) {
            self.model = model
            self.fingerprint = fingerprint
        }
    }

    public var cameras: [Camera]
    public var beansTotal: UInt64?
    public var rejectsTotal: UInt64?
    public var beansPerSecond: Double?
    public var store: Store
    public var encoder: Encoder
    /// `ok`, or `fail-safe: <why>` while no encoder or store can score; nil without a pipeline.
    public var scoring: String?
    public var inspection: Inspection?
    /// The reject crop spool's figures; nil without a pipeline.
    public var spool: SpoolFigures?
    /// The decision policy in force (mode, k, thresholds after any `set-threshold`) and how many
    /// neighbours events report; nil without a pipeline.
    public var policy: DecisionPolicy?
    public var reportedNeighbors: Int?

    public struct LatencyStageFigures: Equatable, Sendable {
        public var name: String
        public var p50Milliseconds: Double?
        public var p99Milliseconds: Double?
    }

    /// The pipeline's figures beyond the contract's minimum.
    public struct Inspection: Equatable, Sendable {
        public var rejectsByLabel: [String: UInt64]
        public var acceptedTotal: UInt64
        public var unscoredTotal: UInt64
        public var unknownTotal: UInt64
        public var latencyP50Milliseconds: Double?
        public var latencyP99Milliseconds: Double?
        /// Stage name, p50 and p99 in milliseconds (`LatencyStage.names`).
        public var latencyStages: [LatencyStageFigures] = []
        public var queues: [QueueGauge]
        /// Outcomes the decision queue refused (full for 200 ms): beans without a published verdict.
        public var lostOutcomes: UInt64
        public var visionErrors: UInt64
        public var scoringErrors: UInt64
    }

    public init(config: DaemonConfig) {
        cameras = config.cameras.map { Camera(name: $0.name) }
        store = Store(path: config.store.path)
        encoder = Encoder(model: config.encoder.model)
    }

    /// Cameras whose engine reports them streaming; nil when no camera has an engine behind it.
    public var camerasUp: Int? {
        let known = cameras.compactMap(\.state)
        return known.isEmpty ? nil : known.filter { $0 == "streaming" }.count
    }
}

/// The in-process registry the engines write their figures into and the control socket and status
/// ticker read from. Writers update under a short lock; readers take a copy.
public final class StatusRegistry: Sendable {
    public let started: MonotonicInstant
    private let status: Mutex<DaemonStatus>

    public init(config: DaemonConfig, started: MonotonicInstant = .now()) {
        self.started = started
        self.status = Mutex(DaemonStatus(config: config))
    }

    public func update(_ body: (inout DaemonStatus) -> Void) {
        status.withLock { body(&$0) }
    }

    public func snapshot() -> DaemonStatus { status.withLock { $0 } }

    public func uptimeSeconds(now: MonotonicInstant = .now()) -> Double { now.seconds(since: started) }

    /// A reload replaces the configured names and paths; figures of cameras that stay are kept.
    public func apply(config: DaemonConfig) {
        status.withLock { status in
            let previous = Dictionary(status.cameras.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            status.cameras = config.cameras.map { previous[$0.name] ?? DaemonStatus.Camera(name: $0.name) }
            status.store.path = config.store.path
            status.encoder.model = config.encoder.model
        }
    }

    /// The `status` command's result object (see contract: nulls for figures without an engine).
    public func json(version: String, now: MonotonicInstant = .now()) -> JSONValue {
        let status = snapshot()
        let uptime = (uptimeSeconds(now: now) * 1000).rounded() / 1000
        let policy: JSONValue = status.policy.map { Self.policyJSON($0, reportedNeighbors: status.reportedNeighbors) } ?? .null
        return .object([
            ("version", .string(version)),
            ("uptime_s", .double(uptime)),
            ("cameras", .array(status.cameras.map { camera in
                .object([("name", .string(camera.name)), ("state", .optional(camera.state)),
                         ("fps", .optional(camera.framesPerSecond)), ("frames", .optional(camera.frames)),
                         ("drops", .optional(camera.drops)),
                         ("tracks_lost_before_line", .optional(camera.lostBeforeLine)),
                         ("tracks_born_past_line", .optional(camera.bornPastLine))])
            })),
            ("beans_total", .optional(status.beansTotal)),
            ("rejects_total", .optional(status.rejectsTotal)),
            ("beans_per_s", .optional(status.beansPerSecond)),
            ("store", .object([
                ("path", .string(status.store.path)),
                ("generation", .optional(status.store.generation)),
                ("vectors", .optional(status.store.vectors)),
                ("dim", .optional(status.store.dimension)),
                ("labels", status.store.labels.map { .array($0.map(JSONValue.string)) } ?? .null),
            ])),
            ("encoder", .object([
                ("model", .string(status.encoder.model)),
                ("fingerprint", .optional(status.encoder.fingerprint)),
                ("input_size", status.encoder.inputSize.map { .array($0.map { JSONValue.int(Int64($0)) }) } ?? .null),
                ("output_dim", .optional(status.encoder.outputDim)),
            ])),
            ("scoring", .optional(status.scoring)),
            ("rejects_by_label", status.inspection.map { inspection in
                .object(inspection.rejectsByLabel.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int(Int64($0.value))) })
            } ?? .null),
            ("accepted_total", .optional(status.inspection?.acceptedTotal)),
            ("unscored_total", .optional(status.inspection?.unscoredTotal)),
            ("unknown_total", .optional(status.inspection?.unknownTotal)),
            ("lost_total", .optional(status.inspection?.lostOutcomes)),
            ("vision_errors", .optional(status.inspection?.visionErrors)),
            ("scoring_errors", .optional(status.inspection?.scoringErrors)),
            ("latency_ms", status.inspection.map { inspection in
                .object([("p50", .optional(inspection.latencyP50Milliseconds)),
                         ("p99", .optional(inspection.latencyP99Milliseconds)),
                         ("stages", .object(inspection.latencyStages.map { stage in
                             (stage.name, .object([("p50", .optional(stage.p50Milliseconds)),
                                                   ("p99", .optional(stage.p99Milliseconds))]))
                         }))])
            } ?? .null),
            ("queues", status.inspection.map { inspection in
                .array(inspection.queues.map { queue in
                    .object([("name", .string(queue.name)), ("policy", .string(queue.policy)),
                             ("depth", .int(Int64(queue.depth))), ("capacity", .int(Int64(queue.capacity))),
                             ("high_water", .int(Int64(queue.highWater))), ("dropped", .int(Int64(queue.dropped)))])
                })
            } ?? .null),
            ("spool", status.spool.map(Self.spoolJSON) ?? .null),
            ("policy", policy),
        ])
    }

    static func policyJSON(_ policy: DecisionPolicy, reportedNeighbors: Int?) -> JSONValue {
        let thresholds = policy.thresholds
        return .object([
            ("mode", .string(policy.mode.rawValue)), ("k", .int(Int64(policy.k))),
            ("good_labels", .array(policy.goodLabels.map(\.name).sorted().map(JSONValue.string))),
            ("reject_share", .double(thresholds.defaultRejectShare)),
            ("label_reject_shares", .object(thresholds.rejectShare.sorted { $0.key.name < $1.key.name }
                .map { ($0.key.name, JSONValue.double($0.value)) })),
            ("one_class_distance", .double(thresholds.oneClassDistance)),
            ("unknown_distance", .optional(thresholds.unknownDistance)),
            ("unknown_action", .string(policy.unknownAction.rawValue)),
            ("reported_neighbors", .optional(reportedNeighbors)),
        ])
    }

    static func spoolJSON(_ spool: SpoolFigures) -> JSONValue {
        .object([
            ("enabled", .bool(spool.enabled)), ("directory", .string(spool.directory)), ("state", .string(spool.state)),
            ("files", .optional(spool.files)), ("bytes", spool.bytes.map { .int($0) } ?? .null), ("max_bytes", .int(spool.maxBytes)),
            ("accepted_sample", .double(spool.acceptedFraction)), ("written", .int(Int64(clamping: spool.written))),
            ("dropped", .int(Int64(clamping: spool.dropped))), ("errors", .int(Int64(clamping: spool.errors))),
            ("evicted", .int(Int64(clamping: spool.evicted))), ("last_error", .optional(spool.lastError)),
            ("queue", .object([("depth", .int(Int64(spool.queue.depth))), ("capacity", .int(Int64(spool.queue.capacity))),
                               ("high_water", .int(Int64(spool.queue.highWater)))])),
        ])
    }

    /// systemd's one-line `STATUS=`: `up 1m05s; beans/s n/a; rejects n/a; cameras up n/a of 2`
    /// (`n/a`: no engine reports the figure yet).
    public func statusLine(now: MonotonicInstant = .now()) -> String {
        let status = snapshot()
        func shown<T>(_ value: T?, _ format: (T) -> String) -> String { value.map(format) ?? "n/a" }
        return "up \(Self.duration(uptimeSeconds(now: now))); "
            + "beans/s \(shown(status.beansPerSecond) { String(Double(Int($0 * 10)) / 10) }); "
            + "rejects \(shown(status.rejectsTotal) { String($0) }); "
            + "cameras up \(shown(status.camerasUp) { String($0) }) of \(status.cameras.count)"
            + (status.inspection.map { inspection in
                "; unscored \(inspection.unscoredTotal); p99 "
                    + shown(inspection.latencyP99Milliseconds) { String(Double(Int($0 * 10)) / 10) + " ms" }
            } ?? "")
            + (status.scoring.map { $0 == "ok" ? "" : "; FAIL-SAFE (no encoder or store)" } ?? "")
            + (status.spool.map { $0.state.hasPrefix("failing") ? "; spool failing" : "" } ?? "")
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let (days, hours, minutes, secs) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        if days > 0 { return "\(days)d\(two(hours))h\(two(minutes))m" }
        if hours > 0 { return "\(hours)h\(two(minutes))m\(two(secs))s" }
        if minutes > 0 { return "\(minutes)m\(two(secs))s" }
        return "\(secs)s"
    }
}
