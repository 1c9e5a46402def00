#if canImport(Glibc)
import Glibc
#endif
import BeanCore
@testable import BeanCapture

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/beancapture-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: made!)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try ImageCodec.writeFile(file(name), bytes)
    }

    func cleanup() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(file(name)) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// An RGB24 frame whose pixel (x, y) is `colour(x, y)`.
func syntheticFrame(width: Int, height: Int, _ colour: (Int, Int) -> (UInt8, UInt8, UInt8)) -> Frame {
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let c = colour(x, y)
            pixels[(y * width + x) * 3] = c.0
            pixels[(y * width + x) * 3 + 1] = c.1
            pixels[(y * width + x) * 3 + 2] = c.2
        }
    }
    return Frame(camera: "synthetic", sequence: 0, captured: .now(), width: width, height: height,
                 format: .rgb24, pixels: pixels)
}

func pixel(_ frame: Frame, _ x: Int, _ y: Int) -> [UInt8] {
    let i = y * frame.stride + x * 3
    return Array(frame.pixels[i..<i + 3])
}
