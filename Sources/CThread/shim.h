// Thread identity calls that Swift cannot reach directly: prctl and syscall are variadic, and
// glibc declares gettid/pthread_setname_np only under _GNU_SOURCE.
#ifndef BEAND_CTHREAD_SHIM_H
#define BEAND_CTHREAD_SHIM_H
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

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
#endif
