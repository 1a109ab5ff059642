/*
 * tls_loadgen: a TLS load generator for echo servers (OpenSSL, TLS 1.3 where offered).
 *
 *   tls_loadgen PORT [-c CONNS] [-s SIZE] [-d SECONDS]
 *       Ping-pong: every connection completes its handshake first; then each sends SIZE bytes,
 *       waits for SIZE bytes back and repeats, for SECONDS.
 *   tls_loadgen PORT -m handshake [-c CONNS] [-s SIZE] [-d SECONDS]
 *       A new connection per request: CONNS at a time connect, complete a full handshake (no
 *       session resumption), send SIZE bytes, read them back, send close_notify and close.
 *   tls_loadgen PORT -m idle [-c CONNS] [-d SECONDS]
 *       Opens CONNS connections and completes their handshakes, prints "READY CONNS", holds them
 *       for SECONDS or until stdin closes.
 *
 * The first two print one line: RESULT msgs=N secs=S rate=R p50_us=.. p99_us=.. p999_us=..
 * (msgs counts replies; in handshake mode, one per connection). Single-threaded, epoll,
 * non-blocking; bounded in time; talks only to 127.0.0.1. Certificates are not verified: this
 * measures servers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"

#define MAX_LATENCY_US 1000000

enum mode { PINGPONG, HANDSHAKE, IDLE };
enum state { SHAKING, READY, WRITING, READING };

struct conn {
    int fd;
    SSL *ssl;
    enum state state;
    size_t received;
    uint64_t started_ns;
};

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void die_ssl(const char *what) {
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int ep;

/* A new connection in slot `c`: connected (blocking connect: loopback), non-blocking, its
 * handshake not yet started. */
static void open_conn(struct conn *c, uint32_t slot) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    int flags = fcntl(c->fd, F_GETFL);
    if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die_ssl("SSL_new");
    SSL_set_connect_state(c->ssl);
    c->state = SHAKING;
    c->received = 0;
    c->started_ns = now_ns();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = slot};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void close_conn(struct conn *c, int polite) {
    if (polite) SSL_shutdown(c->ssl); /* our close_notify; we do not wait for theirs */
    SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

/* 0 if the call would block, -1 if the connection failed. */
static int would_block(struct conn *c, int r, const char *what) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    fprintf(stderr, "%s: SSL error %d\n", what, e);
    ERR_print_errors_fp(stderr);
    return -1;
}

static enum mode mode = PINGPONG;
static size_t size = 1024;
static char *msg, *buf;
static uint32_t *hist;
static uint64_t msgs;
static int ready;

/* Drives connection `slot` as far as it goes without blocking; -1 on failure. */
static int step(struct conn *cs, uint32_t slot) {
    struct conn *c = &cs[slot];
    for (;;) {
        int r;
        switch (c->state) {
        case SHAKING:
            r = SSL_do_handshake(c->ssl);
            if (r != 1) return would_block(c, r, "handshake");
            if (mode == HANDSHAKE) {
                c->state = WRITING;
            } else {
                c->state = READY;
                ready++;
                return 0;
            }
            break;
        case READY:
            return 0;
        case WRITING:
            r = SSL_write(c->ssl, msg, (int)size);
            if (r <= 0) return would_block(c, r, "write");
            c->state = READING;
            c->received = 0;
            break;
        case READING:
            r = SSL_read(c->ssl, buf, 65536);
            if (r <= 0) return would_block(c, r, "read");
            c->received += (size_t)r;
            if (c->received < size) break;
            uint64_t t = now_ns(), us = (t - c->started_ns) / 1000u;
            hist[us > MAX_LATENCY_US ? MAX_LATENCY_US : us]++;
            msgs++;
            if (mode == HANDSHAKE) {
                close_conn(c, 1);
                open_conn(c, slot);
            } else {
                c->started_ns = t;
                c->state = WRITING;
            }
            break;
        }
    }
}

static int percentile(uint64_t total, double p) {
    uint64_t want = (uint64_t)(p * (double)total), seen = 0;
    for (int us = 0; us <= MAX_LATENCY_US; us++) {
        seen += hist[us];
        if (seen > want) return us;
    }
    return MAX_LATENCY_US;
}

/* Polls until `deadline`, or (if `until_ready`) until every connection has shaken hands. */
static int run(struct conn *cs, int conns, uint64_t deadline, int until_ready) {
    struct epoll_event events[256];
    while (now_ns() < deadline && !(until_ready && ready == conns)) {
        int n = epoll_wait(ep, events, 256, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++)
            if (step(cs, events[k].data.u32) < 0) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [-m pingpong|handshake|idle] [-c CONNS] [-s SIZE] [-d SECONDS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), conns = 100, seconds = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-c")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-d")) seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-m")) {
            if (!strcmp(argv[i + 1], "pingpong")) mode = PINGPONG;
            else if (!strcmp(argv[i + 1], "handshake")) mode = HANDSHAKE;
            else if (!strcmp(argv[i + 1], "idle")) mode = IDLE;
            else {
                fprintf(stderr, "unknown mode %s\n", argv[i + 1]);
                return 2;
            }
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || conns <= 0 || conns > 15000 || size == 0 || size > (1u << 20) || seconds <= 0 ||
        seconds > 3600) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die_ssl("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    msg = malloc(size);
    buf = malloc(65536);
    hist = calloc(MAX_LATENCY_US + 1, sizeof *hist);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!msg || !buf || !hist || !cs) die("malloc");
    memset(msg, 'x', size);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");

    uint64_t limit = now_ns() + (uint64_t)seconds * 1000000000u;
    if (mode != HANDSHAKE) {
        /* Handshakes first, untimed (a few at a time, so the server's accept backlog holds). */
        for (int i = 0; i < conns; i++) {
            open_conn(&cs[i], (uint32_t)i);
            if (step(cs, (uint32_t)i) < 0) return 1;
            if (i % 64 == 63 && run(cs, i + 1, limit + 60000000000u, 1) < 0) return 1;
        }
        if (run(cs, conns, limit + 60000000000u, 1) < 0 || ready != conns) {
            fprintf(stderr, "only %d of %d handshakes completed\n", ready, conns);
            return 1;
        }
    }
    if (mode == IDLE) {
        printf("READY %d\n", conns);
        fflush(stdout);
        struct pollfd in = {.fd = 0, .events = POLLIN};
        while (now_ns() < limit) {
            if (poll(&in, 1, 100) > 0) {
                char b[64];
                if (read(0, b, sizeof b) <= 0) break;
            }
        }
        return 0;
    }
    uint64_t start = now_ns(), deadline = start + (uint64_t)seconds * 1000000000u;
    for (int i = 0; i < conns; i++) {
        if (mode == HANDSHAKE) {
            open_conn(&cs[i], (uint32_t)i);
        } else {
            cs[i].state = WRITING;
            cs[i].started_ns = start;
        }
        if (step(cs, (uint32_t)i) < 0) return 1;
    }
    int failed = run(cs, conns, deadline, 0) < 0;
    double secs = (double)(now_ns() - start) / 1e9;
    printf("RESULT msgs=%llu secs=%.3f rate=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d\n", (unsigned long long)msgs,
           secs, (double)msgs / secs, percentile(msgs, 0.50), percentile(msgs, 0.90), percentile(msgs, 0.99),
           percentile(msgs, 0.999));
    for (int i = 0; i < conns; i++)
        if (cs[i].ssl) close_conn(&cs[i], 0);
    return failed ? 1 : 0;
}
