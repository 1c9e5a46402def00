import BeanCapture
import BeanCore
import BeanVision
import Foundation
import Logging

/// One camera's live figures and state, written by its capture events and its vision thread, read
/// by the decision thread for status. `lock` guards every field but `config` and `capture`.
final class CameraRuntime: @unchecked Sendable {
    struct Figures: Sendable {
        var state: String
        var fps: Double?
        var frames: UInt64
        var drops: UInt64
        /// The tracker's tracks that ended without a decision: lost before the decision line, and
        /// started already past it (both counted since start; tracks, not beans).
        var lostBeforeLine: UInt64
        var bornPastLine: UInt64
    }

    let config: CameraConfig
    /// Set once by `Pipeline.startCamera` before the vision thread starts; read at drain.
    var capture: CaptureThread?
    private let lock = NSLock()
    private var state = "starting"
    private var frames: UInt64 = 0
    private var drops: UInt64 = 0
    private var lostBeforeLine: UInt64 = 0
    private var bornPastLine: UInt64 = 0
    private var windowStart = MonotonicInstant.now()
    private var windowFrames: UInt64 = 0
    private var fps: Double?
    private var lostAt: MonotonicInstant?

    init(config: CameraConfig) { self.config = config }

    func figures() -> Figures {
        lock.lock()
        defer { lock.unlock() }
        // A camera that stopped delivering has no current rate.
        let stale = MonotonicInstant.now().seconds(since: windowStart) > 2
        return Figures(state: state, fps: stale && state != "streaming" ? nil : fps, frames: frames, drops: drops,
                       lostBeforeLine: lostBeforeLine, bornPastLine: bornPastLine)
    }

    /// Vision thread, after each frame: the tracker's counters of tracks that made no decision.
    func trackerCounted(_ statistics: TrackerStatistics) {
        lock.lock()
        lostBeforeLine = statistics.lostBeforeLine
        bornPastLine = statistics.bornPastLine
        lock.unlock()
    }

    func fail(_ reason: String) {
        lock.lock()
        state = "failed"
        lock.unlock()
    }

    /// Vision thread, per frame: counts it, measures the rate over 1 s windows, and logs a recovery.
    func frameArrived(logger: Logger, drops: UInt64) {
        let now = MonotonicInstant.now()
        lock.lock()
        frames += 1
        windowFrames += 1
        self.drops = drops
        let elapsed = now.seconds(since: windowStart)
        if elapsed >= 1 {
            fps = (Double(windowFrames) / elapsed * 10).rounded() / 10
            windowFrames = 0
            windowStart = now
        }
        let recoveredAfter = state == "streaming" ? nil : lostAt.map { now.seconds(since: $0) }
        let wasStarting = state == "starting"
        state = "streaming"
        lostAt = nil
        lock.unlock()
        if let recoveredAfter, !wasStarting {
            logger.notice("camera recovered", metadata: BeandMessageID.cameraRecovered.metadata.merging([
                "camera": "\(config.name)", "source": "\(config.source)", "down_s": "\((recoveredAfter * 10).rounded() / 10)",
            ]) { first, _ in first })
        }
    }

    /// The capture engine's events (V4L2 loss and reopen); frames themselves mark recovery.
    func noteEvent(_ event: CameraEvent, logger: Logger) {
        lock.lock()
        let wasLost = state == "lost" || state == "reopening"
        switch event.state {
        case .lost, .reopening:
            state = event.state.rawValue
            if lostAt == nil { lostAt = .now() }
        case .stopped:
            state = "stopped"
        case .starting, .streaming:
            break
        }
        lock.unlock()
        if event.state == .lost && !wasLost {
            logger.error("camera lost", metadata: BeandMessageID.cameraLost.metadata.merging([
                "camera": "\(config.name)", "source": "\(config.source)", "error": "\(event.message)",
            ]) { first, _ in first })
        }
    }

    /// The source ended: a replay or belt without `loop` (state `ended`), or an error (`lost`).
    func ended(error: Error?, logger: Logger) {
        lock.lock()
        state = error == nil ? "ended" : "lost"
        fps = nil
        lock.unlock()
        if let error {
            logger.error("camera lost", metadata: BeandMessageID.cameraLost.metadata.merging([
                "camera": "\(config.name)", "source": "\(config.source)", "error": "\(error)",
            ]) { first, _ in first })
        } else {
            logger.notice("camera source ended", metadata: ["camera": "\(config.name)", "source": "\(config.source)"])
        }
    }
}
