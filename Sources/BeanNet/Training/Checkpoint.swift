import Foundation

/// Why a checkpoint cannot be written, read or applied; always names the file.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "checkpoint \(path): \(message)" }
}

/// A resumable training state: every parameter and buffer of a network (by path-qualified name),
/// the optimiser with its moments, the epoch, the generator state and free-form metadata.
///
/// File layout (little-endian): "BEANCKPT", UInt32 version, UInt32 header length, JSON header,
/// the float payload in header order, then an FNV-1a 64 checksum of everything before it.
public struct Checkpoint: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
    }

    public var epoch: Int
    public var random: SeededRandom
    public var optimiser: Adam
    public var metadata: [String: String]
    /// Network parameters and buffers, in `namedState` order.
    public var state: [Entry]

    static let magic = Array("BEANCKPT".utf8)
    static let version: UInt32 = 1

    public init(network: Layer, optimiser: Adam, epoch: Int, random: SeededRandom, metadata: [String: String] = [:]) {
        self.epoch = epoch
        self.random = random
        self.optimiser = optimiser
        self.metadata = metadata
        self.state = network.namedState(prefix: "").map { Entry(name: $0.0, shape: $0.1.shape, values: $0.1.value) }
    }

    /// Captures and writes atomically (temporary file, fsync, rename).
    public static func save(network: Layer, optimiser: Adam, epoch: Int, random: SeededRandom,
                            metadata: [String: String] = [:], to path: String) throws {
        try Checkpoint(network: network, optimiser: optimiser, epoch: epoch, random: random, metadata: metadata).write(to: path)
    }

    /// Copies the stored values into `network`, which must have the same names and shapes in the
    /// same order (i.e. be built by the same code with the same configuration). The optimiser's
    /// moments must match `network.parameters` (the list it was stepped with); nothing is changed
    /// when any check fails.
    public func restore(into network: Layer, path: String = "<memory>") throws {
        let target = network.namedState(prefix: "")
        guard target.count == state.count else {
            throw CheckpointError(path: path, "holds \(state.count) tensors, the network has \(target.count)")
        }
        for (entry, (name, p)) in zip(state, target) {
            guard entry.name == name, entry.shape == p.shape else {
                throw CheckpointError(path: path, "tensor '\(entry.name)' \(entry.shape) does not match the network's '\(name)' \(p.shape)")
            }
        }
        if !optimiser.m.isEmpty {
            let sizes = network.parameters.map(\.count)
            guard optimiser.m.map(\.count) == sizes else {
                throw CheckpointError(path: path, "optimiser state covers \(optimiser.m.count) tensors, the network has \(sizes.count) trainable ones")
            }
        }
        for (entry, (_, p)) in zip(state, target) { p.value = entry.values }
    }

    // MARK: encoding

    struct Header: Codable {
        struct Tensor: Codable { var name: String; var shape: [Int] }
        struct Optimiser: Codable {
            var learningRate, beta1, beta2, epsilon, weightDecay: Float
            var steps: Int
            var moments: [Int]
        }
        var epoch: Int
        var randomState: String
        var metadata: [String: String]
        var tensors: [Tensor]
        var optimiser: Optimiser
    }

    public func write(to path: String) throws {
        let header = Header(epoch: epoch, randomState: String(random.state), metadata: metadata,
                            tensors: state.map { .init(name: $0.name, shape: $0.shape) },
                            optimiser: .init(learningRate: optimiser.learningRate, beta1: optimiser.beta1, beta2: optimiser.beta2,
                                             epsilon: optimiser.epsilon, weightDecay: optimiser.weightDecay,
                                             steps: optimiser.steps, moments: optimiser.m.map(\.count)))
        let json: Data
        do { json = try JSONEncoder().encode(header) } catch {
            throw CheckpointError(path: path, "cannot encode header: \(error)")
        }
        var out = Data()
        out.append(contentsOf: Checkpoint.magic)
        Checkpoint.append(&out, Checkpoint.version)
        Checkpoint.append(&out, UInt32(json.count))
        out.append(json)
        for e in state { e.values.withUnsafeBytes { out.append(contentsOf: $0) } }
        for a in optimiser.m { a.withUnsafeBytes { out.append(contentsOf: $0) } }
        for a in optimiser.v { a.withUnsafeBytes { out.append(contentsOf: $0) } }
        let sum = Checkpoint.fnv1a(out)
        withUnsafeBytes(of: sum.littleEndian) { out.append(contentsOf: $0) }
        try Checkpoint.atomicWrite(out, to: path)
    }

    public static func read(from path: String) throws -> Checkpoint {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CheckpointError(path: path, "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, path: path)
    }

    static func decode(_ data: Data, path: String) throws -> Checkpoint {
        let bytes = [UInt8](data)
        guard bytes.count >= 16 + 8, Array(bytes[0..<8]) == magic else {
            throw CheckpointError(path: path, bytes.count < 24 ? "truncated (\(bytes.count) bytes)" : "not a beand checkpoint (bad magic)")
        }
        let stored = readU64(bytes, bytes.count - 8)
        guard fnv1a(Data(bytes[0..<(bytes.count - 8)])) == stored else {
            throw CheckpointError(path: path, "checksum mismatch: the file is truncated or corrupt")
        }
        let version = readU32(bytes, 8)
        guard version == Checkpoint.version else { throw CheckpointError(path: path, "unsupported version \(version)") }
        let headerLength = Int(readU32(bytes, 12))
        guard 16 + headerLength <= bytes.count - 8 else { throw CheckpointError(path: path, "header length \(headerLength) runs past the end") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[16..<(16 + headerLength)])) } catch {
            throw CheckpointError(path: path, "unreadable header: \(error)")
        }
        guard let rngState = UInt64(header.randomState) else { throw CheckpointError(path: path, "bad random state '\(header.randomState)'") }
        var offset = 16 + headerLength
        let end = bytes.count - 8
        func floats(_ count: Int, _ what: String) throws -> [Float] {
            guard count >= 0, offset + count * 4 <= end else {
                throw CheckpointError(path: path, "payload for \(what) (\(count) values) runs past the end")
            }
            var v = [Float](repeating: 0, count: count)
            v.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + count * 4)])) }
            }
            offset += count * 4
            return v
        }
        var state: [Entry] = []
        for t in header.tensors {
            var count = 1
            for d in t.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow, product <= end / 4 else { throw CheckpointError(path: path, "tensor '\(t.name)' has impossible shape \(t.shape)") }
                count = product
            }
            state.append(Entry(name: t.name, shape: t.shape, values: try floats(count, "'\(t.name)'")))
        }
        let o = header.optimiser
        var adam = Adam(learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay)
        adam.steps = o.steps
        adam.m = try o.moments.enumerated().map { try floats($0.element, "Adam m[\($0.offset)]") }
        adam.v = try o.moments.enumerated().map { try floats($0.element, "Adam v[\($0.offset)]") }
        guard offset == end else { throw CheckpointError(path: path, "\(end - offset) unexpected bytes after the payload") }
        var c = Checkpoint(epoch: header.epoch, random: SeededRandom(seed: rngState), optimiser: adam, metadata: header.metadata, state: state)
        c.random.state = rngState
        return c
    }

    init(epoch: Int, random: SeededRandom, optimiser: Adam, metadata: [String: String], state: [Entry]) {
        self.epoch = epoch; self.random = random; self.optimiser = optimiser; self.metadata = metadata; self.state = state
    }

    // MARK: helpers

    static func append(_ d: inout Data, _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    static func readU32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    static func readU64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }

    static func fnv1a(_ d: Data) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        d.withUnsafeBytes { p in for byte in p { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 } }
        return h
    }

    /// Temporary file in the same directory, fsync, rename over `path`, fsync the directory: a
    /// crash leaves either the old or the new checkpoint, never a torn one.
    static func atomicWrite(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError(path: path, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = true
        data.withUnsafeBytes { p in
            var done = 0
            while done < p.count, let base = p.baseAddress {
                let n = Foundation.write(fd, base + done, p.count - done)
                if n <= 0 { if errno == EINTR { continue }; ok = false; break }
                done += n
            }
        }
        let err = errno
        if !ok || fsync(fd) != 0 {
            close(fd); unlink(tmp)
            throw CheckpointError(path: path, "cannot write \(tmp): \(String(cString: strerror(ok ? errno : err)))")
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno; unlink(tmp)
            throw CheckpointError(path: path, "cannot rename \(tmp) into place: \(String(cString: strerror(e)))")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
