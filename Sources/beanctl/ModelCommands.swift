import ArgumentParser
import BeanNet
import CBLAS
import Dispatch
import Foundation

/// `beanctl model …`: offline inspection and execution of ONNX encoder files.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect or run an ONNX encoder with beand's runtime.",
        subcommands: [ModelInfo.self, ModelRun.self, ModelCombine.self]
    )
}

/// Parses "64" or "64x96" (height × width).
private func parseSize(_ s: String?) throws -> (Int, Int)? {
    guard let s else { return nil }
    let parts = s.lowercased().split(separator: "x").compactMap { Int($0) }
    if parts.count == 1, parts[0] > 0 { return (parts[0], parts[0]) }
    if parts.count == 2, parts[0] > 0, parts[1] > 0 { return (parts[0], parts[1]) }
    throw ValidationError("--size must be N or HxW, got '\(s)'")
}

private func loadOrExplain(_ path: String, size: (Int, Int)?) throws -> EncoderModel {
    do {
        return try EncoderModel.load(path: path, spatialSize: size)
    } catch let e as ModelError {
        FileHandle.standardError.write(Data("beanctl: cannot load \(path): \(e)\n".utf8))
        throw ExitCode(1)
    }
}

struct ModelInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a model's inputs, outputs, operators, parameter count and fingerprint, or why it cannot load."
    )

    @Argument(help: "ONNX file.") var file: String
    @Option(help: "Input size (N or HxW) for models whose input height/width are dynamic.") var size: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let model = try loadOrExplain(file, size: try parseSize(size))
        let ops = model.operatorCounts.sorted { $0.key < $1.key }
        if json {
            let obj: [String: Any] = [
                "file": file, "opset": model.opset, "producer": model.producer,
                "input": ["name": model.input.name, "sample_shape": model.input.sampleShape,
                          "batch": model.fixedBatch.map { $0 as Any } ?? "dynamic"],
                "outputs": model.outputs.map { ["name": $0.name, "sample_shape": $0.sampleShape] },
                "operators": Dictionary(uniqueKeysWithValues: ops.map { ($0.key, $0.value) }),
                "parameters": model.parameterCount, "fingerprint": model.fingerprint,
                "macs_per_sample": model.macsPerSample,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("file:        \(file)")
        print("producer:    \(model.producer.isEmpty ? "-" : model.producer), opset \(model.opset)")
        print("input:       \(model.input)  (batch \(model.fixedBatch.map { "fixed at \($0)" } ?? "dynamic"))")
        for o in model.outputs { print("output:      \(o)") }
        print("operators:   " + ops.map { "\($0.key)×\($0.value)" }.joined(separator: " "))
        print("parameters:  \(model.parameterCount)")
        print("MACs/sample: \(model.macsPerSample)")
        print("fingerprint: \(model.fingerprint)")
    }
}

struct ModelCombine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "combine",
        abstract: "Write one encoder that runs several on the same crop and joins their embeddings (an ensemble).",
        discussion: """
            The output is the concatenation of the members' embeddings, L2-normalised: with unit-length \
            members, its cosine similarity is the mean of theirs. The members must take the same input \
            (crop size); the ensemble costs the sum of their work. Its store must be built with the \
            ensemble itself (beanctl enroll): the vectors of a member's store do not fit it.
            """
    )

    @Argument(help: "ONNX encoders (at least two).") var members: [String] = []
    @Option(help: ArgumentHelp("Where to write the ensemble.", valueName: "file")) var out: String

    func run() throws {
        guard members.count >= 2 else { throw ValidationError("give at least two encoders to combine, got \(members.count)") }
        var data: [Data] = []
        for path in members {
            guard let bytes = FileManager.default.contents(atPath: path) else {
                throw ValidationError("\(path): cannot read the file")
            }
            // Each member must load on its own first, so an error names the member, not the ensemble.
            _ = try loadOrExplain(path, size: nil)
            data.append(bytes)
        }
        let combined: Data
        do { combined = try EncoderEnsemble.combine(data, sources: members) } catch let error as ModelError {
            FileHandle.standardError.write(Data("beanctl: cannot combine: \(error)\n".utf8))
            throw ExitCode(1)
        }
        try writeAtomically(combined, to: out)
        let model = try loadOrExplain(out, size: nil)
        print("ensemble \(out) of \(members.count) encoders (\(model.outputDim)-d, \(model.parameterCount) parameters, \(model.macsPerSample) MACs per crop, fingerprint \(model.fingerprint))")
    }
}

struct ModelRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on a raw NCHW float32 .npy tensor and write its first output as .npy."
    )

    @Argument(help: "ONNX file.") var file: String
    @Option(help: "Input .npy (float32 or float64, C order, leading batch dim).") var input: String
    @Option(help: "Output .npy (float32).") var output: String
    @Option(help: "Samples per runtime call.") var batch = 32
    @Option(help: .hidden) var repeatRuns = 0

    func run() throws {
        let x: NpyArray
        do { x = try NpyArray.read(path: input) } catch let e as ModelError {
            FileHandle.standardError.write(Data("beanctl: \(e)\n".utf8)); throw ExitCode(1)
        }
        guard x.shape.count >= 1, x.shape[0] >= 1 else { throw ValidationError("\(input): needs a leading batch dim, shape \(x.shape)") }
        let size: (Int, Int)? = x.shape.count == 4 ? (x.shape[2], x.shape[3]) : nil
        let model = try loadOrExplain(file, size: size)
        let n = x.shape[0]
        guard Array(x.shape.dropFirst()) == model.input.sampleShape else {
            FileHandle.standardError.write(Data("beanctl: \(input) has shape \(x.shape); the model expects [N, \(model.input.sampleShape.map(String.init).joined(separator: ", "))]\n".utf8))
            throw ExitCode(1)
        }
        let chunk = max(1, min(batch, n))
        // Same threading as the daemon's workers: one BLAS thread per session.
        openblas_set_num_threads(1)
        do {
            let session = try model.makeSession(maxBatch: chunk)
            let perIn = session.inputCountPerSample, perOut = session.outputCountPerSample
            var out = [Float](repeating: 0, count: n * perOut)
            try x.values.withUnsafeBufferPointer { xin in
                try out.withUnsafeMutableBufferPointer { yout in
                    var s = 0
                    while s < n {
                        let b = min(chunk, n - s)
                        try session.run(input: xin.baseAddress! + s * perIn, batch: b, output: yout.baseAddress! + s * perOut)
                        s += b
                    }
                    if repeatRuns > 0 {
                        // Steady-state allocation check: counted by an LD_PRELOAD malloc interposer
                        // (Tests/support/malloc_count.c) when present.
                        let counter = AllocationCounter()
                        let before = counter.count
                        for _ in 0..<repeatRuns { try session.run(input: xin.baseAddress!, batch: chunk, output: yout.baseAddress!) }
                        let after = counter.count
                        if let before, let after {
                            print("allocations in \(repeatRuns) runs of batch \(chunk): \(after - before)")
                        } else {
                            print("allocations: no counter (run under LD_PRELOAD=malloc_count.so)")
                        }
                    }
                }
            }
            try NpyArray(shape: [n] + model.outputs[0].sampleShape, values: out).write(path: output)
        } catch let e as ModelError {
            FileHandle.standardError.write(Data("beanctl: \(file): \(e)\n".utf8)); throw ExitCode(1)
        }
    }
}

/// Reads the counter exported by the malloc interposer, if the process runs under it.
struct AllocationCounter {
    private typealias Getter = @convention(c) () -> UInt64
    private let getter: Getter?

    init() {
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "beand_malloc_count") {
            getter = unsafeBitCast(sym, to: Getter.self)
        } else {
            getter = nil
        }
    }

    var count: UInt64? { getter?() }
}

struct BenchEncoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder",
        abstract: "Images per second of the encoder runtime on random input (N workers, one BLAS thread each)."
    )

    @Argument(help: "ONNX file.") var file: String
    @Option(help: "Input height and width (N or HxW).") var size = "64"
    @Option(help: "Images per run.") var batch = 1
    @Option(help: "Worker threads, each with its own arena and one BLAS thread.") var workers = 1
    @Option(help: "Seconds per measured round.") var seconds = 1.0
    @Option(help: "Measured rounds (the median is reported).") var rounds = 3
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard batch >= 1, workers >= 1, rounds >= 1, seconds > 0 else { throw ValidationError("batch, workers, rounds and seconds must be positive") }
        let model = try loadOrExplain(file, size: try parseSize(size))
        openblas_set_num_threads(1)
        let sessions = try (0..<workers).map { _ in try model.makeSession(maxBatch: batch) }
        let perIn = sessions[0].inputCountPerSample, perOut = sessions[0].outputCountPerSample
        var rng = SplitMix(seed: 42)
        let input = (0..<(batch * perIn)).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let outputs = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: batch * perOut) }
        defer { outputs.forEach { $0.deallocate() } }

        // Warm-up: first touches of arenas and OpenBLAS buffers.
        try input.withUnsafeBufferPointer { p in
            for (w, s) in sessions.enumerated() { for _ in 0..<2 { try s.run(input: p.baseAddress!, batch: batch, output: outputs[w]) } }
        }
        var rates: [Double] = []
        // Images per CPU-second of the whole process: on a shared machine wall-clock rates move with
        // the neighbours' load, CPU time much less.
        var cpuRates: [Double] = []
        for _ in 0..<rounds {
            let cpuStart = processCPUSeconds()
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: workers)
            counts.initialize(repeating: 0, count: workers)
            defer { counts.deallocate() }
            let start = DispatchTime.now().uptimeNanoseconds
            let deadline = start + UInt64(seconds * 1e9)
            input.withUnsafeBufferPointer { p in
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    while DispatchTime.now().uptimeNanoseconds < deadline {
                        try? sessions[w].run(input: p.baseAddress!, batch: batch, output: outputs[w])
                        counts[w] += batch
                    }
                }
            }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let images = Double((0..<workers).reduce(0) { $0 + counts[$1] })
            rates.append(images / elapsed)
            cpuRates.append(images / max(processCPUSeconds() - cpuStart, 1e-9))
        }
        rates.sort()
        cpuRates.sort()
        let imagesPerS = rates[rates.count / 2]
        let imagesPerCPUSecond = cpuRates[cpuRates.count / 2]
        let gflops = imagesPerS * Double(model.macsPerSample) * 2 / 1e9
        let peak = measureSgemmPeak(threads: workers)
        if json {
            let obj: [String: Any] = [
                "images_per_s": imagesPerS, "size": size, "batch": batch, "workers": workers,
                "gflops": gflops, "sgemm_peak_gflops": peak, "peak_fraction": gflops / peak,
                "macs_per_image": model.macsPerSample, "rounds": rates, "images_per_cpu_s": imagesPerCPUSecond,
                "blas_core": BLASKernels.currentCore,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "encoder %@ size %@ batch %d workers %d: %.1f images/s, %.1f GFLOP/s (%.0f%% of sgemm peak %.1f, %@ kernels)",
                         file, size, batch, workers, imagesPerS, gflops, 100 * gflops / peak, peak, BLASKernels.currentCore))
        }
    }
}

/// sgemm GFLOP/s with `threads` concurrent single-threaded callers (512³ blocks, ~0.5 s).
func measureSgemmPeak(threads: Int) -> Double {
    let n = 512
    let flopsPerCall = 2.0 * Double(n * n * n)
    var best = 0.0
    let bufs = (0..<threads).map { _ in (a: [Float](repeating: 0.5, count: n * n), b: [Float](repeating: 0.25, count: n * n)) }
    let cs = (0..<threads).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: n * n) }
    defer { cs.forEach { $0.deallocate() } }
    for _ in 0..<3 {
        let calls = UnsafeMutablePointer<Int>.allocate(capacity: threads)
        calls.initialize(repeating: 0, count: threads)
        defer { calls.deallocate() }
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + 150_000_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            bufs[t].a.withUnsafeBufferPointer { a in
                bufs[t].b.withUnsafeBufferPointer { b in
                    while DispatchTime.now().uptimeNanoseconds < deadline {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                    a.baseAddress, Int32(n), b.baseAddress, Int32(n), 0, cs[t], Int32(n))
                        calls[t] += 1
                    }
                }
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = max(best, Double((0..<threads).reduce(0) { $0 + calls[$1] }) * flopsPerCall / elapsed / 1e9)
    }
    return best
}

/// Deterministic generator for benchmark inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
