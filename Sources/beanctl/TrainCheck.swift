import BeanCore
import Foundation

/// The quick check `train head --fold` prints: kNN of the held-out fold's usable photos against
/// the labelled vectors, good (`Normal`) vs defect per bean. A training diagnostic to compare
/// recipes between runs; `beanctl eval` is the measurement the figures come from.
struct FoldCheck {
    let store: [Float]
    let storeLabels: [String]
    let dim: Int
    let k = 5

    struct Result {
        var beans: Int
        var goodBeans: Int
        var auc: Double
        var recallAtGoodRejected: [(rate: Double, recall: Double)]
        var classAccuracy: Double
        /// Macro F1 over the classes present among the held-out photos (photo = usable side).
        var macroF1: Double

        func summary(title: String) -> String {
            var lines = [title]
            lines.append(String(format: "  beans %d (good %d), ROC AUC %.4f, photo class accuracy %.3f, macro F1 %.3f",
                                beans, goodBeans, auc, classAccuracy, macroF1))
            for (rate, recall) in recallAtGoodRejected {
                lines.append(String(format: "  defect recall at %.0f %% good rejected: %.3f", rate * 100, recall))
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Defect score of a photo: similarity-weighted defect share of its k nearest labelled vectors
    /// (cosine on unit vectors); a bean's score is the maximum over its usable photos.
    func score(queries: [Float], beans: [Int], beanLabels: (Int) -> String) -> Result {
        let n = storeLabels.count
        var beanScore: [Int: Double] = [:]
        var correct = 0
        var truePositive: [String: Int] = [:], predicted: [String: Int] = [:], actual: [String: Int] = [:]
        let queryCount = beans.count
        for q in 0..<queryCount {
            var sims = [(Float, Int)]()
            sims.reserveCapacity(n)
            for s in 0..<n {
                var dot: Float = 0
                for d in 0..<dim { dot += queries[q * dim + d] * store[s * dim + d] }
                sims.append((dot, s))
            }
            sims.sort { $0.0 > $1.0 }
            var weightDefect = 0.0, weightAll = 0.0
            var votes: [String: Double] = [:]
            for (sim, s) in sims.prefix(k) {
                let w = exp(Double(sim) / 0.1)
                weightAll += w
                if storeLabels[s] != Label.normal.name { weightDefect += w }
                votes[storeLabels[s], default: 0] += w
            }
            let score = weightAll > 0 ? weightDefect / weightAll : 0
            beanScore[beans[q]] = max(beanScore[beans[q]] ?? 0, score)
            let guess = votes.max(by: { $0.value < $1.value })?.key ?? ""
            let truth = beanLabels(beans[q])
            predicted[guess, default: 0] += 1
            actual[truth, default: 0] += 1
            if guess == truth { correct += 1; truePositive[truth, default: 0] += 1 }
        }
        var good: [Double] = [], defect: [Double] = []
        for (bean, score) in beanScore where bean >= 0 {
            if beanLabels(bean) == Label.normal.name { good.append(score) } else { defect.append(score) }
        }
        let f1s = actual.keys.map { label -> Double in
            let tp = Double(truePositive[label] ?? 0)
            let denominator = Double(predicted[label] ?? 0) + Double(actual[label] ?? 0)
            return denominator > 0 ? 2 * tp / denominator : 0
        }
        return Result(beans: beanScore.count, goodBeans: good.count, auc: Self.auc(good: good, defect: defect),
                      recallAtGoodRejected: [0.01, 0.03, 0.05].map { ($0, Self.recall(good: good, defect: defect, rate: $0)) },
                      classAccuracy: queryCount > 0 ? Double(correct) / Double(queryCount) : 0,
                      macroF1: f1s.isEmpty ? .nan : f1s.reduce(0, +) / Double(f1s.count))
    }

    /// Probability that a defect bean scores above a good one (ties count half).
    static func auc(good: [Double], defect: [Double]) -> Double {
        guard !good.isEmpty, !defect.isEmpty else { return .nan }
        let sortedGood = good.sorted()
        var total = 0.0
        for d in defect {
            let below = lowerBound(sortedGood, d)
            let notAbove = upperBound(sortedGood, d)
            total += Double(below) + 0.5 * Double(notAbove - below)
        }
        return total / Double(good.count * defect.count)
    }

    /// Share of defect beans rejected by the strictest threshold that rejects at most `rate` of the
    /// good beans (reject when score > threshold).
    static func recall(good: [Double], defect: [Double], rate: Double) -> Double {
        guard !good.isEmpty, !defect.isEmpty else { return .nan }
        let sorted = good.sorted(by: >)
        let allowed = Int((rate * Double(sorted.count)).rounded(.down))
        let threshold = allowed < sorted.count ? sorted[allowed] : -Double.infinity
        return Double(defect.filter { $0 > threshold }.count) / Double(defect.count)
    }

    private static func lowerBound(_ a: [Double], _ v: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi { let m = (lo + hi) / 2; if a[m] < v { lo = m + 1 } else { hi = m } }
        return lo
    }

    private static func upperBound(_ a: [Double], _ v: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi { let m = (lo + hi) / 2; if a[m] <= v { lo = m + 1 } else { hi = m } }
        return lo
    }
}
