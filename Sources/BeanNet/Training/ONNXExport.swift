import Foundation
import SwiftProtobuf

/// Writes a trained network as an ONNX model (opset 17) in inference form: batch normalisation
/// with its running statistics (BatchNormalization nodes, which the runtime folds into the
/// preceding convolution), input `[N, C, H, W]` with a dynamic batch dimension.
public enum ONNXExport {
    public static let opset: Int64 = 17

    /// `inputShape` is the per-sample [C, H, W] (or [D] for a vector network); it must be one the
    /// network accepts (the export runs one inference forward on it to declare the output shape).
    public static func encoder(_ net: Layer, inputShape: [Int], producer: String = "beand-train",
                               inputName: String = "input", outputName: String = "embedding") throws -> Data {
        // The declared output shape comes from one inference forward of a zero sample (no layer
        // caches or updates statistics when `training` is false); it also tells shape-dependent
        // layers (MultiScalePooling) their feature-map sizes before they are emitted.
        let probe = net.forward(Tensor(zeros: [1] + inputShape), training: false)
        var b = GraphBuilder()
        let out = try b.emit(net, input: inputName, path: "")
        // The graph output gets its declared name through a final Identity.
        b.node("Identity", [out], output: outputName, name: "output")

        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.producerName = producer
        var op = Onnx_OperatorSetIdProto(); op.domain = ""; op.version = opset
        m.opsetImport = [op]
        var g = Onnx_GraphProto()
        g.name = "encoder"
        g.node = b.nodes
        g.initializer = b.initializers
        g.input = [valueInfo(inputName, dims: [nil] + inputShape.map { Int64($0) })]
        g.output = [valueInfo(outputName, dims: [nil] + probe.shape.dropFirst().map { Int64($0) })]
        m.graph = g
        do { return try m.serializedData() } catch {
            throw ModelError(.invalid, "ONNX export: cannot serialise the model: \(error)")
        }
    }

    /// A float tensor's declaration; nil dimensions are the symbolic batch "N".
    static func valueInfo(_ name: String, dims: [Int64?]) -> Onnx_ValueInfoProto {
        valueInfo(name, shape: dims.map { $0.map(fixedDimension) ?? symbolicDimension("N") })
    }

    static func valueInfo(_ name: String, shape dims: [Onnx_TensorShapeProto.Dimension]) -> Onnx_ValueInfoProto {
        var vi = Onnx_ValueInfoProto()
        vi.name = name
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims
        tt.shape = shape
        vi.type.tensorType = tt
        return vi
    }

    static func fixedDimension(_ value: Int64) -> Onnx_TensorShapeProto.Dimension {
        var dimension = Onnx_TensorShapeProto.Dimension()
        dimension.dimValue = value
        return dimension
    }

    static func symbolicDimension(_ name: String) -> Onnx_TensorShapeProto.Dimension {
        var dimension = Onnx_TensorShapeProto.Dimension()
        dimension.dimParam = name
        return dimension
    }

    struct GraphBuilder {
        var nodes: [Onnx_NodeProto] = []
        var initializers: [Onnx_TensorProto] = []
        var counter = 0
        /// Output of each tapped trunk layer emitted by a MultiScalePooling (−1: its input), for
        /// the patch-novelty nodes that read the same maps.
        var tapOutputs: [Int: String] = [:]

        mutating func fresh(_ base: String) -> String { counter += 1; return "\(base)_\(counter)" }

        mutating func floats(_ name: String, _ values: [Float], _ dims: [Int]) -> String {
            var t = Onnx_TensorProto()
            t.name = name
            t.dims = dims.map { Int64($0) }
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            t.rawData = values.withUnsafeBytes { Data($0) }
            initializers.append(t)
            return name
        }

        mutating func ints(_ name: String, _ values: [Int64]) -> String {
            var t = Onnx_TensorProto()
            t.name = name
            t.dims = [Int64(values.count)]
            t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            t.int64Data = values
            initializers.append(t)
            return name
        }

        @discardableResult
        mutating func node(_ op: String, _ inputs: [String], output: String? = nil, name: String,
                           attrs: [Onnx_AttributeProto] = []) -> String {
            var n = Onnx_NodeProto()
            n.opType = op
            n.name = name
            n.input = inputs
            let out = output ?? fresh(name.isEmpty ? op.lowercased() : name)
            n.output = [out]
            n.attribute = attrs
            nodes.append(n)
            return out
        }

        static func attr(_ name: String, ints: [Int]) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .ints; a.ints = ints.map { Int64($0) }; return a
        }
        static func attr(_ name: String, int: Int) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = Int64(int); return a
        }
        static func attr(_ name: String, float: Float) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .float; a.f = float; return a
        }
        static func attr(_ name: String, string: String) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto(); a.name = name; a.type = .string; a.s = Data(string.utf8); return a
        }

        /// Appends the nodes of `layer` reading `input`; returns the output value's name.
        mutating func emit(_ layer: Layer, input: String, path: String) throws -> String {
            let p = path.isEmpty ? "" : path + "."
            switch layer {
            case let s as Sequential:
                var x = input
                for (i, l) in s.layers.enumerated() { x = try emit(l, input: x, path: "\(p)\(i)") }
                return x
            case let r as ResidualBlock:
                var h = try emit(r.conv1, input: input, path: p + "conv1")
                h = try emit(r.bn1, input: h, path: p + "bn1")
                h = node("Relu", [h], name: p + "relu1")
                h = try emit(r.conv2, input: h, path: p + "conv2")
                h = try emit(r.bn2, input: h, path: p + "bn2")
                var shortcut = input
                if let proj = r.projection {
                    shortcut = try emit(proj.conv, input: input, path: p + "proj_conv")
                    shortcut = try emit(proj.bn, input: shortcut, path: p + "proj_bn")
                }
                let sum = node("Add", [h, shortcut], name: p + "add")
                return node("Relu", [sum], name: p + "relu2")
            case let m as MultiScalePooling:
                // Per tap: GlobalAveragePool for the means; ReduceL2 of the centred map over H, W,
                // times 1/sqrt(H·W), for the standard deviations. One Concat of all of them.
                guard m.tapPlanes.count == m.taps.count else {
                    throw ModelError(.invalid, "ONNX export: layer '\(path)' (MultiScalePooling) has not run a forward yet")
                }
                var x = input
                var pooled: [String] = []
                func statistics(of x: String, tap t: Int) {
                    let q = "\(p)tap\(t)."
                    let mean = node("GlobalAveragePool", [x], name: q + "mean")
                    pooled.append(node("Flatten", [mean], name: q + "mean_flat", attrs: [Self.attr("axis", int: 1)]))
                    let centred = node("Sub", [x, mean], name: q + "centred")
                    let norm = node("ReduceL2", [centred], name: q + "l2", attrs: [Self.attr("axes", ints: [2, 3]), Self.attr("keepdims", int: 0)])
                    let scale = floats(q + "inv_sqrt_plane", [1 / Float(m.tapPlanes[t]).squareRoot()], [1])
                    pooled.append(node("Mul", [norm, scale], name: q + "deviation"))
                }
                if m.taps.first == MultiScalePooling.inputTap { statistics(of: input, tap: 0); tapOutputs[MultiScalePooling.inputTap] = input }
                for (i, layer) in m.trunk.layers.enumerated() where i <= (m.taps.last ?? -1) {
                    x = try emit(layer, input: x, path: "\(p)\(i)")
                    if let t = m.taps.firstIndex(of: i) { statistics(of: x, tap: t); tapOutputs[i] = x }
                }
                return node("Concat", pooled, name: p + "concat", attrs: [Self.attr("axis", int: 1)])
            case let e as NoveltyEncoder:
                let pooled = try emit(e.pooling, input: input, path: p + "pooling")
                let embedding = try emit(e.head, input: pooled, path: p + "head")
                let coordinate = try emitNovelty(e.novelty, path: p + "novelty")
                let joined = node("Concat", [embedding, coordinate], name: p + "concat", attrs: [Self.attr("axis", int: 1)])
                return node("LpNormalization", [joined], name: p + "l2norm", attrs: [Self.attr("axis", int: 1), Self.attr("p", int: 2)])
            case let c as Conv2d:
                var inputs = [input, floats(p + "weight", c.weight.value, c.weight.shape)]
                if let bias = c.bias { inputs.append(floats(p + "bias", bias.value, bias.shape)) }
                return node("Conv", inputs, name: p + "conv", attrs: [
                    Self.attr("kernel_shape", ints: [c.kernel, c.kernel]),
                    Self.attr("strides", ints: [c.stride, c.stride]),
                    Self.attr("pads", ints: [c.padding, c.padding, c.padding, c.padding]),
                ])
            case let bn as BatchNorm2d:
                let inputs = [input, floats(p + "gamma", bn.gamma.value, [bn.channels]),
                              floats(p + "beta", bn.beta.value, [bn.channels]),
                              floats(p + "running_mean", bn.runningMean.value, [bn.channels]),
                              floats(p + "running_var", bn.runningVar.value, [bn.channels])]
                return node("BatchNormalization", inputs, name: p + "bn", attrs: [Self.attr("epsilon", float: bn.epsilon)])
            case let l as Linear:
                let bias = l.bias?.value ?? [Float](repeating: 0, count: l.outFeatures)
                return node("Gemm", [input, floats(p + "weight", l.weight.value, l.weight.shape), floats(p + "bias", bias, [l.outFeatures])],
                            name: p + "gemm", attrs: [Self.attr("transB", int: 1)])
            case is ReLU:
                return node("Relu", [input], name: p + "relu")
            case let l as LeakyReLU:
                return node("LeakyRelu", [input], name: p + "leaky_relu", attrs: [Self.attr("alpha", float: l.slope)])
            case is Sigmoid:
                return node("Sigmoid", [input], name: p + "sigmoid")
            case let m as MaxPool2d:
                return node("MaxPool", [input], name: p + "maxpool", attrs: [
                    Self.attr("kernel_shape", ints: [m.kernel, m.kernel]),
                    Self.attr("strides", ints: [m.stride, m.stride]),
                    Self.attr("pads", ints: [m.padding, m.padding, m.padding, m.padding]),
                ])
            case let a as AvgPool2d:
                return node("AveragePool", [input], name: p + "avgpool", attrs: [
                    Self.attr("kernel_shape", ints: [a.kernel, a.kernel]),
                    Self.attr("strides", ints: [a.stride, a.stride]),
                ])
            case is GlobalAvgPool:
                return node("GlobalAveragePool", [input], name: p + "gap")
            case is Flatten:
                return node("Flatten", [input], name: p + "flatten", attrs: [Self.attr("axis", int: 1)])
            case let r as Reshape:
                return node("Reshape", [input, ints(p + "shape", [-1] + r.sampleShape.map { Int64($0) })], name: p + "reshape")
            case is L2Normalize:
                return node("LpNormalization", [input], name: p + "l2norm", attrs: [Self.attr("axis", int: 1), Self.attr("p", int: 2)])
            case is Upsample2x:
                return node("Resize", [input, "", floats(p + "scales", [1, 1, 2, 2], [4])], name: p + "upsample", attrs: [
                    Self.attr("mode", string: "nearest"),
                    Self.attr("coordinate_transformation_mode", string: "asymmetric"),
                    Self.attr("nearest_mode", string: "floor"),
                ])
            default:
                throw ModelError(.unsupported, "ONNX export: layer '\(path)' of type \(type(of: layer)) has no ONNX form")
            }
        }

        /// The novelty coordinate from the tap maps a MultiScalePooling emitted: [N, 1].
        /// Descriptors p (pooled, 3×3-averaged, concatenated; scaled by s per channel) are never
        /// formed: 2 p·b_k − ‖b_k‖² is a 1×1 convolution of the unscaled map with weights 2 s·b_k
        /// and bias −‖b_k‖², ‖p‖² one of its square with weights s², then ReduceMax over the bank
        /// (channels) and over the positions, and a 1×1 Gemm for the standardisation and weight.
        mutating func emitNovelty(_ n: PatchNovelty, path: String) throws -> String {
            let q = path + "."
            var blocks: [String] = []
            for (t, tap) in n.taps.enumerated() {
                guard var x = tapOutputs[tap] else {
                    throw ModelError(.invalid, "ONNX export: patch-novelty tap \(tap) is not a tap of the pooling emitted before it")
                }
                if n.factors[t] > 1 {
                    x = node("AveragePool", [x], name: q + "grid\(t)", attrs: [
                        Self.attr("kernel_shape", ints: [n.factors[t], n.factors[t]]), Self.attr("strides", ints: [n.factors[t], n.factors[t]])])
                }
                blocks.append(node("AveragePool", [x], name: q + "smooth\(t)", attrs: [
                    Self.attr("kernel_shape", ints: [3, 3]), Self.attr("strides", ints: [1, 1]), Self.attr("pads", ints: [1, 1, 1, 1])]))
            }
            let patches = blocks.count == 1 ? blocks[0] : node("Concat", blocks, name: q + "patches", attrs: [Self.attr("axis", int: 1)])
            let (c, k) = (n.channels, n.bankCount)
            let scale = n.channelScales
            var weights = [Float](repeating: 0, count: k * c), bias = [Float](repeating: 0, count: k)
            for j in 0..<k {
                var norm: Float = 0
                for ch in 0..<c {
                    let b = n.bank[j * c + ch]
                    weights[j * c + ch] = 2 * b * scale[ch]
                    norm += b * b
                }
                bias[j] = -norm
            }
            let oneByOne = [Self.attr("kernel_shape", ints: [1, 1])]
            let dots = node("Conv", [patches, floats(q + "bank_weight", weights, [k, c, 1, 1]), floats(q + "bank_bias", bias, [k])],
                            name: q + "bank", attrs: oneByOne)
            let best = node("ReduceMax", [dots], name: q + "best", attrs: [Self.attr("axes", ints: [1]), Self.attr("keepdims", int: 1)])
            let squares = node("Mul", [patches, patches], name: q + "squares")
            let norms = node("Conv", [squares, floats(q + "norm_weight", scale.map { $0 * $0 }, [1, c, 1, 1])], name: q + "norm", attrs: oneByOne)
            let distances = node("Sub", [norms, best], name: q + "distance")
            let novelty = node("ReduceMax", [distances], name: q + "novelty", attrs: [Self.attr("axes", ints: [2, 3]), Self.attr("keepdims", int: 0)])
            let gain = n.weight / n.deviation
            return node("Gemm", [novelty, floats(q + "gain", [gain], [1, 1]), floats(q + "shift", [-n.mean * gain], [1])], name: q + "standardise")
        }
    }
}
