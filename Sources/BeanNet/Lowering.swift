import Foundation

extension Planner {
    mutating func lower(_ node: GraphNode, index: Int) throws {
        switch node.op {
        case "Conv": try lowerConv(node)
        case "ConvTranspose": try lowerConvTranspose(node)
        case "BatchNormalization": try lowerBatchNorm(node)
        case "Relu", "LeakyRelu", "Sigmoid", "Clip": try lowerActivation(node)
        case "Add", "Sub", "Mul", "Div": try lowerBinary(node)
        case "MaxPool", "AveragePool": try lowerPool(node)
        case "GlobalAveragePool": try lowerGlobalAverage(node)
        case "ReduceMean", "ReduceSum", "ReduceL2", "ReduceMax", "ReduceMin": try lowerReduce(node)
        case "LpNormalization": try lowerLpNorm(node)
        case "Flatten", "Reshape", "Squeeze", "Unsqueeze": try lowerReshape(node)
        case "Identity", "Dropout", "Cast":
            if node.op == "Cast" {
                let to = try node.int("to", default: 1)
                guard to == 1 else { throw node.error(.unsupported, "runtime cast to data type \(to); only float32 tensors flow at run time", attribute: "to") }
            }
            if node.op == "Dropout", node.outputs.count > 1, !node.outputs[1].isEmpty, consumers[node.outputs[1]] != nil || graphOutputs.contains(node.outputs[1]) {
                throw node.error(.unsupported, "the mask output of Dropout is not supported")
            }
            guard let name = node.input(0), let v = values[name] else { throw node.error(.invalid, "missing input 0") }
            values[node.outputs[0]] = v
        case "Gemm": try lowerGemm(node)
        case "MatMul": try lowerMatMul(node)
        case "Concat": try lowerConcat(node)
        case "Pad": try lowerPad(node)
        case "Resize", "Upsample": try lowerResize(node)
        case "Expand", "Transpose": try lowerExpandTranspose(node)
        default:
            throw node.error(.unsupported, "operator '\(node.op)' cannot run on a runtime tensor (only at load time on constants)")
        }
    }

    // MARK: convolution

    struct Window {
        var kernel: [Int], strides: [Int], dilations: [Int], begin: [Int], end: [Int], out: [Int]
    }

    /// Output size and padding of a 2-D window per ONNX's auto_pad / pads / ceil_mode rules.
    func window(_ node: GraphNode, input: [Int], kernel: [Int], ceil: Bool = false) throws -> Window {
        let strides = try node.ints("strides") ?? [1, 1]
        let dilations = try node.ints("dilations") ?? [1, 1]
        guard strides.count == 2, strides.allSatisfy({ $0 > 0 }) else { throw node.error(.invalid, "expected two positive strides, got \(strides)", attribute: "strides") }
        guard dilations.count == 2, dilations.allSatisfy({ $0 > 0 }) else { throw node.error(.invalid, "expected two positive dilations, got \(dilations)", attribute: "dilations") }
        guard kernel.count == 2, kernel.allSatisfy({ $0 > 0 }) else { throw node.error(.unsupported, "only 2-D kernels are supported, got \(kernel)", attribute: "kernel_shape") }
        let autoPad = try node.string("auto_pad", default: "NOTSET")
        for (key, v) in [("strides", strides), ("dilations", dilations), ("kernel_shape", kernel), ("pads", try node.ints("pads") ?? [])] {
            guard v.allSatisfy({ $0 <= (1 << 16) }) else { throw node.error(.unsupported, "values \(v) beyond 65536", attribute: key) }
        }
        var begin = [0, 0], end = [0, 0], out = [0, 0]
        for d in 0..<2 {
            let eff = (kernel[d] - 1) * dilations[d] + 1
            switch autoPad {
            case "NOTSET":
                let pads = try node.ints("pads") ?? [0, 0, 0, 0]
                guard pads.count == 4, pads.allSatisfy({ $0 >= 0 }) else { throw node.error(.invalid, "expected four non-negative pads, got \(pads)", attribute: "pads") }
                begin[d] = pads[d]; end[d] = pads[d + 2]
                let span = input[d] + begin[d] + end[d] - eff
                guard span >= 0 else { throw node.error(.shape, "kernel \(kernel) larger than padded input \(input)") }
                if ceil {
                    var o = (span + strides[d] - 1) / strides[d] + 1
                    // The last window must start inside the input or its leading pad.
                    if (o - 1) * strides[d] >= input[d] + begin[d] { o -= 1 }
                    out[d] = o
                } else {
                    out[d] = span / strides[d] + 1
                }
            case "VALID":
                guard input[d] >= eff else { throw node.error(.shape, "kernel \(kernel) larger than input \(input)") }
                out[d] = (input[d] - eff) / strides[d] + 1
            case "SAME_UPPER", "SAME_LOWER":
                out[d] = (input[d] + strides[d] - 1) / strides[d]
                let total = max(0, (out[d] - 1) * strides[d] + eff - input[d])
                begin[d] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                end[d] = total - begin[d]
            default:
                throw node.error(.invalid, "unknown auto_pad '\(autoPad)'", attribute: "auto_pad")
            }
            guard out[d] > 0 else { throw node.error(.shape, "empty output for input \(input)") }
        }
        return Window(kernel: kernel, strides: strides, dilations: dilations, begin: begin, end: end, out: out)
    }

    mutating func lowerConv(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input X") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "only 2-D convolution (4-D input) is supported; input shape \(x.shape)") }
        let w = try constant(node.input(1), node: node, what: "weight W")
        guard w.shape.count == 4 else { throw node.error(.unsupported, "weight shape \(w.shape); only 2-D convolution is supported") }
        let groups = try node.int("group", default: 1)
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let cout = w.shape[0]
        guard groups > 0, cin % groups == 0, cout % groups == 0, w.shape[1] == cin / groups else {
            throw node.error(.shape, "input has \(cin) channels, weight \(w.shape), group \(groups)", attribute: "group")
        }
        let kernel = try node.ints("kernel_shape") ?? [w.shape[2], w.shape[3]]
        guard kernel == [w.shape[2], w.shape[3]] else { throw node.error(.invalid, "kernel_shape \(kernel) disagrees with weight \(w.shape)", attribute: "kernel_shape") }
        let win = try window(node, input: [h, wd], kernel: kernel)
        let bias = try optionalConstant(node, 2).map { b -> ConstTensor in
            guard b.count == cout else { throw node.error(.shape, "bias has \(b.count) values for \(cout) output channels") }
            return b
        }
        if node.input(2) != nil && bias == nil { throw node.error(.unsupported, "bias B must be a constant") }
        let g = ConvGeometry(h: h, w: wd, cin: cin, ho: win.out[0], wo: win.out[1], cout: cout, kh: kernel[0], kw: kernel[1],
                             sh: win.strides[0], sw: win.strides[1], dh: win.dilations[0], dw: win.dilations[1],
                             pt: win.begin[0], pl: win.begin[1], pb: win.end[0], pr: win.end[1], groups: groups)
        let depthwise = groups == cin && cout == cin && groups > 1
        let pointwise = groups == 1 && kernel == [1, 1] && win.strides == [1, 1] && win.begin == [0, 0] && win.end == [0, 0]
        let cg = cin / groups
        let kk = kernel[0] * kernel[1]
        let key = "conv:\(node.name):\(node.input(1) ?? ""):kn"
        let tiles = n * ((win.out[0] + 1) / 2) * ((win.out[1] + 1) / 2)
        let winograd = Planner.winogradEnabled && groups == 1 && kernel == [3, 3] && win.strides == [1, 1] && win.dilations == [1, 1]
            && cin >= 16 && cout >= 16 && tiles >= Planner.winogradMinTiles
        let wbuf: FloatBuffer = winograd ? weights.buffer(key + ":winograd") { Winograd.transformWeights(w.floats, cout: cout, cin: cin) }
            : weights.buffer(key + (depthwise ? ":dw" : "")) {
            let src = w.floats
            var out = [Float](repeating: 0, count: src.count)
            if depthwise {
                // [C][1][kh][kw] → [kh][kw][C] so the kernel runs along contiguous channels.
                for c in 0..<cout { for k in 0..<kk { out[k * cout + c] = src[c * kk + k] } }
            } else {
                // [Cout][Cin/g][kh][kw] → per group [kh][kw][Cin/g][Cout/g]: rows in the NHWC gather
                // order, so the im2col matrix multiplies it without a transpose.
                let coutg = cout / groups
                for o in 0..<cout {
                    let grp = o / coutg, oc = o % coutg
                    for c in 0..<cg { for k in 0..<kk {
                        out[grp * kk * cg * coutg + (k * cg + c) * coutg + oc] = src[(o * cg + c) * kk + k]
                    } }
                }
            }
            return out
        }
        let bbuf = bias.map { b in weights.buffer("bias:\(node.name):\(node.input(2) ?? "")") { b.floats } }
        let outShape = [n, cout, g.ho, g.wo]
        _ = try Folder.volume(outShape, node: node)

        // Epilogue fusion: a residual Add whose other operand is already computed, then an activation.
        var outName = node.outputs[0]
        var residual: Int?
        var activation = Activation.none
        if let j = soleConsumer(outName), graph.nodes[j].op == "Add", graph.nodes[j].inputs.count == 2 {
            let add = graph.nodes[j]
            let other = add.inputs[0] == outName ? add.inputs[1] : add.inputs[0]
            if other != outName, let ov = values[other], ov.shape == outShape {
                try OperatorTable.validate(add)
                let r = try convert(other, to: .nhwc, node: add)
                residual = r.storage
                fused.insert(j)
                outName = add.outputs[0]
            }
        }
        if let (j, act) = try fusableActivation(after: outName) {
            activation = act
            fused.insert(j)
            outName = graph.nodes[j].outputs[0]
        }

        let m = n * g.ho * g.wo
        var kind = ConvStep.Kind.im2col
        var rows = 0
        if depthwise { kind = .depthwise } else if pointwise { kind = .pointwise } else if winograd {
            kind = .winograd
            let pad = (cin + 15) / 16 * 16 + (cout + 15) / 16 * 16
            rows = max(1, min(tiles, Planner.scratchBudget * 2 / (16 * (cin + cout))))
            scratch = max(scratch, pad + 16 * rows * (cin + cout))
        } else {
            let kkc = kk * cg
            rows = max(1, min(m, Planner.scratchBudget / kkc))
            scratch = max(scratch, rows * kkc)
        }
        // Rows per GEMM call decide between the packed kernel and OpenBLAS (see PackedGemm).
        var packed: PackedWeights?
        let level = gemmLevel
        let gemmRows = kind == .pointwise ? m : rows
        if level != 0 && kind != .depthwise && gemmRows <= PackedGemm.maxRows {
            let (slices, kdim, ndim) = kind == .winograd ? (16, cin, cout) : (groups, kk * cg, cout / groups)
            let pbuf = weights.buffer(key + (kind == .winograd ? ":winograd" : "") + ":packed\(level)") {
                PackedGemm.pack(Array(UnsafeBufferPointer(start: wbuf.pointer, count: wbuf.count)), k: kdim, n: ndim,
                                slices: slices, level: level)
            }
            packed = PackedWeights(buffer: pbuf, level: level, sliceFloats: PackedGemm.packedCount(k: kdim, n: ndim, level: level))
        }
        use(x.storage)
        if let residual { use(residual) }
        let out = newStorage(try Folder.volume(outShape, node: node))
        steps.append(.conv(ConvStep(kind: kind, input: x.storage, output: out, residual: residual, batch: n, g: g,
                                    weights: wbuf, bias: bbuf, activation: activation, rowsPerChunk: rows, packed: packed)))
        macs &+= m &* cout &* kk &* cg
        values[outName] = PlanValue(shape: outShape, layout: .nhwc, storage: out)
    }

    mutating func lowerConvTranspose(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input X") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "only 2-D ConvTranspose is supported; input shape \(x.shape)") }
        let w = try constant(node.input(1), node: node, what: "weight W")
        let groups = try node.int("group", default: 1)
        guard groups == 1 else { throw node.error(.unsupported, "group \(groups); only group 1 is supported", attribute: "group") }
        guard w.shape.count == 4, w.shape[0] == x.shape[1] else { throw node.error(.shape, "weight \(w.shape) for input \(x.shape)") }
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let cout = w.shape[1]
        let kernel = try node.ints("kernel_shape") ?? [w.shape[2], w.shape[3]]
        guard kernel == [w.shape[2], w.shape[3]] else { throw node.error(.invalid, "kernel_shape \(kernel) disagrees with weight \(w.shape)", attribute: "kernel_shape") }
        let strides = try node.ints("strides") ?? [1, 1]
        let dil = try node.ints("dilations") ?? [1, 1]
        let outPad = try node.ints("output_padding") ?? [0, 0]
        guard strides.count == 2, strides.allSatisfy({ $0 > 0 }) else { throw node.error(.invalid, "strides \(strides)", attribute: "strides") }
        guard dil.count == 2, dil.allSatisfy({ $0 > 0 }) else { throw node.error(.invalid, "dilations \(dil)", attribute: "dilations") }
        guard outPad.count == 2, outPad.allSatisfy({ $0 >= 0 }) else { throw node.error(.invalid, "output_padding \(outPad)", attribute: "output_padding") }
        for (key, v) in [("strides", strides), ("dilations", dil), ("kernel_shape", kernel), ("output_padding", outPad),
                         ("pads", try node.ints("pads") ?? []), ("output_shape", try node.ints("output_shape") ?? [])] {
            guard v.allSatisfy({ $0 <= (1 << 16) }) else { throw node.error(.unsupported, "values \(v) beyond 65536", attribute: key) }
        }
        var pads = try node.ints("pads") ?? [0, 0, 0, 0]
        guard pads.count == 4, pads.allSatisfy({ $0 >= 0 }) else { throw node.error(.invalid, "pads \(pads)", attribute: "pads") }
        let autoPad = try node.string("auto_pad", default: "NOTSET")
        let input = [h, wd]
        var out = [0, 0]
        let outputShape = try node.ints("output_shape")
        for d in 0..<2 {
            let natural = strides[d] * (input[d] - 1) + outPad[d] + (kernel[d] - 1) * dil[d] + 1
            if let os = outputShape {
                guard os.count >= 2 else { throw node.error(.invalid, "output_shape \(os)", attribute: "output_shape") }
                let target = os[os.count - 2 + d]
                let total = natural - target
                guard total >= 0 else { throw node.error(.shape, "output_shape \(os) larger than the natural output", attribute: "output_shape") }
                if autoPad == "SAME_UPPER" { pads[d] = total / 2; pads[d + 2] = total - total / 2 } else { pads[d] = total - total / 2; pads[d + 2] = total / 2 }
                out[d] = target
            } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                out[d] = input[d] * strides[d]
                let total = natural - out[d]
                if autoPad == "SAME_UPPER" { pads[d] = total / 2; pads[d + 2] = total - total / 2 } else { pads[d] = total - total / 2; pads[d + 2] = total / 2 }
            } else if autoPad == "NOTSET" || autoPad == "VALID" {
                if autoPad == "VALID" { pads = [0, 0, 0, 0] }
                out[d] = natural - pads[d] - pads[d + 2]
            } else {
                throw node.error(.invalid, "unknown auto_pad '\(autoPad)'", attribute: "auto_pad")
            }
            guard out[d] > 0 else { throw node.error(.shape, "empty output for input \(input)") }
        }
        let g = ConvGeometry(h: h, w: wd, cin: cin, ho: out[0], wo: out[1], cout: cout, kh: kernel[0], kw: kernel[1],
                             sh: strides[0], sw: strides[1], dh: dil[0], dw: dil[1], pt: pads[0], pl: pads[1], pb: pads[2], pr: pads[3], groups: 1)
        let kk = kernel[0] * kernel[1]
        let wbuf = weights.buffer("convT:\(node.name):\(node.input(1) ?? "")") {
            // [Cin][Cout][kh][kw] → [Cin][kh][kw][Cout].
            let src = w.floats
            var o = [Float](repeating: 0, count: src.count)
            for ci in 0..<cin { for co in 0..<cout { for k in 0..<kk { o[(ci * kk + k) * cout + co] = src[(ci * cout + co) * kk + k] } } }
            return o
        }
        let bias = optionalConstant(node, 2)
        if node.input(2) != nil && bias == nil { throw node.error(.unsupported, "bias B must be a constant") }
        if let bias, bias.count != cout { throw node.error(.shape, "bias has \(bias.count) values for \(cout) output channels") }
        let bbuf = bias.map { b in weights.buffer("bias:\(node.name):\(node.input(2) ?? "")") { b.floats } }
        var outName = node.outputs[0]
        var activation = Activation.none
        if let (j, act) = try fusableActivation(after: outName) {
            activation = act; fused.insert(j); outName = graph.nodes[j].outputs[0]
        }
        _ = try Folder.volume([n, cout, out[0], out[1]], node: node)
        _ = try Folder.volume([n, h, wd, kk, cout], node: node)
        let m = n * h * wd
        let cols = kk * cout
        let rows = max(1, min(m, Planner.scratchBudget / cols))
        scratch = max(scratch, rows * cols)
        use(x.storage)
        let o = newStorage(try Folder.volume([n, cout, out[0], out[1]], node: node))
        steps.append(.convTranspose(ConvTransposeStep(input: x.storage, output: o, batch: n, g: g, weights: wbuf, bias: bbuf,
                                                      activation: activation, rowsPerChunk: rows)))
        macs &+= m &* cols &* cin
        values[outName] = PlanValue(shape: [n, cout, out[0], out[1]], layout: .nhwc, storage: o)
    }

    mutating func lowerBatchNorm(_ node: GraphNode) throws {
        guard try node.int("training_mode", default: 0) == 0 else { throw node.error(.unsupported, "training mode", attribute: "training_mode") }
        if node.outputs.count > 1, node.outputs.dropFirst().contains(where: { !$0.isEmpty && (consumers[$0] != nil || graphOutputs.contains($0)) }) {
            throw node.error(.unsupported, "running mean/var outputs are not supported")
        }
        guard let xName = node.input(0), let v0 = values[xName] else { throw node.error(.invalid, "missing input X") }
        let x = v0.shape.count == 4 ? try convert(xName, to: .nhwc, node: node) : v0
        guard x.shape.count == 4 || x.shape.count == 2 else { throw node.error(.unsupported, "input shape \(x.shape); BatchNormalization supports 2-D and 4-D inputs") }
        let c = x.shape[1]
        let (scale, shift) = try BatchNormFolding.affine(node, consts: consts, channels: c)
        let sb = FloatBuffer(scale), hb = FloatBuffer(shift)
        use(x.storage)
        let o = newStorage(x.count)
        steps.append(.affine(AffineStep(input: x.storage, output: o, rows: x.count / c, channels: c, scale: sb, shift: hb)))
        values[node.outputs[0]] = PlanValue(shape: x.shape, layout: x.layout, storage: o)
    }

    mutating func lowerActivation(_ node: GraphNode) throws {
        guard let xName = node.input(0), let x = values[xName] else { throw node.error(.invalid, "missing input X") }
        let act: Activation
        switch node.op {
        case "Relu": act = .relu
        case "Sigmoid": act = .sigmoid
        case "LeakyRelu": act = .leakyRelu(try node.float("alpha", default: 0.01))
        default:
            guard let (lo, hi) = try clipBounds(node) else { throw node.error(.unsupported, "min/max must be constants") }
            act = .clip(lo, hi)
        }
        use(x.storage)
        let o = newStorage(x.count)
        steps.append(.broadcast(BroadcastStep(op: .copyFirst, a: .storage(x.storage), b: nil, output: o, shape: [x.count],
                                              aStrides: [1], bStrides: [0], activation: act)))
        values[node.outputs[0]] = PlanValue(shape: x.shape, layout: x.layout, storage: o)
    }

    /// An operand for a broadcasting step: runtime value (in its layout) or constant (logical order).
    mutating func operand(_ name: String, node: GraphNode) throws -> (Operand, [Int], Layout) {
        if let v = values[name] { return (.storage(v.storage), v.shape, v.layout) }
        if let c = consts[name] {
            let buf = weights.buffer("const:\(name):\(c.shape)") { c.floats }
            return (.constant(buf), c.shape, .plain)
        }
        throw node.error(.invalid, "input '\(name)' is not produced by any earlier node")
    }

    mutating func lowerBinary(_ node: GraphNode) throws {
        guard let an = node.input(0), let bn = node.input(1) else { throw node.error(.invalid, "needs two inputs") }
        let (a, sa, la) = try operand(an, node: node)
        let (b, sb, lb) = try operand(bn, node: node)
        let out = try Folder.broadcast(sa, sb, node: node)
        let layout: Layout = out.count == 4 && (la == .nhwc || lb == .nhwc) && (values[an] != nil || values[bn] != nil) ? .nhwc : .plain
        // A runtime operand in the other layout is converted (rank-4 only; lower ranks are plain).
        var (a2, la2) = (a, la), (b2, lb2) = (b, lb)
        if values[an] != nil && la != layout && sa.count == 4 { a2 = .storage(try convert(an, to: layout, node: node).storage); la2 = layout }
        if values[bn] != nil && lb != layout && sb.count == 4 { b2 = .storage(try convert(bn, to: layout, node: node).storage); lb2 = layout }
        let phys = Planner.physicalOrder(out.count, layout).map { out[$0] }
        let ast = Planner.readStrides(sa, la2, into: out, outLayout: layout)
        let bst = Planner.readStrides(sb, lb2, into: out, outLayout: layout)
        let (cs, cst) = Kernels.coalesce(shape: phys, strides: [ast, bst])
        let op: BinaryOp = node.op == "Add" ? .add : node.op == "Sub" ? .sub : node.op == "Mul" ? .mul : .div
        var outName = node.outputs[0]
        var act = Activation.none
        if let (j, f) = try fusableActivation(after: outName) { act = f; fused.insert(j); outName = graph.nodes[j].outputs[0] }
        use(a2); use(b2)
        let o = newStorage(try Folder.volume(out, node: node))
        steps.append(.broadcast(BroadcastStep(op: op, a: a2, b: b2, output: o, shape: cs, aStrides: cst[0], bStrides: cst[1], activation: act)))
        values[outName] = PlanValue(shape: out, layout: layout, storage: o)
    }

    // MARK: pooling and reductions

    mutating func lowerPool(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input X") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "only 2-D pooling (4-D input) is supported; input shape \(x.shape)") }
        guard let kernel = try node.ints("kernel_shape") else { throw node.error(.invalid, "kernel_shape is required", attribute: "kernel_shape") }
        if node.op == "MaxPool" {
            guard try node.int("storage_order", default: 0) == 0 else { throw node.error(.unsupported, "column-major storage_order", attribute: "storage_order") }
            if node.outputs.count > 1, !node.outputs[1].isEmpty, consumers[node.outputs[1]] != nil || graphOutputs.contains(node.outputs[1]) {
                throw node.error(.unsupported, "the Indices output of MaxPool is not supported")
            }
        } else if let d = try node.ints("dilations"), d.contains(where: { $0 != 1 }) {
            throw node.error(.unsupported, "AveragePool dilations \(d)", attribute: "dilations")
        }
        let ceil = try node.int("ceil_mode", default: 0) != 0
        let win = try window(node, input: [x.shape[2], x.shape[3]], kernel: kernel, ceil: ceil)
        let (n, c) = (x.shape[0], x.shape[1])
        // Pads beyond the window-clipping extent matter for count_include_pad with ceil_mode; ONNX
        // counts the padded area up to input + end pad.
        let g = ConvGeometry(h: x.shape[2], w: x.shape[3], cin: c, ho: win.out[0], wo: win.out[1], cout: c, kh: kernel[0], kw: kernel[1],
                             sh: win.strides[0], sw: win.strides[1], dh: win.dilations[0], dw: win.dilations[1],
                             pt: win.begin[0], pl: win.begin[1], pb: win.end[0], pr: win.end[1], groups: 1)
        let kind: PoolStep.Kind = node.op == "MaxPool" ? .max : .average(countIncludePad: try node.int("count_include_pad", default: 0) != 0)
        use(x.storage)
        let o = newStorage(try Folder.volume([n, c, g.ho, g.wo], node: node))
        steps.append(.pool(PoolStep(kind: kind, input: x.storage, output: o, batch: n, g: g)))
        values[node.outputs[0]] = PlanValue(shape: [n, c, g.ho, g.wo], layout: .nhwc, storage: o)
    }

    mutating func lowerGlobalAverage(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input X") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "input shape \(x.shape); only 4-D inputs are supported") }
        use(x.storage)
        let o = newStorage(x.shape[0] * x.shape[1])
        steps.append(.reduce(ReduceStep(kind: .mean, input: x.storage, output: o, outer: x.shape[0], mid: x.shape[2] * x.shape[3], inner: x.shape[1])))
        values[node.outputs[0]] = PlanValue(shape: [x.shape[0], x.shape[1], 1, 1], layout: .nhwc, storage: o)
    }

    /// [outer, mid, inner] of a tensor when `axes` (logical) are one contiguous run of its physical dims.
    static func contiguousRun(_ v: PlanValue, axes: Set<Int>) -> (Int, Int, Int)? {
        let order = physicalOrder(v.shape.count, v.layout)
        let phys = order.map { v.shape[$0] }
        let positions = order.enumerated().filter { axes.contains($0.element) }.map(\.offset)
        guard let lo = positions.min(), let hi = positions.max(), hi - lo + 1 == positions.count else {
            // Axes of size 1 can be ignored.
            let real = axes.filter { v.shape[$0] != 1 }
            if real.count < axes.count { return contiguousRun(v, axes: real) }
            return nil
        }
        return (phys[..<lo].reduce(1, *), phys[lo...hi].reduce(1, *), phys[(hi + 1)...].reduce(1, *))
    }

    mutating func lowerReduce(_ node: GraphNode) throws {
        guard let xName = node.input(0), var x = values[xName] else { throw node.error(.invalid, "missing input X") }
        let r = x.shape.count
        var axes: [Int]?
        let axesFromInput = node.op == "ReduceSum" || graph.opset >= 18
        if axesFromInput {
            if let name = node.input(1) {
                guard let c = consts[name] else { throw node.error(.unsupported, "axes must be a constant") }
                axes = c.ints.map { Int($0) }
            }
        } else {
            axes = try node.ints("axes")
        }
        let reduced: [Int]
        if let axes, !axes.isEmpty {
            reduced = axes
        } else {
            if try node.int("noop_with_empty_axes", default: 0) != 0 { values[node.outputs[0]] = x; return }
            reduced = Array(0..<r)
        }
        let set = Set(try reduced.map { try Folder.normAxis($0, rank: r, node: node, attribute: "axes") })
        let keep = try node.int("keepdims", default: 1) != 0
        var outShape = x.shape
        for a in set { outShape[a] = 1 }
        var layout = x.layout
        if !keep {
            outShape = x.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
            if x.layout == .nhwc && r == 4 {
                let remaining = Planner.physicalOrder(4, .nhwc).filter { !set.contains($0) && x.shape[$0] != 1 }
                if remaining != remaining.sorted() { x = try convert(xName, to: .plain, node: node) }
            }
            layout = .plain
        }
        guard let (outer, mid, inner) = Planner.contiguousRun(x, axes: set) else {
            throw node.error(.unsupported, "reduction over axes \(reduced.sorted()) of shape \(x.shape) (non-adjacent axes)", attribute: "axes")
        }
        let kind: ReduceStep.Kind
        switch node.op {
        case "ReduceMean": kind = .mean
        case "ReduceSum": kind = .sum
        case "ReduceMax": kind = .max
        case "ReduceMin": kind = .min
        default: kind = .l2
        }
        use(x.storage)
        let o = newStorage(outer * inner)
        steps.append(.reduce(ReduceStep(kind: kind, input: x.storage, output: o, outer: outer, mid: mid, inner: inner)))
        values[node.outputs[0]] = PlanValue(shape: outShape, layout: outShape.count == 4 ? layout : .plain, storage: o)
    }

    mutating func lowerLpNorm(_ node: GraphNode) throws {
        guard let xName = node.input(0), let x = values[xName] else { throw node.error(.invalid, "missing input X") }
        let p = try node.int("p", default: 2)
        guard p == 1 || p == 2 else { throw node.error(.unsupported, "p=\(p); only 1 and 2", attribute: "p") }
        let axis = try Folder.normAxis(try node.int("axis", default: -1), rank: x.shape.count, node: node)
        guard let (outer, mid, inner) = Planner.contiguousRun(x, axes: [axis]) else { throw node.error(.unsupported, "axis \(axis)", attribute: "axis") }
        use(x.storage)
        let o = newStorage(x.count)
        steps.append(.reduce(ReduceStep(kind: p == 2 ? .normalizeL2 : .normalizeL1, input: x.storage, output: o, outer: outer, mid: mid, inner: inner)))
        values[node.outputs[0]] = PlanValue(shape: x.shape, layout: x.layout, storage: o)
    }

    // MARK: shape-only operators (aliases of the input's storage)

    mutating func lowerReshape(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input") }
        let x = try convert(xName, to: .plain, node: node)
        var shape: [Int]
        switch node.op {
        case "Flatten":
            let axis = try Folder.normAxis(try node.int("axis", default: 1), rank: x.shape.count + 1, node: node)
            shape = [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)]
        case "Reshape":
            guard let sName = node.input(1), let s = consts[sName] else {
                throw node.error(.shape, "target shape is computed at run time and could not be resolved at load")
            }
            shape = try Folder.resolveReshape(node, from: x.shape, to: s.ints.map { Int($0) }, allowZero: try node.int("allowzero", default: 0) != 0)
        default:
            var axes: [Int] = []
            if graph.opset >= 13 {
                if let name = node.input(1) {
                    guard let c = consts[name] else { throw node.error(.unsupported, "axes must be a constant") }
                    axes = c.ints.map { Int($0) }
                }
            } else { axes = try node.ints("axes") ?? [] }
            shape = try Folder.reshapeForSqueeze(node, x.shape, axes: axes)
        }
        values[node.outputs[0]] = PlanValue(shape: shape, layout: .plain, storage: x.storage)
    }

    // MARK: dense layers

    mutating func lowerGemm(_ node: GraphNode) throws {
        guard let aName = node.input(0), let bName = node.input(1) else { throw node.error(.invalid, "needs inputs A and B") }
        let transA = try node.int("transA", default: 0) != 0, transB = try node.int("transB", default: 0) != 0
        let alpha = try node.float("alpha", default: 1), beta = try node.float("beta", default: 1)
        let a = try convert(aName, to: .plain, node: node)
        guard a.shape.count == 2 else { throw node.error(.shape, "A must be 2-D, got \(a.shape)") }
        let (bOp, bShape, _) = try operand(bName, node: node)
        guard bShape.count == 2 else { throw node.error(.shape, "B must be 2-D, got \(bShape)") }
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? bShape[1] : bShape[0], n = transB ? bShape[0] : bShape[1]
        guard k == kb else { throw node.error(.shape, "A \(a.shape) and B \(bShape) disagree (transA=\(transA), transB=\(transB))") }
        let o = newStorage(try Folder.volume([m, n], node: node))
        var hasBias = false
        if let cName = node.input(2), beta != 0 {
            let (cOp, cShape, cLayout) = try operand(cName, node: node)
            let outShape = [m, n]
            _ = try Folder.broadcast(cShape, outShape, node: node)
            guard cShape.count <= 2 else { throw node.error(.shape, "C \(cShape) does not broadcast to [\(m), \(n)]") }
            let st = Planner.readStrides(cShape, cLayout, into: outShape, outLayout: .plain)
            let (cs, cst) = Kernels.coalesce(shape: outShape, strides: [st])
            use(cOp)
            steps.append(.broadcast(BroadcastStep(op: .copyFirst, a: cOp, b: nil, output: o, shape: cs, aStrides: cst[0],
                                                  bStrides: cst[0].map { _ in 0 }, activation: .none)))
            hasBias = true
        }
        use(a.storage); use(bOp); use(o)
        steps.append(.gemm(GemmStep(a: .storage(a.storage), b: bOp, output: o, m: m, n: n, k: k, transA: transA, transB: transB,
                                    alpha: alpha, beta: beta, hasBias: hasBias)))
        macs &+= m &* n &* k
        values[node.outputs[0]] = PlanValue(shape: [m, n], layout: .plain, storage: o)
    }

    mutating func lowerMatMul(_ node: GraphNode) throws {
        guard let aName = node.input(0), let bName = node.input(1) else { throw node.error(.invalid, "needs inputs A and B") }
        let a = try convert(aName, to: .plain, node: node)
        guard a.shape.count >= 2 else { throw node.error(.unsupported, "A of shape \(a.shape); needs rank ≥ 2") }
        let (bOp, bShape, _) = try operand(bName, node: node)
        if case .storage = bOp, let bv = values[bName], bv.layout != .plain, bv.shape.count == 4 {
            throw node.error(.unsupported, "B of shape \(bShape) in channel-last layout")
        }
        guard bShape.count == 2 else { throw node.error(.unsupported, "B of shape \(bShape); only a 2-D B is supported") }
        let k = a.shape[a.shape.count - 1]
        guard bShape[0] == k else { throw node.error(.shape, "A \(a.shape) and B \(bShape) disagree") }
        let m = a.count / k, n = bShape[1]
        use(a.storage); use(bOp)
        let o = newStorage(try Folder.volume([m, n], node: node))
        steps.append(.gemm(GemmStep(a: .storage(a.storage), b: bOp, output: o, m: m, n: n, k: k, transA: false, transB: false,
                                    alpha: 1, beta: 0, hasBias: false)))
        macs &+= m &* n &* k
        values[node.outputs[0]] = PlanValue(shape: Array(a.shape.dropLast()) + [n], layout: .plain, storage: o)
    }

    // MARK: data movement

    mutating func lowerConcat(_ node: GraphNode) throws {
        let names = node.inputs.filter { !$0.isEmpty }
        guard let first = names.first else { throw node.error(.invalid, "no inputs") }
        let shapes = names.map { values[$0]?.shape ?? consts[$0]?.shape ?? [] }
        let rank = shapes[0].count
        let axis = try Folder.normAxis(try node.int("axis", default: 0), rank: rank, node: node)
        var outShape = shapes[0]
        outShape[axis] = 0
        for s in shapes {
            guard s.count == rank, s.enumerated().allSatisfy({ $0.offset == axis || $0.element == shapes[0][$0.offset] }) else {
                throw node.error(.shape, "cannot concatenate \(shapes) on axis \(axis)")
            }
            outShape[axis] += s[axis]
        }
        _ = first
        let layout: Layout = rank == 4 && names.contains(where: { values[$0]?.layout == .nhwc }) ? .nhwc : .plain
        let order = Planner.physicalOrder(rank, layout)
        guard let p = order.firstIndex(of: axis) else { throw node.error(.invalid, "axis \(axis)") }
        let outPhys = order.map { outShape[$0] }
        let outer = outPhys[..<p].reduce(1, *)
        var parts: [(Operand, Int)] = []
        for (name, shape) in zip(names, shapes) {
            let phys = order.map { shape[$0] }
            let len = phys[p...].reduce(1, *)
            if values[name] != nil {
                let v = try convert(name, to: layout, node: node)
                use(v.storage)
                parts.append((.storage(v.storage), len))
            } else if let c = consts[name] {
                // Constants are stored in logical order; permute once into this layout.
                let buf = weights.buffer("concat:\(name):\(layout)") {
                    let src = c.floats
                    let st = Planner.readStrides(c.shape, .plain, into: c.shape, outLayout: layout)
                    var out = [Float](repeating: 0, count: src.count)
                    for flat in 0..<src.count {
                        var rem = flat, off = 0
                        for d in stride(from: rank - 1, through: 0, by: -1) { off += (rem % phys[d]) * st[d]; rem /= phys[d] }
                        out[flat] = src[off]
                    }
                    return out
                }
                parts.append((.constant(buf), len))
            }
        }
        let o = newStorage(try Folder.volume(outShape, node: node))
        steps.append(.concat(ConcatStep(inputs: parts, output: o, outer: outer)))
        values[node.outputs[0]] = PlanValue(shape: outShape, layout: layout, storage: o)
    }

    mutating func lowerPad(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "input shape \(x.shape); Pad supports 4-D inputs") }
        let modeName = try node.string("mode", default: "constant")
        var pads: [Int]
        let padsConst = try constant(node.input(1), node: node, what: "pads")
        pads = padsConst.ints.map { Int($0) }
        var value: Float = 0
        if let v = optionalConstant(node, 2) { value = v.floats.first ?? 0 } else if node.input(2) != nil {
            throw node.error(.unsupported, "constant_value must be a constant")
        }
        if let axesConst = optionalConstant(node, 3) {
            let axes = try axesConst.ints.map { try Folder.normAxis(Int($0), rank: 4, node: node, attribute: "axes") }
            guard pads.count == 2 * axes.count else { throw node.error(.invalid, "pads \(pads) for axes \(axes)") }
            var full = [Int](repeating: 0, count: 8)
            for (i, a) in axes.enumerated() { full[a] = pads[i]; full[a + 4] = pads[i + axes.count] }
            pads = full
        }
        guard pads.count == 8 else { throw node.error(.invalid, "pads \(pads) for a 4-D input") }
        guard pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
            throw node.error(.unsupported, "padding of batch or channel dims (pads \(pads))")
        }
        guard pads.allSatisfy({ $0 >= 0 && $0 <= (1 << 16) }) else { throw node.error(.unsupported, "pads \(pads) (negative or beyond 65536)") }
        let mode: PadStep.Mode
        switch modeName {
        case "constant": mode = .constant(value)
        case "reflect":
            guard pads[2] < x.shape[2], pads[6] < x.shape[2], pads[3] < x.shape[3], pads[7] < x.shape[3] else {
                throw node.error(.shape, "reflect pads \(pads) must be smaller than the input \(x.shape)")
            }
            mode = .reflect
        case "edge": mode = .edge
        default: throw node.error(.unsupported, "mode '\(modeName)'", attribute: "mode")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = h + pads[2] + pads[6], wo = w + pads[3] + pads[7]
        use(x.storage)
        let o = newStorage(try Folder.volume([n, c, ho, wo], node: node))
        steps.append(.pad(PadStep(mode: mode, input: x.storage, output: o, batch: n, h: h, w: w, c: c, ho: ho, wo: wo, pt: pads[2], pl: pads[3])))
        values[node.outputs[0]] = PlanValue(shape: [n, c, ho, wo], layout: .nhwc, storage: o)
    }

    mutating func lowerResize(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input") }
        let x = try convert(xName, to: .nhwc, node: node)
        guard x.shape.count == 4 else { throw node.error(.unsupported, "input shape \(x.shape); Resize supports 4-D inputs") }
        let mode = try node.string("mode", default: "nearest")
        guard mode == "nearest" else { throw node.error(.unsupported, "mode '\(mode)'; only nearest", attribute: "mode") }
        var ctm = "asymmetric", nearest = "floor"
        var scales: [Float]?
        var sizes: [Int]?
        if node.op == "Upsample" {
            scales = try constant(node.input(1), node: node, what: "scales").floats
        } else {
            ctm = try node.string("coordinate_transformation_mode", default: "half_pixel")
            nearest = try node.string("nearest_mode", default: "round_prefer_floor")
            if try node.int("antialias", default: 0) != 0 { throw node.error(.unsupported, "antialias", attribute: "antialias") }
            if node.attributes["axes"] != nil { throw node.error(.unsupported, "axes subset", attribute: "axes") }
            let policy = try node.string("keep_aspect_ratio_policy", default: "stretch")
            guard policy == "stretch" else { throw node.error(.unsupported, "keep_aspect_ratio_policy '\(policy)'", attribute: "keep_aspect_ratio_policy") }
            if let s = optionalConstant(node, 2), s.count > 0 { scales = s.floats }
            if let s = optionalConstant(node, 3), s.count > 0 { sizes = s.ints.map { Int($0) } }
            if (node.input(2) != nil && consts[node.input(2)!] == nil) || (node.input(3) != nil && consts[node.input(3)!] == nil) {
                throw node.error(.shape, "scales/sizes are computed at run time and could not be resolved at load")
            }
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var outHW = [0, 0], scaleHW: [Float] = [1, 1]
        if let sizes {
            guard sizes.count == 4, sizes[0] == n, sizes[1] == c, sizes[2] > 0, sizes[3] > 0 else {
                throw node.error(.unsupported, "sizes \(sizes) for input \(x.shape); only spatial resizing (batch and channels kept)")
            }
            outHW = [sizes[2], sizes[3]]
            scaleHW = [Float(sizes[2]) / Float(h), Float(sizes[3]) / Float(w)]
        } else if let scales {
            guard scales.count == 4, scales[0] == 1, scales[1] == 1, scales[2] > 0, scales[3] > 0 else {
                throw node.error(.unsupported, "scales \(scales); only spatial scaling")
            }
            scaleHW = [scales[2], scales[3]]
            outHW = [Int((Float(h) * scales[2]).rounded(.down)), Int((Float(w) * scales[3]).rounded(.down))]
        } else {
            throw node.error(.invalid, "needs scales or sizes")
        }
        guard outHW.allSatisfy({ $0 > 0 && $0 < (1 << 16) }) else { throw node.error(.shape, "output size \(outHW)") }
        func map(_ len: Int, _ inLen: Int, _ scale: Float) throws -> [Int] {
            try (0..<len).map { o -> Int in
                let xo = Float(o)
                var src: Float
                switch ctm {
                case "half_pixel": src = (xo + 0.5) / scale - 0.5
                case "pytorch_half_pixel": src = len > 1 ? (xo + 0.5) / scale - 0.5 : 0
                case "align_corners": src = len == 1 ? 0 : xo * Float(inLen - 1) / Float(len - 1)
                case "asymmetric": src = xo / scale
                case "tf_half_pixel_for_nearest": src = (xo + 0.5) / scale
                default: throw node.error(.unsupported, "coordinate_transformation_mode '\(ctm)'", attribute: "coordinate_transformation_mode")
                }
                var i: Int
                switch nearest {
                case "round_prefer_floor": i = src - src.rounded(.down) == 0.5 ? Int(src.rounded(.down)) : Int(src.rounded())
                case "round_prefer_ceil": i = Int(src.rounded())
                case "floor": i = Int(src.rounded(.down))
                case "ceil": i = Int(src.rounded(.up))
                default: throw node.error(.unsupported, "nearest_mode '\(nearest)'", attribute: "nearest_mode")
                }
                return min(max(i, 0), inLen - 1)
            }
        }
        let rows = try map(outHW[0], h, scaleHW[0]), cols = try map(outHW[1], w, scaleHW[1])
        use(x.storage)
        let o = newStorage(try Folder.volume([n, c, outHW[0], outHW[1]], node: node))
        steps.append(.resize(ResizeStep(input: x.storage, output: o, batch: n, h: h, w: w, c: c, rows: rows, cols: cols)))
        values[node.outputs[0]] = PlanValue(shape: [n, c, outHW[0], outHW[1]], layout: .nhwc, storage: o)
    }

    mutating func lowerExpandTranspose(_ node: GraphNode) throws {
        guard let xName = node.input(0) else { throw node.error(.invalid, "missing input") }
        let x = try convert(xName, to: .plain, node: node)
        var outShape: [Int], st: [Int]
        if node.op == "Expand" {
            let s = try constant(node.input(1), node: node, what: "shape").ints.map { Int($0) }
            outShape = try Folder.broadcast(x.shape, s, node: node)
            st = Planner.readStrides(x.shape, .plain, into: outShape, outLayout: .plain)
        } else {
            let r = x.shape.count
            let perm = try node.ints("perm") ?? Array((0..<r).reversed())
            guard perm.count == r, Set(perm) == Set(0..<r) else { throw node.error(.invalid, "perm \(perm) for rank \(r)", attribute: "perm") }
            outShape = perm.map { x.shape[$0] }
            let own = Planner.logicalStrides(x.shape, .plain)
            st = perm.map { own[$0] }
        }
        let (cs, cst) = Kernels.coalesce(shape: outShape, strides: [st])
        use(x.storage)
        let o = newStorage(try Folder.volume(outShape, node: node))
        steps.append(.broadcast(BroadcastStep(op: .copyFirst, a: .storage(x.storage), b: nil, output: o, shape: cs, aStrides: cst[0],
                                              bStrides: cst[0].map { _ in 0 }, activation: .none)))
        values[node.outputs[0]] = PlanValue(shape: outShape, layout: .plain, storage: o)
    }
}
