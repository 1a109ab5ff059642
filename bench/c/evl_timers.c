/*
 * evl_timers: bench/src/bin/timers.rs's workload through the C interface (libevloop.so), as a C
 * program pays for it: a handle record per timer and a callback per start. Same output as
 * uv_timers.c; EVLOOP_BACKEND picks the backend.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <evloop.h>

#define N 1000000

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u + (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)) * 1000u;
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb * 1024;
}

static size_t fired;
static void on_timer(evl_timer_t *t, void *d) {
    (void)t, (void)d;
    fired++;
}
static void noop(evl_timer_t *t, void *d) { (void)t, (void)d; }

int main(void) {
    evl_loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) != 0) return 1;
    uint64_t *timeouts = malloc(N * sizeof *timeouts);
    size_t *order = malloc(N * sizeof *order);
    for (size_t i = 0; i < N; i++) timeouts[i] = 1000 + rng() % 99000;
    for (size_t i = 0; i < N; i++) order[i] = i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)(rng() % (i + 1)), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    long rss0 = rss_bytes();
    evl_timer_t **timers = malloc(N * sizeof *timers);
    for (size_t i = 0; i < N; i++) evl_timer_init(loop, &timers[i], NULL);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < N; i++) evl_timer_start(timers[i], noop, timeouts[i], 0);
    double start_ns = (double)(now_ns() - t0) / N;
    double bytes = (double)(rss_bytes() - rss0) / N;
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) evl_timer_stop(timers[i]);
    double stop_in_order_ns = (double)(now_ns() - t0) / N;
    for (size_t i = 0; i < N; i++) evl_timer_start(timers[i], noop, timeouts[i], 0);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) evl_timer_stop(timers[order[i]]);
    double stop_random_ns = (double)(now_ns() - t0) / N;
    t0 = now_ns();
    evl_run(loop, EVL_RUN_NOWAIT);
    uint64_t iter_us = (now_ns() - t0) / 1000u;
    for (size_t i = 0; i < N; i++) evl_timer_start(timers[i], on_timer, rng() % 1000, 0);
    uint64_t c0 = cpu_ns();
    t0 = now_ns();
    evl_run(loop, EVL_RUN_DEFAULT);
    double fire_cpu_ns = (double)(cpu_ns() - c0) / N;
    uint64_t wall_ms = (now_ns() - t0) / 1000000u;
    if (fired != N) {
        fprintf(stderr, "fired %zu of %d\n", fired, N);
        return 1;
    }
    printf("RESULT impl=evloop-C-API-%s start_ns=%.1f stop_in_order_ns=%.1f stop_random_ns=%.1f iteration_after_cancel_us=%llu "
           "fire_cpu_ns=%.1f fire_wall_ms=%llu bytes_per_timer=%.0f\n",
           evl_backend_name(loop), start_ns, stop_in_order_ns, stop_random_ns, (unsigned long long)iter_us, fire_cpu_ns,
           (unsigned long long)wall_ms, bytes);
    return 0;
}
