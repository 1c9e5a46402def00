import BeanCore
import Synchronization

/// A consistent copy of the pipeline's figures for `beanctl status` / `watch`.
public struct InspectionSnapshot: Sendable, Hashable {
    /// When the snapshot was taken (monotonic).
    public var taken: MonotonicInstant
    public var beansTotal: UInt64
    public var acceptedTotal: UInt64
    /// Beans ejected for any reason (reject, unknown with action reject, unscored with reject-unscored).
    public var ejectedTotal: UInt64
    /// Verdict `reject`, per deciding label; one-class rejects count under `InspectionSnapshot.anomalyKey`.
    public var rejectsByLabel: [String: UInt64]
    public var unknownTotal: UInt64
    public var unscoredTotal: UInt64
    /// Beans decided per second over the sliding window (`InspectionStatistics.rateWindowSeconds`).
    public var beansPerSecond: Double
    /// Capture → decision latency over the last one to two latency windows, in microseconds; nil
    /// while no bean was decided in that time.
    public var latencyP50Microseconds: UInt64?
    public var latencyP99Microseconds: UInt64?
    /// The same latency cut into stages (`LatencyStage.names`), over the same windows: where the
    /// time goes when the total is high.
    public var latencyStages: [LatencyStage] = []
    public var queues: [QueueGauge]

    /// Key in `rejectsByLabel` for one-class rejects, which have no label.
    public static let anomalyKey = "(anomaly)"

    public var rejectsTotal: UInt64 { rejectsByLabel.values.reduce(0, +) }

    /// Rejects of each label as a fraction of all beans decided since start (0 while none).
    public var rejectFractionByLabel: [String: Double] {
        guard beansTotal > 0 else { return [:] }
        return rejectsByLabel.mapValues { Double($0) / Double(beansTotal) }
    }
}

extension InspectionSnapshot: Encodable {
    private enum CodingKeys: String, CodingKey {
        case beansTotal = "beans_total", acceptedTotal = "accepted_total", ejectedTotal = "ejected_total"
        case rejectsTotal = "rejects_total", rejectsByLabel = "rejects_by_label"
        case rejectFractionByLabel = "reject_fraction_by_label", unknownTotal = "unknown_total"
        case unscoredTotal = "unscored_total", beansPerSecond = "beans_per_s"
        case latencyP50 = "latency_p50_us", latencyP99 = "latency_p99_us", latencyStages = "latency_stages_us", queues
    }

    /// The status fields in the control protocol's snake_case; absent latencies are JSON null.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(beansTotal, forKey: .beansTotal)
        try container.encode(acceptedTotal, forKey: .acceptedTotal)
        try container.encode(ejectedTotal, forKey: .ejectedTotal)
        try container.encode(rejectsTotal, forKey: .rejectsTotal)
        try container.encode(rejectsByLabel, forKey: .rejectsByLabel)
        try container.encode(rejectFractionByLabel, forKey: .rejectFractionByLabel)
        try container.encode(unknownTotal, forKey: .unknownTotal)
        try container.encode(unscoredTotal, forKey: .unscoredTotal)
        try container.encode(beansPerSecond, forKey: .beansPerSecond)
        try container.encode(latencyP50Microseconds, forKey: .latencyP50)
        try container.encode(latencyP99Microseconds, forKey: .latencyP99)
        var stages = container.nestedContainer(keyedBy: DynamicKey.self, forKey: .latencyStages)
        for stage in latencyStages {
            var figures = stages.nestedContainer(keyedBy: DynamicKey.self, forKey: DynamicKey(stage.name))
            try figures.encode(stage.p50Microseconds, forKey: DynamicKey("p50"))
            try figures.encode(stage.p99Microseconds, forKey: DynamicKey("p99"))
        }
        try container.encode(queues, forKey: .queues)
    }
}

private struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// One stage of the capture → decision latency.
public struct LatencyStage: Sendable, Hashable {
    /// `vision`: capture → segmented and tracked (the frame's wait for its camera thread included);
    /// `scoring`: → embedded and searched (the encode queue's wait included);
    /// `decision`: → decided (the decision queue's wait included).
    public static let names = ["vision", "scoring", "decision"]
    public var name: String
    public var p50Microseconds: UInt64?
    public var p99Microseconds: UInt64?
}

/// Counters, rate and latency of the decision stage.
///
/// Thread ownership: one writer, the decision thread, calls `record` and `publishSnapshot`; the
/// mutable state is its own and unsynchronised. Readers (control socket, summary logger) call
/// `snapshot()` from any thread and get the last published `InspectionSnapshot`, a value guarded by
/// a mutex that is held only to copy one reference. The writer publishes on its own schedule (e.g.
/// every 100 ms or after each batch), so readers see figures at most that old and never slow the
/// writer down. Nothing in `record` allocates.
public final class InspectionStatistics: @unchecked Sendable {
    public static let rateWindowSeconds = 10.0
    static let rateBucketNanoseconds: UInt64 = 250_000_000
    static let rateBucketCount = 40  // 40 × 250 ms = 10 s

    /// Latencies are reported over the current and the previous window of this length.
    public let latencyWindowNanoseconds: UInt64

    // Writer-owned.
    private let started: MonotonicInstant
    private var beans: UInt64 = 0
    private var accepted: UInt64 = 0
    private var ejected: UInt64 = 0
    private var unknown: UInt64 = 0
    private var unscored: UInt64 = 0
    private var rejects: [String: UInt64] = [:]
    private var rateCounts: [UInt64]
    private var rateStamps: [UInt64]
    private var latencyCurrent = LatencyHistogram()
    private var latencyPrevious = LatencyHistogram()
    private var stageCurrent = Array(repeating: LatencyHistogram(), count: LatencyStage.names.count)
    private var stagePrevious = Array(repeating: LatencyHistogram(), count: LatencyStage.names.count)
    private var latencyWindowStart: UInt64
    private let queueSources: [any QueueGaugeSource]

    // Shared with readers.
    private let published: Mutex<InspectionSnapshot>

    public init(started: MonotonicInstant = .now(), latencyWindowSeconds: Double = 10,
                queues: [any QueueGaugeSource] = []) {
        self.started = started
        self.latencyWindowNanoseconds = UInt64(max(latencyWindowSeconds, 0.001) * 1e9)
        self.latencyWindowStart = started.nanoseconds
        self.rateCounts = Array(repeating: 0, count: Self.rateBucketCount)
        self.rateStamps = Array(repeating: UInt64.max, count: Self.rateBucketCount)
        self.queueSources = queues
        self.published = Mutex(InspectionSnapshot(
            taken: started, beansTotal: 0, acceptedTotal: 0, ejectedTotal: 0, rejectsByLabel: [:], unknownTotal: 0,
            unscoredTotal: 0, beansPerSecond: 0, latencyP50Microseconds: nil, latencyP99Microseconds: nil,
            queues: queues.map { $0.gauge() }))
    }

    /// Counts one decided bean. Writer thread only.
    /// `segmented` and `embedded` (nil for a bean that never reached that stage) feed the stage
    /// latencies.
    public func record(verdict: Verdict, label: Label?, eject: Bool, captured: MonotonicInstant,
                       segmented: MonotonicInstant? = nil, embedded: MonotonicInstant? = nil,
                       decided: MonotonicInstant) {
        beans += 1
        if eject { ejected += 1 }
        switch verdict {
        case .accept: accepted += 1
        case .reject:
            let key = label?.name ?? InspectionSnapshot.anomalyKey
            // Updating an existing key does not allocate; a new label allocates once.
            rejects[key, default: 0] += 1
        case .unknown: unknown += 1
        case .unscored: unscored += 1
        }
        countRate(at: decided)
        rotateLatency(at: decided)
        if decided >= captured {
            latencyCurrent.record(microseconds: (decided.nanoseconds - captured.nanoseconds) / 1_000)
        }
        if let segmented, let embedded, captured <= segmented, segmented <= embedded, embedded <= decided {
            stageCurrent[0].record(microseconds: (segmented.nanoseconds - captured.nanoseconds) / 1_000)
            stageCurrent[1].record(microseconds: (embedded.nanoseconds - segmented.nanoseconds) / 1_000)
            stageCurrent[2].record(microseconds: (decided.nanoseconds - embedded.nanoseconds) / 1_000)
        }
    }

    /// Convenience for a decided `BeanRecord` (unscored records carry no `decided` time: pass `now`).
    public func record(_ record: BeanRecord, now: MonotonicInstant) {
        guard let verdict = record.verdict else { return }
        self.record(verdict: verdict, label: record.label, eject: record.eject, captured: record.captured,
                    segmented: record.segmented, embedded: record.embedded, decided: record.decided ?? now)
    }

    /// Computes and publishes a snapshot for readers. Writer thread only.
    public func publishSnapshot(now: MonotonicInstant = .now()) {
        rotateLatency(at: now)
        let snapshot = InspectionSnapshot(
            taken: now, beansTotal: beans, acceptedTotal: accepted, ejectedTotal: ejected, rejectsByLabel: rejects,
            unknownTotal: unknown, unscoredTotal: unscored, beansPerSecond: beansPerSecond(at: now),
            latencyP50Microseconds: latencyCurrent.quantile(0.5, mergedWith: latencyPrevious),
            latencyP99Microseconds: latencyCurrent.quantile(0.99, mergedWith: latencyPrevious),
            latencyStages: LatencyStage.names.indices.map { index in
                LatencyStage(name: LatencyStage.names[index],
                             p50Microseconds: stageCurrent[index].quantile(0.5, mergedWith: stagePrevious[index]),
                             p99Microseconds: stageCurrent[index].quantile(0.99, mergedWith: stagePrevious[index]))
            },
            queues: queueSources.map { $0.gauge() })
        published.withLock { $0 = snapshot }
    }

    /// The last published snapshot. Any thread.
    public func snapshot() -> InspectionSnapshot {
        published.withLock { $0 }
    }

    // MARK: - writer internals

    private func countRate(at instant: MonotonicInstant) {
        let bucket = instant.nanoseconds / Self.rateBucketNanoseconds
        let slot = Int(bucket % UInt64(Self.rateBucketCount))
        if rateStamps[slot] != bucket {
            rateStamps[slot] = bucket
            rateCounts[slot] = 0
        }
        rateCounts[slot] += 1
    }

    /// Beans per second over the last `rateWindowSeconds` (or since start, when shorter).
    func beansPerSecond(at now: MonotonicInstant) -> Double {
        let current = now.nanoseconds / Self.rateBucketNanoseconds
        let oldest = current >= UInt64(Self.rateBucketCount - 1) ? current - UInt64(Self.rateBucketCount - 1) : 0
        var count: UInt64 = 0
        for slot in 0..<Self.rateBucketCount where rateStamps[slot] != UInt64.max
            && rateStamps[slot] >= oldest && rateStamps[slot] <= current {
            count += rateCounts[slot]
        }
        // The window covers the full buckets before the current one plus the current one so far.
        let windowStart = max(oldest * Self.rateBucketNanoseconds, started.nanoseconds)
        let span = Double(now.nanoseconds &- windowStart) / 1e9
        guard span > 0 else { return 0 }
        return Double(count) / max(span, Double(Self.rateBucketNanoseconds) / 1e9)
    }

    private func rotateLatency(at instant: MonotonicInstant) {
        guard instant.nanoseconds >= latencyWindowStart + latencyWindowNanoseconds else { return }
        if instant.nanoseconds >= latencyWindowStart + 2 * latencyWindowNanoseconds {
            // Idle for more than a whole window: both windows are stale.
            latencyPrevious.reset()
            latencyCurrent.reset()
            for index in stageCurrent.indices {
                stagePrevious[index].reset()
                stageCurrent[index].reset()
            }
        } else {
            swap(&latencyPrevious, &latencyCurrent)
            latencyCurrent.reset()
            swap(&stagePrevious, &stageCurrent)
            for index in stageCurrent.indices { stageCurrent[index].reset() }
        }
        latencyWindowStart = instant.nanoseconds - (instant.nanoseconds - latencyWindowStart) % latencyWindowNanoseconds
    }
}
