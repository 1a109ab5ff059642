/*
 * fd-watcher ping-pong through the C interface: PAIRS socket pairs, a watcher on each end; a
 * readable callback reads the byte that arrived and writes one back, so every pair keeps one
 * byte in flight. Measures watcher events per second and CPU per event for evloop (epoll or
 * io_uring, through libevloop.so) or libuv (uv_poll_t), to price level-triggered readiness.
 *
 *   poll_pingpong evloop-epoll|evloop-uring|libuv [seconds] [pairs]
 *
 * Prints one line: impl, events, events/s, user and system CPU (microseconds) per event.
 */
#define _GNU_SOURCE
#include <evloop.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PAIRS 4096

static int fds[MAX_PAIRS][2];
static long long events;

static void bounce(int fd) {
    char b;
    if (read(fd, &b, 1) == 1) {
        events++;
        if (write(fd, &b, 1) != 1) abort();
    }
}

static void on_evl(evl_poll_t *p, int status, unsigned ev, void *data) {
    (void)p;
    if (status == 0 && (ev & EVL_READABLE)) bounce((int)(intptr_t)data);
}

static void on_uv(uv_poll_t *p, int status, int ev) {
    if (status == 0 && (ev & UV_READABLE)) bounce((int)(intptr_t)p->data);
}

static int stop_flag;
static void on_evl_stop(evl_timer_t *t, void *d) {
    (void)t, (void)d;
    stop_flag = 1;
}
static void on_uv_stop(uv_timer_t *t) {
    (void)t;
    stop_flag = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_us(int user) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    struct timeval t = user ? u.ru_utime : u.ru_stime;
    return t.tv_sec * 1e6 + t.tv_usec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s evloop-epoll|evloop-uring|libuv [seconds] [pairs]\n", argv[0]);
        return 2;
    }
    const char *impl = argv[1];
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    int pairs = argc > 3 ? atoi(argv[3]) : 100;
    if (pairs < 1 || pairs > MAX_PAIRS) return 2;
    for (int i = 0; i < pairs; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds[i]) != 0) return 1;
    }
    double t0, u0, s0;
    if (strncmp(impl, "evloop", 6) == 0) {
        evl_loop_t *l;
        int backend = strcmp(impl, "evloop-uring") == 0 ? EVL_BACKEND_URING : EVL_BACKEND_EPOLL;
        if (evl_loop_new(&l, backend) != 0) return 1;
        for (int i = 0; i < pairs; i++)
            for (int side = 0; side < 2; side++) {
                evl_poll_t *p;
                evl_poll_init(l, &p, fds[i][side], (void *)(intptr_t)fds[i][side]);
                evl_poll_start(p, EVL_READABLE, on_evl);
            }
        evl_timer_t *t;
        evl_timer_init(l, &t, NULL);
        evl_timer_start(t, on_evl_stop, (uint64_t)(seconds * 1000), 0);
        for (int i = 0; i < pairs; i++)
            if (write(fds[i][0], "x", 1) != 1) return 1;
        t0 = now_s(), u0 = cpu_us(1), s0 = cpu_us(0);
        while (!stop_flag) evl_run(l, EVL_RUN_ONCE);
    } else {
        static uv_loop_t loop;
        static uv_poll_t polls[MAX_PAIRS][2];
        static uv_timer_t t;
        uv_loop_init(&loop);
        for (int i = 0; i < pairs; i++)
            for (int side = 0; side < 2; side++) {
                uv_poll_init(&loop, &polls[i][side], fds[i][side]);
                polls[i][side].data = (void *)(intptr_t)fds[i][side];
                uv_poll_start(&polls[i][side], UV_READABLE, on_uv);
            }
        uv_timer_init(&loop, &t);
        uv_timer_start(&t, on_uv_stop, (uint64_t)(seconds * 1000), 0);
        for (int i = 0; i < pairs; i++)
            if (write(fds[i][0], "x", 1) != 1) return 1;
        t0 = now_s(), u0 = cpu_us(1), s0 = cpu_us(0);
        while (!stop_flag) uv_run(&loop, UV_RUN_ONCE);
    }
    double wall = now_s() - t0, user = cpu_us(1) - u0, sys = cpu_us(0) - s0;
    printf("%s events %lld events/s %.0f user_us/event %.3f sys_us/event %.3f\n", impl, events, events / wall,
           user / events, sys / events);
    return 0;
}
