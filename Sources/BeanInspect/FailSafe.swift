import BeanCore

/// What happens to a bean that could not be scored before it reached the ejector (encoder pool
/// overloaded, or the bean was dropped from a full queue).
public enum UnscoredAction: String, Sendable, Hashable, CaseIterable {
    /// Eject it: a sorter must not let unchecked beans through (default).
    case rejectUnscored = "reject-unscored"
    /// Let it pass: for lines where throughput matters more than purity.
    case passUnscored = "pass-unscored"
}

/// Applies the configured fail-safe and counts what it did. Owned by the decision thread; the
/// daemon logs `takeSummary()` in aggregate (e.g. every 10 s), never one line per bean.
public struct FailSafe: Sendable, Hashable {
    public var action: UnscoredAction
    /// Time the decision, the ejector command and its travel need before the eject time; a bean
    /// whose eject time is closer than this is treated as too late to score.
    public var ejectLeadNanoseconds: UInt64

    public private(set) var totalRejected: UInt64 = 0
    public private(set) var totalPassed: UInt64 = 0
    private var summaryRejected: UInt64 = 0
    private var summaryPassed: UInt64 = 0

    public init(action: UnscoredAction = .rejectUnscored, ejectLeadNanoseconds: UInt64 = 2_000_000) {
        self.action = action
        self.ejectLeadNanoseconds = ejectLeadNanoseconds
    }

    /// Whether a bean still waiting for its score at `now` must get the fail-safe verdict instead.
    /// A bean without an eject time (no ejector mapping) is never too late.
    public func isTooLate(ejectAt: MonotonicInstant?, now: MonotonicInstant) -> Bool {
        guard let ejectAt else { return false }
        return now.nanoseconds &+ ejectLeadNanoseconds >= ejectAt.nanoseconds
    }

    /// Removes from `items` those already too late at `now` (keeping the others in order) and
    /// passes each removed one to `expired`, in order. Lets a scorer skip beans that can no longer
    /// be scored in time, instead of encoding them and making the beans behind them late too.
    public func removeTooLate<Item>(_ items: inout [Item], now: MonotonicInstant,
                                    ejectAt: (Item) -> MonotonicInstant?, expired: (Item) -> Void) {
        var kept = 0
        for index in items.indices {
            if isTooLate(ejectAt: ejectAt(items[index]), now: now) {
                expired(items[index])
            } else {
                items.swapAt(kept, index)
                kept += 1
            }
        }
        items.removeLast(items.count - kept)
    }

    /// The verdict for one unscored bean; counts it.
    public mutating func decideUnscored() -> Decision {
        switch action {
        case .rejectUnscored:
            totalRejected += 1
            summaryRejected += 1
            return Decision(verdict: .unscored, eject: true, label: nil, score: nil, reason: .unscored)
        case .passUnscored:
            totalPassed += 1
            summaryPassed += 1
            return Decision(verdict: .unscored, eject: false, label: nil, score: nil, reason: .unscored)
        }
    }

    public var totalUnscored: UInt64 { totalRejected + totalPassed }

    /// Counts since the previous call, for one aggregate log line; nil when there were none.
    public mutating func takeSummary() -> Summary? {
        defer { summaryRejected = 0; summaryPassed = 0 }
        guard summaryRejected + summaryPassed > 0 else { return nil }
        return Summary(action: action, rejected: summaryRejected, passed: summaryPassed)
    }

    public struct Summary: Sendable, Hashable, CustomStringConvertible {
        public var action: UnscoredAction
        public var rejected: UInt64
        public var passed: UInt64
        public var description: String {
            "\(rejected + passed) beans not scored before their eject time (\(action.rawValue)): "
                + "\(rejected) rejected, \(passed) passed"
        }
    }
}
