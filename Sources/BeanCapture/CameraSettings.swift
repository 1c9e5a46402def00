/// What a V4L2 camera is asked for: one value per `[[camera]]` table of the config. A config
/// struct kept apart from the camera's runtime state (µStreamer's split), so it can be validated and
/// compared on reload without touching a device.
public struct CameraSettings: Sendable, Equatable {
    /// Pixel format asked of the driver.
    public enum PixelFormatPreference: String, Sendable, Equatable, CaseIterable {
        /// RGB24 when the driver has it natively, else YUYV converted here, else RGB24 converted by
        /// libv4lconvert (MJPEG and other compressed formats).
        case auto
        /// Always ask libv4l2 for RGB24; libv4lconvert converts when the driver lacks it.
        case rgb24
        /// Ask the driver for YUYV and convert it here (fails if the driver has no YUYV).
        case yuyv
    }

    /// Camera name used in logs, health and every frame.
    public var name: String
    /// Device node path (`/dev/video0`) or the name of a link in `/dev/v4l/by-id` or
    /// `/dev/v4l/by-path` (looked up again on every reopen, so a replugged camera is found).
    public var device: String
    public var width: Int
    public var height: Int
    /// Frames per second asked of the driver (VIDIOC_S_PARM); the driver may round it.
    public var fps: Double
    public var pixelFormat: PixelFormatPreference
    /// mmap buffers requested from the driver (2…32).
    public var bufferCount: Int
    /// Seconds without a frame after which the device is considered lost.
    public var deviceTimeout: Double
    /// When true, a lost device ends capture with an error (for users who prefer systemd to restart
    /// the daemon); when false, the camera is reopened with backoff.
    public var exitOnLoss: Bool
    /// First and longest wait between reopen attempts, in seconds; the wait doubles in between.
    public var reopenBackoffInitial: Double
    public var reopenBackoffMax: Double

    public init(name: String, device: String, width: Int = 1280, height: Int = 720, fps: Double = 30,
                pixelFormat: PixelFormatPreference = .auto, bufferCount: Int = 4, deviceTimeout: Double = 2,
                exitOnLoss: Bool = false, reopenBackoffInitial: Double = 0.5, reopenBackoffMax: Double = 10) {
        self.name = name
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.pixelFormat = pixelFormat
        self.bufferCount = bufferCount
        self.deviceTimeout = deviceTimeout
        self.exitOnLoss = exitOnLoss
        self.reopenBackoffInitial = reopenBackoffInitial
        self.reopenBackoffMax = reopenBackoffMax
    }

    /// Problems with the values themselves, each naming the camera and the key; empty when valid.
    public func validationErrors() -> [String] {
        var errors: [String] = []
        func bad(_ key: String, _ why: String) { errors.append("camera \(name): \(key) \(why)") }
        if name.isEmpty { errors.append("camera: name must not be empty") }
        if device.isEmpty { bad("device", "must not be empty") }
        if !(16...8192).contains(width) || width % 2 != 0 { bad("width", "must be an even number in 16…8192, got \(width)") }
        if !(16...8192).contains(height) { bad("height", "must be in 16…8192, got \(height)") }
        if !(fps > 0 && fps <= 1000) { bad("fps", "must be in (0, 1000], got \(fps)") }
        if !(2...32).contains(bufferCount) { bad("buffers", "must be in 2…32, got \(bufferCount)") }
        if !(deviceTimeout >= 0.05 && deviceTimeout <= 600) { bad("device_timeout", "must be in 0.05…600 s, got \(deviceTimeout)") }
        if !(reopenBackoffInitial > 0 && reopenBackoffInitial <= reopenBackoffMax && reopenBackoffMax <= 3600) {
            bad("reopen_backoff", "needs 0 < initial (\(reopenBackoffInitial)) ≤ max (\(reopenBackoffMax)) ≤ 3600 s")
        }
        return errors
    }
}
