/// An RGB colour, 8 bits per channel.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    public var description: String { "\(red),\(green),\(blue)" }
}

/// What the belt (or tray, or jig) looks like where there is no bean.
public enum BackgroundModel: Sendable, Hashable {
    /// Learned from frames: the most frequent colour of the first frames (`Segmenter.learnBackground`),
    /// or of the frame itself when nothing has been learned yet. Right for a belt or tray that covers
    /// most of the view.
    case auto
    /// One configured belt colour.
    case colour(RGB)
    /// Background made of one or more colour lines in RGB space: every colour on the straight line
    /// between a line's two ends counts as background, so shading along it is not mistaken for a
    /// bean (a dark window in a white jig: one line for the window, one for the white frame).
    case lines([ColourLine])
}

/// All colours on the straight RGB line from `from` to `to`.
public struct ColourLine: Sendable, Hashable, CustomStringConvertible {
    public var from: RGB
    public var to: RGB
    public init(_ from: RGB, _ to: RGB) {
        self.from = from
        self.to = to
    }
    public var description: String { "\(from):\(to)" }
}

/// A rectangle in pixel coordinates; x to the right, y down.
public struct PixelRect: Sendable, Hashable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var description: String { "\(x),\(y),\(width),\(height)" }

    /// This rectangle cut to a `width` × `height` image; nil when nothing is left.
    public func clamped(width imageWidth: Int, height imageHeight: Int) -> PixelRect? {
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = min(imageWidth, maxX), y1 = min(imageHeight, maxY)
        guard x1 > x0, y1 > y0 else { return nil }
        return PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }
}

/// Everything the segmenter can be told. Distances and sizes are in pixels of the frame it is given.
public struct SegmenterSettings: Sendable, Hashable {
    /// The colour (or colour line) that is not a bean.
    public var background: BackgroundModel = .auto
    /// A pixel is foreground when its RGB distance to the background is at least this.
    public var threshold: Double = 40
    /// Brightness variation of the belt (vignetting, uneven light) accepted as background with
    /// `.auto` and `.colour`: every shade from (1 - t) × to (1 + t) × the belt colour is background.
    public var shadeTolerance: Double = 0.2
    /// Weight of the colour (chroma) part of the distance against its brightness part; above 1 a
    /// bean as dark as the belt but of another hue still stands out.
    public var chromaWeight: Double = 1
    /// Only this part of the frame is segmented; nil = the whole frame.
    public var regionOfInterest: PixelRect? = nil
    /// Radius of the square structuring element of the opening (removes specks and thin threads);
    /// 0 = no opening.
    public var openRadius: Int = 1
    /// Radius of the closing (fills cracks and small holes in a bean); 0 = no closing. Applied after
    /// the opening.
    public var closeRadius: Int = 0
    /// Fill holes of a bean (background regions enclosed by the bean) before measuring it.
    public var fillHoles: Bool = true
    /// Connected regions smaller than this are noise, and beans smaller than this are dropped.
    public var minArea: Int = 150
    /// Beans larger than this (after splitting) are dropped; nil = no upper limit.
    public var maxArea: Int? = nil
    /// Beans whose equivalent ellipse is longer than `maxElongation` × its width are dropped (threads,
    /// edges of the jig); nil = no limit.
    public var maxElongation: Double? = 4.0
    /// Split touching beans (distance transform + watershed with a depth criterion).
    public var splitTouching: Bool = true
    /// Two distance-transform peaks are separate beans only when the saddle between them lies at
    /// least this fraction of the lower peak below it (the "neck" is narrower than
    /// (1 - splitDepth) × the thinner bean's half-width).
    public var splitDepth: Double = 0.3
    /// Peaks with a half-width (distance to background) below this never become a bean of their
    /// own; nil = derived from `minArea` (0.5 × √(minArea / π)).
    public var minSplitRadius: Double? = nil
    /// Which cut-off beans to drop. A tracker usually wants them kept (it sees them whole later).
    public var edgeFilter: EdgeFilter = .keep
    /// Beans reaching the frame's edge are kept only when at least this large: a mostly visible
    /// bean stays, the sliver of a neighbour goes; nil = no such limit. (A bean cut only by the
    /// region of interest is not affected: the region is a choice, the frame is not.)
    public var minAreaAtEdge: Int? = nil

    public init() {}

    /// Tray photos and belts: beans on a uniform light belt; the belt colour is learned.
    public static var tray: SegmenterSettings {
        var settings = SegmenterSettings()
        settings.threshold = 20
        settings.openRadius = 2
        settings.closeRadius = 3
        settings.minArea = 1_500
        return settings
    }

    /// The Mindforge single-bean jig: a dark window inside a white frame. Everything on the
    /// grey line between the two is background; beans are yellowish and stand off that line.
    public static var mindforge: SegmenterSettings {
        var settings = SegmenterSettings()
        settings.chromaWeight = 2.5
        settings.threshold = 45
        settings.openRadius = 3
        settings.closeRadius = 4
        settings.minArea = 4_000
        settings.splitTouching = false
        // The white frame is bluish in places: bluish whites are background too.
        settings.background = .lines([
            ColourLine(RGB(0, 0, 0), RGB(40, 46, 56)),
            ColourLine(RGB(110, 110, 110), RGB(255, 255, 255)),
            ColourLine(RGB(100, 110, 125), RGB(225, 242, 255)),
        ])
        // The 1st-batch photos show a brown reflection at the top of the window, as dark and as
        // brown as a black bean, and slivers of the neighbouring beans at the left: the region
        // starts right of and below them. Slivers of neighbours at the frame's right edge are
        // much smaller than the jig's bean.
        settings.regionOfInterest = PixelRect(x: 75, y: 110, width: 565, height: 530)
        settings.minAreaAtEdge = 20_000
        return settings
    }

    /// Checks values that would make segmentation meaningless; the message names the field.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> SegmenterSettingsError {
            SegmenterSettingsError(field: field, reason: why)
        }
        guard threshold > 0, threshold.isFinite else { throw fail("threshold", "must be a positive number, got \(threshold)") }
        guard shadeTolerance >= 0, shadeTolerance < 1 else { throw fail("shadeTolerance", "must be in [0, 1), got \(shadeTolerance)") }
        guard chromaWeight > 0, chromaWeight.isFinite else { throw fail("chromaWeight", "must be a positive number, got \(chromaWeight)") }
        if case .lines(let lines) = background, lines.isEmpty { throw fail("background", "needs at least one colour line") }
        guard (0...32).contains(openRadius) else { throw fail("openRadius", "must be 0…32, got \(openRadius)") }
        guard (0...32).contains(closeRadius) else { throw fail("closeRadius", "must be 0…32, got \(closeRadius)") }
        guard minArea >= 1 else { throw fail("minArea", "must be at least 1, got \(minArea)") }
        if let maxArea, maxArea < minArea { throw fail("maxArea", "must be ≥ minArea (\(minArea)), got \(maxArea)") }
        if let maxElongation, !(maxElongation >= 1) { throw fail("maxElongation", "must be ≥ 1, got \(maxElongation)") }
        guard splitDepth > 0, splitDepth < 1 else { throw fail("splitDepth", "must be in (0, 1), got \(splitDepth)") }
        if let minAreaAtEdge, minAreaAtEdge < 1 { throw fail("minAreaAtEdge", "must be at least 1, got \(minAreaAtEdge)") }
        if let minSplitRadius, !(minSplitRadius >= 0) { throw fail("minSplitRadius", "must be ≥ 0, got \(minSplitRadius)") }
        if let roi = regionOfInterest, roi.width <= 0 || roi.height <= 0 {
            throw fail("regionOfInterest", "must have a positive width and height, got \(roi)")
        }
    }
}

/// Beans reaching an edge are cut off: their size, shape and position are wrong.
public enum EdgeFilter: String, Sendable, Hashable, CaseIterable {
    /// Keep them (flagged `touchesEdge`).
    case keep
    /// Drop beans that reach the frame's edge (the region of interest may still cut a bean).
    case dropAtFrameEdge = "frame"
    /// Drop beans that reach the edge of the region of interest (the frame's edge when there is none).
    case dropAtRegionEdge = "region"
}

public struct SegmenterSettingsError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var reason: String
    public var description: String { "segmenter setting \(field): \(reason)" }
}

/// A frame the segmenter cannot work on.
public struct SegmentationError: Error, CustomStringConvertible, Equatable {
    public var camera: String
    public var sequence: UInt64
    public var reason: String
    public var description: String { "camera \(camera), frame \(sequence): \(reason)" }
}
