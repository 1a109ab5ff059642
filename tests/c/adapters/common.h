/* What the adapter tests share: the backend from argv, fd counting, failing loudly, and a
 * watchdog that ends a test that hangs. */
#ifndef EVLOOP_ADAPTER_TEST_COMMON_H
#define EVLOOP_ADAPTER_TEST_COMMON_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evloop.h>

static const char *test_name = "adapter";

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", test_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) fail(__VA_ARGS__);                                                            \
    } while (0)

static int backend_from(const char *name) {
    if (strcmp(name, "uring") == 0) return EVL_BACKEND_URING;
    if (strcmp(name, "epoll") == 0) return EVL_BACKEND_EPOLL;
    fail("unknown backend %s (uring|epoll)", name);
    return -1;
}

/* `TEST --probe BACKEND`: exits 0 if this machine can make a loop on BACKEND, 1 if not, and
 * does nothing otherwise; run.sh asks it before choosing the backends to test. */
static void answer_probe(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "--probe") != 0) return;
    evl_loop_t *loop;
    if (evl_loop_new(&loop, backend_from(argv[2])) < 0) exit(1);
    exit(evl_loop_free(loop) == 0 ? 0 : 1);
}

/* Open descriptors of this process: every test ends with as many as it began with. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) fail("opendir /proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static void watchdog_fired(evl_timer_t *t, void *data) {
    (void)t;
    fail("still running after %s s", (const char *)data);
}

/* A timer that fails the test after `seconds` and does not itself keep the loop alive. */
static evl_timer_t *start_watchdog(evl_loop_t *loop, unsigned seconds) {
    static char text[16];
    evl_timer_t *t;
    snprintf(text, sizeof text, "%u", seconds);
    CHECK(evl_timer_init(loop, &t, text) == 0, "watchdog init");
    CHECK(evl_timer_start(t, watchdog_fired, (uint64_t)seconds * 1000, 0) == 0, "watchdog start");
    CHECK(evl_unref((evl_handle_t *)t) == 0, "watchdog unref");
    return t;
}

/* Runs the loop until nothing is left but the watchdog. */
static void run_until_done(evl_loop_t *loop) {
    int rc = evl_run(loop, EVL_RUN_DEFAULT);
    CHECK(rc == 0, "evl_run returned %d (%s)", rc, rc < 0 ? evl_err_name(rc) : "alive");
}

/* Closes the watchdog, lets every close callback run, and frees the loop: -EBUSY from
 * evl_loop_free would mean an adapter left a handle behind. */
static void finish_loop(evl_loop_t *loop, evl_timer_t *watchdog) {
    CHECK(evl_close((evl_handle_t *)watchdog, NULL) == 0, "watchdog close");
    run_until_done(loop);
    int rc = evl_loop_free(loop);
    CHECK(rc == 0, "evl_loop_free: %s (a handle was left open)", evl_err_name(rc));
}

#endif
