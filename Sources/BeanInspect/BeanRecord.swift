import BeanCore

/// One of the k vectors the store returned for a bean.
public struct Neighbor: Sendable, Hashable, Codable {
    public var label: Label
    /// Distance as the store reports it (smaller is closer, ≥ 0). The policy never assumes a
    /// particular metric; thresholds on distances are in the store's unit.
    public var distance: Float
    /// The store's id of the vector, so a reviewer can look up the image it came from.
    public var vectorID: UInt64

    public init(label: Label, distance: Float, vectorID: UInt64) {
        self.label = label
        self.distance = distance
        self.vectorID = vectorID
    }
}

/// Everything the pipeline learned about one bean, from capture to decision. One record per
/// bean; the decision thread fills the last fields and hands the record to the outputs.
public struct BeanRecord: Sendable, Hashable {
    /// Tracker id; unique per camera for the daemon's lifetime (`BeanCrop.beanID`).
    public var id: UInt64
    public var camera: String
    public var frameSequence: UInt64
    public var captured: MonotonicInstant
    public var segmented: MonotonicInstant?
    public var embedded: MonotonicInstant?
    public var decided: MonotonicInstant?
    /// Ejector lane across the belt, when the camera is mapped to lanes.
    public var lane: Int?
    /// When the bean passes the ejector; the fail-safe applies to beans not decided before it.
    public var ejectAt: MonotonicInstant?
    public var verdict: Verdict?
    /// Why the policy (or the fail-safe) decided so.
    public var reason: Decision.Reason?
    /// The label the verdict is about (see `Decision.label`).
    public var label: Label?
    /// See `Decision.score`: a vote share in vote mode, a mean distance in one-class mode.
    public var score: Double?
    /// Whether the ejector blows this bean off the belt.
    public var eject: Bool
    /// The neighbours the decision used, nearest first.
    public var neighbors: [Neighbor]

    public init(id: UInt64, camera: String, frameSequence: UInt64, captured: MonotonicInstant,
                segmented: MonotonicInstant? = nil, embedded: MonotonicInstant? = nil,
                decided: MonotonicInstant? = nil, lane: Int? = nil, ejectAt: MonotonicInstant? = nil,
                verdict: Verdict? = nil, reason: Decision.Reason? = nil, label: Label? = nil, score: Double? = nil, eject: Bool = false,
                neighbors: [Neighbor] = []) {
        self.id = id
        self.camera = camera
        self.frameSequence = frameSequence
        self.captured = captured
        self.segmented = segmented
        self.embedded = embedded
        self.decided = decided
        self.lane = lane
        self.ejectAt = ejectAt
        self.verdict = verdict
        self.reason = reason
        self.label = label
        self.score = score
        self.eject = eject
        self.neighbors = neighbors
    }

    /// Copies a decision into the record and stamps the decision time.
    public mutating func apply(_ decision: Decision, neighbors: [Neighbor], at instant: MonotonicInstant) {
        self.verdict = decision.verdict
        self.reason = decision.reason
        self.label = decision.label
        self.score = decision.score
        self.eject = decision.eject
        self.neighbors = neighbors
        self.decided = instant
    }

    /// Capture → decision latency, once decided.
    public var latencyNanoseconds: UInt64? {
        guard let decided, decided >= captured else { return nil }
        return decided.nanoseconds - captured.nanoseconds
    }
}
