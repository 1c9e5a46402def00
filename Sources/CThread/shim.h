// Thread identity and process calls that Swift cannot reach directly: prctl and syscall are
// variadic, glibc declares gettid/pthread_setname_np only under _GNU_SOURCE, and mallopt lives in
// malloc.h, which the Glibc module leaves out.
#ifndef BEAND_CTHREAD_SHIM_H
#define BEAND_CTHREAD_SHIM_H
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <malloc.h>

/// Names the calling thread (the kernel keeps 15 bytes and a NUL).
static inline int beand_thread_set_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

/// Copies the calling thread's name into `buffer`, which must hold 16 bytes.
static inline int beand_thread_get_name(char *buffer) {
    return prctl(PR_GET_NAME, (unsigned long)buffer, 0UL, 0UL, 0UL);
}

/// The calling thread's kernel id (what setpriority and /proc/PID/task take).
static inline int beand_thread_id(void) {
    return (int)syscall(SYS_gettid);
}

/// Keeps freed memory in the process instead of handing it back to the kernel: never trim the
/// heap, grow it in 256 MiB steps, mmap only blocks over 32 MiB (the largest threshold glibc
/// takes). For programs that free and allocate the same large buffers over and over (training).
/// Returns 1 when glibc took all three settings.
static inline int beand_malloc_keep_freed(void) {
    int ok = mallopt(M_TRIM_THRESHOLD, 0x7FFFFFFF);
    ok &= mallopt(M_TOP_PAD, 256 << 20);
    ok &= mallopt(M_MMAP_THRESHOLD, 32 << 20);
    return ok;
}

#endif
