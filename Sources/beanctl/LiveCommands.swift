import ArgumentParser
import BeanCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `beanctl watch`: `status`, refreshed in place — what an operator leaves open beside the line.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live, refreshing view of beand's status.")
    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: ArgumentHelp("Seconds between refreshes.", valueName: "seconds"))
    var interval: Double = 1

    @Option(name: .long, help: ArgumentHelp("Stop after this many refreshes (default: until Ctrl-C).", valueName: "n"))
    var count: Int?

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 s") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        // On a terminal, redraw in place; into a pipe or file, print one block per refresh.
        let redraw = isatty(STDOUT_FILENO) != 0
        var done = 0
        while count.map({ done < $0 }) ?? true {
            let started = MonotonicInstant.now()
            var lines: [String] = []
            do {
                let status = try connection.client.call(["command": "status"])
                let rows = StatusFormatter.rows(status)
                let width = rows.map(\.0.count).max() ?? 0
                lines = rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + $0.1 }
            } catch let error as ControlClientError {
                // Keep watching through a daemon restart; say what is wrong meanwhile.
                lines = ["beanctl: \(error.description)"]
                if case .permissionDenied = error {
                    FileHandle.standardError.write(Data("beanctl: \(error.description)\n".utf8))
                    throw ExitCode(error.exitCode)
                }
            }
            let header = "beand status, every \(interval) s — \(Self.clockTime())"
            if redraw {
                print("\u{1B}[H\u{1B}[2J" + header + "\n" + lines.joined(separator: "\n"), terminator: "\n")
            } else {
                print(header); lines.forEach { print($0) }; print("")
            }
            fflush(stdout)
            done += 1
            if count.map({ done >= $0 }) ?? false { break }
            let remaining = interval - MonotonicInstant.now().seconds(since: started)
            if remaining > 0 { usleep(UInt32(remaining * 1e6)) }
        }
    }

    static func clockTime() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return String(format: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)
    }
}

/// `beanctl tail`: follows the reject stream (beand-rejects(7)) in human-readable form.
struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow beand's reject stream in human-readable form.",
        discussion: "Connects to the reject socket; --resume-after N first replays every event after N that the daemon still holds.")

    @Option(name: .long, help: ArgumentHelp("Reject stream socket.", valueName: "path"))
    var rejectsSocket: String = ProcessInfo.processInfo.environment["BEAND_REJECTS_SOCKET"] ?? "/run/beand/rejects.sock"

    @Option(name: .long, help: ArgumentHelp("Replay events after this sequence number first.", valueName: "seq"))
    var resumeAfter: UInt64?

    @Option(name: .long, help: ArgumentHelp("Exit after this many reject events.", valueName: "n"))
    var count: Int?

    @Flag(name: .long, help: "Print the raw JSON lines.")
    var json = false

    func run() throws {
        let stream = ControlClient(socketPath: rejectsSocket, timeoutSeconds: 0)
        let fd: Int32
        do {
            fd = try stream.openStream()
        } catch let error as ControlClientError {
            FileHandle.standardError.write(Data("beanctl: \(error.description)\n".utf8))
            throw ExitCode(error.exitCode)
        }
        defer { close(fd) }
        if let resumeAfter {
            let request = Array("{\"resume_after\": \(resumeAfter)}\n".utf8)
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var rejects = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                FileHandle.standardError.write(Data("beanctl: reject stream \(rejectsSocket) closed by beand\n".utf8))
                throw ExitCode(69)
            }
            pending.append(contentsOf: chunk[0..<n])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                let isReject = handle(line)
                if isReject { rejects += 1 }
                if let count, rejects >= count { return }
            }
        }
    }

    /// Prints one stream line; returns whether it was a reject event.
    private func handle(_ line: [UInt8]) -> Bool {
        if json {
            print(String(decoding: line, as: UTF8.self))
            fflush(stdout)
        }
        guard let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            if !json { print("?? unreadable line: \(String(decoding: line.prefix(200), as: UTF8.self))") }
            return false
        }
        let type = event["type"] as? String
        if !json {
            print(Self.describe(event))
            fflush(stdout)
        }
        return type == "reject"
    }

    static func describe(_ event: [String: Any]) -> String {
        let t = StatusFormatter.text
        switch event["type"] as? String {
        case "reject":
            var text = "#\(t(event["seq"])) \(t(event["camera"])) bean \(t(event["bean_id"])) frame \(t(event["frame_seq"]))"
            text += " lane \(t(event["lane"])): \(t(event["verdict"]).uppercased())"
            if let label = event["label"] as? String { text += " \(label)" }
            text += " (\(t(event["reason"]))"
            if let score = event["score"] as? NSNumber { text += String(format: " %.3f", score.doubleValue) }
            text += ")"
            if let captured = (event["captured_mono_us"] as? NSNumber)?.doubleValue,
               let decided = (event["decided_mono_us"] as? NSNumber)?.doubleValue {
                text += String(format: " in %.1f ms", (decided - captured) / 1000)
            }
            if let neighbours = event["neighbors"] as? [[String: Any]], !neighbours.isEmpty {
                let shown = neighbours.prefix(3).map { n -> String in
                    let d = (n["distance"] as? NSNumber).map { String(format: "%.3f", $0.doubleValue) } ?? "-"
                    return "\(t(n["label"])) \(d)"
                }
                text += " nearest: " + shown.joined(separator: ", ")
            }
            return text
        case "gap":
            return "-- gap: events \(t(event["from_seq"]))–\(t(event["to_seq"])) (\(t(event["count"]))) not received: \(t(event["reason"]))"
        case "error":
            return "-- beand: \(t(event["error"]))"
        default:
            return "-- unknown event type \(t(event["type"]))"
        }
    }
}

/// `beanctl set threshold KEY VALUE`: changes a decision threshold at run time (admin only);
/// the daemon persists it across restarts and logs the change.
struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Change a setting of the running daemon (root or group beand-admin).",
        subcommands: [SetThreshold.self])
}

struct SetThreshold: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threshold",
        abstract: "Set a decision threshold; persists across restarts.",
        discussion: """
            KEY is `default` (the reject score a bean needs in score mode, the vote share a defect \
            label needs in vote mode), `label:NAME` (that label's share; in score mode it only adds rejects), \
            `one-class` (mean distance to the nearest good vectors) or `unknown` (nearest-neighbour \
            distance beyond which a bean is unknown). VALUE is a number, or `off`.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "default | label:NAME | one-class | unknown") var key: String
    @Argument(help: "A number, or off.") var value: String
    @Flag(name: .long, help: "Print the daemon's JSON.") var json = false

    func run() throws {
        let result = try callDaemon(connection, ["command": "set-threshold", "key": key, "value": value])
        if json { try printJSON(result); return }
        // The daemon answers with the key and the old and new values (null: the label follows
        // the default, or the threshold is off), as its log line says it.
        let unset = key.hasPrefix("label:") ? "default" : "off"
        func text(_ value: Any?) -> String { (value as? Double).map { "\($0)" } ?? unset }
        print("threshold \(result["key"] as? String ?? key) changed from \(text(result["old"])) to \(text(result["new"]))")
        // The daemon says when the value cannot change its decisions in its current mode.
        if let note = result["note"] as? String { print("note: \(note)") }
    }
}
