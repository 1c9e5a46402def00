import CBLAS

/// The rows rounded to bfloat16, the copy the scan reads on CPUs with AVX512_BF16: half the
/// bytes of float32 and twice the multiplies per instruction. The scan's ranking is therefore
/// approximate; `StoreSearch` widens its float64 re-ranking window by a bound built from the
/// rounding errors measured here, so search results stay exact (equal to a float64 brute force).
struct BFloat16Rows: @unchecked Sendable {
    // @unchecked: written once in init, read-only afterwards; the buffer is owned by this value.
    let buffer: HugePageBuffer
    let rows: UnsafePointer<UInt16>
    /// Elements per row: the dimension rounded up to 32 (one 64-byte vector), zero-padded.
    let stride: Int
    /// max over rows of |x - bf16(x)| / |x| (0 for zero rows), for the cosine bound.
    let maxRelativeError: Double
    /// max over rows of |x - bf16(x)|, for the L2 bound.
    let maxAbsoluteError: Double
    /// max over rows of |bf16(x)|.
    let maxRoundedNorm: Double
    /// max over rows of 1/|x| as the scan uses it (0 when all rows are zero).
    let maxInverseNorm: Double

    /// Whether this CPU runs the bfloat16 kernels (AVX-512F with AVX512_BF16).
    static let supported: Bool = beand_store_has_bf16() != 0

    static func stride(dimension: Int) -> Int { (dimension + 31) / 32 * 32 }

    /// nil when the CPU lacks the kernels, memory is short, or a value does not fit bfloat16's
    /// range (then the float32 scan serves this generation).
    init?(rows source: UnsafePointer<Float>, count: Int, dimension: Int, sourceStride: Int,
          inverseNorms: [Float]) {
        guard Self.supported, count > 0 else { return nil }
        let stride = Self.stride(dimension: dimension)
        guard let buffer = HugePageBuffer(byteCount: count * stride * 2) else { return nil }
        // Anonymous memory is zero-filled, so the padding after `dimension` is already +0.
        let rows = buffer.pointer.bindMemory(to: UInt16.self, capacity: count * stride)
        var maxRelative: Double = 0, maxAbsolute: Double = 0, maxRounded: Double = 0
        for row in 0..<count {
            var error2: Double = 0, norm2: Double = 0
            if beand_store_to_bf16(source + row * sourceStride, rows + row * stride, dimension, &error2, &norm2) != 0 {
                return nil
            }
            let error = error2.squareRoot()
            maxAbsolute = max(maxAbsolute, error)
            // 1/|x| from validation, float32-rounded: relative error ~1e-7, inside the bound's slack.
            maxRelative = max(maxRelative, error * Double(inverseNorms[row]))
            maxRounded = max(maxRounded, norm2.squareRoot())
        }
        self.buffer = buffer
        self.rows = UnsafePointer(rows)
        self.stride = stride
        self.maxRelativeError = maxRelative
        self.maxAbsoluteError = maxAbsolute
        self.maxRoundedNorm = maxRounded
        self.maxInverseNorm = Double(inverseNorms.max() ?? 0)
    }
}
