import BeanCapture
import BeanCore
import BeanInspect
import BeanNet
import BeanStore
import BeanVision
import Foundation
import Logging
import Synchronization

/// The inspection pipeline: cameras → vision → encoder → kNN → decision → outputs.
///
/// It lives in BeanService rather than BeanInspect because its outputs (journald entries with
/// message ids, the reject stream, the status registry, the watchdog) are the daemon's; the pieces
/// it wires (`DecisionPolicy`, `FailSafe`, `BoundedQueue`, `InspectionStatistics`, `RejectEvent`)
/// are BeanInspect's.
///
/// Threads and what each owns:
/// - `capture-<camera>` (`CaptureThread`): the frame source. Hands frames to a `FrameHandoff`
///   (capacity 4, drop-oldest: the freshest frame wins; counted as the camera's drops).
/// - `vision-<camera>`: the camera's `BeltVision` (segmenter, tracker, crops). Pushes each decided
///   bean into the shared `encode` queue (capacity `[inspect] queue`, drop-oldest: an evicted bean
///   goes straight to the fail-safe).
/// - `scorer-<n>` (`[encoder] workers` of them): take micro-batches from `encode`, embed them on
///   the `EncoderPool`, search the `LiveStore`, apply the `DecisionPolicy`; push outcomes into the
///   `decide` queue (capacity 4096, block-with-timeout 200 ms; a refused outcome is counted as lost).
/// - `decide`: the only writer of `FailSafe` and `InspectionStatistics`. Applies the fail-safe to
///   beans not scored before their eject time, publishes rejects to the stream and journald, logs
///   the 10 s summaries and publishes status. Every ejected bean goes to the reject stream; every
///   ejected bean except fail-safe (unscored) ones gets its own journald entry. Offers each decided
///   bean's crop to the `CropSpool` (sampling and a drop-newest push; never a wait).
/// - `spool` (`CropSpool`): encodes and writes the kept crops under the size cap; a full queue drops
///   crops (counted), never decisions.
///
/// Every loop beats its `LivenessRegistry` token at least once per 250 ms of idle waiting.
public final class Pipeline: Reloadable, Drainable, @unchecked Sendable {
    public var reloadName: String { "pipeline" }
    public var drainName: String { "pipeline" }

    struct PendingBean: Sendable {
        var crop: BeanCrop
        var lane: Int
        var ejectAt: MonotonicInstant?
        var segmented: MonotonicInstant
    }

    struct Outcome: Sendable {
        var bean: PendingBean
        var decision: Decision?
        var neighbors: [Neighbor]
        var embedded: MonotonicInstant?
    }

    private let status: StatusRegistry
    private let liveness: LivenessRegistry
    private let logger = Logger(label: "beand.pipeline")
    private let scoring: ScoringEngine
    private let publishReject: @Sendable (RejectEvent) -> Void
    private let encodeQueue: BoundedQueue<PendingBean>
    private let decideQueue: BoundedQueue<Outcome>
    private let statistics: InspectionStatistics
    private let policy: Mutex<DecisionPolicy>
    private let thresholdBook: Mutex<ThresholdBook?>
    private let config: Mutex<DaemonConfig>
    private let cameras: [CameraRuntime]
    private let spool: CropSpool
    private let lostOutcomes = Atomic<UInt64>(0)
    private let visionErrors = Atomic<UInt64>(0)
    private let scoringErrors = Atomic<UInt64>(0)
    private let stopScorers = Atomic<Bool>(false)
    private let decideClosed = Atomic<Bool>(false)
    private var scorerThreads: [Thread] = []
    private var decideThread: Thread?
    private let finished = DispatchGroup()
    private let scorersDone = DispatchGroup()
    private let visionDone = DispatchGroup()

    /// Builds the pipeline; nothing runs before `start()`. A camera whose source cannot be opened is
    /// logged and reported `failed` in status; the others run.
    public init(config: DaemonConfig, status: StatusRegistry, liveness: LivenessRegistry,
                publishReject: @escaping @Sendable (RejectEvent) -> Void) {
        self.status = status
        self.liveness = liveness
        self.publishReject = publishReject
        self.config = Mutex(config)
        let logger = self.logger
        self.scoring = ScoringEngine(logger: logger) { event in
            switch event {
            case .swapped(let from, let to, let path, let count):
                logger.notice("store generation swapped", metadata: [
                    "store.from": "\(from)", "store.to": "\(to)", "store.path": "\(path)", "store.vectors": "\(count)",
                ])
            case .refused(let error):
                logger.error("new store generation refused; the previous one keeps serving", metadata: [
                    "error": "\(error)",
                ])
            }
        }
        encodeQueue = BoundedQueue(name: "encode", capacity: config.inspect.queue, policy: .dropOldest)
        decideQueue = BoundedQueue(name: "decide", capacity: 4096, policy: .blockWithTimeout(milliseconds: 200))
        statistics = InspectionStatistics(queues: [encodeQueue, decideQueue])
        let goodLabels = Set(config.inspect.goodLabels.map { Label($0) })
        var book: ThresholdBook?
        do {
            book = try ThresholdBook(stateDirectory: config.daemon.stateDirectory, defaults: config.inspect.thresholds,
                                     goodLabels: goodLabels)
        } catch {
            logger.error("thresholds file unusable; using the configured thresholds (set-threshold cannot persist)",
                         metadata: ["error": "\(error)"])
        }
        thresholdBook = Mutex(book)
        let thresholds = book?.thresholds ?? config.inspect.thresholds
        let initialPolicy = (try? DecisionPolicy(mode: config.inspect.mode, k: config.inspect.k, goodLabels: goodLabels,
                                                 unknownAction: config.inspect.unknownAction, thresholds: thresholds))
        // The config checks make every field valid; the fallback only guards against a future gap.
        policy = Mutex(initialPolicy ?? (try? DecisionPolicy()) ?? Self.unreachablePolicy())
        cameras = config.cameras.map { CameraRuntime(config: $0) }
        spool = CropSpool(settings: Self.spoolSettings(config)) { event in
            switch event {
            case .scanned(let files, let bytes, let temporaries, let evicted):
                logger.info("spool scanned", metadata: [
                    "spool.files": "\(files)", "spool.bytes": "\(bytes)",
                    "spool.removed_temporaries": "\(temporaries)", "spool.evicted": "\(evicted)",
                ])
            case .failing(let reason):
                logger.error("spool cannot write crops; decisions continue (logged once per state change, counted in status)",
                             metadata: ["error": "\(reason)"])
            case .recovered(let failures):
                logger.notice("spool writes crops again", metadata: ["spool.failures": "\(failures)"])
            }
        }
    }

    static func spoolSettings(_ config: DaemonConfig) -> SpoolSettings {
        var settings = SpoolSettings(directory: config.spool.directory(stateDirectory: config.daemon.stateDirectory))
        settings.enabled = config.spool.enabled
        settings.maxBytes = Int64(config.spool.maxBytes)
        settings.acceptedFraction = config.spool.acceptedSample
        settings.jpegQuality = config.spool.jpegQuality
        settings.queueCapacity = config.spool.queue
        return settings
    }

    private static func unreachablePolicy() -> DecisionPolicy {
        // DecisionPolicy() with its defaults always validates.
        fatalError("default decision policy failed to validate")
    }

    // MARK: Start

    public func start() {
        let config = self.config.withLock { $0 }
        publishPolicy()
        logPolicy()
        if let problem = scoring.load(encoder: config.encoder, storePath: config.store.path) {
            logger.error("scoring unavailable; every bean gets the fail-safe verdict until a reload succeeds", metadata: [
                "error": "\(problem)", "unscored": "\(config.inspect.unscored.rawValue)",
            ])
        }
        publishScoringStatus()
        spool.start()
        let cropSize = scoring.current.engine?.model.inputSize?.width
        for camera in cameras {
            startCamera(camera, cropSize: camera.config.cropSize ?? cropSize ?? 64)
        }
        let lead = UInt64(config.inspect.ejectLeadMilliseconds * 1_000_000)
        for index in 0..<max(1, config.encoder.workers) {
            let token = liveness.register("scorer-\(index)")
            scorersDone.enter()
            let thread = Thread { [self] in
                CurrentThread.setName("scorer-\(index)")
                scorerLoop(token: token, maxBatch: config.encoder.maxBatch,
                           maxWaitNanoseconds: UInt64(config.encoder.maxWaitMilliseconds * 1_000_000),
                           deadlines: FailSafe(ejectLeadNanoseconds: lead))
                token.unregister()
                scorersDone.leave()
            }
            thread.name = "beand-scorer-\(index)"
            scorerThreads.append(thread)
            thread.start()
        }
        let token = liveness.register("decide")
        finished.enter()
        let unscored = config.inspect.unscored
        let thread = Thread { [self] in
            CurrentThread.setName("decide")
            decideLoop(token: token, failSafe: FailSafe(action: unscored, ejectLeadNanoseconds: lead))
            token.unregister()
            finished.leave()
        }
        thread.name = "beand-decide"
        decideThread = thread
        thread.start()
    }

    private func startCamera(_ camera: CameraRuntime, cropSize: Int) {
        let name = camera.config.name
        let logger = self.logger
        let sink = ClosureCameraEventSink { [camera] event in
            camera.noteEvent(event, logger: logger)
        }
        let vision: BeltVision
        let capture: CaptureThread
        do {
            var crop = CropSettings()
            crop.size = cropSize
            vision = try BeltVision(segmenter: camera.config.segmenterSettings, tracker: camera.config.trackerSettings,
                                    crop: crop)
            capture = CaptureThread(source: try camera.config.captureSettings.makeSource(events: sink))
            try capture.start()
        } catch {
            camera.fail("\(error)")
            logger.error("camera cannot start", metadata: BeandMessageID.cameraLost.metadata.merging([
                "camera": "\(name)", "source": "\(camera.config.source)", "error": "\(error)",
            ]) { first, _ in first })
            return
        }
        camera.capture = capture
        let token = liveness.register("vision-\(name)")
        visionDone.enter()
        let thread = Thread { [self] in
            CurrentThread.setName("vision/\(name)")
            visionLoop(camera: camera, capture: capture, vision: vision, token: token)
            // A camera that ended (replay or belt without loop) is not a stalled loop.
            token.unregister()
            visionDone.leave()
        }
        thread.name = "beand-vision-\(name)"
        thread.start()
    }

    // MARK: Vision

    private func visionLoop(camera: CameraRuntime, capture: CaptureThread, vision: BeltVision, token: LivenessToken) {
        var displaced: [PendingBean] = []
        while true {
            token.beat()
            switch capture.handoff.next(timeout: 0.25) {
            case .timedOut:
                continue
            case .finished(let error):
                camera.ended(error: error, logger: logger)
                return
            case .frame(let frame):
                camera.frameArrived(logger: logger, drops: capture.handoff.counters.droppedOldest)
                let decided: [DecidedBean]
                do {
                    decided = try vision.process(frame)
                    camera.trackerCounted(vision.tracker.statistics)
                } catch {
                    if visionErrors.add(1, ordering: .relaxed).oldValue == 0 {
                        logger.error("segmentation failed (logged once; counted in status)", metadata: [
                            "camera": "\(camera.config.name)", "error": "\(error)",
                        ])
                    }
                    continue
                }
                guard !decided.isEmpty else { continue }
                let segmented = MonotonicInstant.now()
                // The frame's beans go to the encode queue together, so one scorer takes them as
                // one batch instead of each bean waking a scorer of its own.
                displaced.removeAll(keepingCapacity: true)
                encodeQueue.push(contentsOf: decided.lazy.map { bean in
                    PendingBean(crop: bean.crop, lane: bean.event.lane, ejectAt: bean.event.ejectAt, segmented: segmented)
                }, displaced: &displaced)
                for old in displaced {
                    handOver(Outcome(bean: old, decision: nil, neighbors: [], embedded: nil))
                }
            }
        }
    }

    /// Into the decision queue; an outcome it refuses (full for 200 ms, or closed) is counted.
    private func handOver(_ outcome: Outcome) {
        if !decideQueue.push(outcome).isEnqueued {
            lostOutcomes.add(1, ordering: .relaxed)
        }
    }

    // MARK: Scoring

    /// Takes what the encode queue holds (a frame's beans arrive together), up to `maxBatch`;
    /// with `maxWaitNanoseconds` > 0 it then waits that long for more to fill the batch (fewer,
    /// larger batches at the cost of latency). Beans that would be too late by `deadlines` (the
    /// fail-safe's rule) once scored at this scorer's pace are not encoded (`handOverUnreachable`).
    private func scorerLoop(token: LivenessToken, maxBatch: Int, maxWaitNanoseconds: UInt64, deadlines: FailSafe) {
        var batch: [PendingBean] = []
        batch.reserveCapacity(maxBatch)
        var pace = ScoringPace()
        while true {
            token.beat()
            batch.removeAll(keepingCapacity: true)
            if encodeQueue.popBatch(maxCount: maxBatch, timeoutMilliseconds: 250, into: &batch) == 0 {
                if stopScorers.load(ordering: .acquiring) && encodeQueue.depth == 0 { return }
                continue
            }
            if maxWaitNanoseconds > 0 && batch.count < maxBatch {
                let deadline = MonotonicInstant.now().nanoseconds + maxWaitNanoseconds
                while batch.count < maxBatch {
                    let now = MonotonicInstant.now().nanoseconds
                    guard now < deadline,
                          encodeQueue.popBatch(maxCount: maxBatch - batch.count, timeoutNanoseconds: deadline - now,
                                               into: &batch) > 0 else { break }
                }
            }
            handOverUnreachable(&batch, deadlines: deadlines, pace: pace)
            // Beans handed over leave room that fresher ones behind them can take without a wait.
            while !batch.isEmpty && batch.count < maxBatch
                    && encodeQueue.popBatch(maxCount: maxBatch - batch.count, timeoutNanoseconds: 0, into: &batch) > 0 {
                handOverUnreachable(&batch, deadlines: deadlines, pace: pace)
            }
            guard !batch.isEmpty else { continue }
            let started = MonotonicInstant.now()
            score(batch)
            pace.record(batchOf: batch.count, tookNanoseconds: MonotonicInstant.now().nanoseconds &- started.nanoseconds)
        }
    }

    /// Hands the beans that this batch's expected duration (`pace`) would make late to the decision
    /// thread unscored, and keeps the rest in `batch`. Under overload the oldest waiting beans are
    /// close to their eject time; encoding them anyway delivered their scores late and made the
    /// beans behind them late too, until none was scored in time (an 80-pixel encoder at
    /// 27,500 px/s: 0 of 1,078 beans/s scored). The decision thread gives a skipped bean the
    /// fail-safe verdict, as it would have after scoring it too late.
    private func handOverUnreachable(_ batch: inout [PendingBean], deadlines: FailSafe, pace: ScoringPace) {
        deadlines.removeTooLate(&batch, now: MonotonicInstant.now(),
                                scoringNanoseconds: pace.expectedNanoseconds(forBatchOf: batch.count),
                                ejectAt: \.ejectAt) { bean in
            handOver(Outcome(bean: bean, decision: nil, neighbors: [], embedded: nil))
        }
    }

    private func score(_ batch: [PendingBean]) {
        guard let engine = scoring.current.engine else {
            for bean in batch { handOver(Outcome(bean: bean, decision: nil, neighbors: [], embedded: nil)) }
            return
        }
        let policy = self.policy.withLock { $0 }
        let reportedNeighbors = config.withLock { $0.inspect.reportedNeighbors }
        do {
            let vectors = try engine.pool.embedSync(batch.map(\.crop))
            let embedded = MonotonicInstant.now()
            let generation = engine.store.current
            var queries: [Float] = []
            queries.reserveCapacity(vectors.count * generation.dimension)
            for vector in vectors { queries += vector }
            let k = min(policy.k, SearchLimits.maximumK)
            let results = try generation.search(queries: queries, k: k)
            for (index, bean) in batch.enumerated() {
                var neighbors: [Neighbor] = []
                neighbors.reserveCapacity(k)
                for slot in 0..<k {
                    let id = results.ids[index * k + slot]
                    guard id >= 0 else { continue }
                    neighbors.append(Neighbor(label: Label(generation.label(ofRow: Int(id))),
                                              distance: results.distances[index * k + slot], vectorID: UInt64(id)))
                }
                let decision = policy.decide(neighbors)
                // The policy saw all k; the record, the reject event and journald keep the nearest.
                handOver(Outcome(bean: bean, decision: decision, neighbors: Array(neighbors.prefix(reportedNeighbors)),
                                 embedded: embedded))
            }
        } catch {
            if scoringErrors.add(1, ordering: .relaxed).oldValue == 0 {
                logger.error("scoring failed; the batch gets the fail-safe (logged once; counted in status)", metadata: [
                    "error": "\(error)",
                ])
            }
            for bean in batch { handOver(Outcome(bean: bean, decision: nil, neighbors: [], embedded: nil)) }
        }
    }

    // MARK: Decision

    private func decideLoop(token: LivenessToken, failSafe initial: FailSafe) {
        var failSafe = initial
        var lastPublish = MonotonicInstant.now()
        var lastSummary = lastPublish
        var acceptedSinceSummary: UInt64 = 0
        var beansSinceSummary: UInt64 = 0
        while true {
            token.beat()
            let outcome = decideQueue.pop(timeoutMilliseconds: 100)
            let now = MonotonicInstant.now()
            if let outcome {
                var record = BeanRecord(
                    id: outcome.bean.crop.beanID, camera: outcome.bean.crop.camera,
                    frameSequence: outcome.bean.crop.frameSequence, captured: outcome.bean.crop.captured,
                    segmented: outcome.bean.segmented, embedded: outcome.embedded, lane: outcome.bean.lane,
                    ejectAt: outcome.bean.ejectAt)
                if let decision = outcome.decision, !failSafe.isTooLate(ejectAt: outcome.bean.ejectAt, now: now) {
                    record.apply(decision, neighbors: outcome.neighbors, at: now)
                } else {
                    record.apply(failSafe.decideUnscored(), neighbors: [], at: now)
                }
                statistics.record(record, now: now)
                beansSinceSummary += 1
                if record.verdict == .accept { acceptedSinceSummary += 1 }
                let decidedAt = RejectEvent.wallClockNow()
                let cropPath = spool.offer(record, crop: outcome.bean.crop, unixMicroseconds: decidedAt)
                if var event = RejectEvent(record: record, unixMicroseconds: decidedAt) {
                    event.crop = cropPath?.relativePath
                    publishReject(event)
                    // Fail-safe ejections are logged in aggregate (below), not per bean: under
                    // overload they would flood the journal exactly when the machine is busiest.
                    if event.verdict != .unscored { logReject(event) }
                }
            }
            if now.seconds(since: lastPublish) >= 0.25 || outcome == nil {
                lastPublish = now
                statistics.publishSnapshot(now: now)
                publishStatus()
            }
            if now.seconds(since: lastSummary) >= 10 {
                lastSummary = now
                if beansSinceSummary > 0 {
                    logger.info("inspection summary", metadata: [
                        "beans": "\(beansSinceSummary)", "accepted": "\(acceptedSinceSummary)",
                        "interval_s": "10",
                    ])
                }
                if let summary = failSafe.takeSummary() {
                    logger.warning("\(summary.description)", metadata: [
                        "unscored.rejected": "\(summary.rejected)", "unscored.passed": "\(summary.passed)",
                    ])
                }
                beansSinceSummary = 0
                acceptedSinceSummary = 0
            }
            if outcome == nil && decideClosed.load(ordering: .acquiring) && decideQueue.depth == 0 {
                statistics.publishSnapshot(now: now)
                publishStatus()
                if let summary = failSafe.takeSummary() {
                    logger.warning("\(summary.description)", metadata: [
                        "unscored.rejected": "\(summary.rejected)", "unscored.passed": "\(summary.passed)",
                    ])
                }
                return
            }
        }
    }

    private func logReject(_ event: RejectEvent) {
        var metadata = BeandMessageID.reject.metadata
        for field in event.journalFields {
            metadata[field.name.lowercased()] = .string(field.value)
        }
        logger.notice("\(event.journalMessage)", metadata: metadata)
    }

    // MARK: Status

    /// Says in the journal which rule decides, at start and after a reload (the default mode
    /// changed from the vote to score mode, so an operator reading the log should not have to
    /// infer it), and warns about thresholds in the thresholds file that cannot act in this mode.
    private func logPolicy() {
        let current = policy.withLock { $0 }
        let thresholds = current.thresholds
        let labels = thresholds.rejectShare.sorted { $0.key.name < $1.key.name }
        var rule: String
        switch current.mode {
        case .score: rule = "reject score over the \(current.k) nearest reaches \(thresholds.defaultRejectShare)"
        case .vote: rule = "a defect label's vote share over the \(current.k) nearest reaches \(thresholds.defaultRejectShare)"
        case .oneClass: rule = "mean distance to the \(current.k) nearest good vectors exceeds \(thresholds.oneClassDistance)"
        }
        if !labels.isEmpty, current.mode != .oneClass {
            rule += " (" + labels.map { "label:\($0.key.name) \($0.value)" }.joined(separator: ", ") + ")"
        }
        logger.notice("deciding in \(current.mode.rawValue) mode: a bean is rejected when its \(rule)", metadata: [
            "policy.mode": "\(current.mode.rawValue)", "policy.k": "\(current.k)",
            "policy.reject_share": "\(thresholds.defaultRejectShare)",
        ])
        for (label, share) in labels {
            guard let note = current.ineffectiveThresholdNote(.rejectShare(label)) else { continue }
            logger.warning("threshold label:\(label.name) \(share) does not act: \(note)", metadata: [
                "threshold.key": "label:\(label.name)", "threshold.note": "\(note)",
            ])
        }
    }

    /// The policy in force, for `status` (after start, a reload and every threshold change).
    private func publishPolicy() {
        let current = policy.withLock { $0 }
        let reported = config.withLock { $0.inspect.reportedNeighbors }
        status.update { status in
            status.policy = current
            status.reportedNeighbors = reported
        }
    }

    private func publishScoringStatus() {
        let (engine, problem) = scoring.current
        status.update { status in
            status.scoring = problem.map { "fail-safe: \($0)" } ?? "ok"
            if let engine {
                status.encoder.fingerprint = engine.model.fingerprint
                status.encoder.inputSize = engine.model.inputSize.map { [$0.width, $0.height] }
                status.encoder.outputDim = engine.model.outputDim
                let generation = engine.store.current
                status.store.generation = generation.generation
                status.store.vectors = generation.count
                status.store.dimension = generation.dimension
                status.store.labels = generation.labels
            }
        }
    }

    private func publishStatus() {
        let snapshot = statistics.snapshot()
        let cameraFigures = cameras.map { ($0.config.name, $0.figures()) }
        let lost = lostOutcomes.load(ordering: .relaxed)
        let visionErrors = visionErrors.load(ordering: .relaxed)
        let scoringErrors = scoringErrors.load(ordering: .relaxed)
        let spoolFigures = spool.figures()
        publishScoringStatus()
        status.update { status in
            status.beansTotal = snapshot.beansTotal
            status.rejectsTotal = snapshot.ejectedTotal
            status.beansPerSecond = (snapshot.beansPerSecond * 100).rounded() / 100
            let byName = Dictionary(cameraFigures, uniquingKeysWith: { first, _ in first })
            for index in status.cameras.indices {
                guard let figures = byName[status.cameras[index].name] else { continue }
                status.cameras[index].state = figures.state
                status.cameras[index].framesPerSecond = figures.fps
                status.cameras[index].frames = figures.frames
                status.cameras[index].drops = figures.drops
                status.cameras[index].lostBeforeLine = figures.lostBeforeLine
                status.cameras[index].bornPastLine = figures.bornPastLine
            }
            status.inspection = DaemonStatus.Inspection(
                rejectsByLabel: snapshot.rejectsByLabel, acceptedTotal: snapshot.acceptedTotal,
                unscoredTotal: snapshot.unscoredTotal, unknownTotal: snapshot.unknownTotal,
                latencyP50Milliseconds: snapshot.latencyP50Microseconds.map { Double($0) / 1000 },
                latencyP99Milliseconds: snapshot.latencyP99Microseconds.map { Double($0) / 1000 },
                latencyStages: snapshot.latencyStages.map { stage in
                    DaemonStatus.LatencyStageFigures(name: stage.name,
                                                     p50Milliseconds: stage.p50Microseconds.map { Double($0) / 1000 },
                                                     p99Milliseconds: stage.p99Microseconds.map { Double($0) / 1000 })
                },
                queues: snapshot.queues, lostOutcomes: lost, visionErrors: visionErrors, scoringErrors: scoringErrors)
            status.spool = spoolFigures
        }
    }

    // MARK: Reload, thresholds, drain

    public func apply(_ new: DaemonConfig, previous: DaemonConfig) throws {
        if let problem = scoring.load(encoder: new.encoder, storePath: new.store.path) {
            logger.error("scoring unavailable after reload; the fail-safe decides", metadata: ["error": "\(problem)"])
            publishScoringStatus()
            throw ScoringError(problem)
        }
        let goodLabels = Set(new.inspect.goodLabels.map { Label($0) })
        // The thresholds file is re-read (an operator may have edited it); without one the new
        // config's values are the thresholds.
        let book = try ThresholdBook(stateDirectory: new.daemon.stateDirectory, defaults: new.inspect.thresholds,
                                     goodLabels: goodLabels)
        let thresholds = book.thresholds
        let updated = try DecisionPolicy(mode: new.inspect.mode, k: new.inspect.k, goodLabels: goodLabels,
                                         unknownAction: new.inspect.unknownAction, thresholds: thresholds)
        policy.withLock { $0 = updated }
        thresholdBook.withLock { $0 = book }
        config.withLock { $0 = new }
        spool.update(Self.spoolSettings(new))
        publishPolicy()
        logPolicy()
        publishScoringStatus()
    }

    public var generation: UInt64? { scoring.current.engine?.store.current.generation }

    /// Changes one threshold: validated, persisted in the thresholds file, then in force; logged.
    /// Returns the change and, when the new value does not change decisions in the current mode,
    /// why not (`DecisionPolicy.ineffectiveThresholdNote`).
    public func setThreshold(key keyText: String, value valueText: String) throws -> (change: ThresholdChange, note: String?) {
        guard let key = ThresholdKey(keyText) else {
            throw ScoringError("unknown threshold key '\(keyText)' (expected default, label:NAME, one-class or unknown)")
        }
        guard let value = ThresholdBook.parseValue(valueText) else {
            throw ScoringError("threshold value '\(valueText)' is not a number, 'off' or 'default'")
        }
        let change: ThresholdChange = try thresholdBook.withLock { book in
            guard var current = book else {
                throw ScoringError("thresholds file unusable (see the log at start-up); nothing changed")
            }
            let change = try current.set(key, to: value)
            book = current
            return change
        }
        let thresholds = thresholdBook.withLock { $0?.thresholds }
        let note: String? = policy.withLock { policy in
            if let thresholds { policy.thresholds = thresholds }
            return policy.ineffectiveThresholdNote(change.key)
        }
        var metadata: Logger.Metadata = [
            "threshold.key": "\(change.key)", "threshold.old": "\(change.old.map { "\($0)" } ?? "off")",
            "threshold.new": "\(change.new.map { "\($0)" } ?? "off")",
        ]
        if let note { metadata["threshold.note"] = "\(note)" }
        logger.notice("threshold changed", metadata: metadata)
        publishPolicy()
        return (change, note)
    }

    /// Stops the cameras, lets the beans in flight through the encoder and the decision, then
    /// stops; what is left at `deadline` is abandoned.
    public func drain(until deadline: ContinuousClock.Instant) {
        let clock = ContinuousClock()
        func remaining() -> DispatchTime { .now() + .nanoseconds(Int(Daemon.nanoseconds(deadline - clock.now))) }
        for camera in cameras { camera.capture?.stop() }
        _ = visionDone.wait(timeout: remaining())
        stopScorers.store(true, ordering: .releasing)
        _ = scorersDone.wait(timeout: remaining())
        encodeQueue.close()
        // Beans the scorers did not reach get the fail-safe; the decide loop publishes them.
        while let bean = encodeQueue.tryPop() {
            handOver(Outcome(bean: bean, decision: nil, neighbors: [], embedded: nil))
        }
        decideQueue.close()
        decideClosed.store(true, ordering: .releasing)
        let drained = finished.wait(timeout: remaining()) == .success
        // After the decisions: the crops of the last beans are queued by then.
        spool.stop(until: remaining())
        let snapshot = statistics.snapshot()
        logger.notice("pipeline drained", metadata: [
            "complete": "\(drained)", "beans": "\(snapshot.beansTotal)", "rejects": "\(snapshot.ejectedTotal)",
            "in_flight_left": "\(decideQueue.depth)",
        ])
        scoring.shutdown()
    }
}
