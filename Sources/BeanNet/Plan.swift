import CBLAS
import Foundation

/// An operand of a step: a tensor in the worker's arena (by storage id) or a constant of the model.
enum Operand: Sendable {
    case storage(Int)
    case constant(FloatBuffer)
}

struct ConvStep: Sendable {
    enum Kind: Sendable { case pointwise, im2col, depthwise, winograd }
    var kind: Kind
    var input: Int
    var output: Int
    var residual: Int?
    var batch: Int
    var g: ConvGeometry
    /// Per group [kh][kw][Cin/groups][Cout/groups], i.e. the sgemm B operand K×N (depthwise: [kh][kw][C]).
    var weights: FloatBuffer
    var bias: FloatBuffer?
    var activation: Activation
    /// im2col rows per sgemm call, chosen so the gather buffer stays within the scratch budget.
    var rowsPerChunk: Int
    /// `weights` packed for PackedGemm (one packed matrix per group / Winograd tap), when this plan's
    /// GEMMs are small enough to take it; nil: cblas_sgemm on `weights`.
    var packed: PackedWeights? = nil
}

/// A conv's weights in PackedGemm's layout: `slices` matrices, `sliceFloats` apart.
struct PackedWeights: Sendable {
    var buffer: FloatBuffer
    var level: Int32
    var sliceFloats: Int
}

struct ConvTransposeStep: Sendable {
    var input: Int
    var output: Int
    var batch: Int
    var g: ConvGeometry  // h/w = input, ho/wo = output
    /// [Cin][kh][kw][Cout].
    var weights: FloatBuffer
    var bias: FloatBuffer?
    var activation: Activation
    var rowsPerChunk: Int
}

struct PoolStep: Sendable {
    enum Kind: Sendable { case max, average(countIncludePad: Bool) }
    var kind: Kind
    var input: Int
    var output: Int
    var batch: Int
    var g: ConvGeometry
}

/// Reduction over the middle of an [outer, mid, inner] view of a contiguous tensor.
struct ReduceStep: Sendable {
    enum Kind: Sendable { case mean, sum, l2, max, min, normalizeL2, normalizeL1 }
    var kind: Kind
    var input: Int
    var output: Int
    var outer, mid, inner: Int
}

struct BroadcastStep: Sendable {
    var op: BinaryOp
    var a: Operand
    var b: Operand?
    var output: Int
    var shape: [Int]
    var aStrides: [Int]
    var bStrides: [Int]
    var activation: Activation
}

struct GemmStep: Sendable {
    var a: Operand
    var b: Operand
    var output: Int
    var m, n, k: Int
    var transA, transB: Bool
    var alpha, beta: Float
    /// Bias pre-filled into the output (already broadcast to [m, n] by a BroadcastStep) when beta != 0.
    var hasBias: Bool
}

struct ConcatStep: Sendable {
    var inputs: [(Operand, Int)]  // operand, chunk length (axis extent × inner)
    var output: Int
    var outer: Int
}

struct PadStep: Sendable {
    enum Mode: Sendable { case constant(Float), reflect, edge }
    var mode: Mode
    var input: Int
    var output: Int
    var batch: Int
    var h, w, c: Int
    var ho, wo: Int
    var pt, pl: Int
}

struct ResizeStep: Sendable {
    var input: Int
    var output: Int
    var batch: Int
    var h, w, c: Int
    /// Source row/column for each output row/column.
    var rows: [Int]
    var cols: [Int]
}

struct AffineStep: Sendable {
    var input: Int
    var output: Int
    var rows: Int
    var channels: Int
    var scale: FloatBuffer
    var shift: FloatBuffer
}

enum Step: Sendable {
    case conv(ConvStep)
    case convTranspose(ConvTransposeStep)
    case pool(PoolStep)
    case reduce(ReduceStep)
    case broadcast(BroadcastStep)
    case gemm(GemmStep)
    case concat(ConcatStep)
    case pad(PadStep)
    case resize(ResizeStep)
    case affine(AffineStep)

    var name: String {
        switch self {
        case .conv: return "conv"
        case .convTranspose: return "convTranspose"
        case .pool: return "pool"
        case .reduce: return "reduce"
        case .broadcast: return "elementwise"
        case .gemm: return "gemm"
        case .concat: return "concat"
        case .pad: return "pad"
        case .resize: return "resize"
        case .affine: return "affine"
        }
    }
}

/// A tensor a plan exposes: where it lives and its logical (ONNX, NCHW) shape, contiguous.
struct PlanTensor: Sendable {
    var name: String
    var storage: Int
    var shape: [Int]
    var count: Int { shape.reduce(1, *) }
}

/// Everything needed to run the model for one batch size: steps, arena offsets, I/O tensors.
/// Built once (per batch size) at load or worker start; running it allocates nothing.
struct ExecutionPlan: Sendable {
    var batch: Int
    var steps: [Step]
    /// Float offset of each storage id inside the arena.
    var offsets: [Int]
    var arenaFloats: Int
    var scratchFloats: Int
    var inputs: [PlanTensor]
    var outputs: [PlanTensor]
    /// Multiply-accumulates per run, for GFLOP/s figures.
    var macs: Int

    var totalFloats: Int { arenaFloats + scratchFloats }

    func run(arena base: UnsafeMutablePointer<Float>) {
        let scratch = base + arenaFloats
        offsets.withUnsafeBufferPointer { off in
            @inline(__always) func ptr(_ s: Int) -> UnsafeMutablePointer<Float> { base + off[s] }
            @inline(__always) func ptr(_ o: Operand) -> UnsafeMutablePointer<Float> {
                switch o {
                case .storage(let s): return base + off[s]
                case .constant(let c): return c.pointer
                }
            }
            // Indexed loops over unsafe buffers: debug builds box the elements of a generic
            // IndexingIterator on the heap, and a run must not allocate.
            steps.withUnsafeBufferPointer { all in
            for index in 0..<all.count {
                switch all[index] {
                case .conv(let s):
                    var residual: UnsafeMutablePointer<Float>?
                    if let r = s.residual { residual = ptr(r) }
                    ExecutionPlan.conv(s, x: ptr(s.input), y: ptr(s.output), residual: residual, scratch: scratch)
                case .convTranspose(let s): ExecutionPlan.convTranspose(s, x: ptr(s.input), y: ptr(s.output), scratch: scratch)
                case .pool(let s): ExecutionPlan.pool(s, x: ptr(s.input), y: ptr(s.output))
                case .reduce(let s): ExecutionPlan.reduce(s, x: ptr(s.input), y: ptr(s.output))
                case .broadcast(let s):
                    let out = ptr(s.output)
                    var b: UnsafeMutablePointer<Float>?
                    if let operand = s.b { b = ptr(operand) }
                    Kernels.strided(s.op, out: out, shape: s.shape, a: ptr(s.a), aStrides: s.aStrides, b: b, bStrides: s.bStrides)
                    if s.activation != .none {
                        var count = 1
                        for d in 0..<s.shape.count { count *= s.shape[d] }
                        Kernels.applyActivation(s.activation, out, count: count)
                    }
                case .gemm(let s):
                    Kernels.sgemm(m: s.m, n: s.n, k: s.k, a: ptr(s.a), lda: s.transA ? s.m : s.k, transA: s.transA,
                                  b: ptr(s.b), ldb: s.transB ? s.k : s.n, transB: s.transB,
                                  c: ptr(s.output), ldc: s.n, alpha: s.alpha, beta: s.hasBias ? s.beta : 0)
                case .concat(let s):
                    let out = ptr(s.output)
                    s.inputs.withUnsafeBufferPointer { parts in
                        var total = 0
                        for k in 0..<parts.count { total += parts[k].1 }
                        var col = 0
                        for k in 0..<parts.count {
                            let len = parts[k].1
                            let src = ptr(parts[k].0)
                            for o in 0..<s.outer { (out + o * total + col).update(from: src + o * len, count: len) }
                            col += len
                        }
                    }
                case .pad(let s): ExecutionPlan.pad(s, x: ptr(s.input), y: ptr(s.output))
                case .resize(let s): ExecutionPlan.resize(s, x: ptr(s.input), y: ptr(s.output))
                case .affine(let s):
                    let x = ptr(s.input), y = ptr(s.output)
                    let sc = s.scale.pointer, sh = s.shift.pointer
                    for r in 0..<s.rows {
                        let xi = x + r * s.channels, yi = y + r * s.channels
                        for c in 0..<s.channels { yi[c] = xi[c] * sc[c] + sh[c] }
                    }
                }
            }
            }
        }
    }

    static func conv(_ s: ConvStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                     residual: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        let g = s.g
        let m = s.batch * g.ho * g.wo
        switch s.kind {
        case .pointwise:
            if let p = s.packed {
                PackedGemm.gemm(level: p.level, m: m, n: g.cout, k: g.cin, a: x, lda: g.cin, packed: p.buffer.pointer, c: y, ldc: g.cout)
            } else {
                Kernels.sgemm(m: m, n: g.cout, k: g.cin, a: x, lda: g.cin, b: s.weights.pointer, ldb: g.cout, transB: false, c: y, ldc: g.cout)
            }
            Kernels.epilogue(y, rows: m, cols: g.cout, ldy: g.cout, bias: s.bias?.pointer, residual: residual, ldr: g.cout, activation: s.activation)
        case .depthwise:
            Kernels.depthwise(x: x, y: y, w: s.weights.pointer, p: g, batch: s.batch)
            Kernels.epilogue(y, rows: m, cols: g.cout, ldy: g.cout, bias: s.bias?.pointer, residual: residual, ldr: g.cout, activation: s.activation)
        case .winograd:
            let th = (g.ho + 1) / 2, tw = (g.wo + 1) / 2
            let total = s.batch * th * tw
            let zero = scratch
            zero.update(repeating: 0, count: g.cin)
            let discard = scratch + (g.cin + 15) / 16 * 16
            let v = discard + (g.cout + 15) / 16 * 16
            let mbuf = v + 16 * s.rowsPerChunk * g.cin
            var t0 = 0
            while t0 < total {
                let count = min(s.rowsPerChunk, total - t0)
                Winograd.transformInput(x: x, v: v, g: g, tilesH: th, tilesW: tw, t0: t0, count: count, zero: zero)
                for k in 0..<16 {
                    if let p = s.packed {
                        PackedGemm.gemm(level: p.level, m: count, n: g.cout, k: g.cin, a: v + k * count * g.cin, lda: g.cin,
                                        packed: p.buffer.pointer + k * p.sliceFloats, c: mbuf + k * count * g.cout, ldc: g.cout)
                        continue
                    }
                    Kernels.sgemm(m: count, n: g.cout, k: g.cin, a: v + k * count * g.cin, lda: g.cin,
                                  b: s.weights.pointer + k * g.cin * g.cout, ldb: g.cout, transB: false,
                                  c: mbuf + k * count * g.cout, ldc: g.cout)
                }
                Winograd.transformOutput(m: mbuf, y: y, g: g, tilesH: th, tilesW: tw, t0: t0, count: count, discard: discard,
                                         bias: s.bias?.pointer, residual: residual, activation: s.activation)
                t0 += count
            }
        case .im2col:
            let cg = g.cin / g.groups
            let coutg = g.cout / g.groups
            let kkc = g.kh * g.kw * cg
            var m0 = 0
            while m0 < m {
                let rows = min(s.rowsPerChunk, m - m0)
                for grp in 0..<g.groups {
                    Kernels.im2col(x: x, col: scratch, p: g, m0: m0, rows: rows, group: grp)
                    if let p = s.packed {
                        PackedGemm.gemm(level: p.level, m: rows, n: coutg, k: kkc, a: scratch, lda: kkc,
                                        packed: p.buffer.pointer + grp * p.sliceFloats, c: y + m0 * g.cout + grp * coutg, ldc: g.cout)
                        continue
                    }
                    Kernels.sgemm(m: rows, n: coutg, k: kkc, a: scratch, lda: kkc,
                                  b: s.weights.pointer + grp * coutg * kkc, ldb: coutg, transB: false,
                                  c: y + m0 * g.cout + grp * coutg, ldc: g.cout)
                }
                Kernels.epilogue(y + m0 * g.cout, rows: rows, cols: g.cout, ldy: g.cout, bias: s.bias?.pointer,
                                 residual: residual.map { $0 + m0 * g.cout }, ldr: g.cout, activation: s.activation)
                m0 += rows
            }
        }
    }

    static func convTranspose(_ s: ConvTransposeStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                              scratch: UnsafeMutablePointer<Float>) {
        let g = s.g
        let cols = g.kh * g.kw * g.cout
        let m = s.batch * g.h * g.w
        y.update(repeating: 0, count: s.batch * g.ho * g.wo * g.cout)
        var m0 = 0
        while m0 < m {
            let rows = min(s.rowsPerChunk, m - m0)
            Kernels.sgemm(m: rows, n: cols, k: g.cin, a: x + m0 * g.cin, lda: g.cin, b: s.weights.pointer, ldb: cols,
                          transB: false, c: scratch, ldc: cols)
            for r in 0..<rows {
                let mm = m0 + r
                let n = mm / (g.h * g.w)
                let rem = mm - n * g.h * g.w
                let ih = rem / g.w
                let iw = rem - ih * g.w
                let src = scratch + r * cols
                for i in 0..<g.kh {
                    let oh = ih * g.sh - g.pt + i * g.dh
                    if oh < 0 || oh >= g.ho { continue }
                    for j in 0..<g.kw {
                        let ow = iw * g.sw - g.pl + j * g.dw
                        if ow < 0 || ow >= g.wo { continue }
                        let dst = y + ((n * g.ho + oh) * g.wo + ow) * g.cout
                        let w = src + (i * g.kw + j) * g.cout
                        for c in 0..<g.cout { dst[c] += w[c] }
                    }
                }
            }
            m0 += rows
        }
        Kernels.epilogue(y, rows: s.batch * g.ho * g.wo, cols: g.cout, ldy: g.cout, bias: s.bias?.pointer,
                         residual: nil, ldr: 0, activation: s.activation)
    }

    static func pool(_ s: PoolStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let g = s.g
        let c = g.cin
        for n in 0..<s.batch {
            let xin = x + n * g.h * g.w * c
            for oh in 0..<g.ho {
                let hs = oh * g.sh - g.pt
                for ow in 0..<g.wo {
                    let ws = ow * g.sw - g.pl
                    let out = y + ((n * g.ho + oh) * g.wo + ow) * c
                    switch s.kind {
                    case .max:
                        out.update(repeating: -Float.infinity, count: c)
                        for i in 0..<g.kh {
                            let ih = hs + i * g.dh
                            if ih < 0 || ih >= g.h { continue }
                            for j in 0..<g.kw {
                                let iw = ws + j * g.dw
                                if iw < 0 || iw >= g.w { continue }
                                let src = xin + (ih * g.w + iw) * c
                                for ch in 0..<c { out[ch] = Swift.max(out[ch], src[ch]) }
                            }
                        }
                    case .average(let includePad):
                        out.update(repeating: 0, count: c)
                        let he = min(hs + g.kh, g.h + g.pb), we = min(ws + g.kw, g.w + g.pr)
                        let h0 = max(hs, 0), h1 = min(he, g.h), w0 = max(ws, 0), w1 = min(we, g.w)
                        for ih in h0..<max(h0, h1) {
                            for iw in w0..<max(w0, w1) {
                                let src = xin + (ih * g.w + iw) * c
                                for ch in 0..<c { out[ch] += src[ch] }
                            }
                        }
                        let area = includePad ? (he - hs) * (we - ws) : max(h1 - h0, 0) * max(w1 - w0, 0)
                        let inv = area > 0 ? 1 / Float(area) : 0
                        for ch in 0..<c { out[ch] *= inv }
                    }
                }
            }
        }
    }

    /// Largest (or smallest) of `count` ≥ 1 contiguous floats, eight lanes at a time (a compare
    /// and select per lane, which the compiler turns into vector max/min; the generic
    /// `pointwiseMax` was left as a call per eight values).
    @inline(__always)
    static func extreme(_ p: UnsafePointer<Float>, count: Int, largest: Bool) -> Float {
        var lanes = SIMD8<Float>(repeating: p[0])
        let raw = UnsafeRawPointer(p)
        var i = 0
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
            lanes.replace(with: v, where: largest ? v .> lanes : v .< lanes)
            i += 8
        }
        var result = largest ? lanes.max() : lanes.min()
        while i < count { result = largest ? Swift.max(result, p[i]) : Swift.min(result, p[i]); i += 1 }
        return result
    }

    static func reduce(_ s: ReduceStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        for o in 0..<s.outer {
            let src = x + o * s.mid * s.inner
            switch s.kind {
            case .mean, .sum:
                let dst = y + o * s.inner
                if s.inner == 1 {
                    var acc: Float = 0
                    for i in 0..<s.mid { acc += src[i] }
                    dst[0] = s.kind == .mean ? acc / Float(s.mid) : acc
                } else {
                    dst.update(repeating: 0, count: s.inner)
                    for r in 0..<s.mid { cblas_saxpy(Int32(s.inner), 1, src + r * s.inner, 1, dst, 1) }
                    if case .mean = s.kind { cblas_sscal(Int32(s.inner), 1 / Float(s.mid), dst, 1) }
                }
            case .l2:
                // Sums of squares row by row (contiguous, so it vectorises), then the roots:
                // cblas_snrm2 over a strided column, with its overflow-safe scaling, made this the
                // slowest step of an encoder that pools standard deviations (ReduceL2 over H, W of
                // NHWC maps). Activations are far from float's overflow.
                let dst = y + o * s.inner
                if s.inner == 1 {
                    var acc: Float = 0
                    for i in 0..<s.mid { acc += src[i] * src[i] }
                    dst[0] = acc.squareRoot()
                } else {
                    dst.update(repeating: 0, count: s.inner)
                    for r in 0..<s.mid {
                        let row = src + r * s.inner
                        for i in 0..<s.inner { dst[i] += row[i] * row[i] }
                    }
                    for i in 0..<s.inner { dst[i] = dst[i].squareRoot() }
                }
            case .max, .min:
                let dst = y + o * s.inner
                let isMax = s.kind == .max
                if s.inner == 1 {
                    // A contiguous run (the patch-novelty bank's channels of one position): eight
                    // lanes at a time; the scalar loop made this as slow as the convolution feeding it.
                    dst[0] = extreme(src, count: s.mid, largest: isMax)
                } else {
                    dst.update(from: src, count: s.inner)
                    for r in 1..<Swift.max(s.mid, 1) {
                        let row = src + r * s.inner
                        if isMax {
                            for i in 0..<s.inner { dst[i] = Swift.max(dst[i], row[i]) }
                        } else {
                            for i in 0..<s.inner { dst[i] = Swift.min(dst[i], row[i]) }
                        }
                    }
                }
            case .normalizeL2, .normalizeL1:
                let dst = y + o * s.mid * s.inner
                for i in 0..<s.inner {
                    let norm = s.kind == .normalizeL2 ? cblas_snrm2(Int32(s.mid), src + i, Int32(s.inner))
                                                       : cblas_sasum(Int32(s.mid), src + i, Int32(s.inner))
                    let inv: Float = norm > 0 ? 1 / norm : 0
                    for r in 0..<s.mid { dst[r * s.inner + i] = src[r * s.inner + i] * inv }
                }
            }
        }
    }

    /// Source index along one padded axis, or nil where the constant value goes.
    @inline(__always)
    static func padSource(_ o: Int, _ begin: Int, _ size: Int, _ mode: PadStep.Mode) -> Int? {
        let i = o - begin
        if i >= 0 && i < size { return i }
        switch mode {
        case .constant: return nil
        case .edge: return Swift.min(Swift.max(i, 0), size - 1)
        case .reflect:
            if size == 1 { return 0 }
            let period = 2 * (size - 1)
            let r = ((i % period) + period) % period
            return r < size ? r : period - r
        }
    }

    static func pad(_ s: PadStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        var fill: Float = 0
        if case .constant(let v) = s.mode { fill = v }
        for n in 0..<s.batch {
            for oh in 0..<s.ho {
                let ih = padSource(oh, s.pt, s.h, s.mode)
                for ow in 0..<s.wo {
                    let dst = y + ((n * s.ho + oh) * s.wo + ow) * s.c
                    if let ih, let iw = padSource(ow, s.pl, s.w, s.mode) {
                        dst.update(from: x + ((n * s.h + ih) * s.w + iw) * s.c, count: s.c)
                    } else {
                        dst.update(repeating: fill, count: s.c)
                    }
                }
            }
        }
    }

    static func resize(_ s: ResizeStep, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let ho = s.rows.count, wo = s.cols.count
        s.rows.withUnsafeBufferPointer { rows in
            s.cols.withUnsafeBufferPointer { cols in
                for n in 0..<s.batch {
                    for oh in 0..<ho {
                        let srcRow = x + (n * s.h + rows[oh]) * s.w * s.c
                        let dstRow = y + (n * ho + oh) * wo * s.c
                        for ow in 0..<wo { (dstRow + ow * s.c).update(from: srcRow + cols[ow] * s.c, count: s.c) }
                    }
                }
            }
        }
    }
}
