import BeanCore
import BeanVision

/// An RGB24 raster with the few drawing operations report plots need: filled rectangles, thick
/// lines and text in a built-in 5×7 bitmap font (upper-case; lower-case letters are drawn as
/// upper-case). No dependency beyond the PNG encoder that writes the result.
public struct PlotCanvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = RGB(255, 255, 255)) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, colour: background)
    }

    public var frame: Frame {
        Frame(camera: "plot", sequence: 0, captured: .now(), width: width, height: height, format: .rgb24, pixels: pixels)
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.red; pixels[i + 1] = c.green; pixels[i + 2] = c.blue
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, colour: RGB) {
        for yy in max(0, y)..<min(height, y + h) where w > 0 {
            for xx in max(0, x)..<min(width, x + w) { set(xx, yy, colour) }
        }
    }

    /// A line `thickness` pixels wide (square pen), endpoints included.
    public mutating func line(from a: (Double, Double), to b: (Double, Double), colour: RGB, thickness: Int = 1) {
        let steps = Int(max(abs(b.0 - a.0), abs(b.1 - a.1)).rounded(.up)) + 1
        let r = thickness / 2
        for s in 0...steps {
            let t = Double(s) / Double(steps)
            let x = Int((a.0 + (b.0 - a.0) * t).rounded()), y = Int((a.1 + (b.1 - a.1) * t).rounded())
            fill(x: x - r, y: y - r, width: thickness, height: thickness, colour: colour)
        }
    }

    /// Text with its top-left corner at (x, y), each font pixel `scale` × `scale`.
    public mutating func text(_ string: String, x: Int, y: Int, colour: RGB, scale: Int = 1) {
        var cx = x
        for character in string.uppercased() {
            let columns = BitmapFont.glyph(character)
            for (col, bits) in columns.enumerated() {
                for row in 0..<7 where bits & (1 << row) != 0 {
                    fill(x: cx + col * scale, y: y + row * scale, width: scale, height: scale, colour: colour)
                }
            }
            cx += 6 * scale
        }
    }

    public static func textWidth(_ string: String, scale: Int = 1) -> Int { string.count * 6 * scale }
}

/// A classic 5×7 font: five column bytes per glyph, bit 0 at the top.
enum BitmapFont {
    static func glyph(_ c: Character) -> [UInt8] { glyphs[c] ?? glyphs["?"] ?? [] }

    static let glyphs: [Character: [UInt8]] = [
        " ": [0, 0, 0, 0, 0],
        "0": [0x3E, 0x51, 0x49, 0x45, 0x3E], "1": [0x00, 0x42, 0x7F, 0x40, 0x00],
        "2": [0x42, 0x61, 0x51, 0x49, 0x46], "3": [0x21, 0x41, 0x45, 0x4B, 0x31],
        "4": [0x18, 0x14, 0x12, 0x7F, 0x10], "5": [0x27, 0x45, 0x45, 0x45, 0x39],
        "6": [0x3C, 0x4A, 0x49, 0x49, 0x30], "7": [0x01, 0x71, 0x09, 0x05, 0x03],
        "8": [0x36, 0x49, 0x49, 0x49, 0x36], "9": [0x06, 0x49, 0x49, 0x29, 0x1E],
        "A": [0x7E, 0x11, 0x11, 0x11, 0x7E], "B": [0x7F, 0x49, 0x49, 0x49, 0x36],
        "C": [0x3E, 0x41, 0x41, 0x41, 0x22], "D": [0x7F, 0x41, 0x41, 0x22, 0x1C],
        "E": [0x7F, 0x49, 0x49, 0x49, 0x41], "F": [0x7F, 0x09, 0x09, 0x01, 0x01],
        "G": [0x3E, 0x41, 0x49, 0x49, 0x7A], "H": [0x7F, 0x08, 0x08, 0x08, 0x7F],
        "I": [0x00, 0x41, 0x7F, 0x41, 0x00], "J": [0x20, 0x40, 0x41, 0x3F, 0x01],
        "K": [0x7F, 0x08, 0x14, 0x22, 0x41], "L": [0x7F, 0x40, 0x40, 0x40, 0x40],
        "M": [0x7F, 0x02, 0x0C, 0x02, 0x7F], "N": [0x7F, 0x04, 0x08, 0x10, 0x7F],
        "O": [0x3E, 0x41, 0x41, 0x41, 0x3E], "P": [0x7F, 0x09, 0x09, 0x09, 0x06],
        "Q": [0x3E, 0x41, 0x51, 0x21, 0x5E], "R": [0x7F, 0x09, 0x19, 0x29, 0x46],
        "S": [0x46, 0x49, 0x49, 0x49, 0x31], "T": [0x01, 0x01, 0x7F, 0x01, 0x01],
        "U": [0x3F, 0x40, 0x40, 0x40, 0x3F], "V": [0x1F, 0x20, 0x40, 0x20, 0x1F],
        "W": [0x3F, 0x40, 0x38, 0x40, 0x3F], "X": [0x63, 0x14, 0x08, 0x14, 0x63],
        "Y": [0x07, 0x08, 0x70, 0x08, 0x07], "Z": [0x61, 0x51, 0x49, 0x45, 0x43],
        "-": [0x08, 0x08, 0x08, 0x08, 0x08], ".": [0x00, 0x60, 0x60, 0x00, 0x00],
        ",": [0x00, 0x50, 0x30, 0x00, 0x00], ":": [0x00, 0x36, 0x36, 0x00, 0x00],
        "(": [0x00, 0x1C, 0x22, 0x41, 0x00], ")": [0x00, 0x41, 0x22, 0x1C, 0x00],
        "%": [0x23, 0x13, 0x08, 0x64, 0x62], "/": [0x20, 0x10, 0x08, 0x04, 0x02],
        "=": [0x14, 0x14, 0x14, 0x14, 0x14], "_": [0x40, 0x40, 0x40, 0x40, 0x40],
        "+": [0x08, 0x08, 0x3E, 0x08, 0x08], "?": [0x02, 0x01, 0x51, 0x09, 0x06],
        "#": [0x14, 0x7F, 0x14, 0x7F, 0x14], "<": [0x08, 0x14, 0x22, 0x41, 0x00],
        ">": [0x00, 0x41, 0x22, 0x14, 0x08],
    ]
}

/// The plots `beanctl eval --out` writes.
public enum ReportPlots {
    static let ink = RGB(30, 30, 30)
    static let grid = RGB(225, 225, 225)
    static let curve = RGB(31, 119, 180)
    static let chance = RGB(170, 170, 170)

    /// A unit-square line plot (x and y in 0…1) with axes, grid, title and axis names.
    public static func curvePlot(points: [(Double, Double)], title: String, xName: String, yName: String,
                                 diagonal: Bool, size: Int = 480) -> PlotCanvas {
        var canvas = PlotCanvas(width: size, height: size + 12)
        let left = 56, top = 48, plot = size - left - 24
        func px(_ x: Double) -> Double { Double(left) + x * Double(plot) }
        func py(_ y: Double) -> Double { Double(top) + (1 - y) * Double(plot) }
        for tick in 0...10 {
            let v = Double(tick) / 10
            canvas.line(from: (px(v), py(0)), to: (px(v), py(1)), colour: grid)
            canvas.line(from: (px(0), py(v)), to: (px(1), py(v)), colour: grid)
            if tick % 2 == 0 {
                let label = String(format: "%.1f", v)
                canvas.text(label, x: Int(px(v)) - PlotCanvas.textWidth(label) / 2, y: top + plot + 6, colour: ink)
                canvas.text(label, x: left - 6 - PlotCanvas.textWidth(label), y: Int(py(v)) - 3, colour: ink)
            }
        }
        if diagonal { canvas.line(from: (px(0), py(0)), to: (px(1), py(1)), colour: chance) }
        canvas.line(from: (px(0), py(0)), to: (px(1), py(0)), colour: ink)
        canvas.line(from: (px(0), py(0)), to: (px(0), py(1)), colour: ink)
        for (a, b) in zip(points, points.dropFirst()) {
            canvas.line(from: (px(a.0), py(a.1)), to: (px(b.0), py(b.1)), colour: curve, thickness: 2)
        }
        canvas.text(title, x: left, y: 6, colour: ink, scale: 2)
        canvas.text(xName, x: left + plot / 2 - PlotCanvas.textWidth(xName) / 2, y: top + plot + 18, colour: ink)
        // The y axis name goes above the axis: the font has no rotated glyphs.
        canvas.text(yName, x: 4, y: top - 14, colour: ink)
        return canvas
    }

    public static func roc(_ points: [(fpr: Double, tpr: Double)], auc: Double?) -> PlotCanvas {
        let title = "ROC" + (auc.map { String(format: "  AUC %.3f", $0) } ?? "")
        return curvePlot(points: points.map { ($0.fpr, $0.tpr) }, title: title,
                         xName: "good beans rejected", yName: "defect recall", diagonal: true)
    }

    public static func precisionRecall(_ points: [(recall: Double, precision: Double)]) -> PlotCanvas {
        curvePlot(points: points.map { ($0.recall, $0.precision) }, title: "Precision-recall",
                  xName: "defect recall", yName: "precision", diagonal: false)
    }

    /// Heat map of the confusion matrix: cell shade = share of the row, count printed in the cell;
    /// rows named on the left, columns numbered with the same numbers as the rows.
    public static func confusion(_ matrix: ConfusionMatrix) -> PlotCanvas {
        let cell = 40
        let rowNames = matrix.trueLabels.enumerated().map { "\($0.offset + 1) \($0.element)" }
        let extraNames = matrix.predictedLabels.dropFirst(matrix.trueLabels.count)
        let columnTitles = matrix.predictedLabels.indices.map { i in
            i < matrix.trueLabels.count ? "\(i + 1)" : String(matrix.predictedLabels[i].prefix(6))
        }
        let nameWidth = (rowNames.map { PlotCanvas.textWidth($0) }.max() ?? 0) + 12
        let left = max(nameWidth, 60), top = 56
        let width = left + cell * matrix.predictedLabels.count + 16
        let height = top + cell * matrix.trueLabels.count + 40 + (extraNames.isEmpty ? 0 : 12)
        var canvas = PlotCanvas(width: max(width, 320), height: height)
        canvas.text("Confusion (rows true, columns predicted)", x: 8, y: 8, colour: ink)
        for (c, title) in columnTitles.enumerated() {
            canvas.text(title, x: left + c * cell + cell / 2 - PlotCanvas.textWidth(title) / 2, y: top - 14, colour: ink)
        }
        for (r, name) in rowNames.enumerated() {
            canvas.text(name, x: 6, y: top + r * cell + cell / 2 - 3, colour: ink)
            let rowTotal = max(1, matrix.counts[r].reduce(0, +))
            for c in matrix.predictedLabels.indices {
                let count = matrix.counts[r][c]
                let share = Double(count) / Double(rowTotal)
                let shade = RGB(UInt8(255 - 200 * share), UInt8(255 - 140 * share), UInt8(255 - 40 * share))
                canvas.fill(x: left + c * cell, y: top + r * cell, width: cell - 1, height: cell - 1, colour: shade)
                let text = "\(count)"
                canvas.text(text, x: left + c * cell + cell / 2 - PlotCanvas.textWidth(text) / 2,
                            y: top + r * cell + cell / 2 - 3, colour: share > 0.5 ? RGB(255, 255, 255) : ink)
            }
        }
        if !extraNames.isEmpty {
            canvas.text("extra columns: " + extraNames.joined(separator: ", "), x: 6,
                        y: top + cell * matrix.trueLabels.count + 12, colour: ink)
        }
        return canvas
    }
}
