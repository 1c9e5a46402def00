import BeanCore
import BeanInspect

/// Lines of the reject stream other than reject events, and the one request a consumer may send.
/// The full schema is in beand-rejects(7).
public enum RejectStreamProtocol {
    /// Why a range of sequence numbers is not delivered to a consumer.
    public enum GapReason: String, Sendable, Hashable, CaseIterable {
        /// The consumer read too slowly; its buffer overflowed. Only this consumer lost them.
        case overflow
        /// `resume_after` asked for numbers the ring buffer no longer holds.
        case evicted
        /// Numbers from before this daemon instance started (not kept across restarts; some of
        /// them were never issued, see beand-rejects(7) SEQUENCE NUMBERS).
        case restart
        /// The daemon could not hand the events to the stream in time; every consumer lost them.
        case dropped
    }

    /// `{"type":"gap","from_seq":A,"to_seq":B,"count":N,"reason":"…"}` plus newline; A…B inclusive.
    public static func gapLine(from first: UInt64, to last: UInt64, reason: GapReason) -> String {
        "{\"type\":\"gap\",\"from_seq\":\(first),\"to_seq\":\(last),\"count\":\(last - first + 1),\"reason\":\"\(reason.rawValue)\"}\n"
    }

    /// `{"type":"error","error":"…"}` plus newline.
    public static func errorLine(_ message: String) -> String {
        "{\"type\":\"error\",\"error\":\(BeanCore.JSONText.string(message))}\n"
    }

    public enum RequestError: Error, Sendable, Hashable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self { case .malformed(let text): return text }
        }
    }

    /// Parses the resume request `{"resume_after": N}` (whitespace allowed around tokens; N a
    /// non-negative integer without sign, fraction or exponent). Anything else is an error that
    /// quotes the start of the line.
    public static func parseResumeRequest(_ line: [UInt8]) -> Result<UInt64, RequestError> {
        var index = 0
        func skipSpace() { while index < line.count, line[index] == 0x20 || line[index] == 0x09 || line[index] == 0x0d { index += 1 } }
        func expect(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < line.count, line[index] == byte else { return false }
            index += 1
            return true
        }
        func fail() -> Result<UInt64, RequestError> {
            .failure(.malformed("expected {\"resume_after\": N} with N a non-negative integer, got \(quote(line))"))
        }
        let key = Array("\"resume_after\"".utf8)
        guard expect(UInt8(ascii: "{")) else { return fail() }
        skipSpace()
        guard line.count - index >= key.count, Array(line[index..<index + key.count]) == key else { return fail() }
        index += key.count
        guard expect(UInt8(ascii: ":")) else { return fail() }
        skipSpace()
        var value: UInt64 = 0
        var digits = 0
        while index < line.count, line[index] >= 0x30, line[index] <= 0x39 {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(line[index] - 0x30))
            guard !overflow1, !overflow2 else {
                return .failure(.malformed("resume_after is larger than \(UInt64.max)"))
            }
            value = sum
            digits += 1
            index += 1
        }
        guard digits > 0 else { return fail() }
        guard expect(UInt8(ascii: "}")) else { return fail() }
        skipSpace()
        guard index == line.count else { return fail() }
        return .success(value)
    }

    /// The first 80 bytes of a line as a JSON string, for error messages.
    static func quote(_ line: [UInt8]) -> String {
        let prefix = line.prefix(80)
        var text = String(decoding: prefix, as: UTF8.self)
        if line.count > 80 { text += "…" }
        return BeanCore.JSONText.string(text)
    }
}
