/// Maps key paths of a TOML document to the line they are written on.
///
/// TOMLKit does not expose source positions of parsed nodes, so this scans the text once for table
/// headers (`[x]`, `[[x]]`) and `key = value` lines. It runs only on documents TOMLKit has already
/// accepted, which keeps the scanner small: it need not diagnose anything, only find keys.
struct TOMLLineIndex {
    private var lines: [ConfigKeyPath: Int] = [:]

    init(text: String) {
        var current = ConfigKeyPath.root
        var arrayIndex: [ConfigKeyPath: Int] = [:]
        var openMultiline: [UInt8]? = nil

        func resolve(_ keys: [String]) -> ConfigKeyPath {
            var path = ConfigKeyPath.root
            for key in keys {
                path = path.appending(key)
                if let index = arrayIndex[path] { path = path.appending(index: index) }
            }
            return path
        }

        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let bytes = Array(line.utf8)
            if let delimiter = openMultiline {
                if Self.occurrences(of: delimiter, in: bytes[...]) % 2 == 1 { openMultiline = nil }
                continue
            }
            var i = Self.skipWhitespace(bytes, 0)
            guard i < bytes.count else { continue }
            if bytes[i] == UInt8(ascii: "[") {
                let isArray = i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "[")
                i += isArray ? 2 : 1
                guard let (keys, _) = Self.parseKey(bytes, i) else { continue }
                if isArray {
                    var arrayPath = resolve(Array(keys.dropLast()))
                    arrayPath = arrayPath.appending(keys[keys.count - 1])
                    let index = (arrayIndex[arrayPath] ?? -1) + 1
                    arrayIndex[arrayPath] = index
                    record(arrayPath, number)
                    current = arrayPath.appending(index: index)
                } else {
                    current = resolve(keys)
                }
                record(current, number)
                continue
            }
            guard let (keys, end) = Self.parseKey(bytes, i) else { continue }
            let afterKey = Self.skipWhitespace(bytes, end)
            guard afterKey < bytes.count, bytes[afterKey] == UInt8(ascii: "=") else { continue }
            var path = current
            for key in keys {
                path = path.appending(key)
                record(path, number)
            }
            let value = bytes[(afterKey + 1)...]
            for delimiter in [Array("\"\"\"".utf8), Array("'''".utf8)]
            where Self.occurrences(of: delimiter, in: value) % 2 == 1 {
                openMultiline = delimiter
                break
            }
        }
    }

    private mutating func record(_ path: ConfigKeyPath, _ line: Int) {
        if lines[path] == nil { lines[path] = line }
    }

    /// The line of `path`, or of its nearest ancestor that is written in the file (a key inside an
    /// inline table, an element of an array), or 1 when nothing is (a missing table).
    func line(for path: ConfigKeyPath) -> Int {
        var candidate: ConfigKeyPath? = path
        while let path = candidate {
            if let line = lines[path] { return line }
            candidate = path.parent
        }
        return 1
    }

    /// The line of `path` itself, nil when it is not written in the file.
    func exactLine(for path: ConfigKeyPath) -> Int? { lines[path] }

    private static func skipWhitespace(_ bytes: [UInt8], _ start: Int) -> Int {
        var i = start
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0D { i += 1 }
        return i
    }

    private static func occurrences(of needle: [UInt8], in hay: ArraySlice<UInt8>) -> Int {
        var count = 0
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i..<(i + needle.count)].elementsEqual(needle) {
                count += 1
                i += needle.count
            } else {
                i += 1
            }
        }
        return count
    }

    /// A dotted key starting at `start`: bare, "basic" or 'literal' parts separated by dots.
    /// Returns the parts and the index just after the key.
    private static func parseKey(_ bytes: [UInt8], _ start: Int) -> ([String], Int)? {
        var keys: [String] = []
        var i = skipWhitespace(bytes, start)
        while true {
            guard i < bytes.count else { return nil }
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                var part: [UInt8] = []
                i += 1
                var closed = false
                while i < bytes.count {
                    if bytes[i] == byte { closed = true; i += 1; break }
                    if byte == UInt8(ascii: "\""), bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count {
                        part.append(bytes[i + 1])
                        i += 2
                        continue
                    }
                    part.append(bytes[i])
                    i += 1
                }
                guard closed else { return nil }
                keys.append(String(decoding: part, as: UTF8.self))
            } else {
                let begin = i
                while i < bytes.count, ConfigKeyPath.isBare(String(decoding: [bytes[i]], as: UTF8.self)) { i += 1 }
                guard i > begin else { return nil }
                keys.append(String(decoding: bytes[begin..<i], as: UTF8.self))
            }
            let next = skipWhitespace(bytes, i)
            if next < bytes.count, bytes[next] == UInt8(ascii: ".") {
                i = skipWhitespace(bytes, next + 1)
                continue
            }
            return (keys, i)
        }
    }
}
