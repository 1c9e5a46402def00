import Foundation
import Testing
@testable import BeanStore

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
}

@Suite("Hot reload")
struct LiveStoreTests {
    @Test("4 threads query through 50 reloads; every result set comes from exactly one generation")
    func concurrentReloads() throws {
        let dir = TemporaryDirectory("live")
        defer { dir.remove() }
        let dim = 16, count = 1500, k = 5, reloads = 50
        var rng = TestRandom(seed: 77)
        let queries = rng.vectors(4, dim)
        let writer = StoreWriter(directory: dir.path, keep: 2)
        let expected = Locked<[UInt64: [[Int64]]]>([:])
        func publish(seed: UInt64) throws {
            let draft = try makeDraft(dim: dim, count: count, seed: seed)
            let ref = referenceSearch(vectors: draft.vectors, dim: dim, queries: queries, k: k, metric: .cosine)
            // Numbers are assigned in order, so the expectation can be recorded before readers see it.
            let next = (try StoreDirectory.generations(directory: dir.path).last?.number ?? 0) + 1
            expected.withLock { $0[next] = ref }
            let published = try writer.publish(draft)
            #expect(published.generation == next)
        }
        try publish(seed: 1000)
        let live = try LiveStore(directory: dir.path)
        let stop = Locked(false)
        let observed = Locked<[(generation: UInt64, batch: Int, ids: [Int64])]>([])
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var mine: [(UInt64, Int, [Int64])] = []
                // Odd threads send all four queries (BLAS path), even threads one (SIMD path).
                let batch = t % 2 == 0 ? 1 : 4
                var i = 0
                while !stop.withLock({ $0 }) {
                    let first = batch == 1 ? i % 4 : 0
                    let q = Array(queries[(first * dim)..<((first + batch) * dim)])
                    if let r = try? live.search(queries: q, k: k) { mine.append((r.generation, first, r.ids)) }
                    i += 1
                }
                observed.withLock { $0 += mine.map { (generation: $0.0, batch: $0.1, ids: $0.2) } }
            }
        }
        var swaps = 0
        for i in 1...reloads {
            try publish(seed: 1000 + UInt64(i))
            if case .swapped = live.reload() { swaps += 1 }
            usleep(2000)
        }
        stop.withLock { $0 = true }
        group.wait()

        #expect(swaps == reloads)
        let results = observed.withLock { $0 }
        let table = expected.withLock { $0 }
        #expect(results.count > 100)
        var generationsSeen = Set<UInt64>()
        var mismatches = 0
        for r in results {
            generationsSeen.insert(r.generation)
            guard let ref = table[r.generation] else { mismatches += 1; continue }
            let nq = r.ids.count / k
            for j in 0..<nq where Array(r.ids[(j * k)..<((j + 1) * k)]) != ref[r.batch + j] { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(generationsSeen.count > 5)
    }

    @Test("a corrupt new generation is refused, logged with file and reason, and the old one keeps serving")
    func refusedReload() throws {
        let dir = TemporaryDirectory("live")
        defer { dir.remove() }
        try StoreWriter(directory: dir.path).publish(try makeDraft(dim: 8, count: 20, seed: 1))
        let events = Locked<[LiveStore.Event]>([])
        let live = try LiveStore(directory: dir.path, expecting: EncoderIdentity(dimension: 8, fingerprint: "enc-v1")) { e in
            events.withLock { $0.append(e) }
        }
        // A truncated generation 2 that CURRENT points to.
        let good = readBytes(try StoreDirectory.currentPath(directory: dir.path))
        writeBytes(Array(good.dropLast(100)), dir.path + "/gen-000000000002.bstore")
        writeBytes(Array("gen-000000000002.bstore\n".utf8), dir.path + "/CURRENT")
        let outcome = live.reload()
        guard case .refused(let error) = outcome else { Issue.record("accepted: \(outcome)"); return }
        #expect(error.path == dir.path + "/gen-000000000002.bstore")
        if case .fileLengthMismatch = error.reason {} else { Issue.record("reason \(error.reason)") }
        #expect(live.current.generation == 1)
        #expect(events.withLock { $0.count } == 1)

        // Another encoder's store is refused as incompatible.
        try StoreWriter(directory: dir.path).publish(try makeDraft(dim: 8, count: 20, seed: 2, fingerprint: "enc-v9"))
        guard case .refused(let e2) = live.reload() else { Issue.record("incompatible accepted"); return }
        #expect(e2.reason == .fingerprintMismatch(store: "enc-v9", encoder: "enc-v1"))
        #expect(live.current.generation == 1)
    }

    @Test("inotify notices a published generation without an explicit reload")
    func watching() throws {
        let dir = TemporaryDirectory("live")
        defer { dir.remove() }
        let writer = StoreWriter(directory: dir.path)
        try writer.publish(try makeDraft(dim: 8, count: 20, seed: 1))
        let live = try LiveStore(directory: dir.path)
        try live.startWatching()
        defer { live.stopWatching() }
        let published = try writer.publish(try makeDraft(dim: 8, count: 30, seed: 2))
        let deadline = Date().addingTimeInterval(5)
        while live.current.generation != published.generation && Date() < deadline { usleep(1000) }
        #expect(live.current.generation == published.generation)
        #expect(live.current.count == 30)
        #expect(live.reload() == .unchanged(generation: published.generation))
    }

    @Test("a replaced generation stays mapped while held and is released after")
    func oldMappingLifetime() throws {
        let dir = TemporaryDirectory("live")
        defer { dir.remove() }
        let writer = StoreWriter(directory: dir.path, keep: 1)
        try writer.publish(try makeDraft(dim: 8, count: 20, seed: 1))
        let live = try LiveStore(directory: dir.path)
        weak var weakOld: StoreGeneration?
        try {
            let inFlight = live.current
            weakOld = inFlight
            try writer.publish(try makeDraft(dim: 8, count: 20, seed: 2))
            live.reload()
            // The file is pruned (keep 1) but the held mapping still answers.
            #expect(!FileManager.default.fileExists(atPath: inFlight.path))
            let r = try inFlight.search(queries: [Float](repeating: 1, count: 8), k: 3)
            #expect(r.generation == 1 && r.ids.count == 3)
        }()
        #expect(weakOld == nil)
        #expect(live.current.generation == 2)
    }
}
