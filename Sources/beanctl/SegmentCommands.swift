import ArgumentParser
import BeanCapture
import BeanCore
import BeanService
import BeanVision
import Foundation

/// `beanctl segment`: runs the segmenter on photos and reports what it found, so a user can tune
/// segmentation on their own images. Settings come from flags until the config file is wired in.
/// A configuration that is valid but has no camera to take settings from.
struct SegmentConfigError: Error, CustomStringConvertible {
    var description: String
}

struct Segment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find beans in photos: count, boxes, areas; optional overlay PNGs.",
        discussion: """
            Settings start from a camera of the daemon's configuration (--config, --camera) or from \
            --preset, and are changed by the other flags. With --json, prints one \
            JSON object per line per image: {"image", "count", "beans": [{"box": [x, y, w, h], \
            "area", "centroid": [x, y], "angle"}]}; angle in degrees of the major axis from +x, y down.
            """
    )

    enum Preset: String, ExpressibleByArgument, CaseIterable {
        case `default`, tray, mindforge
    }

    @Argument(help: "JPEG or PNG files.")
    var images: [String]

    @Flag(help: "One JSON object per line per image.")
    var json = false

    @Option(help: ArgumentHelp("Write <name>.png overlays (outline, box, axis per bean) into this directory.", valueName: "DIR"))
    var overlay: String?

    @Option(help: ArgumentHelp("Start from the segmentation settings of a camera in this beand configuration.", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("With --config: the camera whose settings to use (default: the first).", valueName: "name"))
    var camera: String?

    @Option(help: "Starting settings: default, tray (beans on a light tray or belt), mindforge (single-bean jig).")
    var preset: Preset?

    func validate() throws {
        if config != nil && preset != nil {
            throw ValidationError("--preset and --config both choose the starting settings; give one")
        }
        if camera != nil && config == nil {
            throw ValidationError("--camera needs --config")
        }
    }

    @Option(help: ArgumentHelp("Background: auto (learned per image), R,G,B, or colour lines R,G,B:R,G,B[/R,G,B:R,G,B…].", valueName: "MODEL"))
    var background: String?

    @Option(help: "Foreground when the RGB distance to the background is at least this.")
    var threshold: Double?

    @Option(name: .customLong("chroma-weight"), help: "Weight of hue against brightness in the colour distance.")
    var chromaWeight: Double?

    @Option(name: .customLong("shade-tolerance"), help: "Brightness variation of a single belt colour accepted as background (fraction).")
    var shadeTolerance: Double?

    @Option(help: ArgumentHelp("Region of interest x,y,w,h in pixels.", valueName: "x,y,w,h"))
    var roi: String?

    @Option(name: .customLong("min-area"), help: "Smallest bean in pixels.")
    var minArea: Int?

    @Option(name: .customLong("max-area"), help: "Largest bean in pixels.")
    var maxArea: Int?

    @Option(name: .customLong("max-elongation"), help: "Largest length/width ratio of a bean (0 = no limit).")
    var maxElongation: Double?

    @Option(name: .customLong("open"), help: "Opening radius in pixels (0 = none).")
    var openRadius: Int?

    @Option(name: .customLong("close"), help: "Closing radius in pixels (0 = none).")
    var closeRadius: Int?

    @Option(name: .customLong("split-depth"), help: "Saddle depth (fraction of the thinner bean's half-width) that splits touching beans.")
    var splitDepth: Double?

    @Flag(inversion: .prefixedNo, help: "Split touching beans.")
    var split: Bool?

    @Option(name: .customLong("edge"), help: "Cut-off beans: keep, frame (drop those at the image edge), region (drop those at the region's edge).")
    var edge: EdgeFilter?

    @Option(name: .customLong("min-area-at-edge"), help: "Beans reaching the image edge are kept only when at least this large (0 = no limit).")
    var minAreaAtEdge: Int?

    @Option(name: .customLong("belt-step"), help: ArgumentHelp("Also scroll each photo past a virtual camera window, this many pixels a frame, track the beans and report how many were decided (JSON adds decided, decided_twice, undecided).", valueName: "PIXELS"))
    var beltStep: Int?

    @Option(name: .customLong("belt-window"), help: "Height of the virtual camera window for --belt-step, pixels.")
    var beltWindow: Int = 480

    /// The good labels of a beand configuration's `[inspect]` table (what its policy accepts).
    static func goodLabels(config path: String) throws -> Set<Label> {
        Set(try ConfigLoader.load(path: path).inspect.goodLabels.map { Label($0) })
    }

    /// The camera `name` (the first without a name) of a beand configuration, validated exactly as
    /// `beand --check-config` does, so a bad file gets the same `PATH:LINE` message.
    static func cameraConfig(config path: String, camera name: String?) throws -> CameraConfig {
        let loaded = try ConfigLoader.load(path: path)
        guard let first = loaded.cameras.first else {
            throw SegmentConfigError(description: "\(path): no [[camera]] table to take segmentation settings from")
        }
        guard let name else { return first }
        guard let camera = loaded.cameras.first(where: { $0.name == name }) else {
            let names = loaded.cameras.map(\.name).joined(separator: ", ")
            throw SegmentConfigError(description: "\(path): no camera named '\(name)' (cameras: \(names))")
        }
        return camera
    }

    /// What the daemon would use to segment for `camera`.
    static func cameraSettings(config path: String, camera name: String?) throws -> SegmenterSettings {
        try cameraConfig(config: path, camera: name).segmenterSettings
    }

    func settings() throws -> SegmenterSettings {
        var s: SegmenterSettings
        if let config {
            s = try Self.cameraSettings(config: config, camera: camera)
        } else {
            switch preset ?? .default {
            case .default: s = SegmenterSettings()
            case .tray: s = .tray
            case .mindforge: s = .mindforge
            }
        }
        if let background { s.background = try Self.parseBackground(background) }
        if let threshold { s.threshold = threshold }
        if let chromaWeight { s.chromaWeight = chromaWeight }
        if let shadeTolerance { s.shadeTolerance = shadeTolerance }
        if let roi { s.regionOfInterest = try Self.parseRect(roi) }
        if let minArea { s.minArea = minArea }
        if let maxArea { s.maxArea = maxArea }
        if let maxElongation { s.maxElongation = maxElongation == 0 ? nil : maxElongation }
        if let openRadius { s.openRadius = openRadius }
        if let closeRadius { s.closeRadius = closeRadius }
        if let splitDepth { s.splitDepth = splitDepth }
        if let split { s.splitTouching = split }
        if let edge { s.edgeFilter = edge }
        if let minAreaAtEdge { s.minAreaAtEdge = minAreaAtEdge == 0 ? nil : minAreaAtEdge }
        do {
            try s.validate()
        } catch let error as SegmenterSettingsError {
            throw ValidationError(error.description)
        }
        return s
    }

    static func parseColour(_ text: String) throws -> RGB {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { UInt8($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, let r = parts[0], let g = parts[1], let b = parts[2] else {
            throw ValidationError("--background: '\(text)' is not a colour R,G,B with each part 0…255")
        }
        return RGB(r, g, b)
    }

    static func parseBackground(_ text: String) throws -> BackgroundModel {
        if text == "auto" { return .auto }
        if !text.contains(":") { return .colour(try parseColour(text)) }
        var lines: [ColourLine] = []
        for line in text.split(separator: "/", omittingEmptySubsequences: false) {
            let ends = line.split(separator: ":", omittingEmptySubsequences: false)
            guard ends.count == 2 else {
                throw ValidationError("--background: '\(line)' is not a colour line R,G,B:R,G,B")
            }
            lines.append(ColourLine(try parseColour(String(ends[0])), try parseColour(String(ends[1]))))
        }
        return .lines(lines)
    }

    static func parseRect(_ text: String) throws -> PixelRect {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3], w > 0, h > 0 else {
            throw ValidationError("--roi: '\(text)' is not x,y,w,h with a positive width and height")
        }
        return PixelRect(x: x, y: y, width: w, height: h)
    }

    func run() throws {
        let settings = try settings()
        let segmenter = try Segmenter(settings: settings)
        if let beltStep, beltStep < 1 || beltStep >= beltWindow {
            throw ValidationError("--belt-step must be at least 1 and smaller than --belt-window (\(beltWindow)), got \(beltStep)")
        }
        if beltWindow < 16 { throw ValidationError("--belt-window must be at least 16 pixels, got \(beltWindow)") }
        if let overlay {
            try FileManager.default.createDirectory(atPath: overlay, withIntermediateDirectories: true)
        }
        var failures = 0
        var overlayNames = Set<String>()
        for (index, path) in images.enumerated() {
            do {
                var frame = try ImageCodec.decode(path: path)
                frame.sequence = UInt64(index)
                segmenter.resetLearnedBackground()
                let beans = try segmenter.segment(frame)
                var belt: BeltReplay.Result?
                if let beltStep, let colour = segmenter.backgroundColour {
                    belt = try BeltReplay.run(still: frame, stillBeans: beans, belt: colour, settings: settings,
                                              step: beltStep, window: beltWindow)
                }
                if json {
                    var line = Self.jsonLine(image: path, beans: beans)
                    if let belt {
                        line.removeLast()
                        line += ",\"decided\":\(belt.decided),\"decided_twice\":\(belt.decidedTwice),\"undecided\":\(belt.undecided)}"
                    }
                    print(line)
                } else {
                    print(Self.textReport(image: path, beans: beans, background: segmenter.backgroundColour))
                    if let belt {
                        print("Belt       : \(belt.frames) frames, \(belt.decided) decided, \(belt.decidedTwice) decided twice, \(belt.undecided) never decided")
                    }
                }
                if let overlay {
                    // Photos from different folders often share a file name (060.jpg): number repeats.
                    let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                    var name = stem + ".png"
                    var repeatCount = 1
                    while overlayNames.contains(name) {
                        repeatCount += 1
                        name = "\(stem)-\(repeatCount).png"
                    }
                    overlayNames.insert(name)
                    let rgb = OverlayRenderer.render(frame: frame, beans: beans, segmenter: segmenter, region: settings.regionOfInterest)
                    try ImageCodec.write(Frame(camera: "overlay", sequence: 0, captured: .now(), width: frame.width,
                                               height: frame.height, format: .rgb24, pixels: rgb),
                                         to: (overlay as NSString).appendingPathComponent(name))
                }
            } catch {
                failures += 1
                FileHandle.standardError.write(Data("beanctl segment: \(error)\n".utf8))
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }

    static func jsonLine(image: String, beans: [SegmentedBean]) -> String {
        func number(_ v: Double) -> String { String(format: "%.2f", v) }
        let items = beans.map { b in
            "{\"box\":[\(b.box.x),\(b.box.y),\(b.box.width),\(b.box.height)],\"area\":\(b.area),"
                + "\"centroid\":[\(number(b.centroidX)),\(number(b.centroidY))],\"angle\":\(number(b.angleDegrees))}"
        }
        return "{\"image\":\(jsonString(image)),\"count\":\(beans.count),\"beans\":[\(items.joined(separator: ","))]}"
    }

    static func jsonString(_ s: String) -> String { JSONText.string(s) }

    static func textReport(image: String, beans: [SegmentedBean], background: RGB?) -> String {
        var lines = [
            "Image      : \(image)",
            "Background : \(background.map { "\($0)" } ?? "-")",
            "Beans      : \(beans.count)",
        ]
        for b in beans {
            lines.append(String(format: "  #%-3d box %d,%d,%d,%d  area %d  centroid %.1f,%.1f  angle %.1f",
                                Int(b.label), b.box.x, b.box.y, b.box.width, b.box.height, b.area,
                                b.centroidX, b.centroidY, b.angleDegrees))
        }
        return lines.joined(separator: "\n")
    }
}

/// A still photo scrolled down past a camera window as on a belt (beans enter at the top), with the
/// blank belt before and after it, segmented and tracked frame by frame. Each decision is matched
/// to the still photo's bean nearest to it.
enum BeltReplay {
    struct Result {
        var frames = 0
        var decided = 0
        var decidedTwice = 0
        var undecided = 0
    }

    static func run(still: Frame, stillBeans: [SegmentedBean], belt: RGB, settings: SegmenterSettings,
                    step: Int, window: Int) throws -> Result {
        var beltSettings = settings
        beltSettings.background = .colour(belt)
        beltSettings.edgeFilter = .keep
        beltSettings.minAreaAtEdge = nil
        beltSettings.regionOfInterest = nil
        let segmenter = try Segmenter(settings: beltSettings)
        let tracker = try BeltTracker(settings: TrackerSettings())
        // The capture module's belt simulator scrolls the photo past the window, once, at 100 frames
        // a second (so speeds come out in pixels per second), unpaced: frames are stamped
        // start + n/fps however fast they are processed.
        let simulator = try BeltSimulator(
            name: "belt", photo: still,
            settings: BeltSimulator.Settings(windowWidth: still.width, windowHeight: window, beltSpeed: Double(step) * 100,
                                             fps: 100, wrap: false, beltColor: (belt.red, belt.green, belt.blue)),
            pacing: .unpaced)
        var hits = [Int](repeating: 0, count: stillBeans.count)
        var result = Result()
        var sequence: UInt64 = 0
        while let frame = try simulator.nextFrame() {
            let beans = try segmenter.segment(frame)
            for event in tracker.update(beans: beans, frameWidth: frame.width, frameHeight: frame.height,
                                        sequence: frame.sequence, captured: frame.captured) {
                result.decided += 1
                let row = event.bean.centroidY.rounded(.down)
                guard let photoRow = simulator.photoRow(windowRow: Int(row), frame: frame.sequence) else { continue }
                let x = event.bean.centroidX, y = Double(photoRow) + (event.bean.centroidY - row)
                if let nearest = stillBeans.indices.min(by: {
                    hypot(stillBeans[$0].centroidX - x, stillBeans[$0].centroidY - y) < hypot(stillBeans[$1].centroidX - x, stillBeans[$1].centroidY - y)
                }) {
                    hits[nearest] += 1
                }
            }
            sequence += 1
        }
        result.frames = Int(sequence)
        result.decidedTwice = hits.filter { $0 > 1 }.count
        result.undecided = hits.filter { $0 == 0 }.count
        return result
    }
}

/// Draws what the segmenter found over the photo: bean outlines, boxes and major axes.
extension EdgeFilter: ExpressibleByArgument {}

enum OverlayRenderer {
    static func render(frame: Frame, beans: [SegmentedBean], segmenter: Segmenter, region: PixelRect?) -> [UInt8] {
        let w = frame.width, h = frame.height
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let src = y * frame.stride + x * frame.format.bytesPerPixel
                let dst = (y * w + x) * 3
                for c in 0..<3 {
                    let v = frame.format == .rgb24 ? frame.pixels[src + c] : frame.pixels[src]
                    // Background dimmed so the masks stand out.
                    out[dst + c] = segmenter.label(x: x, y: y) == 0 ? v / 2 : v
                }
            }
        }
        func put(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < w, y < h else { return }
            let i = (y * w + x) * 3
            out[i] = colour.0; out[i + 1] = colour.1; out[i + 2] = colour.2
        }
        let thickness = max(1, min(w, h) / 400)
        for b in beans {
            // Outline: bean pixels with a neighbour of another label.
            for y in b.box.y..<b.box.maxY {
                for x in b.box.x..<b.box.maxX where segmenter.label(x: x, y: y) == b.label {
                    if segmenter.label(x: x - 1, y: y) != b.label || segmenter.label(x: x + 1, y: y) != b.label
                        || segmenter.label(x: x, y: y - 1) != b.label || segmenter.label(x: x, y: y + 1) != b.label {
                        for d in 0..<thickness { put(x + d, y, (255, 40, 40)); put(x, y + d, (255, 40, 40)) }
                    }
                }
            }
            for x in b.box.x..<b.box.maxX {
                for d in 0..<thickness { put(x, b.box.y - 2 - d, (255, 220, 0)); put(x, b.box.maxY + 1 + d, (255, 220, 0)) }
            }
            for y in b.box.y..<b.box.maxY {
                for d in 0..<thickness { put(b.box.x - 2 - d, y, (255, 220, 0)); put(b.box.maxX + 1 + d, y, (255, 220, 0)) }
            }
            let half = b.majorAxis / 2
            var t = -half
            while t <= half {
                let x = Int((b.centroidX + t * cos(b.angle)).rounded()), y = Int((b.centroidY + t * sin(b.angle)).rounded())
                for d in 0..<thickness { put(x, y + d, (0, 200, 255)) }
                t += 0.5
            }
        }
        if let r = region {
            for x in r.x..<r.maxX { put(x, r.y, (0, 255, 0)); put(x, r.maxY - 1, (0, 255, 0)) }
            for y in r.y..<r.maxY { put(r.x, y, (0, 255, 0)); put(r.maxX - 1, y, (0, 255, 0)) }
        }
        return out
    }
}

/// `beanctl bench segment`: segmentation + tracking of a synthetic 1280×720 belt with ~40 beans
/// scrolling through, on one thread, with the same buffers reused frame after frame.
struct BenchSegment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Frames per second of segmentation + tracking on a synthetic 1280×720 belt with ~40 beans."
    )

    @Option(help: "Frames to time (after 50 warm-up frames).")
    var frames: Int = 2_000

    @Option(help: "Frame width in pixels.")
    var width: Int = 1_280

    @Option(help: "Frame height in pixels.")
    var height: Int = 720

    @Option(help: "Beans in view.")
    var beans: Int = 40

    @Option(name: .customLong("write-frame"), help: ArgumentHelp("Also write the first frame as PNG (for a peer to process the same image).", valueName: "PATH"))
    var writeFrame: String?

    @Flag(help: "Print the figures as one JSON object.")
    var json = false

    func run() throws {
        guard frames > 0, width >= 64, height >= 64, beans >= 0 else {
            throw ValidationError("--frames must be positive, --width and --height at least 64, --beans ≥ 0")
        }
        // 16 pre-rendered frames, the belt moving a sixteenth of the frame each: one period is a frame.
        let loop = SyntheticBelt(width: width, height: height, beans: beans, step: max(1, height / 16), frames: 16)
        if let writeFrame {
            try ImageCodec.write(Frame(camera: "bench", sequence: 0, captured: .now(), width: width, height: height,
                                       format: .rgb24, pixels: loop.frames[0]), to: writeFrame)
        }
        var settings = SegmenterSettings()
        settings.background = .colour(SyntheticBelt.belt)
        settings.minArea = 150
        let segmenter = try Segmenter(settings: settings)
        var trackerSettings = TrackerSettings()
        trackerSettings.laneCount = 8
        let tracker = try BeltTracker(settings: trackerSettings)
        var frame = Frame(camera: "bench", sequence: 0, captured: MonotonicInstant(nanoseconds: 0), width: width, height: height,
                          format: .rgb24, pixels: loop.frames[0])
        var found = 0, decided = 0
        func step(_ i: Int) throws {
            frame.sequence = UInt64(i)
            frame.captured = MonotonicInstant(nanoseconds: UInt64(i) * 5_000_000)
            frame.pixels = loop.frames[i % loop.frames.count]
            let beans = try segmenter.segment(frame)
            found += beans.count
            decided += tracker.update(beans: beans, frameWidth: width, frameHeight: height, sequence: frame.sequence,
                                      captured: frame.captured).count
        }
        for i in 0..<50 { try step(i) }
        found = 0
        decided = 0
        let start = MonotonicInstant.now()
        for i in 50..<(50 + frames) { try step(i) }
        let seconds = MonotonicInstant.now().seconds(since: start)
        let fps = Double(frames) / seconds
        let beansPerFrame = Double(found) / Double(frames)
        if json {
            print(String(format: "{\"fps\":%.1f,\"ms_per_frame\":%.3f,\"beans_per_frame\":%.1f,\"decided\":%d,\"target_fps\":200,\"ratio_to_target\":%.2f}",
                         fps, 1000 / fps, beansPerFrame, decided, fps / 200))
        } else {
            print(String(format: "Frame          : %d×%d RGB24, %.1f beans per frame", width, height, beansPerFrame))
            print(String(format: "Frames/s       : %.1f (%.3f ms a frame, one thread)", fps, 1000 / fps))
            print(String(format: "Target         : 200 frames/s, ratio %.2f", fps / 200))
            print("Decided beans  : \(decided)")
        }
    }
}

/// A belt with beans repeating every `step × frames` rows, pre-rendered as a loop of frames so the
/// timed loop measures segmentation and tracking only.
struct SyntheticBelt {
    static let belt = RGB(196, 200, 194)
    var frames: [[UInt8]] = []

    private struct Placed {
        var x: Double, y: Double, a: Double, b: Double, angle: Double
    }

    init(width: Int, height: Int, beans: Int, step: Int, frames count: Int) {
        let period = step * count
        var rng = DeterministicRandom(seed: 42)
        // Beans per period tile so that `beans` are in view.
        let perTile = max(1, Int((Double(beans) * Double(period) / Double(height)).rounded()))
        var placed: [Placed] = []
        var attempts = 0
        while placed.count < perTile && attempts < 10_000 {
            attempts += 1
            let x = Double.random(in: 30...Double(width - 30), using: &rng)
            let y = Double.random(in: 0..<Double(period), using: &rng)
            let a = Double.random(in: 15...20, using: &rng)
            let b = Double.random(in: 9...12, using: &rng)
            let angle = Double.random(in: 0..<Double.pi, using: &rng)
            let free = placed.allSatisfy { p in
                let d = abs(p.y - y)
                let dy = min(d, Double(period) - d)
                return (p.x - x) * (p.x - x) + dy * dy > (p.a + a + 4) * (p.a + a + 4)
            }
            if free { placed.append(Placed(x: x, y: y, a: a, b: b, angle: angle)) }
        }
        for f in 0..<count {
            var pixels = [UInt8](repeating: 0, count: width * height * 3)
            var noise: UInt32 = 7 &+ UInt32(f)
            for i in 0..<(width * height) {
                noise = noise &* 1_664_525 &+ 1_013_904_223
                let n = Int(noise >> 29) - 4
                pixels[3 * i] = UInt8(Int(Self.belt.red) + n)
                pixels[3 * i + 1] = UInt8(Int(Self.belt.green) + n)
                pixels[3 * i + 2] = UInt8(Int(Self.belt.blue) + n)
            }
            // The tile repeats down the frame and moves down `step` rows a frame.
            for bean in placed {
                let c = cos(bean.angle), s = sin(bean.angle)
                let r = Int(bean.a) + 1
                var centreY = bean.y + Double(f * step) - Double(period)
                while centreY - bean.a < Double(height) {
                    let y0 = max(0, Int(centreY) - r), y1 = min(height - 1, Int(centreY) + r)
                    let x0 = max(0, Int(bean.x) - r), x1 = min(width - 1, Int(bean.x) + r)
                    if y0 <= y1 {
                        for y in y0...y1 {
                            for x in x0...x1 {
                                let dx = Double(x) + 0.5 - bean.x
                                let dy = Double(y) + 0.5 - centreY
                                let u = dx * c + dy * s
                                let v = dy * c - dx * s
                                if u * u / (bean.a * bean.a) + v * v / (bean.b * bean.b) <= 1 {
                                    let o = (y * width + x) * 3
                                    pixels[o] = 92; pixels[o + 1] = 84; pixels[o + 2] = 52
                                }
                            }
                        }
                    }
                    centreY += Double(period)
                }
            }
            frames.append(pixels)
        }
    }
}

/// SplitMix64: the same layout on every run.
struct DeterministicRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
