/// 8-connected components of a `BinaryMask`, found on horizontal runs of set bits (union-find over
/// runs, not pixels): cost grows with the number of runs, not with the frame size.
struct RunComponents {
    private(set) var runY: [Int32] = []
    private(set) var runX0: [Int32] = []
    /// Exclusive end.
    private(set) var runX1: [Int32] = []
    private var parent: [Int32] = []
    private var componentOfRun: [Int32] = []
    private var rowStart: [Int32] = []
    /// Run indices grouped by component: component c owns componentRuns[componentStart[c] ..< componentStart[c+1]].
    private(set) var componentRuns: [Int32] = []
    private var componentStart: [Int32] = []
    private var areas: [Int] = []
    private var minX: [Int32] = [], minY: [Int32] = [], maxX: [Int32] = [], maxY: [Int32] = []
    private(set) var count = 0

    func area(of c: Int) -> Int { areas[c] }
    /// Inclusive bounds.
    func bounds(of c: Int) -> (minX: Int, minY: Int, maxX: Int, maxY: Int) {
        (Int(minX[c]), Int(minY[c]), Int(maxX[c]), Int(maxY[c]))
    }
    func runs(of c: Int) -> Range<Int> { Int(componentStart[c])..<Int(componentStart[c + 1]) }

    mutating func label(_ mask: BinaryMask) {
        runY.removeAll(keepingCapacity: true)
        runX0.removeAll(keepingCapacity: true)
        runX1.removeAll(keepingCapacity: true)
        rowStart.removeAll(keepingCapacity: true)
        let wpr = mask.wordsPerRow, width = mask.width
        mask.words.withUnsafeBufferPointer { words in
            for y in 0..<mask.height {
                rowStart.append(Int32(runX0.count))
                var inRun = false
                var start = 0
                for k in 0..<wpr {
                    let w = words[y * wpr + k]
                    if !inRun && w == 0 { continue }
                    if inRun && w == ~0 { continue }
                    var pos = 0
                    while pos < 64 {
                        let above: UInt64 = ~0 << UInt64(pos)
                        if !inRun {
                            let m = w & above
                            if m == 0 { break }
                            pos = m.trailingZeroBitCount
                            start = k * 64 + pos
                            inRun = true
                        } else {
                            let m = ~w & above
                            if m == 0 { break }
                            pos = m.trailingZeroBitCount
                            runY.append(Int32(y)); runX0.append(Int32(start)); runX1.append(Int32(k * 64 + pos))
                            inRun = false
                        }
                    }
                }
                if inRun {
                    runY.append(Int32(y)); runX0.append(Int32(start)); runX1.append(Int32(width))
                }
            }
            rowStart.append(Int32(runX0.count))
        }
        let n = runX0.count
        parent.removeAll(keepingCapacity: true)
        for i in 0..<n { parent.append(Int32(i)) }
        // Join runs of consecutive rows that touch, diagonals included (8-connectivity).
        if mask.height > 1 {
            for y in 1..<mask.height {
                var i = Int(rowStart[y - 1]), j = Int(rowStart[y])
                let iEnd = Int(rowStart[y]), jEnd = Int(rowStart[y + 1])
                while i < iEnd && j < jEnd {
                    // inclusive ends: p0…p1-1 and c0…c1-1 touch when p0 ≤ c1 and c0 ≤ p1
                    if runX1[i] < runX0[j] { i += 1; continue }
                    if runX1[j] < runX0[i] { j += 1; continue }
                    union(Int32(i), Int32(j))
                    if runX1[i] < runX1[j] { i += 1 } else { j += 1 }
                }
            }
        }
        // Number the roots and group runs by component (counting sort).
        componentOfRun.removeAll(keepingCapacity: true)
        componentOfRun.append(contentsOf: repeatElement(-1, count: n))
        count = 0
        areas.removeAll(keepingCapacity: true)
        minX.removeAll(keepingCapacity: true); minY.removeAll(keepingCapacity: true)
        maxX.removeAll(keepingCapacity: true); maxY.removeAll(keepingCapacity: true)
        componentStart.removeAll(keepingCapacity: true)
        for i in 0..<n {
            let r = Int(find(Int32(i)))
            var c = componentOfRun[r]
            if c < 0 {
                c = Int32(count)
                componentOfRun[r] = c
                count += 1
                areas.append(0)
                minX.append(Int32.max); minY.append(Int32.max); maxX.append(Int32.min); maxY.append(Int32.min)
                componentStart.append(0)
            }
            componentOfRun[i] = c
            let ci = Int(c)
            areas[ci] += Int(runX1[i] - runX0[i])
            minX[ci] = min(minX[ci], runX0[i]); maxX[ci] = max(maxX[ci], runX1[i] - 1)
            minY[ci] = min(minY[ci], runY[i]); maxY[ci] = max(maxY[ci], runY[i])
            componentStart[ci] += 1
        }
        componentStart.append(0)
        var total: Int32 = 0
        for c in 0...count {
            let k = componentStart[c]
            componentStart[c] = total
            total += k
        }
        componentRuns.removeAll(keepingCapacity: true)
        componentRuns.append(contentsOf: repeatElement(0, count: n))
        // Fill using componentStart as cursors, then restore.
        for i in 0..<n {
            let c = Int(componentOfRun[i])
            componentRuns[Int(componentStart[c])] = Int32(i)
            componentStart[c] += 1
        }
        var previous: Int32 = 0
        for c in 0..<count {
            let end = componentStart[c]
            componentStart[c] = previous
            previous = end
        }
    }

    private mutating func find(_ i: Int32) -> Int32 {
        var i = i
        while parent[Int(i)] != i {
            let p = parent[Int(i)]
            parent[Int(i)] = parent[Int(p)]
            i = p
        }
        return i
    }

    private mutating func union(_ a: Int32, _ b: Int32) {
        let ra = find(a), rb = find(b)
        if ra == rb { return }
        if ra < rb { parent[Int(rb)] = ra } else { parent[Int(ra)] = rb }
    }
}
