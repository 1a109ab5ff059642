/*
 * The timer workload of bench/src/bin/timers.rs in C, with the same output, built three times:
 *   uv_timers       on libuv: uv_timer_t in the program's own array
 *   evl_timers      (-DEVLOOP) through libevloop.so with evl_timer_init: the library allocates a
 *                   record per timer and the program keeps a pointer to it
 *   evl_timers_in   (-DEVLOOP -DCALLER_MEMORY) through libevloop.so with evl_timer_init_in: the
 *                   records sit in the program's own array, evl_handle_size() bytes apart
 * EVLOOP_BACKEND picks evloop's backend. Only the few loop calls below differ.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef EVLOOP
#include <evloop.h>
typedef evl_loop_t loop_t;
#define TIMER_CB(name) static void name(evl_timer_t *t, void *d)
#define UNUSED_TIMER_ARGS (void)t, (void)d
#ifdef CALLER_MEMORY
static size_t timer_size;
#define TIMERS_ALLOC(n) (timer_size = evl_handle_size(EVL_HANDLE_TIMER), (char *)malloc((n) * timer_size))
#define TIMER_BYTES timer_size
#define TIMER(timers, i) ((evl_timer_t *)((timers) + (i) * timer_size))
#define TIMER_INIT(loop, timers, i) evl_timer_init_in(loop, TIMER(timers, i), NULL)
#define IMPL_FORMAT "evloop-C-API-caller-memory-%s"
typedef char timers_t;
#else
#define TIMERS_ALLOC(n) malloc((n) * sizeof(evl_timer_t *))
#define TIMER_BYTES sizeof(evl_timer_t *)
#define TIMER(timers, i) ((timers)[i])
#define TIMER_INIT(loop, timers, i) evl_timer_init(loop, &(timers)[i], NULL)
#define IMPL_FORMAT "evloop-C-API-%s"
typedef evl_timer_t *timers_t;
#endif
#define TIMER_START(t, cb, timeout) evl_timer_start(t, cb, timeout, 0)
#define TIMER_STOP(t) evl_timer_stop(t)
#define RUN_NOWAIT(loop) evl_run(loop, EVL_RUN_NOWAIT)
#define RUN_DEFAULT(loop) evl_run(loop, EVL_RUN_DEFAULT)
#define IMPL_NAME(loop) evl_backend_name(loop)
#else
#include <uv.h>
typedef uv_loop_t loop_t;
typedef uv_timer_t timers_t;
#define TIMER_CB(name) static void name(uv_timer_t *t)
#define UNUSED_TIMER_ARGS (void)t
#define TIMERS_ALLOC(n) malloc((n) * sizeof(uv_timer_t))
#define TIMER_BYTES sizeof(uv_timer_t)
#define TIMER(timers, i) (&(timers)[i])
#define TIMER_INIT(loop, timers, i) uv_timer_init(loop, TIMER(timers, i))
#define TIMER_START(t, cb, timeout) uv_timer_start(t, cb, timeout, 0)
#define TIMER_STOP(t) uv_timer_stop(t)
#define RUN_NOWAIT(loop) uv_run(loop, UV_RUN_NOWAIT)
#define RUN_DEFAULT(loop) uv_run(loop, UV_RUN_DEFAULT)
#define IMPL_FORMAT "libuv-%s"
#define IMPL_NAME(loop) ((void)(loop), uv_version_string())
#endif

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
TIMER_CB(on_timer) {
    UNUSED_TIMER_ARGS;
    fired++;
}
TIMER_CB(noop) { UNUSED_TIMER_ARGS; }

int main(void) {
#ifdef EVLOOP
    loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) != 0) return 1;
#else
    loop_t *loop = uv_default_loop();
#endif
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
    timers_t *timers = TIMERS_ALLOC(N);
    if (!timers) return 1;
    /* The program's array is touched before (not with zeros, which the compiler may turn into a
       calloc that touches nothing): init times the call, not the page faults of the array, whose
       size differs between the builds. The library's own allocations count. */
    memset(timers, 0x5a, N * TIMER_BYTES);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < N; i++)
        if (TIMER_INIT(loop, timers, i) != 0) return 1;
    double init_ns = (double)(now_ns() - t0) / N;
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) TIMER_START(TIMER(timers, i), noop, timeouts[i]);
    double start_ns = (double)(now_ns() - t0) / N;
    double bytes = (double)(rss_bytes() - rss0) / N;
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) TIMER_STOP(TIMER(timers, i));
    double stop_in_order_ns = (double)(now_ns() - t0) / N;
    for (size_t i = 0; i < N; i++) TIMER_START(TIMER(timers, i), noop, timeouts[i]);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) TIMER_STOP(TIMER(timers, order[i]));
    double stop_random_ns = (double)(now_ns() - t0) / N;
    t0 = now_ns();
    RUN_NOWAIT(loop);
    uint64_t iter_us = (now_ns() - t0) / 1000u;
    for (size_t i = 0; i < N; i++) TIMER_START(TIMER(timers, i), on_timer, rng() % 1000);
    uint64_t c0 = cpu_ns();
    t0 = now_ns();
    RUN_DEFAULT(loop);
    double fire_cpu_ns = (double)(cpu_ns() - c0) / N;
    uint64_t wall_ms = (now_ns() - t0) / 1000000u;
    if (fired != N) {
        fprintf(stderr, "fired %zu of %d\n", fired, N);
        return 1;
    }
    printf("RESULT impl=" IMPL_FORMAT " init_ns=%.1f start_ns=%.1f stop_in_order_ns=%.1f stop_random_ns=%.1f iteration_after_cancel_us=%llu "
           "fire_cpu_ns=%.1f fire_wall_ms=%llu bytes_per_timer=%.0f\n",
           IMPL_NAME(loop), init_ns, start_ns, stop_in_order_ns, stop_random_ns, (unsigned long long)iter_us, fire_cpu_ns,
           (unsigned long long)wall_ms, bytes);
    return 0;
}
