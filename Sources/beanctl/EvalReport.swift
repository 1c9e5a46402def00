import BeanCore
import BeanInspect
import Foundation

/// The figures of one `beanctl eval` run, pooled over folds, and their JSON, text and CSV forms.
/// JSON keys are a contract (the trainer's scripts and MODEL_CARD.md read them): add, never rename.
struct EvalReport {
    static let goodRejectedRates: [(key: String, rate: Double)] = [("0.01", 0.01), ("0.03", 0.03), ("0.05", 0.05)]
    static let thresholdRule = "f1: bean rejected when the policy ejects any usable side (vote: a defect label's share >= reject_share; score: the reject score over the k nearest >= reject_share; one-class: mean distance > one_class_distance; unknown: unknown_action). recall_at_good_rejected[r]: reject when score > the ((floor(r*good)+1)-th highest good score). reject_share_at_good_rejected[r]: the policy (vote or score) with reject_share = the smallest multiple of 0.001 that the ((floor(r*good)+1)-th highest good decision_score does not reach."

    let policy: DecisionPolicy
    let encoder: String
    let cropSize: Int
    var scoreK: Int?
    var counts: [String: Int] = [:]
    var skipped: [String: Int] = [:]
    var foldSettings: [String: Any]?
    var storeInfo: [String: Any]?
    private(set) var outcomes: [BeanOutcome] = []
    private(set) var perFold: [[String: Any]] = []
    private(set) var perFoldFigures: [(auc: Double?, recall3: Double?, f1: Double)] = []

    init(policy: DecisionPolicy, encoder: String, cropSize: Int) {
        self.policy = policy
        self.encoder = encoder
        self.cropSize = cropSize
    }

    mutating func addFold(_ fold: Int?, storeBeans: Int?, storeGoodBeans: Int?, storeVectors: Int,
                          outcomes new: [BeanOutcome]) {
        outcomes += new
        guard let fold else { return }
        let figures = SorterFigures(new, policy: policy)
        // Per fold too, so a run with one encoder per fold (the held-out fold of each) can report
        // the 11-class figures of exactly the beans each encoder never saw.
        let confusion = ConfusionMatrix(pairs: new.flatMap(\.sides))
        perFold.append([
            "fold": fold, "store_beans": storeBeans ?? NSNull(), "store_good_beans": storeGoodBeans ?? NSNull(),
            "store_vectors": storeVectors, "test_beans": new.count,
            "roc_auc": json(figures.auc), "f1": json(figures.policy.f1),
            "recall_at_good_rejected": Dictionary(uniqueKeysWithValues: figures.atRate.map { ($0.key, json($0.recall)) }),
            "reject_share_at_good_rejected": shareAtRateObject(figures),
            "macro_f1": json(confusion.macroF1), "macro_f1_defect_labels": json(defectMacroF1(confusion)),
            "confusion": confusionObject(confusion),
        ])
        perFoldFigures.append((figures.auc, figures.atRate.first { $0.key == "0.03" }?.recall, figures.policy.f1))
    }

    /// Figures over all beans evaluated (all folds pooled).
    func summary() -> Summary {
        let figures = SorterFigures(outcomes, policy: policy)
        let confusion = ConfusionMatrix(pairs: outcomes.flatMap(\.sides))
        return Summary(figures: figures, confusion: confusion)
    }

    struct Summary {
        var figures: SorterFigures
        var confusion: ConfusionMatrix
    }

    // MARK: JSON

    func jsonObject(_ summary: Summary) -> [String: Any] {
        let f = summary.figures
        let perClass = summary.confusion.perClass.mapValues { s -> [String: Any] in
            ["precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support, "predicted": s.predicted]
        }
        var object: [String: Any] = [
            "mode": foldSettings == nil ? "fixed" : "folds",
            "encoder": encoder,
            "crop_size": cropSize,
            "policy": [
                "mode": policy.mode.rawValue, "k": policy.k, "good_labels": policy.goodLabels.map(\.name).sorted(),
                "reject_share": policy.thresholds.defaultRejectShare,
                "one_class_distance": policy.thresholds.oneClassDistance,
                "unknown_distance": json(policy.thresholds.unknownDistance),
                "unknown_action": policy.unknownAction.rawValue,
            ] as [String: Any],
            "score": policy.mode != .oneClass ? "distance-weighted defect vote share of the score_k nearest + \(RejectScore.goodDistanceWeight) × distance to the nearest good among them, max over usable sides"
                : "mean distance to the k nearest good vectors, max over usable sides",
            "threshold_rule": Self.thresholdRule,
            "score_k": scoreK ?? policy.k,
            "roc_auc": json(f.auc),
            "f1": f.policy.f1, "precision": f.policy.precision, "recall": f.policy.recall,
            "good_rejected": f.policy.falsePositiveRate,
            "recall_at_good_rejected": Dictionary(uniqueKeysWithValues: f.atRate.map { ($0.key, json($0.recall)) }),
            "threshold_at_good_rejected": Dictionary(uniqueKeysWithValues: f.atRate.map { ($0.key, json($0.threshold)) }),
            "good_rejected_at": Dictionary(uniqueKeysWithValues: f.atRate.map { ($0.key, json($0.goodRejected)) }),
            "f1_at_good_rejected": Dictionary(uniqueKeysWithValues: f.atRate.map { ($0.key, json($0.f1)) }),
            "reject_share_at_good_rejected": shareAtRateObject(f),
            "macro_f1": json(summary.confusion.macroF1),
            "macro_f1_defect_labels": json(defectMacroF1(summary.confusion)),
            "accuracy": summary.confusion.accuracy,
            "classification_unit": "usable photo (side)",
            "per_class": perClass,
            "confusion": ["true": summary.confusion.trueLabels, "predicted": summary.confusion.predictedLabels,
                          "counts": summary.confusion.counts] as [String: Any],
            "counts": counts,
            "skipped": skipped,
        ]
        if let foldSettings {
            var folds = foldSettings
            folds["per_fold"] = perFold
            var spread: [String: Any] = [:]
            if let s = Spread(perFoldFigures.compactMap(\.auc)) { spread["roc_auc"] = spreadObject(s) }
            if let s = Spread(perFoldFigures.compactMap(\.recall3)) { spread["recall_at_good_rejected_0.03"] = spreadObject(s) }
            if let s = Spread(perFoldFigures.map(\.f1)) { spread["f1"] = spreadObject(s) }
            folds["spread"] = spread
            object["folds"] = folds
        }
        if let storeInfo { object["store"] = storeInfo }
        return object
    }

    /// The policy's reject rule, for the text report.
    var verdictRule: String {
        switch policy.mode {
        case .vote: return "a defect label's share ≥ \(policy.thresholds.defaultRejectShare)"
        case .score: return "reject score over the k nearest ≥ \(policy.thresholds.defaultRejectShare)"
        case .oneClass: return "mean distance > \(policy.thresholds.oneClassDistance)"
        }
    }

    /// Mean per-class F1 over the defect labels only (the good label left out).
    func defectMacroF1(_ confusion: ConfusionMatrix) -> Double? {
        let scores = confusion.perClass
        let defects = confusion.trueLabels.filter { !policy.goodLabels.contains(Label($0)) }
        guard !defects.isEmpty else { return nil }
        return defects.reduce(0.0) { $0 + (scores[$1]?.f1 ?? 0) } / Double(defects.count)
    }

    func jsonText(_ summary: Summary, pretty: Bool) -> String {
        let options: JSONSerialization.WritingOptions = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        guard let data = try? JSONSerialization.data(withJSONObject: jsonObject(summary), options: options) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Per rate, the daemon's reject share there and what it does; null when the policy's verdicts
    /// do not follow that one threshold.
    private func shareAtRateObject(_ f: SorterFigures) -> Any {
        guard let rates = f.shareAtRate else { return NSNull() }
        return Dictionary(uniqueKeysWithValues: rates.map { r -> (String, Any) in
            (r.key, ["reject_share": json(r.threshold), "recall": json(r.recall),
                     "good_rejected": json(r.goodRejected), "f1": json(r.f1)] as [String: Any])
        })
    }

    private func confusionObject(_ c: ConfusionMatrix) -> [String: Any] {
        ["true": c.trueLabels, "predicted": c.predictedLabels, "counts": c.counts]
    }

    private func spreadObject(_ s: Spread) -> [String: Any] {
        ["mean": s.mean, "std": s.standardDeviation, "min": s.minimum, "max": s.maximum]
    }

    /// JSON has no NaN or infinity: those (and nil) become null.
    private func json(_ value: Double?) -> Any {
        guard let value, value.isFinite else { return NSNull() }
        return value
    }

    // MARK: CSV and text

    /// bean,label,defect,score,rejected,fold,decision_score — one line per bean; score "inf" when
    /// no good neighbour; decision_score what the policy compares with its reject share, the
    /// largest over the bean's usable sides (empty in one-class mode).
    func scoresCSV() -> String {
        var lines = ["bean,label,defect,score,rejected,fold,decision_score"]
        for o in outcomes {
            let key = o.key.contains(",") || o.key.contains("\"") ? "\"" + o.key.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : o.key
            let label = o.label.contains(",") ? "\"\(o.label)\"" : o.label
            let score = o.score.isFinite ? "\(o.score)" : (o.score > 0 ? "inf" : "-inf")
            let share = policy.mode == .oneClass ? "" : "\(o.decisionScore)"
            lines.append("\(key),\(label),\(o.isDefect ? 1 : 0),\(score),\(o.rejected ? 1 : 0),\(o.fold.map(String.init) ?? ""),\(share)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func text(_ summary: Summary) -> String {
        let f = summary.figures
        func pct(_ v: Double?) -> String { v.map { String(format: "%.1f %%", $0 * 100) } ?? "-" }
        func num(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        var rows: [(String, String)] = [
            ("Encoder", encoder), ("Policy", "\(policy.mode.rawValue), k \(policy.k)"),
            ("Beans", "\(counts["beans"] ?? 0) (\(counts["good_beans"] ?? 0) good, \(counts["defect_beans"] ?? 0) defect)"),
            ("Photos used", "\(counts["photos_used"] ?? 0) of \(counts["photos"] ?? 0)"),
            ("Skipped", skipped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
        ]
        if let foldSettings {
            rows.append(("Folds", "\(foldSettings["k"] ?? "-"), labels per fold \(foldSettings["labels_per_fold"].flatMap { $0 is NSNull ? nil : "\($0)" } ?? "all"), seed \(seed(foldSettings))"))
        }
        rows += [
            ("ROC AUC", num(f.auc)),
        ]
        for r in f.atRate {
            rows.append(("Defect recall at \(pct(Double(r.key)))", "\(pct(r.recall)) (good rejected \(pct(r.goodRejected)), F1 \(num(r.f1)))"))
        }
        for r in f.shareAtRate ?? [] {
            let value = r.threshold.map { "reject share \(String(format: "%.3f", $0)): defect recall \(pct(r.recall)), good rejected \(pct(r.goodRejected))" }
                ?? "none (too many good beans reach a share of 1)"
            rows.append(("Daemon's policy at ≤ \(pct(Double(r.key))) good", value))
        }
        rows += [
            ("F1 (policy verdict)", "\(num(f.policy.f1)) (precision \(num(f.policy.precision)), recall \(num(f.policy.recall)), good rejected \(pct(f.policy.falsePositiveRate)))"),
            ("Threshold rules", "F1: the policy's verdicts (\(verdictRule), any usable side); recall at r: score strictly above the lowest threshold that rejects ≤ r of good beans"),
            ("Macro F1 (per side)", "\(num(summary.confusion.macroF1)) over \(summary.confusion.trueLabels.count) labels, \(num(defectMacroF1(summary.confusion))) over the defect labels"),
        ]
        if perFoldFigures.count > 1, let s = Spread(perFoldFigures.compactMap(\.auc)) {
            rows.append(("ROC AUC over folds", String(format: "%.3f ± %.3f (%.3f…%.3f)", s.mean, s.standardDeviation, s.minimum, s.maximum)))
        }
        var lines: [String] = []
        let width = rows.map(\.0.count).max() ?? 0
        for (key, value) in rows { lines.append(key.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + value) }
        lines.append("")
        lines.append("Class                 Precision  Recall     F1  Support")
        let scores = summary.confusion.perClass
        for label in summary.confusion.trueLabels {
            guard let s = scores[label] else { continue }
            lines.append(label.padding(toLength: 20, withPad: " ", startingAt: 0)
                         + String(format: "  %9.3f  %6.3f  %5.3f  %7d", s.precision, s.recall, s.f1, s.support))
        }
        lines.append("")
        lines.append("Confusion (rows: true label, columns: predicted; per side)")
        let columns = summary.confusion.predictedLabels
        let abbreviations = columns.map { String($0.prefix(6)) }
        lines.append("".padding(toLength: 20, withPad: " ", startingAt: 0) + abbreviations.map { $0.leftPadded(7) }.joined())
        for (r, label) in summary.confusion.trueLabels.enumerated() {
            lines.append(label.padding(toLength: 20, withPad: " ", startingAt: 0)
                         + summary.confusion.counts[r].map { String($0).leftPadded(7) }.joined())
        }
        return lines.joined(separator: "\n")
    }

    private func seed(_ settings: [String: Any]) -> String { settings["seed"].map { "\($0)" } ?? "0" }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// The sorter figures of a set of bean outcomes.
struct SorterFigures {
    struct AtRate {
        var key: String
        var threshold: Double?
        var recall: Double?
        var goodRejected: Double?
        var f1: Double?
    }

    var defect: [Double]
    var good: [Double]
    var auc: Double?
    var policy: BinaryCounts
    var atRate: [AtRate]
    /// The daemon's own vote at each rate: the reject share (its `default` threshold) that
    /// rejects at most that share of good beans, and what it does there. Nil when the policy's
    /// verdicts are not decided by that one threshold (one-class mode, per-label thresholds, an
    /// unknown distance).
    var shareAtRate: [AtRate]?

    init(_ outcomes: [BeanOutcome], policy decisions: DecisionPolicy) {
        let defect = outcomes.filter(\.isDefect).map(\.score)
        let good = outcomes.filter { !$0.isDefect }.map(\.score)
        self.defect = defect
        self.good = good
        auc = SorterMetrics.rocAUC(defect: defect, good: good)
        policy = BinaryCounts(outcomes.map { ($0.isDefect, $0.rejected) })
        atRate = Self.atRates(threshold: { SorterMetrics.threshold(good: good, rejectingAtMost: $0) },
                              counts: { SorterMetrics.counts(defect: defect, good: good, threshold: $0) },
                              hasDefects: !defect.isEmpty)
        guard decisions.rejectsByDecisionScore else { shareAtRate = nil; return }
        let defectShares = outcomes.filter(\.isDefect).map(\.decisionScore)
        let goodShares = outcomes.filter { !$0.isDefect }.map(\.decisionScore)
        shareAtRate = Self.atRates(
            threshold: { SorterMetrics.rejectShare(good: goodShares, rejectingAtMost: $0) },
            counts: { SorterMetrics.counts(defectShares: defectShares, goodShares: goodShares, rejectShare: $0) },
            hasDefects: !defectShares.isEmpty)
    }

    /// For each of eval's rates: the threshold `threshold` chooses for it and what `counts` says
    /// that threshold does.
    private static func atRates(threshold: (Double) -> Double?, counts: (Double) -> BinaryCounts,
                                hasDefects: Bool) -> [AtRate] {
        EvalReport.goodRejectedRates.map { key, rate in
            guard let t = threshold(rate) else {
                return AtRate(key: key, threshold: nil, recall: nil, goodRejected: nil, f1: nil)
            }
            let c = counts(t)
            return AtRate(key: key, threshold: t, recall: hasDefects ? c.recall : nil,
                          goodRejected: c.falsePositiveRate, f1: c.f1)
        }
    }
}
