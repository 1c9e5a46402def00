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

#endif
