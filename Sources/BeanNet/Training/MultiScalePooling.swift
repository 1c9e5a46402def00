import Foundation

/// Runs a convolutional trunk and describes the crop by the statistics of several of its stages:
/// for each tapped layer's output, the spatial mean and the spatial standard deviation of every
/// channel. Output [N, Σ 2·C_tap], per tap its C means then its C standard deviations.
///
/// Why: on the bean photos, a linear head over the pooled outputs of all four stages separates
/// good from defective beans far better than any head on the last stage alone (the early stages
/// keep colour and fine texture — mould, insect holes, fissures — that the last stage averages
/// away; the standard deviation says how uneven a bean's surface is). Measured in MODEL_CARD.md.
///
/// Tap −1 is the trunk's input itself: the mean and spread of each colour channel of the crop,
/// which the trunk's contrastive training is free to discard (it only has to tell beans apart).
///
/// Layers after the last tap are not run. The standard deviation is the population one,
/// sqrt(mean((x − mean)²)) without an epsilon, so the ONNX form (`ReduceL2` of the centred map,
/// scaled) computes exactly the same; its gradient is taken as 0 on a constant channel.
public final class MultiScalePooling: Layer {
    public let trunk: Sequential
    /// Indices into `trunk.layers` whose outputs are pooled, ascending; −1 = the input.
    public let taps: [Int]
    /// The tap index that stands for the trunk's input.
    public static let inputTap = -1
    /// Per tap, the last training forward's output and its pooled statistics (the standard
    /// deviation's gradient needs both).
    private var tapped: [(output: Tensor, statistics: [Float])] = []
    /// Per tap, the spatial size of its output in the last forward (the ONNX export needs it).
    public private(set) var tapPlanes: [Int] = []

    public init(trunk: Sequential, taps: [Int]) {
        precondition(!taps.isEmpty && taps == taps.sorted() && Set(taps).count == taps.count
                     && taps.allSatisfy { $0 == Self.inputTap || trunk.layers.indices.contains($0) },
                     "MultiScalePooling: taps \(taps) must be distinct ascending indices of the trunk's \(trunk.layers.count) layers")
        self.trunk = trunk
        self.taps = taps
    }

    public var parameters: [Parameter] { trunk.parameters }
    public var buffers: [Parameter] { trunk.buffers }
    public func namedState(prefix: String) -> [(String, Parameter)] { trunk.namedState(prefix: prefix) }

    /// Output width for tapped layers of `channels` channels each.
    public static func featureCount(channels: [Int]) -> Int { 2 * channels.reduce(0, +) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { run(x, training: training, keepingMaps: false).pooled }

    /// Inference forward that also returns each tapped layer's output map (keyed by its index
    /// into `trunk.layers`; −1 for the input): what `PatchNovelty` describes patches with, from
    /// the same single pass of the trunk.
    public func forwardKeepingMaps(_ x: Tensor) -> (pooled: Tensor, maps: [Int: Tensor]) {
        run(x, training: false, keepingMaps: true)
    }

    private func run(_ x: Tensor, training: Bool, keepingMaps: Bool) -> (pooled: Tensor, maps: [Int: Tensor]) {
        var h = x
        var pooled: [[Float]] = []
        var planes: [Int] = []
        var kept: [(output: Tensor, statistics: [Float])] = []
        var maps: [Int: Tensor] = [:]
        func pool(_ h: Tensor, tap: Int) {
            precondition(h.shape.count == 4, "MultiScalePooling: tap \(tap) gives shape \(h.shape), expected NCHW")
            let statistics = Self.meanAndDeviation(h)
            pooled.append(statistics)
            planes.append(h.shape[2] * h.shape[3])
            if training { kept.append((h, statistics)) }
            if keepingMaps { maps[tap] = h }
        }
        if taps.first == Self.inputTap { pool(x, tap: Self.inputTap) }
        for (i, layer) in trunk.layers.enumerated() where i <= (taps.last ?? -1) {
            h = layer.forward(h, training: training)
            if taps.contains(i) { pool(h, tap: i) }
        }
        tapPlanes = planes
        if training { tapped = kept }
        let n = x.shape[0]
        let widths = pooled.map { $0.count / max(n, 1) }
        let total = widths.reduce(0, +)
        var y = [Float](repeating: 0, count: n * total)
        var offset = 0
        for (values, width) in zip(pooled, widths) {
            for s in 0..<n {
                for j in 0..<width { y[s * total + offset + j] = values[s * width + j] }
            }
            offset += width
        }
        return (Tensor(shape: [n, total], data: y), maps)
    }

    /// [N, C, H, W] → per sample [C means, C standard deviations].
    static func meanAndDeviation(_ h: Tensor) -> [Float] {
        let (n, c) = (h.shape[0], h.shape[1]), plane = h.shape[2] * h.shape[3]
        var out = [Float](repeating: 0, count: n * 2 * c)
        h.data.withUnsafeBufferPointer { p in
            for s in 0..<n {
                for ch in 0..<c {
                    let base = (s * c + ch) * plane
                    var sum: Float = 0
                    for i in 0..<plane { sum += p[base + i] }
                    let mean = sum / Float(plane)
                    var squares: Float = 0
                    for i in 0..<plane { let d = p[base + i] - mean; squares += d * d }
                    out[s * 2 * c + ch] = mean
                    out[s * 2 * c + c + ch] = (squares / Float(plane)).squareRoot()
                }
            }
        }
        return out
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(tapped.count == taps.count, "MultiScalePooling.backward called without a training forward")
        let n = dy.shape[0], total = dy.shape[1]
        // Gradient of each tap's output from its pooled statistics, keyed by the tapped layer.
        var tapGradient: [Int: Tensor] = [:]
        var offset = 0
        for (tap, (h, statistics)) in zip(taps, tapped) {
            let c = h.shape[1], plane = h.shape[2] * h.shape[3]
            var g = [Float](repeating: 0, count: h.count)
            for s in 0..<n {
                for ch in 0..<c {
                    let base = (s * c + ch) * plane
                    let mean = statistics[s * 2 * c + ch], deviation = statistics[s * 2 * c + c + ch]
                    let dMean = dy.data[s * total + offset + ch] / Float(plane)
                    // d sd / d x_i = (x_i − mean) / (plane · sd); the mean's own dependence cancels.
                    let dDeviation = deviation > 0 ? dy.data[s * total + offset + c + ch] / (Float(plane) * deviation) : 0
                    for i in 0..<plane { g[base + i] = dMean + dDeviation * (h.data[base + i] - mean) }
                }
            }
            tapGradient[tap] = Tensor(shape: h.shape, data: g)
            offset += 2 * c
        }
        // Back through the trunk from the last tap, adding each tap's gradient where it was taken.
        var grad: Tensor?
        for i in stride(from: taps.last ?? -1, through: 0, by: -1) {
            if let g = tapGradient[i] {
                if var sum = grad {
                    for k in sum.data.indices { sum.data[k] += g.data[k] }
                    grad = sum
                } else {
                    grad = g
                }
            }
            guard let upstream = grad else { preconditionFailure("MultiScalePooling: no gradient at layer \(i)") }
            grad = trunk.layers[i].backward(upstream)
        }
        if let g = tapGradient[Self.inputTap] {
            guard var sum = grad else { return g }
            for k in sum.data.indices { sum.data[k] += g.data[k] }
            grad = sum
        }
        guard let dx = grad else { preconditionFailure("MultiScalePooling: no taps") }
        return dx
    }
}

/// Cosine-softmax classifier (NormFace): logits = scale · cos(embedding, prototype_c) with one
/// learned prototype per class. On L2-normalised embeddings it pulls each class around its
/// prototype on the sphere, which is what a cosine kNN then reads; unlike a plain linear
/// classifier it cannot lower its loss by growing weights instead of separating the classes.
/// Training only (not exported).
public final class CosineClassifier: Layer {
    public let prototypes: Parameter
    public let scale: Float
    private var input: Tensor?

    public init(_ features: Int, classes: Int, scale: Float, rng: inout SeededRandom) {
        precondition(features > 0 && classes > 0 && scale > 0, "CosineClassifier: invalid size \(features)→\(classes) or scale \(scale)")
        prototypes = Parameter(name: "prototypes", shape: [classes, features],
                               value: (0..<(classes * features)).map { _ in rng.normal() })
        self.scale = scale
    }

    public var parameters: [Parameter] { [prototypes] }

    private var classes: Int { prototypes.shape[0] }
    private var features: Int { prototypes.shape[1] }

    /// Unit-length prototypes and their norms.
    private func normalizedPrototypes() -> (unit: [Float], norms: [Float]) {
        var unit = prototypes.value
        var norms = [Float](repeating: 0, count: classes)
        for c in 0..<classes {
            var ss: Float = 0
            for j in 0..<features { ss += unit[c * features + j] * unit[c * features + j] }
            norms[c] = max(ss.squareRoot(), 1e-12)
            for j in 0..<features { unit[c * features + j] /= norms[c] }
        }
        return (unit, norms)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == features, "CosineClassifier: input shape \(x.shape), expected [N, \(features)]")
        let n = x.shape[0]
        let (unit, _) = normalizedPrototypes()
        var logits = [Float](repeating: 0, count: n * classes)
        Kernels.sgemm(m: n, n: classes, k: features, a: x.data, lda: features,
                      b: unit, ldb: features, transB: true, c: &logits, ldc: classes, alpha: scale)
        if training { input = x }
        return Tensor(shape: [n, classes], data: logits)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("CosineClassifier.backward called without a training forward") }
        let n = x.shape[0]
        precondition(dy.shape == [n, classes], "CosineClassifier.backward: gradient shape \(dy.shape), expected \([n, classes])")
        let (unit, norms) = normalizedPrototypes()
        var dx = [Float](repeating: 0, count: n * features)
        Kernels.sgemm(m: n, n: features, k: classes, a: dy.data, lda: classes,
                      b: unit, ldb: features, transB: false, c: &dx, ldc: features, alpha: scale)
        // d/dunit = scale·dyᵀ·x; through the normalisation: (g − u·(g·u)) / ‖p‖.
        var dUnit = [Float](repeating: 0, count: classes * features)
        Kernels.sgemm(m: classes, n: features, k: n, a: dy.data, lda: classes, transA: true,
                      b: x.data, ldb: features, transB: false, c: &dUnit, ldc: features, alpha: scale)
        for c in 0..<classes {
            var dot: Float = 0
            for j in 0..<features { dot += dUnit[c * features + j] * unit[c * features + j] }
            for j in 0..<features {
                prototypes.grad[c * features + j] += (dUnit[c * features + j] - unit[c * features + j] * dot) / norms[c]
            }
        }
        return Tensor(shape: x.shape, data: dx)
    }
}
