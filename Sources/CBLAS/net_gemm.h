#ifndef BEAND_NET_GEMM_H
#define BEAND_NET_GEMM_H
// BeanNet's GEMM for few rows against constant weights: C[m×n] (ldc) = A[m×k] (lda) · B[k×n], with B
// packed once at model load into column panels of NR floats ([n/NR][k][NR], last panel zero-padded).
// OpenBLAS re-packs B on every call, which dominates when m is small (batch-1 late layers: 1–64
// rows); here the packed panels are read straight from memory by the micro-kernel, A is not packed
// (its rows are broadcast element by element). Swift cannot pick the instruction set per function,
// so the AVX-512 and AVX2+FMA variants are target-attributed static inline functions chosen at run
// time (beand_net_cpu_level); level 0 has no kernel and callers keep using cblas_sgemm.
#include <stddef.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// 2 = AVX-512F, 1 = AVX2 + FMA, 0 = no packed kernel on this CPU.
static inline int beand_net_cpu_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/// Panel width (floats) of the packed layout for a level; 0 when the level has no kernel.
static inline size_t beand_net_gemm_nr(int level) { return level == 2 ? 32 : (level == 1 ? 16 : 0); }

/// Floats needed for a packed k×n matrix with panel width nr.
static inline size_t beand_net_packed_count(size_t k, size_t n, size_t nr) { return (n + nr - 1) / nr * nr * k; }

/// Packs row-major B (k×n, leading dimension ldb) into panels of nr columns.
static inline void beand_net_pack(const float *b, size_t ldb, size_t k, size_t n, size_t nr, float *out) {
    for (size_t j0 = 0; j0 < n; j0 += nr) {
        size_t cols = n - j0 < nr ? n - j0 : nr;
        float *panel = out + j0 / nr * k * nr;
        for (size_t p = 0; p < k; p++) {
            const float *src = b + p * ldb + j0;
            float *dst = panel + p * nr;
            for (size_t j = 0; j < cols; j++) dst[j] = src[j];
            for (size_t j = cols; j < nr; j++) dst[j] = 0;
        }
    }
}

// K is split into blocks so a panel slice (KC × NR floats, 32 KiB at NR 32) stays in L1 while the
// row blocks of A go past it; later blocks add onto C.
#define BEAND_NET_KC 256

#if defined(__x86_64__)
// mr rows × 32 columns. mr is a constant at every call site (the switch below), so after inlining
// the row loops unroll and the accumulators live in registers (2 mr + 3 of the 32 zmm).
__attribute__((target("avx512f"), always_inline))
static inline void beand_net_tile_avx512(const int mr, size_t k, const float *a, size_t lda, const float *bp,
                                         float *c, size_t ldc, __mmask16 m0, __mmask16 m1, int accumulate) {
    __m512 acc0[8], acc1[8];
    for (int i = 0; i < mr; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    for (size_t p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(bp + p * 32), b1 = _mm512_loadu_ps(bp + p * 32 + 16);
        for (int i = 0; i < mr; i++) {
            const __m512 x = _mm512_set1_ps(a[(size_t)i * lda + p]);
            acc0[i] = _mm512_fmadd_ps(x, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(x, b1, acc1[i]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        if (accumulate) {
            acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, ci));
            acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        _mm512_mask_storeu_ps(ci, m0, acc0[i]);
        _mm512_mask_storeu_ps(ci + 16, m1, acc1[i]);
    }
}

__attribute__((target("avx512f")))
static inline void beand_net_gemm_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda,
                                         const float *bp, float *c, size_t ldc) {
    for (size_t k0 = 0; k0 < k; k0 += BEAND_NET_KC) {
        const size_t kc = k - k0 < BEAND_NET_KC ? k - k0 : BEAND_NET_KC;
        const int acc = k0 > 0;
        for (size_t j0 = 0; j0 < n; j0 += 32) {
            const size_t cols = n - j0 < 32 ? n - j0 : 32;
            const __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
            const __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : (cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1));
            const float *panel = bp + j0 * k + k0 * 32;
            for (size_t i0 = 0; i0 < m; i0 += 8) {
                const float *ai = a + i0 * lda + k0;
                float *ci = c + i0 * ldc + j0;
                switch (m - i0 < 8 ? m - i0 : 8) {
                case 1: beand_net_tile_avx512(1, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 2: beand_net_tile_avx512(2, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 3: beand_net_tile_avx512(3, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 4: beand_net_tile_avx512(4, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 5: beand_net_tile_avx512(5, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 6: beand_net_tile_avx512(6, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 7: beand_net_tile_avx512(7, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                default: beand_net_tile_avx512(8, kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                }
            }
        }
    }
}

// mr rows × 16 columns: 2 mr accumulators + 3 of the 16 ymm.
__attribute__((target("avx2,fma"), always_inline))
static inline void beand_net_tile_avx2(const int mr, size_t k, const float *a, size_t lda, const float *bp,
                                       float *c, size_t ldc, size_t cols, int accumulate) {
    __m256 acc0[6], acc1[6];
    for (int i = 0; i < mr; i++) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
    for (size_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(bp + p * 16), b1 = _mm256_loadu_ps(bp + p * 16 + 8);
        for (int i = 0; i < mr; i++) {
            const __m256 x = _mm256_broadcast_ss(a + (size_t)i * lda + p);
            acc0[i] = _mm256_fmadd_ps(x, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(x, b1, acc1[i]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        if (cols == 16) {
            if (accumulate) {
                acc0[i] = _mm256_add_ps(acc0[i], _mm256_loadu_ps(ci));
                acc1[i] = _mm256_add_ps(acc1[i], _mm256_loadu_ps(ci + 8));
            }
            _mm256_storeu_ps(ci, acc0[i]);
            _mm256_storeu_ps(ci + 8, acc1[i]);
        } else {
            float t[16];
            _mm256_storeu_ps(t, acc0[i]);
            _mm256_storeu_ps(t + 8, acc1[i]);
            for (size_t j = 0; j < cols; j++) ci[j] = accumulate ? ci[j] + t[j] : t[j];
        }
    }
}

__attribute__((target("avx2,fma")))
static inline void beand_net_gemm_avx2(size_t m, size_t n, size_t k, const float *a, size_t lda,
                                       const float *bp, float *c, size_t ldc) {
    for (size_t k0 = 0; k0 < k; k0 += BEAND_NET_KC) {
        const size_t kc = k - k0 < BEAND_NET_KC ? k - k0 : BEAND_NET_KC;
        const int acc = k0 > 0;
        for (size_t j0 = 0; j0 < n; j0 += 16) {
            const size_t cols = n - j0 < 16 ? n - j0 : 16;
            const float *panel = bp + j0 * k + k0 * 16;
            for (size_t i0 = 0; i0 < m; i0 += 6) {
                const float *ai = a + i0 * lda + k0;
                float *ci = c + i0 * ldc + j0;
                switch (m - i0 < 6 ? m - i0 : 6) {
                case 1: beand_net_tile_avx2(1, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 2: beand_net_tile_avx2(2, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 3: beand_net_tile_avx2(3, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 4: beand_net_tile_avx2(4, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 5: beand_net_tile_avx2(5, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                default: beand_net_tile_avx2(6, kc, ai, lda, panel, ci, ldc, cols, acc); break;
                }
            }
        }
    }
}
#endif

/// C = A · B with B packed by beand_net_pack at beand_net_gemm_nr(level). Returns 0 (and computes
/// nothing) when the level has no kernel, so the caller falls back to cblas_sgemm.
static inline int beand_net_gemm(int level, size_t m, size_t n, size_t k, const float *a, size_t lda,
                                 const float *bp, float *c, size_t ldc) {
    if (k == 0 && beand_net_gemm_nr(level) != 0) {
        for (size_t i = 0; i < m; i++) for (size_t j = 0; j < n; j++) c[i * ldc + j] = 0;
        return 1;
    }
#if defined(__x86_64__)
    if (level == 2) { beand_net_gemm_avx512(m, n, k, a, lda, bp, c, ldc); return 1; }
    if (level == 1) { beand_net_gemm_avx2(m, n, k, a, lda, bp, c, ldc); return 1; }
#endif
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)bp; (void)c; (void)ldc;
    return 0;
}

#endif
