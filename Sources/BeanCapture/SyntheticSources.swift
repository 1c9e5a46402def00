#if canImport(Glibc)
import Glibc
#endif
import BeanCore

/// How a synthetic source spaces its frames in time.
public enum Pacing: Sendable, Equatable {
    /// Frames leave at the configured fps on the wall clock; `captured` is the real time (the belt
    /// simulator's: the time the frame was due, which its content shows).
    case realtime
    /// Frames are produced as fast as they are taken; `captured` is the start time plus
    /// sequence / fps, so the stream looks like a camera at that fps (load tests, replays in tests).
    case unpaced
}

public struct ReplayError: Error, CustomStringConvertible {
    public var source: String
    public var detail: String
    public var description: String { "\(source): \(detail)" }
}

/// JPEG/PNG files of a directory, in file-name order, at a set fps; looping or once.
///
/// Files are decoded as they are shown (a directory can hold more images than fit in memory).
/// A file that fails to decode ends the replay with an error naming it.
public final class DirectoryReplay: FrameSource {
    public let name: String
    public let directory: String
    /// The images, in the order they are replayed.
    public let files: [String]
    public let fps: Double
    public let loop: Bool
    public let pacing: Pacing

    private let stop = StopFlag()
    private var pacer: FramePacer
    private var index = 0
    private var sequence: UInt64 = 0
    private var start: MonotonicInstant?

    public init(name: String, directory: String, fps: Double, loop: Bool, pacing: Pacing = .realtime) throws {
        guard fps > 0 else { throw ReplayError(source: directory, detail: "fps must be positive, got \(fps)") }
        self.name = name
        self.directory = directory
        self.fps = fps
        self.loop = loop
        self.pacing = pacing
        self.files = try Self.listImages(in: directory)
        self.pacer = FramePacer(fps: pacing == .realtime ? fps : 0)
    }

    /// JPEG and PNG files directly in `directory`, sorted by name; hidden files are ignored.
    public static func listImages(in directory: String) throws -> [String] {
        guard let dir = opendir(directory) else {
            throw ReplayError(source: directory, detail: "cannot open directory: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix("."), ImageCodec.format(forPath: name) != nil else { continue }
            names.append(name)
        }
        guard !names.isEmpty else {
            throw ReplayError(source: directory, detail: "no .jpg, .jpeg or .png files to replay")
        }
        return names.sorted().map { directory.hasSuffix("/") ? directory + $0 : directory + "/" + $0 }
    }

    public func requestStop() { stop.raise() }

    public func nextFrame() throws -> Frame? {
        if index == files.count {
            guard loop else { return nil }
            index = 0
        }
        pacer.waitForNextFrame(stop: stop)
        if stop.isRaised { return nil }
        var frame = try ImageCodec.decode(path: files[index])
        index += 1
        frame.camera = name
        frame.sequence = sequence
        frame.captured = timestamp(for: sequence)
        sequence += 1
        return frame
    }

    private func timestamp(for sequence: UInt64) -> MonotonicInstant {
        guard pacing == .unpaced else { return .now() }
        let origin = start ?? .now()
        start = origin
        return MonotonicInstant(nanoseconds: origin.nanoseconds + UInt64(Double(sequence) * 1e9 / fps))
    }
}

/// A still photo scrolled past a virtual camera window, as beans on a conveyor pass a camera.
///
/// The belt runs downwards (+y): beans enter at the top edge, cross the view and leave at the
/// bottom, at `beltSpeed` pixels per second, one frame every 1/fps s — so each frame moves the belt
/// by beltSpeed/fps pixels. The photo sits on the belt followed by an empty stretch as long as the
/// window is high, so a bean never shows twice in one frame; with `wrap` the photo comes round
/// again, otherwise the stream ends once it has left the view. Horizontally the photo is centred in
/// the window (cropped when wider, padded with the belt colour when narrower). Positions are
/// computed from the frame number only, so two runs give identical frames.
public final class BeltSimulator: FrameSource {
    public struct Settings: Sendable, Equatable {
        public var windowWidth: Int
        public var windowHeight: Int
        /// Belt speed in pixels per second at the camera's scale.
        public var beltSpeed: Double
        public var fps: Double
        public var wrap: Bool
        /// Colour of the empty belt around and between photos; `nil` takes the mean colour of the
        /// photo's outermost rows and columns.
        public var beltColor: (UInt8, UInt8, UInt8)?

        public init(windowWidth: Int, windowHeight: Int, beltSpeed: Double, fps: Double, wrap: Bool,
                    beltColor: (UInt8, UInt8, UInt8)? = nil) {
            self.windowWidth = windowWidth
            self.windowHeight = windowHeight
            self.beltSpeed = beltSpeed
            self.fps = fps
            self.wrap = wrap
            self.beltColor = beltColor
        }

        public static func == (a: Settings, b: Settings) -> Bool {
            a.windowWidth == b.windowWidth && a.windowHeight == b.windowHeight && a.beltSpeed == b.beltSpeed
                && a.fps == b.fps && a.wrap == b.wrap && a.beltColor.map { [$0.0, $0.1, $0.2] } == b.beltColor.map { [$0.0, $0.1, $0.2] }
        }
    }

    public let name: String
    public let settings: Settings
    public let pacing: Pacing
    public let photoWidth: Int
    public let photoHeight: Int
    /// Belt pixels per frame.
    public var pixelsPerFrame: Double { settings.beltSpeed / settings.fps }
    /// Frames in one pass (photo entering until it has left); the whole stream when not wrapping.
    public var framesPerPass: Int { Int((Double(period) / pixelsPerFrame).rounded(.up)) + 1 }

    private let photo: [UInt8]
    private let fillRow: [UInt8]
    private let period: Int
    private let stop = StopFlag()
    private var pacer: FramePacer
    private var ring = PixelBufferRing(slots: 6)
    private var sequence: UInt64 = 0
    private var start: MonotonicInstant?

    public init(name: String, photo: Frame, settings: Settings, pacing: Pacing = .realtime) throws {
        func bad(_ detail: String) -> ReplayError { ReplayError(source: "belt simulator \(name)", detail: detail) }
        guard photo.format == .rgb24 else { throw bad("photo must be rgb24, is \(photo.format.rawValue)") }
        guard photo.width > 0, photo.height > 0, photo.pixels.count >= photo.stride * photo.height else {
            throw bad("photo \(photo.camera) has no pixels")
        }
        guard settings.windowWidth >= 2, settings.windowHeight >= 2, settings.windowWidth <= 16384, settings.windowHeight <= 16384 else {
            throw bad("window \(settings.windowWidth)x\(settings.windowHeight) outside 2…16384")
        }
        guard settings.fps > 0, settings.beltSpeed > 0 else {
            throw bad("belt speed (\(settings.beltSpeed) px/s) and fps (\(settings.fps)) must be positive")
        }
        self.name = name
        self.settings = settings
        self.pacing = pacing
        self.photoWidth = photo.width
        self.photoHeight = photo.height
        // Keep a tight copy so rows are contiguous whatever the input stride.
        var tight = [UInt8](repeating: 0, count: photo.width * photo.height * 3)
        for row in 0..<photo.height {
            let from = row * photo.stride
            tight.replaceSubrange(row * photo.width * 3 ..< (row + 1) * photo.width * 3,
                                  with: photo.pixels[from ..< from + photo.width * 3])
        }
        self.photo = tight
        let color = settings.beltColor ?? Self.edgeMean(tight, width: photo.width, height: photo.height)
        var fill = [UInt8](repeating: 0, count: settings.windowWidth * 3)
        for x in 0..<settings.windowWidth { fill[x * 3] = color.0; fill[x * 3 + 1] = color.1; fill[x * 3 + 2] = color.2 }
        self.fillRow = fill
        self.period = photo.height + settings.windowHeight
        self.pacer = FramePacer(fps: pacing == .realtime ? settings.fps : 0)
    }

    public func requestStop() { stop.raise() }

    /// How far the belt has moved at frame `sequence`, in whole pixels.
    public func beltOffset(atFrame sequence: UInt64) -> Int {
        Int((Double(sequence) * pixelsPerFrame).rounded(.down))
    }

    /// The photo row shown at window row `y` of frame `sequence`, or `nil` for empty belt.
    public func photoRow(windowRow y: Int, frame sequence: UInt64) -> Int? {
        // At offset 0 the photo's bottom edge is just above the window; it moves down from there.
        var r = y - beltOffset(atFrame: sequence) + photoHeight
        if settings.wrap { r = ((r % period) + period) % period }
        return (0..<photoHeight).contains(r) ? r : nil
    }

    public func nextFrame() throws -> Frame? {
        if !settings.wrap && beltOffset(atFrame: sequence) > period { return nil }
        let captured: MonotonicInstant
        switch pacing {
        case .realtime:
            // Frame n shows the belt at n × pixelsPerFrame and is stamped with its due time, even
            // when it is produced late; frames the thread was too late for are skipped (gaps in
            // the sequence numbers), as with a real camera.
            let (index, due) = pacer.waitForDueFrame(stop: stop)
            self.sequence = index
            captured = MonotonicInstant(nanoseconds: due)
            if !settings.wrap && beltOffset(atFrame: index) > period { return nil }
        case .unpaced:
            captured = timestamp(for: sequence)
        }
        if stop.isRaised { return nil }
        let w = settings.windowWidth, h = settings.windowHeight
        let sequence = self.sequence
        // Horizontal placement: photo column = window column - left.
        let left = (w - photoWidth) / 2
        let firstColumn = max(0, left), lastColumn = min(w, left + photoWidth)
        let pixels = ring.fill(count: w * h * 3) { out in
            guard let base = out.baseAddress else { return }
            photo.withUnsafeBufferPointer { photo in
                fillRow.withUnsafeBufferPointer { fill in
                    for y in 0..<h {
                        let destination = base + y * w * 3
                        guard let r = photoRow(windowRow: y, frame: sequence), firstColumn < lastColumn else {
                            destination.update(from: fill.baseAddress!, count: w * 3)
                            continue
                        }
                        if firstColumn > 0 { destination.update(from: fill.baseAddress!, count: firstColumn * 3) }
                        destination.advanced(by: firstColumn * 3).update(
                            from: photo.baseAddress! + (r * photoWidth + firstColumn - left) * 3,
                            count: (lastColumn - firstColumn) * 3)
                        if lastColumn < w {
                            destination.advanced(by: lastColumn * 3).update(from: fill.baseAddress!, count: (w - lastColumn) * 3)
                        }
                    }
                }
            }
        }
        self.sequence += 1
        return Frame(camera: name, sequence: sequence, captured: captured,
                     width: w, height: h, format: .rgb24, pixels: pixels)
    }

    /// Unpaced frames: the start time plus the frame's place in the schedule.
    private func timestamp(for sequence: UInt64) -> MonotonicInstant {
        let origin = start ?? .now()
        start = origin
        return MonotonicInstant(nanoseconds: origin.nanoseconds + UInt64(Double(sequence) * 1e9 / settings.fps))
    }

    private static func edgeMean(_ pixels: [UInt8], width: Int, height: Int) -> (UInt8, UInt8, UInt8) {
        var sum = (0, 0, 0), n = 0
        func add(_ x: Int, _ y: Int) {
            let i = (y * width + x) * 3
            sum.0 += Int(pixels[i]); sum.1 += Int(pixels[i + 1]); sum.2 += Int(pixels[i + 2]); n += 1
        }
        for x in 0..<width { add(x, 0); add(x, height - 1) }
        for y in 0..<height { add(0, y); add(width - 1, y) }
        return (UInt8(sum.0 / n), UInt8(sum.1 / n), UInt8(sum.2 / n))
    }
}
