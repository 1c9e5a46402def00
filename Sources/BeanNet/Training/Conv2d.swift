import Foundation

/// 2-D convolution on NCHW, square kernel, symmetric zero padding. The whole batch is lowered to one
/// im2col matrix [C·k·k, N·Ho·Wo] so each pass is a single sgemm per layer.
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// [out, in, k, k]
    public let weight: Parameter
    /// [out], nil when the convolution has no bias (e.g. followed by batch normalisation).
    public let bias: Parameter?
    private var input: Tensor?

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout SeededRandom) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "Conv2d: invalid geometry in \(inChannels) out \(outChannels) k \(kernel) s \(stride) p \(padding)")
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let fanIn = inChannels * kernel * kernel
        weight = Parameter(name: "weight", shape: [outChannels, inChannels, kernel, kernel],
                           value: Initializer.he(count: outChannels * fanIn, fanIn: fanIn, rng: &rng))
        self.bias = bias ? Parameter(name: "bias", shape: [outChannels], value: [Float](repeating: 0, count: outChannels)) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inChannels, "Conv2d(\(inChannels)→\(outChannels)): input shape \(x.shape), expected [N, \(inChannels), H, W]")
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (ho, wo) = outputSize(h, w)
        precondition(ho > 0 && wo > 0, "Conv2d: kernel \(kernel) larger than padded input \(h)×\(w)")
        let kkc = inChannels * kernel * kernel
        let cols = n * ho * wo
        var col = [Float](unsafeUninitializedCapacity: kkc * cols) { _, c in c = kkc * cols }
        im2col(x: x.data, col: &col, n: n, h: h, w: w, ho: ho, wo: wo)
        var yT = [Float](unsafeUninitializedCapacity: outChannels * cols) { _, c in c = outChannels * cols }
        Kernels.sgemm(m: outChannels, n: cols, k: kkc, a: weight.value, lda: kkc,
                      b: col, ldb: cols, transB: false, c: &yT, ldc: cols)
        // [Cout, N, HoWo] → [N, Cout, HoWo], adding the bias on the way.
        let hw = ho * wo
        var y = [Float](unsafeUninitializedCapacity: n * outChannels * hw) { _, c in c = n * outChannels * hw }
        let b = bias?.value ?? [Float](repeating: 0, count: outChannels)
        TrainKernels.channelsFirstToBatchFirst(yT, &y, batch: n, channels: outChannels, plane: hw, bias: b)
        if training { input = x }
        return Tensor(shape: [n, outChannels, ho, wo], data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward called without a training forward") }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (ho, wo) = outputSize(h, w)
        precondition(dy.shape == [n, outChannels, ho, wo], "Conv2d.backward: gradient shape \(dy.shape), expected \([n, outChannels, ho, wo])")
        let hw = ho * wo, cols = n * hw, kkc = inChannels * kernel * kernel
        // dY as [Cout, N·HoWo].
        var dyT = [Float](unsafeUninitializedCapacity: outChannels * cols) { _, c in c = outChannels * cols }
        TrainKernels.batchFirstToChannelsFirst(dy.data, &dyT, batch: n, channels: outChannels, plane: hw)
        if let bias { TrainKernels.addRowSums(dyT, rows: outChannels, cols: cols, into: &bias.grad) }
        // The column matrix is recomputed rather than kept from forward: it is the largest buffer
        // of the layer, and im2col is cheap next to the two sgemms.
        var col = [Float](unsafeUninitializedCapacity: kkc * cols) { _, c in c = kkc * cols }
        im2col(x: x.data, col: &col, n: n, h: h, w: w, ho: ho, wo: wo)
        Kernels.sgemm(m: outChannels, n: kkc, k: cols, a: dyT, lda: cols,
                      b: col, ldb: cols, transB: true, c: &weight.grad, ldc: kkc, beta: 1)
        // dcol = Wᵀ · dY, written over the column buffer.
        Kernels.sgemm(m: kkc, n: cols, k: outChannels, a: weight.value, lda: kkc, transA: true,
                      b: dyT, ldb: cols, transB: false, c: &col, ldc: cols)
        var dx = [Float](repeating: 0, count: x.count)
        col2im(col: col, dx: &dx, n: n, h: h, w: w, ho: ho, wo: wo)
        return Tensor(shape: x.shape, data: dx)
    }

    /// Row (c, i, j), column (n, oh, ow) of the batch's im2col matrix.
    private func im2col(x: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>, n: Int, h: Int, w: Int, ho: Int, wo: Int) {
        let cols = n * ho * wo
        for c in 0..<inChannels {
            for i in 0..<kernel {
                for j in 0..<kernel {
                    let row = col + ((c * kernel + i) * kernel + j) * cols
                    for s in 0..<n {
                        let plane = x + (s * inChannels + c) * h * w
                        for oh in 0..<ho {
                            let dst = row + (s * ho + oh) * wo
                            let ih = oh * stride - padding + i
                            if ih < 0 || ih >= h { dst.update(repeating: 0, count: wo); continue }
                            let src = plane + ih * w
                            if stride == 1 {
                                // Valid ow range: 0 <= ow - padding + j < w.
                                let lo = max(0, padding - j), hi = min(wo, w + padding - j)
                                if lo > 0 { dst.update(repeating: 0, count: min(lo, wo)) }
                                if hi > lo { (dst + lo).update(from: src + lo - padding + j, count: hi - lo) }
                                if hi < wo { (dst + max(hi, 0)).update(repeating: 0, count: wo - max(hi, 0)) }
                            } else {
                                for ow in 0..<wo {
                                    let iw = ow * stride - padding + j
                                    dst[ow] = (iw >= 0 && iw < w) ? src[iw] : 0
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private func col2im(col: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, n: Int, h: Int, w: Int, ho: Int, wo: Int) {
        let cols = n * ho * wo
        for c in 0..<inChannels {
            for i in 0..<kernel {
                for j in 0..<kernel {
                    let row = col + ((c * kernel + i) * kernel + j) * cols
                    for s in 0..<n {
                        let plane = dx + (s * inChannels + c) * h * w
                        for oh in 0..<ho {
                            let ih = oh * stride - padding + i
                            if ih < 0 || ih >= h { continue }
                            let src = row + (s * ho + oh) * wo
                            let dst = plane + ih * w
                            // Valid ow: 0 ≤ ow·stride − padding + j < w.
                            let lo = max(0, (padding - j + stride - 1) / stride)
                            let last = w - 1 + padding - j
                            if last < 0 { continue }
                            let hi = min(wo, last / stride + 1)
                            if lo >= hi { continue }
                            if stride == 1 {
                                let d = dst + (lo - padding + j)
                                for ow in lo..<hi { d[ow - lo] += src[ow] }
                            } else {
                                for ow in lo..<hi { dst[ow * stride - padding + j] += src[ow] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Fully connected layer on [N, in]: y = x·Wᵀ + b, W stored [out, in] (ONNX Gemm with transB=1).
public final class Linear: Layer {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout SeededRandom) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: invalid size \(inFeatures)→\(outFeatures)")
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        weight = Parameter(name: "weight", shape: [outFeatures, inFeatures],
                           value: Initializer.xavier(count: inFeatures * outFeatures, fanIn: inFeatures, fanOut: outFeatures, rng: &rng))
        self.bias = bias ? Parameter(name: "bias", shape: [outFeatures], value: [Float](repeating: 0, count: outFeatures)) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == inFeatures, "Linear(\(inFeatures)→\(outFeatures)): input shape \(x.shape), expected [N, \(inFeatures)]")
        let n = x.shape[0]
        var y = [Float](repeating: 0, count: n * outFeatures)
        if let bias {
            for s in 0..<n { for o in 0..<outFeatures { y[s * outFeatures + o] = bias.value[o] } }
        }
        Kernels.sgemm(m: n, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
                      b: weight.value, ldb: inFeatures, transB: true, c: &y, ldc: outFeatures, beta: 1)
        if training { input = x }
        return Tensor(shape: [n, outFeatures], data: y)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward called without a training forward") }
        let n = x.shape[0]
        precondition(dy.shape == [n, outFeatures], "Linear.backward: gradient shape \(dy.shape), expected \([n, outFeatures])")
        if let bias {
            for s in 0..<n { for o in 0..<outFeatures { bias.grad[o] += dy.data[s * outFeatures + o] } }
        }
        var dx = [Float](repeating: 0, count: n * inFeatures)
        Kernels.sgemm(m: outFeatures, n: inFeatures, k: n, a: dy.data, lda: outFeatures, transA: true,
                      b: x.data, ldb: inFeatures, transB: false, c: &weight.grad, ldc: inFeatures, beta: 1)
        Kernels.sgemm(m: n, n: inFeatures, k: outFeatures, a: dy.data, lda: outFeatures,
                      b: weight.value, ldb: inFeatures, transB: false, c: &dx, ldc: inFeatures)
        return Tensor(shape: x.shape, data: dx)
    }
}
