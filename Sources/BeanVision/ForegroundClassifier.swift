/// Decides per pixel "bean or background" through a 32×32×32 table over RGB quantised to 5 bits,
/// built once per background model: the per-pixel cost is one table look-up whatever the distance.
struct ForegroundClassifier {
    private(set) var table: [UInt8]
    /// The same table as 32,768 bits (4 KiB), for the vectorised RGB24 kernel.
    private(set) var bits: [UInt32] = []

    /// Background = the shades of `background` from (1 - shade) × to (1 + shade) ×.
    init(background: RGB, shade: Double, threshold: Double, chromaWeight: Double) {
        func scaled(_ f: Double) -> RGB {
            func c(_ v: UInt8) -> UInt8 { UInt8(min(255, max(0, (Double(v) * f).rounded()))) }
            return RGB(c(background.red), c(background.green), c(background.blue))
        }
        self.init(lines: [ColourLine(scaled(1 - shade), scaled(1 + shade))], threshold: threshold, chromaWeight: chromaWeight)
    }

    /// Foreground = weighted RGB distance to every line at least `threshold`. The error vector's
    /// component across the grey axis (chroma) counts `chromaWeight` times its component along it.
    init(lines: [ColourLine], threshold: Double, chromaWeight: Double) {
        table = [UInt8](repeating: 0, count: 32 * 32 * 32)
        let t2 = threshold * threshold
        let w2 = chromaWeight * chromaWeight
        let segments = lines.map { line -> ((Double, Double, Double), (Double, Double, Double), Double) in
            let a = (Double(line.from.red), Double(line.from.green), Double(line.from.blue))
            let d = (Double(line.to.red) - a.0, Double(line.to.green) - a.1, Double(line.to.blue) - a.2)
            return (a, d, d.0 * d.0 + d.1 * d.1 + d.2 * d.2)
        }
        for r in 0..<32 {
            for g in 0..<32 {
                for b in 0..<32 {
                    var nearest = Double.infinity
                    for (a, d, dd) in segments {
                        let p = (Double(r * 8 + 4) - a.0, Double(g * 8 + 4) - a.1, Double(b * 8 + 4) - a.2)
                        var t = dd > 0 ? (p.0 * d.0 + p.1 * d.1 + p.2 * d.2) / dd : 0
                        t = min(1, max(0, t))
                        let e = (p.0 - t * d.0, p.1 - t * d.1, p.2 - t * d.2)
                        let grey = (e.0 + e.1 + e.2) / 3
                        let along = 3 * grey * grey
                        let across = (e.0 - grey) * (e.0 - grey) + (e.1 - grey) * (e.1 - grey) + (e.2 - grey) * (e.2 - grey)
                        nearest = min(nearest, along + w2 * across)
                    }
                    if nearest >= t2 { table[(r << 10) | (g << 5) | b] = 1 }
                }
            }
        }
        bits = [UInt32](repeating: 0, count: table.count / 32)
        for (index, value) in table.enumerated() where value != 0 { bits[index >> 5] |= 1 << UInt32(index & 31) }
    }

    @inline(__always)
    static func index(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> Int {
        (Int(r >> 3) << 10) | (Int(g >> 3) << 5) | Int(b >> 3)
    }
}

/// Learns the belt colour as the most frequent colour of sampled pixels (belt covers most of the
/// view); accumulates over as many frames as it is given.
struct BackgroundLearner {
    private var histogram = [UInt32](repeating: 0, count: 32 * 32 * 32)
    private var sums = [UInt64](repeating: 0, count: 32 * 32 * 32 * 3)
    private(set) var frames = 0

    mutating func add(pixels: UnsafeBufferPointer<UInt8>, stride: Int, bytesPerPixel: Int, region: PixelRect) {
        let step = max(1, Int((Double(region.width * region.height) / 200_000).squareRoot().rounded(.up)))
        var y = region.y
        while y < region.maxY {
            var offset = y * stride + region.x * bytesPerPixel
            var x = region.x
            while x < region.maxX {
                let r = pixels[offset]
                let g = bytesPerPixel == 3 ? pixels[offset + 1] : r
                let b = bytesPerPixel == 3 ? pixels[offset + 2] : r
                let i = ForegroundClassifier.index(r, g, b)
                histogram[i] &+= 1
                sums[3 * i] &+= UInt64(r)
                sums[3 * i + 1] &+= UInt64(g)
                sums[3 * i + 2] &+= UInt64(b)
                x += step
                offset += step * bytesPerPixel
            }
            y += step
        }
        frames += 1
    }

    /// The mean colour of the most populated bin and its 26 neighbours; nil before any sample.
    var colour: RGB? {
        guard let best = histogram.indices.max(by: { histogram[$0] < histogram[$1] }), histogram[best] > 0 else {
            return nil
        }
        let (r0, g0, b0) = (best >> 10, (best >> 5) & 31, best & 31)
        var n: UInt64 = 0, sr: UInt64 = 0, sg: UInt64 = 0, sb: UInt64 = 0
        for r in max(0, r0 - 1)...min(31, r0 + 1) {
            for g in max(0, g0 - 1)...min(31, g0 + 1) {
                for b in max(0, b0 - 1)...min(31, b0 + 1) {
                    let i = (r << 10) | (g << 5) | b
                    n += UInt64(histogram[i])
                    sr += sums[3 * i]; sg += sums[3 * i + 1]; sb += sums[3 * i + 2]
                }
            }
        }
        return RGB(UInt8(sr / n), UInt8(sg / n), UInt8(sb / n))
    }
}
