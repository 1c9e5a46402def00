/// Works on one connected component in a padded local window around its bounding box: fills its
/// holes, and splits beans that touch with a watershed on the distance transform whose basins merge
/// unless the saddle between them is deep (dynamics criterion), so a bean with a waist or a crease
/// stays whole while two beans joined by a narrow neck come apart.
struct TouchingBeanSplitter {
    /// Local window: bounding box plus one pixel of background on every side.
    private var originX = 0, originY = 0, localWidth = 0, localHeight = 0
    /// -1 = background, otherwise the part index of the pixel.
    private var part: [Int32] = []
    private var distance: [Int32] = []
    private var parent: [Int32] = []
    private var peak: [Int32] = []
    private var order: [Int32] = []
    private var bucket: [Int32] = []
    private var stack: [Int32] = []
    private var parts: [MomentAccumulator] = []
    private var convexity = ConvexityCheck()
    /// Skip the watershed for components it cannot split (see `isNearlyConvex`); off only in the
    /// tests that check the two agree.
    var skipsNearlyConvex = true
    /// Components that skipped the watershed, for the tests.
    private(set) var watershedsSkipped = 0

    var partCount: Int { parts.count }
    func moments(of p: Int) -> MomentAccumulator { parts[p] }

    /// Chamfer 3-4 distances: 3 per straight step, 4 per diagonal.
    private static let straight: Int32 = 3
    private static let diagonal: Int32 = 4

    mutating func process(component c: Int, of components: RunComponents, fillHoles: Bool, split: Bool,
                          depth: Double, minRadius: Double) {
        let b = components.bounds(of: c)
        originX = b.minX - 1
        originY = b.minY - 1
        localWidth = b.maxX - b.minX + 3
        localHeight = b.maxY - b.minY + 3
        let n = localWidth * localHeight
        if part.count < n {
            let grown = max(n, part.count * 2)
            part = [Int32](repeating: -1, count: grown)
            distance = [Int32](repeating: 0, count: grown)
            parent = [Int32](repeating: -1, count: grown)
            peak = [Int32](repeating: 0, count: grown)
        }
        let lw = localWidth
        part.withUnsafeMutableBufferPointer { p in
            p[0..<n].update(repeating: -1)
            for r in components.runs(of: c) {
                let run = Int(components.componentRuns[r])
                let y = Int(components.runY[run]) - originY
                let x0 = Int(components.runX0[run]) - originX, x1 = Int(components.runX1[run]) - originX
                p[(y * lw + x0)..<(y * lw + x1)].update(repeating: 0)
            }
        }
        if fillHoles { fillEnclosedBackground() }
        parts.removeAll(keepingCapacity: true)
        if split {
            if skipsNearlyConvex && isNearlyConvex(component: c, of: components, depth: depth, minRadius: minRadius) {
                watershedsSkipped &+= 1
            } else {
                watershed(depth: depth, minRadius: minRadius)
            }
        }
        accumulateParts()
    }

    /// True when the component is so close to convex that the watershed would keep it whole.
    ///
    /// Splitting needs a neck whose distance to the edge lies `depth` × the thinner peak below that
    /// peak, and such a neck leaves notches the convex hull fills. Measured on 2,176 random pairs
    /// of touching ellipses (180 drawn frames segmented by `beanctl segment --preset tray`; the
    /// unit test `ConvexShortcutTests` draws pairs the same way), the smallest hull deficit of a pair the
    /// watershed split was 0.16 × depth of the component's area (depth 0.1 to 0.5); the bound
    /// used, depth / 10, leaves a margin of 1.6×. On the tray photos of ../shared/data it lets 91 %
    /// of the components skip at depth 0.3. It applies only while the relative depth criterion is
    /// the binding one: with tiny peaks allowed, the absolute one-step criterion can split at
    /// a neck too shallow to show in the hull.
    private mutating func isNearlyConvex(component c: Int, of components: RunComponents, depth: Double,
                                         minRadius: Double) -> Bool {
        let minPeak = (minRadius * Double(Self.straight)).rounded()
        guard depth * minPeak >= Double(Self.straight) else { return false }
        let deficit = convexity.hullDeficit(component: c, of: components)
        return Double(deficit) <= depth / 10 * Double(components.area(of: c))
    }

    /// Background pixels not reachable from the window's border (4-connected) become bean.
    private mutating func fillEnclosedBackground() {
        let lw = localWidth, lh = localHeight, n = lw * lh
        stack.removeAll(keepingCapacity: true)
        part.withUnsafeMutableBufferPointer { p in
            // -2 marks reached background; the padded border is background by construction.
            for x in 0..<lw { p[x] = -2; p[(lh - 1) * lw + x] = -2 }
            for y in 0..<lh { p[y * lw] = -2; p[y * lw + lw - 1] = -2 }
            for x in 1..<(lw - 1) {
                if p[lw + x] == -1 { p[lw + x] = -2; stack.append(Int32(lw + x)) }
                if p[(lh - 2) * lw + x] == -1 { p[(lh - 2) * lw + x] = -2; stack.append(Int32((lh - 2) * lw + x)) }
            }
            for y in 1..<(lh - 1) {
                if p[y * lw + 1] == -1 { p[y * lw + 1] = -2; stack.append(Int32(y * lw + 1)) }
                if p[y * lw + lw - 2] == -1 { p[y * lw + lw - 2] = -2; stack.append(Int32(y * lw + lw - 2)) }
            }
            while let top = stack.popLast() {
                let i = Int(top)
                // Pixels popped are never on the padded border, so all four neighbours exist.
                if p[i - 1] == -1 { p[i - 1] = -2; stack.append(Int32(i - 1)) }
                if p[i + 1] == -1 { p[i + 1] = -2; stack.append(Int32(i + 1)) }
                if p[i - lw] == -1 { p[i - lw] = -2; stack.append(Int32(i - lw)) }
                if p[i + lw] == -1 { p[i + lw] = -2; stack.append(Int32(i + lw)) }
            }
            for i in 0..<n { p[i] = p[i] == -2 ? -1 : 0 }
        }
    }

    /// Leaves `part` holding the part index of every bean pixel.
    private mutating func watershed(depth: Double, minRadius: Double) {
        let lw = localWidth, lh = localHeight, n = lw * lh
        let straight = Self.straight, diagonal = Self.diagonal
        var maxDistance: Int32 = 0
        part.withUnsafeBufferPointer { p in
            distance.withUnsafeMutableBufferPointer { d in
                for i in 0..<n { d[i] = p[i] < 0 ? 0 : Int32.max / 2 }
                for y in 1..<(lh - 1) {
                    for x in 1..<(lw - 1) {
                        let i = y * lw + x
                        guard d[i] != 0 else { continue }
                        var v = d[i]
                        v = min(v, d[i - 1] + straight, d[i - lw] + straight)
                        v = min(v, d[i - lw - 1] + diagonal, d[i - lw + 1] + diagonal)
                        d[i] = v
                    }
                }
                for y in stride(from: lh - 2, through: 1, by: -1) {
                    for x in stride(from: lw - 2, through: 1, by: -1) {
                        let i = y * lw + x
                        guard d[i] != 0 else { continue }
                        var v = d[i]
                        v = min(v, d[i + 1] + straight, d[i + lw] + straight)
                        v = min(v, d[i + lw + 1] + diagonal, d[i + lw - 1] + diagonal)
                        d[i] = v
                        if v > maxDistance { maxDistance = v }
                    }
                }
            }
        }
        // Counting sort of bean pixels by decreasing distance.
        let levels = Int(maxDistance) + 1
        if bucket.count < levels + 1 { bucket = [Int32](repeating: 0, count: levels + 1) }
        bucket.withUnsafeMutableBufferPointer { $0[0...levels].update(repeating: 0) }
        var beanPixels = 0
        for i in 0..<n where distance[i] > 0 {
            bucket[Int(maxDistance - distance[i])] += 1
            beanPixels += 1
        }
        var running: Int32 = 0
        for l in 0..<levels {
            let k = bucket[l]
            bucket[l] = running
            running += k
        }
        order.removeAll(keepingCapacity: true)
        order.append(contentsOf: repeatElement(0, count: beanPixels))
        for i in 0..<n where distance[i] > 0 {
            let l = Int(maxDistance - distance[i])
            order[Int(bucket[l])] = Int32(i)
            bucket[l] += 1
        }

        let minPeak = Int32((minRadius * Double(straight)).rounded())
        let absoluteDepth = Double(straight)
        var split = false
        parent.withUnsafeMutableBufferPointer { par in
            peak.withUnsafeMutableBufferPointer { pk in
                distance.withUnsafeBufferPointer { d in
                    par[0..<n].update(repeating: -1)
                    @inline(__always) func find(_ i: Int32) -> Int32 {
                        var i = i
                        while par[Int(i)] != i {
                            let p = par[Int(i)]
                            par[Int(i)] = par[Int(p)]
                            i = p
                        }
                        return i
                    }
                    let offsets = (-1, 1, -lw, lw, -lw - 1, -lw + 1, lw - 1, lw + 1)
                    for o in order {
                        let i = Int(o)
                        let level = d[i]
                        par[i] = o
                        pk[i] = level
                        var root = o
                        for k in 0..<8 {
                            let j = i + Self.offset(offsets, k)
                            guard par[j] >= 0 else { continue }
                            let other = find(Int32(j))
                            root = find(root)
                            if other == root { continue }
                            if root == o {
                                // The pixel joins its first basin.
                                par[i] = other
                                root = other
                                continue
                            }
                            let low = min(pk[Int(root)], pk[Int(other)])
                            let needed = max(absoluteDepth, depth * Double(low))
                            if low < minPeak || Double(low - level) < needed {
                                if pk[Int(root)] >= pk[Int(other)] {
                                    par[Int(other)] = root
                                } else {
                                    par[Int(root)] = other
                                    root = other
                                }
                            } else {
                                split = true
                            }
                        }
                    }
                    var next: Int32 = 0
                    part.withUnsafeMutableBufferPointer { p in
                        // Basins numbered in order of first appearance; pk is free to reuse now.
                        if split {
                            for i in 0..<n where p[i] >= 0 { pk[i] = -1 }
                            for i in 0..<n where p[i] >= 0 {
                                let r = Int(find(Int32(i)))
                                if pk[r] == -1 { pk[r] = -2 - next; next += 1 }
                                p[i] = -2 - pk[r]
                            }
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func offset(_ o: (Int, Int, Int, Int, Int, Int, Int, Int), _ k: Int) -> Int {
        switch k {
        case 0: return o.0
        case 1: return o.1
        case 2: return o.2
        case 3: return o.3
        case 4: return o.4
        case 5: return o.5
        case 6: return o.6
        default: return o.7
        }
    }

    private mutating func accumulateParts() {
        let lw = localWidth
        part.withUnsafeBufferPointer { p in
            for y in 1..<(localHeight - 1) {
                var x = 1
                while x < lw - 1 {
                    let id = p[y * lw + x]
                    if id < 0 { x += 1; continue }
                    let start = x
                    while x < lw - 1 && p[y * lw + x] == id { x += 1 }
                    while parts.count <= Int(id) { parts.append(MomentAccumulator()) }
                    parts[Int(id)].addRun(y: y + originY, x0: start + originX, x1: x + originX)
                }
            }
        }
    }

    func writeLabels(of partIndex: Int, label: Int32, into labels: inout [Int32], width: Int) {
        let lw = localWidth
        let id = Int32(partIndex)
        let m = parts[partIndex]
        part.withUnsafeBufferPointer { p in
            labels.withUnsafeMutableBufferPointer { l in
                for y in m.minY...m.maxY {
                    let ly = y - originY
                    for x in m.minX...m.maxX where p[ly * lw + x - originX] == id {
                        l[y * width + x] = label
                    }
                }
            }
        }
    }
}
