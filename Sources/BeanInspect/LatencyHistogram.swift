/// A fixed-memory log-linear histogram of durations in microseconds (HdrHistogram-style).
///
/// Values below 64 µs have a bucket each; above, every power-of-two octave [2^e, 2^(e+1)) is split
/// into 32 equal buckets, so any recorded value is within 1/32 (3.1 %) of its bucket's bounds.
/// Values of 2^36 µs (≈ 19 h) and more land in the last bucket. 1,024 counters, allocated once;
/// `record` never allocates.
public struct LatencyHistogram: Sendable, Hashable {
    static let linearBits = 6
    static let linearCount = 1 << linearBits            // 64
    static let subBuckets = linearCount / 2              // 32 per octave
    static let maxExponent = 35                          // last octave [2^35, 2^36)
    public static let bucketCount = linearCount + (maxExponent - linearBits + 1) * subBuckets  // 1024

    public private(set) var counts: [UInt64]
    public private(set) var total: UInt64 = 0

    public init() {
        counts = Array(repeating: 0, count: Self.bucketCount)
    }

    public mutating func record(microseconds value: UInt64) {
        counts[Self.bucketIndex(value)] += 1
        total += 1
    }

    public mutating func reset() {
        for index in counts.indices { counts[index] = 0 }
        total = 0
    }

    static func bucketIndex(_ value: UInt64) -> Int {
        if value < UInt64(linearCount) { return Int(value) }
        let exponent = UInt64.bitWidth - 1 - value.leadingZeroBitCount
        guard exponent <= maxExponent else { return bucketCount - 1 }
        let shift = exponent - linearBits + 1
        let sub = Int(value >> UInt64(shift)) - subBuckets
        return linearCount + (exponent - linearBits) * subBuckets + sub
    }

    /// Inclusive upper bound of a bucket in microseconds.
    static func upperBound(ofBucket index: Int) -> UInt64 {
        if index < linearCount { return UInt64(index) }
        let octave = (index - linearCount) / subBuckets
        let sub = (index - linearCount) % subBuckets
        let exponent = octave + linearBits
        let width = UInt64(1) << UInt64(exponent - linearBits + 1)
        return (UInt64(1) << UInt64(exponent)) + UInt64(sub + 1) * width - 1
    }

    /// The q-quantile (0 < q ≤ 1) over this histogram and `other` combined, as the upper bound of
    /// the bucket holding it (never below the true value); nil when both are empty.
    public func quantile(_ q: Double, mergedWith other: LatencyHistogram? = nil) -> UInt64? {
        let combined = total + (other?.total ?? 0)
        guard combined > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(combined)).rounded(.up)))
        var seen: UInt64 = 0
        for index in 0..<Self.bucketCount {
            seen += counts[index] + (other?.counts[index] ?? 0)
            if seen >= rank { return Self.upperBound(ofBucket: index) }
        }
        return Self.upperBound(ofBucket: Self.bucketCount - 1)
    }
}
