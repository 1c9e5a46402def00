import ArgumentParser
import BeanCore
import BeanVision
import Foundation

/// `beanctl segment`: runs the segmenter on photos and reports what it found, so a user can tune
/// segmentation on their own images. Settings come from flags until the config file is wired in.
struct Segment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find beans in photos: count, boxes, areas; optional overlay PNGs.",
        discussion: """
            Settings start from --preset and are changed by the other flags. With --json, prints one \
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

    @Option(help: "Starting settings: default, tray (beans on a light tray or belt), mindforge (single-bean jig).")
    var preset: Preset = .default

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

    func settings() throws -> SegmenterSettings {
        var s: SegmenterSettings
        switch preset {
        case .default: s = SegmenterSettings()
        case .tray: s = .tray
        case .mindforge: s = .mindforge
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
        if let overlay {
            try FileManager.default.createDirectory(atPath: overlay, withIntermediateDirectories: true)
        }
        var failures = 0
        var overlayNames = Set<String>()
        for (index, path) in images.enumerated() {
            do {
                let frame = try ImageFileLoader.load(path: path, sequence: UInt64(index))
                segmenter.resetLearnedBackground()
                let beans = try segmenter.segment(frame)
                if json {
                    print(Self.jsonLine(image: path, beans: beans))
                } else {
                    print(Self.textReport(image: path, beans: beans, background: segmenter.backgroundColour))
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
                    try ImageFileLoader.writePNG(path: (overlay as NSString).appendingPathComponent(name),
                                                 width: frame.width, height: frame.height, rgb: rgb)
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

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

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
