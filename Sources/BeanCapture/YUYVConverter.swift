/// YUYV (YUY2, 4:2:2) to RGB24, BT.601 limited range — what USB webcams and vivid's default
/// Y'CbCr encoding produce. Fixed-point with 14-bit coefficients; each output row is written once.
///
/// Converted natively rather than through libv4lconvert because it is faster (see the "Capture"
/// section of BENCHMARKS.md) and libv4lconvert's integer approximation ignores the 16…235 range of Y.
public enum YUYVConverter {
    // 255/219 · 2^14 and the chroma terms of BT.601 scaled by 255/224 · 2^14.
    private static let yScale: Int32 = 19077   // 1.164
    private static let vToR: Int32 = 26149     // 1.596
    private static let uToG: Int32 = 6419      // 0.392
    private static let vToG: Int32 = 13320     // 0.813
    private static let uToB: Int32 = 33050     // 2.017

    /// Converts `height` rows of `width` pixels. `sourceStride` and `destinationStride` are bytes
    /// per row; `width` must be even (YUYV packs pixel pairs).
    public static func convert(source: UnsafeRawBufferPointer, sourceStride: Int,
                               destination: UnsafeMutableBufferPointer<UInt8>, destinationStride: Int,
                               width: Int, height: Int) {
        precondition(width % 2 == 0, "YUYV width must be even")
        precondition(source.count >= sourceStride * (height - 1) + width * 2, "YUYV source too small")
        precondition(destination.count >= destinationStride * (height - 1) + width * 3, "RGB destination too small")
        guard let src = source.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let dst = destination.baseAddress else { return }
        for row in 0..<height {
            let s = src + row * sourceStride
            let d = dst + row * destinationStride
            var pair = 0
            while pair < width / 2 {
                let y0 = Int32(s[pair * 4]), u = Int32(s[pair * 4 + 1]) - 128
                let y1 = Int32(s[pair * 4 + 2]), v = Int32(s[pair * 4 + 3]) - 128
                let r = vToR &* v
                let g = -(uToG &* u) &- vToG &* v
                let b = uToB &* u
                let l0 = (y0 &- 16) &* yScale &+ 8192
                let l1 = (y1 &- 16) &* yScale &+ 8192
                let o = d + pair * 6
                o[0] = clamp((l0 &+ r) >> 14)
                o[1] = clamp((l0 &+ g) >> 14)
                o[2] = clamp((l0 &+ b) >> 14)
                o[3] = clamp((l1 &+ r) >> 14)
                o[4] = clamp((l1 &+ g) >> 14)
                o[5] = clamp((l1 &+ b) >> 14)
                pair += 1
            }
        }
    }

    @inline(__always)
    private static func clamp(_ value: Int32) -> UInt8 {
        UInt8(truncatingIfNeeded: value < 0 ? 0 : (value > 255 ? 255 : value))
    }
}
