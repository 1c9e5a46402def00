import BeanCore
import Testing
@testable import BeanVision
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SegmenterTests {
    @Test func findsSeparateBeansWithTheirGeometry() throws {
        var scene = SyntheticScene(width: 320, height: 240)
        scene.beans = [
            DrawnBean(x: 60, y: 60, a: 22, b: 13, angle: 0),
            DrawnBean(x: 170, y: 70, a: 20, b: 12, angle: Double.pi / 6),
            DrawnBean(x: 260, y: 170, a: 24, b: 14, angle: -Double.pi / 3),
            DrawnBean(x: 90, y: 180, a: 18, b: 11, angle: Double.pi / 2),
        ]
        let segmenter = try Segmenter(settings: syntheticSettings())
        let beans = try segmenter.segment(scene.frame())
        #expect(beans.count == 4)
        for drawn in scene.beans {
            let match = beans.min { hypot($0.centroidX - drawn.x, $0.centroidY - drawn.y) < hypot($1.centroidX - drawn.x, $1.centroidY - drawn.y) }
            guard let bean = match else { Issue.record("no bean near \(drawn.x),\(drawn.y)"); continue }
            #expect(hypot(bean.centroidX - drawn.x, bean.centroidY - drawn.y) < 1.0)
            let expectedArea = Double.pi * drawn.a * drawn.b
            #expect(abs(Double(bean.area) - expectedArea) / expectedArea < 0.08)
            // Angles are axial: compare modulo π.
            var dAngle = abs(bean.angle - drawn.angle).truncatingRemainder(dividingBy: Double.pi)
            dAngle = min(dAngle, Double.pi - dAngle)
            #expect(dAngle < 3 * Double.pi / 180, "angle \(bean.angleDegrees)° for drawn \(drawn.angle * 180 / Double.pi)°")
            #expect(abs(bean.majorAxis - 2 * drawn.a) < 2.5)
            #expect(abs(bean.minorAxis - 2 * drawn.b) < 2.5)
            #expect(bean.box.x <= Int(bean.centroidX) && bean.box.maxX > Int(bean.centroidX))
            #expect(bean.box.y <= Int(bean.centroidY) && bean.box.maxY > Int(bean.centroidY))
            #expect(bean.box.width <= Int(2 * drawn.a) + 2 && bean.box.height <= Int(2 * drawn.a) + 2)
            #expect(!bean.touchesEdge)
        }
        // The mask is exactly the pixels of the label.
        let first = beans[0]
        let mask = segmenter.mask(of: first)
        #expect(mask.reduce(0) { $0 + Int($1) } == first.area)
    }

    @Test func splitsTouchingBeansButKeepsACreasedBeanWhole() throws {
        var scene = SyntheticScene(width: 240, height: 160)
        // Two beans side by side, overlapping by a pixel; a third creased bean alone.
        scene.beans = [
            DrawnBean(x: 60, y: 60, a: 22, b: 14, angle: Double.pi / 2),
            DrawnBean(x: 87, y: 62, a: 22, b: 14, angle: Double.pi / 2),
            DrawnBean(x: 180, y: 90, a: 26, b: 16, angle: 0.3, crease: true),
        ]
        let frame = scene.frame()
        let split = try Segmenter(settings: syntheticSettings())
        let beans = try split.segment(frame)
        #expect(beans.count == 3)
        let left = beans.filter { $0.centroidX < 120 }
        #expect(left.count == 2)
        if left.count == 2 {
            let xs = left.map(\.centroidX).sorted()
            #expect(abs(xs[0] - 60) < 4 && abs(xs[1] - 87) < 4)
        }
        var noSplitSettings = syntheticSettings()
        noSplitSettings.splitTouching = false
        let whole = try Segmenter(settings: noSplitSettings).segment(frame)
        #expect(whole.count == 2)
    }

    @Test func fillsHolesAndDropsSpecks() throws {
        var scene = SyntheticScene(width: 200, height: 120)
        scene.beans = [
            DrawnBean(x: 60, y: 60, a: 30, b: 20, angle: 0),
            // A belt-coloured "hole" inside the bean.
            DrawnBean(x: 60, y: 60, a: 8, b: 6, angle: 0, colour: RGB(200, 205, 200)),
            // A speck far below min area.
            DrawnBean(x: 160, y: 30, a: 2, b: 2, angle: 0),
        ]
        let beans = try Segmenter(settings: syntheticSettings()).segment(scene.frame())
        #expect(beans.count == 1)
        let expected = Double.pi * 30 * 20
        #expect(abs(Double(beans.first?.area ?? 0) - expected) / expected < 0.06)
    }

    @Test func regionOfInterestAndEdgeFilters() throws {
        var scene = SyntheticScene(width: 240, height: 160)
        scene.beans = [
            DrawnBean(x: 60, y: 80, a: 20, b: 12, angle: 0),
            DrawnBean(x: 180, y: 80, a: 20, b: 12, angle: 0),
            // Cut by the frame's left edge.
            DrawnBean(x: 5, y: 20, a: 20, b: 12, angle: 0),
        ]
        let frame = scene.frame()
        var settings = syntheticSettings()
        #expect(try Segmenter(settings: settings).segment(frame).count == 3)
        let kept = try Segmenter(settings: settings).segment(frame)
        #expect(kept.filter(\.touchesEdge).count == 1)
        settings.edgeFilter = .dropAtFrameEdge
        #expect(try Segmenter(settings: settings).segment(frame).count == 2)
        settings.edgeFilter = .keep
        settings.regionOfInterest = PixelRect(x: 100, y: 0, width: 140, height: 160)
        let inRegion = try Segmenter(settings: settings).segment(frame)
        #expect(inRegion.count == 1)
        #expect(abs((inRegion.first?.centroidX ?? 0) - 180) < 1)
        // A region cutting a bean: kept with `.keep`, dropped at the region's edge.
        settings.regionOfInterest = PixelRect(x: 170, y: 0, width: 70, height: 160)
        #expect(try Segmenter(settings: settings).segment(frame).first?.touchesEdge == true)
        settings.edgeFilter = .dropAtRegionEdge
        #expect(try Segmenter(settings: settings).segment(frame).isEmpty)
    }

    @Test func learnsTheBeltColourAndToleratesShading() throws {
        var scene = SyntheticScene(width: 300, height: 200)
        scene.belt = RGB(150, 160, 158)
        scene.beans = [DrawnBean(x: 80, y: 100, a: 20, b: 12, angle: 0), DrawnBean(x: 220, y: 100, a: 20, b: 12, angle: 1)]
        var frame = scene.frame()
        // Darken the right third by 15 %, as uneven light would.
        for y in 0..<frame.height {
            for x in 200..<frame.width {
                for c in 0..<3 {
                    let i = (y * frame.width + x) * 3 + c
                    frame.pixels[i] = UInt8(Double(frame.pixels[i]) * 0.85)
                }
            }
        }
        var settings = SegmenterSettings()
        settings.minArea = 80
        let segmenter = try Segmenter(settings: settings)
        let beans = try segmenter.segment(frame)
        let learned = try #require(segmenter.backgroundColour)
        #expect(abs(Int(learned.red) - 150) <= 4 && abs(Int(learned.green) - 160) <= 4 && abs(Int(learned.blue) - 158) <= 4)
        #expect(beans.count == 2)
        settings.shadeTolerance = 0
        settings.threshold = 15
        // Without shade tolerance the shaded third of the belt itself becomes a "bean".
        #expect(try Segmenter(settings: settings).segment(frame).contains { $0.area > 10_000 })
    }

    @Test func grayFramesAndPaddedRowsWork() throws {
        var scene = SyntheticScene(width: 100, height: 80)
        scene.beans = [DrawnBean(x: 50, y: 40, a: 18, b: 10, angle: 0)]
        let rgb = scene.frame()
        // Gray frame with 12 bytes of row padding.
        let stride = 112
        var gray = [UInt8](repeating: 0, count: stride * 80)
        for y in 0..<80 {
            for x in 0..<100 { gray[y * stride + x] = rgb.pixels[(y * 100 + x) * 3 + 1] }
        }
        let frame = Frame(camera: "gray", sequence: 1, captured: .now(), width: 100, height: 80, stride: stride,
                          format: .gray8, pixels: gray)
        var settings = SegmenterSettings()
        settings.background = .colour(RGB(205, 205, 205))
        settings.minArea = 80
        let beans = try Segmenter(settings: settings).segment(frame)
        #expect(beans.count == 1)
        #expect(abs((beans.first?.centroidX ?? 0) - 50) < 1)
    }

    @Test func reusesBuffersAcrossFramesWithoutStaleLabels() throws {
        var scene = SyntheticScene(width: 160, height: 120)
        scene.beans = [DrawnBean(x: 40, y: 40, a: 18, b: 10, angle: 0)]
        let segmenter = try Segmenter(settings: syntheticSettings())
        _ = try segmenter.segment(scene.frame())
        #expect(segmenter.label(x: 40, y: 40) == 1)
        scene.beans = [DrawnBean(x: 120, y: 80, a: 18, b: 10, angle: 0)]
        _ = try segmenter.segment(scene.frame())
        #expect(segmenter.label(x: 40, y: 40) == 0)
        #expect(segmenter.label(x: 120, y: 80) == 1)
    }

    @Test func rejectsBadFramesAndSettingsNamingTheProblem() throws {
        let segmenter = try Segmenter(settings: syntheticSettings())
        let short = Frame(camera: "cam0", sequence: 7, captured: .now(), width: 100, height: 100, format: .rgb24,
                          pixels: [UInt8](repeating: 0, count: 100))
        #expect(throws: SegmentationError.self) { try segmenter.segment(short) }
        do {
            try segmenter.segment(short)
        } catch let error as SegmentationError {
            #expect(error.description.contains("cam0") && error.description.contains("frame 7"))
        }
        let empty = Frame(camera: "cam0", sequence: 1, captured: .now(), width: 0, height: 0, format: .rgb24, pixels: [])
        #expect(throws: SegmentationError.self) { try segmenter.segment(empty) }

        var outside = syntheticSettings()
        outside.regionOfInterest = PixelRect(x: 500, y: 500, width: 10, height: 10)
        let frame = SyntheticScene(width: 50, height: 50).frame()
        #expect(throws: SegmentationError.self) { try Segmenter(settings: outside).segment(frame) }

        var bad = SegmenterSettings()
        bad.minArea = 0
        #expect(throws: SegmenterSettingsError(field: "minArea", reason: "must be at least 1, got 0")) { try Segmenter(settings: bad) }
        bad = SegmenterSettings()
        bad.maxArea = 10
        #expect(throws: SegmenterSettingsError.self) { try Segmenter(settings: bad) }
        bad = SegmenterSettings()
        bad.splitDepth = 1.5
        #expect(throws: SegmenterSettingsError.self) { try Segmenter(settings: bad) }
        bad = SegmenterSettings()
        bad.background = .lines([])
        #expect(throws: SegmenterSettingsError.self) { try Segmenter(settings: bad) }
        bad = SegmenterSettings()
        bad.threshold = .nan
        #expect(throws: SegmenterSettingsError.self) { try Segmenter(settings: bad) }
    }

    @Test func orientedCropTurnsTheBeanHorizontalAndMasksEverythingElse() throws {
        var scene = SyntheticScene(width: 200, height: 160)
        scene.noise = 0
        scene.beans = [
            DrawnBean(x: 90, y: 80, a: 30, b: 14, angle: Double.pi / 4, colour: RGB(120, 100, 60)),
            // A neighbour close enough to enter the crop window.
            DrawnBean(x: 135, y: 80, a: 12, b: 10, angle: 0, colour: RGB(40, 160, 40)),
        ]
        let frame = scene.frame()
        let segmenter = try Segmenter(settings: syntheticSettings())
        let beans = try segmenter.segment(frame)
        let bean = try #require(beans.min { abs($0.centroidX - 90) < abs($1.centroidX - 90) })
        var settings = CropSettings()
        settings.size = 64
        settings.background = RGB(0, 0, 255)
        let crop = segmenter.beanCrop(of: bean, in: frame, beanID: 42, settings: settings)
        #expect(crop.width == 64 && crop.height == 64 && crop.pixels.count == 64 * 64 * 3 && crop.beanID == 42)
        // Bean pixels are the bean's colour, the rest the background; no green neighbour.
        var sumU = 0.0, sumV = 0.0, sumUU = 0.0, sumVV = 0.0, sumUV = 0.0, n = 0.0
        var foreign = 0
        for v in 0..<64 {
            for u in 0..<64 {
                let o = (v * 64 + u) * 3
                let p = (crop.pixels[o], crop.pixels[o + 1], crop.pixels[o + 2])
                if p == (0, 0, 255) { continue }
                // The neighbour is green and dark red; the bean's edge may blend with the belt only.
                if p.1 > 140 && p.0 < 100 { foreign += 1 }
                n += 1
                sumU += Double(u); sumV += Double(v)
                sumUU += Double(u * u); sumVV += Double(v * v); sumUV += Double(u * v)
            }
        }
        #expect(foreign == 0)
        let cu = sumU / n, cv = sumV / n
        let muUU = sumUU / n - cu * cu, muVV = sumVV / n - cv * cv, muUV = sumUV / n - cu * cv
        // Major axis horizontal: much more spread along u than v, little covariance; centred.
        #expect(muUU > 3 * muVV)
        #expect(abs(muUV) < 0.1 * muUU)
        #expect(abs(cu - 31.5) < 1.5 && abs(cv - 31.5) < 1.5)
        // Fit scale: the bean spans most of the crop's width.
        #expect(4 * muUU.squareRoot() > 64 * 0.7)
    }

    @Test func fixedScaleCropsKeepSizesComparable() throws {
        var scene = SyntheticScene(width: 240, height: 120)
        scene.noise = 0
        scene.beans = [
            DrawnBean(x: 60, y: 60, a: 30, b: 18, angle: 0),
            DrawnBean(x: 180, y: 60, a: 15, b: 9, angle: 0),
        ]
        let frame = scene.frame()
        let segmenter = try Segmenter(settings: syntheticSettings())
        let beans = try segmenter.segment(frame).sorted { $0.area > $1.area }
        #expect(beans.count == 2)
        var settings = CropSettings()
        settings.size = 64
        settings.scale = .fixed(framePixelsPerCropPixel: 1)
        func beanPixels(_ bean: SegmentedBean) -> Int {
            let crop = segmenter.beanCrop(of: bean, in: frame, beanID: 1, settings: settings)
            return stride(from: 0, to: crop.pixels.count, by: 3).filter {
                crop.pixels[$0] != 0 || crop.pixels[$0 + 1] != 0 || crop.pixels[$0 + 2] != 0
            }.count
        }
        // One frame pixel per crop pixel: crop areas match mask areas, the small bean stays small.
        let big = beanPixels(beans[0]), small = beanPixels(beans[1])
        #expect(abs(Double(big) - Double(beans[0].area)) / Double(beans[0].area) < 0.05)
        #expect(abs(Double(small) - Double(beans[1].area)) / Double(beans[1].area) < 0.08)
        #expect(Double(big) / Double(small) > 3)
    }
}

/// The convex-hull shortcut in `TouchingBeanSplitter` must never change a segmentation: random
/// touching pairs and lone beans, segmented with and without it at three split depths.
@Suite struct ConvexShortcutTests {
    @Test(arguments: [0.1, 0.3, 0.5])
    func skippingTheWatershedForConvexComponentsChangesNothing(depth: Double) throws {
        var rng = SplitMix64(state: 0xBEA2 &+ UInt64(depth * 100))
        var settings = syntheticSettings()
        settings.splitDepth = depth
        settings.minArea = 300
        // Peaks of at least 10 px keep the relative depth criterion binding even at depth 0.1.
        settings.minSplitRadius = 10
        var compared = 0, splitPairs = 0, skipped = 0
        for _ in 0..<12 {
            var scene = SyntheticScene(width: 960, height: 640)
            for gy in 0..<3 {
                for gx in 0..<4 {
                    let cx = 120 + Double(gx) * 240, cy = 110 + Double(gy) * 210
                    let a = Double.random(in: 18...40, using: &rng)
                    let b = a * Double.random(in: 0.55...0.85, using: &rng)
                    let angle = Double.random(in: 0..<Double.pi, using: &rng)
                    scene.beans.append(DrawnBean(x: cx, y: cy, a: a, b: b, angle: angle))
                    // Three pairs in four touch or overlap; the rest are lone beans.
                    guard gx != 3 else { continue }
                    let a2 = a * Double.random(in: 0.7...1.3, using: &rng), b2 = b * Double.random(in: 0.7...1.3, using: &rng)
                    let direction = Double.random(in: 0..<Double.pi, using: &rng)
                    let along = abs(cos(direction - angle)) * Double.random(in: 0...1, using: &rng)
                    let distance = Double.random(in: 0.6...1.05, using: &rng) * (b + b2 + (a + a2 - b - b2) * along)
                    scene.beans.append(DrawnBean(x: cx + distance * cos(direction), y: cy + distance * sin(direction),
                                                 a: a2, b: b2, angle: angle + Double.random(in: -1...1, using: &rng)))
                }
            }
            let frame = scene.frame()
            let fast = try Segmenter(settings: settings)
            let exact = try Segmenter(settings: settings)
            exact.skipsWatershedForConvexComponents = false
            let withShortcut = try fast.segment(frame).map { [$0.area, Int($0.centroidX * 1000), Int($0.centroidY * 1000)] }
            let withoutShortcut = try exact.segment(frame).map { [$0.area, Int($0.centroidX * 1000), Int($0.centroidY * 1000)] }
            #expect(withShortcut == withoutShortcut)
            compared += withoutShortcut.count
            var noSplit = settings
            noSplit.splitTouching = false
            splitPairs += withoutShortcut.count - (try Segmenter(settings: noSplit).segment(frame).count)
            skipped += fast.watershedsSkipped
            #expect(exact.watershedsSkipped == 0)
        }
        // Not vacuous: the watershed split pairs, and the shortcut skipped many components.
        #expect(compared > 12 * 12)
        #expect(splitPairs >= 12)
        #expect(skipped >= 12 * 3)
    }
}

/// The vectorised threshold kernel must set exactly the bits the scalar one sets.
@Suite struct ThresholdKernelTests {
    @Test func vectorAndScalarKernelsGiveTheSameMask() throws {
        guard Segmenter.detectedKernelLevel > 0 else { return }  // nothing to compare on this CPU
        var rng = SplitMix64(state: 42)
        for (width, height, roi) in [(1280, 24, nil), (203, 17, nil), (333, 20, PixelRect(x: 7, y: 3, width: 250, height: 12)),
                                     (64, 5, PixelRect(x: 63, y: 0, width: 1, height: 5))] as [(Int, Int, PixelRect?)] {
            // Random colours near and far from the belt colour, so both answers occur often.
            var pixels = [UInt8](repeating: 0, count: width * height * 3)
            for index in pixels.indices {
                let near = Int.random(in: 0...1, using: &rng) == 0
                pixels[index] = near ? UInt8(190 + Int.random(in: 0...25, using: &rng)) : UInt8.random(in: 0...255, using: &rng)
            }
            let frame = Frame(camera: "k", sequence: 0, captured: MonotonicInstant(nanoseconds: 0), width: width, height: height,
                              format: .rgb24, pixels: pixels)
            var settings = syntheticSettings()
            settings.regionOfInterest = roi
            let vector = try Segmenter(settings: settings)
            let scalar = try Segmenter(settings: settings)
            scalar.thresholdKernelLevel = 0
            let a = try vector.foregroundBits(frame), b = try scalar.foregroundBits(frame)
            let differing = zip(a, b).filter { $0 != $1 }.count
            #expect(a.count == b.count && differing == 0,
                    "\(width)×\(height) roi \(String(describing: roi)): \(differing) of \(a.count) mask words differ")
            #expect(a.contains { $0 != 0 } && a.contains { $0 != ~0 })
        }
    }
}
