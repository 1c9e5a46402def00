#ifndef BEAND_STORE_KERNELS_H
#define BEAND_STORE_KERNELS_H
// BeanStore's float32 scan kernels. Swift cannot choose the instruction set per function, so the
// AVX-512 and AVX2+FMA variants live here as target-attributed static inline functions, picked
// at run time (beand_store_cpu_level); the scalar variants keep any x86-64 (and other CPUs) working.
// Rows are padded with zeros to a multiple of 16 floats, so every kernel runs over whole vectors.
#include <stddef.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// 2 = AVX-512F, 1 = AVX2 + FMA, 0 = scalar.
static inline int beand_store_cpu_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

// ---- dots[i] = <q, rows + i * stride> over `len` floats (len, stride: multiples of 16) ----

static inline void beand_store_dots_scalar(const float *q, const float *rows, size_t stride, size_t len,
                                           size_t n, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * stride;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t c = 0; c < len; c += 4) {
            s0 += q[c] * r[c]; s1 += q[c + 1] * r[c + 1]; s2 += q[c + 2] * r[c + 2]; s3 += q[c + 3] * r[c + 3];
        }
        out[i] = (s0 + s1) + (s2 + s3);
    }
}

#if defined(__x86_64__)
// One row at a time, two accumulators: a single sequential stream measured faster here than four
// interleaved rows (which need fewer reductions but prefetch worse).
__attribute__((target("avx512f")))
static inline void beand_store_dots_avx512(const float *q, const float *rows, size_t stride, size_t len,
                                           size_t n, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        size_t c = 0;
        for (; c + 32 <= len; c += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_load_ps(r + c), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + c + 16), _mm512_load_ps(r + c + 16), a1);
        }
        if (c < len) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_load_ps(r + c), a0);
        out[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

__attribute__((target("avx2,fma")))
static inline void beand_store_dots_avx2(const float *q, const float *rows, size_t stride, size_t len,
                                         size_t n, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (size_t c = 0; c < len; c += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_load_ps(r + c), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), _mm256_load_ps(r + c + 8), a1);
        }
        __m256 a = _mm256_add_ps(a0, a1);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_hadd_ps(s, s); s = _mm_hadd_ps(s, s);
        out[i] = _mm_cvtss_f32(s);
    }
}
#endif

static inline void beand_store_dots(int level, const float *q, const float *rows, size_t stride, size_t len,
                                    size_t n, float *out) {
#if defined(__x86_64__)
    if (level == 2) { beand_store_dots_avx512(q, rows, stride, len, n, out); return; }
    if (level == 1) { beand_store_dots_avx2(q, rows, stride, len, n, out); return; }
#endif
    beand_store_dots_scalar(q, rows, stride, len, n, out);
}

// ---- ranking scores below a threshold ----
// score = aux[i] - 2 * dots[i] (l2: aux = squared norms) or -dots[i] * aux[i] (cosine: aux = 1/|x|).
// Writes the scores < threshold and their row numbers (first_row + i); returns how many.

static inline size_t beand_store_filter_scalar(const float *dots, const float *aux, int l2, size_t n, float threshold,
                                               uint32_t first_row, uint32_t *rows_out, float *scores_out) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        float s = l2 ? aux[i] - 2 * dots[i] : -dots[i] * aux[i];
        if (s < threshold) { rows_out[count] = first_row + (uint32_t)i; scores_out[count] = s; count++; }
    }
    return count;
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static inline size_t beand_store_filter_avx512(const float *dots, const float *aux, int l2, size_t n, float threshold,
                                               uint32_t first_row, uint32_t *rows_out, float *scores_out) {
    size_t count = 0, i = 0;
    const __m512 t = _mm512_set1_ps(threshold), minus2 = _mm512_set1_ps(-2.0f), zero = _mm512_setzero_ps();
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_loadu_ps(dots + i), a = _mm512_loadu_ps(aux + i);
        __m512 s = l2 ? _mm512_add_ps(a, _mm512_mul_ps(minus2, d)) : _mm512_mul_ps(_mm512_sub_ps(zero, d), a);
        __mmask16 m = _mm512_cmp_ps_mask(s, t, _CMP_LT_OQ);
        if (m) {
            _mm512_mask_compressstoreu_ps(scores_out + count, m, s);
            _mm512_mask_compressstoreu_epi32(rows_out + count, m,
                                             _mm512_add_epi32(lanes, _mm512_set1_epi32((int)(first_row + i))));
            count += (size_t)__builtin_popcount((unsigned)m);
        }
    }
    return count + beand_store_filter_scalar(dots + i, aux + i, l2, n - i, threshold, first_row + (uint32_t)i,
                                             rows_out + count, scores_out + count);
}

__attribute__((target("avx2,fma")))
static inline size_t beand_store_filter_avx2(const float *dots, const float *aux, int l2, size_t n, float threshold,
                                             uint32_t first_row, uint32_t *rows_out, float *scores_out) {
    size_t count = 0, i = 0;
    const __m256 t = _mm256_set1_ps(threshold), minus2 = _mm256_set1_ps(-2.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_loadu_ps(dots + i), a = _mm256_loadu_ps(aux + i);
        __m256 s = l2 ? _mm256_add_ps(a, _mm256_mul_ps(minus2, d)) : _mm256_mul_ps(_mm256_sub_ps(zero, d), a);
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s, t, _CMP_LT_OQ));
        if (m) {
            float lanes[8];
            _mm256_storeu_ps(lanes, s);
            while (m) {
                unsigned b = (unsigned)__builtin_ctz(m);
                rows_out[count] = first_row + (uint32_t)(i + b);
                scores_out[count] = lanes[b];
                count++;
                m &= m - 1;
            }
        }
    }
    return count + beand_store_filter_scalar(dots + i, aux + i, l2, n - i, threshold, first_row + (uint32_t)i,
                                             rows_out + count, scores_out + count);
}
#endif

static inline size_t beand_store_filter(int level, const float *dots, const float *aux, int l2, size_t n, float threshold,
                                        uint32_t first_row, uint32_t *rows_out, float *scores_out) {
#if defined(__x86_64__)
    if (level == 2) return beand_store_filter_avx512(dots, aux, l2, n, threshold, first_row, rows_out, scores_out);
    if (level == 1) return beand_store_filter_avx2(dots, aux, l2, n, threshold, first_row, rows_out, scores_out);
#endif
    return beand_store_filter_scalar(dots, aux, l2, n, threshold, first_row, rows_out, scores_out);
}

// ---- batches: fused dot products and top-k filter, up to 64 queries against a block of rows ----
// qt holds the queries transposed and zero-padded: qt[c * 64 + j] = query j, component c. For each
// row, the 64 query scores stay in registers and are compared with the per-query thresholds; only
// (query, row, score) triples below a threshold are written out. Stops early when the candidate
// buffer could overflow (capacity >= 4 * 64); returns the rows processed, *found the triples.

#if defined(__x86_64__)
__attribute__((target("avx512f"), always_inline))
static inline void beand_store_batch_emit(__m512 acc, __m512 t, float aux, int l2, int j, uint32_t row,
                                          uint32_t *q_out, uint32_t *row_out, float *score_out, size_t *found) {
    __m512 s = l2 ? _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), acc, _mm512_set1_ps(aux))
                  : _mm512_mul_ps(acc, _mm512_set1_ps(-aux));
    __mmask16 m = _mm512_cmp_ps_mask(s, t, _CMP_LT_OQ);
    if (m) {
        const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm512_mask_compressstoreu_ps(score_out + *found, m, s);
        _mm512_mask_compressstoreu_epi32(q_out + *found, m, _mm512_add_epi32(lanes, _mm512_set1_epi32(16 * j)));
        size_t k = (size_t)__builtin_popcount((unsigned)m);
        for (size_t i = 0; i < k; i++) row_out[*found + i] = row;
        *found += k;
    }
}

// Four rows x (16 * J) queries per step; the accumulators are named variables (not arrays) so
// they stay in registers: 4 J accumulators + J query vectors + 4 broadcasts <= 32 zmm.
#define BEAND_ACC_DECL(r) __m512 r##0 = _mm512_setzero_ps(), r##1 = _mm512_setzero_ps(), \
    r##2 = _mm512_setzero_ps(), r##3 = _mm512_setzero_ps();
#define BEAND_FMA4(J, b, r) \
    r##0 = _mm512_fmadd_ps(b, q0, r##0); if (J > 1) r##1 = _mm512_fmadd_ps(b, q1, r##1); \
    if (J > 2) r##2 = _mm512_fmadd_ps(b, q2, r##2); if (J > 3) r##3 = _mm512_fmadd_ps(b, q3, r##3);
#define BEAND_EMIT4(J, r, row) \
    beand_store_batch_emit(r##0, t0, aux[row], l2, 0, first_row + (uint32_t)(row), q_out, row_out, score_out, found); \
    if (J > 1) beand_store_batch_emit(r##1, t1, aux[row], l2, 1, first_row + (uint32_t)(row), q_out, row_out, score_out, found); \
    if (J > 2) beand_store_batch_emit(r##2, t2, aux[row], l2, 2, first_row + (uint32_t)(row), q_out, row_out, score_out, found); \
    if (J > 3) beand_store_batch_emit(r##3, t3, aux[row], l2, 3, first_row + (uint32_t)(row), q_out, row_out, score_out, found);

#define BEAND_BATCH_KERNEL(J) \
__attribute__((target("avx512f"))) \
static inline size_t beand_store_batch_avx512_##J(const float *qt, const float *rows, size_t stride, size_t dim, \
        size_t n, const float *aux, int l2, const float *thresholds, uint32_t first_row, size_t capacity, \
        uint32_t *q_out, uint32_t *row_out, float *score_out, size_t *found) { \
    const __m512 none = _mm512_set1_ps(-1.0f / 0.0f); \
    const __m512 t0 = _mm512_loadu_ps(thresholds); \
    const __m512 t1 = J > 1 ? _mm512_loadu_ps(thresholds + 16) : none; \
    const __m512 t2 = J > 2 ? _mm512_loadu_ps(thresholds + 32) : none; \
    const __m512 t3 = J > 3 ? _mm512_loadu_ps(thresholds + 48) : none; \
    *found = 0; \
    size_t i = 0; \
    for (; i + 4 <= n; i += 4) { \
        if (*found + 4 * 64 > capacity) return i; \
        const float *r0 = rows + i * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride; \
        BEAND_ACC_DECL(a) BEAND_ACC_DECL(b) BEAND_ACC_DECL(c) BEAND_ACC_DECL(d) \
        for (size_t k = 0; k < dim; k++) { \
            const float *qc = qt + k * 64; \
            const __m512 q0 = _mm512_load_ps(qc); \
            const __m512 q1 = J > 1 ? _mm512_load_ps(qc + 16) : q0; \
            const __m512 q2 = J > 2 ? _mm512_load_ps(qc + 32) : q0; \
            const __m512 q3 = J > 3 ? _mm512_load_ps(qc + 48) : q0; \
            __m512 x; \
            x = _mm512_set1_ps(r0[k]); BEAND_FMA4(J, x, a) \
            x = _mm512_set1_ps(r1[k]); BEAND_FMA4(J, x, b) \
            x = _mm512_set1_ps(r2[k]); BEAND_FMA4(J, x, c) \
            x = _mm512_set1_ps(r3[k]); BEAND_FMA4(J, x, d) \
        } \
        BEAND_EMIT4(J, a, i) BEAND_EMIT4(J, b, i + 1) BEAND_EMIT4(J, c, i + 2) BEAND_EMIT4(J, d, i + 3) \
    } \
    for (; i < n; i++) { \
        if (*found + 64 > capacity) return i; \
        const float *r0 = rows + i * stride; \
        BEAND_ACC_DECL(a) \
        for (size_t k = 0; k < dim; k++) { \
            const float *qc = qt + k * 64; \
            const __m512 q0 = _mm512_load_ps(qc); \
            const __m512 q1 = J > 1 ? _mm512_load_ps(qc + 16) : q0; \
            const __m512 q2 = J > 2 ? _mm512_load_ps(qc + 32) : q0; \
            const __m512 q3 = J > 3 ? _mm512_load_ps(qc + 48) : q0; \
            const __m512 x = _mm512_set1_ps(r0[k]); BEAND_FMA4(J, x, a) \
        } \
        BEAND_EMIT4(J, a, i) \
    } \
    return n; \
}
BEAND_BATCH_KERNEL(1)
BEAND_BATCH_KERNEL(2)
BEAND_BATCH_KERNEL(4)

__attribute__((target("avx512f")))
static inline size_t beand_store_batch_avx512(const float *qt, int query_vectors, const float *rows, size_t stride,
                                              size_t dim, size_t n, const float *aux, int l2,
                                              const float *thresholds, uint32_t first_row, size_t capacity,
                                              uint32_t *q_out, uint32_t *row_out, float *score_out, size_t *found) {
    // 3 vectors run as 4: the fourth has -inf thresholds (and zero queries), so it never emits.
    if (query_vectors <= 1)
        return beand_store_batch_avx512_1(qt, rows, stride, dim, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
    if (query_vectors == 2)
        return beand_store_batch_avx512_2(qt, rows, stride, dim, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
    return beand_store_batch_avx512_4(qt, rows, stride, dim, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
}
#endif

/// 1 when the fused batch kernel exists on this CPU (AVX-512); otherwise batches use sgemm.
static inline int beand_store_has_batch_kernel(int level) { return level == 2; }

static inline size_t beand_store_batch(int level, const float *qt, int query_vectors, const float *rows, size_t stride,
                                       size_t dim, size_t n, const float *aux, int l2, const float *thresholds,
                                       uint32_t first_row, size_t capacity, uint32_t *q_out, uint32_t *row_out,
                                       float *score_out, size_t *found) {
#if defined(__x86_64__)
    if (level == 2)
        return beand_store_batch_avx512(qt, query_vectors, rows, stride, dim, n, aux, l2, thresholds, first_row,
                                        capacity, q_out, row_out, score_out, found);
#endif
    (void)qt; (void)query_vectors; (void)rows; (void)stride; (void)dim; (void)aux; (void)l2; (void)thresholds;
    (void)first_row; (void)capacity; (void)q_out; (void)row_out; (void)score_out;
    *found = 0;
    return n;  // never called: callers check beand_store_has_batch_kernel
}

// ---- bfloat16 scan: a half-size copy of the rows, ranked with a proven error bound ----
// The scan reads rows rounded to bfloat16 (half the bytes of float32, and AVX512_BF16 multiplies
// 32 pairs per instruction); the caller widens the float32 re-ranking window by a bound on the
// rounding error (computed from the actual rounding errors of rows and query), so the final float64
// re-ranking still returns the exact top k. Row stride in bfloat16 elements is a multiple of 32.

/// 1 when this CPU has AVX-512F and AVX512_BF16 (the bfloat16 scan kernels).
static inline int beand_store_has_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/// Rounds n floats to bfloat16 (nearest, ties to even; results below the smallest normal float
/// become zero, as the kernels treat them); adds the squared rounding error and the squared norm
/// of the rounded values to *err2 and *norm2 (float64). Returns 1 if any value rounded to
/// infinity (or was not finite), else 0.
static inline int beand_store_to_bf16(const float *src, uint16_t *dst, size_t n, double *err2, double *norm2) {
    int overflow = 0;
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        __builtin_memcpy(&u, &src[i], 4);
        uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
        if ((r & 0x7F800000u) == 0) r &= 0x80000000u;           // subnormal (or zero): flush to zero
        if ((r & 0x7F800000u) == 0x7F800000u) overflow = 1;    // rounded to infinity, or NaN input
        dst[i] = (uint16_t)(r >> 16);
        float f;
        __builtin_memcpy(&f, &r, 4);
        double d = (double)src[i] - (double)f;
        e += d * d;
        m += (double)f * (double)f;
    }
    *err2 += e;
    *norm2 += m;
    return overflow;
}

#if defined(__x86_64__)
// The 16 horizontal sums of v[0..15] in one vector, with v given in the order
// v[4 * (j % 4) + j / 4] = row j (so that lane j of the result is row j).
__attribute__((target("avx512f"), always_inline))
static inline __m512 beand_store_hsum16(const __m512 *v) {
    __m512 a[8], b[4], c[2];
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
}

__attribute__((target("avx512f,avx512bf16"), always_inline))
static inline __m512 beand_store_dot_bf16(const uint16_t *q, const uint16_t *r, size_t chunks) {
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 2 <= chunks; c += 2) {
        a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(q + 32 * c), (__m512bh)_mm512_load_si512(r + 32 * c));
        b = _mm512_dpbf16_ps(b, (__m512bh)_mm512_loadu_si512(q + 32 * c + 32), (__m512bh)_mm512_load_si512(r + 32 * c + 32));
    }
    if (c < chunks) a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(q + 32 * c), (__m512bh)_mm512_load_si512(r + 32 * c));
    return _mm512_add_ps(a, b);
}

/// dots[i] = <q, rows + i * stride> in bfloat16 with float32 accumulation; stride (elements) is
/// 32 * chunks, rows 64-byte aligned. 16 rows at a time, reduced together (one transpose-add
/// instead of 16 horizontal reductions).
__attribute__((target("avx512f,avx512bf16")))
static inline void beand_store_dots_bf16(const uint16_t *q, const uint16_t *rows, size_t chunks, size_t n, float *out) {
    const size_t stride = 32 * chunks;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 acc[16];
        for (int j = 0; j < 16; j++) acc[4 * (j % 4) + j / 4] = beand_store_dot_bf16(q, rows + (i + j) * stride, chunks);
        _mm512_storeu_ps(out + i, beand_store_hsum16(acc));
    }
    for (; i < n; i++) out[i] = _mm512_reduce_add_ps(beand_store_dot_bf16(q, rows + i * stride, chunks));
}

// Batches in bfloat16: qt holds 64 queries as pairs, qt[p * 128 + 2 * j + h] = query j, component
// 2p + h; one broadcast row pair feeds 16 pair products per instruction. Otherwise as the float32
// kernel above (4 rows x 16 J queries in registers, per-query thresholds, same output triples).
#define BEAND_DP4(J, b, r) \
    r##0 = _mm512_dpbf16_ps(r##0, q0, b); if (J > 1) r##1 = _mm512_dpbf16_ps(r##1, q1, b); \
    if (J > 2) r##2 = _mm512_dpbf16_ps(r##2, q2, b); if (J > 3) r##3 = _mm512_dpbf16_ps(r##3, q3, b);
#define BEAND_PAIR_LOADS(J) \
    const uint16_t *qc = qt + p * 128; \
    const __m512bh q0 = (__m512bh)_mm512_load_si512(qc); \
    const __m512bh q1 = J > 1 ? (__m512bh)_mm512_load_si512(qc + 32) : q0; \
    const __m512bh q2 = J > 2 ? (__m512bh)_mm512_load_si512(qc + 64) : q0; \
    const __m512bh q3 = J > 3 ? (__m512bh)_mm512_load_si512(qc + 96) : q0;

#define BEAND_BATCH_BF16_KERNEL(J) \
__attribute__((target("avx512f,avx512bf16"))) \
static inline size_t beand_store_batch_bf16_##J(const uint16_t *qt, const uint16_t *rows, size_t stride, size_t pairs, \
        size_t n, const float *aux, int l2, const float *thresholds, uint32_t first_row, size_t capacity, \
        uint32_t *q_out, uint32_t *row_out, float *score_out, size_t *found) { \
    const __m512 none = _mm512_set1_ps(-1.0f / 0.0f); \
    const __m512 t0 = _mm512_loadu_ps(thresholds); \
    const __m512 t1 = J > 1 ? _mm512_loadu_ps(thresholds + 16) : none; \
    const __m512 t2 = J > 2 ? _mm512_loadu_ps(thresholds + 32) : none; \
    const __m512 t3 = J > 3 ? _mm512_loadu_ps(thresholds + 48) : none; \
    *found = 0; \
    size_t i = 0; \
    for (; i + 4 <= n; i += 4) { \
        if (*found + 4 * 64 > capacity) return i; \
        const uint32_t *r0 = (const uint32_t *)(rows + i * stride), *r1 = (const uint32_t *)(rows + (i + 1) * stride), \
                       *r2 = (const uint32_t *)(rows + (i + 2) * stride), *r3 = (const uint32_t *)(rows + (i + 3) * stride); \
        BEAND_ACC_DECL(a) BEAND_ACC_DECL(b) BEAND_ACC_DECL(c) BEAND_ACC_DECL(d) \
        for (size_t p = 0; p < pairs; p++) { \
            BEAND_PAIR_LOADS(J) \
            __m512bh x; \
            x = (__m512bh)_mm512_set1_epi32((int)r0[p]); BEAND_DP4(J, x, a) \
            x = (__m512bh)_mm512_set1_epi32((int)r1[p]); BEAND_DP4(J, x, b) \
            x = (__m512bh)_mm512_set1_epi32((int)r2[p]); BEAND_DP4(J, x, c) \
            x = (__m512bh)_mm512_set1_epi32((int)r3[p]); BEAND_DP4(J, x, d) \
        } \
        BEAND_EMIT4(J, a, i) BEAND_EMIT4(J, b, i + 1) BEAND_EMIT4(J, c, i + 2) BEAND_EMIT4(J, d, i + 3) \
    } \
    for (; i < n; i++) { \
        if (*found + 64 > capacity) return i; \
        const uint32_t *r0 = (const uint32_t *)(rows + i * stride); \
        BEAND_ACC_DECL(a) \
        for (size_t p = 0; p < pairs; p++) { \
            BEAND_PAIR_LOADS(J) \
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)r0[p]); BEAND_DP4(J, x, a) \
        } \
        BEAND_EMIT4(J, a, i) \
    } \
    return n; \
}
BEAND_BATCH_BF16_KERNEL(1)
BEAND_BATCH_BF16_KERNEL(2)
BEAND_BATCH_BF16_KERNEL(4)
#endif

/// Dispatch for the bfloat16 batch kernel; only called when beand_store_has_bf16() is 1.
/// stride and pairs in bfloat16 elements and pairs (pairs = stride / 2).
static inline size_t beand_store_batch_bf16(const uint16_t *qt, int query_vectors, const uint16_t *rows, size_t stride,
                                            size_t n, const float *aux, int l2, const float *thresholds,
                                            uint32_t first_row, size_t capacity, uint32_t *q_out, uint32_t *row_out,
                                            float *score_out, size_t *found) {
#if defined(__x86_64__)
    const size_t pairs = stride / 2;
    if (query_vectors <= 1)
        return beand_store_batch_bf16_1(qt, rows, stride, pairs, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
    if (query_vectors == 2)
        return beand_store_batch_bf16_2(qt, rows, stride, pairs, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
    return beand_store_batch_bf16_4(qt, rows, stride, pairs, n, aux, l2, thresholds, first_row, capacity, q_out, row_out, score_out, found);
#else
    (void)qt; (void)query_vectors; (void)rows; (void)stride; (void)aux; (void)l2; (void)thresholds;
    (void)first_row; (void)capacity; (void)q_out; (void)row_out; (void)score_out;
    *found = 0;
    return n;
#endif
}

/// Single-query dispatch for the bfloat16 scan; only called when beand_store_has_bf16() is 1.
static inline void beand_store_dots_bf16_any(const uint16_t *q, const uint16_t *rows, size_t stride, size_t n, float *out) {
#if defined(__x86_64__)
    beand_store_dots_bf16(q, rows, stride / 32, n, out);
#else
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (size_t c = 0; c < stride; c++) {
            uint32_t a = (uint32_t)q[c] << 16, b = (uint32_t)rows[i * stride + c] << 16;
            float fa, fb;
            __builtin_memcpy(&fa, &a, 4);
            __builtin_memcpy(&fb, &b, 4);
            s += fa * fb;
        }
        out[i] = s;
    }
#endif
}

#endif
