import BeanCore

/// Measures of a sorter that rejects beans whose reject score is high: the figures `beanctl eval`
/// reports. Defect is the positive class throughout; good beans are the negatives.
///
/// Reject rule for a threshold t: a bean is rejected when its score is **strictly above** t. So
/// good beans tied with the threshold stay accepted, and "at most r of the good beans rejected"
/// can be met exactly even with tied scores.
public enum SorterMetrics {
    /// ROC AUC as the Mann-Whitney statistic: the probability that a random defect bean scores
    /// higher than a random good bean, ties counting one half. Nil when either class is empty.
    public static func rocAUC(defect: [Double], good: [Double]) -> Double? {
        guard !defect.isEmpty, !good.isEmpty else { return nil }
        // Average ranks over the pooled scores, then U = rank sum of defects − n(n+1)/2.
        let pooled = (defect.map { ($0, true) } + good.map { ($0, false) }).sorted { $0.0 < $1.0 }
        var rankSum = 0.0
        var start = 0
        while start < pooled.count {
            var end = start
            while end + 1 < pooled.count && pooled[end + 1].0 == pooled[start].0 { end += 1 }
            let averageRank = Double(start + end + 2) / 2
            for i in start...end where pooled[i].1 { rankSum += averageRank }
            start = end + 1
        }
        let n = Double(defect.count), m = Double(good.count)
        return (rankSum - n * (n + 1) / 2) / (n * m)
    }

    /// The lowest threshold that rejects at most `rate` of the good beans: the score of the
    /// (⌊rate·n⌋+1)-th highest good bean, so at most ⌊rate·n⌋ good beans are strictly above it.
    /// −∞ (reject everything) when the rate allows all good beans; nil without good beans.
    public static func threshold(good: [Double], rejectingAtMost rate: Double) -> Double? {
        guard !good.isEmpty else { return nil }
        // The small slack keeps 0.03 × 100 from flooring to 2 after rounding.
        let allowed = Int((rate * Double(good.count) + 1e-9).rounded(.down))
        guard allowed < good.count else { return -.infinity }
        let descending = good.sorted(by: >)
        return descending[allowed]
    }

    /// The reject share to give the daemon's policy (its `default` threshold) so that at most
    /// `rate` of the good beans are rejected, from each bean's decision score
    /// (`DecisionPolicy.decisionScore`, the largest over its sides): the smallest multiple
    /// of 0.001 that the (⌊rate·n⌋+1)-th highest good score does not reach
    /// (`DecisionPolicy.reaches`). Nil without good beans, and when even 1 would reject more:
    /// too many good beans score 1 or more (a defect label's whole vote).
    public static func rejectShare(good: [Double], rejectingAtMost rate: Double) -> Double? {
        guard !good.isEmpty else { return nil }
        let allowed = Int((rate * Double(good.count) + 1e-9).rounded(.down))
        guard allowed < good.count else { return shareStep }
        let kept = good.sorted(by: >)[allowed]
        var steps = Int((kept / shareStep).rounded(.down))
        while DecisionPolicy.reaches(kept, threshold: Double(steps) * shareStep) { steps += 1 }
        let share = Double(steps) * shareStep
        return share <= 1 + 1e-12 ? min(share, 1) : nil
    }

    /// The grid `rejectShare(good:rejectingAtMost:)` chooses on: a value an operator can type.
    public static let shareStep = 0.001

    /// Binary counts when every bean whose decision score reaches `share` is rejected.
    public static func counts(defectShares defect: [Double], goodShares good: [Double], rejectShare share: Double) -> BinaryCounts {
        let tp = defect.filter { DecisionPolicy.reaches($0, threshold: share) }.count
        let fp = good.filter { DecisionPolicy.reaches($0, threshold: share) }.count
        return BinaryCounts(truePositives: tp, falsePositives: fp, falseNegatives: defect.count - tp,
                            trueNegatives: good.count - fp)
    }

    /// Fraction of `scores` strictly above `threshold`; nil when empty.
    public static func fractionAbove(_ scores: [Double], threshold: Double) -> Double? {
        guard !scores.isEmpty else { return nil }
        return Double(scores.filter { $0 > threshold }.count) / Double(scores.count)
    }

    /// Binary counts when every bean scoring strictly above `threshold` is rejected.
    public static func counts(defect: [Double], good: [Double], threshold: Double) -> BinaryCounts {
        let tp = defect.filter { $0 > threshold }.count
        let fp = good.filter { $0 > threshold }.count
        return BinaryCounts(truePositives: tp, falsePositives: fp, falseNegatives: defect.count - tp,
                            trueNegatives: good.count - fp)
    }

    /// ROC curve: (false-positive rate, true-positive rate) at every distinct threshold, from
    /// (0, 0) (reject nothing) to (1, 1) (reject everything).
    public static func rocCurve(defect: [Double], good: [Double]) -> [(fpr: Double, tpr: Double)] {
        guard !defect.isEmpty, !good.isEmpty else { return [] }
        var points: [(fpr: Double, tpr: Double)] = [(0, 0)]
        for (tp, fp) in cumulativeCounts(defect: defect, good: good) {
            points.append((Double(fp) / Double(good.count), Double(tp) / Double(defect.count)))
        }
        return points
    }

    /// Precision-recall curve: (recall, precision) at every distinct threshold, from the strictest
    /// to rejecting everything.
    public static func precisionRecallCurve(defect: [Double], good: [Double]) -> [(recall: Double, precision: Double)] {
        guard !defect.isEmpty else { return [] }
        return cumulativeCounts(defect: defect, good: good).map { tp, fp in
            (Double(tp) / Double(defect.count), tp + fp == 0 ? 1 : Double(tp) / Double(tp + fp))
        }
    }

    /// (defects rejected, good rejected) when the threshold is lowered past each distinct score in
    /// turn, highest first (tied scores enter together).
    private static func cumulativeCounts(defect: [Double], good: [Double]) -> [(Int, Int)] {
        let pooled = (defect.map { ($0, true) } + good.map { ($0, false) }).sorted { $0.0 > $1.0 }
        var result: [(Int, Int)] = []
        var tp = 0, fp = 0, i = 0
        while i < pooled.count {
            let score = pooled[i].0
            while i < pooled.count && pooled[i].0 == score {
                if pooled[i].1 { tp += 1 } else { fp += 1 }
                i += 1
            }
            result.append((tp, fp))
        }
        return result
    }
}

/// Counts of a binary decision with defect as the positive class.
public struct BinaryCounts: Sendable, Hashable {
    public var truePositives: Int
    public var falsePositives: Int
    public var falseNegatives: Int
    public var trueNegatives: Int

    public init(truePositives: Int, falsePositives: Int, falseNegatives: Int, trueNegatives: Int) {
        self.truePositives = truePositives
        self.falsePositives = falsePositives
        self.falseNegatives = falseNegatives
        self.trueNegatives = trueNegatives
    }

    /// From per-bean (is defect, rejected) pairs.
    public init(_ outcomes: [(isDefect: Bool, rejected: Bool)]) {
        var c = BinaryCounts(truePositives: 0, falsePositives: 0, falseNegatives: 0, trueNegatives: 0)
        for o in outcomes {
            switch (o.isDefect, o.rejected) {
            case (true, true): c.truePositives += 1
            case (false, true): c.falsePositives += 1
            case (true, false): c.falseNegatives += 1
            case (false, false): c.trueNegatives += 1
            }
        }
        self = c
    }

    /// 0 when nothing was rejected (the scikit-learn `zero_division=0` convention).
    public var precision: Double { ratio(truePositives, truePositives + falsePositives) }
    /// Defect recall; 0 without defects.
    public var recall: Double { ratio(truePositives, truePositives + falseNegatives) }
    /// Good beans rejected; 0 without good beans.
    public var falsePositiveRate: Double { ratio(falsePositives, falsePositives + trueNegatives) }
    public var f1: Double { f1Score(truePositives: truePositives, falsePositives: falsePositives, falseNegatives: falseNegatives) }
}

func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }

/// 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall; 0 when all terms are 0.
func f1Score(truePositives tp: Int, falsePositives fp: Int, falseNegatives fn: Int) -> Double {
    ratio(2 * tp, 2 * tp + fp + fn)
}

/// True label × predicted label counts. Predicted labels may include names that are no true
/// label (e.g. "(anomaly)" for a one-class reject, "(unknown)"); they count against precision of
/// nothing and against recall of the true label.
public struct ConfusionMatrix: Sendable, Equatable {
    public struct ClassScores: Sendable, Equatable {
        public var precision: Double
        public var recall: Double
        public var f1: Double
        /// Samples whose true label this is.
        public var support: Int
        /// Samples predicted as this label.
        public var predicted: Int
    }

    /// Rows: true labels, sorted by name.
    public let trueLabels: [String]
    /// Columns: the true labels in the same order, then any other predicted names, sorted.
    public let predictedLabels: [String]
    /// `counts[row][column]`.
    public let counts: [[Int]]

    public init(pairs: [(truth: String, predicted: String)]) {
        let truths = Array(Set(pairs.map(\.truth))).sorted()
        let extra = Array(Set(pairs.map(\.predicted)).subtracting(truths)).sorted()
        let columns = truths + extra
        let rowIndex = Dictionary(uniqueKeysWithValues: truths.enumerated().map { ($1, $0) })
        let columnIndex = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1, $0) })
        var counts = [[Int]](repeating: [Int](repeating: 0, count: columns.count), count: truths.count)
        for pair in pairs {
            if let r = rowIndex[pair.truth], let c = columnIndex[pair.predicted] { counts[r][c] += 1 }
        }
        self.trueLabels = truths
        self.predictedLabels = columns
        self.counts = counts
    }

    public var total: Int { counts.reduce(0) { $0 + $1.reduce(0, +) } }

    /// Precision, recall and F1 of each true label (one-vs-rest), by label name.
    public var perClass: [String: ClassScores] {
        var result: [String: ClassScores] = [:]
        for (r, label) in trueLabels.enumerated() {
            let tp = counts[r][r]
            let support = counts[r].reduce(0, +)
            let predicted = counts.reduce(0) { $0 + $1[r] }
            result[label] = ClassScores(precision: ratio(tp, predicted), recall: ratio(tp, support),
                                        f1: f1Score(truePositives: tp, falsePositives: predicted - tp,
                                                    falseNegatives: support - tp),
                                        support: support, predicted: predicted)
        }
        return result
    }

    /// Unweighted mean of the per-class F1 over the true labels; nil when empty.
    public var macroF1: Double? {
        guard !trueLabels.isEmpty else { return nil }
        let scores = perClass
        return trueLabels.reduce(0.0) { $0 + (scores[$1]?.f1 ?? 0) } / Double(trueLabels.count)
    }

    /// Fraction of samples on the diagonal.
    public var accuracy: Double {
        ratio(trueLabels.indices.reduce(0) { $0 + counts[$1][$1] }, total)
    }
}

/// Summary of one figure over folds.
public struct Spread: Sendable, Equatable {
    public var mean: Double
    /// Sample standard deviation (n − 1); 0 for a single value.
    public var standardDeviation: Double
    public var minimum: Double
    public var maximum: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let n = Double(values.count)
        mean = values.reduce(0, +) / n
        let m = mean
        standardDeviation = values.count > 1 ? (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() : 0
        minimum = values.min() ?? 0
        maximum = values.max() ?? 0
    }
}

/// The continuous reject score `beanctl eval` ranks beans by. In vote and one-class mode the
/// policy's verdict is separate; in score mode `DecisionPolicy` decides by `vote(_:k:goodLabels:epsilon:)`.
public enum RejectScore {
    /// Weight of the distance to the nearest good vector in the vote score: small against the
    /// steps of a vote share, so the distance mostly orders beans of equal share.
    public static let goodDistanceWeight = 0.01

    /// Vote mode: the distance-weighted share of defect labels among the `k` nearest of
    /// `neighbors` (weights 1/(d+ε) as in the policy's vote), plus `goodDistanceWeight` × the
    /// distance to the nearest good vector among them, or to the farthest of them when none is
    /// good (a lower bound of the distance to the nearest good vector).
    ///
    /// Why the distance term: with a store that is mostly defects, many good beans have only
    /// defects among their nearest vectors and would tie with the defects at share 1.0; a
    /// threshold for 1–3 % good rejected would then sit on that tie and reject almost nothing.
    /// Non-finite distances are ignored, negative ones count as 0; 1 without usable neighbours.
    public static func vote(_ neighbors: [Neighbor], k: Int, goodLabels: Set<Label>, epsilon: Double) -> Double {
        let usable = neighbors.filter { $0.distance.isFinite }.sorted { $0.distance < $1.distance }.prefix(k)
        var defect = 0.0, total = 0.0
        var nearestGood: Double?
        for n in usable {
            let distance = Double(max(n.distance, 0))
            let weight = 1 / (distance + epsilon)
            total += weight
            if !goodLabels.contains(n.label) { defect += weight } else if nearestGood == nil { nearestGood = distance }
        }
        guard total > 0 else { return 1 }
        let goodDistance = nearestGood ?? Double(max(usable.last?.distance ?? 0, 0))
        return defect / total + goodDistanceWeight * goodDistance
    }

    /// One-class mode: the mean distance to the `k` nearest good vectors among `neighbors`
    /// (+∞ without any).
    public static func oneClass(_ neighbors: [Neighbor], k: Int, goodLabels: Set<Label>) -> Double {
        let good = neighbors.filter { $0.distance.isFinite && goodLabels.contains($0.label) }
            .sorted { $0.distance < $1.distance }.prefix(k)
        guard !good.isEmpty else { return .infinity }
        return good.reduce(0.0) { $0 + Double(max($1.distance, 0)) } / Double(good.count)
    }
}
