import Foundation

/// Bean crops as the trainer holds them: square RGB24 images (what `PhotoCropper` and the daemon's
/// vision thread make), back to back.
public struct CropImages: Sendable {
    public let size: Int
    public let pixels: [UInt8]
    public var count: Int { pixels.count / max(bytesPerImage, 1) }
    public var bytesPerImage: Int { size * size * 3 }

    public init(size: Int, pixels: [UInt8]) throws {
        guard size > 0 else { throw TrainingError("crop size must be positive, got \(size)") }
        guard pixels.count % (size * size * 3) == 0 else {
            throw TrainingError("\(pixels.count) bytes are not a whole number of \(size)×\(size) RGB crops")
        }
        self.size = size
        self.pixels = pixels
    }

    /// The crops at `indices`, in that order.
    public func subset(_ indices: [Int]) -> CropImages {
        var out = [UInt8]()
        out.reserveCapacity(indices.count * bytesPerImage)
        for i in indices { out += pixels[i * bytesPerImage..<(i + 1) * bytesPerImage] }
        // The byte count is a whole number of crops by construction.
        return CropImages(unchecked: size, out)
    }

    private init(unchecked size: Int, _ pixels: [UInt8]) {
        self.size = size
        self.pixels = pixels
    }
}

/// A failure of the training recipe (bad data, bad options), with what it is about.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Random changes the encoder should not care about. The crops are already rotated so the bean's
/// major axis is horizontal, which leaves four poses: as is, mirrored left-right, mirrored
/// top-bottom and turned 180°; the photo sessions differ in lighting, hence brightness and colour
/// gains. Gains multiply, so the masked background stays black as the daemon makes it.
public struct Augmentation: Sendable, Equatable {
    /// Random left-right and top-bottom mirroring (both together = 180° rotation).
    public var flips: Bool
    /// Brightness gain drawn from [1 − b, 1 + b].
    public var brightness: Float
    /// Extra per-channel gain drawn from [1 − c, 1 + c].
    public var colour: Float
    /// Random shift of up to this many pixels in x and y (the segmenter's centring wobbles).
    public var shift: Int
    /// Random magnification drawn from [1, 1 + zoom], of a window placed at random inside the crop
    /// (nearest-neighbour), as a random-resized crop does: two views of a bean then show different
    /// parts of it at different scales. 0 = off.
    public var zoom: Float
    /// Random rotation about the crop's centre by an angle drawn from [−r, r] degrees (nearest
    /// neighbour; corners that come from outside the crop are background). The crops are already
    /// turned to the bean's major axis, so this covers the wobble of that estimate. 0 = off.
    public var rotation: Float

    public init(flips: Bool = true, brightness: Float = 0.15, colour: Float = 0.05, shift: Int = 2, zoom: Float = 0,
                rotation: Float = 0) {
        self.flips = flips; self.brightness = brightness; self.colour = colour; self.shift = shift; self.zoom = zoom
        self.rotation = rotation
    }

    public static let none = Augmentation(flips: false, brightness: 0, colour: 0, shift: 0)
}

/// Crop bytes → the encoder's normalised NCHW input, as `Preprocessing` does at run time (the crop
/// already has the encoder's size, so no resize), optionally with augmentation.
public struct CropTensorizer: Sendable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float] = Preprocessing.imagenetMean, std: [Float] = Preprocessing.imagenetStd) {
        self.mean = mean
        self.std = std
    }

    /// One pose of the four (bit 0: mirror left-right, bit 1: mirror top-bottom), no other change.
    public func batch(_ images: CropImages, indices: [Int], poses: [Int]) -> Tensor {
        precondition(poses.count == indices.count, "CropTensorizer: \(poses.count) poses for \(indices.count) crops")
        let s = images.size
        var out = Tensor(zeros: [indices.count, 3, s, s])
        out.data.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            for (k, i) in indices.enumerated() {
                write(images, i, pose: poses[k], gains: (1, 1, 1), dx: 0, dy: 0, into: base + k * 3 * s * s)
            }
        }
        return out
    }

    /// Each crop with its own random augmentation drawn from `rng`; `pose` fixes the mirroring.
    public func batch(_ images: CropImages, indices: [Int], augmentation: Augmentation, rng: inout SeededRandom,
                      pose fixedPose: Int? = nil) -> Tensor {
        let s = images.size
        var out = Tensor(zeros: [indices.count, 3, s, s])
        out.data.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            for (k, i) in indices.enumerated() {
                let pose = fixedPose ?? (augmentation.flips ? Int(rng.next() & 3) : 0)
                let g = randomGains(augmentation, rng: &rng)
                let span = 2 * augmentation.shift + 1
                let dx = augmentation.shift > 0 ? Int(rng.next() % UInt64(span)) - augmentation.shift : 0
                let dy = augmentation.shift > 0 ? Int(rng.next() % UInt64(span)) - augmentation.shift : 0
                var window = Window.whole
                if augmentation.zoom > 0 {
                    // A window of side s/z whose centre stays far enough inside for it to fit.
                    let z = 1 + rng.uniform() * augmentation.zoom
                    let slack = Float(s) / 2 * (1 - 1 / z)
                    window = Window(magnification: z, centreX: (rng.uniform() * 2 - 1) * slack,
                                    centreY: (rng.uniform() * 2 - 1) * slack)
                }
                if augmentation.rotation > 0 {
                    window.angle = (rng.uniform() * 2 - 1) * augmentation.rotation * .pi / 180
                }
                write(images, i, pose: pose, gains: g, dx: dx, dy: dy, window: window, into: base + k * 3 * s * s)
            }
        }
        return out
    }

    /// Local views for multi-crop pre-training: `views` views of each crop (row v × count + k is
    /// view v of `indices[k]`), each `side` × `side` pixels showing a square of `fraction` of the
    /// crop's side drawn from [`fractionRange`], placed at random in the crop's middle (where
    /// the bean is: the crop is centred on it, major axis horizontal), with the mirrors and colour
    /// changes of `augmentation` (no zoom, shift or rotation). A view of half the crop's side at
    /// half the output side shows the bean's texture at the crop's own resolution.
    public func localBatch(_ images: CropImages, indices: [Int], views: Int, side: Int,
                           fractionRange: ClosedRange<Float>, augmentation: Augmentation,
                           rng: inout SeededRandom) -> Tensor {
        let s = images.size
        var out = Tensor(zeros: [views * indices.count, 3, side, side])
        out.data.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            for v in 0..<views {
                for (k, i) in indices.enumerated() {
                    let pose = augmentation.flips ? Int(rng.next() & 3) : 0
                    let gains = randomGains(augmentation, rng: &rng)
                    let fraction = fractionRange.lowerBound + rng.uniform() * (fractionRange.upperBound - fractionRange.lowerBound)
                    let slack = Float(s) / 2 * (1 - fraction)
                    let window = Window(magnification: Float(side) / (fraction * Float(s)),
                                        centreX: (rng.uniform() * 2 - 1) * slack * 0.7,
                                        centreY: (rng.uniform() * 2 - 1) * slack * 0.5)
                    write(images, i, pose: pose, gains: gains, dx: 0, dy: 0, window: window, side: side,
                          into: base + (v * indices.count + k) * 3 * side * side)
                }
            }
        }
        return out
    }

    private func randomGains(_ augmentation: Augmentation, rng: inout SeededRandom) -> (Float, Float, Float) {
        let b = 1 + (rng.uniform() * 2 - 1) * augmentation.brightness
        return (b * (1 + (rng.uniform() * 2 - 1) * augmentation.colour),
                b * (1 + (rng.uniform() * 2 - 1) * augmentation.colour),
                b * (1 + (rng.uniform() * 2 - 1) * augmentation.colour))
    }

    /// The part of the crop a view shows: magnified `magnification` times (output pixels per crop
    /// pixel) about the crop's centre moved by (centreX, centreY) pixels, and turned by `angle`
    /// radians.
    struct Window {
        var magnification: Float
        var centreX: Float
        var centreY: Float
        var angle: Float = 0
        static let whole = Window(magnification: 1, centreX: 0, centreY: 0)
        var isWhole: Bool { magnification == 1 && angle == 0 && centreX == 0 && centreY == 0 }
    }

    /// Writes one view, `side` × `side` (default: the crop's size), into `dst` (CHW).
    private func write(_ images: CropImages, _ index: Int, pose: Int, gains: (Float, Float, Float), dx: Int, dy: Int,
                       window: Window = .whole, side: Int? = nil, into dst: UnsafeMutablePointer<Float>) {
        let s = images.size, out = side ?? s, plane = out * out
        let base = index * images.bytesPerImage
        let scale = (gains.0 / (255 * std[0]), gains.1 / (255 * std[1]), gains.2 / (255 * std[2]))
        let offset = (mean[0] / std[0], mean[1] / std[1], mean[2] / std[2])
        let (cosine, sine) = (cos(window.angle), sin(window.angle))
        let mapped = !window.isWhole || out != s
        images.pixels.withUnsafeBufferPointer { px in
            for y in 0..<out {
                for x in 0..<out {
                    // Source pixel: undo the shift, the window (rotation, magnification), then the mirrors.
                    var sx = x - dx, sy = y - dy
                    if mapped {
                        let half = Float(s) / 2, outHalf = Float(out) / 2
                        let u = Float(sx) + 0.5 - outHalf, v = Float(sy) + 0.5 - outHalf
                        let (ru, rv) = (cosine * u + sine * v, -sine * u + cosine * v)
                        sx = Int((ru / window.magnification + half + window.centreX).rounded(.down))
                        sy = Int((rv / window.magnification + half + window.centreY).rounded(.down))
                    }
                    let outside = sx < 0 || sy < 0 || sx >= s || sy >= s
                    if pose & 1 != 0 { sx = s - 1 - sx }
                    if pose & 2 != 0 { sy = s - 1 - sy }
                    let o = y * out + x
                    if outside {
                        dst[o] = -offset.0; dst[plane + o] = -offset.1; dst[2 * plane + o] = -offset.2
                        continue
                    }
                    let p = base + (sy * s + sx) * 3
                    dst[o] = min(Float(px[p]) * scale.0, 1 / std[0]) - offset.0
                    dst[plane + o] = min(Float(px[p + 1]) * scale.1, 1 / std[1]) - offset.1
                    dst[2 * plane + o] = min(Float(px[p + 2]) * scale.2, 1 / std[2]) - offset.2
                }
            }
        }
    }
}
