import BeanCore

/// The thresholds in force, persisted under the state directory so that `beanctl set threshold`
/// survives restarts. Owned by one thread (the control handler); each change yields a new
/// `Thresholds` value for the decision thread.
///
/// File `<state_dir>/thresholds`, UTF-8, one `KEY = VALUE` per line, `#` comments, keys as
/// `ThresholdKey` spells them:
///
///     # written by beand
///     version = 1
///     default = 0.5
///     one-class = 0.8
///     unknown = 1.5
///     label:Black = 0.4
///
/// When the file exists it is the whole truth: `version`, `default` and `one-class` are required,
/// `unknown` is optional (absent or `off`: no unknown verdict), `label:` lines are optional. The
/// configured thresholds are only the starting values until the first change creates the file.
/// Each change rewrites the file atomically (`AtomicFile`) before it takes effect.
public struct ThresholdBook: Sendable {
    public static let fileName = "thresholds"
    public static let formatVersion = 1

    public let path: String
    public let goodLabels: Set<Label>
    public private(set) var thresholds: Thresholds
    /// Whether `thresholds` came from the file (true) or from the configured defaults.
    public private(set) var loadedFromFile: Bool

    /// Loads `<stateDirectory>/thresholds`, or starts from `defaults` when there is none.
    public init(stateDirectory: String, defaults: Thresholds, goodLabels: Set<Label> = [.normal])
        throws(StateFileError) {
        self.path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
        self.goodLabels = goodLabels
        if let text = try AtomicFile.read(path) {
            self.thresholds = try Self.parse(text, path: path, goodLabels: goodLabels)
            self.loadedFromFile = true
        } else {
            if let problem = defaults.problem(goodLabels: goodLabels) {
                throw StateFileError(path: path, reason: "configured default thresholds are invalid: \(problem)")
            }
            self.thresholds = defaults
            self.loadedFromFile = false
        }
    }

    /// Validates, persists, then applies one change. On any error nothing changes.
    /// `value` nil clears a clearable key (see `ThresholdKey.isClearable`).
    @discardableResult
    public mutating func set(_ key: ThresholdKey, to value: Double?) throws(ThresholdChangeError) -> ThresholdChange {
        var updated = thresholds
        switch (key, value) {
        case (.defaultRejectShare, let value?): updated.defaultRejectShare = value
        case (.oneClassDistance, let value?): updated.oneClassDistance = value
        case (.rejectShare(let label), let value):
            if goodLabels.contains(label) {
                throw ThresholdChangeError("label \(label) is a good label; it cannot have a reject threshold")
            }
            updated.rejectShare[label] = value
        case (.unknownDistance, let value): updated.unknownDistance = value
        case (.defaultRejectShare, nil), (.oneClassDistance, nil):
            throw ThresholdChangeError("threshold \(key) cannot be cleared; give a value")
        }
        if let value, let problem = key.problem(with: value) { throw ThresholdChangeError(problem) }
        if let problem = updated.problem(goodLabels: goodLabels) { throw ThresholdChangeError(problem) }
        do {
            try AtomicFile.write(Self.render(updated), to: path)
        } catch {
            throw ThresholdChangeError("not saved: \(error)")
        }
        let change = ThresholdChange(key: key, old: thresholds.value(of: key), new: value)
        thresholds = updated
        loadedFromFile = true
        return change
    }

    /// Parses an operator-typed value: a number, or `off` / `default` to clear.
    public static func parseValue(_ text: String) -> Double?? {
        if text == "off" || text == "default" { return .some(nil) }
        guard let value = Double(text) else { return nil }
        return .some(value)
    }

    public static func render(_ thresholds: Thresholds) -> String {
        var lines = [
            "# beand decision thresholds; written by beand, change with `beanctl set threshold`",
            "version = \(formatVersion)",
            "default = \(thresholds.defaultRejectShare)",
            "one-class = \(thresholds.oneClassDistance)",
            "unknown = \(thresholds.unknownDistance.map { "\($0)" } ?? "off")",
        ]
        for (label, share) in thresholds.rejectShare.sorted(by: { $0.key.name < $1.key.name }) {
            lines.append("label:\(label.name) = \(share)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String, path: String, goodLabels: Set<Label>) throws(StateFileError) -> Thresholds {
        var seen: Set<String> = []
        var version: Int?
        var defaultShare: Double?
        var oneClass: Double?
        var unknown: Double?
        var perLabel: [Label: Double] = [:]
        var lineNumber = 0
        // "\r\n" is one Character in Swift; isNewline splits it as one line break.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let line = rawLine.trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            func fail(_ reason: String) -> StateFileError { StateFileError(path: path, line: lineNumber, reason: reason) }
            guard let equals = line.firstIndex(of: "=") else { throw fail("expected KEY = VALUE, got '\(line)'") }
            let keyText = String(line[..<equals]).trimmingASCIIWhitespace()
            let valueText = String(line[line.index(after: equals)...]).trimmingASCIIWhitespace()
            guard seen.insert(keyText).inserted else { throw fail("duplicate key '\(keyText)'") }
            if keyText == "version" {
                guard let number = Int(valueText) else { throw fail("version must be an integer, got '\(valueText)'") }
                guard number == formatVersion else {
                    throw fail("unsupported version \(number) (this beand reads version \(formatVersion))")
                }
                version = number
                continue
            }
            guard version != nil else { throw fail("the first setting must be 'version = \(formatVersion)'") }
            guard let key = ThresholdKey(keyText) else { throw fail("unknown key '\(keyText)'") }
            let value: Double?
            if valueText == "off", key == .unknownDistance {
                value = nil
            } else if let number = Double(valueText) {
                if let problem = key.problem(with: number) { throw fail(problem) }
                value = number
            } else {
                throw fail("value of '\(keyText)' is not a number: '\(valueText)'")
            }
            switch key {
            case .defaultRejectShare: defaultShare = value
            case .oneClassDistance: oneClass = value
            case .unknownDistance: unknown = value
            case .rejectShare(let label):
                if goodLabels.contains(label) { throw fail("label \(label) is a good label; it cannot have a reject threshold") }
                perLabel[label] = value
            }
        }
        guard version != nil else { throw StateFileError(path: path, reason: "missing 'version = \(formatVersion)' (empty or truncated file?)") }
        guard let defaultShare else { throw StateFileError(path: path, reason: "missing required key 'default'") }
        guard let oneClass else { throw StateFileError(path: path, reason: "missing required key 'one-class'") }
        return Thresholds(defaultRejectShare: defaultShare, rejectShare: perLabel, oneClassDistance: oneClass,
                          unknownDistance: unknown)
    }
}

/// One applied threshold change, for the log line the daemon writes.
public struct ThresholdChange: Sendable, Hashable, CustomStringConvertible {
    public var key: ThresholdKey
    public var old: Double?
    public var new: Double?

    public var description: String {
        func text(_ value: Double?) -> String {
            if let value { return "\(value)" }
            if case .rejectShare = key { return "default" }
            return "off"
        }
        return "threshold \(key) changed from \(text(old)) to \(text(new))"
    }
}

public struct ThresholdChangeError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" || first == "\r" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" { slice = slice.dropLast() }
        return String(slice)
    }
}
