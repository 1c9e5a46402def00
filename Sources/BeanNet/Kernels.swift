import CBLAS
import Foundation

/// Activation applied in a layer's epilogue (or as a standalone step).
enum Activation: Sendable, Equatable {
    case none
    case relu
    case leakyRelu(Float)
    case clip(Float, Float)
    case sigmoid

    @inline(__always)
    func apply(_ v: Float) -> Float {
        switch self {
        case .none: return v
        case .relu: return v > 0 ? v : 0
        case .leakyRelu(let a): return v >= 0 ? v : v * a
        case .clip(let lo, let hi): return v < lo ? lo : (v > hi ? hi : v)
        case .sigmoid: return 1 / (1 + expf(-v))
        }
    }
}

/// Element-wise binary operators (plus plain copy, used for broadcast, Expand and layout changes).
enum BinaryOp: Sendable {
    case add, sub, mul, div, copyFirst
}

enum Kernels {
    /// rows × cols epilogue: y = act(y + bias[c] + residual[r, c]), one pass; the common
    /// bias(+residual)+ReLU cases are written as branch-free loops so they vectorise.
    static func epilogue(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ldy: Int,
                         bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, ldr: Int,
                         activation: Activation) {
        if bias == nil && residual == nil && activation == .none { return }
        let relu = activation == .relu
        for r in 0..<rows {
            let row = y + r * ldy
            if let bias, let residual {
                let res = residual + r * ldr
                if relu { for c in 0..<cols { row[c] = Swift.max(row[c] + bias[c] + res[c], 0) }; continue }
                for c in 0..<cols { row[c] += bias[c] + res[c] }
            } else if let bias {
                if relu { for c in 0..<cols { row[c] = Swift.max(row[c] + bias[c], 0) }; continue }
                for c in 0..<cols { row[c] += bias[c] }
            } else if let residual {
                let res = residual + r * ldr
                if relu { for c in 0..<cols { row[c] = Swift.max(row[c] + res[c], 0) }; continue }
                for c in 0..<cols { row[c] += res[c] }
            }
            applyActivation(activation, row, count: cols)
        }
    }

    static func applyActivation(_ activation: Activation, _ p: UnsafeMutablePointer<Float>, count: Int) {
        switch activation {
        case .none: return
        case .relu: for i in 0..<count { p[i] = Swift.max(p[i], 0) }
        case .leakyRelu(let a): for i in 0..<count { let v = p[i]; p[i] = v >= 0 ? v : v * a }
        case .clip(let lo, let hi): for i in 0..<count { p[i] = Swift.min(Swift.max(p[i], lo), hi) }
        case .sigmoid: for i in 0..<count { p[i] = 1 / (1 + expf(-p[i])) }
        }
    }

    /// C[m×n] (ldc) = A[m×k] · B, with B given as [n×k] (transB) or [k×n].
    @inline(__always)
    static func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
                      b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                      c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Generic broadcasting element-wise kernel over `shape` (output contiguous, row-major); each
    /// operand addressed with its own strides (0 where broadcast). Dimensions are coalesced first so
    /// contiguous cases become one long inner loop.
    static func strided(_ op: BinaryOp, out: UnsafeMutablePointer<Float>, shape: [Int],
                        a: UnsafePointer<Float>, aStrides: [Int], b: UnsafePointer<Float>?, bStrides: [Int]) {
        let rank = shape.count
        var total = 1
        for d in 0..<shape.count { total *= shape[d] }
        if total == 0 { return }
        if rank == 0 {
            out[0] = combine(op, a[0], b?[0] ?? 0)
            return
        }
        let inner = shape[rank - 1]
        let sa = aStrides[rank - 1], sb = bStrides[rank - 1]
        let outer = total / inner
        // Odometer over outer dims, without allocating: at most 8 dims.
        var idx = (0, 0, 0, 0, 0, 0, 0, 0)
        var aOff = 0, bOff = 0
        for o in 0..<outer {
            let dst = out + o * inner
            let pa = a + aOff
            if let b {
                let pb = b + bOff
                innerLoop(op, dst, pa, sa, pb, sb, inner)
            } else {
                if sa == 1 { dst.update(from: pa, count: inner) } else { for i in 0..<inner { dst[i] = pa[i * sa] } }
            }
            // Advance odometer over dims rank-2 ... 0.
            var d = rank - 2
            while d >= 0 {
                var v = withUnsafeMutableBytes(of: &idx) { $0.load(fromByteOffset: d * 8, as: Int.self) }
                v += 1
                aOff += aStrides[d]; bOff += bStrides[d]
                if v < shape[d] {
                    withUnsafeMutableBytes(of: &idx) { $0.storeBytes(of: v, toByteOffset: d * 8, as: Int.self) }
                    break
                }
                aOff -= aStrides[d] * shape[d]; bOff -= bStrides[d] * shape[d]
                withUnsafeMutableBytes(of: &idx) { $0.storeBytes(of: 0, toByteOffset: d * 8, as: Int.self) }
                d -= 1
            }
        }
    }

    @inline(__always)
    static func combine(_ op: BinaryOp, _ x: Float, _ y: Float) -> Float {
        switch op {
        case .add: return x + y
        case .sub: return x - y
        case .mul: return x * y
        case .div: return x / y
        case .copyFirst: return x
        }
    }

    static func innerLoop(_ op: BinaryOp, _ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ sa: Int,
                          _ b: UnsafePointer<Float>, _ sb: Int, _ n: Int) {
        if sa == 1 && sb == 1 {
            switch op {
            case .add: for i in 0..<n { dst[i] = a[i] + b[i] }
            case .sub: for i in 0..<n { dst[i] = a[i] - b[i] }
            case .mul: for i in 0..<n { dst[i] = a[i] * b[i] }
            case .div: for i in 0..<n { dst[i] = a[i] / b[i] }
            case .copyFirst: dst.update(from: a, count: n)
            }
        } else if sa == 1 && sb == 0 {
            let y = b[0]
            switch op {
            case .add: for i in 0..<n { dst[i] = a[i] + y }
            case .sub: for i in 0..<n { dst[i] = a[i] - y }
            case .mul: for i in 0..<n { dst[i] = a[i] * y }
            case .div: for i in 0..<n { dst[i] = a[i] / y }
            case .copyFirst: dst.update(from: a, count: n)
            }
        } else {
            for i in 0..<n { dst[i] = combine(op, a[i * sa], b[i * sb]) }
        }
    }

    /// Drops size-1 dims and merges dims that are contiguous for the output and all operands.
    static func coalesce(shape: [Int], strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
        var s: [Int] = []
        var st: [[Int]] = Array(repeating: [], count: strides.count)
        for d in 0..<shape.count where shape[d] != 1 {
            if let last = s.last {
                var mergeable = true
                for k in 0..<strides.count where strides[k][d] * shape[d] != st[k].last! && !(strides[k][d] == 0 && st[k].last! == 0) {
                    mergeable = false
                }
                // Output is contiguous, so merging is valid when every operand is too.
                if mergeable {
                    s[s.count - 1] = last * shape[d]
                    for k in 0..<strides.count { st[k][st[k].count - 1] = strides[k][d] }
                    continue
                }
            }
            s.append(shape[d])
            for k in 0..<strides.count { st[k].append(strides[k][d]) }
        }
        if s.isEmpty { return ([1], strides.map { _ in [0] }) }
        return (s, st)
    }

    /// NHWC convolution input gather: rows [m0, m0+rows) of the im2col matrix for group `g`.
    static func im2col(x: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>, p: ConvGeometry, m0: Int, rows: Int, group: Int) {
        let cg = p.cin / p.groups
        let kkc = p.kh * p.kw * cg
        let hw = p.ho * p.wo
        for r in 0..<rows {
            let m = m0 + r
            let n = m / hw
            let rem = m - n * hw
            let oh = rem / p.wo
            let ow = rem - oh * p.wo
            var dst = col + r * kkc
            let base = x + n * p.h * p.w * p.cin + group * cg
            for i in 0..<p.kh {
                let ih = oh * p.sh - p.pt + i * p.dh
                if ih < 0 || ih >= p.h {
                    dst.update(repeating: 0, count: p.kw * cg)
                    dst += p.kw * cg
                    continue
                }
                let rowBase = base + ih * p.w * p.cin
                for j in 0..<p.kw {
                    let iw = ow * p.sw - p.pl + j * p.dw
                    if iw < 0 || iw >= p.w {
                        dst.update(repeating: 0, count: cg)
                    } else {
                        dst.update(from: rowBase + iw * p.cin, count: cg)
                    }
                    dst += cg
                }
            }
        }
    }

    /// Depthwise convolution in NHWC (one filter per channel, weights [kh][kw][C]); vectorised along C.
    static func depthwise(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>,
                          p: ConvGeometry, batch: Int) {
        let c = p.cin
        for n in 0..<batch {
            let xin = x + n * p.h * p.w * c
            for oh in 0..<p.ho {
                for ow in 0..<p.wo {
                    let out = y + ((n * p.ho + oh) * p.wo + ow) * c
                    out.update(repeating: 0, count: c)
                    for i in 0..<p.kh {
                        let ih = oh * p.sh - p.pt + i * p.dh
                        if ih < 0 || ih >= p.h { continue }
                        for j in 0..<p.kw {
                            let iw = ow * p.sw - p.pl + j * p.dw
                            if iw < 0 || iw >= p.w { continue }
                            let src = xin + (ih * p.w + iw) * c
                            let wk = w + (i * p.kw + j) * c
                            for ch in 0..<c { out[ch] += src[ch] * wk[ch] }
                        }
                    }
                }
            }
        }
    }
}

/// Spatial geometry of a convolution or pooling window over an NHWC tensor.
struct ConvGeometry: Sendable {
    var h, w, cin: Int
    var ho, wo, cout: Int
    var kh, kw: Int
    var sh, sw: Int
    var dh, dw: Int
    var pt, pl, pb, pr: Int
    var groups: Int
}
