/// Control protocol v1: newline-delimited JSON over a Unix stream socket, one request object per
/// line (at most 65,536 bytes including the newline), one response line per request, in order.
public enum ControlProtocol {
    public static let version = 1
    public static let maximumLineBytes = 65_536

    /// Decodes one request line (without its newline).
    public static func decodeRequest(_ line: [UInt8]) -> Result<ControlRequest, ControlFailure> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch let error as JSONParseError {
            return .failure(ControlFailure("malformed JSON: \(error)"))
        } catch {
            return .failure(ControlFailure("malformed JSON: \(error)"))
        }
        guard case .object(let members) = value else {
            return .failure(ControlFailure("request must be a JSON object, got \(value.typeName)"))
        }
        var command: String?
        var arguments: [(String, JSONValue)] = []
        for (key, member) in members {
            switch key {
            case "command":
                guard case .string(let name) = member else {
                    return .failure(ControlFailure("\"command\" must be a string, got \(member.typeName)"))
                }
                command = name
            case "proto":
                guard case .int(Int64(version)) = member else {
                    let shown: String
                    if case .string(let text) = member { shown = JSONValue.string(text).serialized } else { shown = member.serialized }
                    return .failure(ControlFailure("unsupported protocol version \(shown)"))
                }
            default:
                arguments.append((key, member))
            }
        }
        guard let command else { return .failure(ControlFailure("request has no \"command\"")) }
        return .success(ControlRequest(command: command, arguments: arguments))
    }

    /// `{"ok":true,"proto":1,"command":…,"result":…}` and a newline.
    public static func successLine(command: String, result: JSONValue) -> String {
        JSONValue.object([("ok", .bool(true)), ("proto", .int(Int64(version))), ("command", .string(command)),
                          ("result", result)]).serialized + "\n"
    }

    /// `{"ok":false,"proto":1,"error":…}` and a newline.
    public static func failureLine(_ failure: ControlFailure) -> String {
        JSONValue.object([("ok", .bool(false)), ("proto", .int(Int64(version))),
                          ("error", .string(failure.message))]).serialized + "\n"
    }
}

/// One decoded request: the command and its other members (arguments), in the order sent.
public struct ControlRequest: Equatable, Sendable {
    public var command: String
    public var arguments: [(String, JSONValue)]

    public init(command: String, arguments: [(String, JSONValue)] = []) {
        self.command = command
        self.arguments = arguments
    }

    public static func == (lhs: ControlRequest, rhs: ControlRequest) -> Bool {
        lhs.command == rhs.command && JSONValue.object(lhs.arguments) == JSONValue.object(rhs.arguments)
    }
}

/// The one-line error text of an `ok:false` response.
public struct ControlFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) {
        // One line, always: a newline would break the framing of the response stream.
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    public var description: String { message }

    public static let permissionDenied = ControlFailure("permission denied")
}

/// What a framer hands the connection: a complete line, or the news that a line was too long (and
/// is being discarded up to its newline), or that input ended in the middle of a line.
public enum ControlLineEvent: Equatable, Sendable {
    case line([UInt8])
    case oversized
    case incomplete
}

/// Splits a byte stream into request lines of at most `ControlProtocol.maximumLineBytes` (including
/// the newline). An oversized line is reported once and its bytes are dropped as they arrive, so a
/// client streaming a huge line costs no memory and its next line is served normally.
public struct ControlLineFramer: Sendable {
    public let maximumLineBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var discarding = false

    public init(maximumLineBytes: Int = ControlProtocol.maximumLineBytes) {
        self.maximumLineBytes = maximumLineBytes
    }

    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next event, or nil when more input is needed.
    public mutating func next() -> ControlLineEvent? {
        if discarding {
            guard let newline = buffer[start...].firstIndex(of: 0x0A) else {
                buffer.removeAll(keepingCapacity: true)
                start = 0
                return nil
            }
            start = newline + 1
            discarding = false
        }
        let searchEnd = min(buffer.count, start + maximumLineBytes)
        if let newline = buffer[start..<searchEnd].firstIndex(of: 0x0A) {
            var end = newline
            if end > start, buffer[end - 1] == 0x0D { end -= 1 }
            let line = Array(buffer[start..<end])
            start = newline + 1
            return .line(line)
        }
        if buffer.count - start >= maximumLineBytes {
            // The bytes after the first maximumLineBytes may hold the newline that ends this line
            // and the lines after it: skip only what is known to belong to the oversized line.
            start += maximumLineBytes
            discarding = true
            return .oversized
        }
        return nil
    }

    /// At end of input: `.incomplete` if a partial line is left (blank ones are ignored).
    public mutating func finish() -> ControlLineEvent? {
        defer {
            buffer.removeAll()
            start = 0
        }
        if discarding { return nil }
        let rest = buffer[start...]
        return rest.allSatisfy({ [0x20, 0x09, 0x0D].contains($0) }) ? nil : .incomplete
    }
}
