/// A binary image packed 64 pixels to a word (bit i of word k = pixel x = 64k + i), so morphology
/// with square structuring elements runs on whole words.
struct BinaryMask {
    private(set) var width = 0
    private(set) var height = 0
    private(set) var wordsPerRow = 0
    var words: [UInt64] = []
    private var scratch: [UInt64] = []
    /// Valid pixel bits of each row's last word.
    private var lastWordMask: UInt64 = ~0

    /// Resizes (keeping capacity) and clears.
    mutating func reset(width: Int, height: Int) {
        if width != self.width || height != self.height {
            self.width = width
            self.height = height
            wordsPerRow = (width + 63) / 64
            let rem = width % 64
            lastWordMask = rem == 0 ? ~0 : (UInt64(1) << UInt64(rem)) &- 1
            words = [UInt64](repeating: 0, count: wordsPerRow * height)
            scratch = words
        } else {
            words.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }
    }

    /// Opening: erosion then dilation by a (2r+1)² square.
    mutating func open(radius: Int) {
        guard radius > 0 else { return }
        erode(radius: radius)
        dilate(radius: radius)
    }

    /// Closing: dilation then erosion by a (2r+1)² square.
    mutating func close(radius: Int) {
        guard radius > 0 else { return }
        dilate(radius: radius)
        erode(radius: radius)
    }

    /// Outside the image counts as foreground for erosion, so beans are not eaten from the frame edge.
    mutating func erode(radius: Int) { morph(radius: radius, erode: true) }
    /// Outside the image counts as background for dilation.
    mutating func dilate(radius: Int) { morph(radius: radius, erode: false) }

    private mutating func morph(radius: Int, erode: Bool) {
        let wpr = wordsPerRow, h = height, lastMask = lastWordMask
        words.withUnsafeMutableBufferPointer { src in
            scratch.withUnsafeMutableBufferPointer { tmp in
                guard let s = src.baseAddress, let t = tmp.baseAddress else { return }
                // Horizontal pass: s → t.
                for y in 0..<h {
                    let row = s + y * wpr, out = t + y * wpr
                    var k = 0
                    while k < wpr {
                        var w = row[k]
                        let pad: UInt64 = erode ? ~0 : 0
                        let prev0 = k > 0 ? row[k - 1] : pad
                        var next0 = k + 1 < wpr ? row[k + 1] : pad
                        if k + 2 == wpr, erode { next0 |= ~lastMask }
                        if k + 1 == wpr, erode { w |= ~lastMask }
                        var acc = w
                        var shift: UInt64 = 1
                        while shift <= UInt64(radius) {
                            let left = (w << shift) | (prev0 >> (64 - shift))
                            let right = (w >> shift) | (next0 << (64 - shift))
                            acc = erode ? (acc & left & right) : (acc | left | right)
                            shift += 1
                        }
                        out[k] = k + 1 == wpr ? acc & lastMask : acc
                        k += 1
                    }
                }
                // Vertical pass: t → s.
                for y in 0..<h {
                    let out = s + y * wpr
                    let y0 = y - radius, y1 = y + radius
                    for k in 0..<wpr {
                        var acc: UInt64 = erode ? ~0 : 0
                        var yy = max(0, y0)
                        let yEnd = min(h - 1, y1)
                        while yy <= yEnd {
                            let v = t[yy * wpr + k]
                            acc = erode ? (acc & v) : (acc | v)
                            yy += 1
                        }
                        out[k] = k + 1 == wpr ? acc & lastMask : acc
                    }
                }
            }
        }
    }
}
