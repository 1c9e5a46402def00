import BeanCapture
import BeanCore
@testable import BeanInspect
import Testing

@Suite struct SorterMetricsTests {
    @Test func aucCountsTiesAsHalf() throws {
        // Pairs won by the defect: 0.9 and 0.8 beat all three good beans (6); 0.4 beats 0.1 and
        // ties 0.4 (1.5); 7.5 of 9.
        let auc = try #require(SorterMetrics.rocAUC(defect: [0.9, 0.8, 0.4], good: [0.5, 0.4, 0.1]))
        #expect(abs(auc - 7.5 / 9) < 1e-12)
        #expect(SorterMetrics.rocAUC(defect: [1, 2], good: [3, 4]) == 0)
        #expect(SorterMetrics.rocAUC(defect: [2, 2], good: [2]) == 0.5)
        #expect(SorterMetrics.rocAUC(defect: [], good: [1]) == nil)
    }

    @Test func thresholdRejectsAtMostTheRateOfGoodBeans() throws {
        let good: [Double] = [0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0, 0, 0]
        // 10 % of 10 good beans: one may be rejected, so the threshold is the second highest.
        #expect(SorterMetrics.threshold(good: good, rejectingAtMost: 0.10) == 0.5)
        #expect(SorterMetrics.fractionAbove(good, threshold: 0.5) == 0.1)
        // 5 % of 10 is no bean: the threshold is the highest good score, nothing above it.
        #expect(SorterMetrics.threshold(good: good, rejectingAtMost: 0.05) == 0.9)
        #expect(SorterMetrics.threshold(good: good, rejectingAtMost: 1) == -.infinity)
        #expect(SorterMetrics.threshold(good: [], rejectingAtMost: 0.03) == nil)
    }

    @Test func thresholdSurvivesRateRounding() throws {
        // 0.29 × 100 is 28.999999999999996 in binary floating point; 29 beans may be rejected.
        let good = (0..<100).map { Double($0) }
        let t = try #require(SorterMetrics.threshold(good: good, rejectingAtMost: 0.29))
        #expect(t == 70)
        #expect(good.filter { $0 > t }.count == 29)
    }

    /// The daemon's reject share for a rate: the smallest multiple of 0.001 that the first good
    /// bean to keep does not reach, so the vote (share ≥ threshold) rejects at most that rate.
    @Test func rejectShareForTheDaemonsVote() throws {
        let good: [Double] = [1, 0.8, 0.8, 0.6, 0.5, 0.4, 0.2, 0, 0, 0]
        // 10 %: one good bean may go; the second highest (0.8) must stay: 0.801.
        #expect(SorterMetrics.rejectShare(good: good, rejectingAtMost: 0.1) == 0.801)
        // 30 %: three may go, the fourth (0.6) stays: 0.601, which rejects exactly three.
        let share = try #require(SorterMetrics.rejectShare(good: good, rejectingAtMost: 0.3))
        #expect(share == 0.601)
        let counts = SorterMetrics.counts(defectShares: [1, 0.7, 0.601, 0.6], goodShares: good, rejectShare: share)
        #expect(counts.falsePositives == 3 && counts.truePositives == 3)  // 0.601 itself reaches it, 0.6 does not
        // 5 %: no good bean may go, and the highest has the whole vote: no share reaches that.
        #expect(SorterMetrics.rejectShare(good: good, rejectingAtMost: 0.05) == nil)
        // A share just under a step is not rounded down past itself.
        #expect(SorterMetrics.rejectShare(good: [0.7999999, 0.1], rejectingAtMost: 0) == 0.8)
        #expect(SorterMetrics.rejectShare(good: [0.5, 0.1], rejectingAtMost: 1) == SorterMetrics.shareStep)
        #expect(SorterMetrics.rejectShare(good: [], rejectingAtMost: 0.03) == nil)
        // What the reported share does is what the policy's rule does.
        for rate in [0.0, 0.1, 0.2, 0.3, 0.5] {
            guard let s = SorterMetrics.rejectShare(good: good, rejectingAtMost: rate) else { continue }
            let rejected = good.filter { DecisionPolicy.reaches($0, threshold: s) }.count
            #expect(Double(rejected) <= rate * Double(good.count) + 1e-9, "rate \(rate): \(rejected) rejected at \(s)")
        }
    }

    @Test func tiedGoodScoresAreHeldBack() throws {
        // Three good beans tie at the top: rejecting any would reject all three (75 %), so at a
        // 25 % budget none is rejected, and a defect tied with them is kept too.
        let t = try #require(SorterMetrics.threshold(good: [0.5, 0.5, 0.5, 0.1], rejectingAtMost: 0.25))
        let counts = SorterMetrics.counts(defect: [0.6, 0.5, 0.2], good: [0.5, 0.5, 0.5, 0.1], threshold: t)
        #expect(counts.falsePositives == 0)
        #expect(counts.truePositives == 1)
        #expect(abs(counts.recall - 1.0 / 3) < 1e-12)
        // F1 = 2·1 / (2·1 + 0 + 2)
        #expect(abs(counts.f1 - 0.5) < 1e-12)
    }

    @Test func rocAndPrecisionRecallCurves() {
        let roc = SorterMetrics.rocCurve(defect: [0.9, 0.4], good: [0.4, 0.1])
        #expect(roc.map(\.fpr) == [0, 0, 0.5, 1])
        #expect(roc.map(\.tpr) == [0, 0.5, 1, 1])
        let pr = SorterMetrics.precisionRecallCurve(defect: [0.9, 0.4], good: [0.4, 0.1])
        #expect(pr.map(\.recall) == [0.5, 1, 1])
        #expect(pr.map(\.precision) == [1, 2.0 / 3, 0.5])
    }

    @Test func confusionMatrixPerClassAndMacroF1() throws {
        var pairs: [(truth: String, predicted: String)] = []
        pairs += Array(repeating: ("A", "A"), count: 3) + [("A", "B")]
        pairs += Array(repeating: ("B", "B"), count: 2) + Array(repeating: ("B", "A"), count: 2) + [("B", "(anomaly)")]
        let m = ConfusionMatrix(pairs: pairs)
        #expect(m.trueLabels == ["A", "B"])
        #expect(m.predictedLabels == ["A", "B", "(anomaly)"])
        #expect(m.counts == [[3, 1, 0], [2, 2, 1]])
        let a = try #require(m.perClass["A"]), b = try #require(m.perClass["B"])
        // A: 3 right of 4, predicted 5 times. B: 2 right of 5, predicted 3 times.
        #expect(abs(a.precision - 0.6) < 1e-12 && abs(a.recall - 0.75) < 1e-12 && abs(a.f1 - 2.0 / 3) < 1e-12)
        #expect(abs(b.precision - 2.0 / 3) < 1e-12 && abs(b.recall - 0.4) < 1e-12 && abs(b.f1 - 0.5) < 1e-12)
        #expect(abs((m.macroF1 ?? 0) - 7.0 / 12) < 1e-12)
        #expect(abs(m.accuracy - 5.0 / 9) < 1e-12)
        #expect(ConfusionMatrix(pairs: []).macroF1 == nil)
    }

    @Test func binaryCountsFromOutcomes() {
        let c = BinaryCounts([(true, true), (true, false), (false, true), (false, false), (false, false)])
        #expect(c == BinaryCounts(truePositives: 1, falsePositives: 1, falseNegatives: 1, trueNegatives: 2))
        #expect(abs(c.falsePositiveRate - 1.0 / 3) < 1e-12)
        #expect(BinaryCounts([(false, false)]).f1 == 0)
    }

    @Test func spreadOverFolds() throws {
        let s = try #require(Spread([1, 2, 3, 4]))
        #expect(s.mean == 2.5 && s.minimum == 1 && s.maximum == 4)
        #expect(abs(s.standardDeviation - (5.0 / 3).squareRoot()) < 1e-12)
        #expect(Spread([]) == nil)
    }
}

@Suite struct RawPixelEncoderTests {
    @Test func boxAveragesAndNormalises() throws {
        // 4×4 crop: left half red 255, right half black; at 2×2 each output pixel averages a
        // 2×2 block, so the vector is red on the left column only, then L2-normalised.
        var pixels = [UInt8](repeating: 0, count: 4 * 4 * 3)
        for y in 0..<4 { for x in 0..<2 { pixels[(y * 4 + x) * 3] = 255 } }
        let crop = BeanCrop(camera: "t", frameSequence: 0, captured: .now(), beanID: 0, width: 4, height: 4, pixels: pixels)
        let v = try RawPixelEncoder(size: 2).embed(crop)
        let s = 1 / Float(2).squareRoot()
        #expect(v.count == 12)
        #expect(v == [s, 0, 0, 0, 0, 0, s, 0, 0, 0, 0, 0])
        #expect(throws: RawPixelEncoderError.self) { try RawPixelEncoder(size: 0) }
    }
}

@Suite struct ReportPlotsTests {
    @Test func rocPlotEncodesAsPNGThatDecodesBack() throws {
        let points = SorterMetrics.rocCurve(defect: [0.9, 0.7, 0.4], good: [0.5, 0.1])
        let canvas = ReportPlots.roc(points, auc: 0.83)
        let png = try ImageCodec.encodePNG(canvas.frame)
        let decoded = try ImageCodec.decode(data: png, name: "roc.png")
        #expect(decoded.width == canvas.width && decoded.height == canvas.height)
        // Not blank: the curve's colour is there and so is dark ink (axes, text).
        var curvePixels = 0, inkPixels = 0
        for y in 0..<decoded.height {
            for x in 0..<decoded.width {
                let i = y * decoded.stride + x * 3
                let (r, g, b) = (decoded.pixels[i], decoded.pixels[i + 1], decoded.pixels[i + 2])
                if r == 31 && g == 119 && b == 180 { curvePixels += 1 }
                if r < 60 && g < 60 && b < 60 { inkPixels += 1 }
            }
        }
        #expect(curvePixels > 200)
        #expect(inkPixels > 200)
    }

    @Test func confusionHeatMapHasACellPerPair() throws {
        let m = ConfusionMatrix(pairs: [("Normal", "Normal"), ("Black", "Normal"), ("Black", "Black")])
        let canvas = ReportPlots.confusion(m)
        let decoded = try ImageCodec.decode(data: try ImageCodec.encodePNG(canvas.frame), name: "confusion.png")
        #expect(decoded.width == canvas.width && decoded.height == canvas.height)
        // Each row holds one cell at share 1/2 or 1: a blue shade darker than white.
        let shaded = stride(from: 0, to: decoded.pixels.count, by: 3).filter { decoded.pixels[$0] < 200 && decoded.pixels[$0 + 2] > 200 }
        #expect(shaded.count > 3 * 30 * 30)
    }
}

@Suite struct RejectScoreTests {
    static let good: Set<Label> = [.normal]
    static func n(_ label: String, _ d: Float) -> Neighbor { Neighbor(label: Label(label), distance: d, vectorID: 0) }

    @Test func voteShareWithTheNearestGoodDistance() {
        // Weights 1/(d+ε) ≈ 10, 5, 2.5 (ε tiny): defect share (10 + 2.5) / 17.5; nearest good at 0.2.
        let score = RejectScore.vote([Self.n("Black", 0.1), Self.n("Normal", 0.2), Self.n("Sour", 0.4)],
                                     k: 3, goodLabels: Self.good, epsilon: 1e-12)
        #expect(abs(score - (12.5 / 17.5 + 0.01 * 0.2)) < 1e-9)
    }

    @Test func allDefectNeighboursNoLongerTie() {
        // Both beans see only defects among their k nearest: the share is 1 for both; the one
        // whose neighbours are farther (so the nearest good vector is at least that far) scores
        // higher, instead of the two tying at 1.
        let near = RejectScore.vote([Self.n("Black", 0.1), Self.n("Sour", 0.2)], k: 2, goodLabels: Self.good, epsilon: 1e-6)
        let far = RejectScore.vote([Self.n("Black", 0.1), Self.n("Sour", 0.6)], k: 2, goodLabels: Self.good, epsilon: 1e-6)
        #expect(abs(near - 1.002) < 1e-9)
        #expect(far > near)
        // Only the k nearest count: a good vector beyond them does not change the score.
        let withFarGood = RejectScore.vote([Self.n("Black", 0.1), Self.n("Sour", 0.2), Self.n("Normal", 0.05 + 1)],
                                           k: 2, goodLabels: Self.good, epsilon: 1e-6)
        #expect(withFarGood == near)
    }

    @Test func unusableNeighboursAndOneClass() {
        #expect(RejectScore.vote([Self.n("Black", .nan)], k: 5, goodLabels: Self.good, epsilon: 1e-6) == 1)
        #expect(RejectScore.vote([], k: 5, goodLabels: Self.good, epsilon: 1e-6) == 1)
        // Negative distances (rounding in cosine distance) count as 0.
        let exact = RejectScore.vote([Self.n("Normal", -1e-7)], k: 5, goodLabels: Self.good, epsilon: 1e-6)
        #expect(exact == 0)
        let oneClass = RejectScore.oneClass([Self.n("Normal", 0.2), Self.n("Black", 0.01), Self.n("Normal", 0.4), Self.n("Normal", 0.9)],
                                            k: 2, goodLabels: Self.good)
        #expect(abs(oneClass - 0.3) < 1e-7)
        #expect(RejectScore.oneClass([Self.n("Black", 0.1)], k: 2, goodLabels: Self.good) == .infinity)
    }
}
