import Foundation

enum Layout: Sendable { case plain, nhwc }

/// A runtime tensor during planning: its logical (ONNX) shape, physical layout and storage.
struct PlanValue: Sendable {
    var shape: [Int]
    var layout: Layout
    var storage: Int
    var count: Int { shape.reduce(1, *) }
}

/// Weight tensors rearranged for the kernels, built once per model and shared by every plan.
final class PreparedWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var cache: [String: FloatBuffer] = [:]

    func buffer(_ key: String, make: () throws -> [Float]) rethrows -> FloatBuffer {
        lock.lock(); defer { lock.unlock() }
        if let b = cache[key] { return b }
        let b = FloatBuffer(try make())
        cache[key] = b
        return b
    }
}

/// Operators the runtime executes and the attributes each accepts; anything else is refused by name.
enum OperatorTable {
    static let attributes: [String: Set<String>] = [
        "Conv": ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        "ConvTranspose": ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "output_padding", "output_shape"],
        "BatchNormalization": ["epsilon", "momentum", "training_mode", "spatial"],
        "Relu": [], "Sigmoid": [], "LeakyRelu": ["alpha"], "Clip": ["min", "max"],
        "Add": [], "Sub": [], "Mul": [], "Div": [],
        "MaxPool": ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"],
        "AveragePool": ["auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", "dilations"],
        "GlobalAveragePool": [],
        "ReduceMean": ["axes", "keepdims", "noop_with_empty_axes"],
        "ReduceSum": ["axes", "keepdims", "noop_with_empty_axes"],
        "ReduceL2": ["axes", "keepdims", "noop_with_empty_axes"],
        "ReduceMax": ["axes", "keepdims", "noop_with_empty_axes"],
        "ReduceMin": ["axes", "keepdims", "noop_with_empty_axes"],
        "LpNormalization": ["axis", "p"],
        "Flatten": ["axis"], "Reshape": ["allowzero"], "Identity": [], "Dropout": ["seed"], "Cast": ["to", "saturate"],
        "Squeeze": ["axes"], "Unsqueeze": ["axes"],
        "Pad": ["mode"], "Gemm": ["alpha", "beta", "transA", "transB"], "MatMul": [], "Concat": ["axis"],
        "Resize": ["antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
                   "extrapolation_value", "keep_aspect_ratio_policy", "mode", "nearest_mode"],
        "Upsample": ["mode"],
        "Expand": [], "Transpose": ["perm"],
        // Load-time only (shape subgraphs and constants).
        "Constant": ["value", "value_float", "value_floats", "value_int", "value_ints"],
        "Shape": ["start", "end"], "Size": [], "Gather": ["axis"], "Slice": [], "ConstantOfShape": ["value"],
        "Range": [], "Equal": [], "Where": [], "Neg": [], "Sqrt": [], "Abs": [],
    ]

    static func validate(_ node: GraphNode) throws {
        guard let allowed = attributes[node.op] else {
            throw node.error(.unsupported, "operator '\(node.op)' is not supported")
        }
        for (name, value) in node.attributes {
            guard allowed.contains(name) else {
                throw node.error(.unsupported, "attribute is not supported for \(node.op)", attribute: name)
            }
            if case .unsupported(let type) = value {
                throw node.error(.unsupported, "attribute type \(type) is not supported", attribute: name)
            }
        }
    }
}

/// Lowers a graph into an ExecutionPlan for one batch size: folds constant subgraphs, infers shapes,
/// fuses activations and residual adds into convolutions, lays out every buffer in one arena.
struct Planner {
    static let scratchBudget = 1 << 20
    /// Winograd F(2×2,3×3) for 3×3 stride-1 convolutions with at least this many 2×2 output tiles
    /// per run (below it, packing 16 transformed weight matrices costs more than it saves).
    static let winogradMinTiles = 16
    static let winogradEnabled = ProcessInfo.processInfo.environment["BEAND_NO_WINOGRAD"] == nil
    /// Upper bound on a plan's activations (floats), so corrupt dims fail cleanly instead of exhausting memory.
    static let arenaLimit = 1 << 30

    let graph: Graph
    let weights: PreparedWeights
    let batch: Int
    let inputDims: [String: [Int]]
    /// Kernel level for small GEMMs (PackedGemm); 0: cblas_sgemm only.
    var gemmLevel: Int32 = PackedGemm.level

    var consts: [String: ConstTensor] = [:]
    var values: [String: PlanValue] = [:]
    var sizes: [Int] = []
    var defined: [Int] = []
    var lastUse: [Int] = []
    var steps: [Step] = []
    var scratch = 0
    var macs = 0
    var fused: Set<Int> = []
    var consumers: [String: [Int]] = [:]
    var graphOutputs: Set<String> = []
    var converted: [String: PlanValue] = [:]

    init(graph: Graph, weights: PreparedWeights, batch: Int, inputDims: [String: [Int]]) {
        self.graph = graph
        self.weights = weights
        self.batch = batch
        self.inputDims = inputDims
        consts = graph.initializers
        for (i, n) in graph.nodes.enumerated() {
            for name in n.inputs where !name.isEmpty { consumers[name, default: []].append(i) }
        }
        graphOutputs = Set(graph.outputs)
    }

    // MARK: storage

    mutating func newStorage(_ count: Int) -> Int {
        // Oversized storages make build() fail with a clear error (see arenaLimit).
        sizes.append(count < 0 ? Planner.arenaLimit : min(count, Planner.arenaLimit))
        defined.append(steps.count)
        lastUse.append(steps.count)
        return sizes.count - 1
    }

    mutating func use(_ storage: Int) { lastUse[storage] = max(lastUse[storage], steps.count) }

    mutating func use(_ operand: Operand) { if case .storage(let s) = operand { use(s) } }

    // MARK: layouts

    /// Storage strides of each logical dim of `v`.
    static func logicalStrides(_ shape: [Int], _ layout: Layout) -> [Int] {
        if layout == .nhwc && shape.count == 4 {
            let (h, w, c) = (shape[2], shape[3], shape[1])
            return [h * w * c, 1, w * c, c]
        }
        return Folder.broadcastStrides(shape, to: shape)
    }

    static func physicalOrder(_ rank: Int, _ layout: Layout) -> [Int] {
        layout == .nhwc && rank == 4 ? [0, 2, 3, 1] : Array(0..<rank)
    }

    /// Strides (in the output's physical order) to read `shape`/`layout` broadcast into `out`.
    static func readStrides(_ shape: [Int], _ layout: Layout, into out: [Int], outLayout: Layout) -> [Int] {
        let own = logicalStrides(shape, layout)
        let r = out.count
        var st = [Int](repeating: 0, count: r)
        for i in 0..<shape.count {
            let o = i + r - shape.count
            st[o] = shape[i] == 1 && out[o] != 1 ? 0 : own[i]
        }
        return physicalOrder(r, outLayout).map { st[$0] }
    }

    mutating func convert(_ name: String, to layout: Layout, node: GraphNode) throws -> PlanValue {
        guard let v = values[name] else {
            if consts[name] != nil {
                throw node.error(.unsupported, "input '\(name)' is a constant; this operator needs a runtime tensor here")
            }
            throw node.error(.invalid, "input '\(name)' is not produced by any earlier node")
        }
        if v.layout == layout || v.shape.count != 4 { return v }
        let key = name + (layout == .nhwc ? "#nhwc" : "#plain")
        if let c = converted[key] { return c }
        let (n, c, h, w) = (v.shape[0], v.shape[1], v.shape[2], v.shape[3])
        _ = n
        if h * w == 1 || c == 1 {
            let alias = PlanValue(shape: v.shape, layout: layout, storage: v.storage)
            converted[key] = alias
            return alias
        }
        let out = newStorage(v.count)
        let physShape = Planner.physicalOrder(4, layout).map { v.shape[$0] }
        let st = Planner.readStrides(v.shape, v.layout, into: v.shape, outLayout: layout)
        let (cs, cst) = Kernels.coalesce(shape: physShape, strides: [st])
        use(v.storage)
        steps.append(.broadcast(BroadcastStep(op: .copyFirst, a: .storage(v.storage), b: nil, output: out, shape: cs,
                                              aStrides: cst[0], bStrides: cst[0].map { _ in 0 }, activation: .none)))
        let result = PlanValue(shape: v.shape, layout: layout, storage: out)
        converted[key] = result
        return result
    }

    func constant(_ name: String?, node: GraphNode, what: String) throws -> ConstTensor {
        guard let name, let c = consts[name] else {
            throw node.error(.unsupported, "\(what) must be a constant (initializer or foldable subgraph)")
        }
        return c
    }

    func optionalConstant(_ node: GraphNode, _ index: Int) -> ConstTensor? {
        node.input(index).flatMap { consts[$0] }
    }

    /// The one node consuming `name`, when fusing into its producer is safe.
    func soleConsumer(_ name: String) -> Int? {
        guard !graphOutputs.contains(name), let c = consumers[name], c.count == 1 else { return nil }
        return c[0]
    }

    /// An activation node that can fold into the producer of `name`.
    func fusableActivation(after name: String) throws -> (Int, Activation)? {
        guard let j = soleConsumer(name) else { return nil }
        let n = graph.nodes[j]
        guard n.outputs.count == 1 else { return nil }
        switch n.op {
        case "Relu": try OperatorTable.validate(n); return (j, .relu)
        case "LeakyRelu": try OperatorTable.validate(n); return (j, .leakyRelu(try n.float("alpha", default: 0.01)))
        case "Sigmoid": try OperatorTable.validate(n); return (j, .sigmoid)
        case "Clip":
            try OperatorTable.validate(n)
            guard let (lo, hi) = try clipBounds(n) else { return nil }
            return (j, .clip(lo, hi))
        default: return nil
        }
    }

    func clipBounds(_ n: GraphNode) throws -> (Float, Float)? {
        var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
        if n.attributes["min"] != nil || n.attributes["max"] != nil {
            lo = try n.float("min", default: lo); hi = try n.float("max", default: hi)
        }
        if let name = n.input(1) { guard let c = consts[name] else { return nil }; lo = c.floats.first ?? lo }
        if let name = n.input(2) { guard let c = consts[name] else { return nil }; hi = c.floats.first ?? hi }
        return (lo, hi)
    }

    // MARK: planning

    mutating func build() throws -> ExecutionPlan {
        var inputs: [PlanTensor] = []
        for gi in graph.inputs {
            guard let dims = inputDims[gi.name] else { throw ModelError(.shape, "graph input '\(gi.name)' has no resolved shape") }
            let s = newStorage(dims.reduce(1, *))
            defined[s] = -1
            values[gi.name] = PlanValue(shape: dims, layout: .plain, storage: s)
            inputs.append(PlanTensor(name: gi.name, storage: s, shape: dims))
        }
        for (i, node) in graph.nodes.enumerated() where !fused.contains(i) {
            try OperatorTable.validate(node)
            for name in node.inputs where !name.isEmpty && consts[name] == nil && values[name] == nil {
                throw node.error(.invalid, "input '\(name)' is not produced by any earlier node or initializer")
            }
            let present = node.inputs.filter { !$0.isEmpty }
            let allConst = present.allSatisfy { consts[$0] != nil }
            if node.op == "Shape" || node.op == "Size" || (allConst && Folder.foldable.contains(node.op)) {
                let ins = node.inputs.map { $0.isEmpty ? nil : consts[$0] }
                let shapes = node.inputs.map { name -> [Int]? in consts[name]?.shape ?? values[name]?.shape }
                let outs = try Folder.evaluate(node, inputs: ins, shapes: shapes, opset: graph.opset)
                for (k, name) in node.outputs.enumerated() where k < outs.count && !name.isEmpty { consts[name] = outs[k] }
                continue
            }
            try lower(node, index: i)
        }
        var outputs: [PlanTensor] = []
        for name in graph.outputs {
            guard values[name] != nil else {
                if consts[name] != nil { throw ModelError(.unsupported, "graph output '\(name)' is a constant") }
                throw ModelError(.invalid, "graph output '\(name)' is not produced by any node")
            }
            let v = try convert(name, to: .plain, node: GraphNode(name: "output", op: "Output", inputs: [], outputs: [], attributes: [:]))
            lastUse[v.storage] = Int.max
            outputs.append(PlanTensor(name: name, storage: v.storage, shape: v.shape))
        }
        for case .broadcast(let s) in steps where s.shape.count > 8 {
            // The element-wise kernel's odometer holds 8 dims.
            throw ModelError(.unsupported, "an element-wise operation over \(s.shape.count) non-mergeable dims (at most 8)")
        }
        let total = sizes.reduce(0) { $0 &+ $1 } &+ scratch
        guard total >= 0, total < Planner.arenaLimit else {
            throw ModelError(.shape, "the plan at batch \(batch) needs more than \(Planner.arenaLimit / (1 << 28)) GiB of activations")
        }
        let (offsets, arena) = Planner.layout(sizes: sizes, defined: defined, lastUse: lastUse, stepCount: steps.count)
        return ExecutionPlan(batch: batch, steps: steps, offsets: offsets, arenaFloats: arena, scratchFloats: scratch,
                             inputs: inputs, outputs: outputs, macs: macs)
    }

    /// First-fit placement of storages by lifetime; 16-float (64-byte) alignment.
    static func layout(sizes: [Int], defined: [Int], lastUse: [Int], stepCount: Int) -> ([Int], Int) {
        var offsets = [Int](repeating: 0, count: sizes.count)
        var live: [(start: Int, end: Int, id: Int)] = []
        var peak = 0
        let order = sizes.indices.sorted { (defined[$0], $0) < (defined[$1], $1) }
        var next = 0
        for step in -1..<max(stepCount, 0) {
            // Place storages written at this step before releasing this step's last reads.
            while next < order.count && defined[order[next]] <= step {
                let id = order[next]; next += 1
                let size = (sizes[id] + 15) / 16 * 16
                var candidate = 0
                for block in live.sorted(by: { $0.start < $1.start }) {
                    if candidate + size <= block.start { break }
                    candidate = max(candidate, block.end)
                }
                offsets[id] = candidate
                live.append((candidate, candidate + size, id))
                peak = max(peak, candidate + size)
            }
            live.removeAll { lastUse[$0.id] <= step && lastUse[$0.id] != Int.max && defined[$0.id] <= step }
        }
        return (offsets, peak)
    }
}
