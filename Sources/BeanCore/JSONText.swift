/// Minimal JSON text writing: RFC 8259 string escaping, non-finite numbers as null.
public enum JSONText {
    public static func appendString(_ string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    public static func appendNumber(_ value: Double?, to out: inout String, text: String? = nil) {
        guard let value, value.isFinite else {
            out += "null"
            return
        }
        out += text ?? "\(value)"
    }

    public static func string(_ string: String) -> String {
        var out = ""
        appendString(string, to: &out)
        return out
    }
}
