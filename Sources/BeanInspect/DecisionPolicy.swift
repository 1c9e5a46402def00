import BeanCore
import BeanStore

/// What the policy decided for one bean.
public struct Decision: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable, Codable {
        /// Vote mode: a defect label's vote share reached its reject threshold. Score mode: a
        /// defect label's share reached the threshold set for that label.
        case vote
        /// Vote mode: no defect label reached its threshold.
        case voteBelowThresholds = "vote-below-thresholds"
        /// Score mode: the reject score reached the reject share.
        case score
        /// Score mode: the reject score stayed below the reject share.
        case scoreBelowThreshold = "score-below-threshold"
        /// One-class mode: mean distance to the nearest good vectors above the threshold.
        case oneClassDistance = "one-class-distance"
        /// One-class mode: mean distance within the threshold.
        case oneClassWithin = "one-class-within"
        /// The nearest neighbour is farther than `Thresholds.unknownDistance`.
        case unknown
        /// No neighbour with a usable (finite) distance: empty store or a store error upstream.
        case noNeighbors = "no-neighbors"
        /// Not scored before its eject time; the fail-safe decided (see `FailSafe`).
        case unscored
    }

    public var verdict: Verdict
    /// Whether the ejector blows the bean off. `reject` always ejects, `accept` never; `unknown`
    /// and `unscored` follow their configured actions.
    public var eject: Bool
    /// Vote mode: on reject the deciding defect label, on accept the label with the largest vote
    /// share. Score mode: the same over the nearest five neighbours (on reject, when none of
    /// them is a defect, the defect label with the largest share of all k). One-class mode: nil
    /// on reject (an anomaly has no label), the nearest good neighbour's label on accept.
    /// Unknown / unscored: nil.
    public var label: Label?
    /// Vote mode: the vote share (0…1) of `label`. Score mode: the reject score. One-class mode:
    /// the mean distance to the nearest good vectors. Unknown: the nearest neighbour's distance.
    /// No neighbours / unscored: nil.
    public var score: Double?
    public var reason: Reason
    /// One-class mode only: neighbours the caller passed whose label is not a good label. They are
    /// skipped; a non-zero count means the caller did not restrict the search (a wiring bug).
    public var skippedNeighbors: Int

    public init(verdict: Verdict, eject: Bool, label: Label?, score: Double?, reason: Reason,
                skippedNeighbors: Int = 0) {
        self.verdict = verdict
        self.eject = eject
        self.label = label
        self.score = score
        self.reason = reason
        self.skippedNeighbors = skippedNeighbors
    }
}

/// Turns the neighbours the store returned for one bean into a decision. A pure value: the decision
/// thread owns a copy and replaces it when thresholds change (`ThresholdBook`).
///
/// **Vote mode.** The caller passes the k nearest vectors over all labels (more are allowed; only
/// the k nearest count). Each neighbour i votes with weight `w_i = 1 / (d_i + ε)`; the vote share of
/// label L is `Σ_{label_i = L} w_i / Σ_i w_i`. The bean is rejected when some defect label L (a
/// label not in `goodLabels`) has `share(L) ≥ thresholds.rejectShare(for: L)`; when several do, the
/// one with the largest share decides (ties: the smaller name). Otherwise it is accepted.
///
/// **Score mode.** As vote mode, but the bean is rejected when its reject score reaches
/// `thresholds.defaultRejectShare`: the distance-weighted share of all defect labels together
/// among the k nearest, plus `RejectScore.goodDistanceWeight` × the distance to the nearest good
/// vector among them (`RejectScore.vote`, what `beanctl eval` ranks beans by). Defects of several
/// labels add up, and with a large k (up to 64) the score separates good from defective beans
/// better than one label's share of five votes. The label it reports (for the journal) comes from
/// the nearest five: on a reject the defect label with the largest share among them (among all k
/// when none of them is a defect), on an accept the label with the largest share. A label's own
/// threshold (`thresholds.rejectShare[L]`) adds a trigger: the bean is also rejected, with reason
/// `vote`, when that label's share among the k reaches it. So a per-label threshold makes the
/// daemon stricter on one defect (Insect at 0.2); one at or above the default changes nothing,
/// since a label's share never exceeds the score.
///
/// **One-class mode.** The caller passes the k nearest vectors *among good-labelled vectors only*
/// (search restricted to `goodLabels`; a store that holds only `Normal` vectors gives this for
/// free). Score = mean distance of the k nearest; reject when `score > thresholds.oneClassDistance`.
///
/// **Unknown (both modes).** Checked first: when the nearest usable neighbour is farther than
/// `thresholds.unknownDistance` (strictly), the verdict is `unknown` and `unknownAction` decides
/// whether it is ejected. No usable neighbour at all is also `unknown` (reason `noNeighbors`).
///
/// Distances: non-finite distances (NaN, ∞) are unusable and ignored; negative distances (rounding
/// in cosine distance) count as 0.
public struct DecisionPolicy: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case vote
        case oneClass = "one-class"
        case score

        /// The neighbour count a mode is meant for when none is configured: score mode weighs
        /// the whole neighbourhood (64, the most a search returns; what `beanctl eval` ranks by),
        /// the vote and one-class mode look at the nearest few.
        public var defaultK: Int {
            switch self {
            case .score: return SearchLimits.maximumK
            case .vote, .oneClass: return 5
            }
        }
    }

    public enum UnknownAction: String, Sendable, Hashable, CaseIterable {
        case reject
        case accept
    }

    public var mode: Mode
    public var k: Int
    public var goodLabels: Set<Label>
    public var unknownAction: UnknownAction
    public var thresholds: Thresholds
    /// ε in the vote weight `1 / (d + ε)`: keeps an exact match (d = 0) finite.
    public var distanceEpsilon: Double

    public init(mode: Mode = .vote, k: Int = 5, goodLabels: Set<Label> = [.normal],
                unknownAction: UnknownAction = .reject, thresholds: Thresholds = Thresholds(),
                distanceEpsilon: Double = 1e-6) throws {
        self.mode = mode
        self.k = k
        self.goodLabels = goodLabels
        self.unknownAction = unknownAction
        self.thresholds = thresholds
        self.distanceEpsilon = distanceEpsilon
        try validate()
    }

    /// Checks every field; the error says which one and why.
    public func validate() throws {
        guard k >= 1 else { throw DecisionPolicyError("k must be at least 1, got \(k)") }
        guard !goodLabels.isEmpty else { throw DecisionPolicyError("at least one good label is required") }
        guard distanceEpsilon.isFinite, distanceEpsilon > 0 else {
            throw DecisionPolicyError("distance epsilon must be finite and > 0, got \(distanceEpsilon)")
        }
        if let problem = thresholds.problem(goodLabels: goodLabels) { throw DecisionPolicyError(problem) }
    }

    public func decide(_ neighbors: [Neighbor]) -> Decision {
        switch mode {
        case .vote: return decideByVote(neighbors)
        case .oneClass: return decideOneClass(neighbors)
        case .score: return decideByScore(neighbors)
        }
    }

    // MARK: - vote

    /// Vote and score mode: the k nearest usable neighbours, or the unknown decision when there
    /// is none or the nearest is beyond the unknown distance.
    private func voters(_ all: [Neighbor]) -> (used: [Neighbor], unknown: Decision?) {
        let used = Self.nearest(k, of: all, where: { _ in true })
        guard let nearest = used.first else {
            return (used, unknown(score: nil, reason: .noNeighbors))
        }
        let nearestDistance = Self.usableDistance(nearest.distance) ?? .infinity
        if let limit = thresholds.unknownDistance, nearestDistance > limit {
            return (used, unknown(score: nearestDistance, reason: .unknown))
        }
        return (used, nil)
    }

    private func decideByVote(_ all: [Neighbor]) -> Decision {
        let (used, unknownDecision) = voters(all)
        if let unknownDecision { return unknownDecision }

        var rejectBy: (label: Label, share: Double)?
        var top: (label: Label, share: Double)?
        for (label, share) in voteShares(used) {
            if top.map({ Self.prefer(label, share, over: $0.label, $0.share, good: goodLabels) }) ?? true {
                top = (label, share)
            }
            guard !goodLabels.contains(label) else { continue }
            guard Self.reaches(share, threshold: thresholds.rejectShare(for: label)) else { continue }
            if rejectBy.map({ Self.prefer(label, share, over: $0.label, $0.share, good: []) }) ?? true {
                rejectBy = (label, share)
            }
        }
        if let rejectBy {
            return Decision(verdict: .reject, eject: true, label: rejectBy.label, score: rejectBy.share, reason: .vote)
        }
        return Decision(verdict: .accept, eject: false, label: top?.label, score: top?.share,
                        reason: .voteBelowThresholds)
    }

    // MARK: - score

    private func decideByScore(_ all: [Neighbor]) -> Decision {
        let (used, unknownDecision) = voters(all)
        if let unknownDecision { return unknownDecision }
        let score = RejectScore.vote(used, k: k, goodLabels: goodLabels, epsilon: distanceEpsilon)
        if Self.reaches(score, threshold: thresholds.defaultRejectShare) {
            return Decision(verdict: .reject, eject: true, label: nameLabel(used, defectOnly: true), score: score, reason: .score)
        }
        // The label triggers only matter below the score's threshold, and only when some are set.
        if !thresholds.rejectShare.isEmpty, let strict = strictLabelReaching(in: voteShares(used)) {
            return Decision(verdict: .reject, eject: true, label: strict.label, score: strict.share, reason: .vote)
        }
        return Decision(verdict: .accept, eject: false, label: nameLabel(used, defectOnly: false), score: score,
                        reason: .scoreBelowThreshold)
    }

    /// Score mode's label for the journal and the reject stream: the vote of the nearest
    /// `Mode.vote.defaultK` neighbours (the label with the largest share; on a reject the defect
    /// label with the largest share), since the far neighbours that make the score steady blur
    /// which defect it is. When none of the nearest few is a defect, the vote of all of `used`.
    private func nameLabel(_ used: [Neighbor], defectOnly: Bool) -> Label? {
        func top(_ voters: [Neighbor]) -> Label? {
            var best: (label: Label, share: Double)?
            for (label, share) in voteShares(voters) where !(defectOnly && goodLabels.contains(label)) {
                if best.map({ Self.prefer(label, share, over: $0.label, $0.share, good: defectOnly ? [] : goodLabels) }) ?? true {
                    best = (label, share)
                }
            }
            return best?.label
        }
        return top(Array(used.prefix(Mode.vote.defaultK))) ?? top(used)
    }

    /// Score mode: the defect label with the largest share among those whose share reaches the
    /// threshold set for that label, if any.
    private func strictLabelReaching(in shares: [(label: Label, share: Double)]) -> (label: Label, share: Double)? {
        var best: (label: Label, share: Double)?
        for (label, share) in shares where !goodLabels.contains(label) {
            guard let threshold = thresholds.rejectShare[label], Self.reaches(share, threshold: threshold) else { continue }
            if best.map({ Self.prefer(label, share, over: $0.label, $0.share, good: []) }) ?? true { best = (label, share) }
        }
        return best
    }

    /// Whether a vote share reaches a reject threshold. A small absolute tolerance so that, e.g.,
    /// two equal votes of four reach a 0.5 threshold despite rounding in the weight sums.
    public static func reaches(_ share: Double, threshold: Double) -> Bool { share + 1e-12 >= threshold }

    /// Each label's share of the distance-weighted vote of `used` (usable neighbours), in the
    /// order the labels first appear.
    private func voteShares(_ used: [Neighbor]) -> [(label: Label, share: Double)] {
        // k is small (tens at most): a linear table keeps this allocation-light and ordered.
        var tally: [(label: Label, weight: Double)] = []
        tally.reserveCapacity(used.count)
        var total = 0.0
        for neighbor in used {
            guard let distance = Self.usableDistance(neighbor.distance) else { continue }
            let weight = 1.0 / (distance + distanceEpsilon)
            total += weight
            if let index = tally.firstIndex(where: { $0.label == neighbor.label }) {
                tally[index].weight += weight
            } else {
                tally.append((neighbor.label, weight))
            }
        }
        guard total > 0 else { return [] }
        return tally.map { ($0.label, $0.weight / total) }
    }

    /// What the policy compares with `thresholds.defaultRejectShare` for the k nearest of
    /// `neighbors`. Vote mode: the largest vote share of any defect label (0 when they are all
    /// good). Score mode: the reject score. Nil without a usable neighbour and in one-class mode.
    /// When `rejectsByDecisionScore`, the policy rejects exactly when this reaches the default
    /// reject share (`reaches(_:threshold:)`), which is what lets `beanctl eval` say which
    /// reject share gives a chosen share of good beans rejected.
    public func decisionScore(_ neighbors: [Neighbor]) -> Double? {
        let used = Self.nearest(k, of: neighbors, where: { _ in true })
        guard !used.isEmpty else { return nil }
        switch mode {
        case .vote: return voteShares(used).filter { !goodLabels.contains($0.label) }.map(\.share).max() ?? 0
        case .score: return RejectScore.vote(used, k: k, goodLabels: goodLabels, epsilon: distanceEpsilon)
        case .oneClass: return nil
        }
    }

    /// Whether `decisionScore` and the default reject share decide this policy's verdicts
    /// alone: vote or score mode without per-label thresholds and without an unknown distance.
    public var rejectsByDecisionScore: Bool {
        guard thresholds.unknownDistance == nil else { return false }
        switch mode {
        case .vote, .score: return thresholds.rejectShare.isEmpty
        case .oneClass: return false
        }
    }

    /// Why the threshold `key` does not change this policy's decisions, for the operator who just
    /// set it; nil when it does. A threshold of another mode, or a score-mode label threshold at
    /// or above the default reject share (a label's share never exceeds the score, so it cannot
    /// trigger a reject the score has not).
    public func ineffectiveThresholdNote(_ key: ThresholdKey) -> String? {
        switch (key, mode) {
        case (.oneClassDistance, .vote), (.oneClassDistance, .score):
            return "the one-class distance applies in one-class mode only; the daemon decides in \(mode.rawValue) mode"
        case (.defaultRejectShare, .oneClass), (.rejectShare, .oneClass):
            return "reject shares apply in vote and score mode only; the daemon decides in one-class mode"
        case (.rejectShare(let label), .score):
            guard let share = thresholds.rejectShare[label], share >= thresholds.defaultRejectShare else { return nil }
            return "in score mode a label's threshold only adds rejects; at or above the default reject share "
                + "(\(thresholds.defaultRejectShare)) it changes nothing"
        default:
            return nil
        }
    }

    /// Larger share wins; on equal shares a good label wins (accept reports the good label), then
    /// the smaller name, so the result never depends on the store's order.
    private static func prefer(_ label: Label, _ share: Double, over other: Label, _ otherShare: Double,
                               good: Set<Label>) -> Bool {
        if share != otherShare { return share > otherShare }
        let isGood = good.contains(label), otherIsGood = good.contains(other)
        if isGood != otherIsGood { return isGood }
        return label.name < other.name
    }

    // MARK: - one-class

    private func decideOneClass(_ all: [Neighbor]) -> Decision {
        let skipped = all.reduce(0) { $0 + (goodLabels.contains($1.label) ? 0 : 1) }
        let used = Self.nearest(k, of: all, where: { goodLabels.contains($0.label) })
        guard let nearest = used.first, let nearestDistance = Self.usableDistance(nearest.distance) else {
            return unknown(score: nil, reason: .noNeighbors, skipped: skipped)
        }
        if let limit = thresholds.unknownDistance, nearestDistance > limit {
            return unknown(score: nearestDistance, reason: .unknown, skipped: skipped)
        }
        var sum = 0.0
        for neighbor in used { sum += Self.usableDistance(neighbor.distance) ?? 0 }
        let mean = sum / Double(used.count)
        if mean > thresholds.oneClassDistance {
            return Decision(verdict: .reject, eject: true, label: nil, score: mean, reason: .oneClassDistance,
                            skippedNeighbors: skipped)
        }
        return Decision(verdict: .accept, eject: false, label: nearest.label, score: mean, reason: .oneClassWithin,
                        skippedNeighbors: skipped)
    }

    // MARK: - shared

    private func unknown(score: Double?, reason: Decision.Reason, skipped: Int = 0) -> Decision {
        Decision(verdict: .unknown, eject: unknownAction == .reject, label: nil, score: score, reason: reason,
                 skippedNeighbors: skipped)
    }

    static func usableDistance(_ distance: Float) -> Double? {
        guard distance.isFinite else { return nil }
        return Double(max(distance, 0))
    }

    /// The (at most) `k` nearest usable neighbours passing `include`, nearest first. The store
    /// returns k sorted neighbours, so the common case is a filtered copy of a short array.
    static func nearest(_ k: Int, of neighbors: [Neighbor], where include: (Neighbor) -> Bool) -> [Neighbor] {
        var usable = neighbors.filter { include($0) && $0.distance.isFinite }
        var sorted = true
        for index in usable.indices.dropFirst() where usable[index - 1].distance > usable[index].distance {
            sorted = false
            break
        }
        if !sorted {
            usable.sort { ($0.distance, $0.vectorID) < ($1.distance, $1.vectorID) }
        }
        if usable.count > k { usable.removeLast(usable.count - k) }
        return usable
    }
}

public struct DecisionPolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
