/*
 * C test suite for libevloop: every exported function, including misuse, on each backend
 * named on the command line (default: epoll and, if it starts, uring).
 *
 *   test_evloop [epoll] [uring] [part-of-a-test-name ...] [-part-of-a-test-name ...]
 *
 * Prints one line per failed check and closes with "N passed, N failed".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <evloop.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int backend;
static const char *backend_label;
static int failures_in_test;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  [%s] %s:%d: check failed: %s\n", backend_label, __FILE__, __LINE__, \
                    #cond);                                                                        \
            failures_in_test++;                                                                    \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b)                                                                              \
    do {                                                                                            \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                       \
        if (va_ != vb_) {                                                                           \
            fprintf(stderr, "  [%s] %s:%d: %s == %lld, expected %s == %lld (%s)\n", backend_label,    \
                    __FILE__, __LINE__, #a, va_, #b, vb_, evl_err_name((int)va_));                   \
            failures_in_test++;                                                                     \
        }                                                                                           \
    } while (0)

static evl_loop_t *new_loop(void) {
    evl_loop_t *l = NULL;
    int r = evl_loop_new(&l, backend);
    if (r != 0) {
        fprintf(stderr, "evl_loop_new: %s\n", evl_err_name(r));
        exit(2);
    }
    return l;
}

/* Runs the loop until *flag becomes non-zero or 10 s pass (a watchdog timer stops it). */
static void on_watchdog(evl_timer_t *t, void *data) {
    (void)t;
    *(int *)data = 1;
}
static void run_until(evl_loop_t *l, volatile int *flag) {
    int expired = 0;
    evl_timer_t *dog;
    evl_timer_init(l, &dog, &expired);
    evl_timer_start(dog, on_watchdog, 10000, 0);
    evl_unref((evl_handle_t *)dog);
    while (!*flag && !expired) evl_run(l, EVL_RUN_ONCE);
    CHECK(!expired);
    evl_close((evl_handle_t *)dog, NULL);
    evl_run(l, EVL_RUN_NOWAIT);
}

static void finish_loop(evl_loop_t *l) {
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(evl_loop_free(l), 0);
}


/* ---- versions and errors ---- */

static void test_version_and_errors(void) {
    CHECK_EQ(evl_version(), (EVL_VERSION_MAJOR << 16) | (EVL_VERSION_MINOR << 8) | EVL_VERSION_PATCH);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", EVL_VERSION_MAJOR, EVL_VERSION_MINOR, EVL_VERSION_PATCH);
    CHECK(strcmp(evl_version_string(), expected) == 0);
    CHECK(strcmp(evl_err_name(-ECONNREFUSED), "ECONNREFUSED") == 0);
    CHECK(strcmp(evl_err_name(EVL_EOF), "EOF") == 0);
    CHECK(strcmp(evl_err_name(12345), "UNKNOWN") == 0);
    CHECK(strcmp(evl_strerror(-ENOENT), "No such file or directory") == 0);
    CHECK(strcmp(evl_strerror(1), "Unknown error") == 0);
}

/* ---- loop ---- */

static int soon_order[4], soon_count;
static void on_soon(evl_loop_t *l, void *data) {
    (void)l;
    soon_order[soon_count++] = (int)(intptr_t)data;
}

static void test_loop_basics_and_misuse(void) {
    evl_loop_t *l = NULL;
    CHECK_EQ(evl_loop_new(NULL, EVL_BACKEND_AUTO), -EINVAL);
    CHECK_EQ(evl_loop_new(&l, 42), -EINVAL);
    l = new_loop();
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(evl_run(l, 7), -EINVAL);
    CHECK_EQ(evl_run(NULL, EVL_RUN_DEFAULT), -EINVAL);
    CHECK_EQ(evl_loop_alive(l), 0);
    CHECK(evl_backend_fd(l) >= 0);
    CHECK_EQ(evl_backend_timeout(l), -1);
    CHECK(strcmp(evl_backend_name(l), backend == EVL_BACKEND_URING ? "uring" : "epoll") == 0);
    CHECK(evl_backend_name(NULL) == NULL);
    uint64_t before = evl_now(l);
    usleep(3000);
    CHECK_EQ(evl_now(l), before);
    evl_update_time(l);
    CHECK(evl_now(l) >= before + 3);
    CHECK(evl_now_ns(l) / 1000000 >= evl_now(l));
    CHECK_EQ(evl_now(NULL), 0);
    evl_stop(NULL);
    evl_update_time(NULL);
    /* call_soon: FIFO, NULL callback refused. */
    soon_count = 0;
    for (int i = 0; i < 4; i++) CHECK_EQ(evl_call_soon(l, on_soon, (void *)(intptr_t)i), 0);
    CHECK_EQ(evl_call_soon(l, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_loop_alive(l), 1);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(soon_count, 4);
    for (int i = 0; i < 4; i++) CHECK_EQ(soon_order[i], i);
    /* A loop with a handle cannot be freed. */
    evl_timer_t *t;
    CHECK_EQ(evl_timer_init(l, &t, NULL), 0);
    CHECK_EQ(evl_loop_free(l), -EBUSY);
    CHECK_EQ(evl_close((evl_handle_t *)t, NULL), 0);
    CHECK_EQ(evl_loop_free(l), -EBUSY); /* close callback not run yet */
    finish_loop(l);
    CHECK_EQ(evl_loop_free(NULL), -EINVAL);
    /* Memory that is not a loop (the magic number check rejects it). */
    uint64_t not_a_loop[64] = {0};
    CHECK_EQ(evl_run((evl_loop_t *)not_a_loop, EVL_RUN_NOWAIT), -EINVAL);
    CHECK_EQ(evl_timer_stop((evl_timer_t *)not_a_loop), -EINVAL);
}

/* ---- timers ---- */

static int fired[8], fired_count;
static void on_order(evl_timer_t *t, void *data) {
    fired[fired_count++] = (int)(intptr_t)data;
    evl_close((evl_handle_t *)t, NULL);
}

static void test_timer_order(void) {
    evl_loop_t *l = new_loop();
    int timeouts[] = {30, 10, 20, 10};
    fired_count = 0;
    for (int i = 0; i < 4; i++) {
        evl_timer_t *t;
        CHECK_EQ(evl_timer_init(l, &t, (void *)(intptr_t)timeouts[i]), 0);
        CHECK_EQ(evl_timer_start(t, on_order, (uint64_t)timeouts[i], 0), 0);
    }
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(fired_count, 4);
    CHECK_EQ(fired[0], 10);
    CHECK_EQ(fired[1], 10);
    CHECK_EQ(fired[2], 20);
    CHECK_EQ(fired[3], 30);
    finish_loop(l);
}

static int repeats, closed_count;
static void on_closed(evl_handle_t *h, void *data) {
    (void)h;
    (void)data;
    closed_count++;
}
static void on_repeat(evl_timer_t *t, void *data) {
    CHECK(data == &repeats);
    if (++repeats == 3) {
        CHECK_EQ(evl_timer_stop(t), 0);
        CHECK_EQ(evl_is_active((evl_handle_t *)t), 0);
    }
}
static void on_close_self(evl_timer_t *t, void *data) {
    (void)data;
    repeats++;
    CHECK_EQ(evl_close((evl_handle_t *)t, on_closed), 0);
    CHECK_EQ(evl_close((evl_handle_t *)t, on_closed), -EBADF); /* double close */
    CHECK_EQ(evl_timer_start(t, on_close_self, 1, 0), -EBADF); /* use after close */
    CHECK_EQ(evl_is_closing((evl_handle_t *)t), 1);
    CHECK_EQ(evl_run(evl_handle_get_loop((evl_handle_t *)t), EVL_RUN_NOWAIT), -EBUSY);
    CHECK_EQ(evl_loop_free(evl_handle_get_loop((evl_handle_t *)t)), -EBUSY);
}

static void test_timer_repeat_again_and_close_in_callback(void) {
    evl_loop_t *l = new_loop();
    evl_timer_t *t;
    repeats = 0;
    closed_count = 0;
    CHECK_EQ(evl_timer_init(l, &t, &repeats), 0);
    CHECK_EQ(evl_timer_again(t), -EINVAL); /* never started */
    CHECK_EQ(evl_timer_start(t, NULL, 1, 1), -EINVAL);
    CHECK_EQ(evl_timer_start(t, on_repeat, 1, 2), 0);
    CHECK_EQ(evl_timer_get_repeat(t), 2);
    CHECK_EQ(evl_is_active((evl_handle_t *)t), 1);
    CHECK(evl_timer_get_due_in(t) <= 1);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(repeats, 3);
    CHECK_EQ(evl_timer_set_repeat(t, 5), 0);
    CHECK_EQ(evl_timer_again(t), 0);
    CHECK_EQ(evl_timer_get_repeat(t), 5);
    CHECK_EQ(evl_timer_stop(t), 0);
    CHECK_EQ(evl_timer_start(t, on_close_self, 1, 1), 0);
    repeats = 0;
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(repeats, 1);
    CHECK_EQ(closed_count, 1);
    /* NULL and wrong-kind arguments. */
    CHECK_EQ(evl_timer_init(l, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_timer_init(NULL, &t, NULL), -EINVAL);
    CHECK_EQ(evl_timer_stop(NULL), -EINVAL);
    CHECK_EQ(evl_close(NULL, NULL), -EINVAL);
    CHECK_EQ(evl_ref(NULL), -EINVAL);
    CHECK(evl_handle_get_data(NULL) == NULL);
    evl_timer_t *t2;
    CHECK_EQ(evl_timer_init(l, &t2, NULL), 0);
    CHECK_EQ(evl_read_start((evl_stream_t *)t2, NULL), -EINVAL);
    CHECK_EQ(evl_udp_recv_stop((evl_udp_t *)t2), -EINVAL);
    CHECK_EQ(evl_close((evl_handle_t *)t2, NULL), 0);
    finish_loop(l);
}

/* ---- timers in caller memory (evl_timer_init_in) ---- */

#define IN_TIMERS 64
static size_t in_size;
static unsigned char *in_block;
static int in_fired[IN_TIMERS], in_order[IN_TIMERS], in_order_count, in_closed;
static evl_timer_t *in_timer(int i) { return (evl_timer_t *)(in_block + (size_t)i * in_size); }
static void on_in_timer(evl_timer_t *t, void *data) {
    int i = (int)(intptr_t)data;
    CHECK(t == in_timer(i));
    in_fired[i]++;
    if (in_order_count < IN_TIMERS) in_order[in_order_count++] = i;
}
static void on_in_closed(evl_handle_t *h, void *data) {
    /* The record is still readable here, and the memory may be reused or freed from here on. */
    CHECK(evl_handle_get_data(h) == data);
    CHECK_EQ(evl_is_closing(h), 1);
    in_closed++;
}
static void on_in_closed_free(evl_handle_t *h, void *data) {
    (void)data;
    in_closed++;
    free(h);
}

static void test_timers_in_caller_memory(void) {
    evl_loop_t *l = new_loop();
    in_size = evl_handle_size(EVL_HANDLE_TIMER);
    CHECK(in_size >= sizeof(void *));
    CHECK_EQ(evl_handle_size(0), 0);
    CHECK_EQ(evl_handle_size(99), 0);
    /* Fresh from malloc, not cleared: valgrind would see a read of it. */
    in_block = malloc(IN_TIMERS * in_size + 1);
    /* Bad memory and bad loops. */
    CHECK_EQ(evl_timer_init_in(l, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_timer_init_in(l, (evl_timer_t *)(in_block + 1), NULL), -EINVAL);
    CHECK_EQ(evl_timer_init_in(NULL, in_timer(0), NULL), -EINVAL);
    for (int i = 0; i < IN_TIMERS; i++) {
        in_fired[i] = 0;
        CHECK_EQ(evl_timer_init_in(l, in_timer(i), (void *)(intptr_t)i), 0);
    }
    CHECK(evl_handle_get_loop((evl_handle_t *)in_timer(3)) == l);
    CHECK(evl_handle_get_data((evl_handle_t *)in_timer(3)) == (void *)(intptr_t)3);
    CHECK_EQ(evl_timer_again(in_timer(3)), -EINVAL); /* never started */
    /* One in four is stopped again, some before and some after their neighbours: the stopped
       ones never fire, and those due in the same millisecond keep their start order. */
    for (int i = 0; i < IN_TIMERS; i++) CHECK_EQ(evl_timer_start(in_timer(i), on_in_timer, 5 + (i % 2), 0), 0);
    for (int i = IN_TIMERS - 3; i >= IN_TIMERS / 2; i -= 4) CHECK_EQ(evl_timer_stop(in_timer(i)), 0);
    for (int i = 1; i < IN_TIMERS / 2; i += 4) CHECK_EQ(evl_timer_stop(in_timer(i)), 0);
    CHECK_EQ(evl_timer_stop(in_timer(5)), 0); /* twice */
    CHECK_EQ(evl_is_active((evl_handle_t *)in_timer(1)), 0);
    CHECK_EQ(evl_is_active((evl_handle_t *)in_timer(0)), 1);
    /* A stopped timer started again fires once, last of its millisecond (started last). */
    CHECK_EQ(evl_timer_start(in_timer(1), on_in_timer, 5, 0), 0);
    CHECK(evl_timer_get_due_in(in_timer(1)) <= 5);
    in_order_count = 0;
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    int want_order[IN_TIMERS], n = 0;
    for (int i = 0; i < IN_TIMERS; i += 2) want_order[n++] = i;
    want_order[n++] = 1;
    for (int i = 3; i < IN_TIMERS; i += 2)
        if (i % 4 != 1) want_order[n++] = i;
    CHECK_EQ(in_order_count, n);
    for (int k = 0; k < n && k < in_order_count; k++) CHECK_EQ(in_order[k], want_order[k]);
    for (int i = 0; i < IN_TIMERS; i++) CHECK_EQ(in_fired[i], (i % 4 == 1 && i != 1) ? 0 : 1);
    /* Repeat, set_repeat and again work on them as on any timer. */
    in_fired[2] = 0;
    CHECK_EQ(evl_timer_start(in_timer(2), on_in_timer, 1, 1), 0);
    CHECK_EQ(evl_timer_get_repeat(in_timer(2)), 1);
    CHECK_EQ(evl_timer_set_repeat(in_timer(2), 2), 0);
    CHECK_EQ(evl_timer_again(in_timer(2)), 0);
    while (in_fired[2] < 3) CHECK_EQ(evl_run(l, EVL_RUN_ONCE), 1);
    CHECK_EQ(evl_timer_stop(in_timer(2)), 0);
    CHECK_EQ(evl_loop_alive(l), 0);
    /* Unreferenced, a running timer keeps nothing alive. */
    CHECK_EQ(evl_timer_start(in_timer(4), on_in_timer, 60000, 0), 0);
    CHECK_EQ(evl_unref((evl_handle_t *)in_timer(4)), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    /* Open timers keep the loop from being freed; closing hands the memory back after the close
       callback, once, and the memory can then hold a new timer. */
    CHECK_EQ(evl_loop_free(l), -EBUSY);
    in_closed = 0;
    for (int i = 0; i < IN_TIMERS; i++) CHECK_EQ(evl_close((evl_handle_t *)in_timer(i), on_in_closed), 0);
    CHECK_EQ(evl_timer_start(in_timer(0), on_in_timer, 1, 0), -EBADF);
    CHECK_EQ(evl_timer_stop(in_timer(0)), -EBADF);
    CHECK_EQ(evl_close((evl_handle_t *)in_timer(0), NULL), -EBADF);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(in_closed, IN_TIMERS);
    CHECK_EQ(evl_timer_init_in(l, in_timer(0), (void *)(intptr_t)0), 0);
    in_fired[0] = 0;
    CHECK_EQ(evl_timer_start(in_timer(0), on_in_timer, 1, 0), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(in_fired[0], 1);
    CHECK_EQ(evl_close((evl_handle_t *)in_timer(0), NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    /* A timer in its own allocation, running when closed, freed in its close callback (valgrind
       and ASan see any later touch). */
    evl_timer_t *own = malloc(in_size);
    CHECK_EQ(evl_timer_init_in(l, own, NULL), 0);
    CHECK_EQ(evl_timer_start(own, on_in_timer, 100000, 0), 0);
    in_closed = 0;
    CHECK_EQ(evl_close((evl_handle_t *)own, on_in_closed_free), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(in_closed, 1);
    free(in_block);
    finish_loop(l);
}

/* Starts and stops in a random order across many timers in caller memory and in the library's,
   against a model of which must fire. */
#define MIXED_TIMERS 2000
static int mixed_fired[MIXED_TIMERS];
static void on_mixed(evl_timer_t *t, void *data) {
    (void)t;
    mixed_fired[(intptr_t)data]++;
}

static void test_timers_in_caller_memory_mixed_with_the_librarys(void) {
    evl_loop_t *l = new_loop();
    size_t size = evl_handle_size(EVL_HANDLE_TIMER);
    unsigned char *block = malloc(MIXED_TIMERS / 2 * size);
    evl_timer_t *timers[MIXED_TIMERS];
    int running[MIXED_TIMERS] = {0};
    for (int i = 0; i < MIXED_TIMERS; i++) {
        if (i % 2) {
            timers[i] = (evl_timer_t *)(block + (size_t)(i / 2) * size);
            CHECK_EQ(evl_timer_init_in(l, timers[i], (void *)(intptr_t)i), 0);
        } else {
            CHECK_EQ(evl_timer_init(l, &timers[i], (void *)(intptr_t)i), 0);
        }
        mixed_fired[i] = 0;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int step = 0; step < 20000; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int i = (int)(x % MIXED_TIMERS);
        if ((x >> 32) % 3) {
            CHECK_EQ(evl_timer_start(timers[i], on_mixed, 20 + (x >> 40) % 40, 0), 0);
            running[i] = 1;
        } else {
            CHECK_EQ(evl_timer_stop(timers[i]), 0);
            running[i] = 0;
        }
    }
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    for (int i = 0; i < MIXED_TIMERS; i++) CHECK_EQ(mixed_fired[i], running[i]);
    for (int i = 0; i < MIXED_TIMERS; i++) CHECK_EQ(evl_close((evl_handle_t *)timers[i], NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    free(block);
    finish_loop(l);
}

static int bg_fired;
static void on_bg(evl_timer_t *t, void *d) {
    (void)t;
    (void)d;
    bg_fired++;
}

static void test_ref_unref_and_data(void) {
    evl_loop_t *l = new_loop();
    evl_timer_t *t;
    int tag = 7;
    CHECK_EQ(evl_timer_init(l, &t, NULL), 0);
    CHECK(evl_handle_get_data((evl_handle_t *)t) == NULL);
    CHECK_EQ(evl_handle_set_data((evl_handle_t *)t, &tag), 0);
    CHECK(evl_handle_get_data((evl_handle_t *)t) == &tag);
    CHECK(evl_handle_get_loop((evl_handle_t *)t) == l);
    CHECK_EQ(evl_timer_start(t, on_bg, 1000, 1000), 0);
    CHECK_EQ(evl_has_ref((evl_handle_t *)t), 1);
    CHECK_EQ(evl_unref((evl_handle_t *)t), 0);
    CHECK_EQ(evl_has_ref((evl_handle_t *)t), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0); /* only an unref'd handle: returns at once */
    CHECK_EQ(bg_fired, 0);
    CHECK_EQ(evl_is_active((evl_handle_t *)t), 1);
    CHECK_EQ(evl_ref((evl_handle_t *)t), 0);
    CHECK_EQ(evl_loop_alive(l), 1);
    CHECK_EQ(evl_is_closing((evl_handle_t *)t), 0);
    CHECK_EQ(evl_close((evl_handle_t *)t, NULL), 0);
    CHECK_EQ(evl_ref((evl_handle_t *)t), -EBADF);
    finish_loop(l);
}

/* ---- TCP ---- */

struct echo_state {
    char got[4096];
    size_t len;
    int connected, written, eof, shutdown_done, server_eof, conns;
    int refused;
    int is_unix; /* TCP options must then fail with -EOPNOTSUPP */
};

static void on_server_read(evl_stream_t *s, ssize_t n, const char *buf, void *data) {
    struct echo_state *st = data;
    if (n > 0) {
        evl_buf_t b = {buf, (size_t)n};
        CHECK_EQ(evl_write(s, &b, 1, NULL, NULL), 0);
    } else {
        CHECK_EQ(n, EVL_EOF);
        st->server_eof = 1;
        evl_close((evl_handle_t *)s, NULL);
    }
}

static void on_connection(evl_stream_t *listener, evl_stream_t *conn, int status, void *data) {
    (void)listener;
    struct echo_state *st = data;
    CHECK_EQ(status, 0);
    st->conns++;
    CHECK(evl_handle_get_data((evl_handle_t *)conn) == NULL);
    evl_handle_set_data((evl_handle_t *)conn, st);
    CHECK_EQ(evl_tcp_nodelay(conn, 1), st->is_unix ? -EOPNOTSUPP : 0);
    CHECK_EQ(evl_read_start(conn, on_server_read), 0);
}

static void on_connected(evl_stream_t *s, int status, void *data) {
    struct echo_state *st = data;
    CHECK_EQ(status, 0);
    st->connected = 1;
    CHECK_EQ(evl_tcp_keepalive(s, 1, 30), st->is_unix ? -EOPNOTSUPP : 0);
}

static void on_written(evl_stream_t *s, int status, void *req) {
    (void)s;
    CHECK_EQ(status, 0);
    ((struct echo_state *)req)->written++;
}

static void on_client_read(evl_stream_t *s, ssize_t n, const char *buf, void *data) {
    (void)s;
    struct echo_state *st = data;
    if (n > 0) {
        memcpy(st->got + st->len, buf, (size_t)n);
        st->len += (size_t)n;
    } else {
        CHECK_EQ(n, EVL_EOF);
        st->eof = 1;
    }
}

static void on_shutdown(evl_stream_t *s, int status, void *req) {
    (void)s;
    CHECK_EQ(status, 0);
    ((struct echo_state *)req)->shutdown_done = 1;
}

static void test_tcp_echo(void) {
    evl_loop_t *l = new_loop();
    struct echo_state st;
    memset(&st, 0, sizeof st);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_stream_t *server, *client;
    CHECK_EQ(evl_tcp_bind(l, &server, (struct sockaddr *)&addr, sizeof addr, 0, &st), 0);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    CHECK_EQ(evl_tcp_getsockname(server, &bound, &blen), 0);
    CHECK_EQ(blen, sizeof(struct sockaddr_in));
    CHECK_EQ(evl_listen(server, 16, NULL), -EINVAL);
    CHECK_EQ(evl_listen(server, 16, on_connection), 0);
    CHECK_EQ(evl_tcp_connect(l, &client, (struct sockaddr *)&bound, blen, on_connected, &st), 0);
    CHECK_EQ(evl_read_start(client, on_client_read), 0);
    evl_buf_t bufs[2] = {{"hello ", 6}, {"world", 5}};
    CHECK_EQ(evl_write(client, bufs, 2, on_written, &st), 0);
    CHECK_EQ(evl_write(client, NULL, 1, NULL, NULL), -EINVAL);
    run_until(l, (volatile int *)&st.written);
    while (st.len < 11) {
        int dog = 0;
        (void)dog;
        evl_run(l, EVL_RUN_ONCE);
    }
    CHECK(st.connected);
    CHECK(memcmp(st.got, "hello world", 11) == 0);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    CHECK_EQ(evl_tcp_getpeername(client, &peer, &plen), 0);
    CHECK(((struct sockaddr_in *)&peer)->sin_port == ((struct sockaddr_in *)&bound)->sin_port);
    CHECK(evl_stream_fileno(client) >= 0);
    CHECK_EQ(evl_stream_get_write_queue_size(client), 0);
    /* try_write goes straight to the socket. */
    evl_buf_t more = {"!", 1};
    CHECK_EQ(evl_try_write(client, &more, 1), 1);
    while (st.len < 12) evl_run(l, EVL_RUN_ONCE);
    /* Shutdown: the server sees EOF and closes; the client then sees EOF. */
    CHECK_EQ(evl_shutdown(client, on_shutdown, &st), 0);
    CHECK_EQ(evl_shutdown(client, on_shutdown, &st), -EALREADY);
    CHECK_EQ(evl_write(client, &more, 1, NULL, NULL), -EPIPE);
    run_until(l, (volatile int *)&st.eof);
    CHECK(st.shutdown_done);
    CHECK(st.server_eof);
    CHECK_EQ(evl_close((evl_handle_t *)client, NULL), 0);
    CHECK_EQ(evl_write(client, &more, 1, NULL, NULL), -EBADF); /* write after close */
    CHECK_EQ(evl_close((evl_handle_t *)server, NULL), 0);
    finish_loop(l);
}

static void on_refused(evl_stream_t *s, int status, void *data) {
    (void)s;
    ((struct echo_state *)data)->refused = status;
}

static void test_tcp_connect_refused_and_bad_addresses(void) {
    evl_loop_t *l = new_loop();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bind(fd, (struct sockaddr *)&addr, sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    close(fd); /* nothing listens on that port now */
    struct echo_state st;
    memset(&st, 0, sizeof st);
    evl_stream_t *c;
    CHECK_EQ(evl_tcp_connect(l, &c, (struct sockaddr *)&addr, sizeof addr, on_refused, &st), 0);
    while (st.refused == 0) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(st.refused, -ECONNREFUSED);
    CHECK_EQ(evl_close((evl_handle_t *)c, NULL), 0);
    CHECK_EQ(evl_tcp_bind(l, &c, NULL, 0, 0, NULL), -EINVAL);
    CHECK_EQ(evl_tcp_bind(l, &c, (struct sockaddr *)&addr, 3, 0, NULL), -EINVAL);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_EQ(evl_tcp_bind(l, &c, (struct sockaddr *)&un, sizeof un, 0, NULL), -EAFNOSUPPORT);
    CHECK_EQ(evl_tcp_bind(l, NULL, (struct sockaddr *)&addr, sizeof addr, 0, NULL), -EINVAL);
    finish_loop(l);
}

static int drained;
static void on_drain(evl_stream_t *s, void *d) {
    (void)s;
    (void)d;
    drained++;
}

static void test_backpressure_and_adopt(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evl_stream_t *s;
    CHECK_EQ(evl_stream_adopt(l, &s, sv[0], NULL), 0);
    CHECK_EQ(evl_stream_adopt(l, &s, -1, NULL), -EBADF);
    CHECK_EQ(evl_stream_set_high_water_mark(s, 4096), 0);
    CHECK_EQ(evl_stream_on_drain(s, on_drain), 0);
    static char chunk[1024];
    evl_buf_t b = {chunk, sizeof chunk};
    int r = 0, writes = 0;
    while ((r = evl_write(s, &b, 1, NULL, NULL)) == 0 && writes < 100000) {
        writes++;
        evl_run(l, EVL_RUN_NOWAIT);
    }
    CHECK_EQ(r, 1); /* at the high-water mark */
    CHECK(evl_stream_get_write_queue_size(s) >= 4096);
    drained = 0;
    /* The peer drains its end until the loop has emptied its queue. */
    char sink[65536];
    int spins = 0;
    while (drained == 0 && spins++ < 100000) {
        while (recv(sv[1], sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        evl_run(l, EVL_RUN_NOWAIT);
    }
    CHECK_EQ(drained, 1);
    CHECK_EQ(evl_stream_get_write_queue_size(s), 0);
    CHECK_EQ(evl_close((evl_handle_t *)s, NULL), 0);
    close(sv[1]);
    finish_loop(l);
}

/* ---- Unix sockets ---- */

static void test_unix_echo(void) {
    evl_loop_t *l = new_loop();
    struct echo_state st;
    memset(&st, 0, sizeof st);
    st.is_unix = 1;
    char name[64];
    int n = snprintf(name, sizeof name, "%cevloop-c-test-%d-%d", 0, (int)getpid(), backend);
    evl_stream_t *server, *client;
    CHECK_EQ(evl_unix_bind(l, &server, name, (size_t)n, &st), 0);
    CHECK_EQ(evl_unix_bind(l, &server, NULL, 0, &st), -EINVAL);
    CHECK_EQ(evl_listen(server, 8, on_connection), 0);
    CHECK_EQ(evl_unix_connect(l, &client, name, (size_t)n, on_connected, &st), 0);
    CHECK_EQ(evl_read_start(client, on_client_read), 0);
    evl_buf_t b = {"unix", 4};
    CHECK_EQ(evl_write(client, &b, 1, NULL, NULL), 0);
    while (st.len < 4) evl_run(l, EVL_RUN_ONCE);
    CHECK(memcmp(st.got, "unix", 4) == 0);
    CHECK_EQ(evl_read_stop(client), 0);
    CHECK_EQ(evl_close((evl_handle_t *)client, NULL), 0);
    CHECK_EQ(evl_close((evl_handle_t *)server, NULL), 0);
    finish_loop(l);
}

/* ---- UDP ---- */

struct udp_state {
    int received, sent;
    char last[64];
};

static void on_udp_server(evl_udp_t *u, ssize_t n, const char *buf, const struct sockaddr *from, void *data) {
    (void)data;
    CHECK(n >= 0);
    if (n < 0) return;
    evl_buf_t b = {buf, (size_t)n};
    CHECK_EQ(evl_udp_send(u, &b, 1, from, sizeof(struct sockaddr_in), NULL, NULL), 0);
}

static void on_udp_client(evl_udp_t *u, ssize_t n, const char *buf, const struct sockaddr *from, void *data) {
    (void)u;
    struct udp_state *st = data;
    CHECK(from != NULL && from->sa_family == AF_INET);
    if (n > 0 && n < 64) memcpy(st->last, buf, (size_t)n);
    st->received++;
}

static void on_udp_sent(evl_udp_t *u, int status, void *req) {
    (void)u;
    CHECK_EQ(status, 0);
    ((struct udp_state *)req)->sent++;
}

static void test_udp_echo(void) {
    evl_loop_t *l = new_loop();
    struct udp_state st;
    memset(&st, 0, sizeof st);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_udp_t *server, *client;
    CHECK_EQ(evl_udp_bind(l, &server, (struct sockaddr *)&addr, sizeof addr, EVL_UDP_REUSEADDR, NULL), 0);
    CHECK_EQ(evl_udp_bind(l, &client, (struct sockaddr *)&addr, sizeof addr, 0, &st), 0);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    CHECK_EQ(evl_udp_getsockname(server, &sa, &salen), 0);
    CHECK_EQ(evl_udp_recv_start(server, on_udp_server), 0);
    CHECK_EQ(evl_udp_recv_start(client, on_udp_client), 0);
    evl_buf_t parts[2] = {{"da", 2}, {"tagram", 6}};
    CHECK_EQ(evl_udp_send(client, parts, 2, (struct sockaddr *)&sa, salen, on_udp_sent, &st), 0);
    CHECK_EQ(evl_udp_send(client, parts, 2, NULL, 0, NULL, NULL), -EINVAL);
    while (st.received < 1) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(st.sent, 1);
    CHECK(memcmp(st.last, "datagram", 8) == 0);
    CHECK_EQ(evl_udp_set_broadcast(client, 1), 0);
    CHECK_EQ(evl_udp_set_ttl(client, 8), 0);
    CHECK_EQ(evl_udp_set_multicast_loop(client, 1), 0);
    CHECK_EQ(evl_udp_set_multicast_ttl(client, 2), 0);
    CHECK_EQ(evl_udp_set_membership(client, "not an address", NULL, 1), -EINVAL);
    int m = evl_udp_set_membership(server, "239.255.7.7", "127.0.0.1", 1);
    CHECK(m == 0 || m == -ENODEV || m == -EADDRNOTAVAIL);
    CHECK_EQ(evl_udp_recv_stop(client), 0);
    CHECK_EQ(evl_close((evl_handle_t *)client, NULL), 0);
    CHECK_EQ(evl_close((evl_handle_t *)server, NULL), 0);
    finish_loop(l);
}

/* A socket made elsewhere joins the loop: a connected one, whose peer echoes back. */
static void test_udp_adopt(void) {
    evl_loop_t *l = new_loop();
    struct udp_state st;
    memset(&st, 0, sizeof st);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_udp_t *server, *client;
    CHECK_EQ(evl_udp_bind(l, &server, (struct sockaddr *)&addr, sizeof addr, 0, NULL), 0);
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    CHECK_EQ(evl_udp_getsockname(server, &sa, &salen), 0);
    CHECK_EQ(evl_udp_recv_start(server, on_udp_server), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&sa, salen), 0);
    CHECK_EQ(evl_udp_adopt(l, &client, fd, &st), 0);
    CHECK_EQ(evl_udp_recv_start(client, on_udp_client), 0);
    evl_buf_t b = {"adopted", 7};
    CHECK_EQ(evl_udp_send(client, &b, 1, (struct sockaddr *)&sa, salen, on_udp_sent, &st), 0);
    while (st.received < 1) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(st.sent, 1);
    CHECK(memcmp(st.last, "adopted", 7) == 0);
    evl_udp_t *bad;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    CHECK_EQ(evl_udp_adopt(l, &bad, sv[0], NULL), -EAFNOSUPPORT);
    close(sv[0]);
    close(sv[1]);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(evl_udp_adopt(l, &bad, sv[0], NULL), -ENOTSOCK);
    close(sv[0]);
    close(sv[1]);
    CHECK_EQ(evl_udp_adopt(l, &bad, -1, NULL), -EBADF);
    CHECK_EQ(evl_close((evl_handle_t *)client, NULL), 0);
    CHECK_EQ(evl_close((evl_handle_t *)server, NULL), 0);
    finish_loop(l);
}

/* ---- fd watchers ---- */

static unsigned poll_seen;
static void on_poll(evl_poll_t *p, int status, unsigned events, void *data) {
    (void)data;
    CHECK_EQ(status, 0);
    poll_seen |= events;
    evl_poll_stop(p);
}

static void test_poll_pipe(void) {
    evl_loop_t *l = new_loop();
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    evl_poll_t *p;
    CHECK_EQ(evl_poll_init(l, &p, fds[0], NULL), 0);
    CHECK_EQ(evl_poll_init(l, &p, -1, NULL), -EBADF);
    CHECK_EQ(evl_poll_start(p, EVL_READABLE, NULL), -EINVAL);
    CHECK_EQ(evl_poll_start(p, 1u << 9, on_poll), -EINVAL);
    CHECK_EQ(evl_poll_start(p, EVL_READABLE, on_poll), 0);
    poll_seen = 0;
    CHECK_EQ(write(fds[1], "x", 1), 1);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK(poll_seen & EVL_READABLE);
    CHECK_EQ(evl_close((evl_handle_t *)p, NULL), 0);
    finish_loop(l);
    close(fds[0]);
    close(fds[1]);
}

/* ---- wake-ups ---- */

#define SENDERS 4
#define SENDS 2000
static volatile int sends_done;
static int async_calls, async_saw_all;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void *sender(void *arg) {
    for (int i = 0; i < SENDS; i++) {
        pthread_mutex_lock(&count_lock);
        sends_done++;
        pthread_mutex_unlock(&count_lock);
        evl_async_send((evl_async_t *)arg);
    }
    return NULL;
}

static void on_async(evl_async_t *a, void *data) {
    (void)data;
    async_calls++;
    pthread_mutex_lock(&count_lock);
    int done = sends_done;
    pthread_mutex_unlock(&count_lock);
    if (done == SENDERS * SENDS) {
        async_saw_all = 1;
        evl_close((evl_handle_t *)a, NULL);
    }
}

static void test_async_from_threads(void) {
    evl_loop_t *l = new_loop();
    evl_async_t *a;
    sends_done = 0;
    async_calls = 0;
    async_saw_all = 0;
    CHECK_EQ(evl_async_init(l, &a, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_async_init(l, &a, on_async, NULL), 0);
    CHECK_EQ(evl_async_send(NULL), -EINVAL);
    pthread_t th[SENDERS];
    for (int i = 0; i < SENDERS; i++) pthread_create(&th[i], NULL, sender, a);
    for (int i = 0; i < SENDERS; i++) pthread_join(th[i], NULL);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK(async_saw_all);
    CHECK(async_calls >= 1 && async_calls <= SENDERS * SENDS);
    CHECK_EQ(evl_loop_free(l), 0);
}

/* ---- signals ---- */

static int signal_seen;
static void on_signal(evl_signal_t *s, int signum, void *data) {
    (void)data;
    signal_seen = signum;
    evl_close((evl_handle_t *)s, NULL);
}

static void test_signal(void) {
    evl_loop_t *l = new_loop();
    evl_signal_t *s;
    CHECK_EQ(evl_signal_init(l, &s, NULL), 0);
    CHECK_EQ(evl_signal_start(s, on_signal, SIGKILL), -EINVAL);
    CHECK_EQ(evl_signal_start(s, on_signal, 0), -EINVAL);
    CHECK_EQ(evl_signal_start(s, NULL, SIGUSR1), -EINVAL);
    CHECK_EQ(evl_signal_start(s, on_signal, SIGUSR1), 0);
    signal_seen = 0;
    raise(SIGUSR1);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(signal_seen, SIGUSR1);
    /* The default disposition is back once no watcher remains. */
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    CHECK(old.sa_handler == SIG_DFL);
    evl_signal_t *s2;
    CHECK_EQ(evl_signal_init(l, &s2, NULL), 0);
    CHECK_EQ(evl_signal_start(s2, on_signal, SIGUSR2), 0);
    CHECK_EQ(evl_signal_stop(s2), 0);
    CHECK_EQ(evl_close((evl_handle_t *)s2, NULL), 0);
    finish_loop(l);
}

/* ---- thread pool and name resolution ---- */

struct work_state {
    int computed, after_status[8], afters;
    pthread_t loop_thread;
    int ran_on_loop_thread;
};

static void square_work(void *data) {
    struct work_state *w = data;
    if (pthread_equal(pthread_self(), w->loop_thread)) w->ran_on_loop_thread = 1;
    __atomic_add_fetch(&w->computed, 1, __ATOMIC_SEQ_CST);
}

static void after_work(evl_loop_t *l, int status, void *data) {
    (void)l;
    struct work_state *w = data;
    if (w->afters < 8) w->after_status[w->afters] = status;
    w->afters++;
}

static int gai_status = 1, gai_count, gai_port_ok, gni_status = 1;
static void on_gai(evl_loop_t *l, int status, const struct sockaddr_storage *addrs, size_t count, void *data) {
    (void)l;
    (void)data;
    gai_status = status;
    gai_count = (int)count;
    gai_port_ok = count > 0 && ntohs(((const struct sockaddr_in *)&addrs[0])->sin_port) == 8080;
}
static void on_gni(evl_loop_t *l, int status, const char *host, const char *service, void *data) {
    (void)l;
    (void)data;
    gni_status = status;
    CHECK(status != 0 || (host != NULL && service != NULL && host[0] != 0));
}

static void test_thread_pool_and_resolve(void) {
    evl_loop_t *l = new_loop();
    struct work_state w;
    memset(&w, 0, sizeof w);
    w.loop_thread = pthread_self();
    uint64_t id = 0;
    for (int i = 0; i < 3; i++) CHECK_EQ(evl_queue_work(l, square_work, after_work, &w, &id), 0);
    CHECK(id != 0);
    CHECK_EQ(evl_queue_work(l, NULL, after_work, &w, NULL), -EINVAL);
    CHECK_EQ(evl_loop_alive(l), 1);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(w.computed, 3);
    CHECK_EQ(w.afters, 3);
    CHECK_EQ(w.after_status[0], 0);
    CHECK(!w.ran_on_loop_thread);
    CHECK_EQ(evl_cancel_work(l, id), -EBADF); /* finished: no longer pending */
    CHECK_EQ(evl_cancel_work(l, 999999), -EBADF);
    /* Forward and reverse lookups that need no resolver. */
    CHECK_EQ(evl_getaddrinfo(l, "127.0.0.1", 8080, EVL_GAI_NUMERICHOST, on_gai, NULL, NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(gai_status, 0);
    CHECK_EQ(gai_count, 1);
    CHECK(gai_port_ok);
    CHECK_EQ(evl_getaddrinfo(l, "not-a-number", 1, EVL_GAI_NUMERICHOST, on_gai, NULL, NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(gai_status, -ENOENT);
    CHECK_EQ(evl_getaddrinfo(l, NULL, 1, 0, on_gai, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_getaddrinfo(l, "x", 1, EVL_GAI_IPV4 | EVL_GAI_IPV6, on_gai, NULL, NULL), -EINVAL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(22)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK_EQ(evl_getnameinfo(l, (struct sockaddr *)&a, sizeof a, on_gni, NULL, NULL), 0);
    CHECK_EQ(evl_getnameinfo(l, NULL, 0, on_gni, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(gni_status, 0);
    CHECK_EQ(evl_loop_free(l), 0);
}

/* ---- files ---- */

struct fs_result {
    ssize_t result;
    int calls;
};
static void on_fs(evl_loop_t *l, ssize_t result, void *data) {
    (void)l;
    struct fs_result *r = data;
    r->result = result;
    r->calls++;
}
/* Starts nothing else: runs the loop until the one request in flight has called back. */
static ssize_t fs_wait(evl_loop_t *l, struct fs_result *r) {
    int before = r->calls;
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(r->calls, before + 1);
    return r->result;
}

struct stat_result {
    int status, calls;
    evl_stat_t st;
};
static void on_stat(evl_loop_t *l, int status, const evl_stat_t *st, void *data) {
    (void)l;
    struct stat_result *r = data;
    r->status = status;
    r->calls++;
    CHECK((status == 0) == (st != NULL));
    if (st) r->st = *st;
}

struct whole {
    int status;
    char data[256];
    size_t len;
};
static void on_whole(evl_loop_t *l, int status, const uint8_t *data, size_t len, void *user_data) {
    (void)l;
    struct whole *w = user_data;
    w->status = status;
    w->len = len;
    if (len <= sizeof w->data) memcpy(w->data, data, len);
}

static void temp_dir(char *out, size_t size, const char *tag) {
    snprintf(out, size, "/tmp/evloop-c-%s-%d-%s", tag, (int)getpid(), backend_label);
    mkdir(out, 0700);
}

static void test_files(void) {
    evl_loop_t *l = new_loop();
    char dir[128], a[160], b[160];
    temp_dir(dir, sizeof dir, "fs");
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    struct fs_result r = {0, 0};
    static const char text[] = "hello, files";

    CHECK_EQ(evl_fs_write_file(l, a, text, strlen(text), on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    struct whole w = {1, {0}, 0};
    CHECK_EQ(evl_fs_read_file(l, a, on_whole, &w), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(w.status, 0);
    CHECK_EQ(w.len, strlen(text));
    CHECK(memcmp(w.data, text, w.len) == 0);
    /* The loop reuses read_file's buffers: a longer file, then the short one again, must each
     * come back exactly, nothing of the other left over. */
    static const char longer[] = "a longer text than the first file holds, read in between";
    CHECK_EQ(evl_fs_write_file(l, b, longer, strlen(longer), on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    for (int i = 0; i < 3; i++) {
        const char *want = i % 2 ? text : longer;
        w.status = 1;
        CHECK_EQ(evl_fs_read_file(l, i % 2 ? a : b, on_whole, &w), 0);
        CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
        CHECK_EQ(w.status, 0);
        CHECK_EQ(w.len, strlen(want));
        CHECK(memcmp(w.data, want, w.len) == 0);
    }
    CHECK_EQ(unlink(b), 0);

    struct stat_result st = {1, 0, {0}};
    CHECK_EQ(evl_fs_stat(l, a, on_stat, &st), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(st.status, 0);
    CHECK_EQ(st.st.size, strlen(text));
    CHECK(S_ISREG(st.st.mode));

    /* Positioned and vectored I/O on an open fd. */
    CHECK_EQ(evl_fs_open(l, a, O_RDWR, 0, on_fs, &r), 0);
    int fd = (int)fs_wait(l, &r);
    CHECK(fd >= 0);
    CHECK_EQ(evl_fs_write(l, fd, "HE", 2, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 2);
    evl_buf_t wv[2] = {{"<<", 2}, {">>", 2}};
    CHECK_EQ(evl_fs_writev(l, fd, wv, 2, (int64_t)strlen(text), on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 4);
    CHECK_EQ(evl_fs_fsync(l, fd, 1, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_fsync(l, fd, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    char head[5] = {0}, tail[64] = {0};
    evl_buf_t rv[2] = {{head, 4}, {tail, sizeof tail}};
    CHECK_EQ(evl_fs_readv(l, fd, rv, 2, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), (ssize_t)strlen(text) + 4);
    CHECK(strcmp(head, "HEll") == 0);
    CHECK(strcmp(tail, "o, files<<>>") == 0);
    char buf[16];
    CHECK_EQ(evl_fs_read(l, fd, buf, sizeof buf, 1000, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0); /* past the end: 0 bytes */
    CHECK_EQ(evl_fs_read(l, fd, buf, 2, -1, on_fs, &r), 0); /* at the file position: 0 */
    CHECK_EQ(fs_wait(l, &r), 2);
    CHECK(memcmp(buf, "HE", 2) == 0);
    CHECK_EQ(evl_fs_fstat(l, fd, on_stat, &st), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(st.st.size, strlen(text) + 4);
    CHECK_EQ(evl_fs_close(l, fd, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_read(l, fd, buf, sizeof buf, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), -EBADF);

    /* Names: rename, unlink, mkdir, rmdir, and their errors. */
    CHECK_EQ(evl_fs_rename(l, a, b, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_open(l, a, O_RDONLY, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), -ENOENT);
    CHECK_EQ(evl_fs_stat(l, a, on_stat, &st), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(st.status, -ENOENT);
    CHECK_EQ(evl_fs_unlink(l, b, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_unlink(l, b, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), -ENOENT);
    CHECK_EQ(evl_fs_mkdir(l, a, 0755, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_mkdir(l, a, 0755, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), -EEXIST);
    CHECK_EQ(evl_fs_read_file(l, a, on_whole, &w), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(w.status, -EISDIR);
    CHECK_EQ(evl_fs_rmdir(l, a, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), 0);
    CHECK_EQ(evl_fs_open(l, "/proc/sys/kernel/osrelease", O_WRONLY, 0, on_fs, &r), 0);
    CHECK_EQ(fs_wait(l, &r), -EACCES);

    /* Misuse is refused at once and starts nothing. */
    CHECK_EQ(evl_fs_open(l, NULL, O_RDONLY, 0, on_fs, &r), -EINVAL);
    CHECK_EQ(evl_fs_open(l, a, O_RDONLY, 0, NULL, &r), -EINVAL);
    CHECK_EQ(evl_fs_open(NULL, a, O_RDONLY, 0, on_fs, &r), -EINVAL);
    CHECK_EQ(evl_fs_read(l, 0, NULL, 4, 0, on_fs, &r), -EINVAL);
    CHECK_EQ(evl_fs_read(l, 0, buf, 4, -2, on_fs, &r), -EINVAL);
    CHECK_EQ(evl_fs_close(l, -1, on_fs, &r), -EBADF);
    CHECK_EQ(evl_fs_readv(l, 0, NULL, 1, 0, on_fs, &r), -EINVAL);
    CHECK_EQ(evl_fs_stat(l, a, NULL, &st), -EINVAL);
    CHECK_EQ(evl_loop_alive(l), 0);
    CHECK_EQ(evl_loop_free(l), 0);
    rmdir(dir);
}

struct listing {
    int status, count, files, dirs;
};
static void on_scandir(evl_loop_t *l, int status, const evl_dirent_t *e, size_t n, void *data) {
    (void)l;
    struct listing *ls = data;
    ls->status = status;
    ls->count = (int)n;
    for (size_t i = 0; i < n; i++) {
        ls->files += e[i].kind == EVL_DIRENT_FILE && strncmp(e[i].name, "f", 1) == 0;
        ls->dirs += e[i].kind == EVL_DIRENT_DIR && strcmp(e[i].name, "sub") == 0;
    }
}

static void test_scandir_on_pool(void) {
    evl_loop_t *l = new_loop();
    char dir[128], p[200];
    temp_dir(dir, sizeof dir, "scan");
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/f%d", dir, i);
        FILE *f = fopen(p, "w");
        if (f) fclose(f);
    }
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0700);
    struct listing ls = {1, 0, 0, 0};
    CHECK_EQ(evl_fs_scandir(l, dir, on_scandir, &ls), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(ls.status, 0);
    CHECK_EQ(ls.count, 4);
    CHECK_EQ(ls.files, 3);
    CHECK_EQ(ls.dirs, 1);
    struct listing missing = {1, 0, 0, 0};
    CHECK_EQ(evl_fs_scandir(l, "/nonexistent-evloop", on_scandir, &missing), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(missing.status, -ENOENT);
    CHECK_EQ(evl_loop_free(l), 0);
    rmdir(p);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/f%d", dir, i);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- processes ---- */

struct child {
    int exited, signal, eof;
    int64_t status;
    char out[64];
    size_t len;
};
static void on_child_exit(evl_process_t *p, int64_t status, int signum, void *data) {
    struct child *c = data;
    c->exited++;
    c->status = status;
    c->signal = signum;
    CHECK(evl_process_pid(p) > 0);
    CHECK_EQ(evl_process_kill(p, SIGTERM), -ESRCH);
    CHECK_EQ(evl_close((evl_handle_t *)p, NULL), 0);
}
static void on_child_output(evl_stream_t *s, ssize_t n, const char *data, void *user_data) {
    struct child *c = user_data;
    if (n < 0) {
        c->eof = 1;
        evl_close((evl_handle_t *)s, NULL);
        return;
    }
    if (c->len + (size_t)n <= sizeof c->out) memcpy(c->out + c->len, data, (size_t)n);
    c->len += (size_t)n;
}

static void test_spawn(void) {
    evl_loop_t *l = new_loop();
    struct child c;
    memset(&c, 0, sizeof c);
    const char *args[] = {"sh", "-c", "read x; echo \"got $x\"; exit 3", NULL};
    evl_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = "sh";
    o.args = args;
    o.stdio[0] = EVL_STDIO_PIPE;
    o.stdio[1] = EVL_STDIO_PIPE;
    o.stdio[2] = EVL_STDIO_IGNORE;
    evl_process_t *p = NULL;
    evl_stream_t *pipes[3] = {NULL, NULL, NULL};
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, pipes, &c), 0);
    CHECK(p != NULL && pipes[0] != NULL && pipes[1] != NULL && pipes[2] == NULL);
    CHECK(evl_process_pid(p) > 0);
    evl_buf_t line = {"ping\n", 5};
    CHECK(evl_write(pipes[0], &line, 1, NULL, NULL) >= 0);
    CHECK_EQ(evl_close((evl_handle_t *)pipes[0], NULL), 0);
    evl_handle_set_data((evl_handle_t *)pipes[1], &c);
    CHECK_EQ(evl_read_start(pipes[1], on_child_output), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(c.exited, 1);
    CHECK_EQ(c.status, 3);
    CHECK_EQ(c.signal, 0);
    CHECK(c.eof);
    CHECK(c.len == 9 && memcmp(c.out, "got ping\n", 9) == 0);

    /* Killed by a signal. */
    struct child k;
    memset(&k, 0, sizeof k);
    const char *sleep_args[] = {"sleep", "30", NULL};
    memset(&o, 0, sizeof o);
    o.file = "sleep";
    o.args = sleep_args;
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, NULL, &k), 0);
    CHECK_EQ(evl_process_kill(p, SIGKILL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(k.exited, 1);
    CHECK_EQ(k.signal, SIGKILL);

    /* Errors come back at once and create nothing. */
    memset(&o, 0, sizeof o);
    o.file = "evloop-no-such-program";
    p = NULL;
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, NULL, &k), -ENOENT);
    CHECK(p == NULL);
    o.file = "true";
    o.cwd = "/nonexistent-evloop";
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, NULL, &k), -ENOENT);
    o.cwd = NULL;
    CHECK_EQ(evl_spawn(l, &p, NULL, on_child_exit, NULL, &k), -EINVAL);
    CHECK_EQ(evl_spawn(l, &p, &o, NULL, NULL, &k), -EINVAL);
    o.stdio[1] = EVL_STDIO_PIPE;
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, NULL, &k), -EINVAL); /* a pipe needs stdio_out */
    o.stdio[1] = 7;
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, pipes, &k), -EINVAL);
    o.stdio[1] = 0;
    o.flags = 1u << 10;
    CHECK_EQ(evl_spawn(l, &p, &o, on_child_exit, NULL, &k), -EINVAL);
    CHECK_EQ(evl_process_pid(NULL), -EINVAL);
    evl_timer_t *t;
    CHECK_EQ(evl_timer_init(l, &t, NULL), 0);
    CHECK_EQ(evl_process_kill((evl_process_t *)t, SIGTERM), -EINVAL); /* another kind of handle */
    CHECK_EQ(evl_close((evl_handle_t *)t, NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(evl_loop_alive(l), 0);
    CHECK_EQ(evl_loop_free(l), 0);
}

/* ---- contracts real programs rely on (issue 13): one test per finding ---- */

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct rewatch {
    int fd, fired, closed;
    evl_poll_t *old_watcher;
};
static void on_rewatch_closed(evl_handle_t *h, void *data) {
    (void)h;
    ((struct rewatch *)data)->closed = 1;
}
static void on_rewatched(evl_poll_t *p, int status, unsigned events, void *data) {
    struct rewatch *rw = data;
    char buf[64];
    CHECK_EQ(status, 0);
    CHECK(events & EVL_READABLE);
    CHECK(read(rw->fd, buf, sizeof buf) > 0);
    rw->fired++;
    evl_close((evl_handle_t *)p, on_rewatch_closed);
}
static void on_ignore_poll(evl_poll_t *p, int status, unsigned events, void *data) {
    (void)p, (void)status, (void)events, (void)data;
}
/* Close a watcher and watch its fd again in the same iteration (from a callback). */
static void swap_watchers(evl_loop_t *l, void *data) {
    struct rewatch *rw = data;
    evl_poll_t *fresh;
    CHECK_EQ(evl_close((evl_handle_t *)rw->old_watcher, NULL), 0);
    CHECK_EQ(evl_poll_init(l, &fresh, rw->fd, rw), 0);
    CHECK_EQ(evl_poll_start(fresh, EVL_READABLE, on_rewatched), 0);
}

static void test_poll_rewatch_while_closing(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct rewatch rw = {.fd = sv[0]};
    CHECK_EQ(evl_poll_init(l, &rw.old_watcher, sv[0], NULL), 0);
    CHECK_EQ(evl_poll_start(rw.old_watcher, EVL_READABLE, on_ignore_poll), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_NOWAIT), 1);
    CHECK_EQ(evl_call_soon(l, swap_watchers, &rw), 0);
    evl_run(l, EVL_RUN_NOWAIT);
    CHECK_EQ(write(sv[1], "ping", 4), 4);
    run_until(l, &rw.closed);
    CHECK_EQ(rw.fired, 1);
    finish_loop(l);
    close(sv[0]);
    close(sv[1]);
}

struct chunks {
    int fd, calls;
    long bytes;
};
static void on_one_chunk(evl_poll_t *p, int status, unsigned events, void *data) {
    struct chunks *c = data;
    char buf[100];
    (void)p;
    CHECK_EQ(status, 0);
    CHECK(events & EVL_READABLE);
    c->calls++;
    ssize_t n = read(c->fd, buf, sizeof buf); /* one bounded read per callback */
    if (n > 0) c->bytes += n;
}
static void test_poll_level_triggered_and_empty_events(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct chunks c = {.fd = sv[0]};
    evl_poll_t *p;
    CHECK_EQ(evl_poll_init(l, &p, sv[0], &c), 0);
    CHECK_EQ(evl_poll_start(p, EVL_READABLE, on_one_chunk), 0);
    char chunk[100];
    memset(chunk, 7, sizeof chunk);
    for (int i = 0; i < 4; i++) CHECK_EQ(write(sv[1], chunk, sizeof chunk), 100);
    for (int i = 0; i < 200 && c.bytes < 400; i++) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(c.bytes, 400);
    CHECK(c.calls >= 4);
    /* One active watcher per fd, as in libuv. */
    evl_poll_t *second;
    CHECK_EQ(evl_poll_init(l, &second, sv[0], NULL), 0);
    CHECK_EQ(evl_poll_start(second, EVL_READABLE, on_one_chunk), -EEXIST);
    CHECK_EQ(evl_close((evl_handle_t *)second, NULL), 0);
    /* No events: stopped, as uv_poll_start(handle, 0, cb) does. */
    CHECK_EQ(evl_poll_start(p, 0, on_one_chunk), 0);
    CHECK_EQ(evl_is_active((evl_handle_t *)p), 0);
    CHECK_EQ(write(sv[1], chunk, 1), 1);
    int calls = c.calls;
    CHECK_EQ(evl_run(l, EVL_RUN_NOWAIT), 0);
    CHECK_EQ(c.calls, calls);
    CHECK_EQ(evl_close((evl_handle_t *)p, NULL), 0);
    finish_loop(l);
    close(sv[0]);
    close(sv[1]);
}

static int connect_blocking(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1: the peer closed (EOF or reset) within 5 s; 0: it is still open. */
static int peer_closed(int fd) {
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
        if (n < 0) return 0;
    }
}

static evl_stream_t *bind_loopback(evl_loop_t *l, struct sockaddr_in *bound) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_stream_t *s = NULL;
    CHECK_EQ(evl_tcp_bind(l, &s, (struct sockaddr *)&addr, sizeof addr, 0, NULL), 0);
    struct sockaddr_storage name;
    socklen_t len = sizeof name;
    CHECK_EQ(evl_tcp_getsockname(s, &name, &len), 0);
    memcpy(bound, &name, sizeof *bound);
    return s;
}

static int accept_calls;
static void on_accept_then_close_listener(evl_stream_t *listener, evl_stream_t *conn, int status, void *d) {
    (void)d;
    accept_calls++;
    CHECK_EQ(status, 0);
    evl_close((evl_handle_t *)conn, NULL);
    if (!evl_is_closing((evl_handle_t *)listener)) evl_close((evl_handle_t *)listener, NULL);
}
static void test_listener_closed_in_its_callback(void) {
    evl_loop_t *l = new_loop();
    struct sockaddr_in bound;
    evl_stream_t *server = bind_loopback(l, &bound);
    CHECK_EQ(evl_listen(server, 64, on_accept_then_close_listener), 0);
    int clients[7];
    for (int i = 0; i < 7; i++) clients[i] = connect_blocking(&bound);
    accept_calls = 0;
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(accept_calls, 1);
    /* evl_run has returned: every connection the kernel accepted is closed already. */
    for (int i = 0; i < 7; i++) {
        CHECK(clients[i] >= 0 && peer_closed(clients[i]));
        close(clients[i]);
    }
    CHECK_EQ(evl_loop_free(l), 0);
}

/* Echo server whose connections close at EOF or an error. */
static int echo_open, echo_accepted;
static void on_echo_read(evl_stream_t *s, ssize_t n, const char *buf, void *d) {
    (void)d;
    if (n > 0) {
        evl_buf_t b = {buf, (size_t)n};
        evl_write(s, &b, 1, NULL, NULL);
    } else {
        echo_open--;
        evl_close((evl_handle_t *)s, NULL);
    }
}
static void on_echo_conn(evl_stream_t *listener, evl_stream_t *conn, int status, void *d) {
    (void)listener, (void)d;
    if (status != 0) return;
    echo_open++;
    echo_accepted++;
    evl_read_start(conn, on_echo_read);
}
/* Found by the Node addon: on io_uring a loop driven from a foreign loop answered a lone
   connection late (p99 16 ms) or, with the peer in the foreign loop's own thread, not at all:
   its ring kept the receive for the loop's own enter and the fd was signalled late or never.
   No timer is armed here, so each of the exchanges finishes only if evl_backend_fd() reports
   it; a poll that runs out its 5 s with nothing due is a lost wake-up. */
static void test_foreign_loop_hears_every_message(void) {
    evl_loop_t *l = new_loop();
    int fd = evl_backend_fd(l);
    CHECK(fd >= 0);
    struct sockaddr_in bound;
    evl_stream_t *server = bind_loopback(l, &bound);
    CHECK_EQ(evl_listen(server, 16, on_echo_conn), 0);
    echo_open = echo_accepted = 0;
    int c = connect_blocking(&bound);
    CHECK(c >= 0);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int lost = 0, i;
    for (i = 0; i < 2000 && !lost; i++) {
        char msg[64], got[64];
        memset(msg, i % 251, sizeof msg);
        CHECK_EQ(send(c, msg, sizeof msg, MSG_NOSIGNAL), sizeof msg);
        size_t have = 0;
        while (have < sizeof got && !lost) {
            ssize_t r = recv(c, got + have, sizeof got - have, MSG_DONTWAIT);
            if (r > 0) {
                have += (size_t)r;
                continue;
            }
            int timeout = evl_backend_timeout(l);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, timeout < 0 ? 5000 : timeout) == 0 && timeout < 0) lost = 1;
            CHECK(evl_run(l, EVL_RUN_READY) >= 0);
        }
        CHECK(have == sizeof got && memcmp(got, msg, sizeof msg) == 0);
    }
    CHECK_EQ(lost, 0);
    CHECK_EQ(i, 2000);
    CHECK_EQ(echo_accepted, 1);
    close(c);
    evl_close((evl_handle_t *)server, NULL);
    for (int spins = 0; evl_loop_alive(l) && spins < 1000; spins++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int timeout = evl_backend_timeout(l);
        poll(&p, 1, timeout < 0 ? 100 : timeout);
        evl_run(l, EVL_RUN_READY);
    }
    CHECK_EQ(echo_open, 0);
    finish_loop(l);
}

/* Asked for after the loop has run, the fd is refused on io_uring (its ring was set up for a
   loop that waits on its own), and the loop goes on as before. */
static void test_backend_fd_after_the_first_run(void) {
    evl_loop_t *l = new_loop();
    volatile int fired = 0;
    CHECK_EQ(evl_run(l, EVL_RUN_READY), 0);
    CHECK_EQ(evl_backend_fd(l), backend == EVL_BACKEND_URING ? -EBUSY : evl_backend_fd(l));
    evl_timer_t *t;
    CHECK_EQ(evl_timer_init(l, &t, (void *)&fired), 0);
    CHECK_EQ(evl_timer_start(t, on_watchdog, 1, 0), 0);
    run_until(l, &fired);
    evl_close((evl_handle_t *)t, NULL);
    finish_loop(l);
}

/* A write made outside evl_run() after a busy pass waits (gathered on epoll, queued for the
   next enter on io_uring) until the loop runs again, or until evl_loop_flush() hands it over. */
#define FLUSH_CONNS 16
static evl_stream_t *flush_conns[FLUSH_CONNS];
static int flush_accepted, flush_reads;
static void on_flush_read(evl_stream_t *s, ssize_t n, const char *buf, void *d) {
    (void)s, (void)buf, (void)d;
    if (n > 0) flush_reads++;
}
static void on_flush_conn(evl_stream_t *listener, evl_stream_t *conn, int status, void *d) {
    (void)listener, (void)d;
    if (status != 0 || flush_accepted == FLUSH_CONNS) return;
    flush_conns[flush_accepted++] = conn;
    evl_read_start(conn, on_flush_read);
}
static void test_flush_sends_what_waits_for_the_next_run(void) {
    evl_loop_t *l = new_loop();
    CHECK_EQ(evl_loop_flush(NULL), -EINVAL);
    CHECK_EQ(evl_loop_flush(l), 0);
    struct sockaddr_in bound;
    evl_stream_t *server = bind_loopback(l, &bound);
    flush_accepted = flush_reads = 0;
    CHECK_EQ(evl_listen(server, FLUSH_CONNS, on_flush_conn), 0);
    int clients[FLUSH_CONNS];
    for (int i = 0; i < FLUSH_CONNS; i++) clients[i] = connect_blocking(&bound);
    for (int spins = 0; flush_accepted < FLUSH_CONNS && spins < 10000; spins++) evl_run(l, EVL_RUN_NOWAIT);
    CHECK_EQ(flush_accepted, FLUSH_CONNS);
    evl_run(l, EVL_RUN_NOWAIT); /* the receives are armed */
    /* Every client's request is in before the next wait, which so finds them all at once. */
    for (int i = 0; i < FLUSH_CONNS; i++) CHECK_EQ(send(clients[i], "?", 1, MSG_NOSIGNAL), 1);
    for (int spins = 0; flush_reads < FLUSH_CONNS && spins < 10000; spins++) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(flush_reads, FLUSH_CONNS);
    evl_buf_t b = {"late reply", 10};
    CHECK_EQ(evl_write(flush_conns[0], &b, 1, NULL, NULL), 0);
    char got[16];
    CHECK_EQ(recv(clients[0], got, sizeof got, MSG_DONTWAIT), -1);
    CHECK_EQ(evl_loop_flush(l), 0);
    struct pollfd p = {.fd = clients[0], .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 5000), 1);
    CHECK_EQ(recv(clients[0], got, sizeof got, MSG_DONTWAIT), 10);
    CHECK(memcmp(got, "late reply", 10) == 0);
    for (int i = 0; i < FLUSH_CONNS; i++) {
        close(clients[i]);
        evl_close((evl_handle_t *)flush_conns[i], NULL);
    }
    evl_close((evl_handle_t *)server, NULL);
    finish_loop(l);
}

#define RESETS 600
static void *reset_clients(void *arg) {
    const struct sockaddr_in *addr = arg;
    for (int i = 0; i < RESETS; i++) {
        int fd = connect_blocking(addr);
        if (fd < 0) continue;
        char msg[64];
        memset(msg, i, sizeof msg);
        if (write(fd, msg, sizeof msg) != (ssize_t)sizeof msg) perror("write");
        if (i % 3) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
    }
    return NULL;
}
static void test_resets_end_every_connection(void) {
    evl_loop_t *l = new_loop();
    struct sockaddr_in bound;
    evl_stream_t *server = bind_loopback(l, &bound);
    CHECK_EQ(evl_listen(server, 1024, on_echo_conn), 0);
    echo_open = echo_accepted = 0;
    pthread_t t;
    pthread_create(&t, NULL, reset_clients, &bound);
    int expired = 0;
    evl_timer_t *dog;
    evl_timer_init(l, &dog, &expired);
    evl_timer_start(dog, on_watchdog, 30000, 0);
    evl_unref((evl_handle_t *)dog);
    while (!expired && !(echo_accepted == RESETS && echo_open == 0)) evl_run(l, EVL_RUN_ONCE);
    pthread_join(t, NULL);
    CHECK(!expired);
    CHECK_EQ(echo_accepted, RESETS);
    CHECK_EQ(echo_open, 0);
    evl_close((evl_handle_t *)dog, NULL);
    evl_close((evl_handle_t *)server, NULL);
    finish_loop(l);
}

/* A large buffer written with a callback is sent from where it is (not copied): the callback
   frees it, and AddressSanitizer and valgrind would see any later read of it. */
static void on_lent_written(evl_stream_t *s, int status, void *d) {
    (void)s;
    int *out = d;
    out[1] = status;
    free(*(void **)(out + 2));
    out[0] = 1;
}
static void test_large_writes_are_lent(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evl_stream_t *s;
    CHECK_EQ(evl_stream_adopt(l, &s, sv[0], NULL), 0);
    enum { LEN = 4 << 20 };
    unsigned char *data = malloc(LEN), *got = malloc(LEN);
    for (size_t i = 0; i < LEN; i++) data[i] = (unsigned char)(i * 7 + i / 4093);
    unsigned char *expected = malloc(LEN);
    memcpy(expected, data, LEN);
    int state[4] = {0, 1, 0, 0};
    memcpy(state + 2, &data, sizeof data);
    evl_buf_t b = {(char *)data, LEN};
    CHECK(evl_write(s, &b, 1, on_lent_written, state) >= 0);
    evl_buf_t tail = {"tail", 4};
    CHECK(evl_write(s, &tail, 1, NULL, NULL) >= 0);
    size_t have = 0;
    int spins = 0;
    while ((have < LEN + 4 || !state[0]) && spins++ < 1000000) {
        unsigned char chunk[65536];
        ssize_t n = recv(sv[1], chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            size_t take = (size_t)n;
            if (have < LEN) {
                size_t into = take < LEN - have ? take : LEN - have;
                memcpy(got + have, chunk, into);
            }
            have += take;
        }
        evl_run(l, EVL_RUN_NOWAIT);
    }
    CHECK_EQ(state[0], 1);
    CHECK_EQ(state[1], 0);
    CHECK_EQ(have, LEN + 4);
    CHECK(memcmp(got, expected, LEN) == 0);
    free(got);
    free(expected);
    evl_close((evl_handle_t *)s, NULL);
    close(sv[1]);
    finish_loop(l);
}

/* A child the program forked itself, watched like a spawned one. */
static void on_adopted_exit(evl_process_t *p, int64_t status, int sig, void *d) {
    (void)sig;
    int64_t *out = d;
    out[0] = 1;
    out[1] = status;
    evl_close((evl_handle_t *)p, NULL);
}
static void test_spawn_adopt_forked_child(void) {
    evl_loop_t *l = new_loop();
    pid_t pid = fork();
    if (pid == 0) _exit(5);
    CHECK(pid > 0);
    int64_t got[2] = {0, 0};
    evl_process_t *p;
    CHECK_EQ(evl_process_adopt(l, &p, pid, on_adopted_exit, got), 0);
    CHECK_EQ(evl_process_pid(p), pid);
    int done = 0;
    while (!got[0] && done++ < 100000) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(got[0], 1);
    CHECK_EQ(got[1], 5);
    CHECK_EQ(evl_process_adopt(l, &p, 1, on_adopted_exit, got), -ECHILD);
    CHECK_EQ(evl_process_adopt(l, &p, pid, NULL, got), -EINVAL);
    finish_loop(l);
}

/* An echo whose read callback writes the read buffer back with a write callback: the buffer is
   the library's (recycled after the callback), so evl_write must not take it as the caller's to
   lend (it found that it did). Every byte comes back unchanged, in order. */
static int echoed_with_cb;
static void on_echo_written(evl_stream_t *s, int status, void *d) {
    (void)s, (void)d;
    if (status == 0) echoed_with_cb++;
}
static void on_echo_read_with_cb(evl_stream_t *s, ssize_t n, const char *buf, void *d) {
    (void)d;
    if (n > 0) {
        evl_buf_t b = {buf, (size_t)n};
        evl_write(s, &b, 1, on_echo_written, NULL);
    } else {
        evl_close((evl_handle_t *)s, NULL);
    }
}
static void test_echo_of_read_buffers_with_write_callbacks(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    evl_stream_t *s;
    CHECK_EQ(evl_stream_adopt(l, &s, sv[0], NULL), 0);
    CHECK_EQ(evl_read_start(s, on_echo_read_with_cb), 0);
    /* More than the 512 × 16 KiB receive buffers hold, so recycled ones are filled again. */
    enum { LEN = 32 << 20 };
    unsigned char *data = malloc(LEN), *got = malloc(LEN);
    for (size_t i = 0; i < LEN; i++) data[i] = (unsigned char)(i * 13 + i / 65521);
    size_t sent = 0, have = 0;
    int spins = 0;
    echoed_with_cb = 0;
    /* Everything is sent before anything is read back: the echo's sends wait for room while
       new reads keep arriving in recycled receive buffers, which a wrongly lent buffer would
       show as changed bytes. */
    while (sent < LEN && spins++ < 2000000) {
        ssize_t w = send(sv[1], data + sent, LEN - sent < 65536 ? LEN - sent : 65536, MSG_DONTWAIT);
        if (w > 0) sent += (size_t)w;
        evl_run(l, EVL_RUN_NOWAIT);
    }
    while (have < LEN && spins++ < 4000000) {
        ssize_t r = recv(sv[1], got + have, LEN - have, MSG_DONTWAIT);
        if (r > 0) have += (size_t)r;
        evl_run(l, EVL_RUN_NOWAIT);
    }
    CHECK_EQ(have, LEN);
    CHECK(memcmp(got, data, LEN) == 0);
    CHECK(echoed_with_cb > 0);
    free(data);
    free(got);
    close(sv[1]);
    int closed = 0;
    while (evl_loop_alive(l) && closed++ < 100000) evl_run(l, EVL_RUN_NOWAIT);
    finish_loop(l);
}

/* ---- pipes ---- */

struct pipe_reading {
    char bytes[64];
    size_t len;
    int ended; /* 1: EVL_EOF, or the error */
};
static void on_pipe_read(evl_stream_t *s, ssize_t n, const char *buf, void *d) {
    (void)d;
    struct pipe_reading *r = evl_handle_get_data((evl_handle_t *)s);
    if (n > 0) {
        size_t room = sizeof r->bytes - r->len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->bytes + r->len, buf, take);
        r->len += take;
    } else if (n < 0) {
        r->ended = n == EVL_EOF ? 1 : (int)n;
    }
}
static void on_pipe_status(evl_stream_t *s, int status, void *d) {
    (void)s;
    int *out = d;
    out[0] = 1;
    out[1] = status;
}
static void test_pipes(void) {
    evl_loop_t *l = new_loop();
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    struct pipe_reading got = {0}, heard = {0};
    evl_stream_t *reader, *writer;
    CHECK_EQ(evl_pipe_open(l, &reader, fds[0], &got), 0);
    CHECK_EQ(evl_pipe_open(l, &writer, fds[1], &heard), 0);
    CHECK((fcntl(fds[0], F_GETFL) & O_NONBLOCK) != 0);
    CHECK_EQ(evl_read_start(reader, on_pipe_read), 0);
    evl_buf_t parts[2] = {{"through ", 8}, {"a pipe", 6}};
    CHECK_EQ(evl_write(writer, parts, 2, NULL, NULL), 0);
    int shut[2] = {0, 0};
    CHECK_EQ(evl_shutdown(writer, on_pipe_status, shut), 0);
    run_until(l, &shut[0]);
    CHECK_EQ(shut[1], -ENOTSOCK);
    evl_close((evl_handle_t *)writer, NULL);
    run_until(l, &got.ended);
    CHECK_EQ(got.ended, 1);
    CHECK_EQ(got.len, 14);
    CHECK(memcmp(got.bytes, "through a pipe", 14) == 0);
    evl_close((evl_handle_t *)reader, NULL);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);

    /* The write end hears its reader leave; a write after that fails with -EPIPE, and SIGPIPE
       (default in this program until the first writable pipe) does not kill the process. */
    CHECK_EQ(pipe(fds), 0);
    memset(&heard, 0, sizeof heard);
    CHECK_EQ(evl_pipe_open(l, &writer, fds[1], &heard), 0);
    struct sigaction act;
    CHECK_EQ(sigaction(SIGPIPE, NULL, &act), 0);
    CHECK(act.sa_handler == SIG_IGN);
    CHECK_EQ(evl_read_start(writer, on_pipe_read), 0);
    evl_run(l, EVL_RUN_NOWAIT);
    CHECK_EQ(heard.ended, 0);
    close(fds[0]);
    run_until(l, &heard.ended);
    CHECK_EQ(heard.ended, 1);
    CHECK_EQ(heard.len, 0);
    int wrote[2] = {0, 0};
    evl_buf_t b = {"lost", 4};
    CHECK_EQ(evl_write(writer, &b, 1, on_pipe_status, wrote), 0);
    run_until(l, &wrote[0]);
    CHECK_EQ(wrote[1], -EPIPE);
    evl_close((evl_handle_t *)writer, NULL);

    /* What is not a pipe. */
    int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    CHECK_EQ(evl_pipe_open(l, &reader, file, NULL), -EINVAL);
    close(file);
    CHECK_EQ(evl_pipe_open(l, &reader, -1, NULL), -EBADF);
    CHECK_EQ(evl_pipe_open(l, NULL, 0, NULL), -EINVAL);
    finish_loop(l);
}

struct file_result {
    int done, status;
    size_t len;
};
static void on_whole_file(evl_loop_t *l, int status, const uint8_t *data, size_t len, void *d) {
    (void)l, (void)data;
    struct file_result *r = d;
    r->done = 1;
    r->status = status;
    r->len = len;
}
static void test_read_file_bounds_and_bad_paths(void) {
    evl_loop_t *l = new_loop();
    static char long_path[4200];
    for (size_t i = 0; i + 2 < sizeof long_path; i += 2) memcpy(long_path + i, "a/", 2);
    long_path[sizeof long_path - 1] = 0;
    const char *paths[] = {"/dev/zero", "", long_path, "/proc/self/status"};
    int want[] = {-EFBIG, -ENOENT, -ENAMETOOLONG, 0};
    CHECK_EQ(evl_loop_set_read_file_limit(NULL, 1), -EINVAL);
    CHECK_EQ(evl_loop_set_read_file_limit(l, 1 << 20), 0);
    struct file_result r[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++) CHECK_EQ(evl_fs_read_file(l, paths[i], on_whole_file, &r[i]), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    for (int i = 0; i < 4; i++) {
        CHECK(r[i].done);
        CHECK_EQ(r[i].status, want[i]);
    }
    CHECK(r[3].len > 0);
    CHECK_EQ(evl_loop_free(l), 0);
}

static int saturating_fires;
static void on_saturating(evl_timer_t *t, void *d) {
    (void)t, (void)d;
    saturating_fires++;
}
static void test_timer_extremes_saturate(void) {
    evl_loop_t *l = new_loop();
    evl_timer_t *t, *never, *window;
    saturating_fires = 0;
    CHECK_EQ(evl_timer_init(l, &t, NULL), 0);
    CHECK_EQ(evl_timer_init(l, &never, NULL), 0);
    CHECK_EQ(evl_timer_start(t, on_saturating, 5, UINT64_MAX), 0);
    CHECK_EQ(evl_timer_start(never, on_saturating, UINT64_MAX, UINT64_MAX), 0);
    int over = 0;
    CHECK_EQ(evl_timer_init(l, &window, &over), 0);
    CHECK_EQ(evl_timer_start(window, on_watchdog, 150, 0), 0);
    while (!over) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(saturating_fires, 1);
    CHECK(evl_timer_get_due_in(t) > (1ull << 40));
    CHECK_EQ(evl_is_active((evl_handle_t *)t), 1);
    evl_close((evl_handle_t *)t, NULL);
    evl_close((evl_handle_t *)never, NULL);
    evl_close((evl_handle_t *)window, NULL);
    finish_loop(l);
}

/* Only io_uring_enter refused (io_uring_setup allowed), as some container profiles do. */
static int refuse_io_uring_enter(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4), /* arch */
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc000003e, 1, 0),
#else
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc00000b7, 1, 0),
#endif
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0), /* nr */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_enter, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
static void test_auto_backend_when_the_ring_cannot_enter(void) {
    if (backend != EVL_BACKEND_URING) return; /* only meaningful where io_uring runs */
    pid_t pid = fork();
    if (pid == 0) {
        if (refuse_io_uring_enter() != 0) _exit(10);
        evl_loop_t *l = NULL;
        if (evl_loop_new(&l, EVL_BACKEND_URING) != -EPERM) _exit(11);
        if (evl_loop_new(&l, EVL_BACKEND_AUTO) != 0) _exit(12);
        if (strcmp(evl_backend_name(l), "epoll") != 0) _exit(13);
        evl_timer_t *t;
        int fired = 0;
        evl_timer_init(l, &t, &fired);
        evl_timer_start(t, on_watchdog, 1, 0);
        if (evl_run(l, EVL_RUN_DEFAULT) != 0 || !fired) _exit(14);
        evl_close((evl_handle_t *)t, NULL);
        evl_run(l, EVL_RUN_DEFAULT);
        _exit(evl_loop_free(l) == 0 ? 0 : 15);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

static void test_lengths_the_kernel_would_refuse(void) {
    evl_loop_t *l = new_loop();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evl_stream_t *s;
    CHECK_EQ(evl_stream_adopt(l, &s, sv[0], NULL), 0);
    char small[16] = "0123456789abcdef";
    evl_buf_t huge = {small, SIZE_MAX};
    evl_buf_t halves[2] = {{small, (size_t)1 << 63}, {small, (size_t)1 << 63}};
    evl_buf_t quarters[2] = {{small, (size_t)1 << 62}, {small, ((size_t)1 << 62) + ((size_t)1 << 62)}};
    CHECK_EQ(evl_write(s, &huge, 1, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_write(s, halves, 2, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_write(s, quarters, 2, NULL, NULL), -EINVAL);
    CHECK_EQ(evl_try_write(s, &huge, 1), -EINVAL);
    CHECK_EQ(evl_unix_bind(l, &s, small, SIZE_MAX, NULL), -EINVAL);
    /* Nothing reached the socket. */
    char buf[32];
    CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
    CHECK_EQ(errno, EAGAIN);
    evl_buf_t ok = {small, 16};
    CHECK_EQ(evl_write(s, &ok, 1, NULL, NULL), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_NOWAIT), 0);
    CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 16);
    CHECK_EQ(evl_fs_write(l, 1, small, SIZE_MAX, -1, NULL, NULL), -EINVAL);
    /* A NULL buffer of length 0 is a valid empty write (libuv's fs_file_write_null_buffer). */
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct fs_result empty = {.result = -1};
    CHECK_EQ(evl_fs_write(l, devnull, NULL, 0, -1, on_fs, &empty), 0);
    while (!empty.calls) evl_run(l, EVL_RUN_ONCE);
    CHECK_EQ(empty.result, 0);
    close(devnull);
    CHECK_EQ(evl_close((evl_handle_t *)s, NULL), 0);
    finish_loop(l);
    close(sv[1]);
}

static int soon_ran;
static void on_soon_once(evl_loop_t *l, void *d) {
    (void)l, (void)d;
    soon_ran++;
}
static void on_nothing(evl_async_t *a, void *d) {
    (void)a, (void)d;
}
static char order_log[8];
static int order_len;
static void on_write_logged(evl_stream_t *s, int status, void *req) {
    (void)s, (void)req;
    CHECK(status == 0 || status == -ECANCELED);
    order_log[order_len++] = 'w';
}
static void on_close_logged(evl_handle_t *h, void *d) {
    (void)h, (void)d;
    order_log[order_len++] = 'c';
}
static void test_header_promises(void) {
    evl_loop_t *l = new_loop();
    /* evl_loop_free drops nothing: pending callbacks keep it busy until run. */
    soon_ran = 0;
    CHECK_EQ(evl_call_soon(l, on_soon_once, NULL), 0);
    CHECK_EQ(evl_loop_free(l), -EBUSY);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(soon_ran, 1);
    struct file_result r = {0};
    CHECK_EQ(evl_fs_read_file(l, "/proc/self/status", on_whole_file, &r), 0);
    CHECK_EQ(evl_loop_free(l), -EBUSY);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK(r.done);
    /* evl_close: a write still queued gets its callback (-ECANCELED), before the close
     * callback, which runs last. */
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evl_stream_t *s;
    CHECK_EQ(evl_stream_adopt(l, &s, sv[0], NULL), 0);
    static char big[1 << 20];
    evl_buf_t b = {big, sizeof big};
    order_len = 0;
    CHECK(evl_write(s, &b, 1, on_write_logged, NULL) >= 0);
    CHECK_EQ(evl_close((evl_handle_t *)s, on_close_logged), 0);
    CHECK_EQ(evl_run(l, EVL_RUN_DEFAULT), 0);
    CHECK_EQ(order_len, 2);
    CHECK(order_log[0] == 'w' && order_log[1] == 'c');
    close(sv[1]);
    /* A closing wake-up handle refuses wakes, as other calls on closing handles do. */
    evl_async_t *a;
    CHECK_EQ(evl_async_init(l, &a, on_nothing, NULL), 0);
    CHECK_EQ(evl_async_send(a), 0);
    CHECK_EQ(evl_close((evl_handle_t *)a, NULL), 0);
    CHECK_EQ(evl_async_send(a), -EBADF);
    finish_loop(l);
}

/* ---- runner ---- */

#include <dirent.h>

/* Descriptors open in this process: every test must leave the count as it found it. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

struct test {
    const char *name;
    void (*fn)(void);
};

static const struct test tests[] = {
    {"version_and_errors", test_version_and_errors},
    {"loop_basics_and_misuse", test_loop_basics_and_misuse},
    {"timer_order", test_timer_order},
    {"timer_repeat_again_and_close_in_callback", test_timer_repeat_again_and_close_in_callback},
    {"ref_unref_and_data", test_ref_unref_and_data},
    {"timers_in_caller_memory", test_timers_in_caller_memory},
    {"timers_in_caller_memory_mixed_with_the_librarys", test_timers_in_caller_memory_mixed_with_the_librarys},
    {"tcp_echo", test_tcp_echo},
    {"tcp_connect_refused_and_bad_addresses", test_tcp_connect_refused_and_bad_addresses},
    {"backpressure_and_adopt", test_backpressure_and_adopt},
    {"pipes", test_pipes},
    {"spawn_adopt_forked_child", test_spawn_adopt_forked_child},
    {"large_writes_are_lent", test_large_writes_are_lent},
    {"echo_of_read_buffers_with_write_callbacks", test_echo_of_read_buffers_with_write_callbacks},
    {"unix_echo", test_unix_echo},
    {"udp_echo", test_udp_echo},
    {"udp_adopt", test_udp_adopt},
    {"poll_pipe", test_poll_pipe},
    {"async_from_threads", test_async_from_threads},
    {"signal", test_signal},
    {"thread_pool_and_resolve_on_pool", test_thread_pool_and_resolve},
    {"files", test_files},
    {"scandir_on_pool", test_scandir_on_pool},
    {"spawn", test_spawn},
    {"poll_rewatch_while_closing", test_poll_rewatch_while_closing},
    {"poll_level_triggered_and_empty_events", test_poll_level_triggered_and_empty_events},
    {"listener_closed_in_its_callback", test_listener_closed_in_its_callback},
    {"foreign_loop_hears_every_message", test_foreign_loop_hears_every_message},
    {"backend_fd_after_the_first_run", test_backend_fd_after_the_first_run},
    {"flush_sends_what_waits_for_the_next_run", test_flush_sends_what_waits_for_the_next_run},
    {"resets_end_every_connection_client_thread", test_resets_end_every_connection},
    {"read_file_bounds_and_bad_paths_files", test_read_file_bounds_and_bad_paths},
    {"timer_extremes_saturate", test_timer_extremes_saturate},
    {"auto_backend_when_the_ring_cannot_enter_spawn", test_auto_backend_when_the_ring_cannot_enter},
    {"lengths_the_kernel_would_refuse", test_lengths_the_kernel_would_refuse},
    {"header_promises_files", test_header_promises},
};

/* Other arguments than backend names pick tests whose names contain them; "-part" leaves out
 * tests whose names contain "part". */
static int test_selected(int argc, char **argv, const char *name) {
    int filtered = 0, picked = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "epoll") == 0 || strcmp(argv[i], "uring") == 0) continue;
        if (argv[i][0] == '-') {
            if (strstr(name, argv[i] + 1)) return 0;
            continue;
        }
        filtered = 1;
        picked |= strstr(name, argv[i]) != NULL;
    }
    return !filtered || picked;
}

int main(int argc, char **argv) {
    const char *names[] = {"epoll", "uring"};
    int kinds[] = {EVL_BACKEND_EPOLL, EVL_BACKEND_URING};
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows even when piped (CI logs) */
    for (int k = 0; k < 2; k++) {
        int wanted = 1, named = 0;
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], "epoll") == 0 || strcmp(argv[i], "uring") == 0) {
                named = 1;
                wanted &= 0;
            }
        for (int i = 1; i < argc; i++) wanted |= named && strcmp(argv[i], names[k]) == 0;
        if (!wanted) continue;
        evl_loop_t *probe = NULL;
        int r = evl_loop_new(&probe, kinds[k]);
        if (r != 0) {
            printf("backend %s unavailable (%s): skipped\n", names[k], evl_err_name(r));
            continue;
        }
        evl_loop_free(probe);
        backend = kinds[k];
        backend_label = names[k];
        for (size_t t = 0; t < sizeof tests / sizeof tests[0]; t++) {
            if (!test_selected(argc, argv, tests[t].name)) continue;
            failures_in_test = 0;
            int fds_before = open_fds();
            tests[t].fn();
            int fds_after = open_fds();
            if (fds_after != fds_before) {
                fprintf(stderr, "  [%s] %s leaked %d descriptor(s)\n", names[k], tests[t].name, fds_after - fds_before);
                failures_in_test++;
            }
            printf("%s %s/%s\n", failures_in_test ? "FAIL" : "ok  ", names[k], tests[t].name);
            if (failures_in_test) failed++;
            else passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
