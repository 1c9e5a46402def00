import BeanCapture
import BeanCore
import BeanInspect
import BeanNet
import BeanVision
import Dispatch
import Foundation

/// Crops for training, as the daemon makes them: each photo goes through `PhotoCropper` (a photo
/// that already is a crop of the configured size passes as it is). Segmentation of thousands of
/// 640×480 photos takes minutes, so the crops can be kept in a cache file keyed by the photo's
/// path, size and modification time: a second run (another fold, another label budget) reads
/// them back in a second.
struct TrainingCrops {
    /// Side of the square crops.
    let size: Int
    /// Paths of the photos that gave a crop, index-aligned with the crops.
    var paths: [String]
    /// size × size × 3 RGB bytes per crop, back to back.
    var pixels: [UInt8]
    /// Photos without a crop and why (no bean found, unreadable).
    var skipped: [(path: String, reason: String)]

    var count: Int { paths.count }
    var bytesPerCrop: Int { size * size * 3 }

    func crop(_ index: Int) -> ArraySlice<UInt8> {
        pixels[index * bytesPerCrop..<(index + 1) * bytesPerCrop]
    }

    /// Image files under `directories` (recursively), sorted; a plain file argument is taken as is.
    static func imageFiles(under directories: [String]) throws -> [String] {
        var files: [String] = []
        for directory in directories {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
                throw TrainError("\(directory): no such file or directory")
            }
            if !isDirectory.boolValue {
                files.append(directory)
                continue
            }
            guard let enumerator = LabelledTree.enumerator(of: directory) else {
                throw TrainError("\(directory): cannot list the directory")
            }
            var found: [String] = []
            while let next = enumerator.nextObject() as? String {
                let ext = (next as NSString).pathExtension.lowercased()
                if LabelledTree.imageExtensions.contains(ext) {
                    found.append((directory as NSString).appendingPathComponent(next))
                }
            }
            guard !found.isEmpty else { throw TrainError("\(directory): no JPEG or PNG images in it") }
            files += found.sorted()
        }
        return files
    }

    /// Crops of `paths`, from `cache` where it has them, the rest cut on `threads` threads (one
    /// PhotoCropper each); the cache file is rewritten when anything was added.
    static func load(paths: [String], segmenter: SegmenterSettings, crop: CropSettings = CropSettings(),
                     cache: String?, threads: Int, progress: ProgressLine?) throws -> TrainingCrops {
        let size = crop.size
        var known = CropCacheFile.Entries()
        if let cache, FileManager.default.fileExists(atPath: cache) {
            known = try CropCacheFile.read(path: cache, size: size)
        }
        let stamps = paths.map(CropCacheFile.stamp(of:))
        let missing = paths.indices.filter { known[stamps[$0]] == nil }

        var results = [CropCacheFile.Entry?](repeating: nil, count: paths.count)
        for i in paths.indices { results[i] = known[stamps[i]] }
        if !missing.isEmpty {
            let workers = max(1, min(threads, missing.count))
            let croppers = try (0..<workers).map { _ in try PhotoCropper(segmenter: segmenter, crop: crop) }
            let lock = NSLock()
            var done = 0
            var fresh = [CropCacheFile.Entry?](repeating: nil, count: missing.count)
            fresh.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var j = worker
                    while j < missing.count {
                        let path = paths[missing[j]]
                        let entry: CropCacheFile.Entry
                        do {
                            let cut = try croppers[worker].crop(path: path)
                            entry = .crop(cut.crop.pixels)
                        } catch {
                            entry = .skipped("\(error)")
                        }
                        base?[j] = entry
                        lock.lock()
                        done += 1
                        let shown = done
                        lock.unlock()
                        if worker == 0 { progress?.update(shown, of: missing.count, note: "cropping") }
                        j += workers
                    }
                }
            }
            progress?.finish(missing.count, note: "cropped")
            for (j, i) in missing.enumerated() {
                results[i] = fresh[j]
                known[stamps[i]] = fresh[j]
            }
            if let cache { try CropCacheFile.write(known, path: cache, size: size) }
        }

        var crops = TrainingCrops(size: size, paths: [], pixels: [], skipped: [])
        crops.pixels.reserveCapacity(paths.count * size * size * 3)
        for (i, path) in paths.enumerated() {
            switch results[i] {
            case .crop(let bytes)?:
                guard bytes.count == size * size * 3 else {
                    crops.skipped.append((path, "crop is not \(size)×\(size) RGB"))
                    continue
                }
                crops.paths.append(path)
                crops.pixels += bytes
            case .skipped(let reason)?:
                crops.skipped.append((path, reason))
            case nil:
                crops.skipped.append((path, "not cropped"))
            }
        }
        return crops
    }
}

/// The crop cache: a binary file of (stamp, crop-or-reason) records. A stamp is the photo's path,
/// byte size and modification time, so a changed photo is cropped again.
enum CropCacheFile {
    enum Entry {
        case crop([UInt8])
        case skipped(String)
    }
    typealias Entries = [String: Entry]
    static let magic = Array("BEANCROPS1\n".utf8)

    static func stamp(of path: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let bytes = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(path)|\(bytes)|\(Int64(modified * 1000))"
    }

    static func read(path: String, size: Int) throws -> Entries {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainError("\(path): cannot read the crop cache")
        }
        let bytes = [UInt8](data)
        func corrupt(_ why: String) -> TrainError { TrainError("\(path): not a crop cache of \(size)×\(size) crops (\(why)); delete it to rebuild") }
        guard bytes.count >= magic.count + 4, Array(bytes[0..<magic.count]) == magic else { throw corrupt("bad magic") }
        var at = magic.count
        func u32() throws -> Int {
            guard at + 4 <= bytes.count else { throw corrupt("truncated at byte \(at)") }
            let v = Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
            at += 4
            return v
        }
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, at + n <= bytes.count else { throw corrupt("truncated at byte \(at)") }
            defer { at += n }
            return bytes[at..<at + n]
        }
        guard try u32() == size else { throw corrupt("crop size differs") }
        let count = try u32()
        var entries = Entries()
        for _ in 0..<count {
            let stamp = String(decoding: try take(try u32()), as: UTF8.self)
            let kind = try take(1).first
            let length = try u32()
            let body = try take(length)
            entries[stamp] = kind == 1 ? .crop(Array(body)) : .skipped(String(decoding: body, as: UTF8.self))
        }
        return entries
    }

    static func write(_ entries: Entries, path: String, size: Int) throws {
        var out = magic
        func u32(_ v: Int) { out += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)] }
        u32(size)
        u32(entries.count)
        for stamp in entries.keys.sorted() {
            let s = Array(stamp.utf8)
            u32(s.count)
            out += s
            switch entries[stamp] {
            case .crop(let bytes)?:
                out.append(1); u32(bytes.count); out += bytes
            case .skipped(let reason)?:
                let r = Array(reason.utf8)
                out.append(0); u32(r.count); out += r
            case nil:
                break
            }
        }
        try writeAtomically(Data(out), to: path)
    }
}

/// A one-line progress bar on stderr (count, rate, ETA, a note such as the loss) when stderr is a
/// terminal; plain lines every few seconds otherwise, so logs stay readable.
final class ProgressLine {
    private let label: String
    private let started = Date()
    private var lastPlain = Date.distantPast
    private let isTTY = isatty(2) != 0

    init(_ label: String) { self.label = label }

    func update(_ done: Int, of total: Int, note: String = "") {
        let elapsed = Date().timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let text = "\(label) \(done)/\(total) \(String(format: "%.1f", rate))/s ETA \(Self.clock(eta)) \(note)"
        if isTTY {
            let width = 24
            let filled = total > 0 ? min(width, done * width / total) : 0
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(text)\u{1b}[K".utf8))
        } else if Date().timeIntervalSince(lastPlain) >= 5 || done == total {
            lastPlain = Date()
            FileHandle.standardError.write(Data("\(text)\n".utf8))
        }
    }

    func finish(_ total: Int, note: String) {
        let elapsed = Date().timeIntervalSince(started)
        let line = "\(label) \(total) \(note) in \(Self.clock(elapsed))"
        FileHandle.standardError.write(Data(((isTTY ? "\r" : "") + line + (isTTY ? "\u{1b}[K\n" : "\n")).utf8))
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }
}

/// A training failure with the file, option or value it is about.
struct TrainError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The labelled beans a training step may use, drawn as beanctl eval's fold mode draws its store:
/// the beans of the training folds (all beans without folds) with at least one usable photo that
/// gives a crop, a stratified subset of `count` with the seed plus the fold
/// (`BeanFolds.labelledSubset`), and the crops of their usable photos. `train head` trains on
/// them; `train backbone --labelled-tree` adds them to the pre-training.
struct LabelledDraw {
    var crops: LabelledCrops
    /// Bean indices (into the tree's beans) of the labelled beans.
    var chosenBeans: [Int]
    /// The photo of each crop.
    var paths: [String]
    var classNames: [String]

    init(tree: LabelledTree, count: Int, share: GoodShare, folds: BeanFolds?, fold: Int?, seed: UInt64,
         goodLabels: Set<Label>, source: CropSourceOptions, crop: CropSettings) throws {
        let pool = fold.flatMap { f in folds?.training(fold: f) } ?? Array(tree.beans.indices)
        var poolPaths: [String] = []
        for b in pool { poolPaths += tree.beans[b].usablePhotos.map(\.path) }
        guard !poolPaths.isEmpty else { throw TrainError("\(tree.root): no usable photos to draw labelled beans from") }
        let loaded = try source.load(poolPaths, what: "labelled photos", crop: crop)
        let rowOfPath = Dictionary(uniqueKeysWithValues: loaded.paths.enumerated().map { ($1, $0) })
        let candidates = pool.filter { b in tree.beans[b].usablePhotos.contains { rowOfPath[$0.path] != nil } }
        chosenBeans = BeanFolds.labelledSubset(of: candidates, beans: tree.beans, count: count,
                                               seed: seed &+ UInt64(fold ?? 0), goodShare: share.value, goodLabels: goodLabels)
        classNames = tree.labels.map(\.name)
        var rows: [Int] = [], photoLabels: [Int] = [], photoBeans: [Int] = []
        for b in chosenBeans {
            let bean = tree.beans[b]
            for photo in bean.usablePhotos {
                guard let row = rowOfPath[photo.path] else { continue }
                rows.append(row)
                photoLabels.append(classNames.firstIndex(of: bean.label.name) ?? 0)
                photoBeans.append(b)
            }
        }
        guard !rows.isEmpty else { throw TrainError("\(tree.root): the \(chosenBeans.count) chosen beans have no usable photo with a crop") }
        paths = rows.map { loaded.paths[$0] }
        crops = try LabelledCrops(images: try CropImages(size: loaded.size, pixels: loaded.pixels).subset(rows),
                                  labels: photoLabels, beans: photoBeans, classNames: classNames)
    }

    /// "N labelled beans, M usable photos (Class count, …)" for the log.
    var summary: String {
        let perClass = Dictionary(grouping: crops.labels, by: { $0 }).map { "\(classNames[$0.key]) \($0.value.count)" }.sorted()
        return "\(chosenBeans.count) labelled beans, \(crops.labels.count) usable photos (\(perClass.joined(separator: ", ")))"
    }
}
