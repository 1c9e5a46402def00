import Testing
@testable import BeanCapture

@Suite struct YUYVConverterTests {
    /// BT.601 limited-range R'G'B' → Y'CbCr, in floating point: the forward transform the
    /// converter must invert.
    func yuv(_ r: Double, _ g: Double, _ b: Double) -> (UInt8, UInt8, UInt8) {
        let y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
        let u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
        let v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
        return (UInt8(y.rounded()), UInt8(u.rounded()), UInt8(v.rounded()))
    }

    func convert(_ yuyv: [UInt8], width: Int, height: Int, sourceStride: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        yuyv.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                YUYVConverter.convert(source: src, sourceStride: sourceStride, destination: dst,
                                      destinationStride: width * 3, width: width, height: height)
            }
        }
        return out
    }

    @Test func invertsBT601ForPrimariesAndGreys() {
        let colours: [(UInt8, UInt8, UInt8)] = [
            (0, 0, 0), (255, 255, 255), (191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
            (191, 0, 191), (191, 0, 0), (0, 0, 191), (120, 80, 40), (30, 200, 90),
        ]
        for c in colours {
            let (y, u, v) = yuv(Double(c.0), Double(c.1), Double(c.2))
            let rgb = convert([y, u, y, v], width: 2, height: 1, sourceStride: 4)
            for (got, want) in zip(rgb, [c.0, c.1, c.2, c.0, c.1, c.2]) {
                #expect(abs(Int(got) - Int(want)) <= 2, "colour \(c) converted to \(rgb)")
            }
        }
    }

    @Test func clampsOutOfRangeInput() {
        // Y' above 235 with extreme chroma would overflow 8 bits without clamping.
        let rgb = convert([255, 255, 255, 255], width: 2, height: 1, sourceStride: 4)
        #expect(rgb[0] == 255 && rgb[2] == 255)
        let dark = convert([0, 0, 0, 0], width: 2, height: 1, sourceStride: 4)
        #expect(dark[0] == 0 && dark[2] == 0)
    }

    @Test func pixelPairsShareChromaButKeepTheirLuma() {
        let (y0, u, v) = yuv(200, 50, 50)
        let y1 = y0 - 30  // dark enough to differ, bright enough that no channel clamps
        let rgb = convert([y0, u, y1, v], width: 2, height: 1, sourceStride: 4)
        // Same chroma, so every channel differs by the luma step alone: 255/219 · (y0 - y1).
        let step = Double(Int(y0) - Int(y1)) * 255 / 219
        for c in 0..<3 {
            #expect(abs(Double(Int(rgb[c]) - Int(rgb[3 + c])) - step) <= 2, "channel \(c) of \(rgb)")
        }
    }

    @Test func honoursSourceStridePadding() {
        let (y, u, v) = yuv(0, 0, 191)
        // Two rows of one pixel pair each, 8 padding bytes per row filled with noise.
        let row: [UInt8] = [y, u, y, v] + [77, 77, 77, 77, 77, 77, 77, 77]
        let rgb = convert(row + row, width: 2, height: 2, sourceStride: 12)
        #expect(rgb.count == 12)
        for p in 0..<4 {
            #expect(rgb[p * 3] < 3 && rgb[p * 3 + 1] < 3 && abs(Int(rgb[p * 3 + 2]) - 191) <= 2)
        }
    }
}

@Suite struct LibV4LConverterTests {
    @Test func convertsBuffersWithoutADevice() throws {
        let converter = try #require(LibV4LConverter(width: 4, height: 2))
        // Neutral chroma: libv4lconvert copies luma to all three channels.
        let yuyv: [UInt8] = [50, 128, 100, 128, 150, 128, 200, 128,
                             10, 128, 20, 128, 30, 128, 40, 128]
        var rgb = [UInt8](repeating: 7, count: 24)
        let ok = yuyv.withUnsafeBytes { src in rgb.withUnsafeMutableBytes { converter.convert(src, into: $0) } }
        #expect(ok, "libv4lconvert: \(converter.lastError)")
        #expect(rgb == [50, 100, 150, 200, 10, 20, 30, 40].flatMap { [$0, $0, $0] })
    }
}
