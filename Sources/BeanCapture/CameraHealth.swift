import BeanCore

/// Where a camera is in its life.
public enum CameraState: String, Sendable, Equatable {
    /// Not opened yet.
    case starting
    /// Frames are arriving.
    case streaming
    /// The device vanished, failed or timed out; it has been closed.
    case lost
    /// Waiting between attempts to open the device again.
    case reopening
    /// Stopped on request, or after a loss with `exitOnLoss`.
    case stopped
}

/// What the camera negotiated with the driver.
public struct NegotiatedFormat: Sendable, Equatable, CustomStringConvertible {
    /// The device node actually opened (a by-id name resolved).
    public var devicePath: String
    public var driver: String
    public var card: String
    public var width: Int
    public var height: Int
    /// FourCC the driver (or libv4lconvert) delivers, e.g. `YUYV`, `RGB3`.
    public var fourcc: String
    /// True when libv4lconvert emulates the format (the driver delivers something else).
    public var convertedByLibv4l: Bool
    /// True when YUYV is converted to RGB24 by this module.
    public var convertedNatively: Bool
    public var fps: Double
    public var buffers: Int

    public var description: String {
        let conversion = convertedNatively ? " (YUYV→RGB here)" : (convertedByLibv4l ? " (libv4lconvert)" : "")
        return "\(devicePath) [\(driver) \(card)] \(width)x\(height) \(fourcc)\(conversion) \(fps) fps, \(buffers) buffers"
    }
}

/// A snapshot of a camera's health, as the daemon's status shows it.
public struct CameraHealth: Sendable, Equatable {
    public var camera: String
    public var state: CameraState
    /// Frames per second delivered, measured over the last second or so.
    public var measuredFPS: Double
    public var framesDelivered: UInt64
    /// Frames the driver dropped (gaps in its sequence numbers) or flagged as errors.
    public var droppedFrames: UInt64
    /// Frames dequeued but discarded because a fresher one was already waiting.
    public var skippedFrames: UInt64
    /// Times the device was lost since start.
    public var losses: UInt64
    public var lastFrameAt: MonotonicInstant?
    /// Why the device was last lost or could not be opened.
    public var lastError: String?
    public var format: NegotiatedFormat?

    public init(camera: String) {
        self.camera = camera
        state = .starting
        measuredFPS = 0
        framesDelivered = 0
        droppedFrames = 0
        skippedFrames = 0
        losses = 0
    }

    /// Seconds since the last frame, or `nil` before the first.
    public func lastFrameAge(now: MonotonicInstant = .now()) -> Double? {
        lastFrameAt.map { now.seconds(since: $0) }
    }
}

/// The single place a camera's health is published. Ownership: only the camera's capture thread
/// calls `update`; any thread may call `snapshot`.
public final class CameraHealthBoard: @unchecked Sendable {
    private let lock = ConditionLock()
    private var health: CameraHealth

    public init(camera: String) { health = CameraHealth(camera: camera) }

    public func snapshot() -> CameraHealth { lock.withLock { health } }

    func update(_ body: (inout CameraHealth) -> Void) { lock.withLock { body(&health) } }
}

/// A camera state change, reported once per change (never once per failed attempt or frame).
public struct CameraEvent: Sendable, Equatable {
    public var camera: String
    public var state: CameraState
    public var message: String
}

/// Receives camera state changes; the daemon forwards them to its logger. BeanCapture has no
/// logging dependency of its own.
public protocol CameraEventSink: Sendable {
    func cameraEvent(_ event: CameraEvent)
}

/// A sink from a closure.
public struct ClosureCameraEventSink: CameraEventSink {
    private let body: @Sendable (CameraEvent) -> Void
    public init(_ body: @escaping @Sendable (CameraEvent) -> Void) { self.body = body }
    public func cameraEvent(_ event: CameraEvent) { body(event) }
}

/// Measures frames per second over windows of at least one second.
struct RateMeter {
    private var windowStart: UInt64 = 0
    private var framesInWindow = 0
    private(set) var rate: Double = 0

    mutating func tick(now: UInt64) {
        guard windowStart != 0 else { windowStart = now; return }
        framesInWindow += 1
        let elapsed = now - windowStart
        if elapsed >= 1_000_000_000 {
            rate = Double(framesInWindow) / (Double(elapsed) / 1e9)
            windowStart = now
            framesInWindow = 0
        }
    }

    mutating func reset() { self = RateMeter() }
}
