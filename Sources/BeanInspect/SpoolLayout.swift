#if canImport(Glibc)
import Glibc
#endif
import BeanCore

/// Where a crop goes in the spool: `<verdict>/<label>/<UTC time>_<camera>_<bean id>_<score>.jpg`,
/// relative to the spool directory (beand(8), FILES).
///
/// One folder per label under each verdict, so a quality engineer can move a file to the folder of
/// the label it really has and hand a verdict folder (or a copy of it) to `beanctl enroll --tree`,
/// which takes one folder per label. The UTC time comes first so that a directory listing is in
/// decision order; camera and bean id match the reject stream's `camera` and `bean_id`.
public struct SpoolName: Sendable, Hashable, CustomStringConvertible {
    public var verdict: String
    public var label: String
    public var fileName: String

    /// Folder name for beans without a label (fail-safe verdicts).
    public static let unlabelled = "unlabelled"

    public init(verdict: Verdict, label: Label?, camera: String, beanID: UInt64, score: Double?,
                unixMicroseconds: UInt64) {
        self.verdict = verdict.rawValue
        self.label = Self.folderName(label?.name)
        fileName = Self.utcStamp(unixMicroseconds: unixMicroseconds) + "_" + Self.folderName(camera) + "_\(beanID)_"
            + Self.scoreText(score) + ".jpg"
    }

    /// `reject/Black/20261122T191554.123456Z_cam0_17_0.833.jpg`
    public var relativePath: String { verdict + "/" + label + "/" + fileName }
    public var relativeDirectory: String { verdict + "/" + label }
    public var description: String { relativePath }

    /// A label as a single, harmless path component: `/`, control bytes and NUL become `_`, a
    /// leading dot becomes `_` (no hidden folders, no `..`), nothing or nil is `unlabelled`.
    public static func folderName(_ name: String?) -> String {
        guard let name, !name.isEmpty else { return unlabelled }
        var scalars = String.UnicodeScalarView()
        for scalar in name.unicodeScalars {
            if scalar == "/" || scalar.value < 0x20 || scalar.value == 0x7F { scalars.append("_") } else { scalars.append(scalar) }
        }
        var text = String(scalars)
        if text.hasPrefix(".") { text = "_" + text.dropFirst() }
        // NAME_MAX is 255 bytes; labels are short, but a folder name must never fail to be created.
        while text.utf8.count > 128 { text.removeLast() }
        return text.isEmpty ? unlabelled : text
    }

    /// `20261122T191554.123456Z` (UTC, microseconds): sorts as text in time order.
    public static func utcStamp(unixMicroseconds: UInt64) -> String {
        var seconds = time_t(unixMicroseconds / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let micros = String(unixMicroseconds % 1_000_000)
        return pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "."
            + String(repeating: "0", count: 6 - micros.count) + micros + "Z"
    }

    /// Three decimals (`0.833`, `12.500`); `na` for no score (fail-safe) or a non-finite one.
    public static func scoreText(_ score: Double?) -> String {
        guard let score, score.isFinite, abs(score) < 1e12 else { return "na" }
        let thousandths = Int64((abs(score) * 1000).rounded())
        let fraction = String(thousandths % 1000)
        return (score < 0 && thousandths > 0 ? "-" : "") + String(thousandths / 1000) + "."
            + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Temporary files are hidden (`.NAME.jpg.tmp`) beside their final name; the spool's scan
    /// removes leftovers of a crash.
    public static func isTemporary(_ fileName: String) -> Bool {
        fileName.hasPrefix(".") && fileName.hasSuffix(".tmp")
    }
}

/// Which decided beans the spool keeps: every ejected bean and every `unknown` one (the beans a
/// reviewer most needs to see), and a fraction of the rest (accepted, and unscored beans that were
/// passed), spread evenly: with fraction f, after n such beans exactly ⌊n·f⌋ were kept.
///
/// Deterministic rather than random so the rate is exact over any window and a test can check it;
/// the beans on a belt arrive in no order that correlates with their 1-in-N position.
public struct SpoolSampler: Sendable, Equatable {
    public private(set) var acceptedFraction: Double
    private var seen: UInt64 = 0
    private var kept: UInt64 = 0

    /// `acceptedFraction` in [0, 1]; values outside are clamped.
    public init(acceptedFraction: Double) {
        self.acceptedFraction = min(max(acceptedFraction.isFinite ? acceptedFraction : 0, 0), 1)
    }

    /// Whether to keep the crop of a bean with this outcome.
    public mutating func shouldKeep(verdict: Verdict, ejected: Bool) -> Bool {
        if ejected || verdict == .unknown { return true }
        seen += 1
        let due = UInt64((Double(seen) * acceptedFraction).rounded(.down))
        guard due > kept else { return false }
        kept += 1
        return true
    }
}

/// The spool's running size: every file it holds, oldest first, and their total. The writer asks it
/// which files to delete before adding one, so the total never exceeds the cap once the new file is
/// in (and a file larger than the cap is refused by the writer, not written).
public struct SpoolLedger: Sendable {
    public struct Entry: Sendable, Hashable {
        /// Relative to the spool directory.
        public var path: String
        public var bytes: Int64
        /// Modification time in nanoseconds since the epoch; orders the scan's files.
        public var modified: Int64
        public init(path: String, bytes: Int64, modified: Int64) {
            self.path = path
            self.bytes = bytes
            self.modified = modified
        }
    }

    public private(set) var totalBytes: Int64 = 0
    // A queue with a moving head: eviction pops from the front without shifting the array.
    private var entries: [Entry] = []
    private var head = 0
    private var indexByPath: [String: Int] = [:]

    public init() {}

    /// A ledger of files found on disk (any order); the oldest (by modification time, then name)
    /// are evicted first.
    public init(scanned: [Entry]) {
        for entry in scanned.sorted(by: { ($0.modified, $0.path) < ($1.modified, $1.path) }) { add(entry) }
    }

    public var fileCount: Int { indexByPath.count }

    /// Records a new file (newest). A path already recorded is replaced (its old size forgotten).
    public mutating func add(_ entry: Entry) {
        if let old = indexByPath[entry.path] { forget(at: old) }
        indexByPath[entry.path] = entries.count
        entries.append(entry)
        totalBytes += entry.bytes
    }

    /// Forgets a file (one that could not be written after all).
    public mutating func remove(path: String) {
        if let index = indexByPath[path] { forget(at: index) }
    }

    /// Removes and returns the oldest files until `incoming` more bytes fit under `cap`. Empty when
    /// they already fit. The caller deletes the files.
    public mutating func evictions(toFit incoming: Int64, under cap: Int64) -> [Entry] {
        var evicted: [Entry] = []
        while totalBytes + incoming > cap, let oldest = popOldest() { evicted.append(oldest) }
        return evicted
    }

    private mutating func popOldest() -> Entry? {
        while head < entries.count {
            let entry = entries[head]
            head += 1
            guard indexByPath[entry.path] == head - 1 else { continue }  // replaced later
            indexByPath[entry.path] = nil
            totalBytes -= entry.bytes
            compactIfSparse()
            return entry
        }
        return nil
    }

    private mutating func forget(at index: Int) {
        let entry = entries[index]
        indexByPath[entry.path] = nil
        totalBytes -= entry.bytes
        // The slot stays until the head passes it; `popOldest` skips it.
        entries[index].path = ""
    }

    private mutating func compactIfSparse() {
        guard head > 1024 && head * 2 > entries.count else { return }
        entries.removeFirst(head)
        head = 0
        indexByPath.removeAll(keepingCapacity: true)
        for (index, entry) in entries.enumerated() where !entry.path.isEmpty { indexByPath[entry.path] = index }
    }
}
