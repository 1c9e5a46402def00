import BeanCore
import Testing
@testable import BeanCapture

@Suite struct ImageCodecTests {
    let gradient = syntheticFrame(width: 37, height: 23) { x, y in
        (UInt8(x * 6), UInt8(y * 11), UInt8((x * y) % 256))
    }

    @Test func pngRoundTripIsLossless() throws {
        let bytes = try ImageCodec.encodePNG(gradient)
        #expect(ImageCodec.format(of: bytes) == .png)
        let decoded = try ImageCodec.decode(data: bytes, name: "g.png")
        #expect(decoded.width == 37 && decoded.height == 23 && decoded.format == .rgb24)
        #expect(decoded.pixels == gradient.pixels)
    }

    @Test func pngEncodeHonoursStride() throws {
        // The same image with 5 bytes of padding per row must encode to the same pixels.
        var padded = [UInt8]()
        for y in 0..<gradient.height {
            padded += gradient.pixels[y * 111 ..< (y + 1) * 111] + [9, 9, 9, 9, 9]
        }
        let frame = Frame(camera: "p", sequence: 0, captured: .now(), width: 37, height: 23, stride: 116,
                          format: .rgb24, pixels: padded)
        let decoded = try ImageCodec.decode(data: try ImageCodec.encodePNG(frame), name: "p.png")
        #expect(decoded.pixels == gradient.pixels)
    }

    @Test func grayPNGDecodesToEqualChannels() throws {
        let gray = Frame(camera: "g", sequence: 0, captured: .now(), width: 4, height: 2, format: .gray8,
                         pixels: [0, 50, 100, 150, 200, 250, 10, 20])
        let decoded = try ImageCodec.decode(data: try ImageCodec.encodePNG(gray), name: "gray.png")
        #expect(decoded.format == .rgb24)
        #expect(pixel(decoded, 1, 0) == [50, 50, 50])
        #expect(pixel(decoded, 3, 1) == [20, 20, 20])
    }

    @Test func jpegRoundTripIsClose() throws {
        let smooth = syntheticFrame(width: 64, height: 48) { x, y in (UInt8(x * 3), UInt8(y * 4), 128) }
        let bytes = try ImageCodec.encodeJPEG(smooth, quality: 95)
        #expect(ImageCodec.format(of: bytes) == .jpeg)
        let decoded = try ImageCodec.decode(data: bytes, name: "s.jpg")
        #expect(decoded.width == 64 && decoded.height == 48)
        let worst = zip(decoded.pixels, smooth.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
        #expect(worst <= 8)
    }

    @Test func fileWriteAndDecodeByContent() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        try ImageCodec.write(gradient, to: dir.file("a.png"))
        try ImageCodec.write(gradient, to: dir.file("b.JPG"), jpegQuality: 90)
        #expect(try ImageCodec.decode(path: dir.file("a.png")).pixels == gradient.pixels)
        #expect(try ImageCodec.decode(path: dir.file("b.JPG")).width == 37)
        // A PNG named .jpg is decoded by its content.
        try dir.write("really-png.jpg", try ImageCodec.encodePNG(gradient))
        #expect(try ImageCodec.decode(path: dir.file("really-png.jpg")).pixels == gradient.pixels)
    }

    @Test func truncatedJPEGIsAnErrorNamingTheFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let bytes = try ImageCodec.encodeJPEG(gradient)
        try dir.write("cut.jpg", Array(bytes.prefix(bytes.count / 2)))
        let error = #expect(throws: ImageCodecError.self) { try ImageCodec.decode(path: dir.file("cut.jpg")) }
        #expect(error?.kind == .corrupt)
        #expect(error?.description.contains(dir.file("cut.jpg")) == true)
    }

    @Test func garbageAfterJPEGSignatureIsCorrupt() throws {
        let error = #expect(throws: ImageCodecError.self) {
            try ImageCodec.decode(data: [0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37, 0x42, 0x42], name: "junk.jpg")
        }
        #expect(error?.kind == .corrupt)
        #expect(error?.description.hasPrefix("junk.jpg: corrupt JPEG") == true)
    }

    @Test func truncatedPNGIsCorrupt() throws {
        let bytes = try ImageCodec.encodePNG(gradient)
        let error = #expect(throws: ImageCodecError.self) {
            try ImageCodec.decode(data: Array(bytes.prefix(bytes.count - 20)), name: "cut.png")
        }
        #expect(error?.kind == .corrupt)
        #expect(error?.file == "cut.png")
    }

    @Test func unknownAndEmptyDataAreRejected() {
        let text = #expect(throws: ImageCodecError.self) { try ImageCodec.decode(data: Array("hello".utf8), name: "x.png") }
        #expect(text?.kind == .unknownFormat)
        let empty = #expect(throws: ImageCodecError.self) { try ImageCodec.decode(data: [], name: "e.png") }
        #expect(empty?.detail == "empty file")
    }

    @Test func missingFileAndDirectoryAreUnreadable() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let missing = #expect(throws: ImageCodecError.self) { try ImageCodec.decode(path: dir.file("nope.png")) }
        #expect(missing?.kind == .unreadable)
        #expect(missing?.file == dir.file("nope.png"))
        let directory = #expect(throws: ImageCodecError.self) { try ImageCodec.decode(path: dir.path) }
        #expect(directory?.detail == "not a regular file")
    }

    @Test func encodeRejectsWhatItCannotEncode() throws {
        let gray = Frame(camera: "g", sequence: 0, captured: .now(), width: 2, height: 1, format: .gray8, pixels: [1, 2])
        #expect(throws: ImageCodecError.self) { try ImageCodec.encodeJPEG(gray) }
        #expect(throws: ImageCodecError.self) { try ImageCodec.encodeJPEG(gradient, quality: 0) }
        let short = Frame(camera: "s", sequence: 0, captured: .now(), width: 10, height: 10, format: .rgb24, pixels: [0, 0, 0])
        let error = #expect(throws: ImageCodecError.self) { try ImageCodec.encodePNG(short, name: "short.png") }
        #expect(error?.kind == .unsupportedFrame)
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let badName = #expect(throws: ImageCodecError.self) { try ImageCodec.write(gradient, to: dir.file("x.bmp")) }
        #expect(badName?.kind == .writeFailed)
    }
}
