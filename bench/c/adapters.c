/* The same client work on evloop (through its adapters, include/evloop/adapters/) and on libuv
 * (hiredis' own adapters/libuv.h; for libcurl and c-ares the glue their documentation describes,
 * written here on uv_poll_t + uv_timer_t). Built twice by bench/build.sh: -DEVLOOP and without.
 *
 *   adapters redis PORT COUNT     COUNT INCRs over 4 connections, 64 in flight on each
 *   adapters curl PORT COUNT      COUNT GETs of /small.txt from nginx, 32 at a time, kept alive
 *   adapters ares PORT COUNT      COUNT look-ups of hostN.evloop.test from dnsmasq, 64 in flight
 *
 * Prints "ops=N seconds=S cpu_us_per_op=C": wall time, and this process's user+system CPU per
 * operation (the servers run in their own processes). Every reply is checked. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <ares.h>
#include <curl/curl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#ifdef EVLOOP
#include <evloop/adapters/ares.h>
#include <evloop/adapters/curl.h>
#include <evloop/adapters/hiredis.h>
static evl_loop_t *loop;
#else
#include <hiredis/adapters/libuv.h>
#include <uv.h>
static uv_loop_t *loop;
#endif

static void die(const char *what) {
    fprintf(stderr, "adapters bench: %s\n", what);
    exit(1);
}

static long target, done_ops, issued;

/* ---- the loop and the glue, one implementation per library ---- */

static void loop_setup(void) {
#ifdef EVLOOP
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) < 0) die("evl_loop_new");
#else
    loop = uv_default_loop();
#endif
}

static void loop_run(void) {
#ifdef EVLOOP
    evl_run(loop, EVL_RUN_DEFAULT);
#else
    uv_run(loop, UV_RUN_DEFAULT);
#endif
}

static void redis_attach(redisAsyncContext *ac) {
#ifdef EVLOOP
    if (evl_redis_attach(loop, ac) < 0) die("evl_redis_attach");
#else
    if (redisLibuvAttach(ac, loop) != REDIS_OK) die("redisLibuvAttach");
#endif
}

static CURLM *multi;
static void curl_finished(CURL *easy, CURLcode result);

#ifdef EVLOOP
static evl_curl_t *curl_glue;
static void curl_done_cb(CURL *easy, CURLcode result, void *data) {
    (void)data;
    curl_finished(easy, result);
}
static void curl_attach(void) {
    if (evl_curl_new(loop, multi, curl_done_cb, NULL, &curl_glue) < 0) die("evl_curl_new");
}
static void curl_detach(void) {
    evl_curl_free(curl_glue);
}
#else
typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
} uv_curl_socket_t;
static uv_timer_t curl_timer;
static void uv_curl_report(void) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE) curl_finished(msg->easy_handle, msg->data.result);
}
static void uv_curl_on_ready(uv_poll_t *poll, int status, int events) {
    uv_curl_socket_t *s = poll->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0, running;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(multi, s->fd, flags, &running);
    uv_curl_report();
}
static void uv_curl_on_timeout(uv_timer_t *t) {
    int running;
    (void)t;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    uv_curl_report();
}
static void uv_free_handle(uv_handle_t *h) {
    free(h->data);
}
static int uv_curl_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    uv_curl_socket_t *s = socketp;
    (void)easy;
    (void)userp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, uv_free_handle);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        s->fd = fd;
        uv_poll_init_socket(loop, &s->poll, fd);
        s->poll.data = s;
        curl_multi_assign(multi, fd, s);
    }
    int events = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    return uv_poll_start(&s->poll, events, uv_curl_on_ready) < 0 ? -1 : 0;
}
static int uv_curl_on_timer(CURLM *m, long ms, void *userp) {
    (void)m;
    (void)userp;
    if (ms < 0)
        uv_timer_stop(&curl_timer);
    else
        uv_timer_start(&curl_timer, uv_curl_on_timeout, (uint64_t)ms, 0);
    return 0;
}
static void curl_attach(void) {
    uv_timer_init(loop, &curl_timer);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, uv_curl_on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, uv_curl_on_timer);
}
static void curl_detach(void) {
    uv_close((uv_handle_t *)&curl_timer, NULL);
}
#endif

static ares_channel ares_make(struct ares_options *opts, int mask);
static void ares_release(void);

#ifdef EVLOOP
static evl_ares_t *resolver;
static ares_channel ares_make(struct ares_options *opts, int mask) {
    if (evl_ares_new(loop, opts, mask, &resolver) < 0) die("evl_ares_new");
    return evl_ares_channel(resolver);
}
static void ares_release(void) {
    evl_ares_free(resolver);
}
#else
typedef struct uv_ares_socket {
    uv_poll_t poll;
    ares_socket_t fd;
    struct uv_ares_socket *next;
} uv_ares_socket_t;
static ares_channel uv_channel;
static uv_timer_t ares_timer;
static uv_ares_socket_t *ares_sockets;
static void uv_ares_on_timeout(uv_timer_t *t);
static void uv_ares_schedule(void) {
    struct timeval tv;
    if (ares_timeout(uv_channel, NULL, &tv) != NULL)
        uv_timer_start(&ares_timer, uv_ares_on_timeout, (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000, 0);
    else
        uv_timer_stop(&ares_timer);
}
static void uv_ares_on_timeout(uv_timer_t *t) {
    (void)t;
    ares_process_fd(uv_channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    uv_ares_schedule();
}
static void uv_ares_on_ready(uv_poll_t *poll, int status, int events) {
    uv_ares_socket_t *s = poll->data;
    ares_socket_t fd = s->fd;
    ares_process_fd(uv_channel, (status < 0 || (events & UV_READABLE)) ? fd : ARES_SOCKET_BAD,
                    (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
    uv_ares_schedule();
}
static void uv_ares_on_state(void *data, ares_socket_t fd, int readable, int writable) {
    uv_ares_socket_t **p = &ares_sockets, *s;
    (void)data;
    while (*p != NULL && (*p)->fd != fd) p = &(*p)->next;
    s = *p;
    if (!readable && !writable) {
        if (s != NULL) {
            *p = s->next;
            uv_close((uv_handle_t *)&s->poll, uv_free_handle);
        }
        return;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        s->fd = fd;
        uv_poll_init_socket(loop, &s->poll, fd);
        s->poll.data = s;
        s->next = ares_sockets;
        ares_sockets = s;
    }
    uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), uv_ares_on_ready);
    uv_ares_schedule();
}
static ares_channel ares_make(struct ares_options *opts, int mask) {
    uv_timer_init(loop, &ares_timer);
    opts->sock_state_cb = uv_ares_on_state;
    if (ares_init_options(&uv_channel, opts, mask | ARES_OPT_SOCK_STATE_CB) != ARES_SUCCESS) die("ares_init_options");
    return uv_channel;
}
static void ares_release(void) {
    ares_destroy(uv_channel);
    uv_close((uv_handle_t *)&ares_timer, NULL);
}
#endif

/* ---- the work ---- */

#define REDIS_CONNS 4
#define REDIS_DEPTH 64

static redisAsyncContext *redis_conns[REDIS_CONNS];
static long counters[REDIS_CONNS];

static void on_incr(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    long *last = priv;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer != *last + 1) die("INCR reply");
    *last = reply->integer;
    done_ops++;
    if (issued < target) {
        issued++;
        redisAsyncCommand(ac, on_incr, priv, "INCR evloop:bench:%d", (int)(last - counters));
    } else if (done_ops == target) {
        for (int i = 0; i < REDIS_CONNS; i++) redisAsyncDisconnect(redis_conns[i]);
    }
}

static void bench_redis(int port) {
    for (int i = 0; i < REDIS_CONNS; i++) {
        redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
        if (ac == NULL || ac->err) die("redisAsyncConnect");
        redis_attach(ac);
        redis_conns[i] = ac;
        redisAsyncCommand(ac, NULL, NULL, "DEL evloop:bench:%d", i);
        for (int d = 0; d < REDIS_DEPTH && issued < target; d++) {
            issued++;
            redisAsyncCommand(ac, on_incr, &counters[i], "INCR evloop:bench:%d", i);
        }
    }
    loop_run();
}

static char small_url[128];
static size_t curl_sink(char *data, size_t size, size_t n, void *userp) {
    long *got = userp;
    if (*got == 0 && (size * n != 17 || memcmp(data, "hello from nginx\n", 17) != 0)) die("body");
    *got += (long)(size * n);
    return size * n;
}
static long curl_bodies[32];
static void curl_start(long *slot) {
    CURL *easy = curl_easy_init();
    *slot = 0;
    curl_easy_setopt(easy, CURLOPT_URL, small_url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, slot);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, slot);
    curl_multi_add_handle(multi, easy);
    issued++;
}
static void curl_finished(CURL *easy, CURLcode result) {
    long *slot, status;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK || status != 200 || *slot != 17) die("transfer");
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    done_ops++;
    if (issued < target) curl_start(slot);
}
static void bench_curl(int port) {
    snprintf(small_url, sizeof small_url, "http://127.0.0.1:%d/small.txt", port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    curl_attach();
    for (int i = 0; i < 32 && issued < target; i++) curl_start(&curl_bodies[i]);
    loop_run();
    curl_detach();
    curl_multi_cleanup(multi);
    loop_run();
}

static ares_channel channel;
static void ares_lookup(void);
static void on_host(void *arg, int status, int timeouts, struct hostent *host) {
    long n = (long)(intptr_t)arg;
    (void)timeouts;
    if (status != ARES_SUCCESS || host->h_addr_list[0] == NULL) die("look-up");
    const unsigned char *a = (const unsigned char *)host->h_addr_list[0];
    if (a[0] != 10 || a[2] != n / 250 || a[3] != n % 250 + 1) die("address");
    done_ops++;
    if (issued < target) ares_lookup();
}
static void ares_lookup(void) {
    char name[64];
    long n = issued++ % 1000;
    snprintf(name, sizeof name, "host%ld.evloop.test", n);
    ares_gethostbyname(channel, name, AF_INET, on_host, (void *)(intptr_t)n);
}
static void bench_ares(int port) {
    ares_library_init(ARES_LIB_INIT_ALL);
    struct ares_options opts;
    memset(&opts, 0, sizeof opts);
    opts.flags = ARES_FLAG_NOSEARCH;
    opts.lookups = (char *)"b";
    channel = ares_make(&opts, ARES_OPT_FLAGS | ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS);
    char server[64];
    snprintf(server, sizeof server, "127.0.0.1:%d", port);
    if (ares_set_servers_ports_csv(channel, server) != ARES_SUCCESS) die("servers");
    for (int i = 0; i < 64 && issued < target; i++) ares_lookup();
    loop_run();
    ares_release();
    loop_run();
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: adapters redis|curl|ares PORT COUNT");
    int port = atoi(argv[2]);
    target = atol(argv[3]);
    loop_setup();
    double t0 = now_s(), c0 = cpu_s();
    if (strcmp(argv[1], "redis") == 0)
        bench_redis(port);
    else if (strcmp(argv[1], "curl") == 0)
        bench_curl(port);
    else if (strcmp(argv[1], "ares") == 0)
        bench_ares(port);
    else
        die("unknown work");
    double t = now_s() - t0, c = cpu_s() - c0;
    if (done_ops != target) {
        fprintf(stderr, "%ld of %ld operations finished\n", done_ops, target);
        return 1;
    }
    printf("ops=%ld seconds=%.3f cpu_us_per_op=%.3f\n", done_ops, t, c / done_ops * 1e6);
    return 0;
}
