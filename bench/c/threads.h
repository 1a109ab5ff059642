/*
 * What the benchmark programs share: the monotonic clock in nanoseconds (wakeup.c, wake_paths.c,
 * tls_loadgen.c) and pinning the calling thread to one CPU (the two-thread ones).
 */
#ifndef BENCH_THREADS_H
#define BENCH_THREADS_H
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
#endif
