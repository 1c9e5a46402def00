/// Folds inference-mode BatchNormalization into the convolution that feeds it (once, at load):
/// W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε) + β.
enum BatchNormFolding {
    /// Per-channel scale and shift equivalent to the BN node.
    static func affine(_ node: GraphNode, consts: [String: ConstTensor], channels: Int) throws -> ([Float], [Float]) {
        let names = ["scale", "B", "input_mean", "input_var"]
        var params: [[Float]] = []
        for (k, what) in names.enumerated() {
            guard let name = node.input(k + 1), let c = consts[name] else {
                throw node.error(.unsupported, "\(what) must be a constant")
            }
            guard c.count == channels else { throw node.error(.shape, "\(what) has \(c.count) values for \(channels) channels") }
            params.append(c.floats)
        }
        let eps = try node.float("epsilon", default: 1e-5)
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = params[0][c] / (params[3][c] + eps).squareRoot()
            scale[c] = s
            shift[c] = params[1][c] - params[2][c] * s
        }
        return (scale, shift)
    }

    static func fold(_ graph: Graph) throws -> Graph {
        var g = graph
        var producer: [String: Int] = [:]
        var consumers: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
            for x in n.inputs where !x.isEmpty { consumers[x, default: 0] += 1 }
        }
        for o in g.outputs { consumers[o, default: 0] += 1 }
        var removed = Set<Int>()
        for (j, bn) in g.nodes.enumerated() where bn.op == "BatchNormalization" {
            guard try bn.int("training_mode", default: 0) == 0,
                  bn.outputs.dropFirst().allSatisfy({ $0.isEmpty || consumers[$0] == nil }),
                  let x = bn.input(0), let i = producer[x], g.nodes[i].op == "Conv", consumers[x] == 1,
                  let wName = g.nodes[i].input(1), let w = g.initializers[wName], w.shape.count == 4
            else { continue }
            let conv = g.nodes[i]
            let cout = w.shape[0]
            guard let (scale, shift) = try? affine(bn, consts: g.initializers, channels: cout) else { continue }
            var bias = [Float](repeating: 0, count: cout)
            if let bName = conv.input(2) {
                guard let b = g.initializers[bName], b.count == cout else { continue }
                bias = b.floats
            }
            var weights = w.floats
            let per = weights.count / cout
            for o in 0..<cout {
                let s = scale[o]
                for k in 0..<per { weights[o * per + k] *= s }
                bias[o] = bias[o] * s + shift[o]
            }
            let wNew = "\(conv.name)::W+\(bn.name)", bNew = "\(conv.name)::B+\(bn.name)"
            g.initializers[wNew] = ConstTensor(shape: w.shape, floats: weights)
            g.initializers[bNew] = ConstTensor(shape: [cout], floats: bias)
            g.nodes[i].inputs = [conv.inputs[0], wNew, bNew]
            g.nodes[i].outputs = [bn.outputs[0]]
            removed.insert(j)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return g
    }
}
