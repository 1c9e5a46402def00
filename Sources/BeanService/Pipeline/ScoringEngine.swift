import BeanCore
import BeanInspect
import BeanNet
import BeanStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The encoder and the store the pipeline scores with, or why it has none.
///
/// A missing or invalid model or store does not stop the daemon: `load` records the problem (naming
/// the file), the pipeline decides every bean by the fail-safe, and the next `load` (reload) tries
/// again. Thread ownership: `lock` guards `engine` and `problem`; an `Engine` is immutable once
/// published, and scorer threads keep a reference for one batch, so a reload never pulls a pool or
/// a store generation from under a running batch.
final class ScoringEngine: @unchecked Sendable {
    /// Encoder workers run at nice +2 against the camera threads' 0: under contention a vision
    /// thread gets about 1024 / (1024 + 2 × 655) of the two cores, enough to keep up with its
    /// frames, and the encoders take the rest (BENCHMARKS.md, issue 6).
    static let encoderWorkerNiceness: Int32 = 2

    struct Engine: Sendable {
        let model: EncoderModel
        let pool: EncoderPool
        let store: LiveStore
        let modelPath: String
        let modelFileID: FileIdentity?
        let encoderSection: EncoderSection
    }

    /// Device and inode plus modification time: a replaced model file is reloaded, an untouched one
    /// is kept.
    struct FileIdentity: Equatable, Sendable {
        let device: UInt64, inode: UInt64, modified: Int
        init?(path: String) {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            modified = Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
        }
    }

    private let lock = NSLock()
    private var engine: Engine?
    private var problem: String? = "not loaded yet"
    private let logger: Logger
    private let onStoreEvent: @Sendable (LiveStore.Event) -> Void

    init(logger: Logger, onStoreEvent: @escaping @Sendable (LiveStore.Event) -> Void) {
        self.logger = logger
        self.onStoreEvent = onStoreEvent
    }

    var current: (engine: Engine?, problem: String?) {
        lock.lock()
        defer { lock.unlock() }
        return (engine, problem)
    }

    /// Loads (or keeps) the model and opens (or reloads) the store. On failure the previous engine
    /// keeps serving if there is one; otherwise the pipeline stays on the fail-safe. Returns the
    /// problem, nil when scoring works.
    @discardableResult
    func load(encoder: EncoderSection, storePath: String) -> String? {
        let previous = current.engine
        do {
            let model: EncoderModel
            let pool: EncoderPool
            let fileID = FileIdentity(path: encoder.model)
            if let previous, previous.modelPath == encoder.model, previous.modelFileID == fileID, fileID != nil,
               previous.encoderSection == encoder {
                model = previous.model
                pool = previous.pool
            } else {
                do {
                    model = try EncoderModel.load(path: encoder.model)
                } catch {
                    throw ScoringError("encoder model \(encoder.model): \(error)")
                }
                let configuration = EncoderPoolConfiguration(
                    workers: encoder.workers, maxBatch: encoder.maxBatch,
                    // The scorers hand over whole batches (a frame's beans, or more after waiting
                    // max_wait_ms themselves), so the pool starts each at once.
                    maxWait: 0,
                    preprocessing: Preprocessing(mean: encoder.mean.map { Float($0) }, std: encoder.std.map { Float($0) }),
                    workerNiceness: Self.encoderWorkerNiceness)
                do {
                    pool = try EncoderPool(model: model, configuration: configuration)
                } catch {
                    throw ScoringError("encoder model \(encoder.model): \(error)")
                }
            }
            let store: LiveStore
            if let previous, previous.model === model, previous.store.directory == storePath {
                store = previous.store
                if case .refused(let error) = store.reload() {
                    logger.warning("store reload refused; the previous generation keeps serving", metadata: [
                        "store": "\(storePath)", "error": "\(error)",
                    ])
                }
            } else {
                let identity = EncoderIdentity(dimension: model.outputDim, fingerprint: model.fingerprint)
                do {
                    store = try LiveStore(directory: storePath, expecting: identity, onEvent: onStoreEvent)
                } catch {
                    throw ScoringError("store \(storePath): \(error)")
                }
                do {
                    try store.startWatching()
                } catch {
                    logger.warning("cannot watch the store directory; new generations need a reload", metadata: [
                        "store": "\(storePath)", "error": "\(error)",
                    ])
                }
            }
            let engine = Engine(model: model, pool: pool, store: store, modelPath: encoder.model, modelFileID: fileID,
                                encoderSection: encoder)
            lock.lock()
            self.engine = engine
            self.problem = nil
            lock.unlock()
            if let previous {
                if previous.store !== store { previous.store.stopWatching() }
                if previous.pool !== pool { previous.pool.shutdown() }
            }
            return nil
        } catch {
            let text = "\(error)"
            lock.lock()
            if engine == nil { problem = text }
            lock.unlock()
            return text
        }
    }

    func shutdown() {
        lock.lock()
        let engine = self.engine
        self.engine = nil
        problem = "stopped"
        lock.unlock()
        engine?.store.stopWatching()
        engine?.pool.shutdown()
    }
}

struct ScoringError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
