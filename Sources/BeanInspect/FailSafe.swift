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

    /// Removes from `items` those that would be too late once scored, `scoringNanoseconds` after
    /// `now` (keeping the others in order), and passes each removed one to `expired`, in order.
    /// Lets a scorer skip beans that cannot be scored in time, instead of encoding them and making
    /// the beans behind them late too.
    public func removeTooLate<Item>(_ items: inout [Item], now: MonotonicInstant, scoringNanoseconds: UInt64 = 0,
                                    ejectAt: (Item) -> MonotonicInstant?, expired: (Item) -> Void) {
        let scored = MonotonicInstant(nanoseconds: now.nanoseconds &+ scoringNanoseconds)
        var kept = 0
        for index in items.indices {
            if isTooLate(ejectAt: ejectAt(items[index]), now: scored) {
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

/// How long one scorer takes to score a bean, learned from its own batches (encode, search and
/// decision), so that it can tell which waiting beans it can still score before their eject time.
/// Owned by that scorer's thread.
///
/// Under sustained overload the oldest waiting beans are always close to their eject time: a
/// scorer that takes them because they are not late yet delivers their scores late, and scores
/// none in time. Skipping the beans that a batch's duration would make late keeps it scoring
/// about as many beans in time as it can encode.
public struct ScoringPace: Sendable, Hashable {
    /// Moving average of the time per bean (weight 1/4 for each new batch); 0 until measured.
    public private(set) var nanosecondsPerBean: UInt64 = 0
    private var batchesMeasured = 0

    public init() {}

    /// The time a batch of `count` beans is expected to take; 0 before the first measurement.
    public func expectedNanoseconds(forBatchOf count: Int) -> UInt64 {
        nanosecondsPerBean &* UInt64(max(count, 0))
    }

    /// Records one batch. The first is left out: it pays for the worker's arena and cold caches,
    /// and would make the scorer skip beans it could score.
    public mutating func record(batchOf count: Int, tookNanoseconds: UInt64) {
        guard count > 0 else { return }
        batchesMeasured += 1
        guard batchesMeasured > 1 else { return }
        let perBean = tookNanoseconds / UInt64(count)
        nanosecondsPerBean = nanosecondsPerBean == 0 ? perBean : (nanosecondsPerBean * 3 + perBean) / 4
    }
}
