import BeanInspect
import Dispatch
import Synchronization

/// Keeps reject-stream sequence numbers increasing across daemon restarts and crashes.
///
/// The file `<state_dir>/rejects.seq` holds a *reservation*: a number no issued sequence number
/// exceeds. At start the daemon issues from `reserved + 1` and immediately persists
/// `reserved + blockSize`. While it runs, once the issued numbers come within half a block of the
/// reservation, a background queue persists the next block (atomic write with fsync), so the
/// publishing thread never waits for the disk. A crash therefore skips at most one block of
/// numbers and never reuses one; a clean stop writes the exact last number, so nothing is skipped.
/// The wall clock is not involved (it can step backwards).
///
/// The only way to go backwards is a state directory that loses a write it acknowledged, or a
/// crash after more than half a block of numbers was issued while the reservation write was
/// failing; `issuedBeyondReservation` counts numbers issued without a durable reservation.
public final class RejectSequenceFile: @unchecked Sendable {
    public static let fileName = "rejects.seq"
    public static let formatVersion = 1

    public let path: String
    public let blockSize: UInt64
    /// The first sequence number this run issues.
    public let firstSequence: UInt64

    private struct State {
        var requested: UInt64
        var durable: UInt64
        var issuedBeyondReservation: UInt64 = 0
        var writeErrors: UInt64 = 0
        var lastError: BeanInspect.StateFileError?
        var finished = false
    }

    private let state: Mutex<State>
    private let writer = DispatchQueue(label: "beand.rejects.sequence")

    /// Reads the reservation (a missing file is a fresh start: first number 1) and persists the
    /// first block before returning, so a failing state directory stops the daemon at start.
    public init(stateDirectory: String, blockSize: UInt64 = 65_536) throws(BeanInspect.StateFileError) {
        let path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
        self.path = path
        self.blockSize = max(blockSize, 2)
        let reserved = try BeanInspect.AtomicFile.read(path).map { text throws(BeanInspect.StateFileError) in
            try Self.parse(text, path: path)
        } ?? 0
        guard reserved <= Self.maximum - self.blockSize else {
            throw BeanInspect.StateFileError(path: path, reason: "reservation \(reserved) is too close to the largest sequence number \(Self.maximum)")
        }
        firstSequence = reserved + 1
        let initial = reserved + self.blockSize
        try BeanInspect.AtomicFile.write(Self.render(initial), to: path)
        state = Mutex(State(requested: initial, durable: initial))
    }

    /// Sequence numbers stay below 2^53 so that every JSON reader (JavaScript, jq) holds them exactly.
    public static let maximum: UInt64 = 1 << 53

    /// Notes that `sequence` was issued. Called on the publishing path: never touches the disk
    /// itself; schedules the next reservation when the current one runs low.
    public func issued(_ sequence: UInt64) {
        let target: UInt64? = state.withLock { state in
            if sequence > state.durable { state.issuedBeyondReservation += 1 }
            guard !state.finished, sequence + blockSize / 2 > state.requested else { return nil }
            state.requested = sequence + blockSize
            return state.requested
        }
        guard let target else { return }
        writer.async { self.persist(target) }
    }

    /// After the last publish: records the exact last issued number so that the next run continues
    /// right after it. Waits for pending reservation writes.
    public func finish(lastIssued: UInt64) {
        writer.sync {
            let last = max(lastIssued, firstSequence - 1)
            state.withLock { $0.finished = true }
            persist(last, force: true)
        }
    }

    public struct Status: Sendable, Hashable {
        public var durableReservation: UInt64
        public var issuedBeyondReservation: UInt64
        public var writeErrors: UInt64
        public var lastError: BeanInspect.StateFileError?
    }

    public var status: Status {
        state.withLock {
            Status(durableReservation: $0.durable, issuedBeyondReservation: $0.issuedBeyondReservation,
                   writeErrors: $0.writeErrors, lastError: $0.lastError)
        }
    }

    // Writer queue only.
    private func persist(_ value: UInt64, force: Bool = false) {
        let current = state.withLock { $0.durable }
        guard force || value > current else { return }
        do {
            try BeanInspect.AtomicFile.write(Self.render(value), to: path)
            state.withLock { $0.durable = value }
        } catch {
            state.withLock {
                $0.writeErrors += 1
                $0.lastError = error
                // Ask again on the next issued number rather than never.
                if !force { $0.requested = $0.durable }
            }
        }
    }

    static func render(_ reserved: UInt64) -> String {
        "# beand reject-stream sequence reservation; see beand-rejects(7)\nversion = \(formatVersion)\nreserved = \(reserved)\n"
    }

    static func parse(_ text: String, path: String) throws(BeanInspect.StateFileError) -> UInt64 {
        var version: Int?
        var reserved: UInt64?
        var lineNumber = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let line = raw.trimmedSpace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmedSpace() }
            guard parts.count == 2 else {
                throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "expected KEY = VALUE, got '\(line)'")
            }
            switch parts[0] {
            case "version":
                guard version == nil else { throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "duplicate key 'version'") }
                guard let number = Int(parts[1]), number == formatVersion else {
                    throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "unsupported version '\(parts[1])' (this beand reads \(formatVersion))")
                }
                version = number
            case "reserved":
                guard reserved == nil else { throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "duplicate key 'reserved'") }
                guard let number = UInt64(parts[1]) else {
                    throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "reserved must be a non-negative integer, got '\(parts[1])'")
                }
                reserved = number
            default:
                throw BeanInspect.StateFileError(path: path, line: lineNumber, reason: "unknown key '\(parts[0])'")
            }
        }
        guard version != nil else { throw BeanInspect.StateFileError(path: path, reason: "missing 'version = \(formatVersion)' (empty or truncated file?)") }
        guard let reserved else { throw BeanInspect.StateFileError(path: path, reason: "missing key 'reserved'") }
        return reserved
    }
}

extension StringProtocol {
    fileprivate func trimmedSpace() -> String {
        let set = " \t"
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) || first == "\r" { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) || last == "\r" { slice = slice.dropLast() }
        return String(slice)
    }
}
