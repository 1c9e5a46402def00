import TOMLKit

/// Collects problems while a config document is decoded; shared by all readers of one document.
final class ConfigDiagnostics {
    let file: String
    let lineIndex: TOMLLineIndex
    private(set) var problems: [ConfigProblem] = []

    init(file: String, lineIndex: TOMLLineIndex) {
        self.file = file
        self.lineIndex = lineIndex
    }

    func report(_ path: ConfigKeyPath, _ message: String) {
        problems.append(ConfigProblem(file: file, line: lineIndex.line(for: path), key: path, message: message))
    }
}

/// Reads the keys of one TOML table into typed values.
///
/// Every getter returns the default after reporting a problem, so decoding continues and finds every
/// problem in the file. `finish()` reports keys nobody asked for: unknown keys are errors.
struct ConfigTableReader {
    let path: ConfigKeyPath
    let diagnostics: ConfigDiagnostics
    private let table: TOMLTable
    private var consumed: Set<String> = []

    init(table: TOMLTable, path: ConfigKeyPath, diagnostics: ConfigDiagnostics) {
        self.table = table
        self.path = path
        self.diagnostics = diagnostics
    }

    /// The line a key is written on (or its table's line when it is not written).
    func line(of key: String) -> Int { diagnostics.lineIndex.line(for: path.appending(key)) }

    func isPresent(_ key: String) -> Bool { table[key] != nil }

    func report(_ key: String, _ message: String) { diagnostics.report(path.appending(key), message) }

    private mutating func value(_ key: String, expecting type: TOMLType) -> TOMLValueConvertible? {
        consumed.insert(key)
        guard let value = table[key] else { return nil }
        guard value.type == type else {
            report(key, "expected \(Self.describe(type)), found \(Self.describe(value.type))")
            return nil
        }
        return value
    }

    /// A string; `check` returns a problem description or nil.
    mutating func string(_ key: String, default fallback: String, check: (String) -> String? = { _ in nil }) -> String {
        guard let value = value(key, expecting: .string)?.string else { return fallback }
        if let problem = check(value) {
            report(key, problem)
            return fallback
        }
        return value
    }

    /// A required string: missing is a problem.
    mutating func requiredString(_ key: String, check: (String) -> String? = { _ in nil }) -> String? {
        guard isPresent(key) else {
            consumed.insert(key)
            report(key, "missing (required)")
            return nil
        }
        guard let value = value(key, expecting: .string)?.string else { return nil }
        if let problem = check(value) {
            report(key, problem)
            return nil
        }
        return value
    }

    mutating func integer(_ key: String, default fallback: Int, in range: ClosedRange<Int>) -> Int {
        guard let value = value(key, expecting: .int)?.int else { return fallback }
        guard range.contains(value) else {
            report(key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return fallback
        }
        return value
    }

    /// A number (TOML integer or float); `check` returns a problem description or nil.
    mutating func number(_ key: String, default fallback: Double, check: (Double) -> String? = { _ in nil }) -> Double {
        optionalNumber(key, check: check) ?? fallback
    }

    /// A number that may be absent (nil).
    mutating func optionalNumber(_ key: String, check: (Double) -> String? = { _ in nil }) -> Double? {
        consumed.insert(key)
        guard let raw = table[key] else { return nil }
        let value: Double
        switch raw.type {
        case .int: value = Double(raw.int ?? 0)
        case .double: value = raw.double ?? .nan
        default:
            report(key, "expected number, found \(Self.describe(raw.type))")
            return nil
        }
        if !value.isFinite {
            report(key, "must be a finite number, got \(value)")
            return nil
        }
        if let problem = check(value) {
            report(key, problem)
            return nil
        }
        return value
    }

    /// An array of numbers with exactly `count` elements (or any length when `count` is nil).
    mutating func numberArray(_ key: String, count: Int?, check: (Double) -> String? = { _ in nil }) -> [Double]? {
        guard let raw = value(key, expecting: .array), let array = raw.array else { return nil }
        var values: [Double] = []
        for element in array {
            switch element.type {
            case .int: values.append(Double(element.int ?? 0))
            case .double: values.append(element.double ?? .nan)
            default:
                report(key, "expected an array of numbers, found an element of type \(Self.describe(element.type))")
                return nil
            }
        }
        if let count, values.count != count {
            report(key, "expected \(count) numbers, found \(values.count)")
            return nil
        }
        for value in values {
            if let problem = value.isFinite ? check(value) : "must be finite, got \(value)" {
                report(key, problem)
                return nil
            }
        }
        return values
    }

    /// An array of strings; `check` applies to each element.
    mutating func stringArray(_ key: String, check: (String) -> String? = { _ in nil }) -> [String]? {
        guard let raw = value(key, expecting: .array), let array = raw.array else { return nil }
        var values: [String] = []
        for element in array {
            guard element.type == .string, let text = element.string else {
                report(key, "expected an array of strings, found an element of type \(Self.describe(element.type))")
                return nil
            }
            if let problem = check(text) {
                report(key, problem)
                return nil
            }
            values.append(text)
        }
        return values
    }

    mutating func bool(_ key: String, default fallback: Bool) -> Bool {
        value(key, expecting: .bool)?.bool ?? fallback
    }

    /// One of a fixed set of words (`RawRepresentable` enums such as `LogTarget`).
    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, default fallback: T) -> T
    where T.RawValue == String {
        let word = string(key, default: fallback.rawValue) { value in
            T(rawValue: value) == nil
                ? "unknown value '\(value)' (expected one of: \(T.allCases.map(\.rawValue).joined(separator: ", ")))"
                : nil
        }
        return T(rawValue: word) ?? fallback
    }

    /// A sub-table (`[control]` read from the root); nil when absent or of the wrong type.
    mutating func table(_ key: String) -> ConfigTableReader? {
        guard let value = value(key, expecting: .table), let table = value.table else { return nil }
        return ConfigTableReader(table: table, path: path.appending(key), diagnostics: diagnostics)
    }

    /// An array of tables (`[[camera]]`); empty when absent or of the wrong type.
    mutating func arrayOfTables(_ key: String) -> [ConfigTableReader] {
        consumed.insert(key)
        guard let value = table[key] else { return [] }
        guard value.type == .array, let array = value.array else {
            report(key, "expected an array of tables ([[\(key)]]), found \(Self.describe(value.type))")
            return []
        }
        var readers: [ConfigTableReader] = []
        for (index, element) in array.enumerated() {
            let elementPath = path.appending(key).appending(index: index)
            guard element.type == .table, let table = element.table else {
                diagnostics.report(elementPath, "expected a table, found \(Self.describe(element.type))")
                continue
            }
            readers.append(ConfigTableReader(table: table, path: elementPath, diagnostics: diagnostics))
        }
        return readers
    }

    /// Reports every key of this table that no getter asked for.
    func finish() {
        for key in table.keys where !consumed.contains(key) {
            let kind = table[key]?.type == .table ? "unknown table" : "unknown key"
            report(key, kind)
        }
    }

    static func describe(_ type: TOMLType) -> String {
        switch type {
        case .table: return "table"
        case .array: return "array"
        case .string: return "string"
        case .int: return "integer"
        case .double: return "float"
        case .bool: return "boolean"
        case .date: return "date"
        case .time: return "time"
        case .dateTime: return "date-time"
        }
    }
}
