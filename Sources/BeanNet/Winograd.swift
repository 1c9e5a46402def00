/// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions in NHWC: 16 sgemm calls over transformed
/// 4×4 input tiles replace the 9-tap im2col product, cutting multiplies by 2.25× (and never
/// multiplying padding taps of small feature maps).
enum Winograd {
    /// U = G g Gᵀ for every (cin, cout), stored [16][Cin][Cout] (the K×N operands of the 16 sgemms).
    static func transformWeights(_ w: [Float], cout: Int, cin: Int) -> [Float] {
        var u = [Float](repeating: 0, count: 16 * cin * cout)
        for o in 0..<cout {
            for c in 0..<cin {
                let g = (0..<9).map { w[(o * cin + c) * 9 + $0] }
                // t = G g (4×3)
                var t = [Float](repeating: 0, count: 12)
                for j in 0..<3 {
                    let g0 = g[j], g1 = g[3 + j], g2 = g[6 + j]
                    t[j] = g0
                    t[3 + j] = 0.5 * (g0 + g1 + g2)
                    t[6 + j] = 0.5 * (g0 - g1 + g2)
                    t[9 + j] = g2
                }
                // U = t Gᵀ (4×4)
                for i in 0..<4 {
                    let t0 = t[i * 3], t1 = t[i * 3 + 1], t2 = t[i * 3 + 2]
                    let row = [t0, 0.5 * (t0 + t1 + t2), 0.5 * (t0 - t1 + t2), t2]
                    for j in 0..<4 { u[((i * 4 + j) * cin + c) * cout + o] = row[j] }
                }
            }
        }
        return u
    }

    /// Input transform V = Bᵀ d B for tiles [t0, t0+count) into v[16][count][C].
    static func transformInput(x: UnsafePointer<Float>, v: UnsafeMutablePointer<Float>, g: ConvGeometry,
                               tilesH: Int, tilesW: Int, t0: Int, count: Int, zero: UnsafePointer<Float>) {
        let c = g.cin
        let plane = count * c
        let perImage = tilesH * tilesW
        for k in 0..<count {
            let t = t0 + k
            let n = t / perImage
            let rem = t - n * perImage
            let ty = rem / tilesW, tx = rem - ty * tilesW
            let y0 = 2 * ty - g.pt, x0 = 2 * tx - g.pl
            let base = x + n * g.h * g.w * c
            // Rows of the 4×4 patch (zero vector outside the image).
            @inline(__always) func at(_ i: Int, _ j: Int) -> UnsafePointer<Float> {
                let yy = y0 + i, xx = x0 + j
                return yy >= 0 && yy < g.h && xx >= 0 && xx < g.w ? base + (yy * g.w + xx) * c : zero
            }
            let d00 = at(0, 0), d01 = at(0, 1), d02 = at(0, 2), d03 = at(0, 3)
            let d10 = at(1, 0), d11 = at(1, 1), d12 = at(1, 2), d13 = at(1, 3)
            let d20 = at(2, 0), d21 = at(2, 1), d22 = at(2, 2), d23 = at(2, 3)
            let d30 = at(3, 0), d31 = at(3, 1), d32 = at(3, 2), d33 = at(3, 3)
            let out = v + k * c
            var start = 0
            // 8 channels at a time with explicit SIMD (the 16 input rows may alias for the compiler,
            // so it does not vectorise the scalar loop). Unoptimised builds box SIMD values on the
            // heap, so debug builds take the scalar loop and keep inference allocation-free.
            #if !DEBUG
            while start + 8 <= c {
                typealias V8 = SIMD8<Float>
                @inline(__always) func ld(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p + start).loadUnaligned(as: V8.self) }
                @inline(__always) func st(_ i: Int, _ value: V8) { UnsafeMutableRawPointer(out + i * plane + start).storeBytes(of: value, as: V8.self) }
                let t00 = ld(d00) - ld(d20), t01 = ld(d01) - ld(d21), t02 = ld(d02) - ld(d22), t03 = ld(d03) - ld(d23)
                let t10 = ld(d10) + ld(d20), t11 = ld(d11) + ld(d21), t12 = ld(d12) + ld(d22), t13 = ld(d13) + ld(d23)
                let t20 = ld(d20) - ld(d10), t21 = ld(d21) - ld(d11), t22 = ld(d22) - ld(d12), t23 = ld(d23) - ld(d13)
                let t30 = ld(d10) - ld(d30), t31 = ld(d11) - ld(d31), t32 = ld(d12) - ld(d32), t33 = ld(d13) - ld(d33)
                st(0, t00 - t02); st(1, t01 + t02); st(2, t02 - t01); st(3, t01 - t03)
                st(4, t10 - t12); st(5, t11 + t12); st(6, t12 - t11); st(7, t11 - t13)
                st(8, t20 - t22); st(9, t21 + t22); st(10, t22 - t21); st(11, t21 - t23)
                st(12, t30 - t32); st(13, t31 + t32); st(14, t32 - t31); st(15, t31 - t33)
                start += 8
            }
            #endif
            for ch in start..<c {
                // t = Bᵀ d (rows), then V = t B (columns).
                let t00 = d00[ch] - d20[ch], t01 = d01[ch] - d21[ch], t02 = d02[ch] - d22[ch], t03 = d03[ch] - d23[ch]
                let t10 = d10[ch] + d20[ch], t11 = d11[ch] + d21[ch], t12 = d12[ch] + d22[ch], t13 = d13[ch] + d23[ch]
                let t20 = d20[ch] - d10[ch], t21 = d21[ch] - d11[ch], t22 = d22[ch] - d12[ch], t23 = d23[ch] - d13[ch]
                let t30 = d10[ch] - d30[ch], t31 = d11[ch] - d31[ch], t32 = d12[ch] - d32[ch], t33 = d13[ch] - d33[ch]
                out[0 * plane + ch] = t00 - t02; out[1 * plane + ch] = t01 + t02
                out[2 * plane + ch] = t02 - t01; out[3 * plane + ch] = t01 - t03
                out[4 * plane + ch] = t10 - t12; out[5 * plane + ch] = t11 + t12
                out[6 * plane + ch] = t12 - t11; out[7 * plane + ch] = t11 - t13
                out[8 * plane + ch] = t20 - t22; out[9 * plane + ch] = t21 + t22
                out[10 * plane + ch] = t22 - t21; out[11 * plane + ch] = t21 - t23
                out[12 * plane + ch] = t30 - t32; out[13 * plane + ch] = t31 + t32
                out[14 * plane + ch] = t32 - t31; out[15 * plane + ch] = t31 - t33
            }
        }
    }

    /// Output transform Y = Aᵀ m A for tiles [t0, t0+count) from m[16][count][Cout], with the
    /// bias/residual/activation epilogue, into y (NHWC). Cells outside the output go to `discard`.
    static func transformOutput(m: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, g: ConvGeometry,
                                tilesH: Int, tilesW: Int, t0: Int, count: Int, discard: UnsafeMutablePointer<Float>,
                                bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation) {
        let c = g.cout
        let plane = count * c
        let perImage = tilesH * tilesW
        for k in 0..<count {
            let t = t0 + k
            let n = t / perImage
            let rem = t - n * perImage
            let ty = rem / tilesW, tx = rem - ty * tilesW
            let oy = 2 * ty, ox = 2 * tx
            let outBase = n * g.ho * g.wo
            let in1 = oy + 1 < g.ho, inR = ox + 1 < g.wo
            let p00 = outBase + oy * g.wo + ox
            let p01 = p00 + 1, p10 = p00 + g.wo, p11 = p10 + 1
            let y00 = y + p00 * c
            let y01 = inR ? y + p01 * c : discard
            let y10 = in1 ? y + p10 * c : discard
            let y11 = in1 && inR ? y + p11 * c : discard
            let s = m + k * c
            var start = 0
            #if !DEBUG
            while start + 8 <= c {
                typealias V8 = SIMD8<Float>
                @inline(__always) func ld(_ i: Int) -> V8 { UnsafeRawPointer(s + i * plane + start).loadUnaligned(as: V8.self) }
                let a0 = ld(0) + ld(4) + ld(8), a1 = ld(1) + ld(5) + ld(9), a2 = ld(2) + ld(6) + ld(10), a3 = ld(3) + ld(7) + ld(11)
                let b0 = ld(4) - ld(8) - ld(12), b1 = ld(5) - ld(9) - ld(13), b2 = ld(6) - ld(10) - ld(14), b3 = ld(7) - ld(11) - ld(15)
                UnsafeMutableRawPointer(y00 + start).storeBytes(of: a0 + a1 + a2, as: V8.self)
                UnsafeMutableRawPointer(y01 + start).storeBytes(of: a1 - a2 - a3, as: V8.self)
                UnsafeMutableRawPointer(y10 + start).storeBytes(of: b0 + b1 + b2, as: V8.self)
                UnsafeMutableRawPointer(y11 + start).storeBytes(of: b1 - b2 - b3, as: V8.self)
                start += 8
            }
            #endif
            for ch in start..<c {
                let m00 = s[ch], m01 = s[plane + ch], m02 = s[2 * plane + ch], m03 = s[3 * plane + ch]
                let m10 = s[4 * plane + ch], m11 = s[5 * plane + ch], m12 = s[6 * plane + ch], m13 = s[7 * plane + ch]
                let m20 = s[8 * plane + ch], m21 = s[9 * plane + ch], m22 = s[10 * plane + ch], m23 = s[11 * plane + ch]
                let m30 = s[12 * plane + ch], m31 = s[13 * plane + ch], m32 = s[14 * plane + ch], m33 = s[15 * plane + ch]
                let a0 = m00 + m10 + m20, a1 = m01 + m11 + m21, a2 = m02 + m12 + m22, a3 = m03 + m13 + m23
                let b0 = m10 - m20 - m30, b1 = m11 - m21 - m31, b2 = m12 - m22 - m32, b3 = m13 - m23 - m33
                y00[ch] = a0 + a1 + a2
                y01[ch] = a1 - a2 - a3
                y10[ch] = b0 + b1 + b2
                y11[ch] = b1 - b2 - b3
            }
            if bias != nil || residual != nil || activation != .none {
                finish(y00, p00, c, bias, residual, activation)
                if inR { finish(y01, p01, c, bias, residual, activation) }
                if in1 { finish(y10, p10, c, bias, residual, activation) }
                if in1 && inR { finish(y11, p11, c, bias, residual, activation) }
            }
        }
    }

    @inline(__always)
    static func finish(_ dst: UnsafeMutablePointer<Float>, _ pos: Int, _ c: Int, _ bias: UnsafePointer<Float>?,
                       _ residual: UnsafePointer<Float>?, _ activation: Activation) {
        var res: UnsafePointer<Float>?
        if let residual { res = residual + pos * c }
        Kernels.epilogue(dst, rows: 1, cols: c, ldy: c, bias: bias, residual: res, ldr: c, activation: activation)
    }
}
