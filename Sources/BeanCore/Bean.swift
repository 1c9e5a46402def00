/// A label as operators name it (`Normal`, `Black`, `Broken`, …). The store keeps a table of them;
/// `normal` is the label the one-class mode and the sorter metrics treat as good.
public struct Label: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
    public var description: String { name }
    public static let normal = Label("Normal")
}

/// What happens to a bean.
public enum Verdict: String, Sendable, Hashable, Codable {
    case accept
    case reject
    /// Nearest neighbour too far from anything in the store; policy decides accept or reject.
    case unknown
    /// Not scored before its eject time (encoder overloaded); the fail-safe policy applied.
    case unscored
}

/// One segmented bean, cropped and oriented, ready for the encoder.
public struct BeanCrop: Sendable {
    public var camera: String
    public var frameSequence: UInt64
    public var captured: MonotonicInstant
    /// Tracker id, unique per camera for the daemon's lifetime.
    public var beanID: UInt64
    public var width: Int
    public var height: Int
    /// RGB24, background masked to a constant.
    public var pixels: [UInt8]

    public init(camera: String, frameSequence: UInt64, captured: MonotonicInstant, beanID: UInt64,
                width: Int, height: Int, pixels: [UInt8]) {
        self.camera = camera
        self.frameSequence = frameSequence
        self.captured = captured
        self.beanID = beanID
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
