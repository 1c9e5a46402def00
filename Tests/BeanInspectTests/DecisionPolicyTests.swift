import BeanCore
import Testing
@testable import BeanInspect

private func n(_ label: String, _ distance: Float, _ id: UInt64 = 0) -> Neighbor {
    Neighbor(label: Label(label), distance: distance, vectorID: id)
}

/// Reference vote share computed straight from the documented formula.
private func share(of label: String, in neighbors: [Neighbor], epsilon: Double = 1e-6) -> Double {
    let weights = neighbors.map { 1.0 / (Double($0.distance) + epsilon) }
    let total = weights.reduce(0, +)
    return zip(neighbors, weights).filter { $0.0.label.name == label }.map(\.1).reduce(0, +) / total
}

@Suite struct VoteModeTests {
    @Test func allNormalNeighboursAccept() throws {
        let policy = try DecisionPolicy(k: 3)
        let d = policy.decide([n("Normal", 0.1), n("Normal", 0.2), n("Normal", 0.3)])
        #expect(d.verdict == .accept)
        #expect(!d.eject)
        #expect(d.label == "Normal")
        #expect(d.score == 1.0)
        #expect(d.reason == .voteBelowThresholds)
    }

    @Test func defectMajorityRejectsWithItsShare() throws {
        let policy = try DecisionPolicy(k: 3)
        let neighbors = [n("Black", 0.1), n("Black", 0.2), n("Normal", 0.3)]
        let d = policy.decide(neighbors)
        #expect(d.verdict == .reject)
        #expect(d.eject)
        #expect(d.label == "Black")
        let expected = share(of: "Black", in: neighbors)
        #expect(abs((d.score ?? 0) - expected) < 1e-12)
        #expect(d.reason == .vote)
    }

    @Test func distanceWeightingBeatsCount() throws {
        // Two far Black votes against one very near Normal vote: Normal wins by weight.
        let policy = try DecisionPolicy(k: 3)
        let neighbors = [n("Normal", 0.01), n("Black", 1.0), n("Black", 1.0)]
        #expect(share(of: "Black", in: neighbors) < 0.5)
        let d = policy.decide(neighbors)
        #expect(d.verdict == .accept)
        #expect(d.label == "Normal")
    }

    @Test func thresholdIsInclusive() throws {
        // Equal distances: Black has exactly 2/4 of the weight; threshold 0.5 rejects (≥).
        let neighbors = [n("Black", 0.5), n("Black", 0.5), n("Normal", 0.5), n("Normal", 0.5)]
        let atThreshold = try DecisionPolicy(k: 4, thresholds: Thresholds(defaultRejectShare: 0.5))
        #expect(atThreshold.decide(neighbors).verdict == .reject)
        let above = try DecisionPolicy(k: 4, thresholds: Thresholds(defaultRejectShare: 0.5000001))
        #expect(above.decide(neighbors).verdict == .accept)
    }

    /// The decision score is what the vote (its largest defect-label share) and score mode (the
    /// reject score) compare with the default threshold: over many random neighbour sets and
    /// thresholds, the policy ejects exactly when it reaches the threshold. With a per-label
    /// threshold or an unknown distance it no longer decides alone, and the policy says so.
    @Test(arguments: [DecisionPolicy.Mode.vote, .score])
    func decisionScoreDecidesTheVerdict(mode: DecisionPolicy.Mode) throws {
        let labels = ["Normal", "Black", "Broken", "Fissure"]
        var rng = SplitMix64(seed: 7)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        for trial in 0..<2_000 {
            let neighbors = (0..<(1 + trial % 7)).map { i in
                n(labels[Int(rng.next() % 4)], Float(uniform() * 0.8), UInt64(i))
            }
            let threshold = [0.25, 0.5, 0.6, 1.0, (uniform() * 1000).rounded(.up) / 1000][trial % 5]
            let policy = try DecisionPolicy(mode: mode, k: 5, thresholds: Thresholds(defaultRejectShare: threshold))
            #expect(policy.rejectsByDecisionScore)
            let score = try #require(policy.decisionScore(neighbors))
            #expect(policy.decide(neighbors).eject == DecisionPolicy.reaches(score, threshold: threshold),
                    "trial \(trial): score \(score), threshold \(threshold)")
        }
        #expect(try DecisionPolicy(mode: mode, k: 3).decisionScore([n("Black", .nan)]) == nil)
        #expect(try !DecisionPolicy(mode: mode, thresholds: Thresholds(unknownDistance: 0.5)).rejectsByDecisionScore)
    }

    @Test func decisionScoreOfTheVoteIsTheLargestDefectShare() throws {
        let neighbors = [n("Black", 0.1), n("Broken", 0.1), n("Normal", 0.2), n("Broken", 0.3)]
        let policy = try DecisionPolicy(k: 3)
        #expect(abs((policy.decisionScore(neighbors) ?? 0) - share(of: "Broken", in: Array(neighbors.prefix(3)))) < 1e-12)
        #expect(try DecisionPolicy(k: 3).decisionScore([n("Normal", 0.1)]) == 0)
        #expect(try !DecisionPolicy(thresholds: Thresholds(rejectShare: ["Black": 0.3])).rejectsByDecisionScore)
        #expect(try !DecisionPolicy(mode: .oneClass).rejectsByDecisionScore)
        #expect(try DecisionPolicy(mode: .oneClass).decisionScore(neighbors) == nil)
    }

    @Test func perLabelThresholdOverridesDefault() throws {
        let neighbors = [n("Broken", 0.5), n("Normal", 0.5), n("Normal", 0.5), n("Normal", 0.5)]  // Broken 0.25
        let strict = try DecisionPolicy(k: 4, thresholds: Thresholds(defaultRejectShare: 0.5, rejectShare: ["Broken": 0.25]))
        let d = strict.decide(neighbors)
        #expect(d.verdict == .reject)
        #expect(d.label == "Broken")
        let lenient = try DecisionPolicy(k: 4, thresholds: Thresholds(defaultRejectShare: 0.2, rejectShare: ["Broken": 0.3]))
        #expect(lenient.decide(neighbors).verdict == .accept)
    }

    @Test func severalDefectsOverThresholdLargestShareDecides() throws {
        let thresholds = Thresholds(defaultRejectShare: 0.2)
        let policy = try DecisionPolicy(k: 5, thresholds: thresholds)
        let neighbors = [n("Insect", 0.2), n("Black", 0.3), n("Insect", 0.4), n("Black", 0.9), n("Normal", 0.1)]
        let d = policy.decide(neighbors)
        #expect(d.verdict == .reject)
        let insect = share(of: "Insect", in: neighbors), black = share(of: "Black", in: neighbors)
        #expect(insect > black && black >= 0.2)
        #expect(d.label == "Insect")
    }

    @Test func equalSharesBreakTiesByNameNotOrder() throws {
        let policy = try DecisionPolicy(k: 2, thresholds: Thresholds(defaultRejectShare: 0.5))
        let a = policy.decide([n("Sour", 0.4, 1), n("Black", 0.4, 2)])
        let b = policy.decide([n("Black", 0.4, 2), n("Sour", 0.4, 1)])
        #expect(a.label == "Black")
        #expect(b.label == "Black")
    }

    @Test func tieBetweenGoodAndDefectAcceptReportsGoodLabel() throws {
        let policy = try DecisionPolicy(k: 2, thresholds: Thresholds(defaultRejectShare: 0.6))
        let d = policy.decide([n("Black", 0.4), n("Normal", 0.4)])
        #expect(d.verdict == .accept)
        #expect(d.label == "Normal")
    }

    @Test func onlyTheKNearestCountEvenWhenUnsorted() throws {
        let policy = try DecisionPolicy(k: 3)
        // The two Black vectors are the farthest of five; with k = 3 they must not count.
        let d = policy.decide([n("Black", 0.9), n("Normal", 0.1), n("Black", 0.8), n("Normal", 0.2), n("Normal", 0.3)])
        #expect(d.verdict == .accept)
        #expect(d.score == 1.0)
        let all = try DecisionPolicy(k: 5, thresholds: Thresholds(defaultRejectShare: 0.1))
        #expect(all.decide([n("Black", 0.9), n("Normal", 0.1), n("Black", 0.8), n("Normal", 0.2), n("Normal", 0.3)]).verdict == .reject)
    }

    @Test func fewerThanKNeighboursUseWhatIsThere() throws {
        let policy = try DecisionPolicy(k: 10)
        #expect(policy.decide([n("Black", 0.1)]).verdict == .reject)
    }

    @Test func exactMatchHasFiniteWeight() throws {
        let policy = try DecisionPolicy(k: 2)
        let d = policy.decide([n("Black", 0), n("Normal", 0)])
        #expect(d.score == 0.5)
        #expect(d.verdict == .reject)  // 0.5 ≥ 0.5, tie reported as the deciding defect
    }

    @Test func configuredGoodLabelsNeverReject() throws {
        let policy = try DecisionPolicy(k: 2, goodLabels: ["Normal", "Peaberry"])
        let d = policy.decide([n("Peaberry", 0.1), n("Peaberry", 0.2)])
        #expect(d.verdict == .accept)
        #expect(d.label == "Peaberry")
        // `Normal` is only good because it is configured so.
        let other = try DecisionPolicy(k: 2, goodLabels: ["Peaberry"])
        #expect(other.decide([n("Normal", 0.1), n("Normal", 0.2)]).verdict == .reject)
    }

    @Test func unknownWhenNearestBeyondLimitWithConfiguredAction() throws {
        let thresholds = Thresholds(unknownDistance: 1.0)
        let rejecting = try DecisionPolicy(k: 2, unknownAction: .reject, thresholds: thresholds)
        let far = [n("Normal", 1.5), n("Normal", 1.6)]
        let d = rejecting.decide(far)
        #expect(d.verdict == .unknown)
        #expect(d.eject)
        #expect(d.label == nil)
        #expect(d.score == Double(Float(1.5)))
        #expect(d.reason == .unknown)
        let accepting = try DecisionPolicy(k: 2, unknownAction: .accept, thresholds: thresholds)
        #expect(accepting.decide(far).verdict == .unknown)
        #expect(!accepting.decide(far).eject)
        // Exactly at the limit is not unknown (strictly farther).
        #expect(rejecting.decide([n("Normal", 1.0)]).verdict == .accept)
        // Unknown looks at the nearest one only.
        #expect(rejecting.decide([n("Normal", 0.5), n("Normal", 5)]).verdict == .accept)
    }

    @Test func noUsableNeighboursIsUnknown() throws {
        let policy = try DecisionPolicy(k: 3, unknownAction: .accept)
        let empty = policy.decide([])
        #expect(empty.verdict == .unknown)
        #expect(empty.reason == .noNeighbors)
        #expect(empty.score == nil)
        #expect(!empty.eject)
        let nonFinite = policy.decide([n("Black", .nan), n("Black", .infinity)])
        #expect(nonFinite.reason == .noNeighbors)
    }

    @Test func nonFiniteDistancesAreIgnoredAndNegativeClampToZero() throws {
        let policy = try DecisionPolicy(k: 3)
        let d = policy.decide([n("Black", .nan), n("Normal", 0.2), n("Black", .infinity)])
        #expect(d.verdict == .accept)
        #expect(d.score == 1.0)
        let clamp = policy.decide([n("Black", -1e-7), n("Normal", 0)])
        #expect(clamp.score == 0.5)
    }
}

@Suite struct OneClassModeTests {
    @Test func meanDistanceAboveThresholdRejects() throws {
        let policy = try DecisionPolicy(mode: .oneClass, k: 3, thresholds: Thresholds(oneClassDistance: 0.5))
        let d = policy.decide([n("Normal", 0.4), n("Normal", 0.6), n("Normal", 0.8)])
        #expect(d.verdict == .reject)
        #expect(d.eject)
        #expect(d.label == nil)
        #expect(abs((d.score ?? 0) - Double(Float(0.4) + Float(0.6) + Float(0.8)) / 3) < 1e-6)
        #expect(d.reason == .oneClassDistance)
    }

    @Test func meanAtThresholdAccepts() throws {
        let policy = try DecisionPolicy(mode: .oneClass, k: 2, thresholds: Thresholds(oneClassDistance: 0.5))
        let d = policy.decide([n("Normal", 0.5), n("Normal", 0.5)])
        #expect(d.verdict == .accept)
        #expect(d.label == "Normal")
        #expect(d.reason == .oneClassWithin)
    }

    @Test func onlyKNearestAreAveraged() throws {
        let policy = try DecisionPolicy(mode: .oneClass, k: 2, thresholds: Thresholds(oneClassDistance: 0.5))
        let d = policy.decide([n("Normal", 9), n("Normal", 0.1), n("Normal", 0.3)])
        #expect(d.verdict == .accept)
        #expect(abs((d.score ?? 0) - 0.2) < 1e-6)
    }

    @Test func nonGoodNeighboursAreSkippedAndCounted() throws {
        let policy = try DecisionPolicy(mode: .oneClass, k: 2, thresholds: Thresholds(oneClassDistance: 0.5))
        let d = policy.decide([n("Black", 0.01), n("Normal", 0.9), n("Normal", 0.9)])
        #expect(d.skippedNeighbors == 1)
        #expect(d.verdict == .reject)  // the near Black vector does not pull the mean down
    }

    @Test func unknownBeyondLimitAndEmptyInput() throws {
        let policy = try DecisionPolicy(mode: .oneClass, k: 2, unknownAction: .accept,
                                        thresholds: Thresholds(oneClassDistance: 0.5, unknownDistance: 2))
        let d = policy.decide([n("Normal", 2.5), n("Normal", 3)])
        #expect(d.verdict == .unknown)
        #expect(!d.eject)
        #expect(policy.decide([]).reason == .noNeighbors)
        #expect(policy.decide([n("Black", 0.1)]).reason == .noNeighbors)
    }
}

@Suite struct PolicyValidationTests {
    @Test(arguments: [0, -1])
    func kMustBePositive(k: Int) {
        #expect(throws: DecisionPolicyError.self) { try DecisionPolicy(k: k) }
    }

    @Test func thresholdsAreValidated() {
        for bad in [Thresholds(defaultRejectShare: 0), Thresholds(defaultRejectShare: 1.01),
                    Thresholds(defaultRejectShare: .nan), Thresholds(rejectShare: ["Black": -0.1]),
                    Thresholds(rejectShare: ["Normal": 0.5]), Thresholds(oneClassDistance: 0),
                    Thresholds(oneClassDistance: .infinity), Thresholds(unknownDistance: -1)] {
            #expect(throws: DecisionPolicyError.self) { try DecisionPolicy(thresholds: bad) }
        }
        #expect(throws: DecisionPolicyError.self) { try DecisionPolicy(goodLabels: []) }
        #expect(throws: DecisionPolicyError.self) { try DecisionPolicy(distanceEpsilon: 0) }
    }

    @Test func errorNamesTheField() {
        do {
            _ = try DecisionPolicy(thresholds: Thresholds(rejectShare: ["Black": 2]))
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("label:Black"))
            #expect("\(error)".contains("2.0"))
        }
    }
}

/// The vote policy against a second, dictionary-based reading of the documented rule, on random
/// inputs (unsorted, more than k, non-finite distances, several defect labels).
@Suite struct VoteModeReferenceTests {
    private struct Reference {
        var k: Int
        var good: Set<String>
        var thresholds: [String: Double]
        var defaultShare: Double
        var unknownLimit: Double?

        func decide(_ neighbors: [Neighbor]) -> (Verdict, String?, Double?) {
            let usable = neighbors.filter { $0.distance.isFinite }
                .sorted { ($0.distance, $0.vectorID) < ($1.distance, $1.vectorID) }
                .prefix(k)
            guard let nearest = usable.first else { return (.unknown, nil, nil) }
            if let unknownLimit, Double(max(nearest.distance, 0)) > unknownLimit {
                return (.unknown, nil, Double(max(nearest.distance, 0)))
            }
            var weights: [String: Double] = [:]
            for n in usable { weights[n.label.name, default: 0] += 1 / (Double(max(n.distance, 0)) + 1e-6) }
            let total = weights.values.reduce(0, +)
            let shares = weights.mapValues { $0 / total }
            let rejecting = shares.filter { !good.contains($0.key) && $0.value + 1e-12 >= (thresholds[$0.key] ?? defaultShare) }
            if let best = rejecting.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) {
                return (.reject, best.key, best.value)
            }
            let top = shares.max(by: { a, b in
                if a.value != b.value { return a.value < b.value }
                if good.contains(a.key) != good.contains(b.key) { return good.contains(b.key) }
                return a.key > b.key
            })
            return (.accept, top?.key, top?.value)
        }
    }

    @Test func agreesWithTheReferenceOnRandomInputs() throws {
        var rng = SeededGenerator(seed: 0x5eed_bea2)
        let labels = ["Normal", "Black", "Broken", "Sour"]
        var seen: [Verdict: Int] = [:]
        for _ in 0..<3000 {
            let k = Int.random(in: 1...9, using: &rng)
            let thresholds = ["Black": 0.31, "Broken": 0.47, "Sour": 0.63].filter { _ in Bool.random(using: &rng) }
            let defaultShare = [0.5, 0.37, 0.71].randomElement(using: &rng)!
            let unknownLimit: Double? = Bool.random(using: &rng) ? Double.random(in: 0.2...1.5, using: &rng) : nil
            let neighbors = (0..<Int.random(in: 0...14, using: &rng)).map { id -> Neighbor in
                let roll = Int.random(in: 0..<40, using: &rng)
                let distance: Float = roll == 0 ? .nan : roll == 1 ? .infinity : Float.random(in: 0...2, using: &rng)
                return Neighbor(label: Label(labels.randomElement(using: &rng)!), distance: distance, vectorID: UInt64(id))
            }
            let policy = try DecisionPolicy(
                k: k, thresholds: Thresholds(defaultRejectShare: defaultShare,
                                             rejectShare: Dictionary(uniqueKeysWithValues: thresholds.map { (Label($0.key), $0.value) }),
                                             unknownDistance: unknownLimit))
            let reference = Reference(k: k, good: ["Normal"], thresholds: thresholds, defaultShare: defaultShare,
                                      unknownLimit: unknownLimit)
            let d = policy.decide(neighbors)
            let (verdict, label, score) = reference.decide(neighbors)
            seen[verdict, default: 0] += 1
            #expect(d.verdict == verdict, "\(neighbors)")
            #expect(d.label?.name == label, "\(neighbors)")
            #expect(abs((d.score ?? -1) - (score ?? -1)) < 1e-9, "\(neighbors)")
        }
        // The random cases exercise every outcome, not just one.
        #expect(seen[.accept, default: 0] > 300 && seen[.reject, default: 0] > 300 && seen[.unknown, default: 0] > 300,
                "\(seen)")
    }
}

/// Reproducible random inputs (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ScoreModeTests {
    /// Four defect labels a quarter each: no label reaches the vote's 0.5, but together they are
    /// three quarters of the vote, and score mode rejects, naming the deciding label by the
    /// vote's tie rule and giving eval's reject score.
    @Test func defectsOfSeveralLabelsAddUp() throws {
        let neighbors = [n("Black", 0.1), n("Broken", 0.1), n("Normal", 0.1), n("Fissure", 0.1)]
        #expect(try DecisionPolicy(k: 4).decide(neighbors).verdict == .accept)
        let policy = try DecisionPolicy(mode: .score, k: 4)
        let d = policy.decide(neighbors)
        #expect(d.verdict == .reject && d.eject)
        #expect(d.reason == .score)
        #expect(d.label == "Black")
        let expected = RejectScore.vote(neighbors, k: 4, goodLabels: [.normal], epsilon: policy.distanceEpsilon)
        #expect(abs(expected - (0.75 + RejectScore.goodDistanceWeight * 0.1)) < 1e-6)
        #expect(d.score == expected)
    }

    @Test func belowTheThresholdAcceptsWithTheTopLabel() throws {
        let neighbors = [n("Normal", 0.1), n("Normal", 0.1), n("Black", 0.1), n("Normal", 0.2)]
        let d = try DecisionPolicy(mode: .score, k: 4).decide(neighbors)
        #expect(d.verdict == .accept && !d.eject)
        #expect(d.reason == .scoreBelowThreshold)
        #expect(d.label == "Normal")
        // Only the k nearest count: with k = 1 the one Normal vector alone scores 0.
        let one = try DecisionPolicy(mode: .score, k: 1).decide([n("Black", 0.3), n("Normal", 0.05)])
        #expect(one.verdict == .accept)
        #expect(abs((one.score ?? 1) - RejectScore.goodDistanceWeight * 0.05) < 1e-9)
    }

    @Test func unknownAndNoNeighboursAsInVoteMode() throws {
        let far = try DecisionPolicy(mode: .score, k: 3, unknownAction: .accept, thresholds: Thresholds(unknownDistance: 0.5))
        let d = far.decide([n("Black", 0.9), n("Black", 1.0)])
        #expect(d.verdict == .unknown && !d.eject && d.reason == .unknown)
        #expect(try DecisionPolicy(mode: .score).decide([]).reason == .noNeighbors)
    }

    /// The reported label comes from the nearest five: far neighbours of another defect add to the
    /// score but do not name the bean. When none of the nearest five is a defect, the defect
    /// label with the largest share of all k names a reject; an accept names the nearest five's
    /// top label.
    @Test func theLabelComesFromTheNearestFive() throws {
        let near = [n("Black", 0.05), n("Normal", 0.1), n("Normal", 0.1), n("Normal", 0.1), n("Normal", 0.1)]
        let far = (0..<8).map { n("Broken", 0.3, 10 + UInt64($0)) }
        let policy = try DecisionPolicy(mode: .score, k: 13, thresholds: Thresholds(defaultRejectShare: 0.4))
        let d = policy.decide(near + far)
        #expect(d.verdict == .reject && d.reason == .score)
        let shares = (black: share(of: "Black", in: near + far), broken: share(of: "Broken", in: near + far))
        #expect(shares.broken > shares.black, "Broken leads over all 13: \(shares)")
        #expect(d.label == "Black")
        // No defect among the nearest five: the defect with the largest share of all k.
        let allGood = near.map { n("Normal", $0.distance, $0.vectorID) }
        let e = try DecisionPolicy(mode: .score, k: 13, thresholds: Thresholds(defaultRejectShare: 0.2)).decide(allGood + far)
        #expect(e.verdict == .reject && e.label == "Broken")
        // An accept names the nearest five's top label.
        let f = try DecisionPolicy(mode: .score, k: 13, thresholds: Thresholds(defaultRejectShare: 0.9)).decide(near + far)
        #expect(f.verdict == .accept && f.label == "Normal")
    }

    /// The note for an operator whose threshold cannot change decisions in the policy's mode.
    @Test func ineffectiveThresholdsAreNamed() throws {
        let score = try DecisionPolicy(mode: .score, thresholds: Thresholds(defaultRejectShare: 0.6, rejectShare: ["Black": 0.6, "Broken": 0.3]))
        #expect(score.ineffectiveThresholdNote(.rejectShare("Black"))?.contains("(0.6) it changes nothing") == true)
        #expect(score.ineffectiveThresholdNote(.rejectShare("Broken")) == nil)
        #expect(score.ineffectiveThresholdNote(.defaultRejectShare) == nil)
        #expect(score.ineffectiveThresholdNote(.unknownDistance) == nil)
        #expect(score.ineffectiveThresholdNote(.oneClassDistance)?.contains("score mode") == true)
        let vote = try DecisionPolicy(mode: .vote, thresholds: Thresholds(defaultRejectShare: 0.6, rejectShare: ["Black": 0.9]))
        #expect(vote.ineffectiveThresholdNote(.rejectShare("Black")) == nil, "in vote mode a higher label threshold loosens")
        #expect(vote.ineffectiveThresholdNote(.oneClassDistance) != nil)
        let oneClass = try DecisionPolicy(mode: .oneClass)
        #expect(oneClass.ineffectiveThresholdNote(.defaultRejectShare)?.contains("one-class mode") == true)
        #expect(oneClass.ineffectiveThresholdNote(.oneClassDistance) == nil)
    }

    /// In score mode a label's own threshold is one more trigger: it rejects a bean whose share of
    /// that label reaches it, with reason `vote`, even when the score stays below the default.
    /// At or above the default it changes nothing (a label's share never exceeds the score).
    @Test func perLabelThresholdsAddATriggerAndNeverLoosen() throws {
        // Broken 0.25, Black 0.25: score 0.5 + ε-term; Broken alone 0.25.
        let neighbors = [n("Broken", 0.1), n("Normal", 0.1), n("Normal", 0.1), n("Black", 0.1)]
        let plain = try DecisionPolicy(mode: .score, k: 4, thresholds: Thresholds(defaultRejectShare: 0.6))
        #expect(plain.decide(neighbors).verdict == .accept)
        let strict = try DecisionPolicy(mode: .score, k: 4, thresholds: Thresholds(defaultRejectShare: 0.6, rejectShare: ["Broken": 0.25]))
        #expect(!strict.rejectsByDecisionScore, "a per-label trigger means the score no longer decides alone")
        let d = strict.decide(neighbors)
        #expect(d.verdict == .reject && d.eject && d.reason == .vote && d.label == "Broken")
        #expect(abs((d.score ?? 0) - 0.25) < 1e-9)
        // A label threshold above its share does not trigger, and one above the default cannot
        // keep a bean the score rejects.
        #expect(try DecisionPolicy(mode: .score, k: 4, thresholds: Thresholds(defaultRejectShare: 0.6, rejectShare: ["Broken": 0.3]))
            .decide(neighbors).verdict == .accept)
        let lenient = try DecisionPolicy(mode: .score, k: 4, thresholds: Thresholds(defaultRejectShare: 0.4, rejectShare: ["Broken": 0.9, "Black": 0.9]))
        let e = lenient.decide(neighbors)
        #expect(e.verdict == .reject && e.reason == .score)
        // Good labels never trigger (they cannot have a threshold), and the score decides first.
        let both = try DecisionPolicy(mode: .score, k: 4, thresholds: Thresholds(defaultRejectShare: 0.5, rejectShare: ["Broken": 0.2]))
        #expect(both.decide(neighbors).reason == .score)
    }
}
