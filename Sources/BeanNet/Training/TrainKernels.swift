import Foundation

/// Layout and reduction loops shared by the training layers (pointer-based so they vectorise).
enum TrainKernels {
    /// [C, N, plane] → [N, C, plane], adding bias[c].
    static func channelsFirstToBatchFirst(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                          batch: Int, channels: Int, plane: Int, bias: UnsafePointer<Float>) {
        let cols = batch * plane
        for s in 0..<batch {
            for c in 0..<channels {
                let from = src + c * cols + s * plane
                let to = dst + (s * channels + c) * plane
                let b = bias[c]
                for i in 0..<plane { to[i] = from[i] + b }
            }
        }
    }

    /// [N, C, plane] → [C, N, plane].
    static func batchFirstToChannelsFirst(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                          batch: Int, channels: Int, plane: Int) {
        let cols = batch * plane
        for s in 0..<batch {
            for c in 0..<channels {
                (dst + c * cols + s * plane).update(from: src + (s * channels + c) * plane, count: plane)
            }
        }
    }

    /// into[r] += Σ_c m[r, c].
    static func addRowSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = m + r * cols
            var s: Float = 0
            for i in 0..<cols { s += row[i] }
            into[r] += s
        }
    }
}
