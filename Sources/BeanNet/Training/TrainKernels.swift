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

    /// One channel of batch normalisation: y = gamma·(x − mean)·invStd + beta, keeping x̂ if asked.
    static func normalizeChannel(_ x: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>, _ xhat: UnsafeMutablePointer<Float>?,
                                 batch: Int, channels: Int, plane: Int, channel c: Int,
                                 mean: Float, invStd: Float, gamma: Float, beta: Float) {
        guard let x else { return }
        for b in 0..<batch {
            let off = (b * channels + c) * plane
            let src = x + off, dst = y + off
            if let xhat {
                let h = xhat + off
                for i in 0..<plane { let v = (src[i] - mean) * invStd; h[i] = v; dst[i] = gamma * v + beta }
            } else {
                for i in 0..<plane { dst[i] = gamma * ((src[i] - mean) * invStd) + beta }
            }
        }
    }

    /// (Σ dy, Σ dy·x̂) over one channel.
    static func channelSums(_ dy: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                            channel c: Int) -> (Float, Float) {
        var s = 0.0, sx = 0.0
        for b in 0..<batch {
            let off = (b * channels + c) * plane
            var ls: Float = 0, lsx: Float = 0
            for i in 0..<plane { ls += dy[off + i]; lsx += dy[off + i] * xhat[off + i] }
            s += Double(ls); sx += Double(lsx)
        }
        return (Float(s), Float(sx))
    }

    /// dx = scale·(dy − (Σdy + x̂·Σdy·x̂)/count) over one channel; count 0 means fixed statistics
    /// (dx = scale·dy).
    static func batchNormBackwardChannel(_ dy: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                         batch: Int, channels: Int, plane: Int, channel c: Int,
                                         scale: Float, sumDy: Float, sumDyXhat: Float, count: Int) {
        let meanDy = count > 0 ? sumDy / Float(count) : 0
        let meanDyXh = count > 0 ? sumDyXhat / Float(count) : 0
        for b in 0..<batch {
            let off = (b * channels + c) * plane
            for i in 0..<plane { dx[off + i] = scale * (dy[off + i] - meanDy - xhat[off + i] * meanDyXh) }
        }
    }
}
