import BeanCapture
import BeanCore
import Dispatch
import Foundation
import Synchronization

/// The spool's settings (`[spool]` in beand.toml(5)).
public struct SpoolSettings: Sendable, Equatable {
    public var enabled = true
    public var directory: String
    /// Cap on the total size of the JPEG files under `directory` (file sizes, not disk blocks).
    public var maxBytes: Int64 = 256 << 20
    /// Fraction of accepted beans kept (0 … 1); rejected and unknown beans are always kept.
    public var acceptedFraction = 0.01
    public var jpegQuality = 90
    /// Crops waiting for the writer; when full, new crops are dropped and counted.
    public var queueCapacity = 256

    public init(directory: String) { self.directory = directory }
}

/// What the spool reports in status (`spool` in the `status` result).
public struct SpoolFigures: Sendable, Equatable {
    public var enabled: Bool
    public var directory: String
    /// `starting` (directory not scanned yet), `ok`, `failing: <reason>`, or `disabled`.
    public var state: String
    /// JPEG files and their total size; nil until the first scan of the directory finished.
    public var files: Int?
    public var bytes: Int64?
    public var maxBytes: Int64
    public var acceptedFraction: Double
    public var written: UInt64
    /// Crops refused because the writer's queue was full, or abandoned at stop.
    public var dropped: UInt64
    /// Crops that could not be written (encoding, directory, write, rename failures).
    public var errors: UInt64
    /// Files deleted to stay under the cap.
    public var evicted: UInt64
    public var lastError: String?
    public var queue: QueueGauge
}

/// What the spool tells the daemon's log: once per state change, never once per crop.
public enum SpoolEvent: Sendable {
    /// The directory was scanned: what it holds, crash leftovers removed, files deleted to fit the cap.
    case scanned(files: Int, bytes: Int64, removedTemporaries: Int, evicted: Int)
    /// Writing failed after working (or for the first time, or for a new reason); later failures
    /// for the same reason are only counted.
    case failing(String)
    /// A crop was written again after `failures` failed attempts.
    case recovered(failures: UInt64)
}

/// The reject crop spool: JPEG crops of ejected and unknown beans and a sample of accepted ones,
/// under a size cap, oldest deleted first (layout: `SpoolName`).
///
/// Threads: the decision thread calls `offer` (sampling plus one push into a bounded drop-newest
/// queue: no encoding, no I/O, never a wait). The spool's own `beand-spool` thread owns the ledger
/// and the directory: it scans the directory (first, and again when files were moved away by a
/// reviewer), encodes, evicts, writes and renames. A slow or failing disk only fills the queue; the
/// decisions never wait for it. The thread does not beat the watchdog: a hung disk stops the spool,
/// not the inspection.
public final class CropSpool: @unchecked Sendable {
    struct Item: Sendable {
        var name: SpoolName
        var crop: BeanCrop
    }

    private let directory: String
    private let queue: BoundedQueue<Item>
    private let settings: Mutex<SpoolSettings>
    private let sampler: Mutex<SpoolSampler>
    private let enabled: Atomic<Bool>
    private let events: @Sendable (SpoolEvent) -> Void
    private let published: Mutex<(state: String, files: Int?, bytes: Int64?, lastError: String?)>
    private let written = Atomic<UInt64>(0)
    private let refused = Atomic<UInt64>(0)
    private let errors = Atomic<UInt64>(0)
    private let evicted = Atomic<UInt64>(0)
    private let abandon = Atomic<Bool>(false)
    private let done = DispatchGroup()
    private var thread: Thread?

    // Writer thread only.
    private var ledger: SpoolLedger?
    private var failure: (reason: String, count: UInt64)?
    private var createdDirectories: Set<String> = []
    private var rescanDue = false
    private var lastScan = MonotonicInstant.now()

    /// Rescans pick up files reviewers moved within the spool (so the cap counts them).
    static let rescanInterval: Double = 600

    /// `directory` and `queueCapacity` are fixed for the spool's life; the rest may change with `update`.
    public init(settings: SpoolSettings, events: @escaping @Sendable (SpoolEvent) -> Void) {
        directory = settings.directory
        queue = BoundedQueue(name: "spool", capacity: max(1, settings.queueCapacity), policy: .dropNewest)
        self.settings = Mutex(settings)
        sampler = Mutex(SpoolSampler(acceptedFraction: settings.acceptedFraction))
        enabled = Atomic(settings.enabled)
        self.events = events
        published = Mutex((settings.enabled ? "starting" : "disabled", nil, nil, nil))
    }

    public func start() {
        done.enter()
        let thread = Thread { [self] in
            CurrentThread.setName("spool")
            // Review crops are best effort (a full queue drops crops, never decisions): under
            // contention the spool's file work must not take CPU from segmentation and scoring.
            CurrentThread.setPriority(relativeToProcess: 10)
            writerLoop()
            done.leave()
        }
        thread.name = "beand-spool"
        self.thread = thread
        thread.start()
    }

    // MARK: Decision thread

    /// Considers one decided bean: returns the relative path its crop will have when it is kept
    /// and queued, nil when it is not sampled, the spool is disabled or the queue is full (counted).
    @discardableResult
    public func offer(_ record: BeanRecord, crop: BeanCrop, unixMicroseconds: UInt64) -> SpoolName? {
        guard enabled.load(ordering: .relaxed), let verdict = record.verdict else { return nil }
        guard sampler.withLock({ $0.shouldKeep(verdict: verdict, ejected: record.eject) }) else { return nil }
        let name = SpoolName(verdict: verdict, label: record.label, camera: record.camera, beanID: record.id,
                             score: record.score, unixMicroseconds: unixMicroseconds)
        guard queue.push(Item(name: name, crop: crop)).isEnqueued else {
            refused.add(1, ordering: .relaxed)
            return nil
        }
        return name
    }

    // MARK: Control

    /// Applies reloadable settings: `enabled`, `maxBytes` (a lower cap is enforced at once),
    /// `acceptedFraction` (the sampler restarts its count), `jpegQuality`. `directory` and
    /// `queueCapacity` keep their start-up values.
    public func update(_ new: SpoolSettings) {
        let previous = settings.withLock { current -> SpoolSettings in
            let old = current
            current.enabled = new.enabled
            current.maxBytes = new.maxBytes
            current.acceptedFraction = new.acceptedFraction
            current.jpegQuality = new.jpegQuality
            return old
        }
        if previous.acceptedFraction != new.acceptedFraction {
            sampler.withLock { $0 = SpoolSampler(acceptedFraction: new.acceptedFraction) }
        }
        enabled.store(new.enabled, ordering: .relaxed)
        published.withLock { state in
            if !new.enabled { state.state = "disabled" } else if state.state == "disabled" { state.state = "starting" }
        }
    }

    /// Stops taking crops, writes what is queued until `deadline`, then stops; crops still queued
    /// then are counted as dropped.
    public func stop(until deadline: DispatchTime) {
        queue.close()
        guard thread != nil else { return }
        if done.wait(timeout: deadline) == .timedOut {
            abandon.store(true, ordering: .releasing)
            _ = done.wait(timeout: .now() + .seconds(1))
        }
    }

    public func figures() -> SpoolFigures {
        let settings = self.settings.withLock { $0 }
        let gauge = queue.gauge()
        let state = published.withLock { $0 }
        return SpoolFigures(
            enabled: settings.enabled, directory: directory, state: state.state, files: state.files, bytes: state.bytes,
            maxBytes: settings.maxBytes, acceptedFraction: settings.acceptedFraction,
            written: written.load(ordering: .relaxed), dropped: refused.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed), evicted: evicted.load(ordering: .relaxed),
            lastError: state.lastError, queue: gauge)
    }

    // MARK: Writer thread

    /// Crops written per batch: their flushes share journal commits (see `SpoolFiles.PendingFile`).
    static let batchSize = 32

    private func writerLoop() {
        var batch: [Item] = []
        batch.reserveCapacity(Self.batchSize)
        while true {
            if abandon.load(ordering: .acquiring) {
                var left: UInt64 = 0
                while queue.tryPop() != nil { left += 1 }
                refused.add(left, ordering: .relaxed)
                return
            }
            let settings = self.settings.withLock { $0 }
            batch.removeAll(keepingCapacity: true)
            guard queue.popBatch(maxCount: Self.batchSize, timeoutMilliseconds: 250, into: &batch) > 0 else {
                if queue.closed && queue.depth == 0 { return }
                if settings.enabled { maintain(settings: settings, idle: true) }
                continue
            }
            maintain(settings: settings, idle: false)
            write(batch, settings: settings)
        }
    }

    /// Scans when due, and enforces a cap lowered by a reload.
    private func maintain(settings: SpoolSettings, idle: Bool) {
        let now = MonotonicInstant.now()
        if ledger == nil || (idle && rescanDue) || now.seconds(since: lastScan) >= Self.rescanInterval {
            rescan(settings: settings)
        }
        if idle, var current = ledger, current.totalBytes > settings.maxBytes {
            let victims = current.evictions(toFit: 0, under: settings.maxBytes)
            ledger = current
            delete(victims)
            publishLedger()
        }
    }

    private func rescan(settings: SpoolSettings) {
        lastScan = MonotonicInstant.now()
        rescanDue = false
        let scan: SpoolFiles.Scan
        do {
            scan = try SpoolFiles.scan(directory)
        } catch {
            ledger = nil
            // Counted in `errors` by the crops that cannot be written meanwhile, not per attempt.
            noteFailure("scan: \(error)", lostCrop: false)
            return
        }
        let first = ledger == nil
        var fresh = SpoolLedger(scanned: scan.files)
        let victims = fresh.evictions(toFit: 0, under: settings.maxBytes)
        ledger = fresh
        delete(victims)
        if first { events(.scanned(files: fresh.fileCount, bytes: fresh.totalBytes, removedTemporaries: scan.removedTemporaries, evicted: victims.count)) }
        publishLedger()
    }

    /// Encodes and writes a batch: every file is written under its temporary name (counted in the
    /// ledger at once, so the cap holds for temporaries too), then each is flushed and renamed.
    private func write(_ batch: [Item], settings: SpoolSettings) {
        guard ledger != nil else {
            // The scan failed (noted); without a ledger the cap cannot be kept, so nothing is written.
            errors.add(UInt64(batch.count), ordering: .relaxed)
            rescanDue = true
            return
        }
        var pending: [(item: Item, file: SpoolFiles.PendingFile)] = []
        pending.reserveCapacity(batch.count)
        for item in batch {
            if let file = startWriting(item, settings: settings) { pending.append((item, file)) }
        }
        var wroteAny = false
        for (item, var file) in pending {
            do {
                try file.commit()
                written.add(1, ordering: .relaxed)
                wroteAny = true
            } catch {
                ledger?.remove(path: item.name.relativePath)
                noteFailure("\(error)")
            }
        }
        if wroteAny, let failure {
            self.failure = nil
            events(.recovered(failures: failure.count))
        }
        publishLedger()
    }

    private func startWriting(_ item: Item, settings: SpoolSettings) -> SpoolFiles.PendingFile? {
        let crop = item.crop
        let frame = Frame(camera: crop.camera, sequence: crop.frameSequence, captured: crop.captured, width: crop.width,
                          height: crop.height, format: .rgb24, pixels: crop.pixels)
        let bytes: [UInt8]
        do {
            bytes = try ImageCodec.encodeJPEG(frame, quality: settings.jpegQuality, name: item.name.relativePath)
        } catch {
            noteFailure("encode: \(error)")
            return nil
        }
        guard Int64(bytes.count) <= settings.maxBytes, var current = ledger else {
            noteFailure("\(item.name.relativePath): \(bytes.count) bytes is more than the cap (\(settings.maxBytes) bytes)")
            return nil
        }
        let victims = current.evictions(toFit: Int64(bytes.count), under: settings.maxBytes)
        ledger = current
        delete(victims)
        let folder = directory + "/" + item.name.relativeDirectory
        let file: SpoolFiles.PendingFile
        do {
            if !createdDirectories.contains(folder) {
                try SpoolFiles.makeDirectories(folder)
                createdDirectories.insert(folder)
            }
            do {
                file = try SpoolFiles.PendingFile(bytes, directory: folder, fileName: item.name.fileName)
            } catch where error.code == ENOENT {
                // A reviewer removed the folder since it was created: create it again, once.
                try SpoolFiles.makeDirectories(folder)
                file = try SpoolFiles.PendingFile(bytes, directory: folder, fileName: item.name.fileName)
            }
        } catch {
            createdDirectories.remove(folder)
            noteFailure("\(error)")
            return nil
        }
        ledger?.add(SpoolLedger.Entry(path: item.name.relativePath, bytes: Int64(bytes.count),
                                      modified: Int64(RejectEvent.wallClockNow()) * 1000))
        return file
    }

    private func delete(_ victims: [SpoolLedger.Entry]) {
        for victim in victims {
            do {
                if try SpoolFiles.remove(directory + "/" + victim.path) {
                    evicted.add(1, ordering: .relaxed)
                } else {
                    // Moved away (by a reviewer, perhaps into another folder of the spool): recount.
                    rescanDue = true
                }
            } catch {
                // Not deleted, but no longer counted: the next scan finds it again.
                rescanDue = true
                noteFailure("evict: \(error)", lostCrop: false)
            }
        }
    }

    private func noteFailure(_ reason: String, lostCrop: Bool = true) {
        if lostCrop { errors.add(1, ordering: .relaxed) }
        // The errno text, without the file name, decides whether this is a new state worth a log line.
        let kind = Self.failureKind(reason)
        if let current = failure, Self.failureKind(current.reason) == kind {
            failure = (current.reason, current.count + 1)
        } else {
            failure = (reason, 1)
            events(.failing(reason))
        }
        published.withLock { $0.lastError = reason; $0.state = "failing: \(reason)" }
    }

    static func failureKind(_ reason: String) -> String {
        // "PATH: operation: strerror (errno N)" → "operation: strerror (errno N)".
        let parts = reason.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count >= 3 ? parts.suffix(2).joined(separator: ":") : reason
    }

    private func publishLedger() {
        let enabled = self.enabled.load(ordering: .relaxed)
        let figures = ledger.map { ($0.fileCount, $0.totalBytes) }
        let failing = failure != nil
        published.withLock { state in
            state.files = figures?.0
            state.bytes = figures?.1
            if !enabled { state.state = "disabled" } else if !failing && figures != nil { state.state = "ok" }
        }
    }
}
