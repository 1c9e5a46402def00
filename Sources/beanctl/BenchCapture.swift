import ArgumentParser
import BeanCapture
import BeanCore

/// `beanctl bench capture`: the per-frame cost of what capture does to a frame on its thread —
/// YUYV→RGB24 natively and through libv4lconvert (the peer), the RGB24 row copy out of a driver
/// buffer, and belt-simulator frame generation.
struct BenchCapture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Measure capture overhead per frame: YUYV→RGB24 (native vs libv4lconvert), belt simulator."
    )

    @Option(help: "Frame width in pixels (even).") var width = 1280
    @Option(help: "Frame height in pixels.") var height = 720
    @Option(help: "Seconds to spend on each measurement.") var seconds = 2.0
    @Option(help: "Photo for the belt simulator (JPEG/PNG); a generated 1920x2400 pattern when absent.")
    var photo: String?
    @Flag(help: "Print one JSON object instead of aligned text.") var json = false

    func validate() throws {
        guard width >= 16, width % 2 == 0, height >= 16 else { throw ValidationError("width must be even and ≥ 16, height ≥ 16") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        let yuyv = Self.testPattern(width: width, height: height)
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        let w = width, h = height

        guard let converter = LibV4LConverter(width: width, height: height) else {
            throw ValidationError("libv4lconvert could not create an offline converter")
        }
        var failed = false
        // Interleaved so both see the same load on a shared machine.
        let (native, libv4l) = Self.measurePair(seconds: 2 * seconds, {
            yuyv.withUnsafeBytes { src in
                rgb.withUnsafeMutableBufferPointer { dst in
                    YUYVConverter.convert(source: src, sourceStride: w * 2, destination: dst,
                                          destinationStride: w * 3, width: w, height: h)
                }
            }
        }, {
            yuyv.withUnsafeBytes { src in
                rgb.withUnsafeMutableBytes { dst in failed = !converter.convert(src, into: dst) || failed }
            }
        })
        if failed { throw ValidationError("libv4lconvert failed: \(converter.lastError)") }

        // What the camera does with a native RGB24 buffer: copy rows out of the mmap'ed buffer.
        let driverBuffer = [UInt8](repeating: 90, count: width * height * 3)
        let copy = Self.measure(seconds: seconds) {
            driverBuffer.withUnsafeBufferPointer { src in
                rgb.withUnsafeMutableBufferPointer { dst in
                    for row in 0..<h {
                        (dst.baseAddress! + row * w * 3).update(from: src.baseAddress! + row * w * 3, count: w * 3)
                    }
                }
            }
        }

        let still: Frame
        if let photo { still = try ImageCodec.decode(path: photo) } else {
            still = Frame(camera: "pattern", sequence: 0, captured: .now(), width: 1920, height: 2400, format: .rgb24,
                          pixels: (0..<(1920 * 2400 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
        }
        let belt = try BeltSimulator(name: "bench", photo: still,
                                     settings: .init(windowWidth: width, windowHeight: height, beltSpeed: 600, fps: 60, wrap: true),
                                     pacing: .unpaced)
        var beltFailure: Error?
        let beltCost = Self.measure(seconds: seconds) {
            // Frames are dropped at once, as a consumer keeping up would: the ring reuses buffers.
            do { _ = try belt.nextFrame() } catch { beltFailure = error }
        }
        if let beltFailure { throw beltFailure }

        let ratio = libv4l / native
        if json {
            print("{\"bench\":\"capture\",\"width\":\(width),\"height\":\(height),"
                  + "\"yuyv_native_ms\":\(Self.fixed(native * 1e3, 3)),\"yuyv_libv4lconvert_ms\":\(Self.fixed(libv4l * 1e3, 3)),"
                  + "\"libv4lconvert_over_native\":\(Self.fixed(ratio, 2)),\"rgb24_copy_ms\":\(Self.fixed(copy * 1e3, 3)),"
                  + "\"belt_frame_ms\":\(Self.fixed(beltCost * 1e3, 3)),\"belt_photo\":\"\(still.width)x\(still.height)\"}")
        } else {
            let rows: [(String, String)] = [
                ("Frame", "\(width)x\(height)"),
                ("YUYV→RGB24 native", "\(Self.fixed(native * 1e3, 3)) ms/frame (\(Self.fixed(1 / native, 0)) frames/s)"),
                ("YUYV→RGB24 libv4lconvert", "\(Self.fixed(libv4l * 1e3, 3)) ms/frame (\(Self.fixed(1 / libv4l, 0)) frames/s)"),
                ("libv4lconvert / native", "\(Self.fixed(ratio, 2))x"),
                ("RGB24 row copy", "\(Self.fixed(copy * 1e3, 3)) ms/frame"),
                ("Belt simulator frame", "\(Self.fixed(beltCost * 1e3, 3)) ms/frame (photo \(still.width)x\(still.height))"),
            ]
            let pad = rows.map(\.0.count).max() ?? 0
            for (key, value) in rows { print(key + String(repeating: " ", count: pad - key.count) + " : " + value) }
        }
    }

    /// Seconds per call of `a` and of `b`: medians of alternating timed batches after a warm-up.
    static func measurePair(seconds: Double, _ a: () -> Void, _ b: () -> Void) -> (Double, Double) {
        for _ in 0..<3 { a(); b() }
        var samplesA: [Double] = [], samplesB: [Double] = []
        let start = MonotonicInstant.now()
        while MonotonicInstant.now().seconds(since: start) < seconds || samplesA.count < 5 {
            samplesA.append(batch(a))
            samplesB.append(batch(b))
        }
        return (median(samplesA), median(samplesB))
    }

    /// Seconds per call of `body`, the median of timed batches after a warm-up.
    static func measure(seconds: Double, _ body: () -> Void) -> Double {
        for _ in 0..<3 { body() }
        var samples: [Double] = []
        let start = MonotonicInstant.now()
        while MonotonicInstant.now().seconds(since: start) < seconds || samples.count < 5 {
            samples.append(batch(body))
        }
        return median(samples)
    }

    static func batch(_ body: () -> Void) -> Double {
        let t0 = MonotonicInstant.now()
        for _ in 0..<5 { body() }
        return MonotonicInstant.now().seconds(since: t0) / 5
    }

    static func median(_ samples: [Double]) -> Double { samples.sorted()[samples.count / 2] }
    /// A YUYV frame with varying luma and chroma (so no branch predictor sees a constant).
    static func testPattern(width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 2)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 2
                out[i] = UInt8(16 + (x + y) % 220)
                out[i + 1] = UInt8(truncatingIfNeeded: x % 2 == 0 ? 64 + (y % 128) : 192 - (x % 128))
            }
        }
        return out
    }

    static func fixed(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        if decimals == 0 { return String(Int(rounded)) }
        let whole = Int(rounded)
        let fraction = Int(((abs(rounded) - Double(abs(whole))) * scale).rounded())
        let digits = String(fraction)
        return "\(whole).\(String(repeating: "0", count: max(0, decimals - digits.count)) + digits)"
    }
}
