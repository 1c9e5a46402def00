import Foundation
import Testing
@testable import BeanNet

/// 16×16 crops of an ellipse whose brightness varies a lot from crop to crop (a nuisance the
/// contrastive task sees first), and whose class is a small dark spot in its middle (class 1) or
/// none (class 0), the kind of local defect the labels have to point out.
private func spottedCrops(count: Int, seed: UInt64) throws -> (CropImages, [Int]) {
    let size = 16
    var rng = SeededRandom(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * size * size * 3)
    var labels: [Int] = []
    for i in 0..<count {
        let label = Int(rng.next() & 1)
        labels.append(label)
        let gain = 0.35 + 0.65 * rng.uniform()
        let spotX = 6 + Int(rng.next() % 4), spotY = 7 + Int(rng.next() % 2)
        for y in 0..<size {
            for x in 0..<size {
                let dx = (Float(x) - 8) / 6.5, dy = (Float(y) - 8) / 4
                guard dx * dx + dy * dy <= 1 else { continue }
                let spot = label == 1 && abs(x - spotX) <= 1 && abs(y - spotY) <= 1
                let value = spot ? 25 : gain * 200 + (rng.uniform() - 0.5) * 20
                let o = ((i * size + y) * size + x) * 3
                pixels[o] = UInt8(max(0, min(255, value)))
                pixels[o + 1] = UInt8(max(0, min(255, value * 0.85)))
                pixels[o + 2] = UInt8(max(0, min(255, value * 0.55)))
            }
        }
    }
    return (try CropImages(size: size, pixels: pixels), labels)
}

@Suite struct SemiSupervisedPretrainingTests {
    private func options() -> BackboneOptions {
        var options = BackboneOptions()
        options.shape = .tiny
        options.epochs = 10
        options.batch = 16
        options.learningRate = 3e-3
        options.seed = 9
        options.supervisedBatch = 16
        return options
    }

    /// Leave-one-out 1-nearest-neighbour accuracy (cosine) of the trunk's pooled features.
    private func nearestNeighbourAccuracy(_ trainer: BackboneTrainer, _ images: CropImages, _ labels: [Int]) -> Double {
        let x = CropTensorizer().batch(images, indices: Array(0..<images.count), poses: [Int](repeating: 0, count: images.count))
        let h = trainer.model.trunk.forward(x, training: false)
        let n = h.shape[0], c = h.shape[1], plane = h.count / (n * c)
        var features = [[Float]](repeating: [Float](repeating: 0, count: c), count: n)
        for i in 0..<n {
            for k in 0..<c {
                var sum: Float = 0
                for p in 0..<plane { sum += h.data[(i * c + k) * plane + p] }
                features[i][k] = sum / Float(plane)
            }
            let norm = max(features[i].reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            features[i] = features[i].map { $0 / norm }
        }
        var right = 0
        for i in 0..<n {
            var best = -Float.infinity, bestLabel = -1
            for j in 0..<n where j != i {
                let similarity = zip(features[i], features[j]).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                if similarity > best { best = similarity; bestLabel = labels[j] }
            }
            if bestLabel == labels[i] { right += 1 }
        }
        return Double(right) / Double(n)
    }

    /// The labels teach the trunk what the contrastive task alone does not find: with the same
    /// seed, views and steps, the nearest neighbour of a held-out crop is of another class far
    /// less often (errors 16 % → 6 % when written).
    @Test func labelledCropsTeachTheTrunkTheirClasses() throws {
        let (unlabelled, _) = try spottedCrops(count: 64, seed: 1)
        let (labelledImages, labelledClasses) = try spottedCrops(count: 24, seed: 2)
        let (heldOut, heldOutClasses) = try spottedCrops(count: 64, seed: 3)
        let labelled = try LabelledCrops(images: labelledImages, labels: labelledClasses, beans: Array(0..<24),
                                         classNames: ["sound", "spotted"])
        let selfOnly = try BackboneTrainer(options: options(), images: unlabelled)
        try selfOnly.train(checkpoint: nil)
        let withLabels = try BackboneTrainer(options: options(), images: unlabelled, labelled: labelled)
        try withLabels.train(checkpoint: nil)
        let before = nearestNeighbourAccuracy(selfOnly, heldOut, heldOutClasses)
        let after = nearestNeighbourAccuracy(withLabels, heldOut, heldOutClasses)
        #expect(before < 0.9, "the contrastive task alone already tells the spots apart (\(before)): the test shows nothing")
        #expect(1 - after <= (1 - before) * 0.6, "1-NN accuracy on held-out crops: self-supervised \(before), with labels \(after)")
    }

    /// A checkpoint names its labelled part: a resume with other labelled crops, or none, is refused.
    @Test func resumeNeedsTheSameLabelledCrops() throws {
        let (unlabelled, _) = try spottedCrops(count: 32, seed: 1)
        let (images, classes) = try spottedCrops(count: 8, seed: 2)
        let labelled = try LabelledCrops(images: images, labels: classes, beans: Array(0..<8), classNames: ["sound", "spotted"])
        var short = options()
        short.epochs = 1
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("semisupervised-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let checkpoint = directory + "/ckpt"
        try BackboneTrainer(options: short, images: unlabelled, labelled: labelled).train(checkpoint: checkpoint)
        try BackboneTrainer(options: short, images: unlabelled, labelled: labelled).resume(from: checkpoint)
        #expect(throws: TrainingError.self) { try BackboneTrainer(options: short, images: unlabelled).resume(from: checkpoint) }
        let relabelled = try LabelledCrops(images: images, labels: classes.map { 1 - $0 }, beans: Array(0..<8),
                                           classNames: ["sound", "spotted"])
        #expect(throws: TrainingError.self) {
            try BackboneTrainer(options: short, images: unlabelled, labelled: relabelled).resume(from: checkpoint)
        }
        var otherBatch = short
        otherBatch.supervisedBatch = 4
        #expect(throws: TrainingError.self) {
            try BackboneTrainer(options: otherBatch, images: unlabelled, labelled: labelled).resume(from: checkpoint)
        }
    }

    @Test func labelledCropsNeedThePlainContrastiveObjectiveAndTheSameSize() throws {
        let (unlabelled, _) = try spottedCrops(count: 8, seed: 1)
        let (images, classes) = try spottedCrops(count: 4, seed: 2)
        let labelled = try LabelledCrops(images: images, labels: classes, beans: Array(0..<4), classNames: ["sound", "spotted"])
        var cutpaste = options()
        cutpaste.objective = .cutpaste
        #expect(throws: TrainingError.self) { try BackboneTrainer(options: cutpaste, images: unlabelled, labelled: labelled) }
        var multiCrop = options()
        multiCrop.localViews = 2
        #expect(throws: TrainingError.self) { try BackboneTrainer(options: multiCrop, images: unlabelled, labelled: labelled) }
        let larger = try CropImages(size: 20, pixels: [UInt8](repeating: 90, count: 4 * 20 * 20 * 3))
        let mismatched = try LabelledCrops(images: larger, labels: classes, beans: Array(0..<4), classNames: ["sound", "spotted"])
        #expect(throws: TrainingError.self) { try BackboneTrainer(options: options(), images: unlabelled, labelled: mismatched) }
        var tooSmall = options()
        tooSmall.supervisedBatch = 1
        #expect(throws: TrainingError.self) { try tooSmall.validate() }
    }

    @Test func drawGivesDistinctIndicesCoveringTheRange() {
        var rng = SeededRandom(seed: 4)
        var seen = Set<Int>()
        for _ in 0..<200 {
            let drawn = BackboneTrainer.draw(5, of: 12, rng: &rng)
            #expect(drawn.count == 5 && Set(drawn).count == 5 && drawn.allSatisfy { (0..<12).contains($0) })
            seen.formUnion(drawn)
        }
        #expect(seen == Set(0..<12))
        #expect(BackboneTrainer.draw(9, of: 3, rng: &rng).sorted() == [0, 1, 2])
    }
}
