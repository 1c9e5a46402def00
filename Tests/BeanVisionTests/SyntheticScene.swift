import BeanCore
@testable import BeanVision
#if canImport(Glibc)
import Glibc
#endif

/// A drawn bean: a filled ellipse, optionally with a darker crease along its major axis.
struct DrawnBean {
    var x: Double
    var y: Double
    /// Semi-axes.
    var a: Double
    var b: Double
    /// Radians, major axis from +x, y down.
    var angle: Double
    var colour: RGB = RGB(90, 80, 50)
    var crease = false
    var lane = 0

    func contains(_ px: Double, _ py: Double) -> Bool {
        let dx = px - x, dy = py - y
        let u = dx * cos(angle) + dy * sin(angle)
        let v = -dx * sin(angle) + dy * cos(angle)
        return (u * u) / (a * a) + (v * v) / (b * b) <= 1
    }
}

/// Paints beans onto a belt of one colour with a little deterministic noise.
struct SyntheticScene {
    var width: Int
    var height: Int
    var belt = RGB(200, 205, 200)
    var beans: [DrawnBean] = []
    var noise: Int = 6

    /// The frame seen through a window whose top edge lies at `offsetY` of the scene (the scene
    /// scrolls up through the window as the offset decreases, so beans move down).
    func frame(offsetY: Int = 0, windowHeight: Int? = nil, sequence: UInt64 = 0,
               captured: MonotonicInstant = MonotonicInstant(nanoseconds: 0)) -> Frame {
        let h = windowHeight ?? height
        var pixels = [UInt8](repeating: 0, count: width * h * 3)
        var seed: UInt32 = 12345 &+ UInt32(truncatingIfNeeded: offsetY) &* 7919
        func jitter() -> Int {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            return noise == 0 ? 0 : Int(seed >> 16) % (2 * noise + 1) - noise
        }
        for y in 0..<h {
            for x in 0..<width {
                let o = (y * width + x) * 3
                pixels[o] = clamp(Int(belt.red) + jitter())
                pixels[o + 1] = clamp(Int(belt.green) + jitter())
                pixels[o + 2] = clamp(Int(belt.blue) + jitter())
            }
        }
        for bean in beans {
            let sy = Double(offsetY)
            let r = max(bean.a, bean.b) + 1
            let y0 = max(0, Int(bean.y - sy - r)), y1 = min(h - 1, Int(bean.y - sy + r))
            let x0 = max(0, Int(bean.x - r)), x1 = min(width - 1, Int(bean.x + r))
            guard y0 <= y1, x0 <= x1 else { continue }
            for y in y0...y1 {
                for x in x0...x1 where bean.contains(Double(x) + 0.5, Double(y) + 0.5 + sy) {
                    let o = (y * width + x) * 3
                    var c = bean.colour
                    if bean.crease {
                        let dx = Double(x) + 0.5 - bean.x, dy = Double(y) + 0.5 + sy - bean.y
                        let v = -dx * sin(bean.angle) + dy * cos(bean.angle)
                        if abs(v) < 1.2 { c = RGB(c.red / 2, c.green / 2, c.blue / 2) }
                    }
                    pixels[o] = clamp(Int(c.red) + jitter())
                    pixels[o + 1] = clamp(Int(c.green) + jitter())
                    pixels[o + 2] = clamp(Int(c.blue) + jitter())
                }
            }
        }
        return Frame(camera: "synthetic", sequence: sequence, captured: captured, width: width, height: h,
                     format: .rgb24, pixels: pixels)
    }

    private func clamp(_ v: Int) -> UInt8 { UInt8(max(0, min(255, v))) }
}

/// A deterministic random number generator for scene layouts.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Belt settings for synthetic scenes: the belt colour is configured, beans stay whole.
func syntheticSettings() -> SegmenterSettings {
    var s = SegmenterSettings()
    s.background = .colour(RGB(200, 205, 200))
    s.minArea = 80
    return s
}
