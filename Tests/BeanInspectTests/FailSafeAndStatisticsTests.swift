import Foundation
import BeanCore
import Testing
@testable import BeanInspect

@Suite struct FailSafeTests {
    @Test func rejectUnscoredIsTheDefaultAndEjects() {
        var failSafe = FailSafe()
        #expect(failSafe.action == .rejectUnscored)
        let d = failSafe.decideUnscored()
        #expect(d.verdict == .unscored)
        #expect(d.eject)
        #expect(d.reason == .unscored)
        #expect(failSafe.totalRejected == 1)
    }

    @Test func passUnscoredLetsBeansThroughAndCounts() {
        var failSafe = FailSafe(action: .passUnscored)
        for _ in 0..<3 { #expect(!failSafe.decideUnscored().eject) }
        #expect(failSafe.totalPassed == 3)
        #expect(failSafe.totalUnscored == 3)
    }

    @Test func summaryCountsSinceLastCallOnly() {
        var failSafe = FailSafe()
        #expect(failSafe.takeSummary() == nil)
        _ = failSafe.decideUnscored()
        _ = failSafe.decideUnscored()
        let summary = failSafe.takeSummary()
        #expect(summary?.rejected == 2)
        #expect("\(summary!)" == "2 beans not scored before their eject time (reject-unscored): 2 rejected, 0 passed")
        #expect(failSafe.takeSummary() == nil)
        #expect(failSafe.totalRejected == 2)
    }

    @Test func tooLateHonoursTheLead() {
        let failSafe = FailSafe(ejectLeadNanoseconds: 1_000)
        let eject = MonotonicInstant(nanoseconds: 10_000)
        #expect(!failSafe.isTooLate(ejectAt: eject, now: MonotonicInstant(nanoseconds: 8_999)))
        #expect(failSafe.isTooLate(ejectAt: eject, now: MonotonicInstant(nanoseconds: 9_000)))
        #expect(failSafe.isTooLate(ejectAt: eject, now: MonotonicInstant(nanoseconds: 20_000)))
        #expect(!failSafe.isTooLate(ejectAt: nil, now: MonotonicInstant(nanoseconds: 20_000)))
    }

    @Test func removeTooLateKeepsTheBeansThatCanStillMakeItInOrder() {
        let failSafe = FailSafe(ejectLeadNanoseconds: 1_000)
        // (id, eject time): 1 and 4 are due within the lead at now = 10,000; 3 has no eject time.
        var beans: [(id: Int, ejectAt: MonotonicInstant?)] = [
            (1, MonotonicInstant(nanoseconds: 10_500)), (2, MonotonicInstant(nanoseconds: 50_000)), (3, nil),
            (4, MonotonicInstant(nanoseconds: 2_000)), (5, MonotonicInstant(nanoseconds: 11_001)),
        ]
        var expired: [Int] = []
        failSafe.removeTooLate(&beans, now: MonotonicInstant(nanoseconds: 10_000), ejectAt: { $0.ejectAt }) { expired.append($0.id) }
        #expect(beans.map(\.id) == [2, 3, 5])
        #expect(expired == [1, 4])

        var fresh: [(id: Int, ejectAt: MonotonicInstant?)] = [(7, MonotonicInstant(nanoseconds: 99_000)), (8, nil)]
        failSafe.removeTooLate(&fresh, now: MonotonicInstant(nanoseconds: 10_000), ejectAt: { $0.ejectAt }) { expired.append($0.id) }
        #expect(fresh.map(\.id) == [7, 8] && expired == [1, 4])
    }

    @Test func removeTooLateCountsTheTimeScoringWillTake() {
        let failSafe = FailSafe(ejectLeadNanoseconds: 1_000)
        // Scoring takes 5,000 ns from now = 10,000: a bean due before 16,000 (lead included) would
        // get its score too late; 16,000 exactly is too late as well (the lead is a minimum).
        var beans: [(id: Int, ejectAt: MonotonicInstant?)] = [
            (1, MonotonicInstant(nanoseconds: 12_000)), (2, MonotonicInstant(nanoseconds: 16_000)),
            (3, MonotonicInstant(nanoseconds: 16_001)), (4, nil), (5, MonotonicInstant(nanoseconds: 15_999)),
        ]
        var expired: [Int] = []
        failSafe.removeTooLate(&beans, now: MonotonicInstant(nanoseconds: 10_000), scoringNanoseconds: 5_000,
                               ejectAt: { $0.ejectAt }) { expired.append($0.id) }
        #expect(beans.map(\.id) == [3, 4])
        #expect(expired == [1, 2, 5])
    }

    @Test func scoringPaceLearnsTheTimePerBeanAfterTheFirstBatch() {
        var pace = ScoringPace()
        #expect(pace.expectedNanoseconds(forBatchOf: 8) == 0)
        pace.record(batchOf: 8, tookNanoseconds: 80_000_000)  // the first batch (warm-up) is left out
        #expect(pace.expectedNanoseconds(forBatchOf: 8) == 0)
        pace.record(batchOf: 8, tookNanoseconds: 8_000_000)
        #expect(pace.nanosecondsPerBean == 1_000_000)
        #expect(pace.expectedNanoseconds(forBatchOf: 3) == 3_000_000)
        pace.record(batchOf: 4, tookNanoseconds: 20_000_000)  // 5 ms a bean: weight 1/4
        #expect(pace.nanosecondsPerBean == 2_000_000)
        pace.record(batchOf: 0, tookNanoseconds: 1_000_000_000)  // an empty batch teaches nothing
        #expect(pace.nanosecondsPerBean == 2_000_000)
        for _ in 0..<40 { pace.record(batchOf: 2, tookNanoseconds: 1_000_000) }
        #expect(pace.nanosecondsPerBean >= 500_000 && pace.nanosecondsPerBean < 510_000)
    }
}

@Suite struct LatencyHistogramTests {
    @Test func bucketBoundsContainTheirValuesWithinRelativeError() {
        var value: UInt64 = 0
        while value < (1 << 37) {
            let index = LatencyHistogram.bucketIndex(value)
            let upper = LatencyHistogram.upperBound(ofBucket: index)
            if value < (1 << 36) {
                #expect(upper >= value)
                #expect(Double(upper - value) <= Double(value) / 32 + 1, "value \(value) bucket upper \(upper)")
                if index > 0 { #expect(LatencyHistogram.upperBound(ofBucket: index - 1) < value) }
            } else {
                #expect(index == LatencyHistogram.bucketCount - 1)
            }
            value = value < 200 ? value + 1 : value + value / 7
        }
        #expect(LatencyHistogram.bucketIndex(.max) == LatencyHistogram.bucketCount - 1)
    }

    @Test func quantilesOfAKnownDistribution() {
        var h = LatencyHistogram()
        #expect(h.quantile(0.5) == nil)
        // 1…1000 µs once each: p50 = 500, p99 = 990 (within the 3.1 % bucket resolution, never below).
        for v in 1...1000 { h.record(microseconds: UInt64(v)) }
        let p50 = h.quantile(0.5)!, p99 = h.quantile(0.99)!
        #expect(p50 >= 500 && Double(p50) <= 500 * 1.032)
        #expect(p99 >= 990 && Double(p99) <= 990 * 1.032)
        #expect(h.quantile(1.0)! >= 1000)
        var other = LatencyHistogram()
        for _ in 0..<3000 { other.record(microseconds: 10) }
        #expect(h.quantile(0.5, mergedWith: other) == 10)
    }
}

@Suite struct InspectionStatisticsTests {
    private func at(_ seconds: Double) -> MonotonicInstant { MonotonicInstant(nanoseconds: UInt64(seconds * 1e9)) }

    @Test func countsVerdictsLabelsAndEjections() {
        let stats = InspectionStatistics(started: at(100))
        stats.record(verdict: .accept, label: "Normal", eject: false, captured: at(100), decided: at(100.01))
        stats.record(verdict: .reject, label: "Black", eject: true, captured: at(100), decided: at(100.01))
        stats.record(verdict: .reject, label: "Black", eject: true, captured: at(100), decided: at(100.01))
        stats.record(verdict: .reject, label: nil, eject: true, captured: at(100), decided: at(100.01))
        stats.record(verdict: .unknown, label: nil, eject: false, captured: at(100), decided: at(100.01))
        stats.record(verdict: .unscored, label: nil, eject: true, captured: at(100), decided: at(100.01))
        #expect(stats.snapshot().beansTotal == 0)  // nothing published yet
        stats.publishSnapshot(now: at(100.02))
        let s = stats.snapshot()
        #expect(s.beansTotal == 6)
        #expect(s.acceptedTotal == 1)
        #expect(s.ejectedTotal == 4)
        #expect(s.rejectsByLabel == ["Black": 2, InspectionSnapshot.anomalyKey: 1])
        #expect(s.rejectsTotal == 3)
        #expect(s.unknownTotal == 1)
        #expect(s.unscoredTotal == 1)
    }

    @Test func snapshotEncodesAsSnakeCaseStatusFields() throws {
        let queue = BoundedQueue<Int>(name: "crops", capacity: 4, policy: .dropOldest)
        let stats = InspectionStatistics(started: at(0), queues: [queue])
        stats.record(verdict: .reject, label: "Black", eject: true, captured: at(1), decided: at(1.002))
        stats.record(verdict: .accept, label: "Normal", eject: false, captured: at(1), decided: at(1.002))
        stats.publishSnapshot(now: at(1.5))
        let data = try JSONEncoder().encode(stats.snapshot())
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((object["beans_total"] as? NSNumber)?.intValue == 2)
        #expect((object["rejects_by_label"] as? [String: Any])?["Black"] as? NSNumber == 1)
        #expect(((object["reject_fraction_by_label"] as? [String: Any])?["Black"] as? NSNumber)?.doubleValue == 0.5)
        #expect(object["latency_p99_us"] is NSNumber)
        #expect(((object["queues"] as? [[String: Any]])?.first?["high_water"] as? NSNumber)?.intValue == 0)
        let empty = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(InspectionStatistics(started: at(0)).snapshot())) as? [String: Any]
        #expect(empty?["latency_p50_us"] is NSNull)
    }

    @Test func stageLatenciesSplitTheTotalWhereTheTimeGoes() throws {
        let stats = InspectionStatistics(started: at(0), latencyWindowSeconds: 10)
        // 1,000 beans: 3 ms in vision, 7 ms scoring, 0.5 ms deciding; one bean without stage
        // times (unscored) counts in the total only.
        for i in 0..<1000 {
            let t = 1 + Double(i) * 0.001
            stats.record(verdict: .accept, label: "Normal", eject: false, captured: at(t), segmented: at(t + 0.003),
                         embedded: at(t + 0.010), decided: at(t + 0.0105))
        }
        stats.record(verdict: .unscored, label: nil, eject: true, captured: at(2), decided: at(2.2))
        stats.publishSnapshot(now: at(2.5))
        let s = stats.snapshot()
        #expect(s.latencyStages.map(\.name) == ["vision", "scoring", "decision"])
        func within(_ value: UInt64?, _ expected: UInt64) -> Bool {
            value.map { $0 >= expected && Double($0) <= Double(expected) * 1.032 } == true
        }
        #expect(within(s.latencyStages[0].p50Microseconds, 3000) && within(s.latencyStages[0].p99Microseconds, 3000))
        #expect(within(s.latencyStages[1].p50Microseconds, 7000) && within(s.latencyStages[1].p99Microseconds, 7000))
        #expect(within(s.latencyStages[2].p50Microseconds, 500) && within(s.latencyStages[2].p99Microseconds, 500))
        #expect(within(s.latencyP50Microseconds, 10_500))
        // Encoded under latency_stages_us; the stages age out with the total.
        let object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as? [String: Any])
        let stages = try #require(object["latency_stages_us"] as? [String: [String: Any]])
        #expect((stages["scoring"]?["p99"] as? NSNumber).map { $0.intValue >= 7000 } == true)
        stats.publishSnapshot(now: at(40))
        #expect(stats.snapshot().latencyStages.allSatisfy { $0.p50Microseconds == nil && $0.p99Microseconds == nil })
    }

    @Test func rateOverTheSlidingWindow() {
        let stats = InspectionStatistics(started: at(1000))
        // 200 beans/s for 30 s, then nothing.
        for i in 0..<6000 {
            let t = at(1000 + Double(i) / 200)
            stats.record(verdict: .accept, label: nil, eject: false, captured: t, decided: t)
        }
        stats.publishSnapshot(now: at(1030))
        #expect(abs(stats.snapshot().beansPerSecond - 200) < 200 * 0.03)
        stats.publishSnapshot(now: at(1035))  // half the window idle
        #expect(abs(stats.snapshot().beansPerSecond - 100) < 100 * 0.06)
        stats.publishSnapshot(now: at(1045))  // all idle
        #expect(stats.snapshot().beansPerSecond == 0)
    }

    @Test func rateEarlyOnIsNotDilutedByTheWindow() {
        let stats = InspectionStatistics(started: at(50))
        for i in 0..<200 {
            let t = at(50 + Double(i) / 100)  // 100 beans/s for 2 s
            stats.record(verdict: .accept, label: nil, eject: false, captured: t, decided: t)
        }
        stats.publishSnapshot(now: at(52))
        #expect(abs(stats.snapshot().beansPerSecond - 100) < 100 * 0.05)
    }

    @Test func latencyPercentilesFollowRecentWindowsOnly() {
        let stats = InspectionStatistics(started: at(0), latencyWindowSeconds: 10)
        for i in 0..<1000 {  // 2 ms latency in the first 5 s
            let captured = at(Double(i) * 0.005)
            stats.record(verdict: .accept, label: nil, eject: false, captured: captured, decided: at(Double(i) * 0.005 + 0.002))
        }
        stats.publishSnapshot(now: at(6))
        let early = stats.snapshot()
        #expect(early.latencyP50Microseconds.map { $0 >= 2000 && $0 <= 2070 } == true)
        for i in 0..<1000 {  // 40 ms latency from 25 s on: the 2 ms samples are two windows old
            let captured = at(25 + Double(i) * 0.004)
            stats.record(verdict: .accept, label: nil, eject: false, captured: captured, decided: at(25 + Double(i) * 0.004 + 0.040))
        }
        stats.publishSnapshot(now: at(29.1))
        let late = stats.snapshot()
        #expect(late.latencyP50Microseconds.map { $0 >= 40_000 && $0 <= 41_300 } == true)
        #expect(late.latencyP99Microseconds.map { $0 >= 40_000 && $0 <= 41_300 } == true)
        stats.publishSnapshot(now: at(60))
        #expect(stats.snapshot().latencyP99Microseconds == nil)
    }

    @Test func snapshotCarriesQueueGaugesAndIsReadableFromOtherThreads() async {
        let queue = BoundedQueue<Int>(name: "crops", capacity: 4, policy: .dropNewest)
        let stats = InspectionStatistics(started: at(0), queues: [queue])
        queue.push(1)
        queue.push(2)
        stats.publishSnapshot(now: at(1))
        let gauges = await Task.detached { stats.snapshot().queues }.value
        #expect(gauges.count == 1)
        #expect(gauges.first?.name == "crops")
        #expect(gauges.first?.depth == 2)
    }
}

@Suite struct InspectionStatisticsThreadingTests {
    @Test func readersSeeConsistentGrowingSnapshotsWhileTheWriterRuns() async {
        let stats = InspectionStatistics()
        let writer = Thread {
            for i in 0..<20_000 {
                let now = MonotonicInstant.now()
                stats.record(verdict: i % 10 == 0 ? .reject : .accept, label: i % 10 == 0 ? "Black" : "Normal",
                             eject: i % 10 == 0, captured: now, decided: now)
                if i % 500 == 0 { stats.publishSnapshot() }
            }
            stats.publishSnapshot()
        }
        writer.start()
        var previous: UInt64 = 0
        for _ in 0..<2_000 {
            let s = stats.snapshot()
            #expect(s.beansTotal >= previous)
            // One snapshot is one moment: its parts agree with each other.
            #expect(s.acceptedTotal + s.rejectsTotal == s.beansTotal)
            previous = s.beansTotal
            if previous == 20_000 { break }
            usleep(200)
        }
        while stats.snapshot().beansTotal < 20_000 { usleep(1_000) }
        #expect(stats.snapshot().rejectsByLabel["Black"] == 2_000)
    }
}
