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
