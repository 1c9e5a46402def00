import ArgumentParser
import BeanStore
import CBLAS
import Foundation

/// `beanctl store …`: offline commands on a store directory (see beand-store(5)).
struct Store: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and change a vector store directory.",
        subcommands: [StoreInfo.self, StoreList.self, StoreAdd.self, StoreRemove.self, StoreExport.self, StoreSearch.self]
    )
}

struct StoreDirectoryOption: ParsableArguments {
    @Option(name: .customLong("store"), help: "Store directory (holds CURRENT and gen-*.bstore).")
    var directory: String
}

/// Prints `Key : value` lines with the keys aligned, chrony style.
func printAligned(_ rows: [(String, String)]) {
    let width = rows.map(\.0.count).max() ?? 0
    for (key, value) in rows {
        print(key.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + value)
    }
}

func jsonLine(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// UTC, millisecond precision, e.g. 2026-11-22T16:21:31.154Z.
func isoTime(ns: Int64) -> String {
    var seconds = time_t(ns / 1_000_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    let millis = Int((ns % 1_000_000_000 + 1_000_000_000) % 1_000_000_000 / 1_000_000)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                  Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis)
}

struct StoreInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show the current generation.")
    @OptionGroup var store: StoreDirectoryOption
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let g = try StoreDirectory.openCurrent(directory: store.directory)
        let counts = g.labelCounts()
        if json {
            print(try jsonLine([
                "generation": g.generation, "path": g.path, "count": g.count, "dimension": g.dimension,
                "metric": g.metric.description, "element_type": g.elementType.description,
                "fingerprint": g.fingerprintText, "created": isoTime(ns: g.createdNs),
                "checksum": String(format: "%016llx", g.checksum),
                "labels": Dictionary(uniqueKeysWithValues: zip(g.labels, counts)),
            ] as [String: Any]))
            return
        }
        var rows: [(String, String)] = [
            ("Generation", "\(g.generation)"), ("File", g.path), ("Vectors", "\(g.count)"),
            ("Dimension", "\(g.dimension)"), ("Metric", g.metric.description),
            ("Element type", g.elementType.description), ("Encoder", g.fingerprintText),
            ("Created", isoTime(ns: g.createdNs)), ("Checksum", String(format: "%016llx", g.checksum)),
            ("Labels", "\(g.labels.count)"),
        ]
        for (label, n) in zip(g.labels, counts) { rows.append(("  " + label, "\(n)")) }
        printAligned(rows)
    }
}

struct StoreList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List generation files and whether each is valid.")
    @OptionGroup var store: StoreDirectoryOption
    @Flag(help: "Print one JSON object per line.") var json = false

    func run() throws {
        let current = try? StoreDirectory.currentPath(directory: store.directory)
        for entry in try StoreDirectory.generations(directory: store.directory) {
            let path = store.directory + "/" + entry.name
            let isCurrent = current == path
            do {
                let g = try StoreGeneration(path: path)
                if json {
                    print(try jsonLine(["generation": g.generation, "file": entry.name, "count": g.count,
                                        "current": isCurrent, "valid": true, "created": isoTime(ns: g.createdNs)] as [String: Any]))
                } else {
                    print("\(isCurrent ? "*" : " ") \(entry.name)  \(g.count) vectors  created \(isoTime(ns: g.createdNs))")
                }
            } catch let error as StoreError {
                if json {
                    print(try jsonLine(["generation": entry.number, "file": entry.name, "current": isCurrent,
                                        "valid": false, "error": error.reason.description] as [String: Any]))
                } else {
                    print("\(isCurrent ? "*" : " ") \(entry.name)  INVALID: \(error.reason)")
                }
            }
        }
    }
}

struct StoreAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Append labelled vectors and publish a new generation.",
        discussion: "Prints 'published generation N' only after the generation and the CURRENT pointer are on disk.")
    @OptionGroup var store: StoreDirectoryOption
    @Option(help: "float32/float64 .npy file, one vector per row.") var vectors: String
    @Option(help: "Text file with one label per line, one line per vector.") var labels: String
    @Option(help: "Who adds the vectors (stored per vector).") var author: String = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
    @Option(help: "Source id of the first vector; the rest count up from it.") var sourceStart: UInt64 = 0
    @Option(help: "Metric of a new store: cosine or l2.") var metric: String = "cosine"
    @Option(help: "Encoder fingerprint of a new store; must match an existing store's.") var fingerprint: String?
    @Option(help: "Generation files to keep.") var keep: Int = 3

    func run() throws {
        let matrix = try NumpyFile.readFloat32(vectors)
        let labelLines = try String(contentsOfFile: labels, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let rowLabels = labelLines.last == "" ? Array(labelLines.dropLast()) : labelLines
        guard rowLabels.count == matrix.rows else {
            throw ValidationError("\(labels): \(rowLabels.count) labels for \(matrix.rows) vectors in \(vectors)")
        }
        if let empty = rowLabels.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("\(labels):\(empty + 1): empty label")
        }
        guard let metric = Metric(name: metric) else { throw ValidationError("unknown metric \(metric) (cosine or l2)") }
        let fingerprintBytes = fingerprint.map { Array($0.utf8) }
        let initial: GenerationDraft? = fingerprintBytes.map {
            GenerationDraft(dimension: matrix.columns, metric: metric, fingerprint: $0)
        }
        let published: StoreWriter.Published
        do {
            published = try StoreWriter(directory: store.directory, keep: keep).update(creatingWith: initial) { draft in
                guard draft.dimension == matrix.columns else {
                    throw StoreError.Reason.invalidInput(
                        "\(vectors) has \(matrix.columns) columns but the store holds dimension \(draft.dimension)")
                }
                if let fingerprintBytes, fingerprintBytes != draft.fingerprint {
                    throw StoreError.Reason.invalidInput(
                        "store was made for encoder \"\(String(decoding: draft.fingerprint, as: UTF8.self))\", --fingerprint says \"\(fingerprint ?? "")\"")
                }
                let sources = (0..<UInt64(matrix.rows)).map { sourceStart + $0 }
                try draft.append(vectors: matrix.values, labels: rowLabels, author: author,
                                 sourceIDs: sources, addedNs: Int64(Date().timeIntervalSince1970 * 1e9))
            }
        } catch let error as StoreError where error.reason == .noCurrentGeneration && fingerprint == nil {
            throw ValidationError("\(store.directory) has no generation yet: give --fingerprint (the encoder's) to create the store")
        }
        print("published generation \(published.generation) (\(published.count) vectors, +\(matrix.rows))")
    }
}

struct StoreRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove vectors and publish a new generation.")
    @OptionGroup var store: StoreDirectoryOption
    @Option(help: "Remove every vector with this label.") var label: String?
    @Option(help: "Remove these row ids of the current generation (comma-separated).") var ids: String?
    @Option(help: "Remove vectors with these source ids (comma-separated).") var sourceIds: String?
    @Option(help: "Generation files to keep.") var keep: Int = 3

    func validate() throws {
        guard [label != nil, ids != nil, sourceIds != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --label, --ids, --source-ids")
        }
    }

    func run() throws {
        func numbers(_ text: String, _ option: String) throws -> Set<UInt64> {
            var set = Set<UInt64>()
            for part in text.split(separator: ",") {
                guard let n = UInt64(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--\(option): \"\(part)\" is not a non-negative integer")
                }
                set.insert(n)
            }
            return set
        }
        let rowIDs = try ids.map { try numbers($0, "ids") }
        let sourceIDs = try sourceIds.map { try numbers($0, "source-ids") }
        var removed = 0
        let published = try StoreWriter(directory: store.directory, keep: keep).update(creatingWith: nil) { draft in
            let labelID = label.flatMap { draft.labels.firstIndex(of: $0) }.map(UInt32.init)
            if let label, labelID == nil { throw StoreError.Reason.invalidInput("no label \"\(label)\" in the store") }
            removed = draft.removeAll { row, meta in
                if let labelID { return meta.labelID == labelID }
                if let rowIDs { return rowIDs.contains(UInt64(row)) }
                return sourceIDs?.contains(meta.sourceID) ?? false
            }
        }
        print("published generation \(published.generation) (\(published.count) vectors, -\(removed))")
    }
}

struct StoreExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write PREFIX.vectors.npy (float32) and PREFIX.labels.csv (id,label,source_id,added,author).")
    @OptionGroup var store: StoreDirectoryOption
    @Option(help: "Output path prefix.") var output: String

    func run() throws {
        let g = try StoreDirectory.openCurrent(directory: store.directory)
        var values = [Float]()
        values.reserveCapacity(g.count * g.dimension)
        var lines = ["id,label,source_id,added,author"]
        lines.reserveCapacity(g.count + 1)
        let labels = g.labels.map(csvField), authors = g.authors.map(csvField)
        var lastNs: Int64 = .min, lastTime = ""
        for row in 0..<g.count {
            g.withVector(at: row) { values.append(contentsOf: $0) }
            let m = g.metadata(at: row)
            if m.addedNs != lastNs { lastNs = m.addedNs; lastTime = isoTime(ns: m.addedNs) }
            lines.append("\(row),\(labels[Int(m.labelID)]),\(m.sourceID),\(lastTime),\(authors[Int(m.authorID)])")
        }
        let csv = lines.joined(separator: "\n") + "\n"
        try NumpyFile.write(values, rows: g.count, columns: g.dimension, to: output + ".vectors.npy")
        try csv.write(toFile: output + ".labels.csv", atomically: true, encoding: .utf8)
        print("exported generation \(g.generation): \(g.count) vectors to \(output).vectors.npy, \(output).labels.csv")
    }

    private func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

struct StoreSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Exact kNN: writes PREFIX.ids.npy (int64) and PREFIX.dist.npy (float32), one row per query.")
    @OptionGroup var store: StoreDirectoryOption
    @Option(help: ".npy file of queries, one per row.") var queries: String
    @Option(name: .short, help: "Neighbours per query (1…64).") var k: Int = 10
    @Option(help: "cosine or l2 (default: the store's metric).") var metric: String?
    @Option(help: "Output path prefix.") var output: String
    @Option(help: "Worker threads.") var threads: Int = 1

    func run() throws {
        let metric = try metric.map { name -> Metric in
            guard let m = Metric(name: name) else { throw ValidationError("unknown metric \(name) (cosine or l2)") }
            return m
        }
        let g = try StoreDirectory.openCurrent(directory: store.directory)
        let q = try NumpyFile.readFloat32(queries)
        guard q.columns == g.dimension else {
            throw ValidationError("\(queries): queries have \(q.columns) columns, the store \(g.dimension)")
        }
        if threads > 1 { openblas_set_num_threads(1) }
        let r = try g.search(queries: q.values, k: k, metric: metric, options: SearchOptions(threads: threads))
        try NumpyFile.write(r.ids, rows: q.rows, columns: k, to: output + ".ids.npy")
        try NumpyFile.write(r.distances, rows: q.rows, columns: k, to: output + ".dist.npy")
    }
}

/// `beanctl bench store`: queries/s of exact kNN on a store, or (`--swap`) hot-swap latency.
struct BenchStore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Measure kNN queries/s on a store; with --swap, publish-to-visible time and query stalls during swaps.")
    @OptionGroup var store: StoreDirectoryOption
    @Option(help: "Queries per search call.") var batch: Int = 1
    @Option(help: "Worker threads (OpenBLAS is set to one thread; the store splits rows itself).") var threads: Int = 1
    @Option(name: .short, help: "Neighbours per query.") var k: Int = 10
    @Option(help: "cosine or l2 (default: the store's metric).") var metric: String?
    @Option(help: ".npy queries (default: seeded Gaussian random).") var queries: String?
    @Option(help: "Seconds of measurement (split into rounds; the median round is reported).") var seconds: Double = 3
    @Option(help: "Measurement rounds.") var rounds: Int = 5
    @Flag(help: "Measure hot swaps instead (publishes new generations into --store).") var swap = false
    @Option(help: "Swaps to measure with --swap.") var swaps: Int = 20
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Scan the float32 rows even on CPUs with the bfloat16 scan (for comparison; results are the same).")
    var float32Scan = false

    func run() throws {
        openblas_set_num_threads(1)
        let metricValue = try metric.map { name -> Metric in
            guard let m = Metric(name: name) else { throw ValidationError("unknown metric \(name)") }
            return m
        }
        if swap { try runSwap(metric: metricValue); return }
        let g = try StoreDirectory.openCurrent(directory: store.directory)
        let pool = try queryPool(dimension: g.dimension, minimum: batch * 8)
        let options = SearchOptions(threads: threads, bfloat16Scan: !float32Scan)
        let poolRows = pool.count / g.dimension
        var cursor = 0
        func nextBatch() -> [Float] {
            if cursor + batch > poolRows { cursor = 0 }
            defer { cursor += batch }
            return Array(pool[(cursor * g.dimension)..<((cursor + batch) * g.dimension)])
        }
        // Warm-up: page in the rows, settle the heap sizes.
        let warmEnd = monotonicSeconds() + min(0.5, seconds / 4)
        repeat { _ = try g.search(queries: nextBatch(), k: k, metric: metricValue, options: options) } while monotonicSeconds() < warmEnd
        var perRound: [Double] = []
        var perCPURound: [Double] = []
        var rescans = 0
        var scannedBFloat16 = false
        for _ in 0..<max(1, rounds) {
            let start = monotonicSeconds(), cpuStart = processCPUSeconds()
            var answered = 0
            repeat {
                let r = try g.search(queries: nextBatch(), k: k, metric: metricValue, options: options)
                answered += batch
                rescans += r.exactRescans
                scannedBFloat16 = r.scannedBFloat16
            } while monotonicSeconds() - start < seconds / Double(max(1, rounds))
            perRound.append(Double(answered) / (monotonicSeconds() - start))
            perCPURound.append(Double(answered) / max(1e-9, processCPUSeconds() - cpuStart))
        }
        let median = perRound.sorted()[perRound.count / 2]
        let medianPerCPU = perCPURound.sorted()[perCPURound.count / 2]
        if json {
            print(try jsonLine(["queries_per_s": median, "rounds_queries_per_s": perRound,
                                "queries_per_cpu_s": medianPerCPU, "n": g.count,
                                "dimension": g.dimension, "batch": batch, "threads": threads, "k": k,
                                "metric": (metricValue ?? g.metric).description, "exact_rescans": rescans,
                                "scan": scannedBFloat16 ? "bfloat16" : "float32"] as [String: Any]))
        } else {
            printAligned([("Vectors", "\(g.count)"), ("Dimension", "\(g.dimension)"), ("Batch", "\(batch)"),
                          ("Threads", "\(threads)"), ("k", "\(k)"),
                          ("Queries/s (median)", String(format: "%.0f", median)),
                          ("Queries per CPU-second", String(format: "%.0f", medianPerCPU)),
                          ("Rounds", perRound.map { String(format: "%.0f", $0) }.joined(separator: " ")),
                          ("Scan", scannedBFloat16 ? "bfloat16 rows, float64 re-ranking" : "float32 rows, float64 re-ranking"),
                          ("Float64 rescans", "\(rescans)")])
        }
    }

    private func queryPool(dimension: Int, minimum: Int) throws -> [Float] {
        if let queries {
            let m = try NumpyFile.readFloat32(queries)
            guard m.columns == dimension else { throw ValidationError("\(queries): \(m.columns) columns, store has \(dimension)") }
            guard m.rows >= batch else { throw ValidationError("\(queries): \(m.rows) queries, fewer than --batch \(batch)") }
            return m.values
        }
        var rng = SplitMix64(seed: 42)
        return (0..<(max(minimum, 256) * dimension)).map { _ in rng.nextGaussian() }
    }

    /// Queries run continuously (batch 1) on one thread through a watching LiveStore while this
    /// thread republishes the store `swaps` times.
    private func runSwap(metric: Metric?) throws {
        let live = try LiveStore(directory: store.directory)
        try live.startWatching()
        defer { live.stopWatching() }
        let dimension = live.current.dimension
        let draft = GenerationDraft(copying: live.current)
        let writer = StoreWriter(directory: store.directory)
        let recorder = LatencyRecorder()
        let stop = StopFlag()
        let pool: [Float] = { var rng = SplitMix64(seed: 7); return (0..<(64 * dimension)).map { _ in rng.nextGaussian() } }()
        let k = self.k
        let finished = DispatchSemaphore(value: 0)
        let queryThread = Thread {
            defer { finished.signal() }
            var i = 0
            while !stop.isSet {
                let q = Array(pool[((i % 64) * dimension)..<((i % 64 + 1) * dimension)])
                let start = monotonicSeconds()
                // The only point where a query can wait for a swap: taking the generation.
                let generation = live.current
                let acquired = monotonicSeconds()
                if let r = try? generation.search(queries: q, k: k, metric: metric) {
                    recorder.record(start: start, acquired: acquired, end: monotonicSeconds(), generation: r.generation)
                }
                i += 1
            }
        }
        queryThread.start()
        var windows: [(start: Double, end: Double)] = []
        var visible: [Double] = []
        var publishTimes: [Double] = []
        var visibleFromStart: [Double] = []
        for _ in 0..<max(1, swaps) {
            Thread.sleep(forTimeInterval: 0.1)
            let t0 = monotonicSeconds()
            let published = try writer.publish(draft)
            let t1 = monotonicSeconds()
            while recorder.firstAnswer(of: published.generation) == nil && monotonicSeconds() - t1 < 5 {
                usleep(100)
            }
            // From the end of publish (CURRENT renamed and the directory fsynced) to the first
            // answer from the new generation; the reload may even start before publish returns.
            let t2 = recorder.firstAnswer(of: published.generation) ?? .infinity
            publishTimes.append(t1 - t0)
            visible.append(max(0, t2 - t1))
            visibleFromStart.append(t2 - t0)
            windows.append((t0, t2 + 0.02))
        }
        stop.set()
        finished.wait()
        let (during, outside, waitDuring, waitOutside) = recorder.split(by: windows)
        func pct(_ xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return .nan }
            let s = xs.sorted()
            return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
        }
        let result: [String: Any] = [
            "n": live.current.count, "swaps": visible.count,
            "publish_ms_median": pct(publishTimes, 0.5) * 1e3,
            "visible_after_publish_ms_median": pct(visible, 0.5) * 1e3,
            "visible_after_publish_ms_max": (visible.max() ?? .nan) * 1e3,
            "visible_after_publish_start_ms_median": pct(visibleFromStart, 0.5) * 1e3,
            "handover_wait_ms_during_swap_p99": pct(waitDuring, 0.99) * 1e3,
            "handover_wait_ms_during_swap_max": (waitDuring.max() ?? .nan) * 1e3,
            "handover_wait_ms_outside_swap_max": (waitOutside.max() ?? .nan) * 1e3,
            "query_ms_during_swap_p99": pct(during, 0.99) * 1e3, "query_ms_during_swap_max": (during.max() ?? .nan) * 1e3,
            "query_ms_outside_swap_p99": pct(outside, 0.99) * 1e3, "query_ms_outside_swap_max": (outside.max() ?? .nan) * 1e3,
            "queries_during_swap": during.count, "queries_outside_swap": outside.count,
        ]
        if json {
            print(try jsonLine(result))
        } else {
            printAligned(result.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
        }
    }
}

/// CPU time of the whole process (all threads): on a shared machine, queries per CPU-second
/// compares implementations even when wall-clock figures swing with other load.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextGaussian() -> Float {
        let u1 = (Double(next() >> 11) + 1) / 9_007_199_254_740_992
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// Query latencies with the generation that answered, shared between the query thread and the
/// publisher (under a lock; the bench is not the hot path).
final class LatencyRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [(start: Double, acquired: Double, end: Double, generation: UInt64)] = []
    private var firstEnd: [UInt64: Double] = [:]

    func record(start: Double, acquired: Double, end: Double, generation: UInt64) {
        lock.lock()
        samples.append((start, acquired, end, generation))
        if firstEnd[generation] == nil { firstEnd[generation] = end }
        lock.unlock()
    }

    func firstAnswer(of generation: UInt64) -> Double? {
        lock.lock(); defer { lock.unlock() }
        return firstEnd[generation]
    }

    /// Query latencies and generation hand-over waits, split by whether the query overlapped a swap.
    func split(by windows: [(start: Double, end: Double)]) -> (during: [Double], outside: [Double], waitDuring: [Double], waitOutside: [Double]) {
        lock.lock(); defer { lock.unlock() }
        var during: [Double] = [], outside: [Double] = [], waitDuring: [Double] = [], waitOutside: [Double] = []
        for s in samples {
            if windows.contains(where: { s.start < $0.end && s.end > $0.start }) {
                during.append(s.end - s.start); waitDuring.append(s.acquired - s.start)
            } else {
                outside.append(s.end - s.start); waitOutside.append(s.acquired - s.start)
            }
        }
        return (during, outside, waitDuring, waitOutside)
    }
}
