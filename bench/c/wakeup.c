/*
 * Cross-thread wake-ups, built twice like bench/c/timers.c:
 *   uv_wakeup    on libuv (uv_async_send)
 *   evl_wakeup   (-DEVLOOP) through libevloop.so (evl_async_send); EVLOOP_BACKEND picks the backend.
 *
 *   wakeup rtt SECONDS       two loops on two threads (CPU 0 and 1) bounce a wake-up back and
 *                            forth; prints the round trips' p50 and p99 in microseconds
 *   wakeup senders SECONDS   four threads call async_send in a loop on one loop's handle;
 *                            prints sends/s, callbacks/s and the loop thread's CPU per callback
 *
 * Output: one line of key=value pairs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "threads.h"
#ifdef EVLOOP
#include <evloop.h>
typedef evl_loop_t loop_t;
typedef evl_async_t *async_t_;
#define ASYNC_CB(name) static void name(evl_async_t *a, void *d)
#define UNUSED_ASYNC_ARGS (void)a, (void)d
#define ASYNC_INIT(loop, a, cb) evl_async_init(loop, a, cb, NULL)
#define ASYNC_SEND(a) evl_async_send(*(a))
#define ASYNC_CLOSE(a) evl_close((evl_handle_t *)*(a), NULL)
#define LOOP_NEW(pl) evl_loop_new(pl, EVL_BACKEND_AUTO)
#define RUN_ONCE(loop) evl_run(loop, EVL_RUN_ONCE)
#define RUN_DEFAULT(loop) evl_run(loop, EVL_RUN_DEFAULT)
#define LOOP_FREE(loop) evl_loop_free(loop)
#define IMPL_NAME(loop) evl_backend_name(loop)
#else
#include <uv.h>
typedef uv_loop_t loop_t;
typedef uv_async_t async_t_;
#define ASYNC_CB(name) static void name(uv_async_t *a)
#define UNUSED_ASYNC_ARGS (void)a
#define ASYNC_INIT(loop, a, cb) uv_async_init(loop, a, cb)
#define ASYNC_SEND(a) uv_async_send(a)
#define ASYNC_CLOSE(a) uv_close((uv_handle_t *)(a), NULL)
#define LOOP_NEW(pl) ((*(pl) = malloc(sizeof(uv_loop_t))) ? uv_loop_init(*(pl)) : -1)
#define RUN_ONCE(loop) uv_run(loop, UV_RUN_ONCE)
#define RUN_DEFAULT(loop) uv_run(loop, UV_RUN_DEFAULT)
#define LOOP_FREE(loop) (uv_loop_close(loop), free(loop))
#define IMPL_NAME(loop) ((void)(loop), "libuv")
#endif

#define MAX_SAMPLES 4000000
#define SENDERS 4


static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


static void die(const char *what) {
    fprintf(stderr, "wakeup: %s failed\n", what);
    exit(1);
}

/* ---- round trips ---- */

static loop_t *loop_a, *loop_b;
static async_t_ ping_a, ping_b; /* ping_a wakes loop A, ping_b wakes loop B */
static uint64_t deadline, sent_at, *samples;
static size_t nsamples;
static atomic_int b_ready, done;

ASYNC_CB(on_a) {
    UNUSED_ASYNC_ARGS;
    uint64_t t = now_ns();
    if (nsamples < MAX_SAMPLES) samples[nsamples++] = t - sent_at;
    if (t >= deadline) {
        atomic_store(&done, 1);
        ASYNC_SEND(&ping_b); /* lets B see `done` */
        ASYNC_CLOSE(&ping_a);
        return;
    }
    sent_at = now_ns();
    ASYNC_SEND(&ping_b);
}

ASYNC_CB(on_b) {
    UNUSED_ASYNC_ARGS;
    if (atomic_load(&done)) {
        ASYNC_CLOSE(&ping_b);
        return;
    }
    ASYNC_SEND(&ping_a);
}

static void *run_b(void *arg) {
    (void)arg;
    pin(1);
    /* A loop belongs to the thread that made it. */
    if (LOOP_NEW(&loop_b) != 0 || ASYNC_INIT(loop_b, &ping_b, on_b) != 0) die("loop B");
    atomic_store(&b_ready, 1);
    RUN_DEFAULT(loop_b);
    LOOP_FREE(loop_b);
    return NULL;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void rtt(double seconds) {
    pin(0);
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (!samples || LOOP_NEW(&loop_a) != 0) die("setup");
    if (ASYNC_INIT(loop_a, &ping_a, on_a) != 0) die("async init");
    pthread_t tb;
    pthread_create(&tb, NULL, run_b, NULL);
    while (!atomic_load(&b_ready)) sched_yield();
    deadline = now_ns() + (uint64_t)(seconds * 1e9);
    sent_at = now_ns();
    ASYNC_SEND(&ping_b);
    RUN_DEFAULT(loop_a);
    pthread_join(tb, NULL);
    qsort(samples, nsamples, sizeof *samples, cmp_u64);
    printf("impl=%s round_trips=%zu per_s=%.0f p50_us=%.1f p99_us=%.1f\n", IMPL_NAME(loop_a), nsamples,
           (double)nsamples / seconds, samples[nsamples / 2] / 1e3, samples[nsamples * 99 / 100] / 1e3);
    LOOP_FREE(loop_a);
}

/* ---- four senders ---- */

static async_t_ target;
static atomic_ullong sends, callbacks;
static atomic_int stop_senders;

ASYNC_CB(on_target) {
    UNUSED_ASYNC_ARGS;
    atomic_fetch_add_explicit(&callbacks, 1, memory_order_relaxed);
    if (atomic_load(&stop_senders)) ASYNC_CLOSE(&target);
}

static void *sender(void *arg) {
    pin((int)(intptr_t)arg);
    unsigned long long n = 0;
    while (!atomic_load_explicit(&stop_senders, memory_order_relaxed)) {
        ASYNC_SEND(&target);
        n++;
    }
    atomic_fetch_add(&sends, n);
    return NULL;
}

static void *stopper(void *arg) {
    double seconds = *(double *)arg;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop_senders, 1);
    ASYNC_SEND(&target);
    return NULL;
}

static void senders(double seconds) {
    pin(0);
    loop_t *loop;
    if (LOOP_NEW(&loop) != 0 || ASYNC_INIT(loop, &target, on_target) != 0) die("setup");
    pthread_t t[SENDERS], st;
    for (int i = 0; i < SENDERS; i++) pthread_create(&t[i], NULL, sender, (void *)(intptr_t)(1 - i % 2));
    uint64_t c0 = thread_cpu_ns(), t0 = now_ns();
    pthread_create(&st, NULL, stopper, &seconds);
    RUN_DEFAULT(loop);
    uint64_t cpu = thread_cpu_ns() - c0;
    double elapsed = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < SENDERS; i++) pthread_join(t[i], NULL);
    pthread_join(st, NULL);
    unsigned long long cb = atomic_load(&callbacks);
    printf("impl=%s sends_per_s=%.0f callbacks_per_s=%.0f loop_cpu_ns_per_callback=%.0f\n", IMPL_NAME(loop),
           (double)atomic_load(&sends) / elapsed, (double)cb / elapsed, cb ? (double)cpu / (double)cb : 0.0);
    LOOP_FREE(loop);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s rtt|senders SECONDS\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[2]);
    if (!(seconds > 0 && seconds <= 60)) die("SECONDS (0 < s <= 60)");
    if (!strcmp(argv[1], "rtt"))
        rtt(seconds);
    else if (!strcmp(argv[1], "senders"))
        senders(seconds);
    else
        die("mode");
    return 0;
}
