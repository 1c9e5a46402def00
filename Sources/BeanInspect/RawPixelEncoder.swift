import BeanCore

/// The baseline "encoder" the learned ones are compared with: the crop downscaled to size × size
/// RGB by box averaging, scaled to [0, 1], flattened (row-major, RGB interleaved) and
/// L2-normalised, so a cosine or L2 kNN compares raw appearance.
public struct RawPixelEncoder: Sendable, Hashable {
    public let size: Int
    public var dimension: Int { size * size * 3 }
    /// Names this encoder in a store's fingerprint and in reports.
    public var fingerprint: String { "raw-pixels-\(size)x\(size)x3" }

    public init(size: Int = 16) throws {
        guard (1...256).contains(size) else { throw RawPixelEncoderError(size: size) }
        self.size = size
    }

    /// The embedding of one crop; an all-black crop gives the zero vector.
    public func embed(_ crop: BeanCrop) -> [Float] {
        var out = [Float](repeating: 0, count: dimension)
        let w = crop.width, h = crop.height
        guard w > 0, h > 0, crop.pixels.count >= w * h * 3 else { return out }
        for oy in 0..<size {
            // Source rows whose centres fall into this output row (at least one).
            let y0 = oy * h / size, y1 = max(y0 + 1, (oy + 1) * h / size)
            for ox in 0..<size {
                let x0 = ox * w / size, x1 = max(x0 + 1, (ox + 1) * w / size)
                var sum: (Int, Int, Int) = (0, 0, 0)
                for y in y0..<min(y1, h) {
                    var i = (y * w + x0) * 3
                    for _ in x0..<min(x1, w) {
                        sum.0 += Int(crop.pixels[i]); sum.1 += Int(crop.pixels[i + 1]); sum.2 += Int(crop.pixels[i + 2])
                        i += 3
                    }
                }
                let n = Float((min(y1, h) - y0) * (min(x1, w) - x0)) * 255
                let o = (oy * size + ox) * 3
                out[o] = Float(sum.0) / n
                out[o + 1] = Float(sum.1) / n
                out[o + 2] = Float(sum.2) / n
            }
        }
        let norm = out.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for i in out.indices { out[i] /= norm } }
        return out
    }
}

public struct RawPixelEncoderError: Error, CustomStringConvertible, Equatable {
    public var size: Int
    public var description: String { "raw pixel encoder size must be 1…256, got \(size)" }
}
