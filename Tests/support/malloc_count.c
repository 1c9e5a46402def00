// LD_PRELOAD interposer that counts heap allocations (malloc, calloc, realloc, memalign family)
// and exports the count as beand_malloc_count(), which `beanctl model run --repeat-runs` reads via
// dlsym to prove that steady-state inference allocates nothing. Forwards to glibc's __libc_* entry
// points, so it needs no dlsym(RTLD_NEXT) bootstrap.
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

#include <execinfo.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t count;
static int armed, tracing;

// Once the counter has been read, BEAND_MALLOC_TRACE=1 prints a backtrace per allocation (to find
// the culprit when the test fails).
uint64_t beand_malloc_count(void) {
    armed = 1;
    return __atomic_load_n(&count, __ATOMIC_RELAXED);
}

static void bump(void) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    if (armed && !tracing && getenv("BEAND_MALLOC_TRACE")) {
        tracing = 1;
        void *frames[12];
        int n = backtrace(frames, 12);
        backtrace_symbols_fd(frames, n, 2);
        write(2, "--\n", 3);
        tracing = 0;
    }
}

void *malloc(size_t n) { bump(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { bump(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { bump(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n) {
    bump();
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
