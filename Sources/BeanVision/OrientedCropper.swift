import BeanCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a bean is cut out for the encoder.
public struct CropSettings: Sendable, Hashable {
    /// Side of the square crop in pixels (the encoder's input).
    public var size: Int = 64
    /// How the bean is scaled into the crop.
    public var scale: CropScale = .fit(margin: 1.15)
    /// Colour of every crop pixel that is not this bean.
    public var background: RGB = RGB(0, 0, 0)

    public init() {}

    public func validate() throws {
        guard (4...1024).contains(size) else { throw CropSettingsError(reason: "size must be 4…1024, got \(size)") }
        switch scale {
        case .fit(let margin):
            guard margin >= 1, margin.isFinite else { throw CropSettingsError(reason: "fit margin must be ≥ 1, got \(margin)") }
        case .fixed(let pixels):
            guard pixels > 0, pixels.isFinite else { throw CropSettingsError(reason: "fixed scale must be positive, got \(pixels)") }
        }
    }
}

public enum CropScale: Sendable, Hashable {
    /// The bean's length (equivalent-ellipse major axis) × margin fills the crop: every bean is
    /// shown as large as possible; its absolute size is lost.
    case fit(margin: Double)
    /// Frame pixels per crop pixel, the same for every bean: sizes stay comparable (a broken bean
    /// looks small).
    case fixed(framePixelsPerCropPixel: Double)
}

public struct CropSettingsError: Error, CustomStringConvertible, Equatable {
    public var reason: String
    public var description: String { "crop setting: \(reason)" }
}

extension Segmenter {
    /// Cuts `bean` (found in `frame` by the last `segment` call) out of the frame, rotated so its
    /// major axis is horizontal, scaled as the settings say, bilinear, with every pixel outside
    /// its mask set to the background colour. Writes size × size RGB24 pixels into `pixels`
    /// (resized if needed, so a reused buffer does not allocate).
    public func orientedCrop(of bean: SegmentedBean, in frame: Frame, settings: CropSettings, into pixels: inout [UInt8]) {
        let size = settings.size
        if pixels.count != size * size * 3 { pixels = [UInt8](repeating: 0, count: size * size * 3) }
        let scale: Double
        switch settings.scale {
        case .fit(let margin): scale = max(1, bean.majorAxis, bean.minorAxis) * margin / Double(size)
        case .fixed(let s): scale = s
        }
        let c = cos(bean.angle), s = sin(bean.angle)
        let half = Double(size) / 2
        let bpp = frame.format.bytesPerPixel, stride = frame.stride
        let w = frame.width, h = frame.height
        let bg = settings.background
        let label = bean.label, labelWidth = self.labelWidth
        // Runs once per decided bean on the camera's thread (thousands a second): raw pointers and
        // no libm call per pixel. Results equal the plain Double version's (same arithmetic).
        frame.pixels.withUnsafeBufferPointer { srcBuffer in
            labels.withUnsafeBufferPointer { labelBuffer in
                pixels.withUnsafeMutableBufferPointer { outBuffer in
                    guard let src = srcBuffer.baseAddress, let labelMap = labelBuffer.baseAddress,
                          let out = outBuffer.baseAddress else { return }
                    let maxX = Double(w - 1), maxY = Double(h - 1)
                    for v in 0..<size {
                        let pv = (Double(v) + 0.5 - half) * scale
                        var o = v * size * 3
                        for u in 0..<size {
                            // Crop (u, v) → bean frame (major axis along u) → image.
                            let pu = (Double(u) + 0.5 - half) * scale
                            let x = bean.centroidX + pu * c - pv * s
                            let y = bean.centroidY + pu * s + pv * c
                            defer { o += 3 }
                            let nx = Self.floor(x), ny = Self.floor(y)
                            guard nx >= 0, ny >= 0, nx < w, ny < h, labelMap[ny * labelWidth + nx] == label else {
                                out[o] = bg.red; out[o + 1] = bg.green; out[o + 2] = bg.blue
                                continue
                            }
                            // Bilinear over the pixel centres, clamped at the frame edge.
                            let fx = max(0, min(maxX, x - 0.5)), fy = max(0, min(maxY, y - 0.5))
                            let x0 = Int(fx), y0 = Int(fy)
                            let x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1)
                            let ax = fx - Double(x0), ay = fy - Double(y0)
                            let r0 = src + y0 * stride, r1 = src + y1 * stride
                            let i0 = x0 * bpp, i1 = x1 * bpp
                            for ch in 0..<3 {
                                let k = bpp == 3 ? ch : 0
                                let p00 = Double(r0[i0 + k]), p10 = Double(r0[i1 + k])
                                let p01 = Double(r1[i0 + k]), p11 = Double(r1[i1 + k])
                                let top = p00 + (p10 - p00) * ax, bottom = p01 + (p11 - p01) * ax
                                // Non-negative, so +0.5 and truncation round half away from zero.
                                out[o + ch] = UInt8(truncatingIfNeeded: Int(max(0, min(255, top + (bottom - top) * ay)) + 0.5))
                            }
                        }
                    }
                }
            }
        }
    }

    /// ⌊x⌋ without a libm call (coordinates are far inside Int's range).
    @inline(__always)
    private static func floor(_ x: Double) -> Int {
        let t = Int(x)
        return Double(t) > x ? t - 1 : t
    }

    /// The crop as the encoder's input type.
    public func beanCrop(of bean: SegmentedBean, in frame: Frame, beanID: UInt64, settings: CropSettings) -> BeanCrop {
        var pixels: [UInt8] = []
        orientedCrop(of: bean, in: frame, settings: settings, into: &pixels)
        return BeanCrop(camera: frame.camera, frameSequence: frame.sequence, captured: frame.captured, beanID: beanID,
                        width: settings.size, height: settings.size, pixels: pixels)
    }
}
