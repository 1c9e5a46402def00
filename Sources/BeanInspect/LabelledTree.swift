import BeanCore
import Foundation

/// How the path of a photo inside a labelled tree names its label, its bean and its side.
///
/// A layout is a path template relative to the tree's root, one element per directory level and
/// one for the file name (without extension): `{label}` is the class, `{side}` (optional) the
/// side of the bean the photo shows, and every other `{name}` is part of the bean's identity. So
/// photos that differ only in `{side}` are the same bean, which keeps both sides of a bean on the
/// same side of a fold. The default is the Mindforge layout `{batch}/{label}/{side}/{id}`; a plain
/// "one folder per label, one bean per photo" tree is `{label}/{id}`.
public struct TreeLayout: Sendable, Hashable, CustomStringConvertible {
    public enum Element: Sendable, Hashable {
        case label
        case side
        case key(String)
    }

    public let elements: [Element]
    public let template: String
    public var description: String { template }

    public static let mindforge = TreeLayout(elements: [.key("batch"), .label, .side, .key("id")],
                                             template: "{batch}/{label}/{side}/{id}")
    public static let perLabel = TreeLayout(elements: [.label, .key("id")], template: "{label}/{id}")

    private init(elements: [Element], template: String) {
        self.elements = elements
        self.template = template
    }

    public init(template: String) throws {
        let parts = template.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var elements: [Element] = []
        for part in parts {
            guard part.count > 2, part.hasPrefix("{"), part.hasSuffix("}") else {
                throw TreeLayoutError.malformed(template, "'\(part)' is not a {name} placeholder")
            }
            let name = String(part.dropFirst().dropLast())
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw TreeLayoutError.malformed(template, "'\(name)' is not a plain name")
            }
            switch name {
            case "label": elements.append(.label)
            case "side": elements.append(.side)
            default: elements.append(.key(name))
            }
        }
        guard elements.filter({ $0 == .label }).count == 1 else {
            throw TreeLayoutError.malformed(template, "needs exactly one {label}")
        }
        guard elements.filter({ $0 == .side }).count <= 1 else {
            throw TreeLayoutError.malformed(template, "has more than one {side}")
        }
        guard case .key = elements.last else {
            throw TreeLayoutError.malformed(template, "must end in a bean-identity placeholder such as {id}")
        }
        self.elements = elements
        self.template = template
    }
}

public enum TreeLayoutError: Error, CustomStringConvertible, Equatable {
    case malformed(String, String)
    public var description: String {
        switch self {
        case .malformed(let template, let reason): return "layout '\(template)': \(reason)"
        }
    }
}

/// One photo of a labelled bean.
public struct LabelledPhoto: Sendable, Hashable {
    /// Absolute (or as given) path of the image file.
    public var path: String
    /// Path relative to the tree's root, as the layout read it.
    public var relativePath: String
    public var side: String?
    /// Whether this side shows the bean's class. A defect's side that the dataset's `<Class>.txt`
    /// marks 0 looks sound; the sorter metrics leave it out. Photos of `Normal` beans and photos
    /// without such a file are usable.
    public var showsLabel: Bool
}

/// All photos of one bean.
public struct LabelledBean: Sendable, Hashable {
    /// Identity within the tree: the layout's identity placeholders and the label, joined by `/`.
    public var key: String
    public var label: Label
    public var photos: [LabelledPhoto]
    /// Photos that show the bean's class (see `LabelledPhoto.showsLabel`).
    public var usablePhotos: [LabelledPhoto] { photos.filter(\.showsLabel) }
}

/// A labelled folder tree read with a `TreeLayout`: beans sorted by key, photos by path.
public struct LabelledTree: Sendable {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    public let root: String
    public let layout: TreeLayout
    public let beans: [LabelledBean]
    /// Files under the root that do not fit the layout (wrong depth, not an image), relative paths.
    public let ignored: [String]

    public var labels: [Label] { Array(Set(beans.map(\.label))).sorted { $0.name < $1.name } }
    public var photoCount: Int { beans.reduce(0) { $0 + $1.photos.count } }

    /// The relative paths under `directory`, recursively. Foundation's enumerator does not descend
    /// into a directory given as a symbolic link (a tree linked into place), so the link is
    /// resolved first; the paths stay relative, to be joined to the caller's spelling.
    public static func enumerator(of directory: String) -> FileManager.DirectoryEnumerator? {
        FileManager.default.enumerator(atPath: URL(fileURLWithPath: directory).resolvingSymlinksInPath().path)
    }

    public init(root: String, layout: TreeLayout = .mindforge) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LabelledTreeError.notADirectory(root)
        }
        guard let enumerator = Self.enumerator(of: root) else {
            throw LabelledTreeError.unreadable(root)
        }
        var relativePaths: [String] = []
        while let next = enumerator.nextObject() as? String {
            var fileIsDirectory: ObjCBool = false
            let full = (root as NSString).appendingPathComponent(next)
            if FileManager.default.fileExists(atPath: full, isDirectory: &fileIsDirectory), !fileIsDirectory.boolValue {
                relativePaths.append(next)
            }
        }
        relativePaths.sort()

        var sideMarks = SideMarkCache(root: root)
        var byKey: [String: LabelledBean] = [:]
        var ignored: [String] = []
        for relative in relativePaths {
            let components = relative.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            let fileName = components.last ?? ""
            let ext = (fileName as NSString).pathExtension.lowercased()
            guard components.count == layout.elements.count, Self.imageExtensions.contains(ext) else {
                // Per-class side files (`<Class>.txt`) are read on demand, not photos.
                if ext != "txt" { ignored.append(relative) }
                continue
            }
            var values = components
            values[values.count - 1] = (fileName as NSString).deletingPathExtension
            var label = ""
            var side: String?
            var identity: [String] = []
            for (element, value) in zip(layout.elements, values) {
                switch element {
                case .label: label = value; identity.append(value)
                case .side: side = value
                case .key: identity.append(value)
                }
            }
            let labelIndex = layout.elements.firstIndex(of: .label) ?? 0
            let labelDirectory = components[0...labelIndex].joined(separator: "/")
            let stem = values[values.count - 1]
            let showsLabel = label == Label.normal.name
                || sideMarks.marks(labelDirectory: labelDirectory)?[stem]?[side ?? ""] ?? true
            let key = identity.joined(separator: "/")
            let photo = LabelledPhoto(path: (root as NSString).appendingPathComponent(relative), relativePath: relative,
                                      side: side, showsLabel: showsLabel)
            byKey[key, default: LabelledBean(key: key, label: Label(label), photos: [])].photos.append(photo)
        }
        self.root = root
        self.layout = layout
        self.beans = byKey.values.sorted { $0.key < $1.key }
        self.ignored = ignored
    }
}

public enum LabelledTreeError: Error, CustomStringConvertible, Equatable {
    case notADirectory(String)
    case unreadable(String)
    public var description: String {
        switch self {
        case .notADirectory(let path): return "\(path): not a directory"
        case .unreadable(let path): return "\(path): cannot list the directory"
        }
    }
}

/// Reads the Mindforge `<Class>.txt` files beside each class directory: lines such as
/// `012.png: U-1, D-0,` say which sides of bean 012 show the class. The file's extension in a
/// line is ignored (the set lists `.png` names for `.jpg` photos).
struct SideMarkCache {
    let root: String
    private var cache: [String: [String: [String: Bool]]?] = [:]

    init(root: String) { self.root = root }

    mutating func marks(labelDirectory: String) -> [String: [String: Bool]]? {
        if let cached = cache[labelDirectory] { return cached }
        let path = (root as NSString).appendingPathComponent(labelDirectory + ".txt")
        let parsed = (try? String(contentsOfFile: path, encoding: .utf8)).map(Self.parse)
        cache[labelDirectory] = parsed
        return parsed
    }

    static func parse(_ text: String) -> [String: [String: Bool]] {
        var result: [String: [String: Bool]] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let halves = line.split(separator: ":", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let stem = (String(halves[0]).trimmingCharacters(in: .whitespaces) as NSString).deletingPathExtension
            var sides: [String: Bool] = [:]
            for mark in halves[1].split(separator: ",") {
                let parts = mark.trimmingCharacters(in: .whitespaces).split(separator: "-")
                guard parts.count == 2, let flag = Int(parts[1]) else { continue }
                sides[String(parts[0])] = flag != 0
            }
            result[stem] = sides
        }
        return result
    }
}

/// Bean-disjoint folds, stratified by label, and labelled subsets drawn from training folds.
/// Deterministic for a seed, so `beanctl eval` and `beanctl train head` agree on which beans a
/// fold holds out.
public struct BeanFolds: Sendable {
    public let count: Int
    public let seed: UInt64
    /// Fold of each bean, index-aligned with the beans passed in.
    public let foldOfBean: [Int]

    public init(beans: [LabelledBean], folds: Int, seed: UInt64 = 0) throws {
        guard folds >= 2 else { throw BeanFoldsError.tooFewFolds(folds) }
        guard beans.count >= folds else { throw BeanFoldsError.tooFewBeans(beans: beans.count, folds: folds) }
        var generator = SplitMix64(seed: seed)
        var assignment = [Int](repeating: 0, count: beans.count)
        // Deal each label's beans round-robin after a seeded shuffle; the starting fold moves on
        // per label so small classes do not all land in fold 0.
        var next = 0
        let byLabel = Dictionary(grouping: beans.indices, by: { beans[$0].label.name })
        for label in byLabel.keys.sorted() {
            var indices = byLabel[label] ?? []
            indices.shuffle(using: &generator)
            for index in indices {
                assignment[index] = next % folds
                next += 1
            }
        }
        self.count = folds
        self.seed = seed
        self.foldOfBean = assignment
    }

    public func training(fold: Int) -> [Int] { foldOfBean.indices.filter { foldOfBean[$0] != fold } }
    public func test(fold: Int) -> [Int] { foldOfBean.indices.filter { foldOfBean[$0] == fold } }

    /// Up to `count` bean indices from `candidates`, seeded.
    ///
    /// Without `goodShare`: stratified by label, each label in proportion to its share of
    /// `candidates`, at least one bean of every label while the budget allows.
    ///
    /// With `goodShare` (0…1): that share of `count` (rounded) comes from beans whose label is in
    /// `goodLabels`, the rest from the other beans, each part stratified as above. When one part
    /// has too few beans, the other fills the budget. Why: a kNN store of a few hundred beans drawn
    /// in proportion holds only a few dozen good beans when most beans on the table are defective,
    /// and the reject score then has too few good neighbours to measure against (on the Mindforge
    /// photos, 100 good of 200 labelled beans gave AUC 0.894 against 0.868 for the proportional 40,
    /// numpy, three choices of beans; MODEL_CARD.md).
    public static func labelledSubset(of candidates: [Int], beans: [LabelledBean], count: Int, seed: UInt64,
                                      goodShare: Double?, goodLabels: Set<Label> = [.normal]) -> [Int] {
        guard let goodShare else { return labelledSubset(of: candidates, beans: beans, count: count, seed: seed) }
        guard count < candidates.count else { return candidates.sorted() }
        let good = candidates.filter { goodLabels.contains(beans[$0].label) }
        let other = candidates.filter { !goodLabels.contains(beans[$0].label) }
        let share = min(max(goodShare, 0), 1)
        var goodCount = min(Int((Double(count) * share).rounded()), good.count)
        let otherCount = min(count - goodCount, other.count)
        goodCount = min(count - otherCount, good.count)
        // Distinct seeds per part, so the good part is not the same draw as the other part's.
        let chosen = labelledSubset(of: good, beans: beans, count: goodCount, seed: seed)
            + labelledSubset(of: other, beans: beans, count: otherCount, seed: seed ^ 0x6A09_E667_F3BC_C908)
        return chosen.sorted()
    }

    /// `labelledSubset(of:beans:count:seed:goodShare:goodLabels:)` without a good share.
    public static func labelledSubset(of candidates: [Int], beans: [LabelledBean], count: Int, seed: UInt64) -> [Int] {
        guard count < candidates.count else { return candidates.sorted() }
        var generator = SplitMix64(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
        let byLabel = Dictionary(grouping: candidates, by: { beans[$0].label.name })
        let labels = byLabel.keys.sorted()
        var pools = labels.map { label -> [Int] in
            var pool = byLabel[label] ?? []
            pool.shuffle(using: &generator)
            return pool
        }
        var quota = [Int](repeating: 0, count: labels.count)
        // One of each label first (rarest first when the budget is below the label count).
        for i in labels.indices.sorted(by: { pools[$0].count < pools[$1].count }) where quota.reduce(0, +) < count {
            quota[i] = 1
        }
        // Then largest remainders of the proportional share.
        let total = Double(candidates.count)
        var remaining = count - quota.reduce(0, +)
        let shares = pools.indices.map { Double(count) * Double(pools[$0].count) / total }
        for i in pools.indices {
            let extra = min(max(0, Int(shares[i]) - quota[i]), pools[i].count - quota[i], remaining)
            quota[i] += extra
            remaining -= extra
        }
        let order = pools.indices.sorted { shares[$0] - Double(Int(shares[$0])) > shares[$1] - Double(Int(shares[$1])) }
        while remaining > 0 {
            var progressed = false
            for i in order where remaining > 0 && quota[i] < pools[i].count {
                quota[i] += 1
                remaining -= 1
                progressed = true
            }
            if !progressed { break }
        }
        var chosen: [Int] = []
        for i in pools.indices { chosen += pools[i].prefix(quota[i]) }
        pools.removeAll()
        return chosen.sorted()
    }
}

public enum BeanFoldsError: Error, CustomStringConvertible, Equatable {
    case tooFewFolds(Int)
    case tooFewBeans(beans: Int, folds: Int)
    public var description: String {
        switch self {
        case .tooFewFolds(let k): return "--folds must be at least 2, got \(k)"
        case .tooFewBeans(let beans, let folds): return "\(beans) beans cannot fill \(folds) folds"
        }
    }
}

/// SplitMix64: a small, fast, seedable generator, so folds and subsets are the same on every run
/// and every machine (the standard library's generator is not seedable).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
