import ArgumentParser
import BeanCore
import BeanInspect
import BeanNet
import BeanService
import BeanVision
import CBLAS
import Dispatch
import Foundation

/// Progress of a long run on stderr: a redrawn bar (count, rate, ETA) on a terminal, a plain line
/// every few seconds otherwise (logs, pipes). Thread-safe: workers call `advance`.
final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private let title: String
    private let total: Int
    private let isTerminal: Bool
    private let enabled: Bool
    private let start = monotonicSeconds()
    private var done = 0
    private var lastDraw = 0.0

    init(title: String, total: Int, enabled: Bool = true) {
        self.title = title
        self.total = total
        self.enabled = enabled && total > 0
        self.isTerminal = isatty(STDERR_FILENO) == 1
    }

    func advance(by n: Int = 1) {
        lock.lock()
        defer { lock.unlock() }
        done += n
        let now = monotonicSeconds()
        guard enabled, now - lastDraw >= (isTerminal ? 0.2 : 10) || done == total else { return }
        lastDraw = now
        let elapsed = now - start
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let etaText = String(format: "%d:%02d", Int(eta) / 60, Int(eta) % 60)
        if isTerminal {
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "\r%@ [%@] %d/%d  %.1f/s  ETA %@", title, bar, done, total, rate, etaText)
            FileHandle.standardError.write(Data((line + (done == total ? "\n" : "")).utf8))
        } else {
            let line = String(format: "%@: %d/%d (%.1f/s, ETA %@)\n", title, done, total, rate, etaText)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Where the segmentation settings and crop size come from: a camera of the daemon's config, or
/// a preset.
struct CropSetup {
    var segmenter: SegmenterSettings
    var crop: CropSettings

    /// Settings of `camera` (default: the first) in `config`, or of `preset` when no config is
    /// given; the crop size is the camera's `crop_size`, else `encoderSize`, else 64 (as the daemon).
    static func make(config: DaemonConfig?, configPath: String?, camera: String?, preset: Segment.Preset?,
                     encoderSize: Int?) throws -> CropSetup {
        var settings: SegmenterSettings
        var size: Int?
        if let config, let configPath, preset == nil {
            guard !config.cameras.isEmpty else {
                throw SegmentConfigError(description: "\(configPath): no [[camera]] table to take segmentation settings from")
            }
            var chosen = config.cameras[0]
            if let camera {
                guard let named = config.cameras.first(where: { $0.name == camera }) else {
                    let names = config.cameras.map(\.name).joined(separator: ", ")
                    throw SegmentConfigError(description: "\(configPath): no camera named '\(camera)' (cameras: \(names))")
                }
                chosen = named
            }
            settings = chosen.segmenterSettings
            size = chosen.cropSize
        } else {
            switch preset ?? .default {
            case .default: settings = SegmenterSettings()
            case .tray: settings = .tray
            case .mindforge: settings = .mindforge
            }
        }
        var crop = CropSettings()
        crop.size = size ?? encoderSize ?? 64
        try crop.validate()
        return CropSetup(segmenter: settings, crop: crop)
    }
}

/// Why a photo gave no crop, as counted in summaries.
enum PhotoSkipReason: String, CaseIterable {
    case noBean = "no_bean"
    case unreadable
}

/// Crops photos on `threads` threads, each with its own `PhotoCropper` (they reuse buffers).
enum ParallelCropper {
    static func crop(paths: [String], setup: CropSetup, threads: Int,
                     progress: ProgressReporter?) throws -> [Result<BeanCrop, PhotoCropError>] {
        var results = [Result<BeanCrop, PhotoCropError>?](repeating: nil, count: paths.count)
        let lock = NSLock()
        var next = 0
        var setupError: Error?
        let workers = max(1, min(threads, paths.count))
        results.withUnsafeMutableBufferPointer { slots in
            let slots = UnsafeMutableSendableBuffer(slots)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                let cropper: PhotoCropper
                do {
                    cropper = try PhotoCropper(segmenter: setup.segmenter, crop: setup.crop)
                } catch {
                    lock.lock(); setupError = error; lock.unlock()
                    return
                }
                while true {
                    lock.lock()
                    let index = next
                    next += 1
                    lock.unlock()
                    guard index < paths.count else { return }
                    let outcome: Result<BeanCrop, PhotoCropError>
                    do {
                        outcome = .success(try cropper.crop(path: paths[index], beanID: UInt64(index)).crop)
                    } catch let error as PhotoCropError {
                        // The codec's message already starts with the file name.
                        if case .unreadable(let path, let reason) = error, reason.hasPrefix(path + ": ") {
                            outcome = .failure(.unreadable(path: path, reason: String(reason.dropFirst(path.count + 2))))
                        } else {
                            outcome = .failure(error)
                        }
                    } catch {
                        outcome = .failure(.unreadable(path: paths[index], reason: "\(error)"))
                    }
                    slots.buffer[index] = outcome
                    progress?.advance()
                }
            }
        }
        if let setupError { throw setupError }
        return results.map { $0 ?? .failure(.unreadable(path: "?", reason: "not processed")) }
    }
}

/// Lets worker threads write disjoint slots of one buffer.
struct UnsafeMutableSendableBuffer<T>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ buffer: UnsafeMutableBufferPointer<T>) { self.buffer = buffer }
}

/// What turns crops into vectors: an ONNX encoder (with the daemon's preprocessing) or raw pixels.
enum CropEncoder {
    case model(EncoderModel, Preprocessing)
    case raw(RawPixelEncoder)

    var dimension: Int {
        switch self {
        case .model(let model, _): return model.outputDim
        case .raw(let raw): return raw.dimension
        }
    }

    var fingerprint: String {
        switch self {
        case .model(let model, _): return model.fingerprint
        case .raw(let raw): return raw.fingerprint
        }
    }

    var name: String {
        switch self {
        case .model(let model, _): return model.source
        case .raw(let raw): return "raw:\(raw.size)"
        }
    }

    /// The crop size the encoder wants, when it has one.
    var inputSize: Int? {
        if case .model(let model, _) = self { return model.inputSize?.width }
        return nil
    }

    /// `crops.count × dimension` values, row-major, computed on `threads` threads in batches.
    func embed(_ crops: [BeanCrop], threads: Int, batch: Int = 32, progress: ProgressReporter?) throws -> [Float] {
        let dim = dimension
        var out = [Float](repeating: 0, count: crops.count * dim)
        guard !crops.isEmpty else { return out }
        for crop in crops { try Preprocessing.check(crop) }
        let chunks = stride(from: 0, to: crops.count, by: batch).map { ($0, min($0 + batch, crops.count)) }
        let lock = NSLock()
        var next = 0
        var failure: Error?
        if threads > 1 { openblas_set_num_threads(1) }
        out.withUnsafeMutableBufferPointer { buffer in
            let shared = UnsafeMutableSendableBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunks.count))) { _ in
                var session: InferenceSession?
                var input: [Float] = []
                do {
                    if case .model(let model, _) = self {
                        session = try model.makeSession(maxBatch: batch)
                        input = [Float](repeating: 0, count: batch * model.input.sampleShape.reduce(1, *))
                    }
                } catch {
                    lock.lock(); failure = error; lock.unlock()
                    return
                }
                while true {
                    lock.lock()
                    let index = next
                    next += 1
                    let stop = failure != nil
                    lock.unlock()
                    guard index < chunks.count, !stop else { return }
                    let (from, to) = chunks[index]
                    do {
                        switch self {
                        case .raw(let raw):
                            for i in from..<to {
                                let v = raw.embed(crops[i])
                                for j in 0..<dim { shared.buffer[i * dim + j] = v[j] }
                            }
                        case .model(let model, let preprocessing):
                            guard let session, let size = model.inputSize else {
                                throw ValidationError("\(model.source): the input is not an image (N×3×H×W)")
                            }
                            let per = 3 * size.width * size.height
                            try input.withUnsafeMutableBufferPointer { dst in
                                guard let base = dst.baseAddress else { return }
                                for i in from..<to {
                                    preprocessing.write(crops[i], width: size.width, height: size.height,
                                                        into: base + (i - from) * per)
                                }
                                guard let outBase = shared.buffer.baseAddress else { return }
                                try session.run(input: base, batch: to - from, output: outBase + from * dim)
                            }
                        }
                    } catch {
                        lock.lock(); failure = error; lock.unlock()
                        return
                    }
                    progress?.advance(by: to - from)
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}

/// FNV-1a, 64 bits, of a file's bytes: the source id that recognises an image enrolled before.
func contentHash(path: String) throws -> UInt64 {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    data.withUnsafeBytes { raw in
        for byte in raw {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
    }
    return hash
}
