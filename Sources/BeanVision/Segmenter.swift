import BeanCore
import CVision

/// Finds beans in frames: background distance → bit mask → opening/closing → 8-connected
/// components → hole filling and touching-bean split per component → area and shape filters.
///
/// One instance per camera thread; it owns every buffer it needs and reuses them frame after frame,
/// so steady-state segmentation does not allocate (frames of the same size). The label map and
/// the bean list stay valid until the next call of `segment`.
public final class Segmenter {
    public let settings: SegmenterSettings
    /// Which threshold kernel this CPU runs: 1 = AVX-512 with VBMI, 0 = scalar. Tests set 0 to
    /// check that both give the same mask.
    static let detectedKernelLevel = beand_vision_cpu_level()
    var thresholdKernelLevel = Segmenter.detectedKernelLevel
    private var classifier: ForegroundClassifier?
    private var learner = BackgroundLearner()
    private var mask = BinaryMask()
    private var components = RunComponents()
    private var splitter = TouchingBeanSplitter()
    /// Tests turn this off to check that skipping the watershed for nearly convex components
    /// changes no result.
    var skipsWatershedForConvexComponents: Bool {
        get { splitter.skipsNearlyConvex }
        set { splitter.skipsNearlyConvex = newValue }
    }
    var watershedsSkipped: Int { splitter.watershedsSkipped }

    /// Per-pixel bean label of the last frame (0 = none), frame-sized, row-major.
    public private(set) var labels: [Int32] = []
    public private(set) var labelWidth = 0
    public private(set) var labelHeight = 0
    private var dirtyBoxes: [PixelRect] = []
    public private(set) var beans: [SegmentedBean] = []

    public init(settings: SegmenterSettings) throws {
        try settings.validate()
        self.settings = settings
        switch settings.background {
        case .auto:
            classifier = nil
        case .colour(let c):
            classifier = ForegroundClassifier(background: c, shade: settings.shadeTolerance, threshold: settings.threshold,
                                              chromaWeight: settings.chromaWeight)
        case .lines(let lines):
            classifier = ForegroundClassifier(lines: lines, threshold: settings.threshold, chromaWeight: settings.chromaWeight)
        }
        beans.reserveCapacity(256)
        dirtyBoxes.reserveCapacity(256)
    }

    /// The background colour in use: the configured one, or the learned one (nil before learning).
    public var backgroundColour: RGB? {
        switch settings.background {
        case .auto: return learner.colour
        case .colour(let c): return c
        case .lines(let lines): return lines.last?.to
        }
    }

    /// Frames the background has been learned from (`.auto` only).
    public var learnedFrames: Int { learner.frames }

    /// Adds a frame to the learned belt colour (`.auto`). A daemon feeds the first frames of a
    /// camera; `segment` learns from its first frame by itself when nothing was learned.
    public func learnBackground(from frame: Frame) throws {
        guard case .auto = settings.background else { return }
        let region = try checkedRegion(frame)
        frame.pixels.withUnsafeBufferPointer { px in
            learner.add(pixels: px, stride: frame.stride, bytesPerPixel: frame.format.bytesPerPixel, region: region)
        }
        if let colour = learner.colour {
            classifier = ForegroundClassifier(background: colour, shade: settings.shadeTolerance, threshold: settings.threshold,
                                              chromaWeight: settings.chromaWeight)
        }
    }

    /// Forgets the learned belt colour (a still photo of another tray comes next).
    public func resetLearnedBackground() {
        guard case .auto = settings.background else { return }
        learner = BackgroundLearner()
        classifier = nil
    }

    private func checkedRegion(_ frame: Frame) throws -> PixelRect {
        func fail(_ why: String) -> SegmentationError {
            SegmentationError(camera: frame.camera, sequence: frame.sequence, reason: why)
        }
        guard frame.width > 0, frame.height > 0 else { throw fail("empty frame \(frame.width)×\(frame.height)") }
        let bpp = frame.format.bytesPerPixel
        guard frame.stride >= frame.width * bpp else {
            throw fail("stride \(frame.stride) shorter than a row of \(frame.width) \(frame.format) pixels")
        }
        guard frame.pixels.count >= frame.stride * (frame.height - 1) + frame.width * bpp else {
            throw fail("\(frame.pixels.count) bytes of pixels, \(frame.width)×\(frame.height) \(frame.format) needs \(frame.stride * (frame.height - 1) + frame.width * bpp)")
        }
        let full = PixelRect(x: 0, y: 0, width: frame.width, height: frame.height)
        guard let roi = settings.regionOfInterest else { return full }
        guard let clamped = roi.clamped(width: frame.width, height: frame.height) else {
            throw fail("region of interest \(roi) lies outside the \(frame.width)×\(frame.height) frame")
        }
        return clamped
    }

    /// Segments one frame. The result (also in `beans`) is ordered by label.
    @discardableResult
    public func segment(_ frame: Frame) throws -> [SegmentedBean] {
        let region = try checkedRegion(frame)
        if classifier == nil { try learnBackground(from: frame) }
        guard let classifier else {
            throw SegmentationError(camera: frame.camera, sequence: frame.sequence, reason: "no background colour")
        }
        prepareLabels(width: frame.width, height: frame.height)
        mask.reset(width: frame.width, height: frame.height)
        threshold(frame, region: region, classifier: classifier)
        mask.open(radius: settings.openRadius)
        mask.close(radius: settings.closeRadius)
        clip(to: region)
        components.label(mask)
        beans.removeAll(keepingCapacity: true)
        let autoRadius = 0.5 * (Double(settings.minArea) / Double.pi).squareRoot()
        let splitRadius = settings.minSplitRadius ?? autoRadius
        for c in 0..<components.count where components.area(of: c) >= settings.minArea {
            splitter.process(component: c, of: components, fillHoles: settings.fillHoles,
                             split: settings.splitTouching, depth: settings.splitDepth, minRadius: splitRadius)
            for part in 0..<splitter.partCount {
                let moments = splitter.moments(of: part)
                guard moments.area >= settings.minArea else { continue }
                if let maxArea = settings.maxArea, moments.area > maxArea { continue }
                let touches = moments.minX <= region.x || moments.minY <= region.y
                    || moments.maxX >= region.maxX - 1 || moments.maxY >= region.maxY - 1
                let touchesFrame = moments.minX == 0 || moments.minY == 0
                    || moments.maxX == frame.width - 1 || moments.maxY == frame.height - 1
                if touchesFrame, let minAreaAtEdge = settings.minAreaAtEdge, moments.area < minAreaAtEdge { continue }
                switch settings.edgeFilter {
                case .keep: break
                case .dropAtRegionEdge: if touches { continue }
                case .dropAtFrameEdge: if touchesFrame { continue }
                }
                let label = Int32(beans.count + 1)
                let bean = moments.bean(label: label, touchesEdge: touches)
                if let maxElongation = settings.maxElongation, bean.majorAxis > maxElongation * max(bean.minorAxis, 1) {
                    continue
                }
                splitter.writeLabels(of: part, label: label, into: &labels, width: labelWidth)
                dirtyBoxes.append(bean.box)
                beans.append(bean)
            }
        }
        return beans
    }

    /// The label of pixel (x, y) in the last frame, 0 for background.
    public func label(x: Int, y: Int) -> Int32 {
        guard x >= 0, y >= 0, x < labelWidth, y < labelHeight else { return 0 }
        return labels[y * labelWidth + x]
    }

    /// The bean's mask over its bounding box, row-major, 1 = bean.
    public func mask(of bean: SegmentedBean) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bean.box.width * bean.box.height)
        for y in 0..<bean.box.height {
            for x in 0..<bean.box.width where labels[(bean.box.y + y) * labelWidth + bean.box.x + x] == bean.label {
                out[y * bean.box.width + x] = 1
            }
        }
        return out
    }

    private func prepareLabels(width: Int, height: Int) {
        if width != labelWidth || height != labelHeight {
            labelWidth = width
            labelHeight = height
            labels = [Int32](repeating: 0, count: width * height)
            dirtyBoxes.removeAll(keepingCapacity: true)
            return
        }
        labels.withUnsafeMutableBufferPointer { l in
            for box in dirtyBoxes {
                for y in box.y..<box.maxY {
                    let start = y * width + box.x
                    l[start..<(start + box.width)].update(repeating: 0)
                }
            }
        }
        dirtyBoxes.removeAll(keepingCapacity: true)
    }

    /// The packed foreground mask of `frame` before morphology (tests compare the kernels on it).
    func foregroundBits(_ frame: Frame) throws -> [UInt64] {
        let region = try checkedRegion(frame)
        if classifier == nil { try learnBackground(from: frame) }
        guard let classifier else {
            throw SegmentationError(camera: frame.camera, sequence: frame.sequence, reason: "no background colour")
        }
        mask.reset(width: frame.width, height: frame.height)
        threshold(frame, region: region, classifier: classifier)
        return mask.words
    }

    /// Sets the mask bit of every foreground pixel of the region (the mask is all zero before).
    private func threshold(_ frame: Frame, region: PixelRect, classifier: ForegroundClassifier) {
        let bpp = frame.format.bytesPerPixel
        let stride = frame.stride
        let wpr = mask.wordsPerRow
        let level = thresholdKernelLevel
        frame.pixels.withUnsafeBufferPointer { px in
            classifier.table.withUnsafeBufferPointer { lut in
                classifier.bits.withUnsafeBufferPointer { bitTable in
                    mask.words.withUnsafeMutableBufferPointer { words in
                        guard let base = px.baseAddress, let table = lut.baseAddress, let bits = bitTable.baseAddress,
                              let w = words.baseAddress else { return }
                        for y in region.y..<region.maxY {
                            let row = w + y * wpr
                            if bpp == 3 {
                                beand_threshold_rgb24(level, base + y * stride, region.x, region.maxX, table, bits, row)
                                continue
                            }
                            // Grey: one byte a pixel, looked up as the grey colour (v, v, v).
                            var p = base + y * stride + region.x
                            var acc: UInt64 = 0
                            var x = region.x
                            let end = region.maxX
                            while x < end {
                                let v = Int(p[0] >> 3)
                                acc |= UInt64(table[(v << 10) | (v << 5) | v]) << UInt64(x & 63)
                                if x & 63 == 63 { row[x >> 6] = acc; acc = 0 }
                                x += 1
                                p += 1
                            }
                            if end & 63 != 0 { row[(end - 1) >> 6] |= acc }
                        }
                    }
                }
            }
        }
    }

    /// Morphology may grow the mask past the region of interest; cut it back.
    private func clip(to region: PixelRect) {
        guard region.x > 0 || region.y > 0 || region.maxX < mask.width || region.maxY < mask.height else { return }
        let wpr = mask.wordsPerRow, height = mask.height
        mask.words.withUnsafeMutableBufferPointer { words in
            for y in 0..<height {
                for k in 0..<wpr {
                    let x0 = k * 64
                    var keep: UInt64 = 0
                    if y >= region.y && y < region.maxY {
                        let lo = max(region.x - x0, 0), hi = min(region.maxX - x0, 64)
                        if hi > lo {
                            keep = (hi - lo == 64 ? ~0 : ((UInt64(1) << UInt64(hi - lo)) &- 1)) << UInt64(lo)
                        }
                    }
                    words[y * wpr + k] &= keep
                }
            }
        }
    }
}
