/// Turns swift-log metadata keys into journald field names.
///
/// journald accepts only `A-Z`, `0-9` and `_`, at most 64 bytes, not starting with a digit, and
/// drops fields starting with `_` (those are trusted fields only journald itself sets). A field that
/// breaks these rules is dropped by journald without a word, so every key is mapped to a valid name
/// instead: `bean.score` → `BEAN_SCORE`, `frame-rate` → `FRAME_RATE`, `3d` → `META_3D`,
/// `_private` → `META__PRIVATE`. Keys that would overwrite a field beand sets itself (`message`,
/// `priority`, …) get the same `META_` prefix. Two keys may map to one name (`a.b`, `a_b`); journald
/// keeps both values, so nothing is lost.
public enum JournalFieldName {
    public static let maximumLength = 64
    static let prefix = "META_"

    /// Fields beand writes on every entry, or that journald interprets specially.
    static let reserved: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "LOGGER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
        "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
        "OBJECT_PID",
    ]

    public static func mapping(_ key: String) -> String {
        var name = ""
        name.reserveCapacity(key.utf8.count)
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): name.unicodeScalars.append(Unicode.Scalar(byte - 0x20))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                name.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                // A multi-byte character becomes one `_` per byte: the name stays ASCII, and keys that
                // differ only in such characters still differ in length.
                name.append("_")
            }
        }
        if let first = name.utf8.first, first == UInt8(ascii: "_") || (first >= 0x30 && first <= 0x39) {
            name = prefix + name
        } else if name.isEmpty {
            name = "META"
        } else if reserved.contains(name) || name.hasPrefix("COREDUMP_") {
            name = prefix + name
        }
        if name.utf8.count > maximumLength { name = String(name.prefix(maximumLength)) }
        return name
    }

    /// What journald accepts from a client (`journal_field_valid` without the trusted-field case).
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= maximumLength else { return false }
        if first == UInt8(ascii: "_") || (first >= 0x30 && first <= 0x39) { return false }
        return name.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }
}
