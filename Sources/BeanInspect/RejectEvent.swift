#if canImport(Glibc)
import Glibc
#endif
import BeanCore

/// One ejected bean as the reject stream and journald report it. Built by the decision thread from
/// a decided `BeanRecord`; the stream server adds the sequence number (schema: beand-rejects(7)).
public struct RejectEvent: Sendable, Hashable {
    public var beanID: UInt64
    public var camera: String
    public var frameSequence: UInt64
    public var lane: Int?
    public var verdict: Verdict
    public var reason: Decision.Reason?
    public var label: Label?
    public var score: Double?
    public var captured: MonotonicInstant
    public var decided: MonotonicInstant?
    public var ejectAt: MonotonicInstant?
    /// Wall-clock time of the decision in microseconds since the Unix epoch, for people and logs.
    public var unixMicroseconds: UInt64
    public var neighbors: [Neighbor]
    /// Where the bean's crop is written in the spool, relative to the spool directory
    /// (`reject/Black/…jpg`); nil when the spool is disabled or dropped the crop. The file appears
    /// shortly after the event: the spool writer runs behind the decisions.
    public var crop: String?

    public init(beanID: UInt64, camera: String, frameSequence: UInt64, lane: Int?, verdict: Verdict,
                reason: Decision.Reason?, label: Label?, score: Double?, captured: MonotonicInstant,
                decided: MonotonicInstant?, ejectAt: MonotonicInstant?, unixMicroseconds: UInt64 = RejectEvent.wallClockNow(),
                neighbors: [Neighbor]) {
        self.beanID = beanID
        self.camera = camera
        self.frameSequence = frameSequence
        self.lane = lane
        self.verdict = verdict
        self.reason = reason
        self.label = label
        self.score = score
        self.captured = captured
        self.decided = decided
        self.ejectAt = ejectAt
        self.unixMicroseconds = unixMicroseconds
        self.neighbors = neighbors
    }

    /// The event for a decided record that is ejected; nil for beans that stay on the belt (they
    /// are not in the reject stream).
    public init?(record: BeanRecord, unixMicroseconds: UInt64 = RejectEvent.wallClockNow()) {
        guard record.eject, let verdict = record.verdict else { return nil }
        self.init(beanID: record.id, camera: record.camera, frameSequence: record.frameSequence, lane: record.lane,
                  verdict: verdict, reason: record.reason, label: record.label, score: record.score,
                  captured: record.captured, decided: record.decided, ejectAt: record.ejectAt,
                  unixMicroseconds: unixMicroseconds, neighbors: record.neighbors)
    }

    public static func wallClockNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(ts.tv_sec, 0)) * 1_000_000 + UInt64(max(ts.tv_nsec, 0)) / 1_000
    }

    // MARK: - JSON (beand-rejects(7))

    /// The event's members after `"type"` and `"seq"`, without braces, in schema order. The stream
    /// server computes this on the publishing thread and splices in the sequence number.
    public func jsonMembers() -> String {
        var out = ""
        out.reserveCapacity(256 + neighbors.count * 64)
        out += "\"bean_id\":\(beanID),\"camera\":"
        JSONText.appendString(camera, to: &out)
        out += ",\"frame_seq\":\(frameSequence),\"lane\":"
        out += lane.map { "\($0)" } ?? "null"
        out += ",\"verdict\":\"\(verdict.rawValue)\",\"reason\":"
        if let reason { out += "\"\(reason.rawValue)\"" } else { out += "null" }
        out += ",\"label\":"
        if let label { JSONText.appendString(label.name, to: &out) } else { out += "null" }
        out += ",\"score\":"
        JSONText.appendNumber(score, to: &out)
        out += ",\"captured_mono_us\":\(captured.microseconds),\"decided_mono_us\":"
        out += decided.map { "\($0.microseconds)" } ?? "null"
        out += ",\"eject_at_mono_us\":"
        out += ejectAt.map { "\($0.microseconds)" } ?? "null"
        out += ",\"time_unix_us\":\(unixMicroseconds),\"neighbors\":"
        out += neighborsJSON()
        out += ",\"crop\":"
        if let crop { JSONText.appendString(crop, to: &out) } else { out += "null" }
        return out
    }

    /// One complete stream line (with the trailing newline).
    public func jsonLine(seq: UInt64) -> String {
        "{\"type\":\"reject\",\"seq\":\(seq),\(jsonMembers())}\n"
    }

    /// `[{"label":…,"distance":…,"vector_id":…},…]`, nearest first.
    public func neighborsJSON() -> String {
        var out = "["
        for (index, neighbor) in neighbors.enumerated() {
            if index > 0 { out += "," }
            out += "{\"label\":"
            JSONText.appendString(neighbor.label.name, to: &out)
            out += ",\"distance\":"
            JSONText.appendNumber(neighbor.distance.isFinite ? Double(neighbor.distance) : nil, to: &out,
                                  text: neighbor.distance.isFinite ? "\(neighbor.distance)" : nil)
            out += ",\"vector_id\":\(neighbor.vectorID)}"
        }
        return out + "]"
    }

    // MARK: - journald

    /// Journal fields for the per-reject entry, in a fixed order. The daemon adds MESSAGE_ID,
    /// PRIORITY and MESSAGE (see `journalMessage`). NEIGHBORS is the same JSON array as the stream's.
    public var journalFields: [(name: String, value: String)] {
        [
            ("BEAN_ID", "\(beanID)"),
            ("CAMERA", camera),
            ("LANE", lane.map { "\($0)" } ?? ""),
            ("VERDICT", verdict.rawValue),
            ("REASON", reason?.rawValue ?? ""),
            ("LABEL", label?.name ?? ""),
            ("SCORE", score.map { $0.isFinite ? "\($0)" : "" } ?? ""),
            ("NEIGHBORS", neighborsJSON()),
            ("FRAME_SEQ", "\(frameSequence)"),
            ("CROP", crop ?? ""),
        ]
    }

    /// `journalFields` as a dictionary, for APIs that take one.
    public var journalFieldDictionary: [String: String] {
        Dictionary(journalFields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// A one-line human summary, e.g. `reject bean 17 cam0 lane 2: Black (score 0.83, vote)`.
    public var journalMessage: String {
        var text = "\(verdict.rawValue) bean \(beanID) \(camera)"
        if let lane { text += " lane \(lane)" }
        text += ": \(label?.name ?? "-")"
        var details: [String] = []
        if let score, score.isFinite { details.append("score \(score)") }
        if let reason { details.append(reason.rawValue) }
        if !details.isEmpty { text += " (" + details.joined(separator: ", ") + ")" }
        return text
    }
}


