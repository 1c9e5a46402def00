import CBLAS
import Foundation

/// GEMMs with few rows against constant weights, on weights packed once at load (net_gemm.h).
///
/// With one image per run the late layers multiply 1–64 rows by a large weight matrix; OpenBLAS
/// re-packs that matrix on every call, which cost more than the arithmetic. The packed kernel reads
/// the panels as they lie. Calls above `maxRows` rows (and CPUs without AVX2+FMA) keep using
/// cblas_sgemm, whose packing is amortised there. 1024 measured at least as fast as 256 at batch 1,
/// 8 and 32 (ResNet-18, 64×64) and within noise of no limit (BENCHMARKS.md).
enum PackedGemm {
    /// Instruction-set level of the kernel: 2 AVX-512F, 1 AVX2+FMA, 0 none (cblas_sgemm only).
    /// `BEAND_NET_GEMM=avx512|avx2|blas` picks it (A/B benchmarks, tests of each path on one machine);
    /// it never goes above what the CPU has. Debug builds default to cblas_sgemm: they compile the
    /// header's intrinsics unoptimised, which made ResNet-18 at batch 1 six times slower than OpenBLAS
    /// and the debug-built daemon miss its pipeline deadlines.
    static let level: Int32 = {
        let cpu = beand_net_cpu_level()
        switch ProcessInfo.processInfo.environment["BEAND_NET_GEMM"] {
        case "blas": return 0
        case "avx2": return min(cpu, 1)
        case "avx512": return cpu
        default:
            #if DEBUG
            return 0
            #else
            return cpu
            #endif
        }
    }()

    /// Largest rows per call that go to the packed kernel (`BEAND_NET_GEMM_MAX_ROWS` overrides, for tuning).
    static let maxRows: Int = {
        if let text = ProcessInfo.processInfo.environment["BEAND_NET_GEMM_MAX_ROWS"], let v = Int(text), v >= 0 { return v }
        return 1024
    }()

    static func panelWidth(level: Int32) -> Int { Int(beand_net_gemm_nr(level)) }

    /// Floats of one packed k×n matrix.
    static func packedCount(k: Int, n: Int, level: Int32) -> Int {
        Int(beand_net_packed_count(k, n, beand_net_gemm_nr(level)))
    }

    /// Packs `slices` consecutive row-major k×n matrices (the per-group or per-Winograd-tap operands)
    /// one after another, each `packedCount(k:n:level:)` floats long. Level must have a kernel.
    static func pack(_ b: [Float], k: Int, n: Int, slices: Int, level: Int32) -> [Float] {
        let nr = beand_net_gemm_nr(level)
        precondition(nr > 0 && b.count >= slices * k * n, "PackedGemm.pack: level \(level), \(b.count) floats for \(slices)×\(k)×\(n)")
        let stride = packedCount(k: k, n: n, level: level)
        var out = [Float](repeating: 0, count: slices * stride)
        b.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for i in 0..<slices { beand_net_pack(s + i * k * n, n, k, n, nr, d + i * stride) }
            }
        }
        return out
    }

    /// C[m×n] (ldc) = A[m×k] (lda) · B, with B packed at `level`.
    @inline(__always)
    static func gemm(level: Int32, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     packed: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let done = beand_net_gemm(level, m, n, k, a, lda, packed, c, ldc)
        assert(done == 1, "PackedGemm.gemm called at level \(level), which has no kernel")
    }
}
