import CBLAS
import Foundation

/// A dense float tensor for training, row-major. Image tensors are NCHW with the batch first;
/// vectors are [N, D].
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor: shape \(shape) holds \(shape.reduce(1, *)) values, data has \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public var count: Int { data.count }
    /// Leading (batch) dimension.
    public var batch: Int { shape.first ?? 0 }
    /// Values per sample (everything after the batch dimension).
    public var sampleCount: Int { shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1 }
}

/// A trainable (or persistent, for `Layer.buffers`) array of floats with its gradient.
/// Layers own their parameters; the optimiser updates `value` in place from `grad`.
public final class Parameter {
    /// Role within its layer ("weight", "bias", "gamma", "running_mean", …); `Sequential` and
    /// `ResidualBlock` prefix it with their path when listing `namedParameters`.
    public let name: String
    public let shape: [Int]
    public var value: [Float]
    public var grad: [Float]

    public init(name: String, shape: [Int], value: [Float]) {
        precondition(shape.reduce(1, *) == value.count, "Parameter \(name): shape \(shape) does not match \(value.count) values")
        self.name = name
        self.shape = shape
        self.value = value
        self.grad = [Float](repeating: 0, count: value.count)
    }

    public var count: Int { value.count }

    public func zeroGrad() {
        grad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}

/// One differentiable stage of a network. Single-threaded: a layer caches what its backward pass
/// needs during `forward`, so forward/backward pairs must not interleave across threads.
public protocol Layer: AnyObject {
    /// Computes the output; with `training` true it caches what `backward` needs (and batch
    /// normalisation uses batch statistics and updates its running statistics).
    func forward(_ x: Tensor, training: Bool) -> Tensor
    /// Given dLoss/dOutput of the last `forward`, accumulates into parameter grads and returns
    /// dLoss/dInput.
    func backward(_ dy: Tensor) -> Tensor
    /// Trainable parameters, in a fixed order.
    var parameters: [Parameter] { get }
    /// Persistent non-trainable state (batch-norm running statistics), in a fixed order.
    var buffers: [Parameter] { get }
    /// Parameters and buffers with path-qualified names (e.g. "3.conv1.weight"), in a fixed order;
    /// checkpoints are keyed by these names.
    func namedState(prefix: String) -> [(String, Parameter)]
}

extension Layer {
    public var buffers: [Parameter] { [] }
    public func namedState(prefix: String) -> [(String, Parameter)] {
        (parameters + buffers).map { (prefix + $0.name, $0) }
    }
    public func zeroGrad() {
        for p in parameters { p.zeroGrad() }
    }
    /// Total number of trainable values.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
}

/// Sets the OpenBLAS thread count (the runtime's inference paths pin it to 1; training wants the
/// machine's cores).
public func setBLASThreads(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, n)))
}

/// Sets up the calling process for a training run: `blasThreads` OpenBLAS threads, and glibc's
/// allocator told to keep freed memory (no mmap/munmap per large buffer), since every training
/// step allocates and frees the same activation-sized arrays and would otherwise page-fault them
/// in anew each time.
public func prepareProcessForTraining(blasThreads: Int) {
    setBLASThreads(blasThreads)
    // mallopt is not in Swift's Glibc module; M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h).
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        _ = mallopt(-3, 1 << 30)
        _ = mallopt(-1, 1 << 30)
    }
}

/// Deterministic generator (SplitMix64): the whole state is one `UInt64`, so checkpoints can store
/// and restore it exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u = max(uniform(), 1e-7), v = uniform()
        return (-2 * logf(u)).squareRoot() * cosf(2 * .pi * v)
    }
}

/// Weight initialisers (fan-in = inputs feeding one output).
public enum Initializer {
    /// He/Kaiming normal for ReLU networks: N(0, 2 / fanIn).
    public static func he(count: Int, fanIn: Int, rng: inout SeededRandom) -> [Float] {
        let std = (2 / Float(max(fanIn, 1))).squareRoot()
        return (0..<count).map { _ in rng.normal() * std }
    }

    /// Xavier/Glorot uniform: U(±sqrt(6 / (fanIn + fanOut))).
    public static func xavier(count: Int, fanIn: Int, fanOut: Int, rng: inout SeededRandom) -> [Float] {
        let a = (6 / Float(max(fanIn + fanOut, 1))).squareRoot()
        return (0..<count).map { _ in (rng.uniform() * 2 - 1) * a }
    }
}
