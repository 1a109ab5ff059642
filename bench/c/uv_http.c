/*
 * uv_http: examples/c/http_hello.c on libuv, line for line, for bench/http.py.
 *
 *   uv_http PORT      (SIGTERM or SIGINT stops it)
 *
 * Answers every request ("...\r\n\r\n") with the same fixed 200 response, one per pipelined
 * request, with uv_try_write first and uv_write for what the socket did not take (the faster of
 * libuv's two ways in bench/echo.py).
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_HEADER 8192

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    "Hello, world!";

struct conn {
    uv_tcp_t tcp;
    char pending[MAX_HEADER];
    size_t len;
};

static char read_buf[64 * 1024];

static int count_requests(struct conn *c, const char *buf, size_t n) {
    int requests = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->len == MAX_HEADER) return -1;
        c->pending[c->len++] = buf[i];
        if (c->len >= 4 && memcmp(c->pending + c->len - 4, "\r\n\r\n", 4) == 0) {
            requests++;
            c->len = 0;
        }
    }
    return requests;
}

static void on_closed(uv_handle_t *h) { free(h); }

static void on_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static int respond(uv_stream_t *s) {
    uv_buf_t b = uv_buf_init((char *)RESPONSE, sizeof RESPONSE - 1);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)b.len) return 0;
    if (n < 0 && n != UV_EAGAIN) return n;
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    uv_write_t *req = malloc(sizeof *req);
    if (!req) return UV_ENOMEM;
    int r = uv_write(req, s, &b, 1, on_written);
    if (r < 0) free(req);
    return r;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    struct conn *c = (struct conn *)s;
    if (nread == 0) return;
    int requests = nread > 0 ? count_requests(c, buf->base, (size_t)nread) : -1;
    for (int i = 0; i < requests; i++) {
        if (respond(s) < 0) {
            requests = -1;
            break;
        }
    }
    if (requests < 0 && !uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_closed);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void on_signal(uv_signal_t *sig, int signum) {
    (void)signum;
    uv_stop(sig->loop);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &server);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (r < 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, uv_strerror(r));
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
