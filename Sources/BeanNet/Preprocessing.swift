import BeanCore

/// Turns an RGB24 crop into the encoder's NCHW float input: bilinear resize (half-pixel centres) to
/// the model's height × width, scale to [0, 1], then per-channel (x − mean) / std.
/// Defaults are the ImageNet statistics torchvision models are trained with.
public struct Preprocessing: Sendable, Equatable {
    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float] = Preprocessing.imagenetMean, std: [Float] = Preprocessing.imagenetStd) {
        self.mean = mean
        self.std = std
    }

    public func validate() throws {
        guard mean.count == 3, std.count == 3 else {
            throw ModelError(.usage, "preprocessing needs 3 means and 3 stds (RGB), got \(mean.count) and \(std.count)")
        }
        guard std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw ModelError(.usage, "preprocessing std must be positive and finite: \(std)")
        }
    }

    public static func check(_ crop: BeanCrop) throws {
        guard crop.width > 0, crop.height > 0, crop.pixels.count == crop.width * crop.height * 3 else {
            throw ModelError(.usage, "crop of bean \(crop.beanID) from camera '\(crop.camera)': \(crop.width)×\(crop.height) RGB24 needs \(max(crop.width * crop.height * 3, 0)) bytes, has \(crop.pixels.count)")
        }
    }

    /// Writes 3 × height × width floats (planar RGB) for `crop` at `dst`. The crop must pass `check`.
    public func write(_ crop: BeanCrop, width: Int, height: Int, into dst: UnsafeMutablePointer<Float>) {
        let sw = crop.width, sh = crop.height
        let scaleX = Float(sw) / Float(width), scaleY = Float(sh) / Float(height)
        let plane = width * height
        let inv: (Float, Float, Float) = (1 / (255 * std[0]), 1 / (255 * std[1]), 1 / (255 * std[2]))
        let off: (Float, Float, Float) = (mean[0] / std[0], mean[1] / std[1], mean[2] / std[2])
        crop.pixels.withUnsafeBufferPointer { px in
            for y in 0..<height {
                let fy = max((Float(y) + 0.5) * scaleY - 0.5, 0)
                let y0 = min(Int(fy), sh - 1), y1 = min(y0 + 1, sh - 1)
                let wy = fy - Float(y0)
                for x in 0..<width {
                    let fx = max((Float(x) + 0.5) * scaleX - 0.5, 0)
                    let x0 = min(Int(fx), sw - 1), x1 = min(x0 + 1, sw - 1)
                    let wx = fx - Float(x0)
                    let i00 = (y0 * sw + x0) * 3, i01 = (y0 * sw + x1) * 3, i10 = (y1 * sw + x0) * 3, i11 = (y1 * sw + x1) * 3
                    for c in 0..<3 {
                        let top = Float(px[i00 + c]) * (1 - wx) + Float(px[i01 + c]) * wx
                        let bottom = Float(px[i10 + c]) * (1 - wx) + Float(px[i11 + c]) * wx
                        let v = top * (1 - wy) + bottom * wy
                        let (s, o) = c == 0 ? (inv.0, off.0) : c == 1 ? (inv.1, off.1) : (inv.2, off.2)
                        dst[c * plane + y * width + x] = v * s - o
                    }
                }
            }
        }
    }
}
