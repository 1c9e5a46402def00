#ifndef BEAND_BLAS_CORE_H
#define BEAND_BLAS_CORE_H
// Which OpenBLAS kernels run. A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels once, when the
// library loads, from the CPU's family and model. A CPU newer than the library is not in its table
// (OpenBLAS 0.3.21 and a 5th-generation Xeon, family 6 model 207), and it falls back to the
// Prescott (SSE3) kernels: a fifth of the sgemm rate of the AVX-512 kernels on that core.
// OPENBLAS_CORETYPE overrides the choice, but is read only at load, before main. These shims run
// OpenBLAS's own selection again with it set. gotoblas_dynamic_quit/_init are exported by
// DYNAMIC_ARCH builds only; they are looked up at run time, so that other builds link and simply
// keep their kernels.
#include <dlfcn.h>
#include <stdlib.h>
#include <cblas.h>

/// The vector level of this CPU as OpenBLAS's kernel families use it: 3 = AVX-512 (F, CD, BW, DQ,
/// VL: the SkylakeX kernels), 2 = AVX2 + FMA (Haswell), 1 = AVX (Sandybridge), 0 = none of these.
/// The compiler's CPU model checks that the OS saves the vector registers, as OpenBLAS does.
static inline int beand_blas_cpu_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    if (__builtin_cpu_supports("avx")) return 1;
#endif
    return 0;
}

/// OpenBLAS's name for the kernels in use ("Prescott", "SkylakeX", …).
static inline const char *beand_blas_core_name(void) { return openblas_get_corename(); }

/// Runs OpenBLAS's kernel selection again with OPENBLAS_CORETYPE = `core`, then removes the
/// variable (the caller only switches when it was unset; child processes decide for themselves).
/// Only at process start, before any thread calls BLAS: between the two calls no kernel table is
/// installed.
/// Returns 0 when this OpenBLAS has no run-time selection (nothing changed), else 1; an unknown
/// name makes OpenBLAS fall back to its own choice (check beand_blas_core_name afterwards).
static inline int beand_blas_select_core(const char *core) {
    void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (quit == NULL || init == NULL) return 0;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return 0;
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    return 1;
}
#endif
