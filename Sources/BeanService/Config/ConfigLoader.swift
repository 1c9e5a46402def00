#if canImport(Glibc)
import Glibc
#endif
import TOMLKit

/// Reads and validates `beand.toml`.
public enum ConfigLoader {
    public static let defaultPath = "/etc/beand/beand.toml"

    /// Loads the file at `path`; throws `ConfigError` naming the file and line of every problem.
    public static func load(path: String) throws -> DaemonConfig {
        let text: String
        do {
            text = try readFile(path)
        } catch let error as ReadError {
            throw ConfigError(problems: [ConfigProblem(file: path, line: 0, key: nil, message: error.message)])
        }
        return try parse(text, file: path)
    }

    /// Decodes TOML text; `file` names it in problems.
    public static func parse(_ text: String, file: String) throws -> DaemonConfig {
        if text.utf8.contains(0) {
            let line = text.prefix { $0 != "\0" }.filter { $0 == "\n" }.count + 1
            throw ConfigError(problems: [ConfigProblem(file: file, line: line, key: nil,
                                                       message: "syntax error: NUL byte in file")])
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(problems: [ConfigProblem(
                file: file, line: error.source.begin.line, key: nil,
                message: "syntax error: \(error.description) (column \(error.source.begin.column))")])
        }
        let diagnostics = ConfigDiagnostics(file: file, lineIndex: TOMLLineIndex(text: text))
        var root = ConfigTableReader(table: table, path: .root, diagnostics: diagnostics)
        let config = DaemonConfig(reading: &root)
        if !diagnostics.problems.isEmpty { throw ConfigError(problems: diagnostics.problems) }
        return config
    }

    private static func firstInvalidUTF8Line(_ bytes: [UInt8]) -> Int {
        var line = 1
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            if scalar == "\n" { line += 1 }
        }
        return line
    }

    struct ReadError: Error { var message: String }

    private static func readFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > 16 << 20 { throw ReadError(message: "file is larger than 16 MiB; not a config file") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ReadError(message: "not UTF-8 text (invalid byte sequence on line \(firstInvalidUTF8Line(bytes)))")
        }
        return text
    }
}
