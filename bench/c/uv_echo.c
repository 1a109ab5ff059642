/*
 * uv_echo: the libuv echo server the benchmarks compare against.
 *
 *   uv_echo PORT [write|trywrite]
 *
 * `write` answers with uv_write (libuv's ordinary path); `trywrite` tries uv_try_write first and
 * queues only the remainder. Reads go into one static buffer (no malloc per read), so the
 * comparison is with libuv at its best. Exits on SIGINT/SIGTERM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static char read_buf[65536];
static int use_try_write;

struct write_req {
    uv_write_t req;
    uv_buf_t buf;
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_written(uv_write_t *req, int status) {
    struct write_req *w = (struct write_req *)req;
    (void)status;
    free(w->buf.base);
    free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0) return;
    size_t offset = 0;
    if (use_try_write) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        int r = uv_try_write(s, &b, 1);
        if (r == n) return;
        if (r > 0) offset = (size_t)r;
    }
    /* The read buffer is reused by the next read: the queued part must be copied. */
    struct write_req *w = malloc(sizeof *w);
    w->buf = uv_buf_init(malloc((size_t)n - offset), (unsigned)((size_t)n - offset));
    memcpy(w->buf.base, buf->base + offset, (size_t)n - offset);
    if (uv_write(&w->req, s, &w->buf, 1, on_written) != 0) {
        free(w->buf.base);
        free(w);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    uv_tcp_t *client = malloc(sizeof *client);
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0) {
        uv_tcp_nodelay(client, 1);
        uv_read_start((uv_stream_t *)client, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)client, on_close);
    }
}

static void on_signal(uv_signal_t *sig, int signum) {
    (void)signum;
    uv_stop(sig->loop);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [write|trywrite]\n", argv[0]);
        return 2;
    }
    use_try_write = argc > 2 && strcmp(argv[2], "trywrite") == 0;
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_tcp_init(loop, &server);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (r != 0) {
        fprintf(stderr, "listen: %s\n", uv_strerror(r));
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("libuv %s echo server on port %s (%s)\n", uv_version_string(), argv[1], use_try_write ? "try_write" : "write");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
