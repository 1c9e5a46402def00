import Foundation

/// Shape of a model input or output as the runtime resolved it (the batch dim excluded).
public struct TensorDescription: Sendable, CustomStringConvertible {
    public var name: String
    /// Per-sample shape: the full shape without its leading batch dim.
    public var sampleShape: [Int]
    public var description: String { "\(name) [N, \(sampleShape.map(String.init).joined(separator: ", "))]" }
}

/// A loaded ONNX encoder: decoded, BatchNorm folded into convolutions, validated by planning it once.
/// Immutable and shareable; run it through an `InferenceSession` (one per thread) or `EncoderPool`.
public final class EncoderModel: @unchecked Sendable {
    let graph: Graph
    let weights = PreparedWeights()
    let inputTemplate: [DeclaredDim]
    /// The batch the file fixes (e.g. 1 when exported without a dynamic batch axis), or nil if dynamic.
    public let fixedBatch: Int?
    public let source: String
    public let opset: Int
    public let producer: String
    public let input: TensorDescription
    public let outputs: [TensorDescription]
    /// Number of weight values in the file's initializers.
    public let parameterCount: Int
    /// Operator → node count, as in the file.
    public let operatorCounts: [String: Int]
    /// Hex digest of the initializers (names, shapes, values) in file order; the vector store refuses
    /// vectors from a different fingerprint.
    public let fingerprint: String
    /// Multiply-accumulates per sample (from the batch-1 plan).
    public let macsPerSample: Int

    /// Input spatial size (width, height) for image models (rank-4 input).
    public var inputSize: (width: Int, height: Int)? {
        input.sampleShape.count == 3 ? (input.sampleShape[2], input.sampleShape[1]) : nil
    }
    /// Number of values each sample's first output holds (the embedding dimension for an encoder).
    public let outputDim: Int

    /// Loads `path`. `spatialSize` (height, width) resolves symbolic height/width dims of the input.
    public static func load(path: String, spatialSize: (Int, Int)? = nil) throws -> EncoderModel {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ModelError(.unreadable, "cannot read \(path): \(error.localizedDescription)")
        }
        return try EncoderModel(data: data, source: path, spatialSize: spatialSize)
    }

    public init(data: Data, source: String, spatialSize: (Int, Int)? = nil) throws {
        let parsed = try Graph(onnx: data, source: source)
        self.source = source
        self.opset = parsed.opset
        self.producer = parsed.producer
        guard parsed.inputs.count == 1, let gi = parsed.inputs.first else {
            throw ModelError(.unsupported, "\(source): the model has \(parsed.inputs.count) inputs; encoders take exactly one")
        }
        guard var dims = gi.dims, !dims.isEmpty else {
            throw ModelError(.shape, "\(source): input '\(gi.name)' declares no shape")
        }
        if dims.count == 4, let (h, w) = spatialSize {
            for (d, v) in [(2, h), (3, w)] {
                if case .fixed(let f) = dims[d], f != v {
                    throw ModelError(.shape, "\(source): input '\(gi.name)' is fixed at \(f) in dim \(d); cannot run at \(v)")
                }
                dims[d] = .fixed(v)
            }
        }
        var perSample = 1
        for (d, dim) in dims.enumerated() {
            switch dim {
            case .symbolic(let name) where d > 0:
                throw ModelError(.shape, "\(source): input '\(gi.name)' dimension \(d) is dynamic ('\(name)') and cannot be resolved; give the input size")
            case .fixed(let v) where v > (1 << 16) || (d > 0 && perSample * v > (1 << 26)):
                throw ModelError(.shape, "\(source): input '\(gi.name)' dimension \(d) = \(v) is beyond this runtime's limits")
            case .fixed(let v) where d > 0:
                perSample *= v
            default:
                break
            }
        }
        if case .fixed(let b) = dims[0] { fixedBatch = b } else { fixedBatch = nil }
        inputTemplate = dims
        graph = try BatchNormFolding.fold(parsed)

        var params = 0
        var hasher = Fingerprinter()
        for name in parsed.initializerOrder {
            guard let t = parsed.initializers[name] else { continue }
            hasher.add(name)
            hasher.add(t.shape.map { Int64($0) })
            switch t.storage {
            case .float(let f): params += f.count; hasher.add(f)
            case .int(let i): hasher.add(i)
            }
        }
        parameterCount = params
        fingerprint = hasher.hexDigest
        operatorCounts = parsed.nodes.reduce(into: [:]) { $0[$1.op, default: 0] += 1 }

        let sample = dims.dropFirst().map { d -> Int in if case .fixed(let v) = d { return v }; return 0 }
        input = TensorDescription(name: gi.name, sampleShape: sample)
        // Planning once validates every node and resolves the output shapes.
        let probe = try Planner(graph: graph, weights: weights, batch: fixedBatch ?? 1,
                                inputDims: [gi.name: [fixedBatch ?? 1] + sample]).buildChecked()
        let b = probe.batch
        outputs = try probe.outputs.map { o in
            guard let first = o.shape.first, first == b else {
                throw ModelError(.shape, "\(source): output '\(o.name)' of shape \(o.shape) has no leading batch dim")
            }
            return TensorDescription(name: o.name, sampleShape: Array(o.shape.dropFirst()))
        }
        macsPerSample = probe.macs / max(b, 1)
        outputDim = outputs[0].sampleShape.reduce(1, *)
    }

    /// The plan for `batch` samples per run (the file's fixed batch when it has one); `gemmLevel`
    /// (tests) overrides the small-product GEMM path.
    func plan(batch: Int, gemmLevel: Int32 = PackedGemm.level) throws -> ExecutionPlan {
        let b = fixedBatch ?? batch
        var planner = Planner(graph: graph, weights: weights, batch: b, inputDims: [input.name: [b] + input.sampleShape])
        planner.gemmLevel = gemmLevel
        var p = try planner.buildChecked()
        p.batch = b
        for o in p.outputs where o.shape.first != b {
            throw ModelError(.shape, "\(source): output '\(o.name)' has shape \(o.shape) at batch \(b)")
        }
        return p
    }

    /// A single-thread runner that can take up to `maxBatch` samples per call.
    public func makeSession(maxBatch: Int) throws -> InferenceSession {
        try InferenceSession(model: self, maxBatch: maxBatch)
    }
}

extension Planner {
    /// `build()` with every non-ModelError turned into one (planning must never crash the caller).
    func buildChecked() throws -> ExecutionPlan {
        var copy = self
        return try copy.build()
    }
}

/// Runs an `EncoderModel` on one thread with its own arena. Plans for batch sizes 1…maxBatch are
/// built up front, so `run` performs no heap allocation.
public final class InferenceSession {
    public let model: EncoderModel
    public let maxBatch: Int
    private var plans: [ExecutionPlan] = []
    private let arena: Arena

    init(model: EncoderModel, maxBatch: Int) throws {
        guard maxBatch >= 1 else { throw ModelError(.usage, "maxBatch must be at least 1") }
        self.model = model
        self.maxBatch = maxBatch
        inputCountPerSample = model.input.sampleShape.reduce(1, *)
        outputCountPerSample = model.outputDim
        if let fixed = model.fixedBatch {
            plans = [try model.plan(batch: fixed)]
        } else {
            plans = try (1...maxBatch).map { try model.plan(batch: $0) }
        }
        arena = Arena(count: plans.map(\.totalFloats).max() ?? 0)
    }

    /// Stored, not computed: `run` reads them and must not allocate (debug builds box generics).
    public let inputCountPerSample: Int
    public let outputCountPerSample: Int

    /// Runs `batch` samples: `input` holds batch × inputCountPerSample floats (NCHW), `output`
    /// receives batch × outputCountPerSample floats of the first output.
    public func run(input: UnsafePointer<Float>, batch: Int, output: UnsafeMutablePointer<Float>) throws {
        guard batch >= 1 && batch <= maxBatch else {
            throw ModelError(.usage, "batch \(batch) outside 1…\(maxBatch) for this session")
        }
        let perIn = inputCountPerSample, perOut = outputCountPerSample
        let base = arena.pointer
        if model.fixedBatch == nil {
            let plan = plans[batch - 1]
            (base + plan.offsets[plan.inputs[0].storage]).update(from: input, count: batch * perIn)
            plan.run(arena: base)
            output.update(from: base + plan.offsets[plan.outputs[0].storage], count: batch * perOut)
            return
        }
        let plan = plans[0]
        guard plan.batch == 1 || batch == plan.batch else {
            throw ModelError(.usage, "the model is fixed at batch \(plan.batch); got \(batch)")
        }
        // A file fixed at batch 1 runs sample by sample.
        let runs = plan.batch == 1 ? batch : 1
        let samples = plan.batch == 1 ? 1 : batch
        for r in 0..<runs {
            (base + plan.offsets[plan.inputs[0].storage]).update(from: input + r * perIn, count: samples * perIn)
            plan.run(arena: base)
            (output + r * perOut).update(from: base + plan.offsets[plan.outputs[0].storage], count: samples * perOut)
        }
    }

    /// Runs and hands each output (index, pointer to batch × sample values) to `body`.
    public func runAll(input: UnsafePointer<Float>, batch: Int,
                       _ body: (Int, UnsafePointer<Float>) throws -> Void) throws {
        guard batch >= 1 && batch <= maxBatch else {
            throw ModelError(.usage, "batch \(batch) outside 1…\(maxBatch) for this session")
        }
        let perIn = inputCountPerSample
        if model.fixedBatch == nil {
            let plan = plans[batch - 1]
            let base = arena.pointer
            (base + plan.offsets[plan.inputs[0].storage]).update(from: input, count: batch * perIn)
            plan.run(arena: base)
            for (k, o) in plan.outputs.enumerated() { try body(k, base + plan.offsets[o.storage]) }
            return
        }
        // Fixed-batch file: run it in chunks of its batch and gather the outputs.
        let plan = plans[0]
        let fixed = plan.batch
        guard fixed == 1 || batch == fixed else {
            throw ModelError(.usage, "the model is fixed at batch \(fixed); got \(batch)")
        }
        for (k, o) in plan.outputs.enumerated() {
            let per = o.count / fixed
            let gathered = UnsafeMutablePointer<Float>.allocate(capacity: batch * per)
            defer { gathered.deallocate() }
            for s in 0..<batch {
                let base = arena.pointer
                (base + plan.offsets[plan.inputs[0].storage]).update(from: input + s * perIn, count: perIn)
                plan.run(arena: base)
                (gathered + s * per).update(from: base + plan.offsets[o.storage], count: per)
            }
            try body(k, gathered)
        }
    }

    /// Convenience: runs and returns the first output as an array (allocates).
    public func run(_ input: [Float], batch: Int) throws -> [Float] {
        guard input.count == batch * inputCountPerSample else {
            throw ModelError(.usage, "input holds \(input.count) values; batch \(batch) needs \(batch * inputCountPerSample)")
        }
        var out = [Float](repeating: 0, count: batch * outputCountPerSample)
        try input.withUnsafeBufferPointer { i in
            try out.withUnsafeMutableBufferPointer { o in try run(input: i.baseAddress!, batch: batch, output: o.baseAddress!) }
        }
        return out
    }

    /// Runs all outputs, returning each as (shape, values) (allocates).
    public func runAllOutputs(_ input: [Float], batch: Int) throws -> [([Int], [Float])] {
        guard input.count == batch * inputCountPerSample else {
            throw ModelError(.usage, "input holds \(input.count) values; batch \(batch) needs \(batch * inputCountPerSample)")
        }
        var result: [([Int], [Float])] = []
        try input.withUnsafeBufferPointer { i in
            try runAll(input: i.baseAddress!, batch: batch) { k, p in
                let shape = [batch] + model.outputs[k].sampleShape
                result.append((shape, Array(UnsafeBufferPointer(start: p, count: shape.reduce(1, *)))))
            }
        }
        return result
    }
}

/// Two independent 64-bit multiply-xor lanes over the weight bytes (not cryptographic: it tells
/// encoders apart, it does not authenticate them).
struct Fingerprinter {
    private var a: UInt64 = 0xcbf2_9ce4_8422_2325
    private var b: UInt64 = 0x9e37_79b9_7f4a_7c15
    private var length: UInt64 = 0

    mutating func mix(_ word: UInt64) {
        a = (a ^ word) &* 0x0000_0100_0000_01b3
        b = (b ^ (word &* 0xff51_afd7_ed55_8ccd)) &* 0xc4ce_b9fe_1a85_ec53
        b ^= b >> 29
        length &+= 1
    }

    mutating func add(_ s: String) {
        for byte in s.utf8 { mix(UInt64(byte)) }
        mix(0xff)
    }

    mutating func add<T>(_ values: [T]) {
        values.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { mix(raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            var tail: UInt64 = 0
            for i in (words * 8)..<raw.count { tail = tail << 8 | UInt64(raw[i]) }
            mix(tail ^ UInt64(raw.count))
        }
    }

    var hexDigest: String {
        var x = a ^ length, y = b ^ (length &* 0x9e37_79b9_7f4a_7c15)
        x = (x ^ (x >> 33)) &* 0xff51_afd7_ed55_8ccd; x ^= x >> 33
        y = (y ^ (y >> 33)) &* 0xc4ce_b9fe_1a85_ec53; y ^= y >> 33
        return String(format: "%016llx%016llx", x, y)
    }
}
