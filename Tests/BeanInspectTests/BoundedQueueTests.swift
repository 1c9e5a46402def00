import BeanCore
import Foundation
import Testing
@testable import BeanInspect

@Suite struct BoundedQueueTests {
    @Test func fifoWithinCapacity() {
        let queue = BoundedQueue<Int>(name: "q", capacity: 3, policy: .dropNewest)
        for i in 1...3 { #expect(queue.push(i).isEnqueued) }
        #expect(queue.pop(timeoutMilliseconds: 0) == 1)
        #expect(queue.push(4).isEnqueued)
        #expect([queue.tryPop(), queue.tryPop(), queue.tryPop(), queue.tryPop()] == [2, 3, 4, nil])
    }

    @Test func dropOldestEvictsAndReturnsTheEvicted() {
        let queue = BoundedQueue<Int>(name: "frames", capacity: 2, policy: .dropOldest)
        queue.push(1)
        queue.push(2)
        guard case .evicted(let old) = queue.push(3) else { Issue.record("not evicted"); return }
        #expect(old == 1)
        #expect([queue.tryPop(), queue.tryPop()] == [2, 3])
        let gauge = queue.gauge()
        #expect(gauge.droppedOldest == 1)
        #expect(gauge.enqueued == 3)
        #expect(gauge.dropped == 1)
        #expect(gauge.policy == "drop-oldest")
    }

    @Test func dropNewestRefusesAndCounts() {
        let queue = BoundedQueue<Int>(name: "crops", capacity: 1, policy: .dropNewest)
        queue.push(1)
        guard case .refused(let refused) = queue.push(2) else { Issue.record("not refused"); return }
        #expect(refused == 2)
        #expect(queue.tryPop() == 1)
        #expect(queue.gauge().droppedNewest == 1)
        #expect(queue.gauge().highWater == 1)
    }

    @Test func blockWithTimeoutGivesUpAfterTheTimeout() {
        let queue = BoundedQueue<Int>(name: "scores", capacity: 1, policy: .blockWithTimeout(milliseconds: 50))
        queue.push(1)
        let start = MonotonicInstant.now()
        guard case .refused = queue.push(2) else { Issue.record("not refused"); return }
        #expect(MonotonicInstant.now().seconds(since: start) >= 0.045)
        #expect(queue.gauge().timedOut == 1)
    }

    @Test func blockWithTimeoutSucceedsWhenAConsumerMakesRoom() async {
        let queue = BoundedQueue<Int>(name: "scores", capacity: 1, policy: .blockWithTimeout(milliseconds: 5_000))
        queue.push(1)
        let consumer = Thread { usleep(50_000); _ = queue.pop() }
        consumer.start()
        #expect(queue.push(2).isEnqueued)
        #expect(queue.tryPop() == 2)
        #expect(queue.gauge().timedOut == 0)
    }

    @Test func popBatchTakesWhatIsQueuedUpToTheLimit() {
        let queue = BoundedQueue<Int>(name: "crops", capacity: 8, policy: .dropNewest)
        var batch: [Int] = []
        #expect(queue.popBatch(maxCount: 4, timeoutMilliseconds: 10, into: &batch) == 0)
        for i in 1...6 { queue.push(i) }
        #expect(queue.popBatch(maxCount: 4, into: &batch) == 4)
        #expect(batch == [1, 2, 3, 4])
        batch.removeAll(keepingCapacity: true)
        #expect(queue.popBatch(maxCount: 4, into: &batch) == 2)
        #expect(batch == [5, 6])
        queue.close()
        #expect(queue.popBatch(maxCount: 4, into: &batch) == 0)
    }

    @Test func pushingSeveralAtOnceReachesAWaitingConsumerAsOneBatch() {
        let queue = BoundedQueue<Int>(name: "encode", capacity: 4, policy: .dropOldest)
        // The consumer blocks, so it gets a thread of its own, as the pipeline's scorers do (a task
        // would block one of the few threads the parallel test run shares, and might not run in time).
        final class Taken: @unchecked Sendable { var batch: [Int] = [] }
        let taken = Taken()
        let running = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        let consumer = Thread {
            running.signal()
            _ = queue.popBatch(maxCount: 16, timeoutMilliseconds: 5_000, into: &taken.batch)
            finished.signal()
        }
        consumer.start()
        running.wait()
        usleep(50_000)  // the consumer is waiting
        var displaced: [Int] = []
        queue.push(contentsOf: [1, 2, 3], displaced: &displaced)
        finished.wait()
        #expect(taken.batch == [1, 2, 3])
        #expect(displaced.isEmpty)
        // Over capacity: the policy applies element by element and the displaced come back.
        queue.push(contentsOf: 10...15, displaced: &displaced)
        #expect(displaced == [10, 11])
        #expect([queue.tryPop(), queue.tryPop(), queue.tryPop(), queue.tryPop()] == [12, 13, 14, 15])
        queue.close()
        displaced.removeAll()
        queue.push(contentsOf: [7], displaced: &displaced)
        #expect(displaced == [7])
    }

    @Test func popTimesOutOnEmptyAndCloseWakesWaiters() {
        let queue = BoundedQueue<Int>(name: "q", capacity: 4, policy: .dropNewest)
        #expect(queue.pop(timeoutMilliseconds: 20) == nil)
        queue.push(7)
        let closer = Thread { usleep(50_000); queue.close() }
        closer.start()
        #expect(queue.pop() == 7)      // drains what is left
        #expect(queue.pop() == nil)    // then returns nil once closed (woken by close)
        guard case .closed(let v) = queue.push(8) else { Issue.record("push after close accepted"); return }
        #expect(v == 8)
    }

    @Test func manyProducersAndConsumersLoseNothingWithoutOverflow() {
        let queue = BoundedQueue<Int>(name: "q", capacity: 8, policy: .blockWithTimeout(milliseconds: 60_000))
        let producers = 4, perProducer = 5_000
        let received = Mutexed<[Int]>([])
        let group = DispatchGroup()
        for p in 0..<producers {
            DispatchQueue.global().async(group: group) {
                for i in 0..<perProducer { queue.push(p * perProducer + i) }
            }
        }
        let consumers = (0..<2).map { _ in
            Thread {
                var mine: [Int] = []
                while let v = queue.pop() { mine.append(v) }
                received.mutate { $0 += mine }
            }
        }
        consumers.forEach { $0.start() }
        group.wait()
        queue.close()
        while received.value.count < producers * perProducer && queue.depth > 0 { usleep(1_000) }
        for _ in 0..<5_000 where received.value.count < producers * perProducer { usleep(1_000) }
        #expect(received.value.sorted() == Array(0..<(producers * perProducer)))
        #expect(queue.gauge().dropped == 0)
        #expect(queue.gauge().highWater <= 8)
    }
}

final class Mutexed<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func mutate(_ body: (inout Value) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}
