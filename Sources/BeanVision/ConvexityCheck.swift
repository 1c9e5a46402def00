/// Measures how far a connected component is from convex: the pixels of its digital convex hull
/// (pixel centres inside the hull of its pixel centres) that are not in the component.
///
/// Why: the watershed that splits touching beans costs more than the rest of segmentation put
/// together, and almost every component on a belt is one lone bean. The distance to the edge of a
/// convex region is a concave function (the minimum of the distances to its supporting lines), so
/// it has a single peak and the watershed cannot split it; two beans joined by a neck narrow enough
/// to split leave notches beside the neck that the hull covers. A component whose hull adds almost
/// nothing therefore skips the watershed (`TouchingBeanSplitter`), with a bound tied to the split
/// depth and checked against the watershed itself in the tests.
struct ConvexityCheck {
    private var left: [Int32] = []
    private var right: [Int32] = []
    private var chain: [Int32] = []
    private var lower: [Int] = []
    private var upper: [Int] = []

    /// Hull pixels not in the component. Uses each row's leftmost and rightmost pixel; pixels missing
    /// between them (a hole, or a gap between two parts) count as missing, so this never
    /// underestimates the area the hull adds.
    mutating func hullDeficit(component c: Int, of components: RunComponents) -> Int {
        let b = components.bounds(of: c)
        let rows = b.maxY - b.minY + 1
        left.removeAll(keepingCapacity: true)
        right.removeAll(keepingCapacity: true)
        left.append(contentsOf: repeatElement(Int32.max, count: rows))
        right.append(contentsOf: repeatElement(Int32.min, count: rows))
        for r in components.runs(of: c) {
            let run = Int(components.componentRuns[r])
            let row = Int(components.runY[run]) - b.minY
            left[row] = min(left[row], components.runX0[run])
            right[row] = max(right[row], components.runX1[run] - 1)
        }
        // An 8-connected component has at least one pixel on every row of its bounding box.
        var hullPixels = 0
        Self.envelope(of: left, convexFromLeft: true, chain: &chain, into: &lower)
        Self.envelope(of: right, convexFromLeft: false, chain: &chain, into: &upper)
        for row in 0..<rows { hullPixels += max(0, upper[row] - lower[row] + 1) }
        return hullPixels - components.area(of: c)
    }

    /// Per row, the hull's first (`convexFromLeft`) or last pixel: the greatest convex minorant of
    /// the left ends, or the least concave majorant of the right ends, as functions of the row,
    /// sampled at every row and rounded inwards to whole pixels.
    private static func envelope(of ends: [Int32], convexFromLeft: Bool, chain: inout [Int32], into out: inout [Int]) {
        let n = ends.count
        // Monotone chain over rows: keep the rows whose ends form the envelope.
        chain.removeAll(keepingCapacity: true)
        for row in 0..<n {
            while chain.count >= 2 {
                let a = Int(chain[chain.count - 2]), b = Int(chain[chain.count - 1])
                // Cross product of (b - a) × (row - a) in (row, x) coordinates.
                let cross = (b - a) * (Int(ends[row]) - Int(ends[a])) - (Int(ends[b]) - Int(ends[a])) * (row - a)
                // For the left envelope, b must lie strictly left of the segment a→row; for the
                // right envelope strictly right. Otherwise it is not a hull vertex.
                if convexFromLeft ? cross <= 0 : cross >= 0 { chain.removeLast() } else { break }
            }
            chain.append(Int32(row))
        }
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: n))
        for k in 0..<(chain.count - 1) {
            let a = Int(chain[k]), b = Int(chain[k + 1])
            let xa = Int(ends[a]), xb = Int(ends[b]), span = b - a
            for row in a...b {
                // x = xa + (xb - xa)(row - a)/span, rounded inwards: up on the left, down on the right.
                let numerator = xa * span + (xb - xa) * (row - a)
                out[row] = convexFromLeft ? Self.ceilDiv(numerator, span) : Self.floorDiv(numerator, span)
            }
        }
        if chain.count == 1 { out[Int(chain[0])] = Int(ends[Int(chain[0])]) }
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    private static func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }
}
