/// One problem in a config file, printed as `PATH:LINE: key 'control.socket': <what>`.
public struct ConfigProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// Nil for problems that belong to no key (TOML syntax errors).
    public var key: ConfigKeyPath?
    public var message: String

    public init(file: String, line: Int, key: ConfigKeyPath?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// Line 0 means the problem concerns the whole file (cannot open it).
    public var description: String {
        if line == 0 { return "\(file): \(message)" }
        if let key { return "\(file):\(line): key '\(key)': \(message)" }
        return "\(file):\(line): \(message)"
    }
}

/// Every problem found in one config file, in line order. The loader keeps reading after the first
/// problem so an operator fixes the whole file in one round.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]

    public init(problems: [ConfigProblem]) {
        self.problems = problems.sorted { ($0.line, $0.description) < ($1.line, $1.description) }
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
