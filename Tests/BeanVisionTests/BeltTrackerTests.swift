import BeanCore
import Testing
@testable import BeanVision
#if canImport(Glibc)
import Glibc
#endif

/// A bean as the segmenter would report it, for feeding the tracker directly.
private func bean(x: Double, y: Double, size: Double = 30) -> SegmentedBean {
    SegmentedBean(label: 1, box: PixelRect(x: Int(x - size / 2), y: Int(y - size / 3), width: Int(size), height: Int(2 * size / 3)),
                  area: Int(size * size / 2), centroidX: x, centroidY: y, angle: 0, majorAxis: size, minorAxis: 2 * size / 3,
                  touchesEdge: false)
}

private func instant(frame: Int, fps: Double = 100) -> MonotonicInstant {
    MonotonicInstant(nanoseconds: UInt64(Double(frame) / fps * 1e9))
}

@Suite struct BeltTrackerTests {
    /// Lays out `count` beans on a long belt: rows of one to three, some pairs touching, some
    /// cut by the belt's side edges.
    private func beltScene(width: Int, length: Int, seed: UInt64) -> SyntheticScene {
        var rng = SplitMix64(state: seed)
        var scene = SyntheticScene(width: width, height: length)
        var y = 40.0
        while y < Double(length) - 40 {
            let kind = Int.random(in: 0..<5, using: &rng)
            let angle = Double.random(in: 0..<Double.pi, using: &rng)
            switch kind {
            case 0: // two beans in the same row, apart
                scene.beans.append(DrawnBean(x: Double(width) * 0.25, y: y, a: 16, b: 10, angle: angle))
                scene.beans.append(DrawnBean(x: Double(width) * 0.7, y: y + Double.random(in: -3...3, using: &rng), a: 15, b: 10, angle: -angle))
            case 1: // two beans touching side by side
                scene.beans.append(DrawnBean(x: Double(width) * 0.45, y: y, a: 16, b: 10, angle: Double.pi / 2))
                scene.beans.append(DrawnBean(x: Double(width) * 0.45 + 19.5, y: y + 2, a: 16, b: 10, angle: Double.pi / 2))
            case 2: // one bean running off the left edge, one whole
                scene.beans.append(DrawnBean(x: 8, y: y, a: 16, b: 10, angle: 0))
                scene.beans.append(DrawnBean(x: Double(width) * 0.6, y: y, a: 17, b: 11, angle: angle))
            default: // one bean anywhere
                scene.beans.append(DrawnBean(x: Double.random(in: 30...Double(width - 30), using: &rng), y: y, a: 16, b: 10, angle: angle))
            }
            y += Double.random(in: 45...70, using: &rng)
        }
        return scene
    }

    /// Scrolls the scene through a window (beans enter at the top, leave at the bottom), runs
    /// segmentation and tracking, and maps each decision back to the drawn bean it belongs to.
    private func run(scene: SyntheticScene, window: Int, step: Int, tracker: BeltTracker,
                     drop: (Int, Int) -> Bool = { _, _ in false }) throws -> (decided: [Int: Int], events: [(DecisionEvent, Int)]) {
        let segmenter = try Segmenter(settings: syntheticSettings())
        var decided: [Int: Int] = [:]
        var events: [(DecisionEvent, Int)] = []
        var offset = scene.height
        var frameIndex = 0
        while offset > -window {
            let frame = scene.frame(offsetY: offset, windowHeight: window, sequence: UInt64(frameIndex),
                                    captured: instant(frame: frameIndex))
            var beans = try segmenter.segment(frame)
            beans.removeAll { drop(frameIndex, Int($0.label)) }
            for event in tracker.update(beans: beans, frameWidth: frame.width, frameHeight: frame.height,
                                        sequence: frame.sequence, captured: frame.captured) {
                let sceneY = event.bean.centroidY + Double(offset)
                let nearest = scene.beans.indices.min {
                    hypot(scene.beans[$0].x - event.bean.centroidX, scene.beans[$0].y - sceneY)
                        < hypot(scene.beans[$1].x - event.bean.centroidX, scene.beans[$1].y - sceneY)
                }
                if let nearest {
                    decided[nearest, default: 0] += 1
                    events.append((event, nearest))
                }
            }
            offset -= step
            frameIndex += 1
        }
        return (decided, events)
    }

    @Test func decidesEveryBeanExactlyOnceWithLearnedSpeed() throws {
        let scene = beltScene(width: 320, length: 1200, seed: 7)
        var settings = TrackerSettings()
        settings.laneCount = 4
        let tracker = try BeltTracker(settings: settings)
        let (decided, events) = try run(scene: scene, window: 240, step: 9, tracker: tracker)
        #expect(scene.beans.count > 25)
        let missing = scene.beans.indices.filter { decided[$0] == nil }
        let twice = decided.filter { $0.value > 1 }
        #expect(missing.isEmpty, "beans never decided: \(missing.map { (scene.beans[$0].x, scene.beans[$0].y) })")
        #expect(twice.isEmpty, "beans decided twice: \(twice)")
        #expect(Set(events.map(\.0.beanID)).count == events.count)
        // Learned speed: 9 px per frame at 100 frames/s.
        let speed = try #require(tracker.speedPixelsPerSecond)
        #expect(abs(speed - 900) < 30)
        // Lanes follow x: four lanes over 320 px.
        for (event, index) in events {
            let expectedLane = min(3, max(0, Int(event.bean.centroidX / 80)))
            #expect(event.lane == expectedLane)
            _ = index
        }
        #expect(tracker.statistics.decisions == UInt64(events.count))
    }

    @Test func ejectTimeFollowsBeltSpeedAndDistance() throws {
        let scene = beltScene(width: 320, length: 900, seed: 11)
        var settings = TrackerSettings()
        settings.speedPixelsPerSecond = 1_200
        settings.learnSpeed = false
        settings.pixelsPerMetre = 4_000
        settings.decisionLineToEjectorMetres = 0.15
        let tracker = try BeltTracker(settings: settings)
        let (decided, events) = try run(scene: scene, window: 240, step: 12, tracker: tracker)
        #expect(decided.count == scene.beans.count)
        #expect(decided.values.allSatisfy { $0 == 1 })
        // 0.15 m × 4000 px/m ÷ 1200 px/s = 0.5 s after the crossing.
        for (event, _) in events {
            let eject = try #require(event.ejectAt)
            #expect(abs(eject.seconds(since: event.crossed) - 0.5) < 1e-6)
            // The crossing lies between the previous frame and this one.
            let frameTime = instant(frame: Int(event.frameSequence))
            #expect(event.crossed <= frameTime)
            #expect(frameTime.seconds(since: event.crossed) < 0.0101)
        }
    }

    @Test func aBeanMissingForAFrameIsStillDecidedOnce() throws {
        let scene = beltScene(width: 320, length: 900, seed: 3)
        let tracker = try BeltTracker(settings: TrackerSettings())
        // Every bean labelled 2 vanishes in every fifth frame.
        let (decided, _) = try run(scene: scene, window: 240, step: 10, tracker: tracker) { frame, label in
            frame % 5 == 0 && label == 2
        }
        #expect(decided.count == scene.beans.count)
        #expect(decided.values.allSatisfy { $0 == 1 })
    }

    @Test func worksForEveryBeltDirection() throws {
        for direction in BeltDirection.allCases {
            var settings = TrackerSettings()
            settings.direction = direction
            settings.laneCount = 2
            let tracker = try BeltTracker(settings: settings)
            var decisions: [DecisionEvent] = []
            // Two beans side by side (across the belt) travelling 8 px a frame over a 200×200 view.
            for frame in 0..<40 {
                let along = -20.0 + 8 * Double(frame)
                guard along < 230 else { break }
                let positions: [(Double, Double)] = [(along, 50), (along, 150)]
                let beans = positions.map { p -> SegmentedBean in
                    let (a, c) = p
                    switch direction {
                    case .down: return bean(x: c, y: a)
                    case .up: return bean(x: c, y: 200 - a)
                    case .right: return bean(x: a, y: c)
                    case .left: return bean(x: 200 - a, y: c)
                    }
                }
                decisions += tracker.update(beans: beans, frameWidth: 200, frameHeight: 200, sequence: UInt64(frame),
                                            captured: instant(frame: frame))
            }
            #expect(decisions.count == 2, "\(direction)")
            #expect(Set(decisions.map(\.lane)) == [0, 1], "\(direction)")
        }
    }

    @Test func beansFirstSeenPastTheLineAreNotDecided() throws {
        let tracker = try BeltTracker(settings: TrackerSettings())
        var count = 0
        for frame in 0..<10 {
            let y = 130.0 + 5 * Double(frame)
            count += tracker.update(beans: [bean(x: 100, y: y)], frameWidth: 200, frameHeight: 200, sequence: UInt64(frame),
                                    captured: instant(frame: frame)).count
        }
        #expect(count == 0)
        #expect(tracker.statistics.bornPastLine == 1)
    }

    @Test func rejectsBadSettingsNamingTheField() throws {
        var s = TrackerSettings()
        s.decisionLine = 1.5
        #expect(throws: TrackerSettingsError(field: "decisionLine", reason: "must be in (0, 1), got 1.5")) { try BeltTracker(settings: s) }
        s = TrackerSettings()
        s.laneCount = 0
        #expect(throws: TrackerSettingsError.self) { try BeltTracker(settings: s) }
        s = TrackerSettings()
        s.speedPixelsPerSecond = -3
        #expect(throws: TrackerSettingsError.self) { try BeltTracker(settings: s) }
        s = TrackerSettings()
        s.laneSpan = 10...10
        #expect(throws: TrackerSettingsError.self) { try BeltTracker(settings: s) }
    }
}

@Suite struct BeltVisionTests {
    @Test func decidedBeansComeWithTheirCrops() throws {
        var scene = SyntheticScene(width: 200, height: 600)
        scene.beans = (0..<6).map { i in DrawnBean(x: 50 + Double(i % 3) * 50, y: 60 + Double(i) * 85, a: 16, b: 10, angle: Double(i)) }
        var crop = CropSettings()
        crop.size = 48
        let vision = try BeltVision(segmenter: syntheticSettings(), tracker: TrackerSettings(), crop: crop)
        var decided: [DecidedBean] = []
        var offset = scene.height, index = 0
        while offset > -160 {
            let frame = scene.frame(offsetY: offset, windowHeight: 160, sequence: UInt64(index),
                                    captured: MonotonicInstant(nanoseconds: UInt64(index) * 10_000_000))
            decided += try vision.process(frame)
            offset -= 10
            index += 1
        }
        #expect(decided.count == 6)
        #expect(Set(decided.map(\.event.beanID)).count == 6)
        for d in decided {
            #expect(d.crop.beanID == d.event.beanID)
            #expect(d.crop.width == 48 && d.crop.pixels.count == 48 * 48 * 3)
            // The crop's centre is bean, its corner is the masked background.
            let centre = (24 * 48 + 24) * 3
            #expect(d.crop.pixels[centre] < 150)
            #expect(d.crop.pixels[0] == 0 && d.crop.pixels[1] == 0 && d.crop.pixels[2] == 0)
        }
    }

    @Test func rejectsBadCropSettings() throws {
        var crop = CropSettings()
        crop.size = 2
        #expect(throws: CropSettingsError.self) {
            try BeltVision(segmenter: SegmenterSettings(), tracker: TrackerSettings(), crop: crop)
        }
        crop = CropSettings()
        crop.scale = .fit(margin: 0.5)
        #expect(throws: CropSettingsError.self) {
            try BeltVision(segmenter: SegmenterSettings(), tracker: TrackerSettings(), crop: crop)
        }
    }
}
