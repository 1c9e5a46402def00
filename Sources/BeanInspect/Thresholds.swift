import BeanCore

/// The runtime-changeable numbers of the decision policy. `ThresholdBook` persists them.
public struct Thresholds: Sendable, Hashable {
    /// Vote share at which a defect label without its own entry rejects; in (0, 1].
    public var defaultRejectShare: Double
    /// Per defect label vote share thresholds; in (0, 1]. Good labels have none.
    public var rejectShare: [Label: Double]
    /// One-class mode: reject when the mean distance to the k nearest good vectors is above this.
    public var oneClassDistance: Double
    /// Unknown when the nearest neighbour is farther than this; nil never yields unknown.
    public var unknownDistance: Double?

    public init(defaultRejectShare: Double = 0.5, rejectShare: [Label: Double] = [:],
                oneClassDistance: Double = 1.0, unknownDistance: Double? = nil) {
        self.defaultRejectShare = defaultRejectShare
        self.rejectShare = rejectShare
        self.oneClassDistance = oneClassDistance
        self.unknownDistance = unknownDistance
    }

    public func rejectShare(for label: Label) -> Double {
        rejectShare[label] ?? defaultRejectShare
    }

    /// The first invalid field, described for an operator; nil when all are valid.
    public func problem(goodLabels: Set<Label>) -> String? {
        if let problem = ThresholdKey.defaultRejectShare.problem(with: defaultRejectShare) { return problem }
        for (label, share) in rejectShare.sorted(by: { $0.key.name < $1.key.name }) {
            if goodLabels.contains(label) {
                return "label \(label) is a good label; it cannot have a reject threshold"
            }
            if let problem = ThresholdKey.rejectShare(label).problem(with: share) { return problem }
        }
        if let problem = ThresholdKey.oneClassDistance.problem(with: oneClassDistance) { return problem }
        if let unknownDistance, let problem = ThresholdKey.unknownDistance.problem(with: unknownDistance) {
            return problem
        }
        return nil
    }

    public func value(of key: ThresholdKey) -> Double? {
        switch key {
        case .defaultRejectShare: return defaultRejectShare
        case .rejectShare(let label): return rejectShare[label]
        case .oneClassDistance: return oneClassDistance
        case .unknownDistance: return unknownDistance
        }
    }
}

/// Names one threshold, as operators type it (`beanctl set threshold KEY VALUE`):
/// `default`, `label:NAME`, `one-class`, `unknown`.
public enum ThresholdKey: Sendable, Hashable, CustomStringConvertible {
    case defaultRejectShare
    case rejectShare(Label)
    case oneClassDistance
    case unknownDistance

    public init?(_ text: String) {
        switch text {
        case "default": self = .defaultRejectShare
        case "one-class": self = .oneClassDistance
        case "unknown": self = .unknownDistance
        default:
            guard text.hasPrefix("label:") else { return nil }
            let name = String(text.dropFirst("label:".count))
            guard Self.isValidLabelName(name) else { return nil }
            self = .rejectShare(Label(name))
        }
    }

    public var description: String {
        switch self {
        case .defaultRejectShare: return "default"
        case .rejectShare(let label): return "label:\(label.name)"
        case .oneClassDistance: return "one-class"
        case .unknownDistance: return "unknown"
        }
    }

    /// Whether nil (clearing) is allowed: a per-label entry falls back to the default, and an
    /// unset unknown distance disables the unknown verdict.
    public var isClearable: Bool {
        switch self {
        case .rejectShare, .unknownDistance: return true
        case .defaultRejectShare, .oneClassDistance: return false
        }
    }

    /// Why `value` is not acceptable for this key, or nil.
    public func problem(with value: Double) -> String? {
        switch self {
        case .defaultRejectShare, .rejectShare:
            guard value.isFinite, value > 0, value <= 1 else {
                return "threshold \(self) must be a vote share in (0, 1], got \(value)"
            }
        case .oneClassDistance, .unknownDistance:
            guard value.isFinite, value > 0 else {
                return "threshold \(self) must be a finite distance > 0, got \(value)"
            }
        }
        return nil
    }

    /// Label names are printable, without whitespace or control characters, ≤ 64 bytes.
    public static func isValidLabelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy { !$0.properties.isWhitespace && $0.value >= 0x20 && $0.value != 0x7f }
    }
}
