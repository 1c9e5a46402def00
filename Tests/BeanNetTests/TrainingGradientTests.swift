import Foundation
import Testing
@testable import BeanNet

/// Central finite differences against every layer's backward pass. The scalar checked is
/// L = Σ r ⊙ f(x) for a fixed random r, accumulated in Double; a value passes when the analytic
/// and numeric derivatives agree within 1e-3 absolute or 1e-2 relative.
///
/// Networks with ReLU or max pooling are not differentiable everywhere: when ±eps moves a
/// pre-activation across zero, the central difference measures a blend of two slopes. Such points
/// are recognised by their one-sided differences disagreeing (the loss bends inside the interval)
/// and are not compared; at most a tenth of the sampled points may be skipped that way.
struct FiniteDifference {
    var eps: Float
    var skipped = 0
    var compared = 0
    var failures: [String] = []

    init(eps: Float) { self.eps = eps }

    static func close(_ a: Double, _ b: Double) -> Bool {
        let diff = abs(a - b)
        return diff <= 1e-3 || diff <= 1e-2 * max(abs(a), abs(b))
    }

    /// `plus`, `center`, `minus`: the loss at value+eps, value, value−eps.
    mutating func compare(_ what: String, analytic: Float, plus: Double, center: Double, minus: Double) {
        let e = Double(eps)
        let forward = (plus - center) / e, backward = (center - minus) / e
        if !Self.close(forward, backward) && abs(forward - backward) > 0.02 * max(abs(forward), abs(backward)) {
            skipped += 1
            return
        }
        compared += 1
        let numeric = (plus - minus) / (2 * e)
        if !Self.close(Double(analytic), numeric) {
            failures.append("\(what): analytic \(analytic), numeric \(numeric)")
        }
    }

    var report: String {
        "\(failures.count) mismatches, \(skipped) kinks skipped, \(compared) compared:\n" + failures.prefix(8).joined(separator: "\n")
    }
    /// No mismatch, and at least 80 % of the samples compared. Float32 rounding in the forward pass
    /// differs between CPUs (BLAS kernels), and near a ReLU it can make a sample look like a kink:
    /// a 10 % limit failed on an Intel Xeon where it passed on an AMD EPYC.
    var passed: Bool { failures.isEmpty && skipped * 5 <= skipped + compared }
}

struct GradientCheck {
    var eps: Float = 1e-2
    var samples = 24
    var seed: UInt64 = 11

    static func randomTensor(_ shape: [Int], rng: inout SeededRandom, scale: Float = 1, awayFromZero: Float = 0) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in
            var v = rng.normal() * scale
            if awayFromZero > 0 && abs(v) < awayFromZero { v = v < 0 ? v - awayFromZero : v + awayFromZero }
            return v
        })
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    /// Checks d(Σ r⊙layer(x))/dx and /dparameters; returns the mismatches as readable lines.
    func run(_ layer: Layer, input: Tensor) -> FiniteDifference {
        var rng = SeededRandom(seed: seed)
        let y0 = layer.forward(input, training: true)
        let r = Self.randomTensor(y0.shape, rng: &rng)
        layer.zeroGrad()
        _ = layer.forward(input, training: true)
        let dx = layer.backward(r)
        let analyticParams = layer.parameters.map { $0.grad }
        let loss: (Tensor) -> Double = { x in Self.dot(layer.forward(x, training: true).data, r.data) }

        var fd = FiniteDifference(eps: eps)
        #expect(dx.shape == input.shape)
        let center = loss(input)
        for i in indices(input.count, &rng) {
            var xp = input, xm = input
            xp.data[i] += eps; xm.data[i] -= eps
            fd.compare("dx[\(i)]", analytic: dx.data[i], plus: loss(xp), center: center, minus: loss(xm))
        }
        for (k, p) in layer.parameters.enumerated() {
            for i in indices(p.count, &rng) {
                let saved = p.value[i]
                p.value[i] = saved + eps
                let lp = loss(input)
                p.value[i] = saved - eps
                let lm = loss(input)
                p.value[i] = saved
                fd.compare("\(p.name)[\(i)] (parameter \(k))", analytic: analyticParams[k][i], plus: lp, center: center, minus: lm)
            }
        }
        return fd
    }

    func indices(_ count: Int, _ rng: inout SeededRandom) -> [Int] {
        if count <= samples { return Array(0..<count) }
        return (0..<samples).map { _ in Int(rng.next() % UInt64(count)) }
    }
}

@Suite("Training: backward passes vs finite differences")
struct TrainingGradientTests {
    func check(_ layer: Layer, _ shape: [Int], seed: UInt64 = 3, scale: Float = 1, awayFromZero: Float = 0,
               eps: Float = 1e-2) {
        var rng = SeededRandom(seed: seed)
        let x = GradientCheck.randomTensor(shape, rng: &rng, scale: scale, awayFromZero: awayFromZero)
        let fd = GradientCheck(eps: eps).run(layer, input: x)
        #expect(fd.passed, "\(type(of: layer)): \(fd.report)")
        #expect(fd.compared > 0)
    }

    @Test func conv3x3Padded() {
        var rng = SeededRandom(seed: 1)
        check(Conv2d(3, 4, kernel: 3, stride: 1, padding: 1, rng: &rng), [2, 3, 6, 5])
    }

    @Test func conv3x3Stride2NoBias() {
        var rng = SeededRandom(seed: 2)
        check(Conv2d(2, 3, kernel: 3, stride: 2, padding: 1, bias: false, rng: &rng), [2, 2, 7, 8])
    }

    @Test func conv1x1Stride2Unpadded() {
        var rng = SeededRandom(seed: 3)
        check(Conv2d(3, 2, kernel: 1, stride: 2, padding: 0, rng: &rng), [3, 3, 5, 5])
    }

    @Test func conv5x5Stride3() {
        var rng = SeededRandom(seed: 4)
        check(Conv2d(2, 2, kernel: 5, stride: 3, padding: 2, rng: &rng), [1, 2, 9, 7])
    }

    /// Inputs narrower than the kernel: windows that lie partly or wholly in the padding.
    @Test func convOnNarrowInputs() {
        var rng = SeededRandom(seed: 13)
        check(Conv2d(2, 3, kernel: 3, stride: 2, padding: 1, rng: &rng), [2, 2, 3, 1])
        check(Conv2d(2, 2, kernel: 5, stride: 1, padding: 2, rng: &rng), [1, 2, 2, 3])
    }

    @Test func linear() {
        var rng = SeededRandom(seed: 5)
        check(Linear(7, 4, rng: &rng), [3, 7])
    }

    @Test func batchNormTraining() {
        let bn = BatchNorm2d(3)
        bn.gamma.value = [0.5, 1.5, -1]
        bn.beta.value = [0.1, -0.2, 0.3]
        check(bn, [4, 3, 3, 2], scale: 2)
    }

    @Test func batchNormWithFrozenStatistics() {
        let bn = BatchNorm2d(3)
        bn.gamma.value = [0.5, 1.5, -1]
        bn.runningMean.value = [0.2, -0.1, 0.4]
        bn.runningVar.value = [0.5, 2, 1.3]
        bn.freezeStatistics = true
        check(bn, [4, 3, 3, 2], scale: 2)
        #expect(bn.runningMean.value == [0.2, -0.1, 0.4] && bn.runningVar.value == [0.5, 2, 1.3])
    }

    @Test func residualBlockWithFrozenStatistics() {
        var rng = SeededRandom(seed: 12)
        let block = ResidualBlock(3, 4, stride: 2, rng: &rng)
        let bns = batchNormLayers(in: Sequential([block]))
        #expect(bns.count == 3)
        for bn in bns {
            bn.freezeStatistics = true
            for c in 0..<bn.channels { bn.runningMean.value[c] = rng.normal() * 0.3; bn.runningVar.value[c] = 0.5 + rng.uniform() }
        }
        check(block, [2, 3, 6, 6], eps: 1e-3)
    }

    @Test func activations() {
        check(ReLU(), [2, 3, 4, 4], awayFromZero: 0.05)
        check(LeakyReLU(slope: 0.1), [2, 3, 4, 4], awayFromZero: 0.05)
        check(Sigmoid(), [2, 3, 4, 4], scale: 2)
    }

    @Test func pooling() {
        // Distinct, well-separated values keep each window's maximum stable under ±eps.
        check(MaxPool2d(kernel: 3, stride: 2, padding: 1), [2, 2, 7, 6], eps: 1e-3)
        check(MaxPool2d(kernel: 2, stride: 2), [1, 3, 6, 6], eps: 1e-3)
        check(AvgPool2d(kernel: 2, stride: 2), [2, 2, 6, 5])
        check(AvgPool2d(kernel: 3, stride: 1), [1, 2, 5, 5])
        check(GlobalAvgPool(), [3, 4, 3, 5])
    }

    @Test func resamplingAndShape() {
        check(Upsample2x(), [2, 3, 3, 4])
        check(Flatten(), [2, 3, 2, 2])
        check(Reshape([2, 3, 2]), [3, 12])
    }

    @Test func l2Normalize() {
        check(L2Normalize(), [4, 6])
    }

    @Test func multiScalePoolingThroughTheTrunk() {
        // Taps at the stem's ReLU and after each of the two stages: the gradient of the first
        // tap's statistics must reach the input through the stem, added to what flows back from
        // the later taps.
        let trunk = TrunkShape.tiny.makeTrunk(seed: 12)
        let pooling = MultiScalePooling(trunk: trunk, taps: [2] + TrunkShape.tiny.stageEnds)
        var rng = SeededRandom(seed: 13)
        let x = GradientCheck.randomTensor([3, 3, 8, 8], rng: &rng)
        #expect(pooling.forward(x, training: false).shape == [3, MultiScalePooling.featureCount(channels: [4, 4, 8])])
        check(pooling, [3, 3, 8, 8], eps: 3e-3)
    }

    @Test func multiScalePoolingOfTheInput() {
        // Tap −1 pools the input itself: its gradient is added to the one that comes back through
        // the trunk from the stage taps.
        let trunk = TrunkShape.tiny.makeTrunk(seed: 15)
        let pooling = MultiScalePooling(trunk: trunk, taps: [MultiScalePooling.inputTap] + TrunkShape.tiny.stageEnds)
        var rng = SeededRandom(seed: 16)
        let x = GradientCheck.randomTensor([2, 3, 8, 8], rng: &rng)
        let y = pooling.forward(x, training: false)
        #expect(y.shape == [2, MultiScalePooling.featureCount(channels: [3, 4, 8])])
        // The first six values are the input's channel means and deviations.
        let first = MultiScalePooling(trunk: trunk, taps: [MultiScalePooling.inputTap]).forward(x, training: false)
        #expect(first.shape == [2, 6])
        #expect(zip(first.data[0..<6], y.data[0..<6]).allSatisfy { abs($0 - $1) < 1e-6 })
        let plane = Array(x.data[0..<64]), mean = plane.reduce(0, +) / 64
        #expect(abs(first.data[0] - mean) < 1e-5)
        check(pooling, [3, 3, 8, 8], eps: 3e-3)
        check(MultiScalePooling(trunk: trunk, taps: [MultiScalePooling.inputTap]), [2, 3, 5, 5], eps: 1e-3)
    }

    @Test func multiScalePoolingStatistics() {
        // One sample, one channel, 2×2: mean 2.5, population standard deviation sqrt(1.25).
        let pooling = MultiScalePooling(trunk: Sequential([ReLU()]), taps: [0])
        let y = pooling.forward(Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4]), training: true)
        #expect(y.shape == [1, 2])
        #expect(abs(y.data[0] - 2.5) < 1e-6 && abs(y.data[1] - Float(1.25).squareRoot()) < 1e-6)
        // A constant channel has deviation 0 and passes no gradient through it (no NaN).
        _ = pooling.forward(Tensor(shape: [1, 1, 2, 2], data: [3, 3, 3, 3]), training: true)
        let dx = pooling.backward(Tensor(shape: [1, 2], data: [1, 1]))
        #expect(dx.data.allSatisfy { abs($0 - 0.25) < 1e-7 })
    }

    @Test func standardize() {
        check(Standardize(mean: [0.5, -1, 2, 0], scale: [2, 0.5, 0, 1]), [3, 4])
    }

    @Test func cosineClassifier() {
        var rng = SeededRandom(seed: 14)
        check(CosineClassifier(5, classes: 3, scale: 4, rng: &rng), [4, 5], eps: 1e-3)
    }

    @Test func residualBlockIdentity() {
        var rng = SeededRandom(seed: 6)
        check(ResidualBlock(4, 4, stride: 1, rng: &rng), [3, 4, 5, 5], eps: 1e-3)
    }

    @Test func residualBlockProjection() {
        var rng = SeededRandom(seed: 7)
        // eps 1e-3 left the float32 rounding of the forward pass at the tolerance on an Intel Xeon
        // (1.5 % apart on two samples); 3e-3 keeps it well below.
        check(ResidualBlock(3, 5, stride: 2, rng: &rng), [3, 3, 6, 6], eps: 3e-3)
    }

    @Test func sequentialDecoder() {
        var rng = SeededRandom(seed: 8)
        let net = Sequential([
            Linear(5, 12, rng: &rng), LeakyReLU(slope: 0.2), Reshape([3, 2, 2]), Upsample2x(),
            Conv2d(3, 2, kernel: 3, stride: 1, padding: 1, rng: &rng), Sigmoid(),
        ])
        check(net, [2, 5], eps: 3e-3)
    }

    /// The ResNet-like encoder with an L2-normalised head, end to end through the batch-hard
    /// triplet loss: dLoss/dInput and dLoss/dParameters against finite differences.
    @Test func wholeEncoderThroughTripletLoss() {
        let net = resnetLikeEncoder(widths: [4, 6], blocks: [1, 1], embedding: 5, seed: 9)
        net.append(L2Normalize())
        var rng = SeededRandom(seed: 10)
        let x = GradientCheck.randomTensor([6, 3, 8, 8], rng: &rng)
        let labels = [0, 0, 1, 1, 2, 2]
        let margin: Float = 1.5   // large enough that every anchor stays active
        func loss(_ input: Tensor) -> Double {
            Double(Loss.tripletBatchHard(net.forward(input, training: true), labels: labels, margin: margin).loss)
        }
        net.zeroGrad()
        let e = net.forward(x, training: true)
        let (_, g, stats) = Loss.tripletBatchHard(e, labels: labels, margin: margin)
        #expect(stats.activeTriplets == stats.anchors && stats.anchors == 6)
        let dx = net.backward(g)
        var fd = FiniteDifference(eps: 3e-3)
        let center = loss(x)
        for _ in 0..<16 {
            let i = Int(rng.next() % UInt64(x.count))
            var xp = x, xm = x
            xp.data[i] += fd.eps; xm.data[i] -= fd.eps
            fd.compare("dx[\(i)]", analytic: dx.data[i], plus: loss(xp), center: center, minus: loss(xm))
        }
        let named = net.namedState(prefix: "")
        for p in net.parameters {
            let name = named.first { $0.1 === p }?.0 ?? p.name
            for _ in 0..<3 {
                let i = Int(rng.next() % UInt64(p.count))
                let saved = p.value[i]
                p.value[i] = saved + fd.eps; let lp = loss(x)
                p.value[i] = saved - fd.eps; let lm = loss(x)
                p.value[i] = saved
                fd.compare("\(name)[\(i)]", analytic: p.grad[i], plus: lp, center: center, minus: lm)
            }
        }
        #expect(fd.passed, "\(fd.report)")
        #expect(fd.compared > 40)
    }
}

@Suite("Training: losses")
struct TrainingLossTests {
    @Test func mseGradientMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 20)
        let p = GradientCheck.randomTensor([3, 4], rng: &rng)
        let t = GradientCheck.randomTensor([3, 4], rng: &rng)
        let (loss, g) = Loss.mse(p, t)
        var direct = 0.0
        for i in 0..<p.count { direct += Double((p.data[i] - t.data[i]) * (p.data[i] - t.data[i])) }
        #expect(abs(Double(loss) - direct / 12) < 1e-5)
        for i in 0..<p.count {
            var a = p, b = p
            a.data[i] += 1e-2; b.data[i] -= 1e-2
            let numeric = (Double(Loss.mse(a, t).loss) - Double(Loss.mse(b, t).loss)) / 2e-2
            #expect(abs(Double(g.data[i]) - numeric) < 1e-3)
        }
    }

    @Test func tripletGradientMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 21)
        let e = GradientCheck.randomTensor([8, 5], rng: &rng)
        let labels = [0, 1, 2, 0, 1, 2, 0, 1]
        let (_, g, stats) = Loss.tripletBatchHard(e, labels: labels, margin: 0.5)
        #expect(stats.anchors == 8)
        #expect(stats.activeTriplets > 0)
        for i in 0..<e.count {
            var a = e, b = e
            a.data[i] += 1e-3; b.data[i] -= 1e-3
            let numeric = (Double(Loss.tripletBatchHard(a, labels: labels, margin: 0.5).loss)
                - Double(Loss.tripletBatchHard(b, labels: labels, margin: 0.5).loss)) / 2e-3
            #expect(abs(Double(g.data[i]) - numeric) < 2e-3, "d/de[\(i)]")
        }
    }

    /// Points on a line: a0=0, a1=1 (label A), b0=3, b1=3.5 (label B), margin 1.
    /// Anchor a0: hardest positive 1, hardest negative 3 → 0. a1: 1 vs 2 → 0. b0: 0.5 vs 2 → 0.
    /// b1: 0.5 vs 2.5 → 0. With margin 2: a1 → 1, b0 → 0.5, a0 → 0, b1 → 0: loss 1.5/4; mean hardest
/// positive (1+1+0.5+0.5)/4, mean hardest negative (3+2+2+2.5)/4.
    @Test func tripletHandComputedBatch() {
        let e = Tensor(shape: [4, 1], data: [0, 1, 3, 3.5])
        let labels = [0, 0, 1, 1]
        let easy = Loss.tripletBatchHard(e, labels: labels, margin: 1)
        #expect(easy.loss == 0 && easy.stats.activeTriplets == 0)
        #expect(easy.grad.data.allSatisfy { $0 == 0 })
        let hard = Loss.tripletBatchHard(e, labels: labels, margin: 2)
        #expect(abs(hard.loss - 1.5 / 4) < 1e-5)
        #expect(hard.stats.activeTriplets == 2)
        #expect(abs(hard.stats.meanPositiveDistance - 0.75) < 1e-5)
        #expect(abs(hard.stats.meanNegativeDistance - 2.375) < 1e-5)
    }

    @Test func tripletWithoutPositivesIsZero() {
        let e = Tensor(shape: [3, 2], data: [0, 0, 1, 1, 2, 2])
        let r = Loss.tripletBatchHard(e, labels: [0, 1, 2], margin: 1)
        #expect(r.loss == 0 && r.stats.anchors == 0)
    }
}
