import ArgumentParser
import BeanCapture
import BeanCore
import BeanInspect
import Foundation

/// `beanctl bench spool`: what the reject crop spool costs — the decision thread's `offer` (sampling
/// plus a queue push), the writer's throughput (JPEG encode, eviction under the cap, temp file,
/// flush, rename) and the JPEG encoding alone.
struct BenchSpool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Measure the reject crop spool: offer cost on the decision thread, writer crops/s, JPEG encode."
    )

    @Option(help: "Crops to write.") var crops = 2000
    @Option(help: "Crop edge in pixels.") var size = 64
    @Option(help: "JPEG quality 1…100.") var quality = 90
    @Option(help: "Size cap in bytes (small, so eviction runs).") var maxBytes: Int64 = 4 << 20
    @Option(help: "Spool directory (created; its *.jpg files are deleted). Default: a new directory under /tmp.")
    var directory: String?
    @Flag(help: "Print one JSON object instead of aligned text.") var json = false

    func validate() throws {
        guard crops >= 10 else { throw ValidationError("--crops must be at least 10") }
        guard (8...1024).contains(size) else { throw ValidationError("--size must be 8…1024") }
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be 1…100") }
        guard maxBytes >= 1 << 20 else { throw ValidationError("--max-bytes must be at least 1048576") }
    }

    func run() throws {
        let root: String
        var made = false
        if let directory {
            root = directory
        } else {
            var template = Array("/tmp/beanctl-bench-spool-XXXXXX".utf8CString)
            guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw ValidationError("cannot create a directory under /tmp: \(String(cString: strerror(errno)))")
            }
            root = String(cString: path)
            made = true
        }
        defer { if made { try? FileManager.default.removeItem(atPath: root) } }
        let pool = (0..<64).map { Self.beanCrop(index: $0, size: size) }

        // JPEG encoding alone.
        let encodeStart = MonotonicInstant.now()
        var encodedBytes = 0
        for index in 0..<crops {
            let crop = pool[index % pool.count]
            let frame = Frame(camera: crop.camera, sequence: 0, captured: crop.captured, width: crop.width,
                              height: crop.height, format: .rgb24, pixels: crop.pixels)
            encodedBytes += try ImageCodec.encodeJPEG(frame, quality: quality).count
        }
        let encodeSeconds = MonotonicInstant.now().seconds(since: encodeStart)

        var settings = SpoolSettings(directory: root + "/spool")
        settings.maxBytes = maxBytes
        settings.jpegQuality = quality
        settings.queueCapacity = crops
        let spool = CropSpool(settings: settings) { event in
            if case .failing(let reason) = event { FileHandle.standardError.write(Data("spool: \(reason)\n".utf8)) }
        }
        // Offers into a queue nobody drains yet: the decision thread's cost alone.
        let records = (0..<crops).map { index in
            BeanRecord(id: UInt64(index), camera: "bench", frameSequence: UInt64(index), captured: .now(),
                       verdict: .reject, label: Label("Black"), score: 0.8, eject: true)
        }
        let now = RejectEvent.wallClockNow()
        let offerStart = MonotonicInstant.now()
        for index in 0..<crops {
            spool.offer(records[index], crop: pool[index % pool.count], unixMicroseconds: now + UInt64(index))
        }
        let offerSeconds = MonotonicInstant.now().seconds(since: offerStart)
        // Then the writer, from a full queue to the last rename.
        let writeStart = MonotonicInstant.now()
        spool.start()
        spool.stop(until: .now() + .seconds(600))
        let writeSeconds = MonotonicInstant.now().seconds(since: writeStart)
        let figures = spool.figures()
        guard figures.written == UInt64(crops), figures.errors == 0 else {
            throw ValidationError("spool wrote \(figures.written) of \(crops) crops, \(figures.errors) errors: \(figures.lastError ?? "-")")
        }
        let results: [(String, String, Double)] = [
            ("offer_ns", "Offer (decision thread)", offerSeconds / Double(crops) * 1e9),
            ("encode_us", "JPEG encode", encodeSeconds / Double(crops) * 1e6),
            ("write_crops_per_s", "Writer crops/s", Double(crops) / writeSeconds),
            ("write_us", "Writer per crop", writeSeconds / Double(crops) * 1e6),
            ("jpeg_bytes", "JPEG bytes (mean)", Double(encodedBytes) / Double(crops)),
            ("evicted", "Evicted", Double(figures.evicted)),
        ]
        if json {
            var object: [String: Any] = ["crops": crops, "size": size, "quality": quality, "max_bytes": maxBytes]
            for (key, _, value) in results { object[key] = value }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("spool bench: \(crops) crops of \(size)x\(size), quality \(quality), cap \(maxBytes) bytes, \(root)")
            let width = results.map(\.1.count).max() ?? 0
            for (_, name, value) in results {
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + String(format: "%.1f", value))
            }
        }
    }

    /// A bean-like crop: an ellipse with texture on a constant (masked) background.
    static func beanCrop(index: Int, size: Int) -> BeanCrop {
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        var state = UInt32(truncatingIfNeeded: index &* 2_654_435_761) | 1
        let centre = Double(size - 1) / 2
        for y in 0..<size {
            for x in 0..<size {
                let dx = (Double(x) - centre) / (Double(size) * 0.3)
                let dy = (Double(y) - centre) / (Double(size) * 0.45)
                let offset = (y * size + x) * 3
                if dx * dx + dy * dy <= 1 {
                    state ^= state << 13; state ^= state >> 17; state ^= state << 5
                    let grain = Int(state % 24)
                    pixels[offset] = UInt8(100 + grain)
                    pixels[offset + 1] = UInt8(150 + grain)
                    pixels[offset + 2] = UInt8(80 + grain / 2)
                } else {
                    pixels[offset] = 128; pixels[offset + 1] = 128; pixels[offset + 2] = 128
                }
            }
        }
        return BeanCrop(camera: "bench", frameSequence: UInt64(index), captured: .now(), beanID: UInt64(index),
                        width: size, height: size, pixels: pixels)
    }
}
