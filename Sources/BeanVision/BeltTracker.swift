import BeanCore

/// The way beans move through the image.
public enum BeltDirection: String, Sendable, Hashable, CaseIterable {
    /// Beans enter at the top and leave at the bottom (+y).
    case down
    /// Beans enter at the bottom and leave at the top (-y).
    case up
    /// Beans enter at the left and leave at the right (+x).
    case right
    /// Beans enter at the right and leave at the left (-x).
    case left
}

/// Everything the belt tracker can be told.
public struct TrackerSettings: Sendable, Hashable {
    public var direction: BeltDirection = .down
    /// Belt speed in image pixels per second; nil = learned from the beans' motion.
    public var speedPixelsPerSecond: Double? = nil
    /// Keep refining the speed from the beans' motion even when a speed is configured.
    public var learnSpeed: Bool = true
    /// Largest belt movement between two frames in pixels, bounding the search while the speed is
    /// not known yet; nil = half the frame's extent along the belt.
    public var maxStepPixels: Double? = nil
    /// Where the decision line lies along the belt, as a fraction of the frame's extent (0 = entry edge).
    public var decisionLine: Double = 0.5
    /// Ejector nozzles across the belt; lane 0 is at the left of the belt as seen by the camera
    /// (smallest x for a belt moving down or up, smallest y for one moving left or right).
    public var laneCount: Int = 1
    /// The part of the frame across the belt that the lanes divide, in pixels; nil = the whole frame.
    public var laneSpan: ClosedRange<Double>? = nil
    /// Image scale, for turning the ejector distance into pixels.
    public var pixelsPerMetre: Double = 1_000
    /// Distance along the belt from the decision line to the ejector nozzles, metres.
    public var decisionLineToEjectorMetres: Double = 0.1
    /// A track that was not seen for more frames than this is dropped.
    public var maxMissedFrames: Int = 3
    /// Largest distance across the belt between a track's prediction and a bean, pixels; the
    /// effective gate is at least half the bean's width.
    public var gateAcrossPixels: Double = 12
    /// Largest distance along the belt between a track's prediction and a bean once the speed is
    /// known, pixels; at least half the bean's length (a bean entering the view grows).
    public var gateAlongPixels: Double = 16
    /// Frames a bean must have been seen before it can be decided: one-frame fragments of a
    /// segmentation error do not make decisions.
    public var minFramesToDecide: Int = 2

    public init() {}

    public func validate() throws {
        func fail(_ field: String, _ why: String) -> TrackerSettingsError { TrackerSettingsError(field: field, reason: why) }
        if let v = speedPixelsPerSecond, !(v > 0 && v.isFinite) { throw fail("speedPixelsPerSecond", "must be positive, got \(v)") }
        if let v = maxStepPixels, !(v > 0 && v.isFinite) { throw fail("maxStepPixels", "must be positive, got \(v)") }
        guard decisionLine > 0, decisionLine < 1 else { throw fail("decisionLine", "must be in (0, 1), got \(decisionLine)") }
        guard laneCount >= 1 else { throw fail("laneCount", "must be at least 1, got \(laneCount)") }
        if let span = laneSpan, !(span.upperBound > span.lowerBound) { throw fail("laneSpan", "must not be empty, got \(span)") }
        guard pixelsPerMetre > 0, pixelsPerMetre.isFinite else { throw fail("pixelsPerMetre", "must be positive, got \(pixelsPerMetre)") }
        guard decisionLineToEjectorMetres >= 0, decisionLineToEjectorMetres.isFinite else {
            throw fail("decisionLineToEjectorMetres", "must be ≥ 0, got \(decisionLineToEjectorMetres)")
        }
        guard maxMissedFrames >= 0 else { throw fail("maxMissedFrames", "must be ≥ 0, got \(maxMissedFrames)") }
        guard gateAcrossPixels > 0 else { throw fail("gateAcrossPixels", "must be positive, got \(gateAcrossPixels)") }
        guard gateAlongPixels > 0 else { throw fail("gateAlongPixels", "must be positive, got \(gateAlongPixels)") }
        guard minFramesToDecide >= 1 else { throw fail("minFramesToDecide", "must be at least 1, got \(minFramesToDecide)") }
    }
}

public struct TrackerSettingsError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var reason: String
    public var description: String { "tracker setting \(field): \(reason)" }
}

/// A bean crossing the decision line: the one moment the pipeline scores it and decides.
public struct DecisionEvent: Sendable {
    /// Unique per tracker for its lifetime.
    public var beanID: UInt64
    public var lane: Int
    /// When the bean's centroid crossed the line (interpolated between frames).
    public var crossed: MonotonicInstant
    /// When the bean reaches the ejector nozzles; nil while the belt speed is not known.
    public var ejectAt: MonotonicInstant?
    /// The frame the decision was made in and the bean as seen in it.
    public var frameSequence: UInt64
    public var bean: SegmentedBean
}

/// Counters of the tracker's life.
public struct TrackerStatistics: Sendable, Hashable {
    public var frames: UInt64 = 0
    public var tracksStarted: UInt64 = 0
    public var decisions: UInt64 = 0
    /// Beans first seen already past the decision line (never decided: they may have been decided
    /// under another track, or appeared there after a segmentation gap).
    public var bornPastLine: UInt64 = 0
    /// Tracks dropped before their bean crossed the line.
    public var lostBeforeLine: UInt64 = 0
}

/// Follows beans on a belt moving in one direction: predicts each track by the belt's motion,
/// associates beans greedily by distance inside gates, and emits exactly one `DecisionEvent` per
/// track when its centroid crosses the decision line. One instance per camera thread.
public final class BeltTracker {
    public let settings: TrackerSettings
    public private(set) var statistics = TrackerStatistics()
    /// Current speed estimate in pixels per second (configured or learned); nil before learned.
    public private(set) var speedPixelsPerSecond: Double?

    struct Track {
        var id: UInt64
        /// Position along the belt (increasing in the direction of travel) and across it.
        var along: Double
        var across: Double
        var length: Double
        var width: Double
        var seen: Int
        var missed: Int
        var bornBeforeLine: Bool
        var decided: Bool
        var lastSeen: MonotonicInstant
        /// The last detection did not reach the frame's edge (its centroid moves with the belt).
        var whole: Bool
    }

    private var tracks: [Track] = []
    private var nextID: UInt64 = 1
    private var lastTime: MonotonicInstant?
    private var events: [DecisionEvent] = []
    // Scratch, reused every frame.
    private var pairs: [(cost: Double, track: Int32, bean: Int32)] = []
    private var trackTaken: [Bool] = []
    private var beanTaken: [Bool] = []
    private var histogram: [Int32] = []
    private var positions: [(along: Double, across: Double, length: Double, width: Double, whole: Bool)] = []

    public init(settings: TrackerSettings) throws {
        try settings.validate()
        self.settings = settings
        speedPixelsPerSecond = settings.speedPixelsPerSecond
        tracks.reserveCapacity(256)
        events.reserveCapacity(64)
        pairs.reserveCapacity(4096)
    }

    /// Live tracks (for status and tests).
    public var trackCount: Int { tracks.count }

    private func alongAcross(_ bean: SegmentedBean, width: Int, height: Int) -> (Double, Double, Double, Double, Bool) {
        let (bw, bh) = (Double(bean.box.width), Double(bean.box.height))
        let whole = !bean.touchesEdge
        switch settings.direction {
        case .down: return (bean.centroidY, bean.centroidX, bh, bw, whole)
        case .up: return (Double(height) - bean.centroidY, bean.centroidX, bh, bw, whole)
        case .right: return (bean.centroidX, bean.centroidY, bw, bh, whole)
        case .left: return (Double(width) - bean.centroidX, bean.centroidY, bw, bh, whole)
        }
    }

    public func lane(across: Double, frameAcross: Double) -> Int {
        let span = settings.laneSpan ?? 0...frameAcross
        let f = (across - span.lowerBound) / (span.upperBound - span.lowerBound)
        return min(settings.laneCount - 1, max(0, Int(f * Double(settings.laneCount))))
    }

    /// Feeds the beans of one frame (all beans, cut-off ones included); returns the beans decided in
    /// it. The returned array is valid until the next call.
    public func update(beans: [SegmentedBean], frameWidth: Int, frameHeight: Int, sequence: UInt64,
                       captured: MonotonicInstant) -> [DecisionEvent] {
        events.removeAll(keepingCapacity: true)
        statistics.frames += 1
        let vertical = settings.direction == .down || settings.direction == .up
        let extent = Double(vertical ? frameHeight : frameWidth)
        let acrossExtent = Double(vertical ? frameWidth : frameHeight)
        let line = settings.decisionLine * extent
        let dt = lastTime.map { captured.seconds(since: $0) } ?? 0
        lastTime = captured

        positions.removeAll(keepingCapacity: true)
        for b in beans { let p = alongAcross(b, width: frameWidth, height: frameHeight); positions.append(p) }

        // Belt shift since the last frame: the configured or learned speed, refined by the mode of
        // the beans' along-belt displacements (the belt is rigid: all beans move together).
        var shift = (speedPixelsPerSecond ?? 0) * dt
        if (speedPixelsPerSecond == nil || settings.learnSpeed), !tracks.isEmpty, !positions.isEmpty, dt > 0 {
            if let measured = measuredShift(predicted: speedPixelsPerSecond == nil ? nil : shift, extent: extent) {
                shift = measured
                let speed = measured / dt
                if let old = speedPixelsPerSecond {
                    speedPixelsPerSecond = 0.8 * old + 0.2 * speed
                } else {
                    speedPixelsPerSecond = speed
                }
            }
        }
        let speedKnown = speedPixelsPerSecond != nil

        // Candidate pairs inside the gates, cheapest first.
        pairs.removeAll(keepingCapacity: true)
        let maxStep = settings.maxStepPixels ?? extent / 2
        for (t, track) in tracks.enumerated() {
            let predicted = track.along + shift
            for (b, p) in positions.enumerated() {
                let dAcross = abs(p.across - track.across)
                guard dAcross <= max(settings.gateAcrossPixels, 0.5 * min(track.width, p.width)) else { continue }
                let dAlong = p.along - predicted
                let gateAlong = max(settings.gateAlongPixels, 0.5 * max(track.length, p.length))
                if speedKnown {
                    guard abs(dAlong) <= gateAlong else { continue }
                } else {
                    guard p.along - track.along >= -gateAlong, p.along - track.along <= maxStep else { continue }
                }
                pairs.append((dAlong * dAlong + dAcross * dAcross, Int32(t), Int32(b)))
            }
        }
        pairs.sort { $0.cost < $1.cost }
        trackTaken.removeAll(keepingCapacity: true)
        trackTaken.append(contentsOf: repeatElement(false, count: tracks.count))
        beanTaken.removeAll(keepingCapacity: true)
        beanTaken.append(contentsOf: repeatElement(false, count: positions.count))
        for pair in pairs where !trackTaken[Int(pair.track)] && !beanTaken[Int(pair.bean)] {
            let t = Int(pair.track), b = Int(pair.bean)
            trackTaken[t] = true
            beanTaken[b] = true
            let p = positions[b]
            let previousAlong = tracks[t].along
            let previousTime = tracks[t].lastSeen
            tracks[t].along = p.along
            tracks[t].across = p.across
            tracks[t].length = p.length
            tracks[t].width = p.width
            tracks[t].seen += 1
            tracks[t].missed = 0
            tracks[t].lastSeen = captured
            tracks[t].whole = p.whole
            decideIfCrossed(t, previousAlong: previousAlong, previousTime: previousTime, line: line,
                            bean: beans[b], acrossExtent: acrossExtent, sequence: sequence, captured: captured)
        }
        // Unmatched tracks coast on the belt's motion; drop them when lost or out of view.
        var t = 0
        while t < tracks.count {
            if t < trackTaken.count && trackTaken[t] { t += 1; continue }
            tracks[t].missed += 1
            tracks[t].along += shift
            if tracks[t].missed > settings.maxMissedFrames || tracks[t].along > extent + tracks[t].length {
                if !tracks[t].decided && tracks[t].bornBeforeLine { statistics.lostBeforeLine += 1 }
                tracks.swapAt(t, tracks.count - 1)
                tracks.removeLast()
                if t < trackTaken.count { trackTaken.swapAt(t, trackTaken.count - 1); trackTaken.removeLast() }
                continue
            }
            t += 1
        }
        // New beans start tracks.
        for (b, p) in positions.enumerated() where !beanTaken[b] {
            let born = p.along < line
            if !born { statistics.bornPastLine += 1 }
            tracks.append(Track(id: nextID, along: p.along, across: p.across, length: p.length, width: p.width,
                                seen: 1, missed: 0, bornBeforeLine: born, decided: false, lastSeen: captured,
                                whole: p.whole))
            nextID += 1
            statistics.tracksStarted += 1
        }
        return events
    }

    private func decideIfCrossed(_ t: Int, previousAlong: Double, previousTime: MonotonicInstant, line: Double,
                                 bean: SegmentedBean, acrossExtent: Double, sequence: UInt64, captured: MonotonicInstant) {
        let track = tracks[t]
        guard !track.decided, track.bornBeforeLine, track.along >= line, track.seen >= settings.minFramesToDecide else { return }
        tracks[t].decided = true
        var crossed = captured
        if previousAlong < line, track.along > previousAlong {
            let f = (line - previousAlong) / (track.along - previousAlong)
            let span = Double(captured.nanoseconds &- previousTime.nanoseconds)
            crossed = MonotonicInstant(nanoseconds: previousTime.nanoseconds &+ UInt64(max(0, f * span)))
        }
        var ejectAt: MonotonicInstant?
        if let speed = speedPixelsPerSecond, speed > 0 {
            let seconds = settings.decisionLineToEjectorMetres * settings.pixelsPerMetre / speed
            ejectAt = MonotonicInstant(nanoseconds: crossed.nanoseconds &+ UInt64(seconds * 1e9))
        }
        statistics.decisions += 1
        events.append(DecisionEvent(beanID: track.id, lane: lane(across: track.across, frameAcross: acrossExtent),
                                    crossed: crossed, ejectAt: ejectAt, frameSequence: sequence, bean: bean))
    }

    /// The most common along-belt displacement between tracks and beans in the same column, both
    /// whole (a bean cut by the frame's edge grows or shrinks, so its centroid does not keep pace)
    /// (2-pixel bins, averaged over the winning bin and its neighbours). With a prediction, only
    /// displacements near it count; without, only forward ones up to the largest step.
    private func measuredShift(predicted: Double?, extent: Double) -> Double? {
        let maxStep = settings.maxStepPixels ?? extent / 2
        let low: Double, high: Double
        if let predicted {
            let slack = max(settings.gateAlongPixels, 0.5 * abs(predicted))
            low = predicted - slack
            high = predicted + slack
        } else {
            low = -2
            high = maxStep
        }
        let bins = Int(((high - low) / 2).rounded(.up)) + 1
        guard bins > 0, bins < 100_000 else { return nil }
        histogram.removeAll(keepingCapacity: true)
        histogram.append(contentsOf: repeatElement(0, count: bins))
        for track in tracks where track.missed == 0 && track.whole {
            for p in positions where p.whole {
                guard abs(p.across - track.across) <= max(settings.gateAcrossPixels, 0.5 * min(track.width, p.width)) else { continue }
                let d = p.along - track.along
                guard d >= low, d <= high else { continue }
                histogram[Int((d - low) / 2)] += 1
            }
        }
        // The smallest displacement wins among equally voted bins: a regular grid of beans also
        // votes for one row spacing further.
        var best = 0
        for i in histogram.indices where histogram[i] > histogram[best] { best = i }
        guard histogram[best] >= 2 else { return nil }
        var sum = 0.0, n = 0.0
        for track in tracks where track.missed == 0 && track.whole {
            for p in positions where p.whole {
                guard abs(p.across - track.across) <= max(settings.gateAcrossPixels, 0.5 * min(track.width, p.width)) else { continue }
                let d = p.along - track.along
                guard d >= low, d <= high, abs(Int((d - low) / 2) - best) <= 1 else { continue }
                sum += d
                n += 1
            }
        }
        return n > 0 ? sum / n : nil
    }
}
