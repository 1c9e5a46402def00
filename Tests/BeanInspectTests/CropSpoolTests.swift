import BeanCapture
import BeanCore
import Dispatch
import Foundation
import Synchronization
import Testing
@testable import BeanInspect

@Suite struct SpoolNameTests {
    @Test func layoutIsVerdictLabelThenTimeCameraBeanScore() {
        // 2026-11-22 19:15:54.000123 UTC = 1795374954 s since the epoch (date -u -d @1795374954).
        let name = SpoolName(verdict: .reject, label: Label("Black"), camera: "cam0", beanID: 17, score: 0.8333,
                             unixMicroseconds: 1_795_374_954_000_123)
        #expect(name.relativePath == "reject/Black/20261122T191554.000123Z_cam0_17_0.833.jpg")
        #expect(name.relativeDirectory == "reject/Black")
    }

    @Test func unscoredBeansGoToUnlabelledWithoutScore() {
        let name = SpoolName(verdict: .unscored, label: nil, camera: "c", beanID: 3, score: nil, unixMicroseconds: 0)
        #expect(name.relativePath == "unscored/unlabelled/19700101T000000.000000Z_c_3_na.jpg")
    }

    @Test func scoresHaveThreeDecimals() {
        #expect(SpoolName.scoreText(0) == "0.000")
        #expect(SpoolName.scoreText(1) == "1.000")
        #expect(SpoolName.scoreText(12.5) == "12.500")
        #expect(SpoolName.scoreText(0.0004) == "0.000")
        #expect(SpoolName.scoreText(0.0006) == "0.001")
        #expect(SpoolName.scoreText(-0.25) == "-0.250")
        #expect(SpoolName.scoreText(.nan) == "na")
        #expect(SpoolName.scoreText(.infinity) == "na")
    }

    @Test func timeStampsSortAsText() {
        var previous = ""
        for micros in stride(from: UInt64(0), to: 4_000_000_000_000_000, by: 123_456_789_012_345) {
            let stamp = SpoolName.utcStamp(unixMicroseconds: micros)
            #expect(stamp.count == 23)
            #expect(stamp > previous)
            previous = stamp
        }
    }

    @Test(arguments: [
        ("Black", "Black"), ("a/b", "a_b"), ("..", "_."), (".hidden", "_hidden"), ("", "unlabelled"),
        ("tab\there", "tab_here"), ("Insekt-Schäden", "Insekt-Schäden"), ("/", "_"),
    ])
    func labelsBecomeOneHarmlessPathComponent(label: String, folder: String) {
        #expect(SpoolName.folderName(label) == folder)
    }

    @Test func temporaryNamesAreRecognised() {
        #expect(SpoolName.isTemporary(".x.jpg.tmp"))
        #expect(!SpoolName.isTemporary("x.jpg"))
        #expect(!SpoolName.isTemporary(".x.jpg"))
    }
}

@Suite struct SpoolSamplerTests {
    @Test func ejectedAndUnknownBeansAreAlwaysKept() {
        var sampler = SpoolSampler(acceptedFraction: 0)
        for _ in 0..<100 {
            do { let kept = sampler.shouldKeep(verdict: .reject, ejected: true); #expect(kept) }
            do { let kept = sampler.shouldKeep(verdict: .unscored, ejected: true); #expect(kept) }
            do { let kept = sampler.shouldKeep(verdict: .unknown, ejected: false); #expect(kept) }
            do { let kept = sampler.shouldKeep(verdict: .accept, ejected: false); #expect(!kept) }
        }
    }

    @Test func acceptedRateIsTheFractionOverEveryPrefix() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let fraction = Double.random(in: 0...1, using: &generator)
            var sampler = SpoolSampler(acceptedFraction: fraction)
            var kept = 0
            for n in 1...5000 {
                if sampler.shouldKeep(verdict: .accept, ejected: false) { kept += 1 }
                // Within one bean of n·f after every bean: evenly spread, not in bursts.
                #expect(abs(Double(kept) - Double(n) * fraction) <= 1.0 + 1e-9, "fraction \(fraction), n \(n), kept \(kept)")
            }
        }
    }

    @Test func oneInTenKeepsEveryTenth() {
        var sampler = SpoolSampler(acceptedFraction: 0.1)
        let kept = (1...100).filter { _ in sampler.shouldKeep(verdict: .accept, ejected: false) }
        #expect(kept.count == 10)
        var second = SpoolSampler(acceptedFraction: 0.1)
        let positions = (1...30).filter { _ in second.shouldKeep(verdict: .accept, ejected: false) }
        #expect(positions == [10, 20, 30])
    }

    @Test func fractionsOutsideTheRangeAreClamped() {
        var all = SpoolSampler(acceptedFraction: 7)
        var none = SpoolSampler(acceptedFraction: -1)
        var nan = SpoolSampler(acceptedFraction: .nan)
        for _ in 0..<20 {
            do { let kept = all.shouldKeep(verdict: .accept, ejected: false); #expect(kept) }
            do { let kept = none.shouldKeep(verdict: .accept, ejected: false); #expect(!kept) }
            do { let kept = nan.shouldKeep(verdict: .accept, ejected: false); #expect(!kept) }
        }
    }
}

@Suite struct SpoolLedgerTests {
    private func entry(_ path: String, _ bytes: Int64, _ modified: Int64 = 0) -> SpoolLedger.Entry {
        SpoolLedger.Entry(path: path, bytes: bytes, modified: modified)
    }

    @Test func evictsOldestFirstUntilTheNewFileFits() {
        var ledger = SpoolLedger()
        ledger.add(entry("a", 40))
        ledger.add(entry("b", 30))
        ledger.add(entry("c", 20))
        #expect(ledger.evictions(toFit: 10, under: 100).isEmpty)
        #expect(ledger.evictions(toFit: 35, under: 100).map(\.path) == ["a"])
        #expect(ledger.totalBytes == 50)
        #expect(ledger.fileCount == 2)
        #expect(ledger.evictions(toFit: 100, under: 100).map(\.path) == ["b", "c"])
        #expect(ledger.totalBytes == 0)
        #expect(ledger.evictions(toFit: 500, under: 100).isEmpty)
    }

    @Test func randomTrafficNeverExceedsTheCap() {
        var generator = SystemRandomNumberGenerator()
        var ledger = SpoolLedger()
        var model: [(String, Int64)] = []  // an independent FIFO
        let cap: Int64 = 10_000
        for index in 0..<20_000 {
            let size = Int64.random(in: 1...3000, using: &generator)
            let evicted = ledger.evictions(toFit: size, under: cap)
            var expected: [String] = []
            while model.reduce(0, { $0 + $1.1 }) + size > cap { expected.append(model.removeFirst().0) }
            #expect(evicted.map(\.path) == expected)
            ledger.add(entry("f\(index)", size))
            model.append(("f\(index)", size))
            #expect(ledger.totalBytes <= cap)
            #expect(ledger.totalBytes == model.reduce(0, { $0 + $1.1 }))
            #expect(ledger.fileCount == model.count)
        }
    }

    @Test func scannedFilesAreOrderedByModificationTimeThenName() {
        var ledger = SpoolLedger(scanned: [entry("new", 10, 300), entry("b-old", 10, 100), entry("a-old", 10, 100),
                                           entry("mid", 10, 200)])
        #expect(ledger.evictions(toFit: 0, under: 10).map(\.path) == ["a-old", "b-old", "mid"])
    }

    @Test func aReplacedPathIsCountedOnce() {
        var ledger = SpoolLedger()
        ledger.add(entry("x", 100))
        ledger.add(entry("y", 10))
        ledger.add(entry("x", 50))
        #expect(ledger.totalBytes == 60)
        #expect(ledger.fileCount == 2)
        // "x" is now the newest: "y" goes first.
        #expect(ledger.evictions(toFit: 0, under: 55).map(\.path) == ["y"])
        #expect(ledger.evictions(toFit: 0, under: 0).map(\.path) == ["x"])
    }
}

/// The writer against a real directory.
@Suite(.serialized) struct CropSpoolTests {
    final class Events: Sendable {
        let list = Mutex<[SpoolEvent]>([])
        var all: [SpoolEvent] { list.withLock { $0 } }
        var failing: [String] { all.compactMap { if case .failing(let r) = $0 { return r } else { return nil } } }
        var recovered: [UInt64] { all.compactMap { if case .recovered(let n) = $0 { return n } else { return nil } } }
    }

    static func crop(id: UInt64, size: Int = 24, seed: UInt8 = 0) -> BeanCrop {
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for index in pixels.indices { pixels[index] = UInt8(truncatingIfNeeded: index &* 31 &+ Int(seed) &* 7) }
        return BeanCrop(camera: "cam0", frameSequence: id, captured: .now(), beanID: id, width: size, height: size,
                        pixels: pixels)
    }

    static func record(id: UInt64, verdict: Verdict, eject: Bool, label: String? = "Black") -> BeanRecord {
        BeanRecord(id: id, camera: "cam0", frameSequence: id, captured: .now(), verdict: verdict,
                   label: label.map { Label($0) }, score: 0.5, eject: eject)
    }

    static func jpegFiles(under root: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: root)
        var files: [String] = []
        while let path = enumerator?.nextObject() as? String {
            if path.hasSuffix(".jpg") { files.append(path) }
        }
        return files.sorted()
    }

    static func size(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? -1
    }

    static func waitUntil(_ condition: () -> Bool) -> Bool {
        let deadline = MonotonicInstant.now()
        while MonotonicInstant.now().seconds(since: deadline) < 10 {
            if condition() { return true }
            usleep(5000)
        }
        return condition()
    }

    @Test func writesDecodableCropsWhereTheOfferSaidAndLeavesNoTemporaries() throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        let events = Events()
        var settings = SpoolSettings(directory: temp.file("spool"))
        settings.acceptedFraction = 0.5
        let spool = CropSpool(settings: settings) { event in events.list.withLock { $0.append(event) } }
        spool.start()
        var expected: [String] = []
        for id in 1...40 as ClosedRange<UInt64> {
            let reject = id % 4 == 0
            let record = Self.record(id: id, verdict: reject ? .reject : .accept, eject: reject, label: reject ? "Black" : "Normal")
            if let name = spool.offer(record, crop: Self.crop(id: id), unixMicroseconds: 1_000_000 * id) {
                expected.append(name.relativePath)
            }
        }
        spool.stop(until: .now() + .seconds(10))
        // 10 rejects, and half of the 30 accepted.
        #expect(expected.filter { $0.hasPrefix("reject/Black/") }.count == 10)
        #expect(expected.filter { $0.hasPrefix("accept/Normal/") }.count == 15)
        let files = Self.jpegFiles(under: temp.file("spool"))
        #expect(files == expected.sorted())
        let all = try FileManager.default.subpathsOfDirectory(atPath: temp.file("spool"))
        #expect(all.filter { $0.hasSuffix(".tmp") }.isEmpty)
        for path in files {
            let frame = try ImageCodec.decode(path: temp.file("spool/" + path))
            #expect(frame.width == 24 && frame.height == 24)
        }
        let figures = spool.figures()
        #expect(figures.written == 25)
        #expect(figures.files == 25)
        #expect(figures.bytes == files.reduce(0) { $0 + Self.size(temp.file("spool/" + $1)) })
        #expect(figures.errors == 0 && figures.dropped == 0)
        #expect(figures.state == "ok")
        #expect(events.failing.isEmpty)
    }

    @Test func aFullQueueDropsCropsAndCountsThem() throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        var settings = SpoolSettings(directory: temp.file("spool"))
        settings.queueCapacity = 3
        let spool = CropSpool(settings: settings) { _ in }
        // Not started: nothing drains the queue.
        let taken = (1...10 as ClosedRange<UInt64>).compactMap {
            spool.offer(Self.record(id: $0, verdict: .reject, eject: true), crop: Self.crop(id: $0), unixMicroseconds: $0)
        }
        #expect(taken.count == 3)
        #expect(spool.figures().dropped == 7)
        #expect(spool.figures().queue.depth == 3)
        spool.start()
        spool.stop(until: .now() + .seconds(10))
        #expect(Self.jpegFiles(under: temp.file("spool")) == taken.map(\.relativePath).sorted())
    }

    @Test func theCapHoldsAndTheOldestGoFirst() throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        // Existing files (a previous run) and a crash leftover.
        try FileManager.default.createDirectory(atPath: temp.file("spool/reject/Old"), withIntermediateDirectories: true)
        for index in 0..<8 {
            let path = temp.file("spool/reject/Old/old\(index).jpg")
            try Data([UInt8](repeating: 0xAB, count: 200_000)).write(to: URL(fileURLWithPath: path))
            // Oldest has the smallest index.
            var times = [timespec(tv_sec: 1_000_000 + index, tv_nsec: 0), timespec(tv_sec: 1_000_000 + index, tv_nsec: 0)]
            utimensat(AT_FDCWD, path, &times, 0)
        }
        try Data([UInt8](repeating: 1, count: 10)).write(to: URL(fileURLWithPath: temp.file("spool/reject/Old/.x.jpg.tmp")))
        let events = Events()
        var settings = SpoolSettings(directory: temp.file("spool"))
        settings.maxBytes = 1 << 20   // 5 old files fit, not 8
        settings.queueCapacity = 4096
        let spool = CropSpool(settings: settings) { event in events.list.withLock { $0.append(event) } }
        spool.start()
        #expect(Self.waitUntil { spool.figures().files != nil })
        let afterScan = Self.jpegFiles(under: temp.file("spool"))
        #expect(afterScan == (3..<8).map { "reject/Old/old\($0).jpg" })
        #expect(!FileManager.default.fileExists(atPath: temp.file("spool/reject/Old/.x.jpg.tmp")))
        guard case .scanned(let files, _, let temporaries, let evicted)? = events.all.first else {
            Issue.record("first event is the scan: \(events.all)")
            return
        }
        #expect(files == 5 && temporaries == 1 && evicted == 3)
        // Large, incompressible crops: each JPEG is tens of kilobytes.
        var maximum: Int64 = 0
        for id in 1...200 as ClosedRange<UInt64> {
            let name = spool.offer(Self.record(id: id, verdict: .reject, eject: true), crop: Self.noise(id: id),
                                   unixMicroseconds: id)
            #expect(name != nil)
            if id % 10 == 0 {
                #expect(Self.waitUntil { spool.figures().queue.depth == 0 })
                let onDisk = Self.jpegFiles(under: temp.file("spool")).reduce(Int64(0)) { $0 + Self.size(temp.file("spool/" + $1)) }
                maximum = max(maximum, onDisk)
                #expect(onDisk <= settings.maxBytes)
            }
        }
        spool.stop(until: .now() + .seconds(10))
        let figures = spool.figures()
        let remaining = Self.jpegFiles(under: temp.file("spool"))
        let onDisk = remaining.reduce(Int64(0)) { $0 + Self.size(temp.file("spool/" + $1)) }
        #expect(figures.bytes == onDisk)
        #expect(onDisk <= settings.maxBytes)
        #expect(maximum > settings.maxBytes / 2)
        // The old files went first, then the oldest new ones: what is left is the newest, contiguous.
        #expect(!remaining.contains { $0.hasPrefix("reject/Old/") })
        let ids = remaining.map { path -> Int in
            let parts = path.split(separator: "_")
            return Int(parts[parts.count - 2]) ?? -1
        }.sorted()
        #expect(ids.last == 200)
        #expect(ids == Array((ids.first ?? 0)...200))
        #expect(figures.evicted == UInt64(3 + 8 - 3 + 200 - remaining.count))
    }

    /// Incompressible pixels, so each JPEG is tens of kilobytes (xorshift: cheap in a debug build).
    static func noise(id: UInt64) -> BeanCrop {
        let size = 128
        var state = id &* 0x9E37_79B9_7F4A_7C15 | 1
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        pixels.withUnsafeMutableBytes { raw in
            for word in 0..<(raw.count / 8) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                raw.storeBytes(of: state, toByteOffset: word * 8, as: UInt64.self)
            }
        }
        return BeanCrop(camera: "cam0", frameSequence: id, captured: .now(), beanID: id, width: size, height: size,
                        pixels: pixels)
    }

    @Test func anUnwritableDirectoryIsReportedOnceCountedAndRecovers() throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        // A plain file where the spool directory should be: fails for root too.
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: temp.file("spool")))
        let events = Events()
        let spool = CropSpool(settings: SpoolSettings(directory: temp.file("spool/inner"))) { event in
            events.list.withLock { $0.append(event) }
        }
        spool.start()
        for id in 1...20 as ClosedRange<UInt64> {
            spool.offer(Self.record(id: id, verdict: .reject, eject: true), crop: Self.crop(id: id), unixMicroseconds: id)
        }
        #expect(Self.waitUntil { spool.figures().errors >= 20 })
        let failing = spool.figures()
        #expect(failing.state.hasPrefix("failing: "))
        #expect(failing.lastError?.contains(temp.file("spool")) == true)
        #expect(failing.written == 0)
        #expect(events.failing.count == 1, "one log line for one state: \(events.failing)")
        // The operator fixes it: the next crop is written and the recovery reported once.
        try FileManager.default.removeItem(atPath: temp.file("spool"))
        #expect(Self.waitUntil { spool.figures().files != nil })  // the idle rescan finds an empty spool
        for id in 21...25 as ClosedRange<UInt64> {
            spool.offer(Self.record(id: id, verdict: .reject, eject: true), crop: Self.crop(id: id), unixMicroseconds: id)
        }
        spool.stop(until: .now() + .seconds(10))
        #expect(spool.figures().written == 5)
        #expect(spool.figures().state == "ok")
        #expect(events.recovered.count == 1)
        #expect(Self.jpegFiles(under: temp.file("spool/inner")).count == 5)
    }

    @Test func aLowerCapFromAReloadIsEnforcedWhileIdle() throws {
        let temp = try TemporaryDirectory()
        defer { temp.remove() }
        var settings = SpoolSettings(directory: temp.file("spool"))
        let spool = CropSpool(settings: settings) { _ in }
        spool.start()
        for id in 1...30 as ClosedRange<UInt64> {
            spool.offer(Self.record(id: id, verdict: .reject, eject: true), crop: Self.noise(id: id), unixMicroseconds: id)
        }
        #expect(Self.waitUntil { spool.figures().written == 30 })
        let total = try #require(spool.figures().bytes)
        settings.maxBytes = total / 3
        settings.acceptedFraction = 1
        spool.update(settings)
        #expect(Self.waitUntil { (spool.figures().bytes ?? .max) <= total / 3 })
        #expect(spool.figures().maxBytes == total / 3)
        // Sampling changed too: every accepted bean is now kept.
        #expect(spool.offer(Self.record(id: 99, verdict: .accept, eject: false), crop: Self.crop(id: 99), unixMicroseconds: 99) != nil)
        settings.enabled = false
        spool.update(settings)
        #expect(spool.offer(Self.record(id: 100, verdict: .reject, eject: true), crop: Self.crop(id: 100), unixMicroseconds: 100) == nil)
        #expect(spool.figures().state == "disabled")
        spool.stop(until: .now() + .seconds(10))
        let onDisk = Self.jpegFiles(under: temp.file("spool")).reduce(Int64(0)) { $0 + Self.size(temp.file("spool/" + $1)) }
        #expect(onDisk <= total / 3)
    }
}
