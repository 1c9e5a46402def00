import ArgumentParser
import BeanCore
import BeanInspect
import BeanNet
import BeanService
import BeanStore
import Foundation

/// `beanctl enroll`: teaches beand labelled beans. Photos are cropped as the daemon crops, embedded
/// with the current encoder and added to the store as one new generation (the running daemon
/// picks it up through inotify).
struct Enroll: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add labelled bean photos to the store as one new generation.",
        discussion: """
            Either --label LABEL with photo files, or --tree DIR (one folder per label, read with \
            --layout). Each photo is segmented and cropped as the daemon does, embedded with the \
            encoder of --config (or --model), and added with its label, the content hash of the file \
            as source id, the time and the author. Photos already in the current generation (same \
            content hash) are skipped, as are photos without a bean, unreadable files and, in a tree \
            with <Class>.txt side marks, sides that do not show the label. All additions are published \
            atomically as one generation; nothing is published when nothing is added.
            """
    )

    @Option(help: ArgumentHelp("Label of the photos given as arguments.", valueName: "LABEL"))
    var label: String?

    @Argument(help: "Photo files (JPEG or PNG) with --label.")
    var photos: [String] = []

    @Option(help: ArgumentHelp("Labelled folder tree instead of --label and files.", valueName: "DIR"))
    var tree: String?

    @Option(help: ArgumentHelp("Path template of --tree (default: {batch}/{label}/{side}/{id}; one folder per label: {label}/{id}).", valueName: "TEMPLATE"))
    var layout: String?

    @Option(help: ArgumentHelp("beand configuration: encoder, store, camera segmentation (default \(Eval.defaultConfigPath) unless --model and --store are given).", valueName: "PATH"))
    var config: String?

    @Option(help: ArgumentHelp("ONNX encoder (instead of the config's).", valueName: "M.onnx"))
    var model: String?

    @Option(help: ArgumentHelp("Store directory (instead of the config's).", valueName: "DIR"))
    var store: String?

    @Option(help: ArgumentHelp("With --config: the camera whose segmentation settings to use (default: the first).", valueName: "name"))
    var camera: String?

    @Option(help: "Segmentation settings: default, tray, mindforge (instead of a config camera's).")
    var preset: Segment.Preset?

    @Option(help: "Who enrols the photos (stored per vector; default: the user name).")
    var author: String = Enroll.defaultAuthor

    @Option(help: "Generation files to keep.")
    var keep: Int = 3

    @Option(help: "Threads for decoding, segmentation and the encoder.")
    var threads: Int = 2

    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    static var defaultAuthor: String {
        if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "unknown"
    }

    func validate() throws {
        if (tree == nil) == (label == nil) { throw ValidationError("give either --label LABEL with photo files, or --tree DIR") }
        if label != nil && photos.isEmpty { throw ValidationError("--label needs at least one photo file") }
        if tree != nil && !photos.isEmpty { throw ValidationError("--tree takes no photo arguments (got \(photos.count))") }
        if layout != nil && tree == nil { throw ValidationError("--layout needs --tree") }
        if let label, !ThresholdKey.isValidLabelName(label) {
            throw ValidationError("--label: '\(label)' is not a label name (1 to 64 printable bytes, no spaces)")
        }
        if config == nil && ((model == nil) != (store == nil)) {
            throw ValidationError("without --config give both --model and --store")
        }
        if preset != nil && camera != nil { throw ValidationError("--preset and --camera both choose segmentation settings; give one") }
        if keep < 1 { throw ValidationError("--keep must be at least 1, got \(keep)") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if author.isEmpty { throw ValidationError("--author must not be empty") }
    }

    /// Why an item was not added, as the summary names it.
    enum Skip: String, CaseIterable {
        case alreadyEnrolled = "already_enrolled"
        case noBean = "no_bean"
        case unreadable
        case sideNotShowingLabel = "side_not_showing_label"
    }

    struct Item {
        var path: String
        var label: String
        var hash: UInt64?
        var skip: Skip?
        var reason: String?
    }

    func run() throws {
        do {
            try enroll()
        } catch let error as ValidationError {
            throw error
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("beanctl enroll: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func enroll() throws {
        let configPath = (model != nil && store != nil && config == nil) ? nil : (config ?? Eval.defaultConfigPath)
        let loaded = try configPath.map { try ConfigLoader.load(path: $0) }
        let modelPath = model ?? loaded?.encoder.model ?? ""
        let storePath = store ?? loaded?.store.path ?? ""
        let encoderModel: EncoderModel
        do {
            encoderModel = try EncoderModel.load(path: modelPath)
        } catch {
            throw SegmentConfigError(description: "encoder \(modelPath): \(error)")
        }
        let preprocessing = loaded.map { Preprocessing(mean: $0.encoder.mean.map { Float($0) }, std: $0.encoder.std.map { Float($0) }) }
            ?? Preprocessing()
        let encoder = CropEncoder.model(encoderModel, preprocessing)
        let setup = try CropSetup.make(config: loaded, configPath: configPath, camera: camera, preset: preset,
                                       encoderSize: encoderModel.inputSize?.width)
        let identity = EncoderIdentity(dimension: encoderModel.outputDim, fingerprint: encoderModel.fingerprint)

        // A store made by another encoder is refused before any work, with BeanStore's words.
        var enrolled = Set<UInt64>()
        do {
            let current = try StoreDirectory.openCurrent(directory: storePath, expecting: identity)
            for row in 0..<current.count { enrolled.insert(current.metadata(at: row).sourceID) }
        } catch let error as StoreError where error.reason == .noCurrentGeneration {
            // A new store: the first generation takes this encoder's dimension and fingerprint.
        }

        var items = try collectItems()
        // Content hashes: the same image is one source however often and wherever it appears.
        var seen = Set<UInt64>()
        for i in items.indices where items[i].skip == nil {
            do {
                let hash = try contentHash(path: items[i].path)
                items[i].hash = hash
                if enrolled.contains(hash) || seen.contains(hash) {
                    items[i].skip = .alreadyEnrolled
                } else {
                    seen.insert(hash)
                }
            } catch {
                items[i].skip = .unreadable
                items[i].reason = "\(items[i].path): \((error as NSError).localizedDescription)"
            }
        }

        let pending = items.indices.filter { items[$0].skip == nil }
        let cropProgress = ProgressReporter(title: "crop", total: pending.count, enabled: !quiet && !json)
        let results = try ParallelCropper.crop(paths: pending.map { items[$0].path }, setup: setup, threads: threads,
                                               progress: cropProgress)
        var crops: [BeanCrop] = []
        var cropped: [Int] = []
        for (index, result) in zip(pending, results) {
            switch result {
            case .success(let crop):
                crops.append(crop)
                cropped.append(index)
            case .failure(let error):
                if case .noBean = error { items[index].skip = .noBean } else { items[index].skip = .unreadable }
                items[index].reason = error.description
            }
        }
        let embedProgress = ProgressReporter(title: "embed", total: crops.count, enabled: !quiet && !json)
        let vectors = try encoder.embed(crops, threads: threads, progress: embedProgress)

        var published: StoreWriter.Published?
        if !cropped.isEmpty {
            let labels = cropped.map { items[$0].label }
            let sources = cropped.map { items[$0].hash ?? 0 }
            let author = self.author
            published = try StoreWriter(directory: storePath, keep: keep).update(
                creatingWith: GenerationDraft(dimension: identity.dimension, metric: .cosine, fingerprint: identity.fingerprint)
            ) { draft in
                guard draft.dimension == identity.dimension, draft.fingerprint == identity.fingerprint else {
                    throw StoreError.Reason.invalidInput("the store changed to another encoder while enrolling")
                }
                // Another enroll may have published the same images meanwhile.
                let present = Set(draft.metadata.map(\.sourceID))
                let keepRows = sources.indices.filter { !present.contains(sources[$0]) }
                var values: [Float] = []
                values.reserveCapacity(keepRows.count * draft.dimension)
                for row in keepRows { values += vectors[(row * draft.dimension)..<((row + 1) * draft.dimension)] }
                try draft.append(vectors: values, labels: keepRows.map { labels[$0] }, author: author,
                                 sourceIDs: keepRows.map { sources[$0] }, addedNs: Int64(Date().timeIntervalSince1970 * 1e9))
                for row in sources.indices where present.contains(sources[row]) { items[cropped[row]].skip = .alreadyEnrolled }
            }
        }
        report(items: items, published: published, storePath: storePath)
    }

    private func collectItems() throws -> [Item] {
        if let label {
            return photos.map { Item(path: $0, label: label) }
        }
        let layoutValue = try layout.map { try TreeLayout(template: $0) } ?? .mindforge
        let labelled = try LabelledTree(root: tree ?? "", layout: layoutValue)
        var items: [Item] = []
        for bean in labelled.beans {
            guard ThresholdKey.isValidLabelName(bean.label.name) else {
                throw ValidationError("\(tree ?? ""): folder '\(bean.label.name)' is not a label name (1 to 64 printable bytes, no spaces)")
            }
            for photo in bean.photos {
                var item = Item(path: photo.path, label: bean.label.name)
                if !photo.showsLabel {
                    item.skip = .sideNotShowingLabel
                    item.reason = "\(photo.path): marked as not showing \(bean.label.name)"
                }
                items.append(item)
            }
        }
        if items.isEmpty {
            throw ValidationError("\(tree ?? ""): no photos fit the layout \(layoutValue) (\(labelled.ignored.count) files ignored)")
        }
        return items
    }

    private func report(items: [Item], published: StoreWriter.Published?, storePath: String) {
        let labels = Array(Set(items.map(\.label))).sorted()
        var perLabel: [String: [String: Int]] = [:]
        for label in labels {
            var counts = ["added": 0]
            for skip in Skip.allCases { counts[skip.rawValue] = 0 }
            perLabel[label] = counts
        }
        for item in items {
            perLabel[item.label]?[item.skip?.rawValue ?? "added", default: 0] += 1
        }
        let added = items.filter { $0.skip == nil }.count
        if json {
            var object: [String: Any] = ["store": storePath, "added": added, "labels": perLabel,
                                         "skipped": items.compactMap { item -> [String: String]? in
                                             guard let skip = item.skip, skip != .alreadyEnrolled else { return nil }
                                             return ["path": item.path, "reason": skip.rawValue, "detail": item.reason ?? ""]
                                         }]
            if let published { object["generation"] = published.generation; object["vectors"] = published.count }
            if let line = try? jsonLine(object) { print(line) }
            return
        }
        for item in items {
            guard let skip = item.skip, skip != .alreadyEnrolled else { continue }
            FileHandle.standardError.write(Data("skipped (\(skip.rawValue.replacingOccurrences(of: "_", with: " "))): \(item.reason ?? item.path)\n".utf8))
        }
        let header = "Label".padding(toLength: 20, withPad: " ", startingAt: 0)
            + "added".leftPadded(7) + Skip.allCases.map { $0.rawValue.replacingOccurrences(of: "_", with: " ").leftPadded(24) }.joined()
        print(header)
        for label in labels {
            let counts = perLabel[label] ?? [:]
            print(label.padding(toLength: 20, withPad: " ", startingAt: 0) + String(counts["added"] ?? 0).leftPadded(7)
                  + Skip.allCases.map { String(counts[$0.rawValue] ?? 0).leftPadded(24) }.joined())
        }
        if let published {
            print("published generation \(published.generation) (\(published.count) vectors, +\(added))")
        } else {
            print("nothing added; no generation published")
        }
    }
}
