/// YUYV (YUY2, 4:2:2) to RGB24, BT.601 limited range — what USB webcams and vivid's default
/// Y'CbCr encoding produce. Fixed point with 14-bit coefficients, looked up in small tables (the
/// per-value luma and chroma terms, and a clamp table) so the inner loop has no multiplies and no
/// branches; it fits in L1 cache (5 × 1 KiB + 1 KiB).
///
/// Converted natively rather than through libv4lconvert because it is faster (`beanctl bench
/// capture`, BENCHMARKS.md "Capture") and libv4lconvert's approximation ignores the 16…235 range
/// of Y.
public enum YUYVConverter {
    /// Converts `height` rows of `width` pixels. `sourceStride` and `destinationStride` are bytes
    /// per row; `width` must be even (YUYV packs pixel pairs).
    public static func convert(source: UnsafeRawBufferPointer, sourceStride: Int,
                               destination: UnsafeMutableBufferPointer<UInt8>, destinationStride: Int,
                               width: Int, height: Int) {
        precondition(width % 2 == 0, "YUYV width must be even")
        guard height > 0, width > 0 else { return }
        precondition(source.count >= sourceStride * (height - 1) + width * 2, "YUYV source too small")
        precondition(destination.count >= destinationStride * (height - 1) + width * 3, "RGB destination too small")
        guard let src = source.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let dst = destination.baseAddress else { return }
        let t = ConversionTables.shared
        let luma = t.luma, vToR = t.vToR, uToG = t.uToG, vToG = t.vToG, uToB = t.uToB, clamp = t.clamp
        for row in 0..<height {
            var s = src + row * sourceStride
            var d = dst + row * destinationStride
            let end = s + width * 2
            while s < end {
                let l0 = luma[Int(s[0])], l1 = luma[Int(s[2])]
                let u = Int(s[1]), v = Int(s[3])
                let r = vToR[v], g = uToG[u] &+ vToG[v], b = uToB[u]
                d[0] = clamp[Int((l0 &+ r) >> 14)]
                d[1] = clamp[Int((l0 &+ g) >> 14)]
                d[2] = clamp[Int((l0 &+ b) >> 14)]
                d[3] = clamp[Int((l1 &+ r) >> 14)]
                d[4] = clamp[Int((l1 &+ g) >> 14)]
                d[5] = clamp[Int((l1 &+ b) >> 14)]
                s += 4
                d += 6
            }
        }
    }
}

/// The lookup tables, built once and never freed (immutable after init, so shared by all threads).
private final class ConversionTables: @unchecked Sendable {
    static let shared = ConversionTables()

    // 255/219 · 2^14 and the BT.601 chroma terms scaled by 255/224 · 2^14.
    private static let yScale: Int32 = 19077   // 1.164
    private static let vToRScale: Int32 = 26149  // 1.596
    private static let uToGScale: Int32 = 6419   // 0.392
    private static let vToGScale: Int32 = 13320  // 0.813
    private static let uToBScale: Int32 = 33050  // 2.017
    /// (value >> 14) spans about -280…540; the clamp table is indexed from -clampOffset.
    private static let clampOffset = 384

    let luma: UnsafeMutablePointer<Int32>
    let vToR: UnsafeMutablePointer<Int32>
    let uToG: UnsafeMutablePointer<Int32>
    let vToG: UnsafeMutablePointer<Int32>
    let uToB: UnsafeMutablePointer<Int32>
    /// Points `clampOffset` entries into its allocation so negative indices are valid.
    let clamp: UnsafeMutablePointer<UInt8>

    private init() {
        func table(_ f: (Int32) -> Int32) -> UnsafeMutablePointer<Int32> {
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: 256)
            for i in 0..<256 { p[i] = f(Int32(i)) }
            return p
        }
        luma = table { ($0 - 16) * Self.yScale + 8192 }
        vToR = table { ($0 - 128) * Self.vToRScale }
        uToG = table { -($0 - 128) * Self.uToGScale }
        vToG = table { -($0 - 128) * Self.vToGScale }
        uToB = table { ($0 - 128) * Self.uToBScale }
        let c = UnsafeMutablePointer<UInt8>.allocate(capacity: 1024)
        for i in 0..<1024 { c[i] = UInt8(max(0, min(255, i - Self.clampOffset))) }
        clamp = c + Self.clampOffset
    }
}
