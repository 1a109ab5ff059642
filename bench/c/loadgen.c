/*
 * loadgen: a ping-pong load generator for echo servers.
 *
 *   loadgen PORT [-c CONNS] [-s SIZE] [-d SECONDS] [-h HOST]
 *       Each connection sends SIZE bytes, waits for SIZE bytes back, and repeats, for SECONDS.
 *       Prints one line: RESULT msgs=N secs=S rate=R p50_us=.. p90_us=.. p99_us=.. p999_us=..
 *       conn_min=.. conn_max=.. (the fewest and most replies any one connection got: how evenly
 *       the server served them). LOADGEN_PER_CONN=1 also prints every connection's count to
 *       stderr.
 *   loadgen PORT -i CONNS [-d SECONDS] [-h HOST]
 *       Opens CONNS idle connections, prints "READY CONNS", holds them for SECONDS or until
 *       stdin closes, then exits.
 *
 * Single-threaded, epoll, non-blocking; bounded in time; talks only to HOST (127.0.0.1 by
 * default).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LATENCY_US 1000000

struct conn {
    int fd;
    size_t sent;     /* bytes of the current message written */
    size_t received; /* bytes of the current reply read */
    uint64_t started_ns;
    uint64_t replies; /* complete replies, to show how evenly the server served connections */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int connect_to(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) die("connect");
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
    return fd;
}

/* Writes what is left of the current message; returns -1 on a fatal error. */
static int pump_write(struct conn *c, const char *msg, size_t size) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        c->sent += (size_t)n;
    }
    return 0;
}

static int idle_mode(const struct sockaddr_in *addr, int conns, int seconds) {
    int *fds = calloc((size_t)conns, sizeof *fds);
    if (!fds) die("calloc");
    for (int i = 0; i < conns; i++) fds[i] = connect_to(addr);
    printf("READY %d\n", conns);
    fflush(stdout);
    struct pollfd in = {.fd = 0, .events = POLLIN};
    uint64_t deadline = now_ns() + (uint64_t)seconds * 1000000000u;
    while (now_ns() < deadline) {
        int r = poll(&in, 1, 100);
        if (r > 0) {
            char b[64];
            if (read(0, b, sizeof b) <= 0) break;
        }
    }
    for (int i = 0; i < conns; i++) close(fds[i]);
    free(fds);
    return 0;
}

static int percentile(const uint32_t *hist, uint64_t total, double p) {
    uint64_t want = (uint64_t)(p * (double)total), seen = 0;
    for (int us = 0; us <= MAX_LATENCY_US; us++) {
        seen += hist[us];
        if (seen > want) return us;
    }
    return MAX_LATENCY_US;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [-c CONNS] [-s SIZE] [-d SECONDS] [-i IDLE_CONNS] [-h HOST]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), conns = 100, idle = 0;
    size_t size = 64;
    int seconds = 5;
    const char *host = "127.0.0.1";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-c")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-d")) seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-i")) idle = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-h")) host = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || conns <= 0 || size == 0 || size > (1u << 20) || seconds <= 0 || seconds > 3600) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    if (idle > 0) return idle_mode(&addr, idle, seconds);

    char *msg = malloc(size), *buf = malloc(65536);
    uint32_t *hist = calloc(MAX_LATENCY_US + 1, sizeof *hist);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!msg || !buf || !hist || !cs) die("malloc");
    memset(msg, 'x', size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < conns; i++) {
        cs[i].fd = connect_to(&addr);
        /* Edge-triggered, so replies are served in the order they arrive: level-triggered epoll
         * puts a reported fd straight back on its ready list, which lets the connections served
         * in one pass jump ahead in the next whenever the server answers before we poll. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }
    uint64_t start = now_ns(), deadline = start + (uint64_t)seconds * 1000000000u, msgs = 0;
    for (int i = 0; i < conns; i++) {
        cs[i].started_ns = now_ns();
        if (pump_write(&cs[i], msg, size) < 0) die("send");
    }
    struct epoll_event events[256];
    int failed = 0;
    while (!failed) {
        uint64_t now = now_ns();
        if (now >= deadline) break;
        int n = epoll_wait(ep, events, 256, (int)((deadline - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            struct conn *c = &cs[events[k].data.u32];
            for (;;) {
                ssize_t got = recv(c->fd, buf, 65536, 0);
                if (got < 0) {
                    if (errno != EAGAIN && errno != EINTR) failed = 1;
                    break;
                }
                if (got == 0) {
                    fprintf(stderr, "server closed a connection\n");
                    failed = 1;
                    break;
                }
                c->received += (size_t)got;
                if (c->received >= size) {
                    uint64_t t = now_ns();
                    uint64_t us = (t - c->started_ns) / 1000u;
                    hist[us > MAX_LATENCY_US ? MAX_LATENCY_US : us]++;
                    msgs++;
                    c->replies++;
                    c->received -= size;
                    c->sent = 0;
                    c->started_ns = t;
                    if (pump_write(c, msg, size) < 0) failed = 1;
                }
                if ((size_t)got < 65536) break;
            }
            if (c->sent < size && pump_write(c, msg, size) < 0) failed = 1;
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    uint64_t fewest = UINT64_MAX, most = 0;
    for (int i = 0; i < conns; i++) {
        if (cs[i].replies < fewest) fewest = cs[i].replies;
        if (cs[i].replies > most) most = cs[i].replies;
    }
    if (getenv("LOADGEN_PER_CONN"))
        for (int i = 0; i < conns; i++)
            fprintf(stderr, "%llu%c", (unsigned long long)cs[i].replies, i % 10 == 9 || i == conns - 1 ? '\n' : ' ');
    printf("RESULT msgs=%llu secs=%.3f rate=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d conn_min=%llu conn_max=%llu\n",
           (unsigned long long)msgs, secs, (double)msgs / secs, percentile(hist, msgs, 0.50),
           percentile(hist, msgs, 0.90), percentile(hist, msgs, 0.99), percentile(hist, msgs, 0.999),
           (unsigned long long)fewest, (unsigned long long)most);
    for (int i = 0; i < conns; i++) close(cs[i].fd);
    return failed ? 1 : 0;
}
