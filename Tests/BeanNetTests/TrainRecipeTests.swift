import Foundation
import Testing
@testable import BeanNet

/// Synthetic 16×16 "beans": a bright or dark ellipse on black, with noise; class 0 or 1.
private func syntheticCrops(count: Int, size: Int = 16, seed: UInt64) -> (CropImages, [Int]) {
    var rng = SeededRandom(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * size * size * 3)
    var labels: [Int] = []
    for i in 0..<count {
        let label = i % 2
        labels.append(label)
        let base: (Float, Float, Float) = label == 0 ? (180, 150, 90) : (60, 50, 40)
        let rx = Float(size) * (0.30 + 0.1 * rng.uniform()), ry = Float(size) * (0.18 + 0.08 * rng.uniform())
        for y in 0..<size {
            for x in 0..<size {
                let dx = (Float(x) - Float(size) / 2) / rx, dy = (Float(y) - Float(size) / 2) / ry
                guard dx * dx + dy * dy <= 1 else { continue }
                let o = ((i * size + y) * size + x) * 3
                let noise = (rng.uniform() - 0.5) * 30
                pixels[o] = UInt8(max(0, min(255, base.0 + noise)))
                pixels[o + 1] = UInt8(max(0, min(255, base.1 + noise)))
                pixels[o + 2] = UInt8(max(0, min(255, base.2 + noise)))
            }
        }
    }
    // The byte count is whole by construction.
    return (try! CropImages(size: size, pixels: pixels), labels)
}

@Suite struct TrainRecipeTests {
    @Test func ntXentGradientMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 3)
        let n = 6, d = 4
        // The loss is a function of z through the similarities only; check dL/dz directly.
        let z = Tensor(shape: [n, d], data: (0..<(n * d)).map { _ in rng.normal() * 0.5 })
        let (_, grad) = ContrastiveLoss.ntXent(z, temperature: 0.5)
        let h: Float = 1e-2
        for i in 0..<(n * d) {
            var plus = z, minus = z
            plus.data[i] += h
            minus.data[i] -= h
            let numeric = (ContrastiveLoss.ntXent(plus, temperature: 0.5).loss - ContrastiveLoss.ntXent(minus, temperature: 0.5).loss) / (2 * h)
            #expect(abs(numeric - grad.data[i]) <= 1e-3 + 1e-2 * abs(numeric), "dL/dz[\(i)]: analytic \(grad.data[i]), numeric \(numeric)")
        }
    }

    @Test func contrastiveCutpasteGradientMatchesFiniteDifferences() {
        // The combined loss routes rows [a; b] to the projector and [a; c] to the classifier; the
        // gradient with respect to the trunk's output must add both heads' parts on a's rows.
        var rng = SeededRandom(seed: 6)
        let b = 3, c = 4
        let projector = BackboneModel.projector(c, rng: &rng), classifier = BackboneModel.pasteClassifier(c, rng: &rng)
        let h = Tensor(shape: [3 * b, c, 2, 2], data: (0..<(3 * b * c * 4)).map { _ in rng.normal() })
        let loss = { (x: Tensor) in
            BackboneTrainer.contrastiveCutpasteLoss(x, batch: b, projector: projector, classifier: classifier, temperature: 0.5).loss
        }
        let (_, grad) = BackboneTrainer.contrastiveCutpasteLoss(h, batch: b, projector: projector, classifier: classifier, temperature: 0.5)
        #expect(grad.shape == h.shape)
        let eps: Float = 1e-2
        var compared = 0
        for i in stride(from: 0, to: h.count, by: 5) {
            var plus = h, minus = h
            plus.data[i] += eps
            minus.data[i] -= eps
            let numeric = (loss(plus) - loss(minus)) / (2 * eps)
            #expect(abs(numeric - grad.data[i]) <= 2e-3 + 2e-2 * abs(numeric), "dL/dh[\(i)]: analytic \(grad.data[i]), numeric \(numeric)")
            compared += 1
        }
        #expect(compared > 20)
        // Every part of h matters: a's rows feed both heads, b's the projector, c's the classifier.
        let block = h.count / 3
        for part in 0..<3 {
            #expect(grad.data[(part * block)..<((part + 1) * block)].contains { abs($0) > 1e-6 }, "no gradient on part \(part)")
        }
    }

    @Test func multiPositiveIsNtXentForTwoViewsAndItsGradientMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 8)
        let d = 4
        let pairs = Tensor(shape: [6, d], data: (0..<(6 * d)).map { _ in rng.normal() * 0.5 })
        // Two views of each of three crops: SimCLR's NT-Xent, written out here as its definition.
        let n = 6, invT: Float = 2
        var expected: Float = 0
        for i in 0..<n {
            func logit(_ j: Int) -> Float { (0..<d).reduce(Float(0)) { $0 + pairs.data[i * d + $1] * pairs.data[j * d + $1] } * invT }
            let others = (0..<n).filter { $0 != i }
            let logZ = log(others.reduce(Float(0)) { $0 + exp(logit($1)) })
            expected += (logZ - logit((i + 3) % n)) / Float(n)
        }
        let two = ContrastiveLoss.multiPositive(pairs, groups: [0, 1, 2, 0, 1, 2], temperature: 0.5)
        #expect(abs(two.loss - expected) < 1e-5, "\(two.loss) against \(expected)")
        // Three crops, four views each (two views and two local views), rows in view-major order.
        let groups = (0..<4).flatMap { _ in [0, 1, 2] }
        let z = Tensor(shape: [12, d], data: (0..<(12 * d)).map { _ in rng.normal() * 0.5 })
        let (_, grad) = ContrastiveLoss.multiPositive(z, groups: groups, temperature: 0.5)
        let h: Float = 1e-2
        for i in 0..<(12 * d) {
            var plus = z, minus = z
            plus.data[i] += h
            minus.data[i] -= h
            let numeric = (ContrastiveLoss.multiPositive(plus, groups: groups, temperature: 0.5).loss
                - ContrastiveLoss.multiPositive(minus, groups: groups, temperature: 0.5).loss) / (2 * h)
            #expect(abs(numeric - grad.data[i]) <= 1e-3 + 1e-2 * abs(numeric), "dL/dz[\(i)]: analytic \(grad.data[i]), numeric \(numeric)")
        }
    }

    /// A local view of half the crop's side at half the output side shows the crop's own pixels
    /// (one output pixel per crop pixel), from the crop's middle.
    @Test func localViewsShowPartOfTheCropAtItsOwnResolution() throws {
        let size = 16
        let pixels = (0..<(size * size * 3)).map { UInt8(($0 * 7) % 251) }
        let images = try CropImages(size: size, pixels: pixels)
        let tensorizer = CropTensorizer(mean: [0, 0, 0], std: [1, 1, 1])
        var rng = SeededRandom(seed: 2)
        let views = tensorizer.localBatch(images, indices: [0, 0], views: 3, side: size / 2, fractionRange: 0.5...0.5,
                                          augmentation: .none, rng: &rng)
        #expect(views.shape == [6, 3, size / 2, size / 2])
        let plane = (size / 2) * (size / 2)
        for view in 0..<6 {
            // Find where the view's top-left pixel sits in the crop; the rest must follow 1:1.
            let values = Array(views.data[(view * 3 * plane)..<((view * 3 + 1) * plane)])
            let half = size / 2
            func shows(_ ox: Int, _ oy: Int) -> Bool {
                for y in 0..<half {
                    for x in 0..<half {
                        let crop = Float(pixels[((oy + y) * size + ox + x) * 3]) / 255
                        if abs(values[y * half + x] - crop) > 1e-6 { return false }
                    }
                }
                return true
            }
            var matches: [(x: Int, y: Int)] = []
            for oy in 0...(size - half) { for ox in 0...(size - half) where shows(ox, oy) { matches.append((ox, oy)) } }
            #expect(matches.count == 1, "view \(view): \(matches.count) placements in the crop")
            if let origin = matches.first {
                // Centres within ±0.7 of the slack in x (along the bean) and ±0.5 in y, (16 / 2) × (1 − 0.5) = 4 px.
                #expect(abs(origin.x - size / 4) <= 3 && abs(origin.y - size / 4) <= 2, "view \(view) at \(origin.x), \(origin.y)")
            }
        }
    }

    @Test func multiCropPretrainingLowersTheLossAndResumesWithItsSetting() throws {
        let (images, _) = syntheticCrops(count: 32, size: 16, seed: 5)
        var options = BackboneOptions()
        options.shape = .tiny
        options.epochs = 12
        options.batch = 16
        options.learningRate = 3e-3
        options.seed = 9
        options.localViews = 2
        let trainer = try BackboneTrainer(options: options, images: images)
        let running = trainer.model.whole.buffers.map(\.value)
        var losses: [Float] = []
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("multicrop-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try trainer.train(checkpoint: directory + "/ckpt", epochEnd: { losses.append($0.meanLoss) })
        let first = (losses[0] + losses[1]) / 2, last = (losses[10] + losses[11]) / 2
        #expect(last < first * 0.9, "loss per epoch: \(losses)")
        #expect(trainer.model.whole.buffers.map(\.value) != running, "batch-norm statistics learned from the two views")
        var other = options
        other.localViews = 0
        #expect(throws: TrainingError.self) { try BackboneTrainer(options: other, images: images).resume(from: directory + "/ckpt") }
        other.localViews = 2
        try BackboneTrainer(options: other, images: images).resume(from: directory + "/ckpt")
        var wrong = options
        wrong.objective = .cutpaste
        #expect(throws: TrainingError.self) { try wrong.validate() }
    }

    @Test func ntXentIsLowerWhenViewsAgree() {
        var rng = SeededRandom(seed: 4)
        let half = 4, d = 8
        let a = (0..<(half * d)).map { _ in rng.normal() }
        let unit: ([Float]) -> [Float] = { v in
            var out = v
            for r in 0..<(v.count / d) {
                let norm = (0..<d).reduce(Float(0)) { $0 + v[r * d + $1] * v[r * d + $1] }.squareRoot()
                for c in 0..<d { out[r * d + c] /= norm }
            }
            return out
        }
        let agreeing = Tensor(shape: [2 * half, d], data: unit(a + a))
        let random = Tensor(shape: [2 * half, d], data: unit(a + (0..<(half * d)).map { _ in rng.normal() }))
        #expect(ContrastiveLoss.ntXent(agreeing, temperature: 0.2).loss < ContrastiveLoss.ntXent(random, temperature: 0.2).loss)
    }

    /// Mean loss per epoch of a short pre-training on 32 synthetic crops.
    private func pretrainingLosses(_ objective: BackboneObjective, cropSize: Int, epochs: Int) throws -> [Float] {
        let (images, _) = syntheticCrops(count: 32, size: cropSize, seed: 5)
        var options = BackboneOptions()
        options.objective = objective
        options.shape = .tiny
        options.epochs = epochs
        options.batch = 16
        options.learningRate = 3e-3
        options.seed = 9
        let trainer = try BackboneTrainer(options: options, images: images)
        var losses: [Float] = []
        try trainer.train(checkpoint: nil, epochEnd: { losses.append($0.meanLoss) })
        return losses
    }

    @Test(arguments: [BackboneObjective.autoencoder, .contrastive, .contrastiveCutpaste, .multiScaleContrastive])
    func shortPretrainingLowersTheLoss(objective: BackboneObjective) throws {
        let losses = try pretrainingLosses(objective, cropSize: 16, epochs: 12)
        #expect(losses.count == 12)
        let first = (losses[0] + losses[1]) / 2, last = (losses[10] + losses[11]) / 2
        #expect(last < first * 0.9, "loss per epoch: \(losses)")
    }

    /// The CutPaste task starts at chance (ln 2) and needs more steps than the others to learn.
    @Test func cutPastePretrainingLearnsToSpotThePaste() throws {
        let losses = try pretrainingLosses(.cutpaste, cropSize: 32, epochs: 40)
        #expect(losses.count == 40)
        let first = (losses[0] + losses[1]) / 2
        let last = losses.suffix(4).reduce(0, +) / 4
        #expect(first > 0.6 && last < first * 0.9, "loss per epoch: \(losses)")
    }

    @Test func cutPasteMovesOneRectangleOfEachCrop() {
        var rng = SeededRandom(seed: 3)
        let (n, c, h, w) = (8, 3, 32, 32)
        let original = Tensor(shape: [n, c, h, w], data: (0..<(n * c * h * w)).map { _ in rng.uniform() + 1 })
        var x = original
        CutPaste.apply(to: &x, rng: &rng)
        for k in 0..<n {
            // The changed pixels lie in one rectangle no larger than the largest patch, the same
            // in every channel.
            var minX = w, minY = h, maxX = -1, maxY = -1
            for ch in 0..<c {
                for y in 0..<h {
                    for xx in 0..<w where x.data[((k * c + ch) * h + y) * w + xx] != original.data[((k * c + ch) * h + y) * w + xx] {
                        minX = min(minX, xx); maxX = max(maxX, xx); minY = min(minY, y); maxY = max(maxY, y)
                    }
                }
            }
            #expect(maxX >= 0, "crop \(k) unchanged")
            let side = Int(CutPaste.maxFraction * Double(w))
            #expect(maxX - minX < side && maxY - minY < side, "crop \(k): change spans \(minX)…\(maxX) × \(minY)…\(maxY)")
        }
    }

    @Test func resumedRunEqualsUninterruptedRun() throws {
        let (images, _) = syntheticCrops(count: 24, seed: 6)
        var options = BackboneOptions()
        options.objective = .contrastive
        options.shape = .tiny
        options.batch = 8
        options.epochs = 3
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("beand-resume-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/backbone.ckpt"

        let straight = try BackboneTrainer(options: options, images: images)
        try straight.train(checkpoint: nil)

        var shortOptions = options
        shortOptions.epochs = 1
        let first = try BackboneTrainer(options: shortOptions, images: images)
        try first.train(checkpoint: path)
        let resumed = try BackboneTrainer(options: options, images: images)
        try resumed.resume(from: path)
        #expect(resumed.epochsDone == 1)
        try resumed.train(checkpoint: path)

        let a = straight.model.whole.namedState(prefix: ""), b = resumed.model.whole.namedState(prefix: "")
        #expect(a.count == b.count)
        for (x, y) in zip(a, b) {
            #expect(x.0 == y.0)
            #expect(x.1.value == y.1.value, "\(x.0) differs after resume")
        }
    }

    @Test func resumeRefusesAnotherConfiguration() throws {
        let (images, _) = syntheticCrops(count: 8, seed: 7)
        var options = BackboneOptions()
        options.shape = .tiny
        options.batch = 4
        options.epochs = 1
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("beand-resume-other-\(getpid()).ckpt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try BackboneTrainer(options: options, images: images).train(checkpoint: path)
        options.objective = .autoencoder
        let other = try BackboneTrainer(options: options, images: images)
        #expect(throws: TrainingError.self) { try other.resume(from: path) }
        // Another zoom is another run too; the error names it, and the checkpoint stays usable.
        options.objective = .contrastive
        options.augmentation.zoom = 0.5
        do {
            try BackboneTrainer(options: options, images: images).resume(from: path)
            Issue.record("a checkpoint made without zoom was resumed with --zoom 0.5")
        } catch let error as TrainingError {
            #expect("\(error)".contains("zoom"), "\(error)")
        }
        options.augmentation.zoom = 0
        // So are other view augmentations and another contrastive temperature.
        for change in [{ (o: inout BackboneOptions) in o.augmentation.brightness = 0.3 },
                       { (o: inout BackboneOptions) in o.augmentation.colour = 0.2 },
                       { (o: inout BackboneOptions) in o.temperature = 0.1 },
                       { (o: inout BackboneOptions) in o.augmentation.rotation = 10 }] {
            var other = options
            change(&other)
            #expect(throws: TrainingError.self) { try BackboneTrainer(options: other, images: images).resume(from: path) }
        }
        try BackboneTrainer(options: options, images: images).resume(from: path)
    }

    @Test func badInputIsRefusedWithAReason() {
        #expect(throws: TrainingError.self) { try CropImages(size: 16, pixels: [UInt8](repeating: 0, count: 100)) }
        let one = try? CropImages(size: 4, pixels: [UInt8](repeating: 0, count: 48))
        #expect(one != nil)
        if let one {
            #expect(throws: TrainingError.self) { try BackboneTrainer(options: BackboneOptions(), images: one) }
            #expect(throws: TrainingError.self) { try LabelledCrops(images: one, labels: [], beans: [], classNames: ["Normal"]) }
            #expect(throws: TrainingError.self) { try LabelledCrops(images: one, labels: [3], beans: [0], classNames: ["Normal"]) }
        }
        var options = HeadOptions()
        options.classesPerBatch = 1
        #expect(throws: TrainingError.self) { try options.validate() }
        // The multi-scale head's own settings, each named in its error.
        for (change, word) in [({ (o: inout HeadOptions) in o.fineTuneSteps = -1 }, "fine-tuning"),
                               ({ (o: inout HeadOptions) in o.fineTuneLearningRate = 0 }, "fine-tuning"),
                               ({ (o: inout HeadOptions) in o.cosineScale = .nan }, "cosine scale"),
                               ({ (o: inout HeadOptions) in o.linearPenalty = -1 }, "linear penalty")] {
            var bad = HeadOptions()
            change(&bad)
            do {
                try bad.validate()
                Issue.record("\(word): invalid options accepted")
            } catch let error as TrainingError {
                #expect("\(error)".contains(word), "\(error)")
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        var backbone = BackboneOptions()
        backbone.epochs = 0
        #expect(throws: TrainingError.self) { try backbone.validate() }
    }

    private func headTrainer(collapseDistance: Float, steps: Int, kind: HeadKind = .multiScale) throws -> HeadTrainer {
        let (images, labels) = syntheticCrops(count: 24, seed: 8)
        let data = try LabelledCrops(images: images, labels: labels, beans: Array(0..<24), classNames: ["Normal", "Black"])
        var options = HeadOptions(kind: kind)
        options.steps = steps
        options.classesPerBatch = 2
        options.beansPerClass = 4
        options.embedding = 8
        options.hidden = 16
        options.guardEvery = 10
        options.collapseDistance = collapseDistance
        options.copiesPerPose = 1
        let trunk = TrunkShape.tiny.makeTrunk(seed: 2)
        return try HeadTrainer(options: options, trunk: trunk, shape: .tiny, data: data)
    }

    @Test(arguments: HeadKind.allCases)
    func headSeparatesTwoClassesAndExportsOneEncoder(kind: HeadKind) throws {
        let trainer = try headTrainer(collapseDistance: 0.01, steps: 80, kind: kind)
        var losses: [Float] = []
        let report = try trainer.train(progress: { _, _, loss in losses.append(loss) })
        #expect(report.guardEvents.isEmpty)
        #expect(losses.count == 80)
        #expect(losses.suffix(10).reduce(0, +) < losses.prefix(10).reduce(0, +), "running loss: \(losses)")
        let z = trainer.encoder.embed(trainer.data.images)
        #expect(z.shape == [24, 8])
        // Unit rows, and each crop nearer to its own class's centroid.
        for r in 0..<24 {
            let norm = (0..<8).reduce(Float(0)) { $0 + z.data[r * 8 + $1] * z.data[r * 8 + $1] }.squareRoot()
            #expect(abs(norm - 1) < 1e-4)
        }
        var centroids = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 2)
        for r in 0..<24 { for c in 0..<8 { centroids[trainer.data.labels[r]][c] += z.data[r * 8 + c] / 12 } }
        var nearestOwn = 0
        for r in 0..<24 {
            let d = (0..<2).map { k in (0..<8).reduce(Float(0)) { $0 + pow(z.data[r * 8 + $1] - centroids[k][$1], 2) } }
            if d[trainer.data.labels[r]] < d[1 - trainer.data.labels[r]] { nearestOwn += 1 }
        }
        #expect(nearestOwn >= 22)
        // The exported ONNX runs in the daemon's runtime with the same outputs as training's forward.
        let onnx = try ONNXExport.encoder(trainer.encoder, inputShape: [3, 16, 16])
        let model = try EncoderModel(data: onnx, source: "head-test")
        #expect(model.outputDim == 8)
        let x = CropTensorizer().batch(trainer.data.images, indices: [0, 1, 2], poses: [0, 0, 0])
        let session = try model.makeSession(maxBatch: 3)
        var out = [Float](repeating: 0, count: 24)
        try session.run(input: x.data, batch: 3, output: &out)
        for i in 0..<24 { #expect(abs(out[i] - z.data[i]) < 1e-4) }
    }

    @Test func fineTuningTheTrunkMovesItAndStillExports() throws {
        var trainer = try headTrainer(collapseDistance: 0.01, steps: 40)
        _ = try trainer.train()
        let before = trainer.encoder.embed(trainer.data.images)
        // Without fine-tuning steps the call leaves everything as it is.
        #expect(trainer.fineTuneTrunk() == 0)
        #expect(trainer.encoder.embed(trainer.data.images) == before)

        let (images, labels) = syntheticCrops(count: 24, seed: 8)
        var options = trainer.options
        options.fineTuneSteps = 12
        options.fineTuneLearningRate = 1e-2
        options.fineTuneBatch = 8
        let data = try LabelledCrops(images: images, labels: labels, beans: Array(0..<24), classNames: ["Normal", "Black"])
        trainer = try HeadTrainer(options: options, trunk: TrunkShape.tiny.makeTrunk(seed: 2), shape: .tiny, data: data)
        _ = try trainer.train()
        let frozen = trainer.encoder.embed(trainer.data.images)
        var steps = 0
        let loss = trainer.fineTuneTrunk(progress: { step, _, _ in steps = step })
        #expect(steps == 12 && loss.isFinite && loss > 0)
        let tuned = trainer.encoder.embed(trainer.data.images)
        let moved = zip(frozen.data, tuned.data).map { abs($0 - $1) }.max() ?? 0
        #expect(moved > 1e-3, "fine-tuning did not change the embeddings")
        // The fine-tuned trunk with the folded standardisation exports and runs in the runtime.
        let onnx = try ONNXExport.encoder(trainer.encoder, inputShape: [3, 16, 16])
        let session = try EncoderModel(data: onnx, source: "fine-tuned").makeSession(maxBatch: 3)
        let x = CropTensorizer().batch(trainer.data.images, indices: [0, 1, 2], poses: [0, 0, 0])
        var out = [Float](repeating: 0, count: 3 * tuned.shape[1])
        try session.run(input: x.data, batch: 3, output: &out)
        for i in out.indices { #expect(abs(out[i] - tuned.data[i]) < 1e-4) }
    }

    @Test func zoomMagnifiesAWindowOfTheCrop() throws {
        // A crop whose 16 × 16 pixels are all different (red = x·16, green = y·16).
        var pixels = [UInt8](repeating: 0, count: 16 * 16 * 3)
        for y in 0..<16 { for x in 0..<16 { pixels[(y * 16 + x) * 3] = UInt8(x * 16); pixels[(y * 16 + x) * 3 + 1] = UInt8(y * 16) } }
        let crop = try CropImages(size: 16, pixels: pixels)
        let tensorizer = CropTensorizer(mean: [0, 0, 0], std: [1, 1, 1])
        var plain = Augmentation.none
        var rng = SeededRandom(seed: 5)
        let same = tensorizer.batch(crop, indices: [0], augmentation: plain, rng: &rng)
        #expect(same == tensorizer.batch(crop, indices: [0], poses: [0]))
        plain.zoom = 1
        var magnified = 0
        for _ in 0..<8 {
            let x = tensorizer.batch(crop, indices: [0], augmentation: plain, rng: &rng)
            // Magnified with nearest neighbours: rows keep one green value each and columns one
            // red value, both never decreasing, every value one of the crop's, and some repeated.
            let red = (0..<16).map { x.data[$0] }, green = (0..<16).map { x.data[256 + $0 * 16] }
            #expect(red == red.sorted() && green == green.sorted())
            #expect(red.allSatisfy { v in (0..<16).contains { abs(Float($0 * 16) / 255 - v) < 1e-6 } })
            if Set(red).count < 16 || Set(green).count < 16 { magnified += 1 }
            for r in 0..<16 { #expect((0..<16).allSatisfy { x.data[r * 16 + $0] == red[$0] }) }
        }
        #expect(magnified >= 4, "only \(magnified) of 8 views repeat pixels")
    }

    @Test func rotationTurnsTheCropAboutItsCentre() throws {
        // One bright pixel 6 pixels right of the centre of a 16 × 16 crop: a turned view moves it
        // along the circle of radius 6 (nearest neighbour: within a pixel), by at most the angle.
        var pixels = [UInt8](repeating: 0, count: 16 * 16 * 3)
        pixels[(8 * 16 + 14) * 3] = 255
        let crop = try CropImages(size: 16, pixels: pixels)
        let tensorizer = CropTensorizer(mean: [0, 0, 0], std: [1, 1, 1])
        var turning = Augmentation.none
        turning.rotation = 30
        var rng = SeededRandom(seed: 8)
        var moved = 0
        for _ in 0..<12 {
            let x = tensorizer.batch(crop, indices: [0], augmentation: turning, rng: &rng)
            let lit = (0..<256).filter { x.data[$0] > 0.5 }
            #expect(lit.count >= 1 && lit.count <= 2, "lit pixels \(lit)")
            for p in lit {
                let (u, v) = (Float(p % 16) + 0.5 - 8, Float(p / 16) + 0.5 - 8)
                let radius = (u * u + v * v).squareRoot(), angle = abs(atan2(v, u)) * 180 / .pi
                #expect(abs(radius - 6.5) <= 1.5 && angle <= 30 + 10, "pixel \(p): radius \(radius), angle \(angle)")
            }
            if lit != [8 * 16 + 14] { moved += 1 }
        }
        #expect(moved >= 6, "only \(moved) of 12 views turned the pixel")
        // Off by default: a plain view is the crop itself.
        #expect(Augmentation().rotation == 0)
    }

    @Test func collapseGuardRestoresAndLowersTheLearningRate() throws {
        // A spread no embedding can reach (unit vectors are at most 2 apart) trips the guard at
        // every check: it must restore, halve the rate, log, and stop once the rate is tiny.
        let trainer = try headTrainer(collapseDistance: 5, steps: 30)
        var logged: [String] = []
        let report = try trainer.train(log: { logged.append($0) })
        #expect(!report.guardEvents.isEmpty)
        #expect(logged.contains { $0.contains("collapse guard") && $0.contains("restored step 0") })
        #expect(logged.last?.contains("stopping") == true)
    }
}
