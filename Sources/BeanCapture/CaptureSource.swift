import BeanCore

/// Where a camera's frames come from, as the config's `source` key names it:
///
/// - `v4l2:/dev/video0` or `v4l2:NAME` — a V4L2 device by path, or by the name of a link in
///   `/dev/v4l/by-id` or `/dev/v4l/by-path` (`v4l2:usb-046d_C920_ABC-video-index0`);
/// - `replay:/path/to/dir` — the JPEG/PNG files of a directory, in name order;
/// - `belt:/path/to/photo.jpg` — the belt simulator scrolling that photo past the window.
public enum SourceURI: Sendable, Equatable, CustomStringConvertible {
    case v4l2(device: String)
    case replay(directory: String)
    case belt(photo: String)

    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":") else {
            throw SourceURIError(value: text, detail: "expected SCHEME:TARGET with scheme v4l2, replay or belt")
        }
        let scheme = String(text[..<colon]), target = String(text[text.index(after: colon)...])
        guard !target.isEmpty else { throw SourceURIError(value: text, detail: "nothing after \"\(scheme):\"") }
        switch scheme {
        case "v4l2": self = .v4l2(device: target)
        case "replay": self = .replay(directory: target)
        case "belt": self = .belt(photo: target)
        default: throw SourceURIError(value: text, detail: "unknown scheme \"\(scheme)\" (v4l2, replay or belt)")
        }
    }

    public var description: String {
        switch self {
        case .v4l2(let device): return "v4l2:\(device)"
        case .replay(let directory): return "replay:\(directory)"
        case .belt(let photo): return "belt:\(photo)"
        }
    }
}

public struct SourceURIError: Error, CustomStringConvertible, Equatable {
    public var value: String
    public var detail: String
    public var description: String { "source \"\(value)\": \(detail)" }
}

/// Everything one `[[camera]]` table configures, whatever its source. Keys that do not apply to the
/// source's scheme are ignored by it (documented per key in beand.toml(5)).
public struct CaptureSourceSettings: Sendable, Equatable {
    public var name: String
    public var source: SourceURI
    /// Frame size: asked of the camera (v4l2), the window size (belt); replay keeps file sizes.
    public var width: Int = 1280
    public var height: Int = 720
    public var fps: Double = 30
    // v4l2
    public var pixelFormat: CameraSettings.PixelFormatPreference = .auto
    public var bufferCount: Int = 4
    public var deviceTimeout: Double = 2
    public var exitOnLoss: Bool = false
    public var reopenBackoffInitial: Double = 0.5
    public var reopenBackoffMax: Double = 10
    // replay and belt
    /// Replay: start again after the last file. Belt: bring the photo round again.
    public var loop: Bool = true
    public var pacing: Pacing = .realtime
    // belt
    public var beltSpeed: Double = 600
    public var beltColor: (UInt8, UInt8, UInt8)?

    public init(name: String, source: SourceURI) {
        self.name = name
        self.source = source
    }

    public var cameraSettings: CameraSettings {
        let device: String
        if case .v4l2(let d) = source { device = d } else { device = "" }
        return CameraSettings(name: name, device: device, width: width, height: height, fps: fps,
                              pixelFormat: pixelFormat, bufferCount: bufferCount, deviceTimeout: deviceTimeout,
                              exitOnLoss: exitOnLoss, reopenBackoffInitial: reopenBackoffInitial,
                              reopenBackoffMax: reopenBackoffMax)
    }

    /// Opens the source: a camera (which opens its device on the first `nextFrame()`), a replay
    /// (lists the directory now) or a belt (decodes the photo now). Errors name the camera and file.
    public func makeSource(events: CameraEventSink? = nil) throws -> FrameSource {
        switch source {
        case .v4l2:
            return try V4L2Camera(settings: cameraSettings, events: events)
        case .replay(let directory):
            return try DirectoryReplay(name: name, directory: directory, fps: fps, loop: loop, pacing: pacing)
        case .belt(let photo):
            let still = try ImageCodec.decode(path: photo)
            return try BeltSimulator(name: name, photo: still,
                                     settings: .init(windowWidth: width, windowHeight: height, beltSpeed: beltSpeed,
                                                     fps: fps, wrap: loop, beltColor: beltColor),
                                     pacing: pacing)
        }
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.source == b.source && a.width == b.width && a.height == b.height && a.fps == b.fps
            && a.pixelFormat == b.pixelFormat && a.bufferCount == b.bufferCount && a.deviceTimeout == b.deviceTimeout
            && a.exitOnLoss == b.exitOnLoss && a.reopenBackoffInitial == b.reopenBackoffInitial
            && a.reopenBackoffMax == b.reopenBackoffMax && a.loop == b.loop && a.pacing == b.pacing
            && a.beltSpeed == b.beltSpeed && a.beltColor.map { [$0.0, $0.1, $0.2] } == b.beltColor.map { [$0.0, $0.1, $0.2] }
    }
}
