#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import Logging

/// Writes records to journald with `sd_journal_sendv`: structured fields, not a text line.
///
/// Fields: `MESSAGE`, `PRIORITY` (syslog number from the level), `SYSLOG_IDENTIFIER=beand`,
/// `LOGGER` (the swift-log label), `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, `MESSAGE_ID` from the
/// `message_id` metadata key, and every other metadata key under its `JournalFieldName` mapping.
/// When journald refuses a record the record goes to stderr instead, so nothing vanishes.
public struct JournaldLogSink: LogSink {
    public static let syslogIdentifier = "beand"

    public init() {}

    public func write(_ record: LogRecord) {
        let fields = Self.fields(for: record)
        let result = Self.send(fields)
        if result < 0 {
            var fallback = record
            fallback.metadata.append(("journald_error", String(cString: strerror(-result))))
            StderrLogSink().write(fallback)
        }
    }

    /// The `NAME=value` fields of one entry.
    public static func fields(for record: LogRecord) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", record.message),
            ("PRIORITY", String(priority(record.level))),
            ("SYSLOG_IDENTIFIER", syslogIdentifier),
            ("LOGGER", record.label),
            ("CODE_FILE", record.file),
            ("CODE_LINE", String(record.line)),
            ("CODE_FUNC", record.function),
        ]
        for (key, value) in record.metadata {
            if key == BeandMessageID.metadataKey, isMessageID(value) {
                fields.append(("MESSAGE_ID", value))
            } else {
                fields.append((JournalFieldName.mapping(key), value))
            }
        }
        return fields
    }

    /// syslog priorities as journald's `PRIORITY=` wants them.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func isMessageID(_ value: String) -> Bool {
        value.utf8.count == 32 && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// One buffer holding every `NAME=value`, and iovecs pointing into it (values may hold newlines or
    /// any bytes: sendv takes lengths, not C strings).
    private static func send(_ fields: [(name: String, value: String)]) -> Int32 {
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (name, value) in fields {
            let start = buffer.count
            buffer += name.utf8
            buffer.append(UInt8(ascii: "="))
            buffer += value.utf8
            ranges.append(start..<buffer.count)
        }
        return buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            var vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count))
        }
    }
}

/// Writes one text line per record to stderr: `LEVEL label: message key=value …`.
public struct StderrLogSink: LogSink {
    public init() {}

    public func write(_ record: LogRecord) {
        var line = "\(record.level) \(record.label): \(record.message)"
        for (key, value) in record.metadata {
            line += " \(key)=\(Self.quoted(value))"
        }
        line += "\n"
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.write(2, base + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "\\" && $0.value != 0x7F }
        if plain { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\x\(String(scalar.value, radix: 16))" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
