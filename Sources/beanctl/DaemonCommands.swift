import ArgumentParser
import BeanCore
import Foundation

/// `--socket` and `--timeout`, shared by every command that talks to a running daemon.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Control socket of the daemon.", valueName: "path"))
    var socket: String = ProcessInfo.processInfo.environment["BEAND_CONTROL_SOCKET"] ?? ControlClient.defaultSocketPath

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the daemon's answer.", valueName: "seconds"))
    var timeout: Double = 5

    var client: ControlClient { ControlClient(socketPath: socket, timeoutSeconds: timeout) }
}

/// Runs one control request; on failure prints one clear line and exits with the documented code.
func callDaemon(_ options: ConnectionOptions, _ request: [String: Any]) throws -> [String: Any] {
    do {
        return try options.client.call(request)
    } catch let error as ControlClientError {
        FileHandle.standardError.write(Data("beanctl: \(error.description)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that beand answers on its control socket.")
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let start = MonotonicInstant.now()
        _ = try callDaemon(connection, ["command": "ping"])
        let ms = MonotonicInstant.now().seconds(since: start) * 1000
        print("beand is alive (\(String(format: "%.2f", ms)) ms)")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the versions of beanctl and of the running beand.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Print the daemon's JSON.") var json = false

    func run() throws {
        let result = try callDaemon(connection, ["command": "version"])
        if json { try printJSON(result); return }
        KeyValueTable(rows: [
            ("beanctl", BeandVersion.string),
            ("beand", StatusFormatter.text(result["version"])),
            ("Protocol", StatusFormatter.text(result["proto"])),
            ("BLAS kernels", StatusFormatter.text(result["blas_core"])),
        ]).print()
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make beand re-read its configuration, store and encoder (root or group beand-admin).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Print the daemon's JSON.") var json = false

    func run() throws {
        let result = try callDaemon(connection, ["command": "reload"])
        if json { try printJSON(result); return }
        print("reloaded" + (result["generation"].flatMap { $0 is NSNull ? nil : " (store generation \(StatusFormatter.text($0)))" } ?? ""))
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what beand is doing: cameras, throughput, store, encoder.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Print the daemon's status JSON (fields without an engine are null).") var json = false

    func run() throws {
        let result = try callDaemon(connection, ["command": "status"])
        if json { try printJSON(result); return }
        KeyValueTable(rows: StatusFormatter.rows(result)).print()
    }
}

/// chronyc-style output: `Key : value`, keys padded to one width so the colons line up.
struct KeyValueTable {
    var rows: [(String, String)]

    func print() {
        let width = rows.map(\.0.count).max() ?? 0
        for (key, value) in rows {
            Swift.print(key.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + value)
        }
    }
}

/// Turns the daemon's status JSON into human lines. A null field means "no engine behind it yet"
/// and is shown as `-`, never as 0.
enum StatusFormatter {
    static func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let s as String: return s
        case let n as NSNumber:
            // JSON booleans arrive as NSNumber with objCType "c"; numbers as "i", "q" or "d".
            if String(cString: n.objCType) == "c" { return n.boolValue ? "yes" : "no" }
            let d = n.doubleValue
            return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(format: "%.2f", d)
        case let other?: return "\(other)"
        }
    }

    static func duration(_ value: Any?) -> String {
        guard let seconds = (value as? NSNumber)?.doubleValue else { return "-" }
        let s = Int(seconds)
        let (d, h, m, r) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60)
        return d > 0 ? "\(d)d \(h)h \(m)m \(r)s" : h > 0 ? "\(h)h \(m)m \(r)s" : m > 0 ? "\(m)m \(r)s" : String(format: "%.1f s", seconds)
    }

    static func rows(_ status: [String: Any]) -> [(String, String)] {
        var rows: [(String, String)] = [
            ("Version", text(status["version"])),
            ("Uptime", duration(status["uptime_s"])),
            ("Beans", text(status["beans_total"])),
            ("Beans/s", text(status["beans_per_s"])),
            ("Rejects", text(status["rejects_total"])),
        ]
        let cameras = status["cameras"] as? [[String: Any]] ?? []
        if cameras.isEmpty { rows.append(("Cameras", "none configured")) }
        for camera in cameras {
            let fps = camera["fps"].map { $0 is NSNull ? "-" : text($0) + " fps" } ?? "-"
            rows.append(("Camera \(text(camera["name"]))", "\(text(camera["state"])), \(fps)"))
        }
        let store = status["store"] as? [String: Any] ?? [:]
        rows.append(("Store", text(store["path"])))
        rows.append(("Store generation", text(store["generation"])))
        rows.append(("Store vectors", "\(text(store["vectors"])) (dim \(text(store["dim"])))"))
        if let labels = store["labels"] as? [Any] {
            rows.append(("Store labels", labels.map { text($0) }.joined(separator: ", ")))
        } else {
            rows.append(("Store labels", text(store["labels"])))
        }
        let encoder = status["encoder"] as? [String: Any] ?? [:]
        rows.append(("Encoder", text(encoder["model"])))
        rows.append(("Encoder fingerprint", text(encoder["fingerprint"])))
        if let policy = status["policy"] as? [String: Any] {
            rows.append(("Policy", policyLine(policy)))
        }
        if let spool = status["spool"] as? [String: Any] {
            rows += spoolRows(spool)
        }
        // Figures added by later engines (latency, queues, per-label rejects, …) are shown too,
        // so a newer daemon's status is never silently cut short by an older beanctl.
        let shown: Set<String> = ["version", "uptime_s", "beans_total", "beans_per_s", "rejects_total",
                                  "cameras", "store", "encoder", "spool", "policy"]
        for key in status.keys.sorted() where !shown.contains(key) {
            rows.append((humanKey(key), compact(status[key])))
        }
        return rows
    }

    /// `Policy : score, k 64, reject share 0.5, label:Insect 0.2` (one-class: its distance).
    static func policyLine(_ policy: [String: Any]) -> String {
        var parts = ["\(text(policy["mode"])), k \(text(policy["k"]))"]
        if policy["mode"] as? String == "one-class" {
            parts.append("one-class distance \(text(policy["one_class_distance"]))")
        } else {
            parts.append("reject share \(text(policy["reject_share"]))")
            let labels = policy["label_reject_shares"] as? [String: Any] ?? [:]
            parts += labels.keys.sorted().map { "label:\($0) \(text(labels[$0]))" }
        }
        if let unknown = policy["unknown_distance"], !(unknown is NSNull) {
            parts.append("unknown beyond \(text(unknown)) (\(text(policy["unknown_action"])))")
        }
        return parts.joined(separator: ", ")
    }

    /// `Spool : ok, 812 files, 3.1 MiB of 256.0 MiB` and the counters on a second line.
    static func spoolRows(_ spool: [String: Any]) -> [(String, String)] {
        var rows: [(String, String)] = []
        var line = text(spool["state"])
        if spool["files"] != nil, !(spool["files"] is NSNull) {
            line += ", \(text(spool["files"])) files, \(bytes(spool["bytes"])) of \(bytes(spool["max_bytes"]))"
        } else {
            line += ", cap \(bytes(spool["max_bytes"]))"
        }
        rows.append(("Spool", line))
        rows.append(("Spool directory", text(spool["directory"])))
        let queue = spool["queue"] as? [String: Any] ?? [:]
        rows.append(("Spool crops", "written \(text(spool["written"])), dropped \(text(spool["dropped"])), "
                     + "errors \(text(spool["errors"])), evicted \(text(spool["evicted"])), "
                     + "queue \(text(queue["depth"]))/\(text(queue["capacity"]))"))
        if let last = spool["last_error"] as? String { rows.append(("Spool last error", last)) }
        return rows
    }

    /// `268435456` → `256.0 MiB`.
    static func bytes(_ value: Any?) -> String {
        guard let n = (value as? NSNumber)?.doubleValue else { return "-" }
        if n < 1024 { return "\(Int64(n)) B" }
        if n < 1024 * 1024 { return String(format: "%.1f KiB", n / 1024) }
        if n < 1024 * 1024 * 1024 { return String(format: "%.1f MiB", n / 1024 / 1024) }
        return String(format: "%.2f GiB", n / 1024 / 1024 / 1024)
    }

    /// `rejects_per_label` → `Rejects per label`.
    static func humanKey(_ key: String) -> String {
        let words = key.split(separator: "_").map(String.init)
        guard let first = words.first else { return key }
        return ([first.prefix(1).uppercased() + first.dropFirst()] + words.dropFirst()).joined(separator: " ")
    }

    /// One line for nested values: `{"p50": 3.1, "p99": 9}` → `p50 3.10, p99 9`.
    static func compact(_ value: Any?) -> String {
        switch value {
        case let dict as [String: Any]:
            if dict.isEmpty { return "none" }
            return dict.keys.sorted().map { "\($0) \(compact(dict[$0]))" }.joined(separator: ", ")
        case let array as [Any]:
            if array.isEmpty { return "none" }
            return array.map { compact($0) }.joined(separator: "; ")
        default:
            return text(value)
        }
    }
}
