import Foundation
import Testing
@testable import BeanNet

/// 16×16 crops of ellipses in two colours with noise, for BYOL's short runs.
private func ellipseCrops(count: Int, seed: UInt64) throws -> CropImages {
    let size = 16
    var rng = SeededRandom(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * size * size * 3)
    for i in 0..<count {
        let base: (Float, Float, Float) = i % 2 == 0 ? (180, 150, 90) : (70, 60, 45)
        let rx = 4.5 + 2 * rng.uniform(), ry = 3 + 1.5 * rng.uniform()
        for y in 0..<size {
            for x in 0..<size {
                let dx = (Float(x) - 8) / rx, dy = (Float(y) - 8) / ry
                guard dx * dx + dy * dy <= 1 else { continue }
                let o = ((i * size + y) * size + x) * 3, noise = (rng.uniform() - 0.5) * 40
                pixels[o] = UInt8(max(0, min(255, base.0 + noise)))
                pixels[o + 1] = UInt8(max(0, min(255, base.1 + noise)))
                pixels[o + 2] = UInt8(max(0, min(255, base.2 + noise)))
            }
        }
    }
    return try CropImages(size: size, pixels: pixels)
}

@Suite struct SelfDistillationTests {
    private func options(epochs: Int) -> BackboneOptions {
        var options = BackboneOptions()
        options.objective = .byol
        options.shape = .tiny
        options.epochs = epochs
        options.batch = 16
        options.learningRate = 3e-3
        options.seed = 9
        return options
    }

    @Test func lossGradientMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 2)
        let p = Tensor(shape: [3, 4], data: (0..<12).map { _ in rng.normal() })
        let t = Tensor(shape: [3, 4], data: (0..<12).map { _ in rng.normal() })
        let (loss, grad) = BackboneTrainer.byolLoss(p, target: t)
        let direct = (0..<12).reduce(Float(0)) { $0 + (p.data[$1] - t.data[$1]) * (p.data[$1] - t.data[$1]) } / 3
        #expect(abs(loss - direct) < 1e-5)
        let h: Float = 1e-2
        for i in 0..<12 {
            var plus = p, minus = p
            plus.data[i] += h
            minus.data[i] -= h
            let numeric = (BackboneTrainer.byolLoss(plus, target: t).loss - BackboneTrainer.byolLoss(minus, target: t).loss) / (2 * h)
            #expect(abs(numeric - grad.data[i]) <= 1e-3 + 1e-2 * abs(numeric), "dL/dp[\(i)]: analytic \(grad.data[i]), numeric \(numeric)")
        }
    }

    /// The target starts as a copy, is invisible to the optimiser, and moves by the decay rule.
    @Test func targetStartsAsACopyAndFollowsByItsDecay() throws {
        let model = BackboneModel(shape: .tiny, objective: .byol, seed: 3)
        let target = try #require(model.target)
        let followed = model.trunk.parameters + (model.extra.layers.first?.parameters ?? [])
        #expect(target.network.parameters.count == followed.count)
        for (mine, theirs) in zip(target.network.parameters, followed) { #expect(mine.value == theirs.value) }
        let trainable = Set(model.whole.parameters.map { ObjectIdentifier($0) })
        #expect(target.network.parameters.allSatisfy { !trainable.contains(ObjectIdentifier($0)) }, "the optimiser would step the target")
        let before = target.network.parameters.map(\.value)
        for p in followed { p.value = p.value.map { $0 + 1 } }
        target.follow(decay: 0.9)
        for (k, mine) in target.network.parameters.enumerated() {
            for i in 0..<mine.count { #expect(abs(mine.value[i] - (before[k][i] + 0.1)) < 1e-5) }
        }
    }

    /// A short run lowers the loss without collapsing: held-out crops keep distinct embeddings,
    /// and the run resumed from its checkpoint (target included) ends exactly where an
    /// uninterrupted one does.
    @Test func shortRunLearnsWithoutCollapseAndResumesExactly() throws {
        let images = try ellipseCrops(count: 32, seed: 5)
        let straight = try BackboneTrainer(options: options(epochs: 8), images: images)
        var losses: [Float] = []
        try straight.train(checkpoint: nil, epochEnd: { losses.append($0.meanLoss) })
        let first = (losses[0] + losses[1]) / 2, last = (losses[6] + losses[7]) / 2
        #expect(last < first * 0.8, "loss per epoch: \(losses)")

        let heldOut = try ellipseCrops(count: 16, seed: 8)
        let x = CropTensorizer().batch(heldOut, indices: Array(0..<16), poses: [Int](repeating: 0, count: 16))
        let pooled = Sequential([GlobalAvgPool(), Flatten(), L2Normalize()])
        let z = pooled.forward(straight.model.trunk.forward(x, training: false), training: false)
        let d = z.shape[1]
        var meanCosine: Float = 0
        for i in 0..<16 { for j in 0..<16 where j != i { meanCosine += (0..<d).reduce(Float(0)) { $0 + z.data[i * d + $1] * z.data[j * d + $1] } } }
        meanCosine /= Float(16 * 15)
        #expect(meanCosine < 0.99, "held-out embeddings collapsed (mean cosine \(meanCosine))")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("byol-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try BackboneTrainer(options: options(epochs: 3), images: images).train(checkpoint: directory + "/ckpt")
        let resumed = try BackboneTrainer(options: options(epochs: 8), images: images)
        try resumed.resume(from: directory + "/ckpt")
        try resumed.train(checkpoint: nil)
        let a = straight.model.whole.namedState(prefix: ""), b = resumed.model.whole.namedState(prefix: "")
        #expect(a.count == b.count && a.contains { $0.0.hasPrefix("1.2.") }, "the checkpoint holds the target")
        for (x, y) in zip(a, b) { #expect(x.0 == y.0 && x.1.value == y.1.value, "\(x.0) differs after resume") }
    }
}
