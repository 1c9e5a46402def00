import Foundation

/// Labelled crops for the projection head: one crop per usable photo, with its class and bean.
public struct LabelledCrops: Sendable {
    public var images: CropImages
    /// Class index of each crop (index into `classNames`).
    public var labels: [Int]
    /// Bean index of each crop: photos of one bean share it.
    public var beans: [Int]
    public var classNames: [String]

    public init(images: CropImages, labels: [Int], beans: [Int], classNames: [String]) throws {
        guard images.count == labels.count, labels.count == beans.count else {
            throw TrainingError("labelled crops: \(images.count) crops, \(labels.count) labels, \(beans.count) bean ids")
        }
        guard !labels.isEmpty else { throw TrainingError("no labelled crops to train the head on") }
        guard labels.allSatisfy({ classNames.indices.contains($0) }) else {
            throw TrainingError("labelled crops: a label index is outside the \(classNames.count) class names")
        }
        self.images = images; self.labels = labels; self.beans = beans; self.classNames = classNames
    }
}

/// What `train head` puts on top of the frozen backbone.
public enum HeadKind: String, Sendable, CaseIterable {
    /// The per-channel mean and standard deviation of every trunk stage's output
    /// (`MultiScalePooling`), standardised, then one linear map to the embedding and L2
    /// normalisation; trained with a cosine-softmax classifier (`CosineClassifier`) on all labelled
    /// photos in the four mirror poses at once. The trunk stays frozen.
    case multiScale = "multi-scale"
    /// The trunk's last stage (optionally fine-tuned) and an MLP on its pooled output; batch-hard
    /// triplet loss on P labels × K beans plus an auxiliary softmax classifier.
    case mlp
}

/// Options of `train head`.
public struct HeadOptions: Sendable, Equatable {
    public var kind = HeadKind.multiScale
    public var steps = 400
    /// Batch = `classesPerBatch` labels × `beansPerClass` beans (batch-hard mining needs both).
    /// The multi-scale head takes every labelled photo in every pose each step instead.
    public var classesPerBatch = 8
    public var beansPerClass = 4
    public var margin: Float = 0.2
    public var learningRate: Float = 0.05
    /// Decoupled (AdamW) weight decay of the MLP head.
    public var weightDecay: Float = 1e-4
    /// L2 penalty on the multi-scale head's linear map (added to its gradient).
    public var linearPenalty: Float = 1e-3
    /// Multi-scale head: also pool the crop itself (each colour channel's mean and standard
    /// deviation over the crop), beside the trunk's stages. The idea: the contrastive trunk need
    /// not keep a bean's overall colour, which marks black and sour beans. Measured on the folds
    /// it does not help (MODEL_CARD.md: 0.871 against 0.873 AUC with the shipped backbone), so it
    /// is off by default.
    public var poolsInput = false
    /// Scale of the multi-scale head's cosine-softmax logits (cosines are in [−1, 1]).
    public var cosineScale: Float = 10
    /// Multi-scale head, second phase: steps that fine-tune the trunk together with the trained
    /// linear map (0 = the trunk stays frozen), on augmented crops (random mirrors, brightness,
    /// colour, shifts), `fineTuneBatch` photos drawn at random per step, batch-norm statistics
    /// frozen, Adam at `fineTuneLearningRate`.
    public var fineTuneSteps = 0
    public var fineTuneLearningRate: Float = 1e-4
    public var fineTuneBatch = 32
    public var hidden = 256
    /// Width of the exported embedding; with the patch-novelty coordinate the head's own map is
    /// one narrower, so the encoder's output keeps this width.
    public var embedding = 128
    /// Multi-scale head: patches in the bank of the patch-novelty coordinate (`PatchNovelty`,
    /// fitted by `HeadTrainer.fitNovelty` after training; 0 = no such coordinate). Off by
    /// default: on the folds a bank of 500 raised the mean AUC over three seeds (0.903 against
    /// 0.891) but not the defect recall at 3 % of good beans rejected (50 %), and it costs a
    /// third of the encoder's throughput (MODEL_CARD.md).
    public var noveltyBank = 0
    /// Weight of the standardised novelty beside the head's unit-length embedding.
    public var noveltyWeight: Float = 0.4
    /// Trunk stages whose maps describe a patch (0-based; the last one's grid is the patch grid).
    public var noveltyStages = [0, 1]
    /// Fine-tune the trunk's last stage too (else only the MLP head learns). MLP head only.
    public var fineTuneLastStage = true
    /// Fine-tune the whole trunk (overrides `fineTuneLastStage`): the cached views are then the
    /// augmented crops themselves, and every step runs the full network forward and back. MLP
    /// head only.
    public var fineTuneWholeTrunk = false
    /// Augmented copies per pose in the cached features (poses × copies views per crop; copy 0 is
    /// clean). The multi-scale head uses the four clean poses only (what was measured).
    public var copiesPerPose = 2
    public var seed: UInt64 = 1
    /// The collapse guard measures the mean pairwise distance of probe embeddings every
    /// `guardEvery` steps; below `collapseDistance` it restores the last healthy state and halves
    /// the learning rate.
    public var guardEvery = 50
    public var collapseDistance: Float = 0.1
    /// Weight of an auxiliary softmax cross-entropy on a linear classifier over the embedding
    /// (0 = triplet loss alone). Batch-hard mining alone collapsed to one point on these photos
    /// (loss stuck at the margin); the classifier keeps the classes apart from the first step.
    /// The classifier is not part of the exported encoder. MLP head only.
    public var classificationWeight: Float = 1

    /// The defaults of `kind`: the multi-scale head's settings are the ones measured in
    /// MODEL_CARD.md; the MLP head's are those of its earlier recipe.
    public init(kind: HeadKind = .multiScale) {
        self.kind = kind
        if kind == .mlp { steps = 600; learningRate = 1e-3 }
    }

    public init() { self.init(kind: .multiScale) }

    public func validate() throws {
        guard steps >= 1 else { throw TrainingError("--steps must be at least 1, got \(steps)") }
        guard classesPerBatch >= 2, beansPerClass >= 2 else {
            throw TrainingError("a triplet batch needs at least 2 labels × 2 beans, got \(classesPerBatch) × \(beansPerClass)")
        }
        guard embedding >= 2, hidden >= 1 else { throw TrainingError("the embedding must have at least 2 values, got \(embedding)") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError("--lr must be positive, got \(learningRate)") }
        guard copiesPerPose >= 1 else { throw TrainingError("copies per pose must be at least 1") }
        guard fineTuneSteps >= 0, fineTuneBatch >= 1, fineTuneLearningRate > 0, fineTuneLearningRate.isFinite else {
            throw TrainingError("fine-tuning needs steps ≥ 0, a batch ≥ 1 and a positive learning rate, got \(fineTuneSteps), \(fineTuneBatch), \(fineTuneLearningRate)")
        }
        guard noveltyBank >= 0, noveltyWeight > 0, noveltyWeight.isFinite else {
            throw TrainingError("the patch-novelty bank must be ≥ 0 patches and its weight positive, got \(noveltyBank), \(noveltyWeight)")
        }
        if noveltyBank > 0 {
            guard kind == .multiScale else { throw TrainingError("the patch-novelty coordinate applies to the multi-scale head only") }
            guard embedding >= 3 else { throw TrainingError("the embedding must have at least 3 values with the patch-novelty coordinate, got \(embedding)") }
            guard !noveltyStages.isEmpty, noveltyStages == noveltyStages.sorted(), Set(noveltyStages).count == noveltyStages.count,
                  noveltyStages.allSatisfy({ $0 >= 0 }) else {
                throw TrainingError("patch-novelty stages must be distinct ascending stage numbers, got \(noveltyStages)")
            }
        }
        guard cosineScale > 0, cosineScale.isFinite, linearPenalty >= 0 else {
            throw TrainingError("cosine scale must be positive and the linear penalty non-negative, got \(cosineScale), \(linearPenalty)")
        }
    }
}

/// What head training did, for the log and the model card.
public struct HeadReport: Sendable {
    public var steps: Int
    public var finalLoss: Float
    public var activeTripletShare: Float
    public var meanPositiveDistance: Float
    public var meanNegativeDistance: Float
    public var probeSpread: Float
    /// One line per collapse-guard intervention.
    public var guardEvents: [String]
}

/// Trains a 128-d L2-normalised projection head on a pre-trained trunk (see `HeadKind`). The
/// frozen part of the network runs once per crop and view (its output is cached), so each step
/// only runs what learns.
public final class HeadTrainer {
    public let options: HeadOptions
    public let data: LabelledCrops
    /// Trunk layers that stay frozen (evaluation mode) while the head learns; for the multi-scale
    /// head, the trunk inside its `MultiScalePooling` (`fineTuneTrunk` may train it afterwards).
    public let frozen: Sequential
    /// What learns, ending in L2Normalize: the MLP head (with the fine-tuned last stage, when
    /// chosen), or the multi-scale head's linear map on the standardised pooled statistics.
    public let trainable: Sequential
    /// Classifier on the embedding (training only): a linear one beside the MLP head's triplet
    /// loss, a cosine-softmax one for the multi-scale head.
    let classifier: Layer
    /// Everything the optimiser updates, for snapshots.
    private let learning: Sequential
    private var optimiser: Adam
    private var random: SeededRandom
    private var features: [Float] = []
    private var featureShape: [Int] = []
    private let views: Int
    /// Multi-scale head: per pooled feature, the mean and scale that standardise it (applied to
    /// the cached features; folded into the linear map on export).
    private var featureMean: [Float] = []
    private var featureScale: [Float] = []
    /// Index into the trunk's layers of each stage's last layer.
    private let stageEnds: [Int]

    public init(options: HeadOptions, trunk: Sequential, shape: TrunkShape, data: LabelledCrops) throws {
        try options.validate()
        self.options = options
        self.data = data
        stageEnds = shape.stageEnds
        var rng = SeededRandom(seed: options.seed ^ 0x4EAD)
        // Multi-scale head: channels of each tap, in the order of the pooled features (3 for the
        // crop itself).
        var pooledChannels: [Int] = []
        switch options.kind {
        case .multiScale:
            pooledChannels = (options.poolsInput ? [3] : []) + shape.widths
            let pooling = MultiScalePooling(trunk: trunk, taps: (options.poolsInput ? [MultiScalePooling.inputTap] : []) + shape.stageEnds)
            frozen = Sequential([pooling])
            guard options.noveltyStages.allSatisfy({ shape.stageEnds.indices.contains($0) }) else {
                throw TrainingError("patch-novelty stages \(options.noveltyStages) are not all among the trunk's \(shape.stageEnds.count) stages")
            }
            let width = MultiScalePooling.featureCount(channels: pooledChannels)
            let headWidth = options.embedding - (options.noveltyBank > 0 ? 1 : 0)
            trainable = Sequential([Linear(width, headWidth, rng: &rng), L2Normalize()])
            classifier = CosineClassifier(headWidth, classes: max(data.classNames.count, 1),
                                          scale: options.cosineScale, rng: &rng)
            optimiser = Adam(learningRate: options.learningRate)
            views = 4
        case .mlp:
            let split = options.fineTuneWholeTrunk ? 0 : options.fineTuneLastStage ? shape.lastStageStart : trunk.layers.count
            frozen = Sequential(Array(trunk.layers[0..<split]))
            let top = shape.widths.last ?? 1
            let tail = Array(trunk.layers[split...])
            trainable = Sequential(tail + [GlobalAvgPool(), Flatten(), Linear(top, options.hidden, rng: &rng), ReLU(),
                                           Linear(options.hidden, options.embedding, rng: &rng), L2Normalize()] as [Layer])
            classifier = Linear(options.embedding, max(data.classNames.count, 1), rng: &rng)
            optimiser = Adam(learningRate: options.learningRate, weightDecay: options.weightDecay)
            views = 4 * options.copiesPerPose
        }
        learning = Sequential([trainable, classifier])
        random = SeededRandom(seed: options.seed &+ 0x7121)
        cacheFeatures()
        if options.kind == .multiScale { standardizeFeatures(channels: pooledChannels) }
    }

    /// The whole encoder: frozen trunk, trained part, normalisation. Shares layers with this
    /// trainer, except the multi-scale head's linear map, which is a copy with the feature
    /// standardisation folded in.
    public var encoder: Sequential {
        guard options.kind == .multiScale, let linear = trainable.layers.first as? Linear else {
            return Sequential(frozen.layers + trainable.layers)
        }
        let head = [foldStandardization(into: linear)] + Array(trainable.layers.dropFirst())
        if let novelty, let pooling = frozen.layers.first as? MultiScalePooling {
            return Sequential([NoveltyEncoder(pooling: pooling, head: Sequential(head), novelty: novelty)])
        }
        return Sequential(frozen.layers + head)
    }

    /// The patch-novelty coordinate once `fitNovelty` ran (the encoder then carries it).
    public private(set) var novelty: PatchNovelty?

    /// Fits the patch-novelty coordinate (`PatchNovelty.fit`) on the labelled photos (clean,
    /// pose 0) through the trunk as it is now (after any fine-tuning); photos of `goodClasses`
    /// give the bank. Multi-scale head with `options.noveltyBank` > 0 only.
    public func fitNovelty(goodClasses: Set<Int>) throws {
        guard options.noveltyBank > 0, let pooling = frozen.layers.first as? MultiScalePooling else {
            throw TrainingError("the patch-novelty coordinate needs the multi-scale head and a bank of at least 1 patch")
        }
        let taps = options.noveltyStages.map { stageEnds[$0] }
        let tensorizer = CropTensorizer()
        novelty = try PatchNovelty.fit(taps: taps, good: data.labels.map { goodClasses.contains($0) },
                                       bankSize: options.noveltyBank, weight: options.noveltyWeight) { range in
            let indices = Array(range)
            let x = tensorizer.batch(data.images, indices: indices, poses: [Int](repeating: 0, count: indices.count))
            let maps = pooling.forwardKeepingMaps(x).maps
            return taps.compactMap { maps[$0] }
        }
    }

    /// Standardises the cached multi-scale features: each feature to mean 0 and standard
    /// deviation 1 over all crops and poses, then each block (one tap's means, or its deviations)
    /// divided by the square root of its width, so that the 16 values of the first stage weigh as
    /// much as the 128 of the last. A feature that never varies gets scale 0.
    private func standardizeFeatures(channels: [Int]) {
        let f = featureCount, rows = features.count / max(f, 1)
        var mean = [Double](repeating: 0, count: f), squares = [Double](repeating: 0, count: f)
        for r in 0..<rows {
            for j in 0..<f { let v = Double(features[r * f + j]); mean[j] += v; squares[j] += v * v }
        }
        var blockWidth: [Int] = []
        for c in channels { blockWidth += [Int](repeating: c, count: 2 * c) }
        featureMean = mean.map { Float($0 / Double(max(rows, 1))) }
        featureScale = (0..<f).map { j in
            let m = mean[j] / Double(max(rows, 1))
            let sd = max(squares[j] / Double(max(rows, 1)) - m * m, 0).squareRoot()
            return sd > 1e-6 ? Float(1 / (sd * Double(blockWidth[j]).squareRoot())) : 0
        }
        features = Standardize(mean: featureMean, scale: featureScale).forward(Tensor(shape: [rows, f], data: features), training: false).data
    }

    /// W·((x − mean)·scale) + b = (W·diag(scale))·x + (b − W·(mean·scale)).
    private func foldStandardization(into linear: Linear) -> Linear {
        var rng = SeededRandom(seed: 0)
        let folded = Linear(linear.inFeatures, linear.outFeatures, rng: &rng)
        let (o, i) = (linear.outFeatures, linear.inFeatures)
        for r in 0..<o {
            var shift: Float = 0
            for c in 0..<i {
                let w = linear.weight.value[r * i + c] * featureScale[c]
                folded.weight.value[r * i + c] = w
                shift += w * featureMean[c]
            }
            folded.bias?.value[r] = (linear.bias?.value[r] ?? 0) - shift
        }
        return folded
    }

    /// Runs the frozen trunk over every crop in every view, in batches.
    private func cacheFeatures() {
        let tensorizer = CropTensorizer()
        let n = data.images.count
        var jitter = SeededRandom(seed: options.seed ^ 0xA06)
        var augment = Augmentation()
        augment.flips = false
        var all: [Float] = []
        let batch = 64
        for v in 0..<views {
            var start = 0
            while start < n {
                let indices = Array(start..<min(start + batch, n))
                let x: Tensor
                if v < 4 {
                    x = tensorizer.batch(data.images, indices: indices, poses: [Int](repeating: v, count: indices.count))
                } else {
                    x = tensorizer.batch(data.images, indices: indices, augmentation: augment, rng: &jitter, pose: v % 4)
                }
                let y = frozen.forward(x, training: false)
                featureShape = Array(y.shape.dropFirst())
                all += y.data
                start += batch
            }
        }
        features = all  // view-major: [views][n][feature]
    }

    private var featureCount: Int { featureShape.reduce(1, *) }

    private func featureBatch(_ picks: [(crop: Int, view: Int)]) -> Tensor {
        let f = featureCount, n = data.images.count
        var out = [Float]()
        out.reserveCapacity(picks.count * f)
        for (crop, view) in picks {
            let at = (view * n + crop) * f
            out += features[at..<at + f]
        }
        return Tensor(shape: [picks.count] + featureShape, data: out)
    }

    /// P labels × K beans: each bean contributes one random usable photo in one random view.
    private func sampleBatch() -> (picks: [(crop: Int, view: Int)], labels: [Int]) {
        let byLabel = Dictionary(grouping: data.labels.indices, by: { data.labels[$0] })
        var labelList = byLabel.keys.sorted()
        labelList.shuffle(using: &random)
        var picks: [(Int, Int)] = [], labels: [Int] = []
        for label in labelList.prefix(options.classesPerBatch) {
            let crops = byLabel[label] ?? []
            let beans = Dictionary(grouping: crops, by: { data.beans[$0] })
            let beanList = beans.keys.sorted()
            var order = beanList
            order.shuffle(using: &random)
            for k in 0..<options.beansPerClass {
                let bean = order.isEmpty ? beanList[Int(random.next() % UInt64(beanList.count))] : order[k % order.count]
                let photos = beans[bean] ?? crops
                let crop = photos[Int(random.next() % UInt64(photos.count))]
                picks.append((crop, Int(random.next() % UInt64(views))))
                labels.append(label)
            }
        }
        return (picks, labels)
    }

    /// Mean pairwise distance of the clean-view embeddings of up to 256 crops (evaluation mode).
    public func probeSpread() -> Float {
        let n = min(data.images.count, 256)
        let z = trainable.forward(featureBatch((0..<n).map { ($0, 0) }), training: false)
        let d = z.shape[1]
        var sum = 0.0, pairs = 0
        for i in 0..<n {
            for j in (i + 1)..<max(n, i + 1) {
                var s: Float = 0
                for k in 0..<d { let t = z.data[i * d + k] - z.data[j * d + k]; s += t * t }
                sum += Double(s.squareRoot())
                pairs += 1
            }
        }
        return pairs > 0 ? Float(sum / Double(pairs)) : 0
    }

    private func snapshot() -> [[Float]] { learning.namedState(prefix: "").map { $0.1.value } }
    private func restore(_ values: [[Float]]) {
        for (p, v) in zip(learning.namedState(prefix: "").map(\.1), values) { p.value = v }
    }

    /// Trains for `options.steps`; `progress` sees (step, steps, running loss).
    public func train(progress: (Int, Int, Float) -> Void = { _, _, _ in }, log: (String) -> Void = { _ in }) throws -> HeadReport {
        let params = learning.parameters
        var healthy = (values: snapshot(), optimiser: optimiser, step: 0)
        var events: [String] = []
        var running: Float = 0
        var lastStats = TripletStatistics(anchors: 0, activeTriplets: 0, meanPositiveDistance: 0, meanNegativeDistance: 0)
        var lastLoss: Float = 0
        var step = 0
        while step < options.steps {
            optimiser.zeroGrad(params)
            let loss: Float
            switch options.kind {
            case .multiScale:
                loss = multiScaleStep()
            case .mlp:
                (loss, lastStats) = mlpStep()
            }
            optimiser.step(params)
            step += 1
            running = step == 1 ? loss : 0.95 * running + 0.05 * loss
            lastLoss = loss
            progress(step, options.steps, running)
            if step % options.guardEvery == 0 || step == options.steps || !loss.isFinite {
                let spread = probeSpread()
                if !loss.isFinite || !spread.isFinite || spread < options.collapseDistance {
                    let lr = optimiser.learningRate / 2
                    let event = "collapse guard: step \(step), loss \(loss), mean pairwise distance \(String(format: "%.3f", spread)) < \(options.collapseDistance); restored step \(healthy.step), learning rate \(optimiser.learningRate) → \(lr)"
                    events.append(event)
                    log(event)
                    restore(healthy.values)
                    optimiser = healthy.optimiser
                    optimiser.learningRate = lr
                    guard lr >= 1e-6 else {
                        log("collapse guard: learning rate below 1e-6, stopping at the state of step \(healthy.step)")
                        break
                    }
                    step = healthy.step
                } else {
                    healthy = (snapshot(), optimiser, step)
                }
            }
        }
        return HeadReport(steps: step, finalLoss: lastLoss,
                          activeTripletShare: Float(lastStats.activeTriplets) / Float(max(lastStats.anchors, 1)),
                          meanPositiveDistance: lastStats.meanPositiveDistance,
                          meanNegativeDistance: lastStats.meanNegativeDistance,
                          probeSpread: probeSpread(), guardEvents: events)
    }
}

extension HeadTrainer {
    /// One step of the MLP head: batch-hard triplet loss on a P × K batch plus the weighted
    /// auxiliary cross-entropy; accumulates gradients, returns the loss and the triplet figures.
    private func mlpStep() -> (Float, TripletStatistics) {
        let (picks, labels) = sampleBatch()
        let z = trainable.forward(featureBatch(picks), training: true)
        var (loss, grad, stats) = Loss.tripletBatchHard(z, labels: labels, margin: options.margin)
        if options.classificationWeight > 0 {
            let logits = classifier.forward(z, training: true)
            let (ce, dLogits) = Self.softmaxCrossEntropy(logits, labels: labels)
            let dz = classifier.backward(dLogits)
            for i in grad.data.indices { grad.data[i] += options.classificationWeight * dz.data[i] }
            loss += options.classificationWeight * ce
        }
        _ = trainable.backward(grad)
        return (loss, stats)
    }

    /// One step of the multi-scale head: cosine-softmax cross-entropy over every labelled photo
    /// in every pose (a few thousand rows of a few hundred features: the whole set is one batch),
    /// plus the L2 penalty on the linear map; accumulates gradients, returns the cross-entropy.
    private func multiScaleStep() -> Float {
        let rows = views * data.images.count
        let z = trainable.forward(Tensor(shape: [rows] + featureShape, data: features), training: true)
        let labels = Array([[Int]](repeating: data.labels, count: views).joined())  // view-major, as `features`
        let (ce, dLogits) = Self.softmaxCrossEntropy(classifier.forward(z, training: true), labels: labels)
        _ = trainable.backward(classifier.backward(dLogits))
        if let linear = trainable.layers.first as? Linear { addLinearPenalty(to: linear) }
        return ce
    }

    /// Multi-scale head, second phase (`fineTuneSteps` > 0): the trunk and the linear map learn
    /// together from the cosine-softmax loss on augmented crops, starting from the first phase's
    /// map (fine-tuning from a trained head rather than a random one keeps the early steps from
    /// wrecking the pre-trained trunk). Batch-norm statistics stay frozen: batches of a few dozen
    /// photos would make them noisy. Returns the last step's cross-entropy.
    public func fineTuneTrunk(progress: (Int, Int, Float) -> Void = { _, _, _ in }) -> Float {
        guard options.kind == .multiScale, options.fineTuneSteps > 0,
              let pooling = frozen.layers.first as? MultiScalePooling,
              let linear = trainable.layers.first as? Linear else { return 0 }
        for bn in batchNormLayers(in: pooling) { bn.freezeStatistics = true }
        let net = Sequential([pooling, Standardize(mean: featureMean, scale: featureScale), linear, L2Normalize()])
        let params = net.parameters + classifier.parameters
        var adam = Adam(learningRate: options.fineTuneLearningRate)
        var rng = SeededRandom(seed: options.seed ^ 0xF17E)
        let tensorizer = CropTensorizer()
        let augmentation = Augmentation()
        let n = data.images.count
        var running: Float = 0, last: Float = 0
        for step in 1...options.fineTuneSteps {
            let picks = (0..<options.fineTuneBatch).map { _ in Int(rng.next() % UInt64(n)) }
            let x = tensorizer.batch(data.images, indices: picks, augmentation: augmentation, rng: &rng)
            adam.zeroGrad(params)
            let z = net.forward(x, training: true)
            let (ce, dLogits) = Self.softmaxCrossEntropy(classifier.forward(z, training: true), labels: picks.map { data.labels[$0] })
            _ = net.backward(classifier.backward(dLogits))
            addLinearPenalty(to: linear)
            adam.step(params)
            last = ce
            running = step == 1 ? ce : 0.95 * running + 0.05 * ce
            progress(step, options.fineTuneSteps, running)
        }
        return last
    }

    /// The multi-scale head's L2 penalty on its linear map, added to the map's weight gradient.
    private func addLinearPenalty(to linear: Linear) {
        guard options.linearPenalty > 0 else { return }
        for i in linear.weight.value.indices { linear.weight.grad[i] += options.linearPenalty * linear.weight.value[i] }
    }

    /// Mean softmax cross-entropy of rows of `logits` [N, C] against `labels`, and its gradient.
    static func softmaxCrossEntropy(_ logits: Tensor, labels: [Int]) -> (loss: Float, grad: Tensor) {
        let n = logits.shape[0], c = logits.shape[1]
        var grad = [Float](repeating: 0, count: n * c)
        var total = 0.0
        for r in 0..<n {
            let row = logits.data[r * c..<(r + 1) * c]
            let top = row.max() ?? 0
            let sum = row.reduce(Float(0)) { $0 + expf($1 - top) }
            let logZ = top + logf(sum)
            total += Double(logZ - logits.data[r * c + labels[r]])
            for j in 0..<c {
                grad[r * c + j] = (expf(logits.data[r * c + j] - logZ) - (j == labels[r] ? 1 : 0)) / Float(n)
            }
        }
        return (Float(total / Double(max(n, 1))), Tensor(shape: logits.shape, data: grad))
    }
}

extension Sequential {
    /// Embeddings of `images` (clean, pose 0) in evaluation mode, in batches: [count, D].
    public func embed(_ images: CropImages, batch: Int = 64) -> Tensor {
        let tensorizer = CropTensorizer()
        var out: [Float] = []
        var dim = 0
        var start = 0
        while start < images.count {
            let indices = Array(start..<min(start + batch, images.count))
            let y = forward(tensorizer.batch(images, indices: indices, poses: [Int](repeating: 0, count: indices.count)),
                            training: false)
            dim = y.sampleCount
            out += y.data
            start += batch
        }
        return Tensor(shape: [images.count, dim], data: out)
    }
}

/// (x − mean) · scale per feature, fixed: the multi-scale head's standardisation while the trunk is
/// fine-tuned (folded into the linear map on export, never exported itself).
final class Standardize: Layer {
    let mean: [Float], scale: [Float]
    init(mean: [Float], scale: [Float]) {
        precondition(mean.count == scale.count, "Standardize: \(mean.count) means for \(scale.count) scales")
        self.mean = mean; self.scale = scale
    }
    var parameters: [Parameter] { [] }
    func forward(_ x: Tensor, training: Bool) -> Tensor {
        let d = mean.count
        precondition(x.shape.count == 2 && x.shape[1] == d, "Standardize: input shape \(x.shape), expected [N, \(d)]")
        var y = x.data
        for i in y.indices { y[i] = (y[i] - mean[i % d]) * scale[i % d] }
        return Tensor(shape: x.shape, data: y)
    }
    func backward(_ dy: Tensor) -> Tensor {
        let d = scale.count
        var dx = dy.data
        for i in dx.indices { dx[i] *= scale[i % d] }
        return Tensor(shape: dy.shape, data: dx)
    }
}
