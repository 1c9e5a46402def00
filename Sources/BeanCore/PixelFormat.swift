/// Pixel layouts that travel between capture and vision. Capture converts whatever the camera
/// delivers into one of these before a frame leaves its thread.
public enum PixelFormat: String, Sendable, Hashable, Codable, CaseIterable {
    /// 8-bit R, G, B interleaved.
    case rgb24
    /// 8-bit single channel.
    case gray8

    public var bytesPerPixel: Int {
        switch self {
        case .rgb24: return 3
        case .gray8: return 1
        }
    }
}
