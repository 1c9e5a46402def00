import ArgumentParser
import BeanCore
import BeanInspect
import BeanNet
import BeanService
import BeanStore
import Foundation

/// `beanctl eval`: how well the daemon's segmentation, encoder and kNN policy sort a labelled
/// folder tree. Fixed mode scores the tree against an existing store; fold mode builds a store per
/// bean-disjoint fold from labelled beans of the other folds.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure sorting quality on a labelled folder tree (fixed store, or bean-disjoint folds).",
        discussion: """
            Without --folds: every usable photo of --tree is cropped, embedded with the encoder and \
            searched in the store of --config (or --model and --store); nothing is learned from the tree. \
            With --folds K: the beans are split into K bean-disjoint folds (stratified by label, seeded); \
            each fold is scored against a store built from --labels-per-fold beans of the other folds. \
            A bean's reject score is the largest over its usable sides: in vote mode the \
            distance-weighted vote share of defect labels among the --score-k nearest vectors plus \
            \(RejectScore.goodDistanceWeight) × the distance to the nearest good one among them, in one-class mode the mean \
            distance to the k nearest good vectors. See beanctl-eval(1) for every figure.
            """
    )

    @Option(help: ArgumentHelp("Labelled folder tree to evaluate on.", valueName: "DIR"))
    var tree: String

    @Option(help: ArgumentHelp("Path template of the tree (default: the Mindforge layout {batch}/{label}/{side}/{id}).", valueName: "TEMPLATE"))
    var layout: String?

    @Option(help: ArgumentHelp("beand configuration: encoder, store, policy, camera segmentation (default \(defaultConfigPath) when neither --model nor --encoder is given).", valueName: "PATH"))
    var config: String?

    @Option(help: ArgumentHelp("ONNX encoder (instead of the config's).", valueName: "M.onnx"))
    var model: String?

    @Option(help: ArgumentHelp("Store directory to search (fixed mode; instead of the config's).", valueName: "DIR"))
    var store: String?

    @Option(help: ArgumentHelp("Fold mode: encoder raw[:SIZE] (raw downscaled pixels, default 16) or an ONNX file.", valueName: "ENCODER"))
    var encoder: String?

    @Option(help: ArgumentHelp("With --config: the camera whose segmentation settings to use (default: the first).", valueName: "name"))
    var camera: String?

    @Option(help: "Segmentation settings: default, tray, mindforge (instead of a config camera's).")
    var preset: Segment.Preset?

    @Option(help: "Bean-disjoint folds (at least 2); without it, fixed mode.")
    var folds: Int?

    @Option(name: .customLong("labels-per-fold"), help: ArgumentHelp("Fold mode: labelled beans in each fold's store (default: all beans of the other folds).", valueName: "N"))
    var labelsPerFold: Int?

    @Option(name: .customLong("good-share"), help: ArgumentHelp("Fold mode with --labels-per-fold: share (0…1) of each fold's labelled beans drawn from good beans (the policy's good labels), or 'proportional' (every label in proportion); as train head's --good-share. (default: 0.5)", valueName: "share"))
    var goodShare: GoodShare?
    /// The share in force: the option, else `GoodShare.default`.
    private var share: GoodShare { goodShare ?? .default }

    @Option(help: "Seed of the folds and the labelled subsets.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("one-class"), help: "One-class mode: store of good beans only (fold mode), policy in one-class mode.")
    var oneClass = false

    @Option(help: ArgumentHelp("The policy's mode, instead of the config's: vote or score (one-class: --one-class).", valueName: "mode"))
    var mode: DecisionPolicy.Mode?

    @Option(name: .short, help: "Neighbours per query (default: the config's inspect.k, else 64 in score mode and 5 otherwise).")
    var k: Int?

    @Option(name: .customLong("score-k"), help: ArgumentHelp("Vote mode: neighbours behind the continuous reject score (the verdict uses k).", valueName: "N"))
    var scoreK: Int = SearchLimits.maximumK

    @Option(name: .customLong("limit-beans"), help: ArgumentHelp("Evaluate a seeded label-stratified subset of this many beans.", valueName: "N"))
    var limitBeans: Int?

    @Option(help: "Threads for decoding, segmentation and the encoder.")
    var threads: Int = 2

    @Option(help: ArgumentHelp("Embeddings cache (.npy plus a .json beside it): reused when tree, encoder and cropping match.", valueName: "FILE.npy"))
    var cache: String?

    @Option(help: ArgumentHelp("Write per-bean scores as CSV (bean,label,defect,score,rejected,fold,decision_score).", valueName: "FILE.csv"))
    var scores: String?

    @Option(help: ArgumentHelp("Write report.json and PNG plots (roc.png, pr.png, confusion.png) here.", valueName: "DIR"))
    var out: String?

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    static let defaultConfigPath = "/etc/beand/beand.toml"

    func validate() throws {
        if let folds, folds < 2 { throw ValidationError("--folds must be at least 2, got \(folds)") }
        if folds == nil {
            if labelsPerFold != nil { throw ValidationError("--labels-per-fold needs --folds") }
            if encoder != nil { throw ValidationError("--encoder needs --folds (fixed mode uses the store's encoder: --model or --config)") }
            if (model == nil) != (store == nil) && config == nil {
                throw ValidationError("fixed mode needs --config, or both --model and --store")
            }
        } else {
            if store != nil { throw ValidationError("--store is for fixed mode; with --folds each fold builds its own store") }
            if encoder != nil && model != nil { throw ValidationError("give one of --encoder and --model") }
        }
        if let labelsPerFold, labelsPerFold < 1 { throw ValidationError("--labels-per-fold must be at least 1, got \(labelsPerFold)") }
        if let goodShare {
            guard labelsPerFold != nil else { throw ValidationError("--good-share needs --labels-per-fold") }
            try goodShare.validate()
        }
        if let k, !(1...SearchLimits.maximumK).contains(k) { throw ValidationError("-k must be 1…\(SearchLimits.maximumK), got \(k)") }
        if !(1...SearchLimits.maximumK).contains(scoreK) { throw ValidationError("--score-k must be 1…\(SearchLimits.maximumK), got \(scoreK)") }
        if mode == .oneClass { throw ValidationError("--mode one-class: give --one-class (it also keeps only good beans in each fold's store)") }
        if let limitBeans, limitBeans < 2 { throw ValidationError("--limit-beans must be at least 2, got \(limitBeans)") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if preset != nil && camera != nil { throw ValidationError("--preset and --camera both choose segmentation settings; give one") }
    }

    func run() throws {
        do {
            try runEvaluation()
        } catch let error as ValidationError {
            throw error
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("beanctl eval: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func runEvaluation() throws {
        // What to load: the config unless the command line names everything itself.
        let needsConfig = config != nil || (folds == nil ? model == nil : (model == nil && encoder == nil))
        let configPath = needsConfig ? (config ?? Self.defaultConfigPath) : nil
        let loaded = try configPath.map { try ConfigLoader.load(path: $0) }

        let cropEncoder = try makeEncoder(config: loaded)
        let setup = try CropSetup.make(config: loaded, configPath: configPath, camera: camera, preset: preset,
                                       encoderSize: cropEncoder.inputSize)
        let policy = try makePolicy(config: loaded)

        let layoutValue = try layout.map { try TreeLayout(template: $0) } ?? .mindforge
        let fullTree = try LabelledTree(root: tree, layout: layoutValue)
        guard !fullTree.beans.isEmpty else {
            throw ValidationError("\(tree): no photos fit the layout \(layoutValue) (\(fullTree.ignored.count) files ignored)")
        }
        var beans = fullTree.beans
        if let limitBeans, limitBeans < beans.count {
            beans = BeanFolds.labelledSubset(of: Array(beans.indices), beans: beans, count: limitBeans, seed: seed)
                .map { beans[$0] }
        }

        // Usable photos only: a defect's side that does not show the defect is left out.
        var photos: [(bean: Int, path: String)] = []
        var sidesNotShowingLabel = 0
        for (index, bean) in beans.enumerated() {
            for photo in bean.photos {
                if photo.showsLabel { photos.append((index, photo.path)) } else { sidesNotShowingLabel += 1 }
            }
        }

        let embedded = try embedPhotos(paths: photos.map(\.path), encoder: cropEncoder, setup: setup)
        var rowsOfBean = [[Int]](repeating: [], count: beans.count)
        var skipped: [PhotoSkipReason: Int] = [:]
        var skippedExamples: [String] = []
        for (i, status) in embedded.status.enumerated() {
            if let reason = status.reason {
                skipped[reason, default: 0] += 1
                if skippedExamples.count < 5 { skippedExamples.append(status.message ?? photos[i].path) }
            } else {
                rowsOfBean[photos[i].bean].append(i)
            }
        }
        let goodLabels = policy.goodLabels
        let evaluable = beans.indices.filter { !rowsOfBean[$0].isEmpty }
        guard !evaluable.isEmpty else {
            throw ValidationError("\(tree): no usable photo gave a crop (\(skippedExamples.joined(separator: "; ")))")
        }

        var report = EvalReport(policy: policy, encoder: cropEncoder.name, cropSize: setup.crop.size)
        report.scoreK = policy.mode == .vote ? scoreK : policy.k
        report.counts = [
            "beans_in_tree": fullTree.beans.count, "beans": evaluable.count,
            "good_beans": evaluable.filter { goodLabels.contains(beans[$0].label) }.count,
            "defect_beans": evaluable.filter { !goodLabels.contains(beans[$0].label) }.count,
            "photos": beans.reduce(0) { $0 + $1.photos.count },
            "photos_used": rowsOfBean.reduce(0) { $0 + $1.count },
            "files_ignored": fullTree.ignored.count,
        ]
        report.skipped = [
            "side_not_showing_label": sidesNotShowingLabel,
            "no_bean": skipped[.noBean] ?? 0,
            "unreadable": skipped[.unreadable] ?? 0,
            "beans_without_usable_crop": beans.count - evaluable.count,
        ]

        let scorer = BeanScorer(policy: policy, scoreK: policy.mode == .vote ? scoreK : policy.k,
                                vectors: embedded.vectors, dimension: cropEncoder.dimension, threads: threads)
        if let folds {
            let foldPlan = try BeanFolds(beans: beans, folds: folds, seed: seed)
            let scratch = FileManager.default.temporaryDirectory
                .appendingPathComponent("beanctl-eval-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))").path
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            report.foldSettings = ["k": folds, "labels_per_fold": labelsPerFold.map { $0 as Any } ?? NSNull(),
                                   "good_share": labelsPerFold == nil ? NSNull() : share.jsonValue,
                                   "seed": seed,
                                   "store": oneClass ? "good beans only" : "labelled beans of all labels"]
            for fold in 0..<folds {
                let candidates = foldPlan.training(fold: fold).filter { index in
                    !rowsOfBean[index].isEmpty && (!oneClass || goodLabels.contains(beans[index].label))
                }
                let chosen = labelsPerFold.map {
                    BeanFolds.labelledSubset(of: candidates, beans: beans, count: $0, seed: seed &+ UInt64(fold),
                                             goodShare: share.value, goodLabels: goodLabels)
                } ?? candidates
                var draft = GenerationDraft(dimension: cropEncoder.dimension, metric: .cosine,
                                            fingerprint: Array(cropEncoder.fingerprint.utf8))
                var values: [Float] = []
                var labels: [String] = []
                for index in chosen {
                    for row in rowsOfBean[index] {
                        values += embedded.vectors[(row * cropEncoder.dimension)..<((row + 1) * cropEncoder.dimension)]
                        labels.append(beans[index].label.name)
                    }
                }
                try draft.append(vectors: values, labels: labels, author: "beanctl-eval",
                                 sourceIDs: labels.indices.map { UInt64($0) }, addedNs: 0)
                let directory = scratch + "/fold-\(fold)"
                try StoreWriter(directory: directory, keep: 1).publish(draft)
                let generation = try StoreDirectory.openCurrent(directory: directory)
                let test = foldPlan.test(fold: fold).filter { !rowsOfBean[$0].isEmpty }
                let outcomes = try scorer.score(beans: test, rowsOfBean: rowsOfBean, labelled: beans,
                                                store: generation, fold: fold)
                report.addFold(fold, storeBeans: chosen.count,
                               storeGoodBeans: chosen.filter { goodLabels.contains(beans[$0].label) }.count,
                               storeVectors: labels.count, outcomes: outcomes)
                if !quiet && !json {
                    FileHandle.standardError.write(Data("fold \(fold + 1)/\(folds): \(chosen.count) beans (\(labels.count) vectors) in the store, \(test.count) beans tested\n".utf8))
                }
            }
        } else {
            guard case .model(let model, _) = cropEncoder else { throw ValidationError("fixed mode needs an ONNX encoder") }
            let storePath = store ?? loaded?.store.path ?? ""
            let identity = EncoderIdentity(dimension: model.outputDim, fingerprint: model.fingerprint)
            let generation = try StoreDirectory.openCurrent(directory: storePath, expecting: identity)
            report.storeInfo = ["path": storePath, "generation": generation.generation, "vectors": generation.count]
            let outcomes = try scorer.score(beans: evaluable, rowsOfBean: rowsOfBean, labelled: beans,
                                            store: generation, fold: nil)
            report.addFold(nil, storeBeans: nil, storeGoodBeans: nil, storeVectors: generation.count, outcomes: outcomes)
        }

        let summary = report.summary()
        if let scores { try report.scoresCSV().write(toFile: scores, atomically: true, encoding: .utf8) }
        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try (report.jsonText(summary, pretty: true) + "\n").write(toFile: out + "/report.json", atomically: true, encoding: .utf8)
            try EvalPlots.write(report: report, summary: summary, directory: out)
        }
        if json {
            print(report.jsonText(summary, pretty: false))
        } else {
            print(report.text(summary))
        }
    }

    private func makeEncoder(config: DaemonConfig?) throws -> CropEncoder {
        if let encoder, encoder == "raw" || encoder.hasPrefix("raw:") {
            let sizeText = encoder.dropFirst(3).drop(while: { $0 == ":" })
            guard let size = sizeText.isEmpty ? 16 : Int(sizeText) else {
                throw ValidationError("--encoder: '\(encoder)' is not raw or raw:SIZE")
            }
            do { return .raw(try RawPixelEncoder(size: size)) } catch let error as RawPixelEncoderError {
                throw ValidationError("--encoder: \(error)")
            }
        }
        let path = encoder ?? model ?? config?.encoder.model ?? ""
        let preprocessing = config.map { Preprocessing(mean: $0.encoder.mean.map { Float($0) }, std: $0.encoder.std.map { Float($0) }) }
            ?? Preprocessing()
        do {
            return .model(try EncoderModel.load(path: path), preprocessing)
        } catch {
            throw SegmentConfigError(description: "encoder \(path): \(error)")
        }
    }

    private func makePolicy(config: DaemonConfig?) throws -> DecisionPolicy {
        // Without a config, the daemon's defaults (and no thresholds file: there is no state
        // directory to read one from).
        let inspect = config?.inspect ?? InspectSection()
        let goodLabels = Set(inspect.goodLabels.map { Label($0) })
        var thresholds = inspect.thresholds
        if let config {
            // The daemon's thresholds: its state directory's thresholds file, else the config's.
            thresholds = (try? ThresholdBook(stateDirectory: config.daemon.stateDirectory, defaults: inspect.thresholds,
                                             goodLabels: goodLabels).thresholds) ?? thresholds
        }
        var policy = try DecisionPolicy(mode: inspect.mode, k: inspect.k, goodLabels: goodLabels,
                                        unknownAction: inspect.unknownAction, thresholds: thresholds)
        if let mode { policy.mode = mode }
        if oneClass { policy.mode = .oneClass }
        // An explicit -k, else the config's k, else the default of the mode eval runs in.
        policy.k = k ?? inspect.configuredK ?? policy.mode.defaultK
        do { try policy.validate() } catch { throw ValidationError("the policy: \(error)") }
        return policy
    }

    private struct PhotoStatus {
        var reason: PhotoSkipReason?
        var message: String?
    }

    private func embedPhotos(paths: [String], encoder: CropEncoder,
                             setup: CropSetup) throws -> (vectors: [Float], status: [PhotoStatus]) {
        let key = EmbeddingCache.Key(encoder: encoder.fingerprint, cropping: "\(setup.segmenter)|\(setup.crop)", paths: paths)
        if let cache, let hit = EmbeddingCache.load(path: cache, key: key, dimension: encoder.dimension) {
            if !quiet && !json { FileHandle.standardError.write(Data("embeddings from cache \(cache)\n".utf8)) }
            return (hit.vectors, hit.status.map { PhotoStatus(reason: PhotoSkipReason(rawValue: $0), message: nil) })
        }
        let cropProgress = ProgressReporter(title: "crop", total: paths.count, enabled: !quiet)
        let results = try ParallelCropper.crop(paths: paths, setup: setup, threads: threads, progress: cropProgress)
        var crops: [BeanCrop] = []
        var rowOfPhoto: [Int?] = []
        var status: [PhotoStatus] = []
        for result in results {
            switch result {
            case .success(let crop):
                rowOfPhoto.append(crops.count)
                crops.append(crop)
                status.append(PhotoStatus(reason: nil, message: nil))
            case .failure(let error):
                rowOfPhoto.append(nil)
                switch error {
                case .noBean: status.append(PhotoStatus(reason: .noBean, message: error.description))
                case .unreadable: status.append(PhotoStatus(reason: .unreadable, message: error.description))
                }
            }
        }
        let embedProgress = ProgressReporter(title: "embed", total: crops.count, enabled: !quiet)
        let compact = try encoder.embed(crops, threads: threads, progress: embedProgress)
        let dim = encoder.dimension
        // One row per photo (zeros for skipped ones) so rows line up with `paths`.
        var vectors = [Float](repeating: 0, count: paths.count * dim)
        for (photo, row) in rowOfPhoto.enumerated() {
            guard let row else { continue }
            for j in 0..<dim { vectors[photo * dim + j] = compact[row * dim + j] }
        }
        if let cache {
            try EmbeddingCache.save(path: cache, key: key, vectors: vectors, dimension: dim,
                                    status: status.map { $0.reason?.rawValue ?? "ok" })
        }
        return (vectors, status)
    }
}

/// Embeddings of a tree's photos on disk, so repeated evaluations (other label counts, modes,
/// seeds) skip decoding, segmentation and the encoder. A `.json` beside the `.npy` records what
/// they were made from; any difference means a miss.
enum EmbeddingCache {
    struct Key: Equatable {
        var encoder: String
        var cropping: String
        var paths: [String]
    }

    static func load(path: String, key: Key, dimension: Int) -> (vectors: [Float], status: [String])? {
        guard let data = FileManager.default.contents(atPath: path + ".json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              object["encoder"] as? String == key.encoder, object["cropping"] as? String == key.cropping,
              object["paths"] as? [String] == key.paths, let status = object["status"] as? [String],
              status.count == key.paths.count,
              let matrix = try? NumpyFile.readFloat32(path),
              matrix.rows == key.paths.count, matrix.columns == dimension
        else { return nil }
        return (matrix.values, status)
    }

    static func save(path: String, key: Key, vectors: [Float], dimension: Int, status: [String]) throws {
        try NumpyFile.write(vectors, rows: key.paths.count, columns: dimension, to: path)
        let object: [String: Any] = ["encoder": key.encoder, "cropping": key.cropping, "paths": key.paths, "status": status]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: path + ".json"))
    }
}

extension DecisionPolicy.Mode: ExpressibleByArgument {}

/// The outcome of one bean: its reject score and verdict over its usable sides, and each side's
/// predicted label.
struct BeanOutcome {
    var key: String
    var label: String
    var isDefect: Bool
    /// Largest reject score over the bean's usable sides.
    var score: Double
    /// Whether the policy ejects any usable side.
    var rejected: Bool
    /// Vote and score mode: the largest of the bean's usable sides' `DecisionPolicy.decisionScore`
    /// (what the daemon compares with its reject share; 0 without one).
    var decisionScore: Double = 0
    var fold: Int?
    /// (true label, predicted label) per usable side.
    var sides: [(truth: String, predicted: String)]
}

/// Searches the store for each side of each bean and applies the policy, as the daemon's scorer.
struct BeanScorer {
    let policy: DecisionPolicy
    /// Neighbours behind the reject score; the policy sees only its k nearest.
    let scoreK: Int
    let vectors: [Float]
    let dimension: Int
    let threads: Int

    func score(beans indices: [Int], rowsOfBean: [[Int]], labelled beans: [LabelledBean],
               store: StoreGeneration, fold: Int?) throws -> [BeanOutcome] {
        let rows = indices.flatMap { rowsOfBean[$0] }
        var queries = [Float]()
        queries.reserveCapacity(rows.count * dimension)
        for row in rows { queries += vectors[(row * dimension)..<((row + 1) * dimension)] }
        let k = min(max(policy.k, scoreK), SearchLimits.maximumK)
        let results = try store.search(queries: queries, k: k, options: SearchOptions(threads: threads))
        let storeLabels = store.labels
        var sideOf: [Int: (score: Double, decision: Decision, decisionScore: Double?)] = [:]
        for (q, row) in rows.enumerated() {
            var neighbors: [Neighbor] = []
            for slot in 0..<k {
                let id = results.ids[q * k + slot]
                guard id >= 0 else { continue }
                let label = storeLabels[Int(store.metadata(at: Int(id)).labelID)]
                neighbors.append(Neighbor(label: Label(label), distance: results.distances[q * k + slot], vectorID: UInt64(id)))
            }
            // The daemon searches exactly k: the policy gets the k nearest, as there.
            let nearest = Array(neighbors.prefix(policy.k))
            sideOf[row] = (rejectScore(neighbors), policy.decide(nearest), policy.decisionScore(nearest))
        }
        return indices.map { index in
            let bean = beans[index]
            let sides = rowsOfBean[index].compactMap { sideOf[$0] }
            return BeanOutcome(
                key: bean.key, label: bean.label.name, isDefect: !policy.goodLabels.contains(bean.label),
                score: sides.map(\.score).max() ?? .infinity, rejected: sides.contains { $0.decision.eject },
                decisionScore: sides.compactMap(\.decisionScore).max() ?? 0, fold: fold,
                sides: sides.map { (bean.label.name, Self.predictedName($0.decision)) })
        }
    }

    /// See `RejectScore`: over the `scoreK` nearest in vote mode, the k nearest in score mode (the
    /// daemon's own score), the k nearest good vectors in one-class mode.
    func rejectScore(_ neighbors: [Neighbor]) -> Double {
        switch policy.mode {
        case .vote, .score:
            return RejectScore.vote(neighbors, k: scoreK, goodLabels: policy.goodLabels, epsilon: policy.distanceEpsilon)
        case .oneClass: return RejectScore.oneClass(neighbors, k: scoreK, goodLabels: policy.goodLabels)
        }
    }

    static func predictedName(_ decision: Decision) -> String {
        if let label = decision.label { return label.name }
        switch decision.verdict {
        case .reject: return "(anomaly)"
        case .unknown: return "(unknown)"
        default: return "(none)"
        }
    }
}
