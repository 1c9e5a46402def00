#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import Testing
@testable import BeanCapture

@Suite struct DirectoryReplayTests {
    /// Three solid-colour PNGs (red, green, blue by name order) plus a file that is not an image.
    func makeDirectory() throws -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        let colours: [(String, (UInt8, UInt8, UInt8))] = [("b.png", (0, 255, 0)), ("a.png", (255, 0, 0)), ("c.jpeg", (0, 0, 255))]
        for (name, colour) in colours {
            try ImageCodec.write(syntheticFrame(width: 8, height: 6) { _, _ in colour }, to: dir.file(name))
        }
        try dir.write("notes.txt", Array("not an image".utf8))
        try dir.write(".hidden.png", Array("skipped".utf8))
        return dir
    }

    @Test func playsOnceInNameOrder() throws {
        let dir = try makeDirectory()
        defer { dir.cleanup() }
        let replay = try DirectoryReplay(name: "cam", directory: dir.path, fps: 100, loop: false, pacing: .unpaced)
        #expect(replay.files.map { $0.split(separator: "/").last.map(String.init) } == ["a.png", "b.png", "c.jpeg"])
        var frames: [Frame] = []
        while let f = try replay.nextFrame() { frames.append(f) }
        #expect(frames.count == 3)
        #expect(frames.map(\.sequence) == [0, 1, 2])
        #expect(frames.allSatisfy { $0.camera == "cam" && $0.width == 8 && $0.height == 6 })
        #expect(pixel(frames[0], 3, 3)[0] > 240 && pixel(frames[1], 3, 3)[1] > 240 && pixel(frames[2], 3, 3)[2] > 240)
        // Unpaced: timestamps are spaced exactly 1/fps apart.
        #expect(frames[2].captured.nanoseconds - frames[0].captured.nanoseconds == 20_000_000)
    }

    @Test func loopsForever() throws {
        let dir = try makeDirectory()
        defer { dir.cleanup() }
        let replay = try DirectoryReplay(name: "cam", directory: dir.path, fps: 100, loop: true, pacing: .unpaced)
        var reds = 0
        for n in 0..<7 {
            let f = try #require(try replay.nextFrame())
            #expect(f.sequence == UInt64(n))
            if pixel(f, 0, 0)[0] > 240 { reds += 1 }
        }
        #expect(reds == 3) // frames 0, 3, 6
    }

    @Test func realtimePacingHoldsTheRate() throws {
        let dir = try makeDirectory()
        defer { dir.cleanup() }
        let replay = try DirectoryReplay(name: "cam", directory: dir.path, fps: 50, loop: true)
        let start = MonotonicInstant.now()
        for _ in 0..<6 { _ = try replay.nextFrame() }
        // Six frames at 50 fps span five intervals: at least 100 ms.
        #expect(MonotonicInstant.now().seconds(since: start) >= 0.095)
    }

    @Test func corruptImageEndsReplayWithItsName() throws {
        let dir = try makeDirectory()
        defer { dir.cleanup() }
        try dir.write("b.png", Array("garbage".utf8))
        let replay = try DirectoryReplay(name: "cam", directory: dir.path, fps: 100, loop: false, pacing: .unpaced)
        _ = try replay.nextFrame()
        let error = #expect(throws: ImageCodecError.self) { try replay.nextFrame() }
        #expect(error?.file == dir.file("b.png"))
    }

    @Test func emptyOrMissingDirectoryIsAnError() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let empty = #expect(throws: ReplayError.self) { try DirectoryReplay(name: "c", directory: dir.path, fps: 10, loop: false) }
        #expect(empty?.description.contains("no .jpg, .jpeg or .png") == true)
        let missing = #expect(throws: ReplayError.self) { try DirectoryReplay(name: "c", directory: dir.file("nope"), fps: 10, loop: false) }
        #expect(missing?.source == dir.file("nope"))
        #expect(throws: ReplayError.self) { try DirectoryReplay(name: "c", directory: dir.path, fps: 0, loop: false) }
    }
}

@Suite struct BeltSimulatorTests {
    let belt: (UInt8, UInt8, UInt8) = (10, 20, 30)

    /// A 20×30 photo of a plain (200, 200, 200) tray with one 4×4 "bean" (255, 0, 0) at x 8…11,
    /// y 12…15.
    func photo() -> Frame {
        syntheticFrame(width: 20, height: 30) { x, y in
            (8...11).contains(x) && (12...15).contains(y) ? (255, 0, 0) : (200, 200, 200)
        }
    }

    func simulator(wrap: Bool, width: Int = 20, height: Int = 20) throws -> BeltSimulator {
        // 100 px/s at 10 fps: the belt moves 10 px per frame.
        try BeltSimulator(name: "belt", photo: photo(),
                          settings: .init(windowWidth: width, windowHeight: height, beltSpeed: 100, fps: 10,
                                          wrap: wrap, beltColor: belt),
                          pacing: .unpaced)
    }

    /// Rows of the window where the bean's red shows, in column 9.
    func beanRows(_ f: Frame, column: Int = 9) -> [Int] {
        (0..<f.height).filter { pixel(f, column, $0) == [255, 0, 0] }
    }

    @Test func beanEntersCrossesAndLeavesTheView() throws {
        let sim = try simulator(wrap: false)
        var rows: [[Int]] = []
        var frames: [Frame] = []
        while let f = try sim.nextFrame() {
            frames.append(f)
            rows.append(beanRows(f))
        }
        #expect(frames.count == sim.framesPerPass)
        #expect(frames.first.map { Set($0.pixels) } == [10, 20, 30], "the view starts as empty belt")
        #expect(frames.last.map { Set($0.pixels) } == [10, 20, 30], "and ends as empty belt")
        // Bean top row on the photo is 12; at belt offset o it shows at window row 12 + o - 30.
        let visible = rows.enumerated().filter { !$0.element.isEmpty }
        #expect(!visible.isEmpty)
        for (k, r) in visible {
            let top = 12 + 10 * k - 30
            #expect(r == Array(max(0, top)...min(19, top + 3)), "frame \(k)")
        }
        // It moves down by exactly 10 px a frame while fully in view.
        let full = visible.filter { $0.element.count == 4 }.map { $0.element[0] }
        #expect(zip(full, full.dropFirst()).allSatisfy { $1 - $0 == 10 })
        #expect(frames.map(\.sequence) == (0..<UInt64(frames.count)).map { $0 })
    }

    @Test func wrapComesRoundWithThePeriod() throws {
        let sim = try simulator(wrap: true)
        // Period = photo 30 + window 20 = 50 px = 5 frames.
        var frames: [Frame] = []
        for _ in 0..<12 { frames.append(try #require(try sim.nextFrame())) }
        #expect(frames[3].pixels == frames[8].pixels)
        #expect(frames[4].pixels == frames[9].pixels)
        #expect(frames[3].pixels != frames[4].pixels)
    }

    @Test func isDeterministicAndHeldFramesStayIntact() throws {
        let a = try simulator(wrap: true), b = try simulator(wrap: true)
        var held: [Frame] = []
        for _ in 0..<10 { held.append(try #require(try a.nextFrame())) }
        // The ring has fewer slots than frames held: copy-on-write must keep old frames unchanged.
        for k in 0..<10 {
            let fresh = try #require(try b.nextFrame())
            #expect(held[k].pixels == fresh.pixels, "frame \(k)")
        }
    }

    @Test func photoIsCentredAndPaddedOrCropped() throws {
        let wide = try simulator(wrap: true, width: 30)
        var f = try #require(try wide.nextFrame())
        while beanRows(f, column: 14).isEmpty { f = try #require(try wide.nextFrame()) }
        // Photo 20 wide centred in 30: columns 5…24 are photo, the rest belt.
        let row = beanRows(f, column: 14)[0]
        #expect(pixel(f, 4, row) == [10, 20, 30] && pixel(f, 25, row) == [10, 20, 30])
        #expect(pixel(f, 5, row) == [200, 200, 200] && pixel(f, 13, row) == [255, 0, 0])

        let narrow = try simulator(wrap: true, width: 10)
        var g = try #require(try narrow.nextFrame())
        // Photo 20 wide in 10: columns 5…14 of the photo; the bean (8…11) is at 3…6.
        while beanRows(g, column: 4).isEmpty { g = try #require(try narrow.nextFrame()) }
        let r = beanRows(g, column: 4)[0]
        #expect(pixel(g, 2, r) == [200, 200, 200] && pixel(g, 3, r) == [255, 0, 0] && pixel(g, 6, r) == [255, 0, 0])
        #expect(pixel(g, 7, r) == [200, 200, 200])
    }

    @Test func defaultBeltColourIsThePhotoEdgeMean() throws {
        let sim = try BeltSimulator(name: "b", photo: photo(),
                                    settings: .init(windowWidth: 20, windowHeight: 20, beltSpeed: 100, fps: 10, wrap: false))
        let first = try #require(try sim.nextFrame())
        #expect(pixel(first, 0, 0) == [200, 200, 200])
    }

    /// A capture thread that falls behind (here: 250 ms without taking a frame at 20 fps) gets the
    /// frame due now, not the next one late: its number, its time stamp and the belt it shows agree,
    /// as with a real camera whose driver dropped the frames nobody took.
    @Test func realtimeFrameAfterAStallShowsTheBeltOfItsTime() throws {
        // 200 px/s at 20 fps: 10 px per frame; the photo's bean enters a 20 px window from the top.
        let sim = try BeltSimulator(name: "b", photo: photo(),
                                    settings: .init(windowWidth: 20, windowHeight: 20, beltSpeed: 200, fps: 20,
                                                    wrap: true, beltColor: belt), pacing: .realtime)
        let first = try #require(try sim.nextFrame())
        let second = try #require(try sim.nextFrame())
        #expect(second.sequence == first.sequence + 1)
        #expect(second.captured.nanoseconds - first.captured.nanoseconds == 50_000_000)
        usleep(250_000)
        let late = try #require(try sim.nextFrame())
        let skipped = late.sequence - second.sequence
        #expect(skipped >= 5, "frames skipped after a 250 ms stall at 20 fps: \(skipped - 1)")
        #expect(late.captured.nanoseconds - first.captured.nanoseconds == late.sequence * 50_000_000)
        // The content is that of frame `late.sequence` (positions follow the frame number).
        let unpaced = try simulator(wrap: true, width: 20, height: 20)
        var reference: Frame?
        for _ in 0...late.sequence { reference = try unpaced.nextFrame() }
        #expect(late.pixels == (try #require(reference)).pixels)
        let next = try #require(try sim.nextFrame())
        #expect(next.sequence == late.sequence + 1)
    }

    @Test func rejectsBadSettings() {
        let p = photo()
        #expect(throws: ReplayError.self) {
            try BeltSimulator(name: "b", photo: p, settings: .init(windowWidth: 20, windowHeight: 20, beltSpeed: 0, fps: 10, wrap: false))
        }
        #expect(throws: ReplayError.self) {
            try BeltSimulator(name: "b", photo: p, settings: .init(windowWidth: 1, windowHeight: 20, beltSpeed: 5, fps: 10, wrap: false))
        }
        let gray = Frame(camera: "g", sequence: 0, captured: .now(), width: 2, height: 2, format: .gray8, pixels: [0, 0, 0, 0])
        #expect(throws: ReplayError.self) {
            try BeltSimulator(name: "b", photo: gray, settings: .init(windowWidth: 20, windowHeight: 20, beltSpeed: 5, fps: 10, wrap: false))
        }
    }
}
