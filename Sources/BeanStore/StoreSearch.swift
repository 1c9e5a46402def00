import CBLAS
import Dispatch

/// The k nearest stored vectors of each query, nearest first (ties: lower id first).
public struct SearchResults: Sendable {
    /// The generation every row of these results came from.
    public let generation: UInt64
    public let queryCount: Int
    public let k: Int
    public let metric: Metric
    /// `queryCount × k` row ids; -1 where the store holds fewer than k vectors.
    public var ids: [Int64]
    /// `queryCount × k` distances (`1 - cos` or squared L2), computed in float64; +inf for -1 ids.
    public var distances: [Float]
    /// Queries whose kept candidates could not prove the top k: on the float32 scan they were
    /// rescanned in float64, on the bfloat16 scan a second pass collected every row in the window.
    public var exactRescans: Int
    /// Whether the scan read the bfloat16 copy of the rows (see `SearchOptions.bfloat16Scan`).
    public var scannedBFloat16 = false
}

public struct SearchOptions: Sendable {
    /// Worker threads that split the rows; each calls BLAS itself, so with more than one, keep
    /// OpenBLAS single-threaded (`openblas_set_num_threads(1)`).
    public var threads: Int
    /// Batches of at least this many queries go through BLAS (sgemm); smaller ones through the
    /// SIMD kernel, one pass over the rows per query.
    public var blasMinimumBatch: Int
    /// Rows per sgemm block: the block of distances (batch × rows) should stay in L2.
    public var rowBlock: Int
    /// On AVX-512 CPUs, batches use the fused register-blocked kernel instead of sgemm + filter.
    public var fusedBatchKernel: Bool
    /// On CPUs with AVX512_BF16, the SIMD and fused kernels scan the generation's bfloat16 copy of
    /// the rows (half the bytes, twice the multiplies per instruction). Results stay exact: the
    /// float64 re-ranking window is widened by a bound on the bfloat16 rounding error. false
    /// forces the float32 scan.
    public var bfloat16Scan: Bool

    public init(threads: Int = 1, blasMinimumBatch: Int = 4, rowBlock: Int = 1024, fusedBatchKernel: Bool = true,
                bfloat16Scan: Bool = true) {
        self.threads = max(1, threads)
        self.blasMinimumBatch = max(1, blasMinimumBatch)
        self.rowBlock = max(16, rowBlock)
        self.fusedBatchKernel = fusedBatchKernel
        self.bfloat16Scan = bfloat16Scan
    }
}

public enum SearchLimits {
    public static let maximumK = 64
    /// Extra float32 candidates kept per query so that the float64 re-ranking rarely needs a rescan.
    static let candidateMargin = 8
    /// The same for the bfloat16 scan, whose re-ranking window is ~300 times wider (for unit
    /// vectors about 0.01 in cosine, which holds about 4 rows past the 10th of 30k random ones);
    /// when more rows fall inside it, a second bfloat16 pass collects them all.
    static let bfloat16CandidateMargin = 16
    /// Queries per sgemm call; bounds the distance block.
    static let queryChunk = 64
}

extension StoreGeneration {
    /// Exact k-nearest-neighbour search. `queries` holds `n × dimension` values row-major.
    ///
    /// Candidates are ranked in float32 (SIMD or BLAS), then every candidate that float32 rounding
    /// could place in the top k is re-ranked in float64, so the result equals a float64
    /// brute-force search (same ids, ties broken by lower id).
    public func search(queries: [Float], k: Int, metric: Metric? = nil,
                       options: SearchOptions = SearchOptions()) throws -> SearchResults {
        func invalid(_ m: String) -> StoreError { StoreError(path: path, reason: .invalidInput(m)) }
        guard k >= 1 && k <= SearchLimits.maximumK else { throw invalid("k = \(k) is outside 1…\(SearchLimits.maximumK)") }
        guard queries.count % dimension == 0 else {
            throw invalid("\(queries.count) query values are not a whole number of \(dimension)-dimensional vectors")
        }
        if let bad = queries.firstIndex(where: { !$0.isFinite }) {
            throw invalid("query \(bad / dimension), column \(bad % dimension): NaN or infinite value")
        }
        let metric = metric ?? self.metric
        let nq = queries.count / dimension
        var results = SearchResults(generation: generation, queryCount: nq, k: k, metric: metric,
                                    ids: [Int64](repeating: -1, count: nq * k),
                                    distances: [Float](repeating: .infinity, count: nq * k), exactRescans: 0)
        guard nq > 0, count > 0 else { return results }
        withExtendedLifetime(self) {
            SearchRun(store: self, queries: queries, queryCount: nq, k: k, metric: metric, options: options)
                .run(into: &results)
        }
        return results
    }
}

/// One search call: padded queries, per-thread candidate heaps, float64 re-ranking.
private struct SearchRun {
    let store: StoreGeneration
    let queryCount: Int
    let k: Int
    let metric: Metric
    let options: SearchOptions
    let stride: Int
    let dim: Int
    let queries: [Float]

    init(store: StoreGeneration, queries: [Float], queryCount: Int, k: Int, metric: Metric, options: SearchOptions) {
        self.store = store
        self.queries = queries
        self.queryCount = queryCount
        self.k = k
        self.metric = metric
        self.options = options
        self.stride = store.rowStrideFloats
        self.dim = store.dimension
    }

    func run(into results: inout SearchResults) {
        let padded = UnsafeMutableRawPointer.allocate(byteCount: max(1, queryCount * stride * 4), alignment: 64)
            .bindMemory(to: Float.self, capacity: queryCount * stride)
        defer { padded.deallocate() }
        padded.initialize(repeating: 0, count: queryCount * stride)
        queries.withUnsafeBufferPointer { q in
            guard let source = q.baseAddress else { return }
            for i in 0..<queryCount {
                (padded + i * stride).update(from: source + i * dim, count: dim)
            }
        }

        let batched = queryCount >= options.blasMinimumBatch
        let fused = batched && options.fusedBatchKernel && beand_store_has_batch_kernel(cpuLevel) != 0
        let reduced = (options.bfloat16Scan && (fused || !batched)) ? BFloat16Queries(padded, count: queryCount, stride: stride,
                                                                                         dimension: dim, store: store) : nil
        defer { reduced?.deallocate() }
        results.scannedBFloat16 = reduced != nil
        // Candidates kept per query per worker.
        let capacity = min(store.count, k + (reduced != nil ? SearchLimits.bfloat16CandidateMargin : SearchLimits.candidateMargin))

        // Split rows into contiguous parts, one per worker, each a multiple of the row block.
        let workers = min(options.threads, max(1, store.count / 4096))
        let perPart = (store.count + workers - 1) / workers
        let partRows = (perPart + 15) / 16 * 16
        let parts = (0..<workers).map { w in (w * partRows, min(store.count, (w + 1) * partRows)) }
            .filter { $0.0 < $0.1 }
        var heaps = parts.map { _ in CandidateHeaps(queries: queryCount, capacity: 0) }
        heaps.withUnsafeMutableBufferPointer { heapsBuffer in
            guard let heapsBase = heapsBuffer.baseAddress else { return }
            let body: (Int) -> Void = { part in
                let (lo, hi) = parts[part]
                let local = CandidateHeaps(queries: queryCount, capacity: min(hi - lo, capacity))
                store.inverseNorms.withUnsafeBufferPointer { inverse in
                    // count > 0 here (checked by search), so the norms buffer is never empty.
                    guard let inverseNorms = inverse.baseAddress else { return }
                    let scratch = Scratch(rowBlock: options.rowBlock, blas: batched && !fused, inverseNorms: inverseNorms)
                    defer { scratch.deallocate() }
                    if let reduced, fused {
                        scanFusedBFloat16(reduced, rows: lo..<hi, scratch: scratch, into: local)
                    } else if let reduced {
                        for q in 0..<queryCount {
                            scanSIMDBFloat16(reduced.query(q), query: q, rows: lo..<hi, rowsBF16: reduced.rows,
                                             scratch: scratch, into: local)
                        }
                    } else if fused {
                        scanFused(padded, rows: lo..<hi, scratch: scratch, into: local)
                    } else if batched {
                        scanBLAS(padded, rows: lo..<hi, scratch: scratch, into: local)
                    } else {
                        for q in 0..<queryCount {
                            scanSIMD(padded + q * stride, query: q, rows: lo..<hi, scratch: scratch, into: local)
                        }
                    }
                }
                (heapsBase + part).pointee = local
            }
            if parts.count == 1 {
                body(0)
            } else {
                DispatchQueue.concurrentPerform(iterations: parts.count, execute: body)
            }
        }

        let epsilon = Double(Float.ulpOfOne) / 2
        let gamma = Double(dim + 8) * epsilon * 1.5
        for q in 0..<queryCount {
            let query = padded + q * stride
            let qNorm = squaredNorm(query, dim).squareRoot()
            let bound: Double
            if let reduced {
                bound = reduced.errorBound(query: q, queryNorm: qNorm, metric: metric, maxNorm: store.maxNorm)
            } else {
                bound = metric == .l2
                    ? gamma * (store.maxNorm * store.maxNorm + 2 * qNorm * store.maxNorm)
                    : gamma * qNorm
            }
            rank(query: q, queryPointer: query, heaps: heaps, parts: parts, errorBound: Float(bound),
                 reduced: reduced, into: &results)
        }
    }

    /// Picks the exact top k of one query from the float32 candidates of all parts.
    private func rank(query q: Int, queryPointer: UnsafePointer<Float>, heaps: [CandidateHeaps],
                      parts: [(Int, Int)], errorBound: Float, reduced: BFloat16Queries?,
                      into results: inout SearchResults) {
        var all: [(score: Float, id: Int32)] = []
        for h in heaps { all.append(contentsOf: h.entries(of: q)) }
        all.sort { $0.score < $1.score || ($0.score == $1.score && $0.id < $1.id) }
        let kEff = min(k, store.count)
        let kth = all[kEff - 1].score
        // Anything whose float32 score is within twice the rounding bound of the k-th could be in
        // the true top k (and anything below it is a candidate).
        let cutoff = kth + 2 * errorBound
        var complete = true
        for (i, h) in heaps.enumerated() where h.capacity < parts[i].1 - parts[i].0 {
            if h.worst(of: q) <= cutoff { complete = false }
        }
        var exact: [(distance: Double, id: Int32)]
        if complete {
            let qq = queryNormSquared(queryPointer)
            exact = all.prefix { $0.score <= cutoff }.map { (exactDistance(queryPointer, qq, row: Int($0.id)), $0.id) }
        } else if let reduced {
            // More rows lie inside the window than the heaps kept: scan again for all of them.
            results.exactRescans += 1
            let qq = queryNormSquared(queryPointer)
            exact = rowsWithin(cutoff, query: reduced.query(q), rowsBF16: reduced.rows)
                .map { (exactDistance(queryPointer, qq, row: Int($0)), $0) }
        } else {
            results.exactRescans += 1
            let qq = queryNormSquared(queryPointer)
            exact = (0..<store.count).map { (exactDistance(queryPointer, qq, row: $0), Int32($0)) }
        }
        exact.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
        for j in 0..<min(kEff, exact.count) {
            results.ids[q * k + j] = Int64(exact[j].id)
            results.distances[q * k + j] = Float(exact[j].distance)
        }
    }

    /// Every row whose bfloat16-scan score is at most `cutoff`. Any scan order satisfies the same
    /// error bound, so this pass keeps every row the window must hold.
    private func rowsWithin(_ cutoff: Float, query: UnsafePointer<UInt16>, rowsBF16: BFloat16Rows) -> [Int32] {
        let block = SearchRun.simdBlock
        let dots = UnsafeMutableRawPointer.allocate(byteCount: block * 4, alignment: 64).bindMemory(to: Float.self, capacity: block)
        let rowsOut = UnsafeMutablePointer<UInt32>.allocate(capacity: block)
        let scoresOut = UnsafeMutablePointer<Float>.allocate(capacity: block)
        defer {
            UnsafeMutableRawPointer(dots).deallocate()
            rowsOut.deallocate()
            scoresOut.deallocate()
        }
        let isL2 = metric == .l2
        var found: [Int32] = []
        store.inverseNorms.withUnsafeBufferPointer { inverse in
            guard let inverseNorms = inverse.baseAddress else { return }
            let aux = isL2 ? store.squaredNorms : UnsafePointer(inverseNorms)
            var r0 = 0
            while r0 < store.count {
                let nr = min(block, store.count - r0)
                beand_store_dots_bf16_any(query, rowsBF16.rows + r0 * rowsBF16.stride, rowsBF16.stride, nr, dots)
                let n = beand_store_filter(cpuLevel, dots, aux + r0, isL2 ? 1 : 0, nr, cutoff.nextUp, UInt32(r0),
                                           rowsOut, scoresOut)
                for j in 0..<n { found.append(Int32(bitPattern: rowsOut[j])) }
                r0 += nr
            }
        }
        return found
    }

    /// Σ q_i² in float64, summed in the order `exactDistance` used to sum it per row.
    private func queryNormSquared(_ query: UnsafePointer<Float>) -> Double {
        var qq: Double = 0
        for i in 0..<dim { let a = Double(query[i]); qq += a * a }
        return qq
    }

    /// `qq`: `queryNormSquared(query)`, computed once per query.
    private func exactDistance(_ query: UnsafePointer<Float>, _ qq: Double, row: Int) -> Double {
        let x = store.rows + row * stride
        switch metric {
        case .l2:
            var s: Double = 0
            for i in 0..<dim { let d = Double(query[i]) - Double(x[i]); s += d * d }
            return s
        case .cosine:
            var dot: Double = 0, xx: Double = 0
            for i in 0..<dim {
                let a = Double(query[i]), b = Double(x[i])
                dot += a * b; xx += b * b
            }
            guard qq > 0, xx > 0 else { return 1 }
            return 1 - dot / (qq.squareRoot() * xx.squareRoot())
        }
    }

    // MARK: float32 kernels (Sources/CBLAS/store_kernels.h)

    /// One query, one pass over the rows: SIMD dot products of a block of rows into an L1-resident
    /// buffer, then the fused filter hands only the rows that beat the current k-th to the heap.
    private func scanSIMD(_ query: UnsafePointer<Float>, query q: Int, rows: Range<Int>,
                          scratch: Scratch, into heaps: CandidateHeaps) {
        let block = SearchRun.simdBlock
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let nr = min(block, rows.upperBound - r0)
            beand_store_dots(cpuLevel, query, store.rows + r0 * stride, stride, stride, nr, scratch.dots)
            offer(scratch.dots, count: nr, firstRow: r0, query: q, scratch: scratch, into: heaps)
            r0 += nr
        }
    }

    /// `scanSIMD` over the bfloat16 copy of the rows.
    private func scanSIMDBFloat16(_ query: UnsafePointer<UInt16>, query q: Int, rows: Range<Int>, rowsBF16: BFloat16Rows,
                                  scratch: Scratch, into heaps: CandidateHeaps) {
        let block = SearchRun.simdBlock
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let nr = min(block, rows.upperBound - r0)
            beand_store_dots_bf16_any(query, rowsBF16.rows + r0 * rowsBF16.stride, rowsBF16.stride, nr, scratch.dots)
            offer(scratch.dots, count: nr, firstRow: r0, query: q, scratch: scratch, into: heaps)
            r0 += nr
        }
    }

    /// `scanFused` over the bfloat16 copy: queries as bfloat16 pairs, one broadcast row pair per
    /// 16 pair products.
    private func scanFusedBFloat16(_ reduced: BFloat16Queries, rows: Range<Int>, scratch: Scratch,
                                   into heaps: CandidateHeaps) {
        let chunk = SearchLimits.queryChunk
        let bstride = reduced.rows.stride
        let pairs = UnsafeMutableRawPointer.allocate(byteCount: chunk * bstride * 2, alignment: 64)
            .bindMemory(to: UInt16.self, capacity: chunk * bstride)
        defer { pairs.deallocate() }
        scanFusedChunks(rows: rows, scratch: scratch, into: heaps) { q0, nq in
            pairs.initialize(repeating: 0, count: chunk * bstride)
            for j in 0..<nq {
                let query = reduced.query(q0 + j)
                for c in 0..<bstride { pairs[(c >> 1) * 2 * chunk + 2 * j + (c & 1)] = query[c] }
            }
        } kernel: { nq, r0, aux, thresholds, found in
            beand_store_batch_bf16(pairs, Int32((nq + 15) / 16), reduced.rows.rows + r0 * bstride, bstride,
                                   rows.upperBound - r0, aux + r0, metric == .l2 ? 1 : 0, thresholds, UInt32(r0),
                                   Scratch.candidateCapacity, scratch.candidateQueries, scratch.candidateRows,
                                   scratch.candidateScores, &found)
        }
    }

    /// Batches on AVX-512: up to 64 queries against every row in one pass, dot products and the
    /// top-k threshold test fused in registers (no distance matrix at all).
    private func scanFused(_ padded: UnsafePointer<Float>, rows: Range<Int>, scratch: Scratch,
                           into heaps: CandidateHeaps) {
        let chunk = SearchLimits.queryChunk
        let transposed = UnsafeMutableRawPointer.allocate(byteCount: chunk * dim * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: chunk * dim)
        defer { transposed.deallocate() }
        scanFusedChunks(rows: rows, scratch: scratch, into: heaps) { q0, nq in
            transposed.initialize(repeating: 0, count: chunk * dim)
            for j in 0..<nq {
                let query = padded + (q0 + j) * stride
                for c in 0..<dim { transposed[c * chunk + j] = query[c] }
            }
        } kernel: { nq, r0, aux, thresholds, found in
            beand_store_batch(cpuLevel, transposed, Int32((nq + 15) / 16), store.rows + r0 * stride, stride, dim,
                              rows.upperBound - r0, aux + r0, metric == .l2 ? 1 : 0, thresholds, UInt32(r0),
                              Scratch.candidateCapacity, scratch.candidateQueries, scratch.candidateRows,
                              scratch.candidateScores, &found)
        }
    }

    /// The fused scan's driver: per chunk of up to 64 queries, `prepare(q0, nq)` lays the queries
    /// out for the kernel; `kernel(nq, r0, aux, thresholds, &found)` scans from row r0 until its
    /// candidate buffer is nearly full and returns the rows done; the candidates go to the heaps,
    /// whose new k-th scores become the next thresholds.
    @inline(__always)
    private func scanFusedChunks(rows: Range<Int>, scratch: Scratch, into heaps: CandidateHeaps,
                                 prepare: (Int, Int) -> Void,
                                 kernel: (Int, Int, UnsafePointer<Float>, UnsafePointer<Float>?, inout Int) -> Int) {
        let chunk = SearchLimits.queryChunk
        var thresholds = [Float](repeating: -.infinity, count: chunk)
        let aux = metric == .l2 ? store.squaredNorms : scratch.inverseNorms
        var q0 = 0
        while q0 < queryCount {
            let nq = min(chunk, queryCount - q0)
            prepare(q0, nq)
            for j in 0..<chunk { thresholds[j] = j < nq ? heaps.worst(of: q0 + j) : -.infinity }
            var r0 = rows.lowerBound
            while r0 < rows.upperBound {
                var found = 0
                let done = thresholds.withUnsafeBufferPointer { t in kernel(nq, r0, aux, t.baseAddress, &found) }
                for i in 0..<found {
                    let q = q0 + Int(scratch.candidateQueries[i])
                    let score = scratch.candidateScores[i]
                    heaps.withHeap(of: q) { heap in
                        if score < heap.worst {
                            thresholds[q - q0] = heap.replaceWorst(score: score, id: Int32(bitPattern: scratch.candidateRows[i]))
                        }
                    }
                }
                r0 += done
            }
            q0 += nq
        }
    }

    /// Batches without AVX-512: sgemm of a query chunk against a block of rows, then the fused
    /// top-k filter over the block while it is still in cache.
    private func scanBLAS(_ padded: UnsafePointer<Float>, rows: Range<Int>, scratch: Scratch,
                          into heaps: CandidateHeaps) {
        let block = options.rowBlock
        let chunk = SearchLimits.queryChunk
        var q0 = 0
        while q0 < queryCount {
            let nq = min(chunk, queryCount - q0)
            var r0 = rows.lowerBound
            while r0 < rows.upperBound {
                let nr = min(block, rows.upperBound - r0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(nq), Int32(nr), Int32(dim),
                            1, padded + q0 * stride, Int32(stride), store.rows + r0 * stride, Int32(stride),
                            0, scratch.dots, Int32(nr))
                for qi in 0..<nq {
                    offer(scratch.dots + qi * nr, count: nr, firstRow: r0, query: q0 + qi, scratch: scratch, into: heaps)
                }
                r0 += nr
            }
            q0 += nq
        }
    }

    @inline(__always)
    private func offer(_ dots: UnsafePointer<Float>, count: Int, firstRow: Int, query: Int, scratch: Scratch,
                       into heaps: CandidateHeaps) {
        let isL2 = metric == .l2
        let aux = (isL2 ? store.squaredNorms : scratch.inverseNorms) + firstRow
        heaps.withHeap(of: query) { heap in
            let found = beand_store_filter(cpuLevel, dots, aux, isL2 ? 1 : 0, count, heap.worst, UInt32(firstRow),
                                           scratch.candidateRows, scratch.candidateScores)
            var worst = heap.worst
            for j in 0..<found where scratch.candidateScores[j] < worst {
                worst = heap.replaceWorst(score: scratch.candidateScores[j], id: Int32(bitPattern: scratch.candidateRows[j]))
            }
        }
    }

    static let simdBlock = 256

    /// Per-worker buffers, sized for the largest block either path uses.
    struct Scratch {
        let dots: UnsafeMutablePointer<Float>
        let candidateQueries: UnsafeMutablePointer<UInt32>
        let candidateRows: UnsafeMutablePointer<UInt32>
        let candidateScores: UnsafeMutablePointer<Float>
        let inverseNorms: UnsafePointer<Float>
        static let candidateCapacity = 4096

        init(rowBlock: Int, blas: Bool, inverseNorms: UnsafePointer<Float>) {
            // The sgemm block is only needed on the BLAS path; the others need one row block.
            let floats = blas ? SearchLimits.queryChunk * max(rowBlock, SearchRun.simdBlock) : SearchRun.simdBlock
            dots = UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: floats)
            let candidates = max(Self.candidateCapacity, rowBlock, SearchRun.simdBlock)
            candidateQueries = .allocate(capacity: candidates)
            candidateRows = .allocate(capacity: candidates)
            candidateScores = .allocate(capacity: candidates)
            self.inverseNorms = inverseNorms
        }

        func deallocate() {
            UnsafeMutableRawPointer(dots).deallocate()
            candidateQueries.deallocate()
            candidateRows.deallocate()
            candidateScores.deallocate()
        }
    }
}

/// Which kernel variant this CPU runs (AVX-512, AVX2+FMA or scalar), decided once.
private let cpuLevel: Int32 = beand_store_cpu_level()

/// Fixed-capacity max-heaps of (score, row), one per query, in two flat buffers owned by one
/// search worker. Starts full of +inf sentinels so insertion never checks the size.
final class CandidateHeaps {
    let capacity: Int
    private let count: Int
    private let scores: UnsafeMutablePointer<Float>
    private let ids: UnsafeMutablePointer<Int32>

    init(queries: Int, capacity: Int) {
        self.capacity = capacity
        count = max(1, queries * capacity)
        scores = .allocate(capacity: count)
        scores.initialize(repeating: .infinity, count: count)
        ids = .allocate(capacity: count)
        ids.initialize(repeating: -1, count: count)
    }

    deinit {
        scores.deallocate()
        ids.deallocate()
    }

    @inline(__always)
    func withHeap<R>(of query: Int, _ body: (inout CandidateHeap) -> R) -> R {
        var heap = CandidateHeap(scores: scores + query * capacity, ids: ids + query * capacity, capacity: capacity)
        return body(&heap)
    }

    func worst(of query: Int) -> Float { capacity == 0 ? -.infinity : scores[query * capacity] }

    func entries(of query: Int) -> [(score: Float, id: Int32)] {
        (0..<capacity).compactMap { j in
            let id = ids[query * capacity + j]
            return id < 0 ? nil : (scores[query * capacity + j], id)
        }
    }
}

struct CandidateHeap {
    let scores: UnsafeMutablePointer<Float>
    let ids: UnsafeMutablePointer<Int32>
    let capacity: Int

    var worst: Float { capacity == 0 ? -.infinity : scores[0] }

    /// Replaces the root (the worst kept candidate) and sifts down; returns the new worst.
    @inline(__always)
    mutating func replaceWorst(score: Float, id: Int32) -> Float {
        var i = 0
        while true {
            let left = 2 * i + 1
            if left >= capacity { break }
            let right = left + 1
            let child = right < capacity && scores[right] > scores[left] ? right : left
            if scores[child] <= score { break }
            scores[i] = scores[child]
            ids[i] = ids[child]
            i = child
        }
        scores[i] = score
        ids[i] = id
        return scores[0]
    }
}

/// One call's queries rounded to bfloat16 (padded to the rows' bfloat16 stride), with what the
/// error bound needs: |q - bf16(q)| and |bf16(q)| per query.
struct BFloat16Queries {
    let rows: BFloat16Rows
    private let values: UnsafeMutablePointer<UInt16>
    private let errors: [Double]
    private let roundedNorms: [Double]

    /// nil when the generation has no bfloat16 copy or a query value exceeds bfloat16's range.
    init?(_ padded: UnsafePointer<Float>, count: Int, stride: Int, dimension: Int, store: StoreGeneration) {
        guard let rows = store.bfloat16 else { return nil }
        let bstride = rows.stride
        let values = UnsafeMutableRawPointer.allocate(byteCount: max(1, count * bstride) * 2, alignment: 64)
            .bindMemory(to: UInt16.self, capacity: max(1, count * bstride))
        values.initialize(repeating: 0, count: max(1, count * bstride))
        var errors = [Double](repeating: 0, count: count), norms = [Double](repeating: 0, count: count)
        for q in 0..<count {
            var error2: Double = 0, norm2: Double = 0
            if beand_store_to_bf16(padded + q * stride, values + q * bstride, dimension, &error2, &norm2) != 0 {
                values.deallocate()
                return nil
            }
            errors[q] = error2.squareRoot()
            norms[q] = norm2.squareRoot()
        }
        self.rows = rows
        self.values = values
        self.errors = errors
        self.roundedNorms = norms
    }

    func deallocate() { values.deallocate() }

    func query(_ q: Int) -> UnsafePointer<UInt16> { UnsafePointer(values + q * rows.stride) }

    /// A bound on |float32 score from the bfloat16 scan - exact score| for every row, query `q`.
    ///
    /// The scan computes fl(<q', x'>) with q' = bf16(q), x' = bf16(x), float32 accumulation that
    /// flushes subnormal results (AVX512_BF16). |<q,x> - <q',x'>| <= |q - q'| |x| + |q'| |x - x'|
    /// (Cauchy-Schwarz, with the rounding errors measured per query and per row); the float32
    /// accumulation adds at most gamma |q'| |x'| (n = stride terms plus the 16-lane reduction);
    /// each flushed subnormal at most 2^-126. Cosine scores are dots times 1/|x|, L2 scores
    /// |x|^2 - 2 dot; the 1.001 factor covers the float64 arithmetic of the bound itself.
    func errorBound(query q: Int, queryNorm: Double, metric: Metric, maxNorm: Double) -> Double {
        let epsilon = Double(Float.ulpOfOne) / 2
        let gamma = Double(rows.stride + 24) * epsilon * 1.5
        let flushed = Double(2 * rows.stride + 32) * 0x1p-126
        let qError = errors[q], qRounded = roundedNorms[q]
        switch metric {
        case .cosine:
            let perUnitNorm = qError + qRounded * rows.maxRelativeError
                + gamma * qRounded * (1 + rows.maxRelativeError) + 4 * epsilon * queryNorm
            return 1.001 * (perUnitNorm + flushed * rows.maxInverseNorm)
        case .l2:
            let dot = qError * maxNorm + qRounded * rows.maxAbsoluteError + gamma * qRounded * rows.maxRoundedNorm + flushed
            return 1.001 * (2 * dot + gamma * maxNorm * maxNorm)
        }
    }
}
