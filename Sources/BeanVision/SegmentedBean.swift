#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One bean found in a frame.
public struct SegmentedBean: Sendable, Hashable {
    /// The bean's value in the segmenter's label map (1-based, per frame); its mask is the set of
    /// pixels carrying this label (`Segmenter.mask(of:)`).
    public var label: Int32
    /// Bounding box in frame pixels.
    public var box: PixelRect
    /// Pixels in the bean's mask.
    public var area: Int
    public var centroidX: Double
    public var centroidY: Double
    /// Direction of the major axis from second moments, radians in (-π/2, π/2]; x to the right,
    /// y down, so a positive angle points the major axis down-right.
    public var angle: Double
    /// Full lengths of the ellipse with the same second moments.
    public var majorAxis: Double
    public var minorAxis: Double
    /// The mask reaches the edge of the region of interest (or frame): the bean may be cut off.
    public var touchesEdge: Bool

    public init(label: Int32, box: PixelRect, area: Int, centroidX: Double, centroidY: Double, angle: Double,
                majorAxis: Double, minorAxis: Double, touchesEdge: Bool) {
        self.label = label
        self.box = box
        self.area = area
        self.centroidX = centroidX
        self.centroidY = centroidY
        self.angle = angle
        self.majorAxis = majorAxis
        self.minorAxis = minorAxis
        self.touchesEdge = touchesEdge
    }

    public var angleDegrees: Double { angle * 180 / Double.pi }
}

/// Accumulates pixel moments of one region.
struct MomentAccumulator {
    var area = 0
    var sumX = 0.0, sumY = 0.0, sumXX = 0.0, sumYY = 0.0, sumXY = 0.0
    var minX = Int.max, minY = Int.max, maxX = Int.min, maxY = Int.min

    /// Adds the pixels x0..<x1 of row y.
    @inline(__always)
    mutating func addRun(y: Int, x0: Int, x1: Int) {
        let n = x1 - x0
        guard n > 0 else { return }
        let fn = Double(n), fy = Double(y)
        let sx = Double(x0 + x1 - 1) * fn / 2
        // Σ x² for x in x0…x1-1 = S(x1-1) - S(x0-1), S(k) = k(k+1)(2k+1)/6
        func squares(_ k: Int) -> Double { let d = Double(k); return d * (d + 1) * (2 * d + 1) / 6 }
        area += n
        sumX += sx
        sumY += fy * fn
        sumXX += squares(x1 - 1) - squares(x0 - 1)
        sumYY += fy * fy * fn
        sumXY += fy * sx
        if x0 < minX { minX = x0 }
        if x1 - 1 > maxX { maxX = x1 - 1 }
        if y < minY { minY = y }
        if y > maxY { maxY = y }
    }

    func bean(label: Int32, touchesEdge: Bool) -> SegmentedBean {
        let a = Double(area)
        let cx = sumX / a, cy = sumY / a
        let mu20 = sumXX / a - cx * cx
        let mu02 = sumYY / a - cy * cy
        let mu11 = sumXY / a - cx * cy
        var angle = 0.5 * atan2(2 * mu11, mu20 - mu02)
        if angle <= -Double.pi / 2 { angle += Double.pi }
        let common = ((mu20 - mu02) * (mu20 - mu02) + 4 * mu11 * mu11).squareRoot()
        let lambda1 = max(0, (mu20 + mu02 + common) / 2)
        let lambda2 = max(0, (mu20 + mu02 - common) / 2)
        return SegmentedBean(
            label: label,
            box: PixelRect(x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1),
            area: area, centroidX: cx, centroidY: cy, angle: angle,
            majorAxis: 4 * lambda1.squareRoot(), minorAxis: 4 * lambda2.squareRoot(),
            touchesEdge: touchesEdge)
    }
}
