import ArgumentParser

/// How `train head --labels N` and `eval --labels-per-fold N` draw their labelled beans: a share of
/// them from good beans (the rest from the defects, each part stratified by label), or every label
/// in proportion to its beans. Both commands take the same value, so a head and eval's store of the
/// same fold hold the same beans.
enum GoodShare: ExpressibleByArgument, CustomStringConvertible, Equatable {
    case proportional
    case share(Double)

    /// Half good beans. With beans drawn in proportion, a Mindforge store of 200 beans holds about
    /// 37 good ones: too few good neighbours, and the daemon's default vote then rejects 42 % of
    /// good beans (MODEL_CARD.md, "Labelled beans: half of them good").
    static let `default` = GoodShare.share(0.5)

    init?(argument: String) {
        if argument == "proportional" {
            self = .proportional
        } else if let value = Double(argument), value.isFinite {
            self = .share(value)  // the range is checked by `validate()`, with a message naming it
        } else {
            return nil
        }
    }

    /// The share passed to `BeanFolds.labelledSubset` (nil: in proportion).
    var value: Double? {
        if case .share(let value) = self { return value }
        return nil
    }

    var description: String {
        switch self {
        case .proportional: return "proportional"
        case .share(let value): return "\(value)"
        }
    }

    func validate() throws {
        if case .share(let value) = self, !(0...1).contains(value) {
            throw ValidationError("--good-share must be a share from 0 to 1 or 'proportional', got \(value)")
        }
    }

    /// For JSON reports: the number, or "proportional".
    var jsonValue: Any { value.map { $0 as Any } ?? "proportional" }
}
