import Foundation
import Testing
@testable import BeanStore

@Suite("Format, writer and reader")
struct FormatTests {
    @Test("XXH64 matches the published test vectors")
    func xxh64() {
        #expect(XXH64.hash(UnsafeRawBufferPointer(start: nil, count: 0)) == 0xEF46_DB37_51D8_E999)
        let a = Array("a".utf8)
        #expect(a.withUnsafeBytes { XXH64.hash($0) } == 0xD24E_C4F1_A98C_6E5B)
        let fox = Array("The quick brown fox jumps over the lazy dog".utf8)
        #expect(fox.withUnsafeBytes { XXH64.hash($0) } == 0x0B24_2D36_1FDA_71BC)
    }

    @Test("a published generation reads back exactly")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let draft = try makeDraft(dim: 37, count: 50, seed: 1, metric: .l2, fingerprint: "enc-α", labels: ["Normal", "Black", "Sour"])
        let published = try StoreWriter(directory: dir.path).publish(draft)
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        #expect(g.generation == published.generation)
        #expect(g.path == published.path)
        #expect(g.count == 50 && g.dimension == 37 && g.metric == .l2)
        #expect(g.labels == ["Normal", "Black", "Sour"] && g.authors == ["tester"])
        #expect(g.fingerprintText == "enc-α")
        #expect(g.labelCounts() == [17, 17, 16])
        for row in [0, 17, 49] {
            #expect(g.vector(at: row) == Array(draft.vectors[(row * 37)..<((row + 1) * 37)]))
            #expect(g.metadata(at: row) == draft.metadata[row])
        }
        // Rows start on cache lines.
        #expect(Int(bitPattern: g.rows) % 64 == 0)
    }

    @Test("generation numbers increase, old ones are pruned, the current one stays")
    func pruning() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = StoreWriter(directory: dir.path, keep: 2)
        var numbers: [UInt64] = []
        for seed in 0..<5 { numbers.append(try writer.publish(try makeDraft(dim: 8, count: 5, seed: UInt64(seed))).generation) }
        #expect(numbers == [1, 2, 3, 4, 5])
        #expect(try StoreDirectory.generations(directory: dir.path).map(\.number) == [4, 5])
        #expect(try StoreDirectory.openCurrent(directory: dir.path).generation == 5)
    }

    @Test("a writer's leftover temporary file is removed and never read")
    func staleTemporaries() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = StoreWriter(directory: dir.path)
        try writer.publish(try makeDraft(dim: 8, count: 5, seed: 1))
        writeBytes([1, 2, 3], dir.path + "/.gen-000000000002.bstore.tmp")
        #expect(try StoreDirectory.openCurrent(directory: dir.path).generation == 1)
        try writer.publish(try makeDraft(dim: 8, count: 5, seed: 2))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.gen-000000000002.bstore.tmp"))
        #expect(try StoreDirectory.openCurrent(directory: dir.path).generation == 2)
    }

    @Test("update appends and removes under the lock")
    func update() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = StoreWriter(directory: dir.path)
        try writer.update(creatingWith: try makeDraft(dim: 4, count: 0, seed: 0)) { draft in
            try draft.append(vectors: [1, 0, 0, 0, 0, 1, 0, 0], labels: ["A", "B"], author: "x", sourceIDs: [7, 8], addedNs: 1)
        }
        let p = try writer.update(creatingWith: nil) { draft in _ = draft.removeAll { _, m in m.sourceID == 7 } }
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        #expect(p.count == 1 && g.count == 1 && g.label(ofRow: 0) == "B" && g.metadata(at: 0).sourceID == 8)
    }

    @Test("bad vectors are refused before anything is written")
    func badInput() throws {
        var draft = GenerationDraft(dimension: 3, metric: .cosine, fingerprint: [])
        #expect(throws: StoreError.Reason.invalidInput("4 values are not a whole number of 3-dimensional vectors")) {
            try draft.append(vectors: [1, 2, 3, 4], labels: ["A"], author: "x", sourceIDs: [0], addedNs: 0)
        }
        #expect(throws: StoreError.Reason.invalidInput("vector 1, column 0: NaN or infinite value")) {
            try draft.append(vectors: [1, 2, 3, .nan, 0, 0], labels: ["A", "A"], author: "x", sourceIDs: [0, 1], addedNs: 0)
        }
        #expect(throws: StoreError.Reason.invalidInput("1 vectors but 2 labels")) {
            try draft.append(vectors: [1, 2, 3], labels: ["A", "B"], author: "x", sourceIDs: [0], addedNs: 0)
        }
        #expect(throws: StoreError.Reason.invalidInput("empty label")) {
            try draft.append(vectors: [1, 2, 3], labels: [""], author: "x", sourceIDs: [0], addedNs: 0)
        }
        #expect(draft.count == 0)
    }

    @Test(".npy files round-trip")
    func numpy() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let values: [Float] = [1, -2.5, 3e-7, .greatestFiniteMagnitude, 0, 6]
        try NumpyFile.write(values, rows: 2, columns: 3, to: dir.path + "/a.npy")
        let m = try NumpyFile.readFloat32(dir.path + "/a.npy")
        #expect(m.rows == 2 && m.columns == 3 && m.values == values)
        writeBytes(Array("not numpy".utf8), dir.path + "/b.npy")
        #expect(throws: NumpyFile.FormatError.self) { try NumpyFile.readFloat32(dir.path + "/b.npy") }
    }
}

@Suite("Exact search")
struct SearchTests {
    static let configurations: [(dim: Int, count: Int, queries: Int, metric: Metric, threads: Int)] = [
        (16, 300, 1, .cosine, 1), (16, 300, 1, .l2, 1),        // SIMD path
        (37, 1000, 3, .l2, 1), (128, 8500, 2, .cosine, 2),     // SIMD, padded rows, two workers
        (37, 1000, 20, .cosine, 1), (128, 3000, 70, .l2, 1),   // BLAS path, two query chunks
        (128, 9000, 9, .cosine, 2), (5, 40, 8, .l2, 1),        // BLAS two workers; tiny store
    ]

    @Test("results equal a float64 brute force", arguments: 0..<configurations.count)
    func matchesReference(index: Int) throws {
        let c = Self.configurations[index]
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var draft = try makeDraft(dim: c.dim, count: c.count, seed: UInt64(index), metric: c.metric)
        // Exact duplicates and a zero row exercise the tie rule and the zero-norm case.
        let dup = Array(draft.vectors[0..<c.dim])
        try draft.append(vectors: dup + dup + [Float](repeating: 0, count: c.dim), labels: ["Dup", "Dup", "Zero"],
                         author: "t", sourceIDs: [1, 2, 3], addedNs: 0)
        try StoreWriter(directory: dir.path).publish(draft)
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        var rng = TestRandom(seed: 500 + UInt64(index))
        var queries = rng.vectors(c.queries, c.dim)
        queries.replaceSubrange(0..<c.dim, with: dup)  // first query hits the duplicates exactly
        for (k, fused, bfloat16) in [(1, true, true), (10, true, true), (10, false, true), (10, true, false), (64, true, true)] {
            let options = SearchOptions(threads: c.threads, fusedBatchKernel: fused, bfloat16Scan: bfloat16)
            let r = try g.search(queries: queries, k: k, metric: c.metric, options: options)
            let expected = referenceSearch(vectors: draft.vectors, dim: c.dim, queries: queries, k: k, metric: c.metric)
            for q in 0..<c.queries {
                let got = Array(r.ids[(q * k)..<((q + 1) * k)])
                let want = expected[q] + [Int64](repeating: -1, count: k - expected[q].count)
                #expect(got == want, "query \(q), k \(k)")
                let d = Array(r.distances[(q * k)..<((q + 1) * k)])
                #expect(zip(d, d.dropFirst()).allSatisfy { $0 <= $1 })
            }
        }
    }

    @Test("SIMD, fused batch and sgemm paths agree on the same queries")
    func pathsAgree() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try StoreWriter(directory: dir.path).publish(try makeDraft(dim: 64, count: 5000, seed: 8, metric: .l2))
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        var rng = TestRandom(seed: 9)
        let q = rng.vectors(16, 64)
        let simd = try g.search(queries: q, k: 10, options: SearchOptions(blasMinimumBatch: 1000))
        let fused = try g.search(queries: q, k: 10, options: SearchOptions(blasMinimumBatch: 1))
        let blas = try g.search(queries: q, k: 10, options: SearchOptions(blasMinimumBatch: 1, rowBlock: 256, fusedBatchKernel: false))
        #expect(simd.ids == blas.ids && simd.ids == fused.ids)
        #expect(simd.distances == blas.distances && simd.distances == fused.distances)
        for batch in [1, 1000] {
            let float32 = try g.search(queries: q, k: 10, options: SearchOptions(blasMinimumBatch: batch, bfloat16Scan: false))
            #expect(!float32.scannedBFloat16)
            #expect(float32.ids == simd.ids && float32.distances == simd.distances)
        }
        #expect(simd.scannedBFloat16 == BFloat16Rows.supported && fused.scannedBFloat16 == BFloat16Rows.supported)
        #expect(!blas.scannedBFloat16)
    }

    /// Rows that differ by less than bfloat16's resolution (about 0.4 % of a value) are ordered
    /// arbitrarily by the bfloat16 scan; only a re-ranking window as wide as the rounding bound
    /// returns them in exact order. spread 2e-4 puts all of them inside the window (more than the
    /// kept candidates: a float64 rescan); 3e-3 makes the window cut through the cluster.
    @Test("near-duplicates below bfloat16 resolution come back in exact order",
          arguments: [(Metric.cosine, 2e-4), (.cosine, 3e-3), (.l2, 2e-4), (.l2, 3e-3)])
    func nearDuplicates(metric: Metric, spread: Double) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let dim = 48
        var rng = TestRandom(seed: 77)
        let base = rng.vectors(1, dim)
        var vectors = rng.vectors(400, dim)
        for _ in 0..<60 { vectors += base.map { $0 * Float(1 + spread * Double(rng.gaussian())) + Float(spread) * rng.gaussian() } }
        vectors += rng.vectors(400, dim)
        var draft = GenerationDraft(dimension: dim, metric: metric, fingerprint: Array("enc".utf8))
        let n = vectors.count / dim
        try draft.append(vectors: vectors, labels: [String](repeating: "Normal", count: n), author: "t",
                         sourceIDs: (0..<UInt64(n)).map { $0 }, addedNs: 0)
        try StoreWriter(directory: dir.path).publish(draft)
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        var queries: [Float] = []
        for _ in 0..<8 { queries += base.map { $0 + Float(spread) * rng.gaussian() } }
        for k in [1, 10, 30] {
            let expected = referenceSearch(vectors: vectors, dim: dim, queries: queries, k: k, metric: metric)
            for batch in [1, 1000] {
                let r = try g.search(queries: queries, k: k, options: SearchOptions(blasMinimumBatch: batch))
                #expect(r.scannedBFloat16 == BFloat16Rows.supported)
                if BFloat16Rows.supported && spread < 1e-3 {
                    // All 60 near-duplicates are inside the window, more than the kept candidates.
                    #expect(r.exactRescans == 8)
                }
                for q in 0..<8 {
                    #expect(Array(r.ids[(q * k)..<((q + 1) * k)]) == expected[q], "query \(q), k \(k), batch path \(batch == 1)")
                }
            }
        }
    }

    @Test("bad queries are refused with the reason")
    func badQueries() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try StoreWriter(directory: dir.path).publish(try makeDraft(dim: 4, count: 10, seed: 1))
        let g = try StoreDirectory.openCurrent(directory: dir.path)
        #expect(throws: StoreError.self) { try g.search(queries: [1, 2, 3, 4], k: 0) }
        #expect(throws: StoreError.self) { try g.search(queries: [1, 2, 3, 4], k: 65) }
        #expect(throws: StoreError.self) { try g.search(queries: [1, 2, 3], k: 1) }
        #expect(throws: StoreError.self) { try g.search(queries: [1, .nan, 3, 4], k: 1) }
    }
}
