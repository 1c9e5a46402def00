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
// One function per tile height MR (a literal in each), with the accumulators as named variables
// rather than arrays: arrays indexed by a loop variable ended up on the stack, one load and store per
// FMA. Rows past MR (an enum constant) are dead code after constant folding. AVX-512: MR ≤ 8 rows × 32 columns,
// 2 MR accumulators + 2 B vectors + 1 broadcast of the 32 zmm.
#define BEAND_NET_ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define BEAND_NET_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define BEAND_NET_A_DECL(i) const float *a##i = a + (MR > i ? (size_t)i * lda : 0);
#define BEAND_NET_ACC512(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
#define BEAND_NET_FMA512(i) if (MR > i) { const __m512 x = _mm512_set1_ps(a##i[p]); \
    c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1); }
#define BEAND_NET_STORE512(i) if (MR > i) { float *ci = c + (size_t)i * ldc; \
    if (accumulate) { c##i##0 = _mm512_add_ps(c##i##0, _mm512_maskz_loadu_ps(m0, ci)); \
                      c##i##1 = _mm512_add_ps(c##i##1, _mm512_maskz_loadu_ps(m1, ci + 16)); } \
    _mm512_mask_storeu_ps(ci, m0, c##i##0); _mm512_mask_storeu_ps(ci + 16, m1, c##i##1); }

#define BEAND_NET_TILE512(N) \
__attribute__((target("avx512f"))) \
static inline void beand_net_tile_avx512_##N(size_t k, const float *a, size_t lda, const float *bp, float *c, \
                                             size_t ldc, __mmask16 m0, __mmask16 m1, int accumulate) { \
    enum { MR = N }; \
    BEAND_NET_ROWS8(BEAND_NET_A_DECL) \
    BEAND_NET_ROWS8(BEAND_NET_ACC512) \
    for (size_t p = 0; p < k; p++) { \
        const __m512 b0 = _mm512_loadu_ps(bp + p * 32), b1 = _mm512_loadu_ps(bp + p * 32 + 16); \
        BEAND_NET_ROWS8(BEAND_NET_FMA512) \
    } \
    BEAND_NET_ROWS8(BEAND_NET_STORE512) \
}
BEAND_NET_TILE512(1)
BEAND_NET_TILE512(2)
BEAND_NET_TILE512(3)
BEAND_NET_TILE512(4)
BEAND_NET_TILE512(5)
BEAND_NET_TILE512(6)
BEAND_NET_TILE512(7)
BEAND_NET_TILE512(8)

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
                case 1: beand_net_tile_avx512_1(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 2: beand_net_tile_avx512_2(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 3: beand_net_tile_avx512_3(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 4: beand_net_tile_avx512_4(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 5: beand_net_tile_avx512_5(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 6: beand_net_tile_avx512_6(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                case 7: beand_net_tile_avx512_7(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                default: beand_net_tile_avx512_8(kc, ai, lda, panel, ci, ldc, m0, m1, acc); break;
                }
            }
        }
    }
}

// AVX2: MR ≤ 6 rows × 16 columns, 2 MR accumulators + 2 B vectors + 1 broadcast of the 16 ymm.
#define BEAND_NET_ACC256(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
#define BEAND_NET_FMA256(i) if (MR > i) { const __m256 x = _mm256_broadcast_ss(a##i + p); \
    c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0); c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1); }
#define BEAND_NET_STORE256(i) if (MR > i) { float *ci = c + (size_t)i * ldc; \
    if (cols == 16) { \
        if (accumulate) { c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(ci)); \
                          c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(ci + 8)); } \
        _mm256_storeu_ps(ci, c##i##0); _mm256_storeu_ps(ci + 8, c##i##1); \
    } else { \
        float t[16]; _mm256_storeu_ps(t, c##i##0); _mm256_storeu_ps(t + 8, c##i##1); \
        for (size_t j = 0; j < cols; j++) ci[j] = accumulate ? ci[j] + t[j] : t[j]; \
    } }

#define BEAND_NET_TILE256(N) \
__attribute__((target("avx2,fma"))) \
static inline void beand_net_tile_avx2_##N(size_t k, const float *a, size_t lda, const float *bp, float *c, \
                                           size_t ldc, size_t cols, int accumulate) { \
    enum { MR = N }; \
    BEAND_NET_ROWS6(BEAND_NET_A_DECL) \
    BEAND_NET_ROWS6(BEAND_NET_ACC256) \
    for (size_t p = 0; p < k; p++) { \
        const __m256 b0 = _mm256_loadu_ps(bp + p * 16), b1 = _mm256_loadu_ps(bp + p * 16 + 8); \
        BEAND_NET_ROWS6(BEAND_NET_FMA256) \
    } \
    BEAND_NET_ROWS6(BEAND_NET_STORE256) \
}
BEAND_NET_TILE256(1)
BEAND_NET_TILE256(2)
BEAND_NET_TILE256(3)
BEAND_NET_TILE256(4)
BEAND_NET_TILE256(5)
BEAND_NET_TILE256(6)

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
                case 1: beand_net_tile_avx2_1(kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 2: beand_net_tile_avx2_2(kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 3: beand_net_tile_avx2_3(kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 4: beand_net_tile_avx2_4(kc, ai, lda, panel, ci, ldc, cols, acc); break;
                case 5: beand_net_tile_avx2_5(kc, ai, lda, panel, ci, ldc, cols, acc); break;
                default: beand_net_tile_avx2_6(kc, ai, lda, panel, ci, ldc, cols, acc); break;
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
