import ArgumentParser
import BeanCapture
import BeanCore
import BeanInspect
import BeanNet
import BeanStore
import BeanVision
import CThread
import Foundation

/// `beanctl train …`: learning on the box, with the project's own kernels.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the bean encoder: self-supervised backbone, then a triplet projection head.",
        subcommands: [TrainBackbone.self, TrainHead.self, TrainCrops.self]
    )

    /// Training frees and allocates the same large tensors every step. With glibc's defaults they go
    /// back to the kernel (the heap is trimmed above 128 KiB free, large blocks are mmapped), and
    /// each step pays page faults to get them back: on the project's Intel machine 2.0 M faults in
    /// 20 backbone steps, a quarter of the wall time. Keeping freed memory in the process (never trim,
    /// grow the heap in 256 MiB steps, mmap only blocks over 32 MiB, the largest threshold glibc
    /// takes) cut those 20 steps from 16.0 to 12.0 s. The peak memory is unchanged: it is the
    /// step's working set either way.
    static func keepFreedMemory() {
        _ = beand_malloc_keep_freed()
    }
}

/// Where crops come from: segmentation settings for photos, crop cache, threads.
struct CropSourceOptions: ParsableArguments {
    @Option(help: "Segmentation for photos larger than a crop: default, tray, mindforge (single-bean jig).")
    var preset: Segment.Preset?

    @Option(help: ArgumentHelp("Take segmentation settings from a camera of this beand configuration.", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("With --config: the camera whose settings to use (default: the first).", valueName: "name"))
    var camera: String?

    @Option(name: .customLong("crop-cache"), help: ArgumentHelp("Keep the crops of the photos in this file, so later runs skip segmentation.", valueName: "file"))
    var cropCache: String?

    @Option(help: "Threads for cropping and for BLAS during training.")
    var threads: Int = 2

    @Option(name: .customLong("crop-size"), help: ArgumentHelp("Side of the square crop in pixels, the encoder's input (default: the config camera's crop_size with --config, else 64; train head: the backbone's).", valueName: "pixels"))
    var cropSize: Int?

    func validate() throws {
        if config != nil && preset != nil { throw ValidationError("--preset and --config both choose the segmentation; give one") }
        if camera != nil && config == nil { throw ValidationError("--camera needs --config") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1…64, got \(threads)") }
        if let cropSize, !(16...512).contains(cropSize) {
            throw ValidationError("--crop-size must be 16…512, got \(cropSize)")
        }
    }

    /// The crop side: `--crop-size`, else the config camera's `crop_size`, else `fallback`.
    func cropSettings(fallback: Int = CropSettings().size) throws -> CropSettings {
        var crop = CropSettings()
        if let cropSize {
            crop.size = cropSize
        } else if let config, let configured = try Segment.cameraConfig(config: config, camera: camera).cropSize {
            crop.size = configured
        } else {
            crop.size = fallback
        }
        return crop
    }

    func segmenterSettings() throws -> SegmenterSettings {
        if let config { return try Segment.cameraSettings(config: config, camera: camera) }
        switch preset ?? .default {
        case .default: return SegmenterSettings()
        case .tray: return .tray
        case .mindforge: return .mindforge
        }
    }

    /// Crops of `paths` at `crop`'s size (default: `cropSettings()`).
    func load(_ paths: [String], what: String, crop: CropSettings? = nil) throws -> TrainingCrops {
        let crops = try TrainingCrops.load(paths: paths, segmenter: try segmenterSettings(), crop: crop ?? cropSettings(),
                                           cache: cropCache, threads: threads, progress: ProgressLine(what))
        if !crops.skipped.isEmpty {
            stderrLine("\(crops.skipped.count) of \(paths.count) photos gave no crop; first: \(crops.skipped[0].path): \(crops.skipped[0].reason)")
        }
        return crops
    }
}

func stderrLine(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func parseIntList(_ text: String, option: String) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
        throw ValidationError("\(option): '\(text)' is not a comma-separated list of integers")
    }
    return values.compactMap { $0 }
}

/// The trunk's architecture from a backbone checkpoint's metadata.
func trunkShape(of checkpoint: Checkpoint, path: String) throws -> TrunkShape {
    guard checkpoint.metadata["kind"] == "backbone", let widths = checkpoint.metadata["widths"],
          let blocks = checkpoint.metadata["blocks"], let stem = checkpoint.metadata["stem_stride"].flatMap({ Int($0) }) else {
        throw TrainError("\(path): not a backbone checkpoint of beanctl train backbone (no trunk description in it)")
    }
    let shape = TrunkShape(widths: try parseIntList(widths, option: "\(path): widths"),
                           blocks: try parseIntList(blocks, option: "\(path): blocks"), stemStride: stem)
    try shape.validate()
    return shape
}

/// `--out`-style atomic file write for exported models.
func writeAtomically(_ data: Data, to path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    let temporary = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: data) else {
        throw TrainError("\(path): cannot write (creating \(temporary) failed)")
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw TrainError("\(path): cannot rename the new file into place: \(reason)")
    }
}

// MARK: backbone

struct TrainBackbone: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backbone",
        abstract: "Self-supervised pre-training of the encoder's trunk on unlabelled crops.",
        discussion: """
            Writes OUT/backbone.ckpt after every epoch (atomically; --resume continues from it with \
            the same result as an uninterrupted run) and, at the end, OUT/backbone.onnx: the trunk \
            with global average pooling and L2 normalisation, the encoder without a head.
            """
    )

    @Option(name: .customLong("crops"), parsing: .upToNextOption,
            help: ArgumentHelp("Directories (searched recursively) or files of crops or photos.", valueName: "dir"))
    var crops: [String] = []

    @Option(help: ArgumentHelp("Directory for the checkpoint and the exported trunk.", valueName: "dir"))
    var out: String = "train-backbone"

    @Option(help: "Self-supervised objective: contrastive (SimCLR-style, NT-Xent), cutpaste (tell crops from crops with a pasted patch), contrastive+cutpaste (both losses at once), contrastive-multiscale (NT-Xent on the pooled statistics of every stage), byol (self-distillation: predict a moving-average copy's output for the other view, no negatives) or autoencoder (reconstruction).")
    var objective: String = BackboneOptions().objective.rawValue

    @Option(help: "Passes over the crops.") var epochs: Int = BackboneOptions().epochs
    @Option(help: "Seed of initialisation, shuffling and augmentation.") var seed: UInt64 = BackboneOptions().seed
    @Option(help: "Crops per step.") var batch: Int = BackboneOptions().batch
    @Option(name: .customLong("lr"), help: "Adam learning rate.") var learningRate: Float = BackboneOptions().learningRate
    @Option(help: ArgumentHelp("Channels per stage.", valueName: "w,w,…")) var widths: String = "16,32,64,128"
    @Option(help: ArgumentHelp("Residual blocks per stage.", valueName: "b,b,…")) var blocks: String = "1,1,1,1"
    @Option(name: .customLong("stem-stride"), help: "Stride of the first 3×3 convolution (1…4): with larger crops, 3 keeps the later stages' cost of 64×64 crops at stride 2.")
    var stemStride: Int = TrunkShape().stemStride
    @Option(name: .customLong("max-steps-per-epoch"), help: "Stop each epoch after this many steps (0 = all crops).")
    var maxStepsPerEpoch: Int = 0
    @Option(help: "Random magnification of each view, drawn from [1, 1 + zoom], of a window placed at random (0 = off).")
    var zoom: Float = BackboneOptions().augmentation.zoom
    @Option(help: ArgumentHelp("Random rotation of each view by up to this many degrees either way (0 = off).", valueName: "degrees"))
    var rotate: Float = BackboneOptions().augmentation.rotation
    @Option(help: "Random brightness gain of each view, drawn from [1 - b, 1 + b].")
    var brightness: Float = BackboneOptions().augmentation.brightness
    @Option(help: "Random extra gain of each colour channel of each view, drawn from [1 - c, 1 + c].")
    var colour: Float = BackboneOptions().augmentation.colour
    @Option(help: "contrastive objectives: NT-Xent temperature (lower: harder negatives).")
    var temperature: Float = BackboneOptions().temperature
    @Option(help: "contrastive: local views of each crop besides its two views (multi-crop; half the crop's side, 35–60 % of the crop; 0 = off).")
    var localViews: Int = BackboneOptions().localViews
    @Option(name: .customLong("labelled-tree"), help: ArgumentHelp("contrastive: also learn from labelled beans of this tree (drawn as train head draws them): every step adds --supervised-batch of their crops, and views of one class pull together (supervised contrastive).", valueName: "dir"))
    var labelledTree: String?
    @Option(help: ArgumentHelp("With --labelled-tree: its layout.", valueName: "template")) var layout: String = TreeLayout.mindforge.template
    @Option(help: "With --labelled-tree: labelled beans to draw (at most).") var labels: Int?
    @Option(name: .customLong("good-share"), help: ArgumentHelp("With --labelled-tree: share of good beans among them, or 'proportional', as train head's. (default: 0.5)", valueName: "share"))
    var goodShare: GoodShare?
    @Option(help: "With --labelled-tree: folds of the tree (with --fold).") var folds: Int = 5
    @Option(help: "With --labelled-tree: draw from the other folds only, as train head --fold and eval's fold do (0-based).") var fold: Int?
    @Option(name: .customLong("label-seed"), help: "With --labelled-tree: seed of the folds and the labelled subset (train head's and eval's --seed).")
    var labelSeed: UInt64 = 0
    @Option(name: .customLong("supervised-batch"), help: "With --labelled-tree: labelled crops per step, besides --batch unlabelled ones.")
    var supervisedBatch: Int = BackboneOptions().supervisedBatch
    @Flag(help: "Continue from OUT/backbone.ckpt.") var resume = false
    @OptionGroup var source: CropSourceOptions

    func run() throws {
        Train.keepFreedMemory()
        guard !crops.isEmpty else { throw ValidationError("--crops: give at least one directory of crops or photos") }
        guard let objective = BackboneObjective(rawValue: objective) else {
            throw ValidationError("--objective must be one of \(BackboneObjective.allCases.map(\.rawValue).joined(separator: ", ")), got '\(self.objective)'")
        }
        var options = BackboneOptions()
        options.objective = objective
        options.epochs = epochs
        options.seed = seed
        options.batch = batch
        options.learningRate = learningRate
        guard (1...4).contains(stemStride) else { throw ValidationError("--stem-stride must be 1…4, got \(stemStride)") }
        options.shape = TrunkShape(widths: try parseIntList(widths, option: "--widths"), blocks: try parseIntList(blocks, option: "--blocks"),
                                   stemStride: stemStride)
        options.maxStepsPerEpoch = maxStepsPerEpoch
        guard zoom >= 0, zoom <= 3 else { throw ValidationError("--zoom must be 0…3, got \(zoom)") }
        options.augmentation.zoom = zoom
        guard rotate >= 0, rotate <= 180 else { throw ValidationError("--rotate must be 0…180 degrees, got \(rotate)") }
        options.augmentation.rotation = rotate
        guard brightness >= 0, brightness < 1 else { throw ValidationError("--brightness must be in [0, 1), got \(brightness)") }
        options.augmentation.brightness = brightness
        guard colour >= 0, colour < 1 else { throw ValidationError("--colour must be in [0, 1), got \(colour)") }
        options.augmentation.colour = colour
        guard temperature >= 0.01, temperature <= 10 else { throw ValidationError("--temperature must be 0.01…10, got \(temperature)") }
        options.temperature = temperature
        guard (0...8).contains(localViews) else { throw ValidationError("--local-views must be 0…8, got \(localViews)") }
        guard localViews == 0 || objective == .contrastive else {
            throw ValidationError("--local-views applies to --objective contrastive, not \(objective.rawValue)")
        }
        options.localViews = localViews
        options.supervisedBatch = supervisedBatch
        try options.validate()
        try validateLabelledOptions(objective: objective)
        let labelledBeans = try openLabelledTree()

        let files = try TrainingCrops.imageFiles(under: crops)
        let loaded = try source.load(files, what: "crops")
        guard loaded.count >= 2 else {
            throw TrainError("\(crops.joined(separator: " ")): \(loaded.count) usable crops; pre-training needs at least 2")
        }
        let images = try CropImages(size: loaded.size, pixels: loaded.pixels)
        let labelled = try labelledBeans.map { try labelledCrops(from: $0, crop: try source.cropSettings()) }
        setBLASThreads(source.threads)
        let trainer = try BackboneTrainer(options: options, images: images, labelled: labelled?.crops)
        let checkpoint = (out as NSString).appendingPathComponent("backbone.ckpt")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        if resume {
            guard FileManager.default.fileExists(atPath: checkpoint) else { throw TrainError("--resume: \(checkpoint) does not exist") }
            try trainer.resume(from: checkpoint)
            stderrLine("resumed from \(checkpoint) after epoch \(trainer.epochsDone)")
        }
        let local = localViews > 0 ? ", \(localViews) local views" : ""
        if let labelled {
            stderrLine("supervised part: \(labelled.summary), \(supervisedBatch) per step; good share \(goodShare ?? .default)")
        }
        stderrLine("pre-training (\(objective.rawValue)\(local)) on \(images.count) crops, trunk \(options.shape), \(trainer.model.trunk.parameterCount) parameters, \(options.epochs) epochs")
        let cpuStart = cpuSeconds()
        let wallStart = Date()
        var bar = ProgressLine("epoch \(trainer.epochsDone + 1)/\(options.epochs)")
        try trainer.train(checkpoint: checkpoint, step: { epoch, step, steps, loss in
            if step == 1 { bar = ProgressLine("epoch \(epoch)/\(options.epochs)") }
            bar.update(step, of: steps, note: String(format: "loss %.4f", loss))
        }, epochEnd: { report in
            bar.finish(report.steps, note: String(format: "steps, mean loss %.4f", report.meanLoss))
        })
        let trunkOnly = Sequential(trainer.model.trunk.layers + [GlobalAvgPool(), Flatten(), L2Normalize()] as [Layer])
        let onnx = try ONNXExport.encoder(trunkOnly, inputShape: [3, images.size, images.size], producer: "beanctl train backbone")
        let onnxPath = (out as NSString).appendingPathComponent("backbone.onnx")
        try writeAtomically(onnx, to: onnxPath)
        print("checkpoint \(checkpoint)")
        print("encoder without head \(onnxPath)")
        print(String(format: "time %.0f s wall, %.0f s CPU", Date().timeIntervalSince(wallStart), cpuSeconds() - cpuStart))
    }
}

extension TrainBackbone {
    /// The labelled options belong together: each needs --labelled-tree, which needs --labels.
    func validateLabelledOptions(objective: BackboneObjective) throws {
        guard labelledTree != nil else {
            let given = [labels.map { _ in "--labels" }, goodShare.map { _ in "--good-share" }, fold.map { _ in "--fold" }].compactMap { $0 }
            if let first = given.first { throw ValidationError("\(first) needs --labelled-tree") }
            return
        }
        guard objective == .contrastive, localViews == 0 else {
            throw ValidationError("--labelled-tree needs --objective contrastive without --local-views, got \(objective.rawValue)\(localViews > 0 ? " with --local-views \(localViews)" : "")")
        }
        guard let labels else { throw ValidationError("--labelled-tree needs --labels N (how many labelled beans to draw)") }
        guard labels >= 1 else { throw ValidationError("--labels must be at least 1, got \(labels)") }
        guard folds >= 2 else { throw ValidationError("--folds must be at least 2, got \(folds)") }
        if let fold, !(0..<folds).contains(fold) { throw ValidationError("--fold must be 0…\(folds - 1), got \(fold)") }
        try goodShare?.validate()
    }

    /// The tree of `--labelled-tree`, read before the long crop loading so a bad path fails at once.
    func openLabelledTree() throws -> LabelledTree? {
        guard let labelledTree else { return nil }
        let tree = try LabelledTree(root: labelledTree, layout: try TreeLayout(template: layout))
        guard !tree.beans.isEmpty else { throw TrainError("\(labelledTree): no labelled photos in the layout \(layout)") }
        return tree
    }

    /// The labelled crops drawn from `tree` (that of `--labelled-tree`).
    func labelledCrops(from tree: LabelledTree, crop: CropSettings) throws -> LabelledDraw {
        let beanFolds = try fold.map { _ in try BeanFolds(beans: tree.beans, folds: folds, seed: labelSeed) }
        let goodLabels: Set<Label> = try source.config.map { try Segment.goodLabels(config: $0) } ?? [.normal]
        return try LabelledDraw(tree: tree, count: labels ?? 0, share: goodShare ?? .default,
                                folds: beanFolds, fold: fold, seed: labelSeed, goodLabels: goodLabels, source: source, crop: crop)
    }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

// MARK: head

struct TrainHead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head",
        abstract: "Train the 128-d projection head on N labelled beans; write one ONNX encoder.",
        discussion: """
            The labelled beans are drawn with the same stratified, seeded rule as beanctl eval \
            (BeanFolds.labelledSubset); with --fold they come from the training folds only, so eval's \
            fold holds out beans the head never saw. Only photos whose side shows the bean's class \
            are used. With --fold, the held-out fold is scored afterwards (kNN against the labelled \
            beans' vectors, a quick check; beanctl eval is the measurement).
            """
    )

    @Option(help: ArgumentHelp("Labelled tree (one folder per label, or the Mindforge layout).", valueName: "dir"))
    var tree: String

    @Option(help: ArgumentHelp("Tree layout template.", valueName: "template")) var layout: String = TreeLayout.mindforge.template
    @Option(help: "Labelled beans to train on (at most).") var labels: Int
    @Option(name: .customLong("good-share"), help: ArgumentHelp("Share (0…1) of the labelled beans drawn from good beans (the config's good labels with --config, else Normal), or 'proportional' (every label in proportion); as beanctl eval's --good-share. (default: 0.5)", valueName: "share"))
    var goodShare: GoodShare?
    /// The share in force: the option, else `GoodShare.default`.
    private var share: GoodShare { goodShare ?? .default }
    @Option(help: ArgumentHelp("Backbone checkpoint of beanctl train backbone.", valueName: "ckpt")) var backbone: String
    @Option(help: ArgumentHelp("Where to write the ONNX encoder.", valueName: "file")) var out: String
    @Option(help: "Folds of the tree (with --fold).") var folds: Int = 5
    @Option(help: "Train on the other folds only and check on this one (0-based).") var fold: Int?
    @Option(help: "Seed of folds, labelled subset (as beanctl eval's --seed) and training.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("What goes on the backbone: multi-scale (pooled statistics of every trunk stage, a linear map, cosine-softmax loss; the trunk stays frozen) or mlp (the last stage and an MLP, triplet loss).", valueName: "kind"))
    var head: HeadKind = .multiScale
    @Option(help: "Optimiser steps (default: 400 for multi-scale, 600 for mlp).") var steps: Int?
    @Option(name: .customLong("lr"), help: "Adam learning rate (default: 0.05 for multi-scale, 0.001 for mlp).") var learningRate: Float?
    @Flag(name: .customLong("pool-input"),
          help: "multi-scale: also pool each colour channel's mean and deviation over the crop itself.")
    var poolInput = false
    @Option(name: .customLong("fine-tune-steps"), help: "multi-scale: then fine-tune the trunk with the head for this many steps on augmented crops (0 = trunk frozen).")
    var fineTuneSteps: Int = HeadOptions().fineTuneSteps
    @Option(name: .customLong("fine-tune-lr"), help: "multi-scale: Adam learning rate of the fine-tuning steps.")
    var fineTuneLearningRate: Float = HeadOptions().fineTuneLearningRate
    @Option(name: .customLong("patch-novelty"), help: ArgumentHelp("multi-scale: add the patch-novelty coordinate (how far the crop's most unusual spot is from the labelled good beans' patches) with a bank of this many patches, e.g. 500 (0 = none).", valueName: "patches"))
    var noveltyBank: Int = HeadOptions().noveltyBank
    @Option(name: .customLong("novelty-weight"), help: "multi-scale: weight of the standardised patch novelty beside the head's unit-length embedding.")
    var noveltyWeight: Float = HeadOptions().noveltyWeight
    @Option(help: "Triplet margin (mlp).") var margin: Float = HeadOptions(kind: .mlp).margin
    @Option(name: .customLong("classification-weight"), help: "mlp: weight of the auxiliary cross-entropy on a linear classifier over the embedding (0 = triplet loss alone).")
    var classificationWeight: Float = HeadOptions(kind: .mlp).classificationWeight
    @Flag(name: .customLong("freeze-trunk"), help: "mlp: train the MLP head only (default: also fine-tune the trunk's last stage).")
    var freezeTrunk = false
    @Flag(name: .customLong("fine-tune-trunk"), help: "mlp: fine-tune the whole trunk with the head (slower: every step runs the full network).")
    var fineTuneTrunk = false
    @Option(name: .customLong("store-out"), help: ArgumentHelp("Also write a vector store of the labelled beans' usable photos.", valueName: "dir"))
    var storeOut: String?
    @OptionGroup var source: CropSourceOptions

    func run() throws {
        Train.keepFreedMemory()
        guard labels >= 1 else { throw ValidationError("--labels must be at least 1, got \(labels)") }
        try goodShare?.validate()
        if let fold, !(0..<folds).contains(fold) { throw ValidationError("--fold must be 0…\(folds - 1), got \(fold)") }
        let layout = try TreeLayout(template: self.layout)
        let labelled = try LabelledTree(root: tree, layout: layout)
        guard !labelled.beans.isEmpty else { throw TrainError("\(tree): no labelled photos in the layout \(layout)") }

        let checkpoint: Checkpoint
        do { checkpoint = try Checkpoint.read(from: backbone) } catch { throw TrainError("--backbone: \(error)") }
        let shape = try trunkShape(of: checkpoint, path: backbone)
        let objective = BackboneObjective(rawValue: checkpoint.metadata["objective"] ?? "") ?? .contrastive
        let model = BackboneModel(shape: shape, objective: objective, seed: 0)
        try checkpoint.restore(into: model.whole, path: backbone)
        // The head's crops are the size the trunk was pre-trained on, unless the user insists.
        let trainedSize = checkpoint.metadata["crop_size"].flatMap { Int($0) } ?? CropSettings().size
        let crop = try source.cropSettings(fallback: trainedSize)
        if crop.size != trainedSize {
            throw TrainError("--backbone: \(backbone) was pre-trained on \(trainedSize)×\(trainedSize) crops, this run cuts \(crop.size)×\(crop.size) (--crop-size or the config's crop_size); give the same size")
        }

        let beanFolds = try fold.map { _ in try BeanFolds(beans: labelled.beans, folds: folds, seed: seed) }
        // Good labels as eval's policy has them: the config's, else Normal.
        let goodLabels: Set<Label> = try source.config.map { try Segment.goodLabels(config: $0) } ?? [.normal]
        let draw = try LabelledDraw(tree: labelled, count: labels, share: share, folds: beanFolds, fold: fold,
                                    seed: seed, goodLabels: goodLabels, source: source, crop: crop)
        let (data, chosen, labelledPaths, classNames) = (draw.crops, draw.chosenBeans, draw.paths, draw.classNames)
        let images = data.images
        stderrLine("head: \(draw.summary); good share \(share)")

        setBLASThreads(source.threads)
        var options = HeadOptions(kind: head)
        if let steps { options.steps = steps }
        if let learningRate { options.learningRate = learningRate }
        options.margin = margin
        options.classificationWeight = classificationWeight
        options.fineTuneSteps = fineTuneSteps
        options.fineTuneLearningRate = fineTuneLearningRate
        options.poolsInput = poolInput
        if head == .mlp && noveltyBank > 0 { throw ValidationError("--patch-novelty applies to --head multi-scale") }
        options.noveltyBank = noveltyBank
        options.noveltyWeight = noveltyWeight
        if head == .mlp && poolInput { throw ValidationError("--pool-input applies to --head multi-scale (the mlp head pools the last stage only)") }
        if head == .mlp && fineTuneSteps > 0 { throw ValidationError("--fine-tune-steps applies to --head multi-scale (for mlp: --fine-tune-trunk)") }
        if freezeTrunk && fineTuneTrunk { throw ValidationError("--freeze-trunk and --fine-tune-trunk exclude each other") }
        if head == .multiScale && (freezeTrunk || fineTuneTrunk) {
            throw ValidationError("--freeze-trunk and --fine-tune-trunk apply to --head mlp only (the multi-scale head keeps the trunk frozen)")
        }
        options.fineTuneLastStage = !freezeTrunk
        options.fineTuneWholeTrunk = fineTuneTrunk
        options.seed = seed &+ 17
        let wallStart = Date(), cpuStart = cpuSeconds()
        let trainer = try HeadTrainer(options: options, trunk: model.trunk, shape: shape, data: data)
        let bar = ProgressLine("head")
        let report = try trainer.train(progress: { step, steps, loss in
            bar.update(step, of: steps, note: String(format: "loss %.4f", loss))
        }, log: { stderrLine($0) })
        switch head {
        case .mlp:
            bar.finish(report.steps, note: String(format: "steps, loss %.4f, active triplets %.0f%%, d+ %.3f d- %.3f, spread %.3f",
                                                   report.finalLoss, report.activeTripletShare * 100, report.meanPositiveDistance,
                                                   report.meanNegativeDistance, report.probeSpread))
        case .multiScale:
            bar.finish(report.steps, note: String(format: "steps, cross-entropy %.4f, spread %.3f", report.finalLoss, report.probeSpread))
            if options.fineTuneSteps > 0 {
                let tuneBar = ProgressLine("fine-tune")
                let loss = trainer.fineTuneTrunk(progress: { step, steps, loss in
                    tuneBar.update(step, of: steps, note: String(format: "loss %.4f", loss))
                })
                tuneBar.finish(options.fineTuneSteps, note: String(format: "steps, cross-entropy %.4f", loss))
            }
        }

        if options.noveltyBank > 0 {
            let goodClasses = Set(classNames.indices.filter { goodLabels.contains(Label(classNames[$0])) })
            try trainer.fitNovelty(goodClasses: goodClasses)
            if let novelty = trainer.novelty {
                print(String(format: "patch novelty: bank of %d patches from %d good photos, novelty mean %.3f, deviation %.3f, weight %.2f",
                             novelty.bankCount, data.labels.filter { goodClasses.contains($0) }.count, novelty.mean, novelty.deviation, novelty.weight))
            }
        }
        let onnx = try ONNXExport.encoder(trainer.encoder, inputShape: [3, images.size, images.size], producer: "beanctl train head")
        try writeAtomically(onnx, to: out)
        let encoder = try EncoderModel.load(path: out)
        print("encoder \(out) (\(encoder.outputDim)-d, \(encoder.parameterCount) parameters, \(onnx.count) bytes, fingerprint \(encoder.fingerprint))")

        let storeVectors = try embedWithRuntime(encoder, images)
        if let storeOut {
            var draft = GenerationDraft(dimension: encoder.outputDim, metric: .cosine, fingerprint: Array(encoder.fingerprint.utf8))
            for (row, path) in labelledPaths.enumerated() {
                try draft.append(vectors: Array(storeVectors[row * encoder.outputDim..<(row + 1) * encoder.outputDim]),
                                 labels: [classNames[data.labels[row]]], author: "beanctl train head",
                                 sourceIDs: [stableHash(path)], addedNs: Int64(Date().timeIntervalSince1970 * 1e9))
            }
            let published = try StoreWriter(directory: storeOut).publish(draft)
            print("store \(storeOut) generation \(published.generation) (\(published.count) vectors of \(chosen.count) beans)")
        }
        print(String(format: "time %.0f s wall, %.0f s CPU", Date().timeIntervalSince(wallStart), cpuSeconds() - cpuStart))

        if let fold, let beanFolds {
            let test = beanFolds.test(fold: fold)
            var testPaths: [String] = [], testBeans: [Int] = []
            for b in test { for photo in labelled.beans[b].usablePhotos { testPaths.append(photo.path); testBeans.append(b) } }
            let testCrops = try source.load(testPaths, what: "held-out photos", crop: crop)
            let beanOfPath = Dictionary(uniqueKeysWithValues: zip(testPaths, testBeans))
            let queries = try embedWithRuntime(encoder, try CropImages(size: testCrops.size, pixels: testCrops.pixels))
            let check = FoldCheck(store: storeVectors, storeLabels: data.labels.map { classNames[$0] }, dim: encoder.outputDim)
            let result = check.score(queries: queries, beans: testCrops.paths.map { beanOfPath[$0] ?? -1 },
                                     beanLabels: { labelled.beans[$0].label.name })
            print(result.summary(title: "fold \(fold) check (\(test.count) held-out beans, kNN k=\(check.k) on \(images.count) labelled vectors)"))
        }
    }

    /// Embeddings by the daemon's runtime (EncoderModel + Preprocessing), [count × dim].
    func embedWithRuntime(_ model: EncoderModel, _ crops: CropImages) throws -> [Float] {
        let batch = 32
        let session = try model.makeSession(maxBatch: batch)
        let pre = Preprocessing()
        let (w, h) = model.inputSize ?? (crops.size, crops.size)
        let perIn = 3 * w * h, dim = model.outputDim
        var input = [Float](repeating: 0, count: batch * perIn)
        var output = [Float](repeating: 0, count: crops.count * dim)
        var start = 0
        while start < crops.count {
            let n = min(batch, crops.count - start)
            try input.withUnsafeMutableBufferPointer { inBuf in
                guard let inBase = inBuf.baseAddress else { return }
                for k in 0..<n {
                    let crop = BeanCrop(camera: "train", frameSequence: 0, captured: MonotonicInstant.now(), beanID: UInt64(start + k),
                                        width: crops.size, height: crops.size,
                                        pixels: Array(crops.pixels[(start + k) * crops.bytesPerImage..<(start + k + 1) * crops.bytesPerImage]))
                    pre.write(crop, width: w, height: h, into: inBase + k * perIn)
                }
                try output.withUnsafeMutableBufferPointer { outBuf in
                    guard let outBase = outBuf.baseAddress else { return }
                    try session.run(input: inBase, batch: n, output: outBase + start * dim)
                }
            }
            start += n
        }
        return output
    }
}

/// FNV-1a of a path: the store's source id for a training photo.
func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return h
}

// MARK: crops

struct TrainCrops: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crops",
        abstract: "Write the crop the encoder sees of every photo of a tree, as PNG, in the same layout.",
        discussion: """
            Each photo under --tree becomes OUT/<same relative path>.png, the oriented, masked crop the \
            daemon would make; a photo without a crop is linked to the original (so a labelled tree \
            keeps every bean); the per-class side files (*.txt) are copied. Eval and train runs on \
            the crop tree skip segmentation.
            """
    )

    @Option(help: ArgumentHelp("Tree of photos.", valueName: "dir")) var tree: String
    @Option(help: ArgumentHelp("Where to write the crop tree.", valueName: "dir")) var out: String
    @OptionGroup var source: CropSourceOptions

    func run() throws {
        let files = try TrainingCrops.imageFiles(under: [tree])
        let crops = try source.load(files, what: "photos")
        let root = (tree as NSString).standardizingPath
        func relative(_ path: String) -> String {
            let standard = (path as NSString).standardizingPath
            return standard.hasPrefix(root + "/") ? String(standard.dropFirst(root.count + 1)) : (standard as NSString).lastPathComponent
        }
        let fm = FileManager.default
        for (row, path) in crops.paths.enumerated() {
            let target = (out as NSString).appendingPathComponent((relative(path) as NSString).deletingPathExtension + ".png")
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let frame = Frame(camera: "crop", sequence: 0, captured: MonotonicInstant.now(), width: crops.size, height: crops.size,
                              format: .rgb24, pixels: Array(crops.crop(row)))
            try ImageCodec.write(frame, to: target)
        }
        for (path, _) in crops.skipped {
            let target = (out as NSString).appendingPathComponent(relative(path))
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: target)
            try fm.createSymbolicLink(atPath: target, withDestinationPath: (path as NSString).standardizingPath)
        }
        var sideFiles = 0
        if let enumerator = LabelledTree.enumerator(of: tree) {
            while let next = enumerator.nextObject() as? String {
                guard (next as NSString).pathExtension.lowercased() == "txt" else { continue }
                let target = (out as NSString).appendingPathComponent(next)
                try? fm.removeItem(atPath: target)
                try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try fm.copyItem(atPath: (tree as NSString).appendingPathComponent(next), toPath: target)
                sideFiles += 1
            }
        }
        print("\(crops.count) crops, \(crops.skipped.count) photos without a crop (linked), \(sideFiles) side files → \(out)")
    }
}

extension HeadKind: ExpressibleByArgument {}
