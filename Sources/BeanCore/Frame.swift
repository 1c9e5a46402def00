/// One image from a camera, replay directory or belt simulator.
///
/// `pixels` is row-major with `stride` bytes per row (stride ≥ width × bytesPerPixel, so a frame can
/// wrap a padded camera buffer without copying).
public struct Frame: Sendable {
    public var camera: String
    /// Sequence number as the source counts it; strictly increasing per source.
    public var sequence: UInt64
    /// When the frame was captured, on the monotonic clock.
    public var captured: MonotonicInstant
    public var width: Int
    public var height: Int
    public var stride: Int
    public var format: PixelFormat
    public var pixels: [UInt8]

    public init(camera: String, sequence: UInt64, captured: MonotonicInstant, width: Int, height: Int,
                stride: Int? = nil, format: PixelFormat, pixels: [UInt8]) {
        self.camera = camera
        self.sequence = sequence
        self.captured = captured
        self.width = width
        self.height = height
        self.stride = stride ?? width * format.bytesPerPixel
        self.format = format
        self.pixels = pixels
    }
}
