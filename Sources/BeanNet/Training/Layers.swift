import Foundation

// MARK: normalisation

/// Batch normalisation over the channels of an NCHW tensor: batch statistics (biased variance) in
/// training, running statistics otherwise; running statistics follow PyTorch's convention
/// (momentum 0.1, unbiased batch variance).
public final class BatchNorm2d: Layer {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let gamma: Parameter, beta: Parameter
    public let runningMean: Parameter, runningVar: Parameter
    /// When true, training forwards normalise with the running statistics and leave them
    /// unchanged (the layer acts as a fixed affine map whose gamma and beta still learn): the
    /// usual way to fine-tune a pre-trained backbone on small labelled batches.
    public var freezeStatistics = false
    private var xhat: [Float] = []
    private var invStd: [Float] = []
    private var cachedShape: [Int] = []
    private var cachedTraining = false
    private var cachedFrozen = false

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        precondition(channels > 0, "BatchNorm2d: channels must be positive")
        self.channels = channels; self.epsilon = epsilon; self.momentum = momentum
        gamma = Parameter(name: "gamma", shape: [channels], value: [Float](repeating: 1, count: channels))
        beta = Parameter(name: "beta", shape: [channels], value: [Float](repeating: 0, count: channels))
        runningMean = Parameter(name: "running_mean", shape: [channels], value: [Float](repeating: 0, count: channels))
        runningVar = Parameter(name: "running_var", shape: [channels], value: [Float](repeating: 1, count: channels))
    }

    public var parameters: [Parameter] { [gamma, beta] }
    public var buffers: [Parameter] { [runningMean, runningVar] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count >= 2 && x.shape[1] == channels, "BatchNorm2d(\(channels)): input shape \(x.shape)")
        let n = x.shape[0], plane = x.shape.count > 2 ? x.shape[2...].reduce(1, *) : 1
        let m = n * plane
        var y = [Float](repeating: 0, count: x.count)
        var xh = [Float](repeating: 0, count: training ? x.count : 0)
        var inv = [Float](repeating: 0, count: channels)
        x.data.withUnsafeBufferPointer { xp in
            for c in 0..<channels {
                var mean: Float, variance: Float
                if training && !freezeStatistics {
                    var s = 0.0, ss = 0.0
                    for b in 0..<n {
                        let off = (b * channels + c) * plane
                        var ls: Float = 0
                        for i in 0..<plane { ls += xp[off + i] }
                        s += Double(ls)
                    }
                    let mu = s / Double(m), muF = Float(mu)
                    for b in 0..<n {
                        let off = (b * channels + c) * plane
                        var lss: Float = 0
                        for i in 0..<plane { let d = xp[off + i] - muF; lss += d * d }
                        ss += Double(lss)
                    }
                    mean = Float(mu)
                    variance = Float(ss / Double(m))
                    let unbiased = m > 1 ? Float(ss / Double(m - 1)) : variance
                    runningMean.value[c] = (1 - momentum) * runningMean.value[c] + momentum * mean
                    runningVar.value[c] = (1 - momentum) * runningVar.value[c] + momentum * unbiased
                } else {
                    mean = runningMean.value[c]
                    variance = runningVar.value[c]
                }
                let istd = 1 / (variance + epsilon).squareRoot()
                inv[c] = istd
                if training {
                    TrainKernels.normalizeChannel(xp.baseAddress, &y, &xh, batch: n, channels: channels, plane: plane,
                                                  channel: c, mean: mean, invStd: istd, gamma: gamma.value[c], beta: beta.value[c])
                } else {
                    TrainKernels.normalizeChannel(xp.baseAddress, &y, nil, batch: n, channels: channels, plane: plane,
                                                  channel: c, mean: mean, invStd: istd, gamma: gamma.value[c], beta: beta.value[c])
                }
            }
        }
        if training {
            xhat = xh; invStd = inv; cachedShape = x.shape; cachedTraining = true
            cachedFrozen = freezeStatistics
        }
        return Tensor(shape: x.shape, data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(cachedTraining && dy.shape == cachedShape, "BatchNorm2d.backward: gradient shape \(dy.shape), cached forward \(cachedShape)")
        let n = dy.shape[0], plane = dy.shape.count > 2 ? dy.shape[2...].reduce(1, *) : 1
        let m = n * plane
        var dx = [Float](repeating: 0, count: dy.count)
        for c in 0..<channels {
            let (sumDy, sumDyXh) = TrainKernels.channelSums(dy.data, xhat, batch: n, channels: channels, plane: plane, channel: c)
            gamma.grad[c] += sumDyXh
            beta.grad[c] += sumDy
            if cachedFrozen {
                // Fixed statistics: the normalisation is affine in x.
                TrainKernels.batchNormBackwardChannel(dy.data, xhat, &dx, batch: n, channels: channels, plane: plane, channel: c,
                                                      scale: gamma.value[c] * invStd[c], sumDy: 0, sumDyXhat: 0, count: 0)
            } else {
                TrainKernels.batchNormBackwardChannel(dy.data, xhat, &dx, batch: n, channels: channels, plane: plane, channel: c,
                                                      scale: gamma.value[c] * invStd[c], sumDy: sumDy, sumDyXhat: sumDyXh, count: m)
            }
        }
        return Tensor(shape: dy.shape, data: dx)
    }
}

/// Scales each row of [N, D] to unit L2 norm (norms below 1e-12 are clamped).
public final class L2Normalize: Layer {
    private var output: Tensor?
    private var norms: [Float] = []
    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 2, "L2Normalize: input shape \(x.shape), expected [N, D]")
        let (n, d) = (x.shape[0], x.shape[1])
        var y = x.data
        var ns = [Float](repeating: 0, count: n)
        for s in 0..<n {
            var ss: Float = 0
            for i in 0..<d { ss += x.data[s * d + i] * x.data[s * d + i] }
            let norm = max(ss.squareRoot(), 1e-12)
            ns[s] = norm
            for i in 0..<d { y[s * d + i] /= norm }
        }
        let out = Tensor(shape: x.shape, data: y)
        if training { output = out; norms = ns }
        return out
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output, dy.shape == y.shape else { preconditionFailure("L2Normalize.backward: no matching training forward for \(dy.shape)") }
        let (n, d) = (y.shape[0], y.shape[1])
        var dx = [Float](repeating: 0, count: dy.count)
        for s in 0..<n {
            var dot: Float = 0
            for i in 0..<d { dot += y.data[s * d + i] * dy.data[s * d + i] }
            for i in 0..<d { dx[s * d + i] = (dy.data[s * d + i] - y.data[s * d + i] * dot) / norms[s] }
        }
        return Tensor(shape: dy.shape, data: dx)
    }
}

// MARK: activations

/// max(x, 0).
public final class ReLU: Layer {
    private var output: Tensor?
    public init() {}
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = x
        y.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = max(p[i], 0) } }
        if training { output = y }
        return y
    }
    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output, y.shape == dy.shape else { preconditionFailure("ReLU.backward: no matching training forward for \(dy.shape)") }
        var dx = dy
        dx.data.withUnsafeMutableBufferPointer { g in
            y.data.withUnsafeBufferPointer { o in for i in g.indices where o[i] <= 0 { g[i] = 0 } }
        }
        return dx
    }
}

/// x for x ≥ 0, slope·x otherwise.
public final class LeakyReLU: Layer {
    public let slope: Float
    private var input: Tensor?
    public init(slope: Float = 0.01) { self.slope = slope }
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = x
        let a = slope
        y.data.withUnsafeMutableBufferPointer { p in for i in p.indices { let v = p[i]; p[i] = v >= 0 ? v : v * a } }
        if training { input = x }
        return y
    }
    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input, x.shape == dy.shape else { preconditionFailure("LeakyReLU.backward: no matching training forward for \(dy.shape)") }
        var dx = dy
        let a = slope
        dx.data.withUnsafeMutableBufferPointer { g in
            x.data.withUnsafeBufferPointer { xi in for i in g.indices where xi[i] < 0 { g[i] *= a } }
        }
        return dx
    }
}

/// 1 / (1 + e^−x).
public final class Sigmoid: Layer {
    private var output: Tensor?
    public init() {}
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var y = x
        y.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = 1 / (1 + expf(-p[i])) } }
        if training { output = y }
        return y
    }
    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output, y.shape == dy.shape else { preconditionFailure("Sigmoid.backward: no matching training forward for \(dy.shape)") }
        var dx = dy
        dx.data.withUnsafeMutableBufferPointer { g in
            y.data.withUnsafeBufferPointer { o in for i in g.indices { g[i] *= o[i] * (1 - o[i]) } }
        }
        return dx
    }
}

// MARK: pooling and resampling

/// Max pooling with a square window; padding counts as −∞ (ONNX MaxPool, floor mode).
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []
    public init(kernel: Int, stride: Int, padding: Int = 0) {
        precondition(kernel > 0 && stride > 0 && padding >= 0 && padding < kernel, "MaxPool2d: invalid window k \(kernel) s \(stride) p \(padding)")
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "MaxPool2d: input shape \(x.shape), expected NCHW")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
        precondition(ho > 0 && wo > 0, "MaxPool2d: window \(kernel) larger than input \(h)×\(w)")
        var y = [Float](repeating: 0, count: n * c * ho * wo)
        var arg = [Int32](repeating: 0, count: y.count)
        for p in 0..<(n * c) {
            let base = p * h * w
            for oh in 0..<ho {
                for ow in 0..<wo {
                    var best = -Float.infinity, at = -1
                    for i in 0..<kernel {
                        let ih = oh * stride - padding + i
                        if ih < 0 || ih >= h { continue }
                        for j in 0..<kernel {
                            let iw = ow * stride - padding + j
                            if iw < 0 || iw >= w { continue }
                            let v = x.data[base + ih * w + iw]
                            if at < 0 || v > best { best = v; at = base + ih * w + iw }
                        }
                    }
                    let o = (p * ho + oh) * wo + ow
                    y[o] = best
                    arg[o] = Int32(at)
                }
            }
        }
        if training { argmax = arg; inputShape = x.shape }
        return Tensor(shape: [n, c, ho, wo], data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == argmax.count && !inputShape.isEmpty, "MaxPool2d.backward: gradient shape \(dy.shape) does not match the training forward")
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        for o in 0..<dy.count { dx[Int(argmax[o])] += dy.data[o] }
        return Tensor(shape: inputShape, data: dx)
    }
}

/// Average pooling with a square window, no padding.
public final class AvgPool2d: Layer {
    public let kernel: Int, stride: Int
    private var inputShape: [Int] = []
    public init(kernel: Int, stride: Int) {
        precondition(kernel > 0 && stride > 0, "AvgPool2d: invalid window k \(kernel) s \(stride)")
        self.kernel = kernel; self.stride = stride
    }
    public var parameters: [Parameter] { [] }

    private func outputSize(_ h: Int, _ w: Int) -> (Int, Int) { ((h - kernel) / stride + 1, (w - kernel) / stride + 1) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[2] >= kernel && x.shape[3] >= kernel, "AvgPool2d: input shape \(x.shape), window \(kernel)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (ho, wo) = outputSize(h, w)
        let scale = 1 / Float(kernel * kernel)
        var y = [Float](repeating: 0, count: n * c * ho * wo)
        for p in 0..<(n * c) {
            for oh in 0..<ho {
                for ow in 0..<wo {
                    var s: Float = 0
                    for i in 0..<kernel { for j in 0..<kernel { s += x.data[p * h * w + (oh * stride + i) * w + ow * stride + j] } }
                    y[(p * ho + oh) * wo + ow] = s * scale
                }
            }
        }
        if training { inputShape = x.shape }
        return Tensor(shape: [n, c, ho, wo], data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4, "AvgPool2d.backward called without a training forward")
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (ho, wo) = outputSize(h, w)
        precondition(dy.shape == [n, c, ho, wo], "AvgPool2d.backward: gradient shape \(dy.shape), expected \([n, c, ho, wo])")
        let scale = 1 / Float(kernel * kernel)
        var dx = [Float](repeating: 0, count: n * c * h * w)
        for p in 0..<(n * c) {
            for oh in 0..<ho {
                for ow in 0..<wo {
                    let g = dy.data[(p * ho + oh) * wo + ow] * scale
                    for i in 0..<kernel { for j in 0..<kernel { dx[p * h * w + (oh * stride + i) * w + ow * stride + j] += g } }
                }
            }
        }
        return Tensor(shape: inputShape, data: dx)
    }
}

/// Mean over H×W: [N, C, H, W] → [N, C, 1, 1] (ONNX GlobalAveragePool).
public final class GlobalAvgPool: Layer {
    private var inputShape: [Int] = []
    public init() {}
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "GlobalAvgPool: input shape \(x.shape), expected NCHW")
        let (n, c) = (x.shape[0], x.shape[1]), plane = x.shape[2] * x.shape[3]
        var y = [Float](repeating: 0, count: n * c)
        x.data.withUnsafeBufferPointer { p in
            for k in 0..<(n * c) {
                var s: Float = 0
                for i in 0..<plane { s += p[k * plane + i] }
                y[k] = s / Float(plane)
            }
        }
        if training { inputShape = x.shape }
        return Tensor(shape: [n, c, 1, 1], data: y)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4 && dy.count == inputShape[0] * inputShape[1], "GlobalAvgPool.backward: gradient shape \(dy.shape) does not match the training forward \(inputShape)")
        let plane = inputShape[2] * inputShape[3]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        for k in 0..<dy.count {
            let g = dy.data[k] / Float(plane)
            for i in 0..<plane { dx[k * plane + i] = g }
        }
        return Tensor(shape: inputShape, data: dx)
    }
}

/// Nearest-neighbour 2× upsampling of NCHW (ONNX Resize, nearest, asymmetric, floor).
public final class Upsample2x: Layer {
    private var inputShape: [Int] = []
    public init() {}
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "Upsample2x: input shape \(x.shape), expected NCHW")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var y = [Float](repeating: 0, count: n * c * 4 * h * w)
        for p in 0..<(n * c) {
            for oh in 0..<(2 * h) {
                for ow in 0..<(2 * w) { y[(p * 2 * h + oh) * 2 * w + ow] = x.data[(p * h + oh / 2) * w + ow / 2] }
            }
        }
        if training { inputShape = x.shape }
        return Tensor(shape: [n, c, 2 * h, 2 * w], data: y)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4 && dy.count == 4 * inputShape.reduce(1, *), "Upsample2x.backward: gradient shape \(dy.shape) does not match the training forward \(inputShape)")
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        var dx = [Float](repeating: 0, count: n * c * h * w)
        for p in 0..<(n * c) {
            for oh in 0..<(2 * h) {
                for ow in 0..<(2 * w) { dx[(p * h + oh / 2) * w + ow / 2] += dy.data[(p * 2 * h + oh) * 2 * w + ow] }
            }
        }
        return Tensor(shape: inputShape, data: dx)
    }
}

// MARK: shape

/// [N, …] → [N, product of the rest] (ONNX Flatten, axis 1).
public final class Flatten: Layer {
    private var inputShape: [Int] = []
    public init() {}
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { inputShape = x.shape }
        return Tensor(shape: [x.batch, x.sampleCount], data: x.data)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == inputShape.reduce(1, *), "Flatten.backward: gradient shape \(dy.shape) does not match the training forward \(inputShape)")
        return Tensor(shape: inputShape, data: dy.data)
    }
}

/// [N, …] → [N] + `sampleShape` (e.g. a decoder's Linear output to [N, C, H, W]).
public final class Reshape: Layer {
    public let sampleShape: [Int]
    private var inputShape: [Int] = []
    public init(_ sampleShape: [Int]) { self.sampleShape = sampleShape }
    public var parameters: [Parameter] { [] }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.sampleCount == sampleShape.reduce(1, *), "Reshape: input shape \(x.shape) cannot become [N] + \(sampleShape)")
        if training { inputShape = x.shape }
        return Tensor(shape: [x.batch] + sampleShape, data: x.data)
    }
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == inputShape.reduce(1, *), "Reshape.backward: gradient shape \(dy.shape) does not match the training forward \(inputShape)")
        return Tensor(shape: inputShape, data: dy.data)
    }
}
