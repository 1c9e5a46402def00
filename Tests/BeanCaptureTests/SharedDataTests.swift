#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import Testing
@testable import BeanCapture

/// Real photos from ../shared/data (never copied into the repository); skipped when absent.
let sharedTrays: String? = {
    for candidate in ["../shared/data/trays", "/work/shared/data/trays"] where access(candidate + "/Normales.jpg", R_OK) == 0 {
        return candidate
    }
    return nil
}()

@Suite(.enabled(if: sharedTrays != nil, "../shared/data/trays not present"))
struct SharedDataTests {
    @Test func decodesEveryTrayPhoto() throws {
        let files = try DirectoryReplay.listImages(in: sharedTrays!)
        #expect(files.count == 11)
        for file in files {
            let frame = try ImageCodec.decode(path: file)
            let header = try #require(jpegSize(try ImageCodec.readFile(file)), "\(file): no SOF marker")
            #expect(frame.width == header.width && frame.height == header.height, "\(file)")
            #expect(frame.pixels.count == frame.width * frame.height * 3)
        }
    }

    /// Every photo row passes through the window exactly where the belt geometry says, unchanged.
    @Test func beltShowsTheTrayPhotoRowForRow() throws {
        let photo = try ImageCodec.decode(path: sharedTrays! + "/Normales.jpg")
        let sim = try BeltSimulator(name: "tray", photo: photo,
                                    settings: .init(windowWidth: 1280, windowHeight: 720, beltSpeed: 900, fps: 30, wrap: false),
                                    pacing: .unpaced)
        var seenRows = Set<Int>()
        let left = (photo.width - 1280) / 2
        while let frame = try sim.nextFrame() {
            for y in stride(from: 0, to: 720, by: 7) {
                guard let r = sim.photoRow(windowRow: y, frame: frame.sequence) else { continue }
                seenRows.insert(r)
                let same = frame.pixels.withUnsafeBufferPointer { got in
                    photo.pixels.withUnsafeBufferPointer { want in
                        memcmp(got.baseAddress! + y * 1280 * 3, want.baseAddress! + (r * photo.width + left) * 3, 1280 * 3) == 0
                    }
                }
                #expect(same, "frame \(frame.sequence) row \(y)")
            }
        }
        // 30 px a frame sampled every 7 rows reaches nearly every photo row.
        #expect(Double(seenRows.count) > 0.95 * Double(photo.height))
    }
}

/// Width and height from a JPEG's SOF0/SOF2 segment: an oracle independent of libjpeg.
func jpegSize(_ d: [UInt8]) -> (width: Int, height: Int)? {
    var i = 2
    while i + 9 < d.count, d[i] == 0xFF {
        let marker = d[i + 1], length = Int(d[i + 2]) << 8 | Int(d[i + 3])
        if marker == 0xC0 || marker == 0xC2 {
            return (Int(d[i + 7]) << 8 | Int(d[i + 8]), Int(d[i + 5]) << 8 | Int(d[i + 6]))
        }
        i += 2 + length
    }
    return nil
}
