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

/// Options of `train head`.
public struct HeadOptions: Sendable, Equatable {
    public var steps = 600
    /// Batch = `classesPerBatch` labels × `beansPerClass` beans (batch-hard mining needs both).
    public var classesPerBatch = 8
    public var beansPerClass = 4
    public var margin: Float = 0.2
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 1e-4
    public var hidden = 256
    public var embedding = 128
    /// Fine-tune the trunk's last stage too (else only the MLP head learns).
    public var fineTuneLastStage = true
    /// Fine-tune the whole trunk (overrides `fineTuneLastStage`): the cached views are then the
    /// augmented crops themselves, and every step runs the full network forward and back.
    public var fineTuneWholeTrunk = false
    /// Augmented copies per pose in the cached features (poses × copies views per crop; copy 0 is clean).
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
    /// The classifier is not part of the exported encoder.
    public var classificationWeight: Float = 1

    public init() {}

    public func validate() throws {
        guard steps >= 1 else { throw TrainingError("--steps must be at least 1, got \(steps)") }
        guard classesPerBatch >= 2, beansPerClass >= 2 else {
            throw TrainingError("a triplet batch needs at least 2 labels × 2 beans, got \(classesPerBatch) × \(beansPerClass)")
        }
        guard embedding >= 2, hidden >= 1 else { throw TrainingError("--dim must be at least 2, got \(embedding)") }
        guard learningRate > 0, learningRate.isFinite else { throw TrainingError("--lr must be positive, got \(learningRate)") }
        guard copiesPerPose >= 1 else { throw TrainingError("copies per pose must be at least 1") }
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

/// Trains a 128-d L2-normalised projection head (MLP, optionally with the trunk's last stage) with
/// the batch-hard triplet loss on P labels × K beans per batch. The frozen part of the trunk runs
/// once per crop and view (its output is cached), so each step only runs what learns.
public final class HeadTrainer {
    public let options: HeadOptions
    public let data: LabelledCrops
    /// Trunk layers that stay frozen (evaluation mode).
    public let frozen: Sequential
    /// What learns: the fine-tuned last stage (when chosen) and the MLP head ending in L2Normalize.
    public let trainable: Sequential
    /// Auxiliary classifier on the embedding (training only).
    let classifier: Linear
    /// Everything the optimiser updates, for snapshots.
    private let learning: Sequential
    private var optimiser: Adam
    private var random: SeededRandom
    private var features: [Float] = []
    private var featureShape: [Int] = []
    private let views: Int

    public init(options: HeadOptions, trunk: Sequential, shape: TrunkShape, data: LabelledCrops) throws {
        try options.validate()
        self.options = options
        self.data = data
        let split = options.fineTuneWholeTrunk ? 0 : options.fineTuneLastStage ? shape.lastStageStart : trunk.layers.count
        frozen = Sequential(Array(trunk.layers[0..<split]))
        var rng = SeededRandom(seed: options.seed ^ 0x4EAD)
        let top = shape.widths.last ?? 1
        let tail = Array(trunk.layers[split...])
        trainable = Sequential(tail + [GlobalAvgPool(), Flatten(), Linear(top, options.hidden, rng: &rng), ReLU(),
                                       Linear(options.hidden, options.embedding, rng: &rng), L2Normalize()] as [Layer])
        classifier = Linear(options.embedding, max(data.classNames.count, 1), rng: &rng)
        learning = Sequential([trainable, classifier])
        optimiser = Adam(learningRate: options.learningRate, weightDecay: options.weightDecay)
        random = SeededRandom(seed: options.seed &+ 0x7121)
        views = 4 * options.copiesPerPose
        cacheFeatures()
    }

    /// The whole encoder: frozen trunk, trained part, normalisation. Shares layers with this trainer.
    public var encoder: Sequential { Sequential(frozen.layers + trainable.layers) }

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
            let (picks, labels) = sampleBatch()
            optimiser.zeroGrad(params)
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
            optimiser.step(params)
            step += 1
            running = step == 1 ? loss : 0.95 * running + 0.05 * loss
            lastStats = stats
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
