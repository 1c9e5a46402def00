import Foundation

/// Shape of the bean encoder's convolutional trunk: a ResNet-18-like network scaled down to fit
/// the training budget on a 2-core box (a 3×3 stem, then one stage per width, each later stage
/// halving the resolution).
public struct TrunkShape: Sendable, Equatable, CustomStringConvertible {
    public var widths: [Int]
    public var blocks: [Int]
    public var stemStride: Int

    public init(widths: [Int] = [16, 32, 64, 128], blocks: [Int] = [1, 1, 1, 1], stemStride: Int = 2) {
        self.widths = widths; self.blocks = blocks; self.stemStride = stemStride
    }

    public static let tiny = TrunkShape(widths: [4, 8], blocks: [1, 1], stemStride: 2)

    public var description: String {
        "widths \(widths.map(String.init).joined(separator: ",")) blocks \(blocks.map(String.init).joined(separator: ",")) stem stride \(stemStride)"
    }

    /// "16,32,64,128" style lists; the check names the option.
    public func validate() throws {
        guard !widths.isEmpty, widths.count == blocks.count else {
            throw TrainingError("trunk: \(widths.count) widths for \(blocks.count) block counts")
        }
        guard widths.allSatisfy({ (1...1024).contains($0) }), blocks.allSatisfy({ (1...8).contains($0) }),
              (1...4).contains(stemStride) else {
            throw TrainingError("trunk: widths must be 1…1024, blocks 1…8, stem stride 1…4 (\(self))")
        }
    }

    /// Layers of the trunk: stem conv, BN, ReLU, then the residual blocks. Output [N, widths.last, h, w].
    public func makeTrunk(seed: UInt64) -> Sequential {
        var rng = SeededRandom(seed: seed)
        var layers: [Layer] = [
            Conv2d(3, widths[0], kernel: 3, stride: stemStride, padding: 1, bias: false, rng: &rng),
            BatchNorm2d(widths[0]),
            ReLU(),
        ]
        var channels = widths[0]
        for (stage, width) in widths.enumerated() {
            for b in 0..<blocks[stage] {
                layers.append(ResidualBlock(channels, width, stride: (stage > 0 && b == 0) ? 2 : 1, rng: &rng))
                channels = width
            }
        }
        return Sequential(layers)
    }

    /// Index in the trunk's layers where the last stage starts (what `train head` may fine-tune).
    public var lastStageStart: Int { 3 + blocks.dropLast().reduce(0, +) }

    /// Index in the trunk's layers of each stage's last residual block (what the multi-scale head
    /// pools).
    public var stageEnds: [Int] {
        var end = 2
        return blocks.map { end += $0; return end }
    }

    /// Side of the trunk's output for a square input of `size`.
    public func outputSide(input size: Int) -> Int {
        var s = (size + 2 - 3) / stemStride + 1
        for _ in 1..<widths.count { s = (s + 2 - 3) / 2 + 1 }
        return s
    }
}

/// The self-supervised task the trunk is pre-trained on.
public enum BackboneObjective: String, Sendable, CaseIterable {
    /// Convolutional autoencoder: a decoder rebuilds the crop from the trunk's feature map (MSE).
    /// The issue measured this alone at AUC 0.68 on these photos.
    case autoencoder
    /// SimCLR-style contrastive learning: two augmented views of a crop must be nearer to each
    /// other than to every other crop of the batch (NT-Xent loss on a small projector).
    case contrastive
    /// CutPaste (Li et al. 2021): tell an augmented crop from the same crop with a patch of the
    /// bean cut out and pasted elsewhere on it (cross-entropy on a small classifier): a local,
    /// defect-like irregularity rather than the whole-crop invariances of contrastive learning.
    case cutpaste
    /// Both at once: the NT-Xent loss on two views of each crop plus the CutPaste cross-entropy on
    /// the first view against a pasted copy of it, each on its own small head. Whole-bean
    /// invariances from the one, local irregularities from the other.
    case contrastiveCutpaste = "contrastive+cutpaste"
    /// NT-Xent as `contrastive`, but the projector reads the per-channel means and standard
    /// deviations of every stage (`MultiScalePooling`, what the multi-scale head reads) instead of
    /// the last stage's pooled output, so the early stages must tell beans apart too.
    case multiScaleContrastive = "contrastive-multiscale"
    /// Self-distillation without negatives (BYOL, Grill et al. 2020): the trunk and projector,
    /// through a predictor, must give one view of a crop what a moving average of themselves (the
    /// target) gives the other view. Nothing pushes crops apart, so beans that look alike are not
    /// forced away from each other as NT-Xent's negatives force them in a batch of 64.
    case byol
}

/// Everything `train backbone` trains: the trunk plus the objective's own layers (decoder or
/// projector), which are discarded afterwards.
public final class BackboneModel {
    public let shape: TrunkShape
    public let objective: BackboneObjective
    public let trunk: Sequential
    public let extra: Sequential
    /// Trunk and extra in one container, for checkpoints and the optimiser.
    public let whole: Sequential
    /// `contrastive-multiscale`: the pooling the projector reads, around `trunk` (not part of
    /// `whole`, which already holds the trunk's parameters).
    public let pooling: MultiScalePooling?
    /// `byol`: the moving-average target network (trunk and projector), part of `extra` for
    /// checkpoints but not trained by the optimiser (its weights are buffers).
    public let target: MovingAverageCopy?

    public init(shape: TrunkShape, objective: BackboneObjective, seed: UInt64) {
        self.shape = shape
        self.objective = objective
        trunk = shape.makeTrunk(seed: seed)
        var rng = SeededRandom(seed: seed ^ 0x5EED_0F_DEC0DE)
        let top = shape.widths.last ?? 1
        pooling = objective == .multiScaleContrastive ? MultiScalePooling(trunk: trunk, taps: shape.stageEnds) : nil
        var target: MovingAverageCopy?
        switch objective {
        case .autoencoder:
            // Back up the stride pyramid: one ×2 upsampling per stride-2 stage (and the stem).
            var layers: [Layer] = []
            var channels = top
            let ups = (shape.widths.count - 1) + (shape.stemStride == 2 ? 1 : 0)
            for _ in 0..<ups {
                let next = max(channels / 2, 8)
                layers += [Upsample2x(), Conv2d(channels, next, kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng),
                           BatchNorm2d(next), ReLU()] as [Layer]
                channels = next
            }
            layers.append(Conv2d(channels, 3, kernel: 3, stride: 1, padding: 1, bias: true, rng: &rng))
            extra = Sequential(layers)
        case .contrastive:
            extra = Self.projector(top, rng: &rng)
        case .multiScaleContrastive:
            let width = MultiScalePooling.featureCount(channels: shape.widths)
            extra = Sequential([Linear(width, 128, rng: &rng), ReLU(), Linear(128, 64, rng: &rng), L2Normalize()])
        case .cutpaste:
            extra = Self.pasteClassifier(top, rng: &rng)
        case .contrastiveCutpaste:
            // Two heads side by side on the trunk's output (not in sequence): `trainStep` runs each
            // on its own rows.
            extra = Sequential([Self.projector(top, rng: &rng), Self.pasteClassifier(top, rng: &rng)])
        case .byol:
            // extra = [projector, predictor, target]; `trainStep` runs each on its own. The target
            // starts as a copy of trunk and projector (built alike, then given their values).
            let projector = Self.byolProjector(top, rng: &rng)
            var overwritten = SeededRandom(seed: 0)  // the copy's initial values are replaced by the online network's
            let copy = MovingAverageCopy(Sequential([shape.makeTrunk(seed: seed), Self.byolProjector(top, rng: &overwritten),
                                                     Flatten(), L2Normalize()]),
                                         following: Sequential([trunk, projector]))
            target = copy
            extra = Sequential([projector, Self.byolPredictor(rng: &rng), copy])
        }
        self.target = target
        whole = Sequential([trunk, extra])
    }

    /// BYOL's projector: pooled trunk output → 256 (batch norm, ReLU) → 64, as 1×1 convolutions
    /// on the pooled 1×1 map so batch normalisation applies.
    static func byolProjector(_ top: Int, rng: inout SeededRandom) -> Sequential {
        Sequential([GlobalAvgPool(), Conv2d(top, 256, kernel: 1, bias: false, rng: &rng), BatchNorm2d(256), ReLU(),
                    Conv2d(256, byolWidth, kernel: 1, bias: true, rng: &rng)])
    }

    /// BYOL's predictor on the projector's output, the same shape of MLP, then unit length.
    static func byolPredictor(rng: inout SeededRandom) -> Sequential {
        Sequential([Conv2d(byolWidth, 256, kernel: 1, bias: false, rng: &rng), BatchNorm2d(256), ReLU(),
                    Conv2d(256, byolWidth, kernel: 1, bias: true, rng: &rng), Flatten(), L2Normalize()])
    }

    static let byolWidth = 64

    /// NT-Xent projector: pooled trunk output → 64 unit values.
    static func projector(_ top: Int, rng: inout SeededRandom) -> Sequential {
        Sequential([GlobalAvgPool(), Flatten(), Linear(top, top, rng: &rng), ReLU(), Linear(top, 64, rng: &rng), L2Normalize()])
    }

    /// CutPaste classifier: pooled trunk output → logits of (as is, pasted).
    static func pasteClassifier(_ top: Int, rng: inout SeededRandom) -> Sequential {
        Sequential([GlobalAvgPool(), Flatten(), Linear(top, top, rng: &rng), ReLU(), Linear(top, 2, rng: &rng)])
    }
}

/// Options of `train backbone`.
public struct BackboneOptions: Sendable, Equatable {
    public var objective: BackboneObjective = .contrastive
    public var shape = TrunkShape()
    public var epochs = 4
    public var batch = 64
    public var learningRate: Float = 2e-3
    public var weightDecay: Float = 1e-4
    /// NT-Xent temperature.
    public var temperature: Float = 0.2
    public var seed: UInt64 = 1
    public var augmentation = Augmentation()
    /// At most this many steps per epoch (0 = the whole set); for smoke runs and tests.
    public var maxStepsPerEpoch = 0
    /// `contrastive` only: this many local views of each crop besides its two views (multi-crop,
    /// as in SwAV and DINO): half the crop's side, showing 35–60 % of it at about its own
    /// resolution. Every view of a crop is a positive of every other (`ContrastiveLoss.multiPositive`).
    /// 0 = off.
    public var localViews = 0
    /// A local view's side is the crop's side divided by this.
    public static let localViewScale = 2
    /// The part of the crop's side a local view shows.
    public static let localViewFractions: ClosedRange<Float> = 0.35...0.6
    /// `contrastive` with labelled crops (`BackboneTrainer(labelled:)`): this many of them join
    /// every step's batch, two views each, and every view of a class is a positive of every other
    /// view of that class (the supervised contrastive loss of Khosla et al. 2020, in the same
    /// softmax as the unlabelled crops' NT-Xent).
    public var supervisedBatch = 32

    public init() {}

    public func validate() throws {
        try shape.validate()
        guard epochs >= 1 else { throw TrainingError("--epochs must be at least 1, got \(epochs)") }
        guard batch >= 2 else { throw TrainingError("--batch must be at least 2, got \(batch)") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError("--lr must be positive, got \(learningRate)") }
        guard (0...8).contains(localViews) else { throw TrainingError("--local-views must be 0…8, got \(localViews)") }
        guard localViews == 0 || objective == .contrastive else {
            throw TrainingError("--local-views needs --objective contrastive, not \(objective.rawValue)")
        }
        guard (2...256).contains(supervisedBatch) else {
            throw TrainingError("--supervised-batch must be 2…256, got \(supervisedBatch)")
        }
    }
}

/// What one epoch did, for the progress line and the log.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var meanLoss: Float
    public var steps: Int
    public var seconds: Double
}

/// Self-supervised pre-training of the trunk on unlabelled crops, with a checkpoint after every
/// epoch (written atomically) that `resume` continues from exactly: same parameters, optimiser
/// moments and generator state as an uninterrupted run.
public final class BackboneTrainer {
    public let options: BackboneOptions
    public let images: CropImages
    /// Labelled crops that join every step (`BackboneOptions.supervisedBatch`), or nil: the
    /// pre-training is then self-supervised only.
    public let labelled: LabelledCrops?
    public let model: BackboneModel
    public private(set) var optimiser: Adam
    public private(set) var random: SeededRandom
    /// Epochs completed (by this run or the checkpoint it resumed).
    public private(set) var epochsDone = 0
    let tensorizer = CropTensorizer()

    public init(options: BackboneOptions, images: CropImages, labelled: LabelledCrops? = nil) throws {
        try options.validate()
        guard images.count >= 2 else {
            throw TrainingError("pre-training needs at least 2 crops, got \(images.count)")
        }
        if let labelled {
            guard options.objective == .contrastive, options.localViews == 0 else {
                throw TrainingError("labelled crops in pre-training need --objective contrastive without --local-views")
            }
            guard labelled.images.size == images.size else {
                throw TrainingError("labelled crops are \(labelled.images.size)×\(labelled.images.size), the unlabelled ones \(images.size)×\(images.size)")
            }
        }
        self.options = options
        self.images = images
        self.labelled = labelled
        model = BackboneModel(shape: options.shape, objective: options.objective, seed: options.seed)
        optimiser = Adam(learningRate: options.learningRate, weightDecay: options.weightDecay)
        random = SeededRandom(seed: options.seed &+ 0x0DA7A)
    }

    /// Metadata a checkpoint carries so `resume` and `train head` rebuild the same network.
    public var checkpointMetadata: [String: String] {
        ["kind": "backbone", "objective": options.objective.rawValue,
         "widths": options.shape.widths.map(String.init).joined(separator: ","),
         "blocks": options.shape.blocks.map(String.init).joined(separator: ","),
         "stem_stride": String(options.shape.stemStride), "crop_size": String(images.size),
         "seed": String(options.seed), "zoom": String(options.augmentation.zoom),
         "brightness": String(options.augmentation.brightness), "colour": String(options.augmentation.colour),
         "temperature": String(options.temperature), "rotation": String(options.augmentation.rotation),
         "local_views": String(options.localViews), "supervised": supervisedDescription]
    }

    /// What the labelled part of the pre-training was, for the checkpoint: a resume must see the
    /// same labelled crops (count and labels) and batch.
    var supervisedDescription: String {
        guard let labelled else { return "none" }
        var content = Data(labelled.labels.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        content.append(contentsOf: labelled.images.pixels)
        let hash = Checkpoint.fnv1a(content)
        return "\(labelled.images.count) crops, batch \(options.supervisedBatch), \(String(hash, radix: 16))"
    }

    /// Loads the state of an earlier run of the same configuration.
    public func resume(from path: String) throws {
        let checkpoint = try Checkpoint.read(from: path)
        // Checkpoints from before these settings were options were made with these values.
        let defaults = ["zoom": String(Float(0)), "brightness": String(Augmentation().brightness),
                        "colour": String(Augmentation().colour), "temperature": String(BackboneOptions().temperature),
                        "rotation": String(Float(0)), "local_views": "0", "supervised": "none"]
        for key in ["objective", "widths", "blocks", "stem_stride", "crop_size", "seed", "zoom", "brightness", "colour",
                    "temperature", "rotation", "local_views", "supervised"] {
            let made = checkpoint.metadata[key] ?? defaults[key]
            guard made == checkpointMetadata[key] else {
                throw TrainingError("\(path): checkpoint was made with \(key) = \(checkpoint.metadata[key] ?? "none"), this run has \(checkpointMetadata[key] ?? "none")")
            }
        }
        try checkpoint.restore(into: model.whole, path: path)
        optimiser = checkpoint.optimiser
        random = checkpoint.random
        epochsDone = checkpoint.epoch
    }

    /// Runs the remaining epochs; `step` sees (epoch, step, steps per epoch, running loss).
    public func train(checkpoint path: String?, step: (Int, Int, Int, Float) -> Void = { _, _, _, _ in },
                      epochEnd: (EpochReport) -> Void = { _ in }) throws {
        let perEpoch = max(1, images.count / options.batch)
        let steps = options.maxStepsPerEpoch > 0 ? min(perEpoch, options.maxStepsPerEpoch) : perEpoch
        let params = model.whole.parameters
        while epochsDone < options.epochs {
            let started = Date()
            var order = Array(0..<images.count)
            order.shuffle(using: &random)
            var total: Float = 0
            for s in 0..<steps {
                let indices = Array(order[s * options.batch..<min((s + 1) * options.batch, order.count)])
                let loss = trainStep(indices, params)
                model.target?.follow(decay: Self.targetDecay)
                guard loss.isFinite else {
                    throw TrainingError("loss became \(loss) in epoch \(epochsDone + 1) step \(s + 1); lower --lr")
                }
                total += loss
                step(epochsDone + 1, s + 1, steps, total / Float(s + 1))
            }
            epochsDone += 1
            if let path {
                try Checkpoint.save(network: model.whole, optimiser: optimiser, epoch: epochsDone, random: random,
                                    metadata: checkpointMetadata, to: path)
            }
            epochEnd(EpochReport(epoch: epochsDone, meanLoss: total / Float(steps), steps: steps,
                                 seconds: Date().timeIntervalSince(started)))
        }
    }

    /// One optimiser step on the crops at `indices`; returns the loss.
    func trainStep(_ indices: [Int], _ params: [Parameter]) -> Float {
        optimiser.zeroGrad(params)
        let loss: Float
        switch options.objective {
        case .autoencoder:
            let x = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            let h = model.trunk.forward(x, training: true)
            let y = model.extra.forward(h, training: true)
            let (l, g) = Loss.mse(y, x)
            _ = model.trunk.backward(model.extra.backward(g))
            loss = l
        case .contrastive where options.localViews > 0:
            loss = multiCropStep(indices)
        case .contrastive:
            if let labelled {
                loss = semiSupervisedStep(indices, labelled: labelled)
            } else {
                // Two independently augmented views of every crop, stacked: rows i and i + B pair up.
                let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
                let b = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
                let x = Tensor(shape: [2 * indices.count] + Array(a.shape.dropFirst()), data: a.data + b.data)
                let z = model.extra.forward(model.trunk.forward(x, training: true), training: true)
                let (l, g) = ContrastiveLoss.ntXent(z, temperature: options.temperature)
                _ = model.trunk.backward(model.extra.backward(g))
                loss = l
            }
        case .multiScaleContrastive:
            let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            let b = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            let x = Tensor(shape: [2 * indices.count] + Array(a.shape.dropFirst()), data: a.data + b.data)
            guard let pooling = model.pooling else { preconditionFailure("contrastive-multiscale model without its pooling") }
            let z = model.extra.forward(pooling.forward(x, training: true), training: true)
            let (l, g) = ContrastiveLoss.ntXent(z, temperature: options.temperature)
            _ = pooling.backward(model.extra.backward(g))
            loss = l
        case .byol:
            loss = byolStep(indices)
        case .cutpaste:
            // The batch's crops as they are (class 0), then each again with a pasted patch (class 1).
            let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            var b = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            CutPaste.apply(to: &b, rng: &random)
            let x = Tensor(shape: [2 * indices.count] + Array(a.shape.dropFirst()), data: a.data + b.data)
            let logits = model.extra.forward(model.trunk.forward(x, training: true), training: true)
            let labels = [Int](repeating: 0, count: indices.count) + [Int](repeating: 1, count: indices.count)
            let (l, g) = HeadTrainer.softmaxCrossEntropy(logits, labels: labels)
            _ = model.trunk.backward(model.extra.backward(g))
            loss = l
        case .contrastiveCutpaste:
            // Views a and b of every crop, and c = a with a pasted patch; one trunk pass over
            // [a; b; c]. The projector sees [a; b], the classifier [a; c]; a's gradient is the sum.
            let b = indices.count
            let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            let v = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
            var c = a
            CutPaste.apply(to: &c, rng: &random)
            let sample = Array(a.shape.dropFirst())
            let h = model.trunk.forward(Tensor(shape: [3 * b] + sample, data: a.data + v.data + c.data), training: true)
            guard let projector = model.extra.layers.first, let classifier = model.extra.layers.last else {
                preconditionFailure("contrastive+cutpaste model without its two heads")
            }
            let (l, dh) = Self.contrastiveCutpasteLoss(h, batch: b, projector: projector, classifier: classifier,
                                                       temperature: options.temperature)
            _ = model.trunk.backward(dh)
            loss = l
        }
        optimiser.step(params)
        return loss
    }
}

extension BackboneTrainer {
    /// BYOL's step: two views a, b of every crop; the online network (trunk, projector,
    /// predictor) sees [a; b], the target sees [b; a], so row i of each shows the same crop in
    /// the other view. Loss: mean over rows of ‖p − t‖² = 2 − 2 cos(p, t) (symmetric in the
    /// views); the gradient flows through the online network only.
    func byolStep(_ indices: [Int]) -> Float {
        guard let target = model.target, model.extra.layers.count == 3 else {
            preconditionFailure("byol model without its projector, predictor and target")
        }
        let projector = model.extra.layers[0], predictor = model.extra.layers[1]
        let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let v = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let shape = [2 * indices.count] + Array(a.shape.dropFirst())
        let p = predictor.forward(projector.forward(model.trunk.forward(Tensor(shape: shape, data: a.data + v.data), training: true),
                                                    training: true), training: true)
        let t = target.forward(Tensor(shape: shape, data: v.data + a.data), training: true)
        let (loss, grad) = Self.byolLoss(p, target: t)
        _ = model.trunk.backward(projector.backward(predictor.backward(grad)))
        return loss
    }

    /// Mean over rows of ‖p − t‖² and its gradient with respect to `p` (`t` is a constant).
    static func byolLoss(_ p: Tensor, target t: Tensor) -> (loss: Float, grad: Tensor) {
        precondition(p.shape == t.shape && p.shape.count == 2, "byol loss: prediction \(p.shape), target \(t.shape)")
        let rows = Float(p.shape[0])
        var grad = Tensor(zeros: p.shape)
        var total: Float = 0
        for i in 0..<p.count {
            let d = p.data[i] - t.data[i]
            total += d * d
            grad.data[i] = 2 * d / rows
        }
        return (total / rows, grad)
    }

    /// BYOL's target decay per step. Constant, not BYOL's cosine schedule towards 1: a schedule
    /// depends on the planned number of steps, and a run resumed with more epochs would then not
    /// end where an uninterrupted one does. At 0.99 the target averages the last ≈ 100 steps.
    static let targetDecay: Float = 0.99

    /// One contrastive step on the unlabelled crops at `indices` plus `supervisedBatch` labelled
    /// crops drawn at random: two views of each, one trunk pass, one softmax. An unlabelled view's
    /// positive is its crop's other view (NT-Xent); a labelled view's positives are all other views
    /// of its class in the batch (supervised contrastive). The labelled crops are drawn with the
    /// trainer's generator, so a resumed run draws the same ones.
    func semiSupervisedStep(_ indices: [Int], labelled: LabelledCrops) -> Float {
        let b = indices.count
        let chosen = Self.draw(min(options.supervisedBatch, labelled.images.count), of: labelled.images.count, rng: &random)
        let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let la = tensorizer.batch(labelled.images, indices: chosen, augmentation: options.augmentation, rng: &random)
        let v = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let lv = tensorizer.batch(labelled.images, indices: chosen, augmentation: options.augmentation, rng: &random)
        let rows = 2 * (b + chosen.count)
        let x = Tensor(shape: [rows] + Array(a.shape.dropFirst()), data: a.data + la.data + v.data + lv.data)
        // Unlabelled crop k is group k; a labelled crop of class c is group b + c.
        let viewGroups = Array(0..<b) + chosen.map { b + labelled.labels[$0] }
        let z = model.extra.forward(model.trunk.forward(x, training: true), training: true)
        let (l, g) = ContrastiveLoss.multiPositive(z, groups: viewGroups + viewGroups, temperature: options.temperature)
        _ = model.trunk.backward(model.extra.backward(g))
        return l
    }

    /// `count` distinct indices of 0..<n, drawn uniformly (a partial Fisher–Yates shuffle).
    static func draw(_ count: Int, of n: Int, rng: inout SeededRandom) -> [Int] {
        var pool = Array(0..<n)
        for k in 0..<min(count, n) {
            let j = k + Int(rng.next() % UInt64(n - k))
            pool.swapAt(k, j)
        }
        return Array(pool.prefix(count))
    }

    /// One multi-crop contrastive step: the two views of each crop as in `contrastive`, and
    /// `localViews` local views of it, smaller, so they go through the trunk as a batch of their
    /// own. The loss ties every view of a crop to all its others. The layers keep the activations
    /// of their last forward only, so the local views are run forward twice: once for the loss,
    /// and again, after the two views' backward pass, for their own. The batch-norm running
    /// statistics come from the two views only, as without local views: the local views would
    /// pull them towards close-ups the encoder never sees in use.
    func multiCropStep(_ indices: [Int]) -> Float {
        let b = indices.count, views = options.localViews
        let side = max(8, images.size / BackboneOptions.localViewScale)
        let a = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let v = tensorizer.batch(images, indices: indices, augmentation: options.augmentation, rng: &random)
        let local = tensorizer.localBatch(images, indices: indices, views: views, side: side,
                                          fractionRange: BackboneOptions.localViewFractions,
                                          augmentation: options.augmentation, rng: &random)
        let global = Tensor(shape: [2 * b] + Array(a.shape.dropFirst()), data: a.data + v.data)
        let buffers = model.whole.buffers
        let statistics = buffers.map(\.value)
        func restoreStatistics() { for (buffer, value) in zip(buffers, statistics) { buffer.value = value } }
        let zLocal = model.extra.forward(model.trunk.forward(local, training: true), training: true)
        restoreStatistics()
        let zGlobal = model.extra.forward(model.trunk.forward(global, training: true), training: true)
        let groups = (0..<(2 + views)).flatMap { _ in Array(0..<b) }
        let z = Tensor(shape: [(2 + views) * b, zGlobal.shape[1]], data: zGlobal.data + zLocal.data)
        let (l, g) = ContrastiveLoss.multiPositive(z, groups: groups, temperature: options.temperature)
        let split = zGlobal.count
        _ = model.trunk.backward(model.extra.backward(Tensor(shape: zGlobal.shape, data: Array(g.data[..<split]))))
        let kept = buffers.map(\.value)
        _ = model.extra.forward(model.trunk.forward(local, training: true), training: true)
        for (buffer, value) in zip(buffers, kept) { buffer.value = value }
        _ = model.trunk.backward(model.extra.backward(Tensor(shape: zLocal.shape, data: Array(g.data[split...]))))
        return l
    }

    /// The contrastive+cutpaste loss on the trunk's output `h` = [a; b; c] (3 × `batch` rows:
    /// two views of each crop, then the first view with a pasted patch) and its gradient with
    /// respect to `h`: NT-Xent of the projector on [a; b] plus the cross-entropy of the classifier
    /// on [a; c] (a as is, c pasted). Rows of a get the sum of both gradients.
    static func contrastiveCutpasteLoss(_ h: Tensor, batch b: Int, projector: Layer, classifier: Layer,
                                        temperature: Float) -> (loss: Float, grad: Tensor) {
        precondition(b > 0 && h.shape.first == 3 * b, "contrastive+cutpaste: trunk output \(h.shape) for a batch of \(b)")
        let block = h.count / 3, featureShape = Array(h.shape.dropFirst())
        func rows(_ parts: [Int]) -> Tensor {
            var data: [Float] = []
            data.reserveCapacity(parts.count * block)
            for part in parts { data += h.data[(part * block)..<((part + 1) * block)] }
            return Tensor(shape: [parts.count * b] + featureShape, data: data)
        }
        let z = projector.forward(rows([0, 1]), training: true)
        let (contrastiveLoss, dz) = ContrastiveLoss.ntXent(z, temperature: temperature)
        let logits = classifier.forward(rows([0, 2]), training: true)
        let labels = [Int](repeating: 0, count: b) + [Int](repeating: 1, count: b)
        let (pasteLoss, dLogits) = HeadTrainer.softmaxCrossEntropy(logits, labels: labels)
        let dProjected = projector.backward(dz), dClassified = classifier.backward(dLogits)
        var dh = Tensor(zeros: h.shape)
        for i in 0..<(2 * block) { dh.data[i] += dProjected.data[i] }
        for i in 0..<block { dh.data[i] += dClassified.data[i] }
        for i in 0..<block { dh.data[2 * block + i] += dClassified.data[block + i] }
        return (contrastiveLoss + pasteLoss, dh)
    }
}

/// The NT-Xent loss of SimCLR (Chen et al. 2020).
public enum ContrastiveLoss {
    /// NT-Xent with any number of views per crop: row i's positives are the other rows of its
    /// group (`groups[i]`, e.g. the crop it was cut from). For each row: −(mean over its positives
    /// p of log softmax over all other rows at p), as in the supervised contrastive loss's
    /// "outside" form (Khosla et al. 2020); mean over rows. With two views per group it is
    /// `ntXent`. Returns the loss and dLoss/dz.
    public static func multiPositive(_ z: Tensor, groups: [Int], temperature: Float) -> (loss: Float, grad: Tensor) {
        precondition(z.shape.count == 2 && z.shape[0] == groups.count, "multiPositive: \(groups.count) groups for \(z.shape)")
        let n = z.shape[0], d = z.shape[1]
        var sim = [Float](repeating: 0, count: n * n)
        Kernels.sgemm(m: n, n: n, k: d, a: z.data, lda: d, b: z.data, ldb: d, transB: true, c: &sim, ldc: n)
        var members: [Int: Int] = [:]
        for group in groups { members[group, default: 0] += 1 }
        var g = [Float](repeating: 0, count: n * n)  // dLoss/dsim
        var total = 0.0
        let invT = 1 / temperature
        for i in 0..<n {
            let positives = (members[groups[i]] ?? 1) - 1
            guard positives > 0 else { continue }
            var maxLogit = -Float.infinity
            for j in 0..<n where j != i { maxLogit = max(maxLogit, sim[i * n + j] * invT) }
            var sum: Float = 0
            for j in 0..<n where j != i { sum += expf(sim[i * n + j] * invT - maxLogit) }
            let logZ = maxLogit + logf(sum)
            let share = 1 / Float(positives)
            for j in 0..<n where j != i {
                let positive = groups[j] == groups[i]
                if positive { total += Double((logZ - sim[i * n + j] * invT) * share) }
                let p = expf(sim[i * n + j] * invT - logZ)
                g[i * n + j] = (p - (positive ? share : 0)) * invT / Float(n)
            }
        }
        // sim = z zᵀ, so dz = (G + Gᵀ) z.
        var gs = g
        for i in 0..<n { for j in 0..<n { gs[i * n + j] = g[i * n + j] + g[j * n + i] } }
        var dz = [Float](repeating: 0, count: n * d)
        Kernels.sgemm(m: n, n: d, k: n, a: gs, lda: n, b: z.data, ldb: d, transB: false, c: &dz, ldc: d)
        return (Float(total / Double(n)), Tensor(shape: z.shape, data: dz))
    }

    /// `z` holds 2B unit rows where row i and row i ± B are two views of the same crop. For each
    /// row: −log softmax over all other rows (similarities / temperature) at its partner; mean
    /// over rows. Returns the loss and dLoss/dz.
    public static func ntXent(_ z: Tensor, temperature: Float) -> (loss: Float, grad: Tensor) {
        precondition(z.shape.count == 2 && z.shape[0] % 2 == 0, "ntXent: needs [2B, D], got \(z.shape)")
        let half = z.shape[0] / 2
        return multiPositive(z, groups: (0..<z.shape[0]).map { $0 % half }, temperature: temperature)
    }
}

/// The CutPaste augmentation on a batch of crops (NCHW): in each crop a rectangle from the bean's
/// middle (the crop is centred on the bean, major axis horizontal) is copied to another place on
/// the bean, with its own brightness change, so the network must notice a local irregularity.
public enum CutPaste {
    /// Patch sides are drawn from [`minFraction`, `maxFraction`] of the crop side; source and
    /// target centres from the middle half across and the middle 70 % along.
    public static let minFraction = 0.1, maxFraction = 0.3

    public static func apply(to x: inout Tensor, rng: inout SeededRandom) {
        precondition(x.shape.count == 4, "CutPaste: needs NCHW, got \(x.shape)")
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(rng.next() >> 11) / Double(1 << 53) }
        for k in 0..<n {
            let pw = max(2, Int(uniform(minFraction, maxFraction) * Double(w)))
            let ph = max(2, Int(uniform(minFraction, maxFraction) * Double(h)))
            func corner(_ size: Int, _ extent: Int, _ spread: Double) -> Int {
                let centre = uniform(0.5 - spread / 2, 0.5 + spread / 2) * Double(extent)
                return min(max(0, Int(centre) - size / 2), extent - size)
            }
            let sx = corner(pw, w, 0.7), sy = corner(ph, h, 0.5)
            // Redraw a target that would mostly cover its own source (a few tries; the brightness
            // change still marks a paste that stays close).
            var tx = corner(pw, w, 0.7), ty = corner(ph, h, 0.5)
            for _ in 0..<4 where abs(tx - sx) < pw / 2 && abs(ty - sy) < ph / 2 {
                tx = corner(pw, w, 0.7)
                ty = corner(ph, h, 0.5)
            }
            let gain = Float(uniform(0.8, 1.2))
            let base = k * c * h * w
            var patch = [Float](repeating: 0, count: c * ph * pw)
            for ch in 0..<c {
                for y in 0..<ph {
                    for xx in 0..<pw { patch[(ch * ph + y) * pw + xx] = x.data[base + (ch * h + sy + y) * w + sx + xx] * gain }
                }
            }
            for ch in 0..<c {
                for y in 0..<ph {
                    for xx in 0..<pw { x.data[base + (ch * h + ty + y) * w + tx + xx] = patch[(ch * ph + y) * pw + xx] }
                }
            }
        }
    }
}

/// A moving average of a network's weights (BYOL's target): it runs forward only, with batch
/// statistics, and its weights are buffers, so an optimiser stepping `parameters` leaves them
/// alone while checkpoints keep them.
public final class MovingAverageCopy: Layer {
    public let network: Layer
    /// The layers it averages, built by the same code as `network` (same parameter order).
    public let source: Layer

    public init(_ network: Layer, following source: Layer) {
        let own = network.parameters, followed = source.parameters
        precondition(own.count == followed.count && zip(own, followed).allSatisfy { $0.shape == $1.shape },
                     "MovingAverageCopy: the copy's parameters do not match those it follows")
        self.network = network
        self.source = source
        for (mine, theirs) in zip(own, followed) { mine.value = theirs.value }
    }

    public var parameters: [Parameter] { [] }
    public var buffers: [Parameter] { network.parameters + network.buffers }
    public func namedState(prefix: String) -> [(String, Parameter)] { network.namedState(prefix: prefix) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor { network.forward(x, training: training) }

    public func backward(_ dy: Tensor) -> Tensor {
        preconditionFailure("MovingAverageCopy is not trained by gradients; call follow(decay:)")
    }

    /// weights ← decay × weights + (1 − decay) × the followed network's weights.
    public func follow(decay: Float) {
        for (mine, theirs) in zip(network.parameters, source.parameters) {
            mine.value.withUnsafeMutableBufferPointer { w in
                theirs.value.withUnsafeBufferPointer { s in
                    for i in 0..<w.count { w[i] = decay * w[i] + (1 - decay) * s[i] }
                }
            }
        }
    }
}
