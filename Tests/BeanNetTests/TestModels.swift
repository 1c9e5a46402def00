import Foundation
@testable import BeanNet

/// Builds small ONNX models in Swift (through the generated protobuf types) for unit tests.
struct ModelBuilder {
    var nodes: [Onnx_NodeProto] = []
    var initializers: [Onnx_TensorProto] = []
    var opset: Int64 = 17
    var rng = TestRandom(seed: 7)
    private var counter = 0

    mutating func fresh(_ p: String) -> String { counter += 1; return "\(p)_\(counter)" }

    mutating func constant(_ values: [Float], _ dims: [Int], raw: Bool = true) -> String {
        let name = fresh("c")
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map { Int64($0) }
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        if raw { t.rawData = values.withUnsafeBytes { Data($0) } } else { t.floatData = values }
        initializers.append(t)
        return name
    }

    mutating func ints(_ values: [Int64]) -> String {
        let name = fresh("i")
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = [Int64(values.count)]
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = values
        initializers.append(t)
        return name
    }

    mutating func random(_ dims: [Int], scale: Float = 0.5) -> (String, [Float]) {
        let v = (0..<dims.reduce(1, *)).map { _ in rng.normal() * scale }
        return (constant(v, dims), v)
    }

    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], attrs: [Onnx_AttributeProto] = [], outputs: Int = 1) -> String {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = fresh("n_\(op)")
        n.input = inputs
        n.output = (0..<outputs).map { _ in fresh(op.lowercased()) }
        n.attribute = attrs
        nodes.append(n)
        return n.output[0]
    }

    static func attr(_ name: String, ints: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .ints; a.ints = ints; return a
    }
    static func attr(_ name: String, int: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = int; return a
    }
    static func attr(_ name: String, float: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .float; a.f = float; return a
    }
    static func attr(_ name: String, string: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .string; a.s = Data(string.utf8); return a
    }

    func model(input: String = "input", dims: [Int64?], output: String) -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var op = Onnx_OperatorSetIdProto(); op.domain = ""; op.version = opset
        m.opsetImport = [op]
        var g = Onnx_GraphProto()
        g.name = "test"
        g.node = nodes
        g.initializer = initializers
        // The exporter's own value-info builder: a float tensor, `nil` dims symbolic.
        g.input = [ONNXExport.valueInfo(input, dims: dims)]
        var out = Onnx_ValueInfoProto()
        out.name = output
        g.output = [out]
        m.graph = g
        return m
    }
}

struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u = max(unit(), 1e-7), v = unit()
        return (-2 * logf(u)).squareRoot() * cosf(2 * .pi * v)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A small CNN (Conv+BN+Relu, MaxPool, 1×1 Conv with residual-free Add of a constant, GAP, Gemm)
/// plus an independent naive NCHW implementation of the same network.
struct SmallCNN {
    var proto: Onnx_ModelProto
    var w1: [Float], b1: [Float], gamma: [Float], beta: [Float], mean: [Float], variance: [Float]
    var w2: [Float], fcW: [Float], fcB: [Float]

    init(seed: UInt64 = 7, dynamicBatch: Bool = true) {
        var b = ModelBuilder()
        b.rng = TestRandom(seed: seed)
        let (w1n, w1) = b.random([4, 3, 3, 3])
        let (b1n, b1) = b.random([4], scale: 0.1)
        let gamma = (0..<4).map { _ in 0.5 + b.rng.unit() }
        let beta = (0..<4).map { _ in b.rng.normal() * 0.1 }
        let mean = (0..<4).map { _ in b.rng.normal() * 0.1 }
        let variance = (0..<4).map { _ in 0.5 + b.rng.unit() }
        let names = [b.constant(gamma, [4]), b.constant(beta, [4]), b.constant(mean, [4]), b.constant(variance, [4], raw: false)]
        var y = b.node("Conv", ["input", w1n, b1n], attrs: [ModelBuilder.attr("kernel_shape", ints: [3, 3]), ModelBuilder.attr("pads", ints: [1, 1, 1, 1])])
        y = b.node("BatchNormalization", [y] + names, attrs: [ModelBuilder.attr("epsilon", float: 1e-5)])
        y = b.node("Relu", [y])
        y = b.node("MaxPool", [y], attrs: [ModelBuilder.attr("kernel_shape", ints: [2, 2]), ModelBuilder.attr("strides", ints: [2, 2])])
        let (w2n, w2) = b.random([6, 4, 1, 1])
        y = b.node("Conv", [y, w2n])
        y = b.node("GlobalAveragePool", [y])
        y = b.node("Flatten", [y])
        let (fwn, fcW) = b.random([5, 6])
        let (fbn, fcB) = b.random([5], scale: 0.1)
        y = b.node("Gemm", [y, fwn, fbn], attrs: [ModelBuilder.attr("transB", int: 1)])
        proto = b.model(dims: [dynamicBatch ? nil : 1, 3, 8, 8], output: y)
        (self.w1, self.b1, self.gamma, self.beta, self.mean, self.variance) = (w1, b1, gamma, beta, mean, variance)
        (self.w2, self.fcW, self.fcB) = (w2, fcW, fcB)
    }

    var data: Data { (try? proto.serializedData()) ?? Data() }

    /// Straightforward NCHW loops, independent of the runtime's NHWC/im2col kernels.
    func reference(_ x: [Float], batch: Int) -> [Float] {
        var out: [Float] = []
        for n in 0..<batch {
            let img = Array(x[(n * 192)..<((n + 1) * 192)])
            var a = [Float](repeating: 0, count: 4 * 64)
            for o in 0..<4 { for i in 0..<8 { for j in 0..<8 {
                var s = b1[o]
                for c in 0..<3 { for ki in 0..<3 { for kj in 0..<3 {
                    let ii = i + ki - 1, jj = j + kj - 1
                    if ii >= 0 && ii < 8 && jj >= 0 && jj < 8 { s += img[c * 64 + ii * 8 + jj] * w1[((o * 3 + c) * 3 + ki) * 3 + kj] }
                } } }
                s = (s - mean[o]) / (variance[o] + 1e-5).squareRoot() * gamma[o] + beta[o]
                a[o * 64 + i * 8 + j] = max(s, 0)
            } } }
            var p = [Float](repeating: 0, count: 4 * 16)
            for c in 0..<4 { for i in 0..<4 { for j in 0..<4 {
                p[c * 16 + i * 4 + j] = max(max(a[c * 64 + 2 * i * 8 + 2 * j], a[c * 64 + 2 * i * 8 + 2 * j + 1]),
                                            max(a[c * 64 + (2 * i + 1) * 8 + 2 * j], a[c * 64 + (2 * i + 1) * 8 + 2 * j + 1]))
            } } }
            var g = [Float](repeating: 0, count: 6)
            for o in 0..<6 {
                var s: Float = 0
                for k in 0..<16 { for c in 0..<4 { s += p[c * 16 + k] * w2[o * 4 + c] } }
                g[o] = s / 16
            }
            for o in 0..<5 {
                var s = fcB[o]
                for k in 0..<6 { s += g[k] * fcW[o * 6 + k] }
                out.append(s)
            }
        }
        return out
    }
}
