import BeanCore
import CBLAS
import Dispatch
import Foundation

/// Configuration of an `EncoderPool` (the daemon reads it from its config file).
public struct EncoderPoolConfiguration: Sendable {
    /// Worker count; each owns a session (arena). N workers use N cores without oversubscription
    /// only when OpenBLAS runs one thread per caller: that is a process-wide setting, so the
    /// process that owns the pool sets it (`setBLASThreads(1)`, as beand does at start-up) and the
    /// pool leaves it alone, since other BLAS users in the same process (a training run in a test
    /// binary) would otherwise see it change under them.
    public var workers: Int
    /// A micro-batch closes when it holds this many crops …
    public var maxBatch: Int
    /// … or when its oldest crop has waited this long (seconds).
    public var maxWait: Double
    public var preprocessing: Preprocessing
    /// The workers' nice value relative to the process's while they run (nil: whatever Dispatch
    /// gives them, -2 for user-initiated work when the process may raise priorities). The daemon
    /// puts them a little below its camera threads: a frame that is not segmented loses every
    /// bean in it, a crop that waits only uses up its slack before the eject time.
    public var workerNiceness: Int32?

    public init(workers: Int = ProcessInfo.processInfo.activeProcessorCount, maxBatch: Int = 16, maxWait: Double = 0.002,
                preprocessing: Preprocessing = Preprocessing(), workerNiceness: Int32? = nil) {
        self.workers = workers
        self.maxBatch = maxBatch
        self.maxWait = maxWait
        self.preprocessing = preprocessing
        self.workerNiceness = workerNiceness
    }
}

/// Embeds bean crops with an `EncoderModel` on a pool of Dispatch workers. Crops from all callers
/// queue together and are cut into micro-batches (`maxBatch` crops or `maxWait`, whichever first);
/// each batch runs on one worker. Thread ownership: the queue and request state belong to `lock`;
/// each session and its arena belong to exactly one worker queue. The workers keep the pool alive:
/// call `shutdown()` to stop them.
public final class EncoderPool: @unchecked Sendable {
    public struct Statistics: Sendable, Equatable {
        public var batches = 0
        public var crops = 0
        public var largestBatch = 0
    }

    private final class Request {
        var vectors: [[Float]]
        var remaining: Int
        let completion: @Sendable (Result<[[Float]], Error>) -> Void
        init(count: Int, completion: @escaping @Sendable (Result<[[Float]], Error>) -> Void) {
            vectors = Array(repeating: [], count: count)
            remaining = count
            self.completion = completion
        }
    }

    private struct Item {
        var crop: BeanCrop
        var request: Request
        var index: Int
        var arrival: UInt64
    }

    public let model: EncoderModel
    public let configuration: EncoderPoolConfiguration
    private let lock = NSCondition()
    private var pending: [Item] = []
    private var stopping = false
    private var running = 0
    private var stats = Statistics()
    private let queues: [DispatchQueue]
    private let width: Int, height: Int

    public init(model: EncoderModel, configuration: EncoderPoolConfiguration = EncoderPoolConfiguration()) throws {
        guard configuration.workers >= 1, configuration.maxBatch >= 1, configuration.maxWait >= 0 else {
            throw ModelError(.usage, "encoder pool needs workers ≥ 1, max_batch ≥ 1, max_wait ≥ 0")
        }
        try configuration.preprocessing.validate()
        guard model.input.sampleShape.count == 3, model.input.sampleShape[0] == 3 else {
            throw ModelError(.usage, "\(model.source): input \(model.input) is not an RGB image [N, 3, H, W]")
        }
        self.model = model
        self.configuration = configuration
        height = model.input.sampleShape[1]
        width = model.input.sampleShape[2]
        let sessions = try (0..<configuration.workers).map { _ in try model.makeSession(maxBatch: configuration.maxBatch) }
        queues = (0..<configuration.workers).map { DispatchQueue(label: "beand.encoder.\($0)", qos: .userInitiated) }
        running = sessions.count
        for (index, (q, s)) in zip(queues, sessions).enumerated() {
            q.async { self.workerLoop(index: index, session: s) }
        }
    }

    public var statistics: Statistics {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    /// Queues `crops`; `completion` receives one vector per crop, in order (on a worker thread).
    public func embed(_ crops: [BeanCrop], completion: @escaping @Sendable (Result<[[Float]], Error>) -> Void) {
        do {
            for c in crops { try Preprocessing.check(c) }
        } catch {
            completion(.failure(error)); return
        }
        if crops.isEmpty { completion(.success([])); return }
        let request = Request(count: crops.count, completion: completion)
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        if stopping {
            lock.unlock()
            completion(.failure(ModelError(.usage, "encoder pool is shut down"))); return
        }
        for (i, c) in crops.enumerated() { pending.append(Item(crop: c, request: request, index: i, arrival: now)) }
        lock.broadcast()
        lock.unlock()
    }

    public func embed(_ crops: [BeanCrop]) async throws -> [[Float]] {
        try await withCheckedThrowingContinuation { cont in embed(crops) { cont.resume(with: $0) } }
    }

    /// Blocking variant for command-line tools and tests.
    public func embedSync(_ crops: [BeanCrop]) throws -> [[Float]] {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        embed(crops) { r in box.result = r; done.signal() }
        done.wait()
        guard let result = box.result else {
            throw ModelError(.usage, "encoder pool finished a request without a result")
        }
        return try result.get()
    }

    private final class ResultBox: @unchecked Sendable { var result: Result<[[Float]], Error>? }

    /// Stops accepting crops, lets queued ones finish, waits for the workers to exit.
    public func shutdown() {
        lock.lock()
        stopping = true
        lock.broadcast()
        while running > 0 { lock.wait() }
        lock.unlock()
    }

    private func workerLoop(index: Int, session: InferenceSession) {
        // The loop holds this Dispatch thread until shutdown; name it for `top -H` meanwhile.
        let dispatchName = CurrentThread.name
        CurrentThread.setName("encoder-\(index)")
        defer { CurrentThread.setName(dispatchName) }
        if let niceness = configuration.workerNiceness { CurrentThread.setPriority(relativeToProcess: niceness) }
        let maxBatch = configuration.maxBatch
        let waitNs = UInt64(configuration.maxWait * 1e9)
        var batch: [Item] = []
        batch.reserveCapacity(maxBatch)
        let per = session.inputCountPerSample, dim = session.outputCountPerSample
        let input = UnsafeMutablePointer<Float>.allocate(capacity: maxBatch * per)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: maxBatch * dim)
        defer { input.deallocate(); output.deallocate() }
        lock.lock()
        while true {
            while pending.isEmpty && !stopping { lock.wait() }
            if pending.isEmpty && stopping { break }
            // Let the batch fill until max_batch or until its oldest crop has waited max_wait.
            while pending.count < maxBatch && !stopping, let first = pending.first {
                let deadline = first.arrival + waitNs
                let now = DispatchTime.now().uptimeNanoseconds
                if now >= deadline { break }
                _ = lock.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
            }
            if pending.isEmpty { continue }
            let take = min(maxBatch, pending.count)
            batch.append(contentsOf: pending.prefix(take))
            pending.removeFirst(take)
            stats.batches += 1
            stats.crops += take
            stats.largestBatch = max(stats.largestBatch, take)
            lock.unlock()

            for (k, item) in batch.enumerated() {
                configuration.preprocessing.write(item.crop, width: width, height: height, into: input + k * per)
            }
            var failure: Error?
            do { try session.run(input: input, batch: batch.count, output: output) } catch { failure = error }
            var finished: [Request] = []
            var failed: [Request] = []
            lock.lock()
            for (k, item) in batch.enumerated() {
                if failure != nil {
                    // Fail a request once, on its first failed crop.
                    if item.request.remaining > 0 { item.request.remaining = 0; failed.append(item.request) }
                    continue
                }
                guard item.request.remaining > 0 else { continue }
                item.request.vectors[item.index] = Array(UnsafeBufferPointer(start: output + k * dim, count: dim))
                item.request.remaining -= 1
                if item.request.remaining == 0 { finished.append(item.request) }
            }
            lock.unlock()
            batch.removeAll(keepingCapacity: true)
            for r in finished { r.completion(.success(r.vectors)) }
            if let failure { for r in failed { r.completion(.failure(failure)) } }
            lock.lock()
        }
        running -= 1
        lock.broadcast()
        lock.unlock()
    }
}
